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

// The trace id a log line names (`trace=<32 lowercase hex>` as a word of its own), or "". The
// journal sink gives it its own field, TRACE_ID= (DESIGN.md "Trace context").
std::string_view traceIdOf(std::string_view line);

// The logger of one component ("proxy", "control", "job", ...), created on first use with the
// sinks of the last configure() (stderr before any).
std::shared_ptr<spdlog::logger> get(std::string_view component);

}  // namespace tether::log
