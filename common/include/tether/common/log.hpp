#pragma once
// Logging: spdlog, one named logger per component (Envoy's habit), all sharing the sinks chosen by
// the `error_log` directive: stderr, journal or a file, with a level.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace tether::log {

struct Target {
  std::string where = "stderr";  // "stderr" | "journal" | a file path
  spdlog::level::level_enum level = spdlog::level::info;
};

// Parses an nginx-style level name (debug, info, notice, warn, error, crit, alert, emerg);
// returns false for an unknown name.
bool parseLevel(std::string_view name, spdlog::level::level_enum& out);

// (Re)points every component logger at `target`. `program` tags each line ("tether-proxy").
// Returns an empty string or a short phrase saying why the target could not be opened.
// Called at start-up and on SIGHUP; existing loggers switch in place.
std::string configure(std::string_view program, const Target& target);

// The journal fields that `error_log journal` adds to a line besides MESSAGE= and PRIORITY=
// (one table in log.cpp): `REQUEST_ID=` from the line's `rid=` token (ids follow the request-id
// rule: visible ASCII, no spaces), so that `journalctl REQUEST_ID=...` finds every line of one
// request across the daemons; `JOB_ID=` likewise from `job=` (solverd's job lines; a job's id is
// the id of the request that created it); `TRACE_ID=` from `trace=` (DESIGN.md "Trace
// context"). The placeholder `rid=-` adds nothing. Exposed for the tests; each returns "" when
// the line names no request, job or trace.
std::string_view requestIdField(std::string_view message);
std::string_view jobIdField(std::string_view message);
// The trace id a log line names (`trace=<32 lowercase hex>` as a word of its own), or "".
std::string_view traceIdOf(std::string_view line);

// The logger of one component ("proxy", "control", "job", ...), created on first use with the
// sinks of the last configure() (stderr before any).
std::shared_ptr<spdlog::logger> get(std::string_view component);

}  // namespace tether::log
