// solverd's directive table: one row per directive, as nginx's ngx_command_t arrays. The rows
// also generate docs/directives.md (solverd --directives).
#include "tether/solverd/settings.hpp"

#include "tether/agent/control/config.hpp"

#include <cmath>
#include <cstdlib>

namespace tether::solverd {
namespace {

using config::DirectiveSpec;
using config::kAnyArgs;

// `job_cpu_max 1.5;`: CPUs, a positive decimal (cpu.max takes quota and period; we derive both).
config::Checker cpuCount() {
  return [](std::span<const std::string_view> args) -> std::optional<config::Problem> {
    std::string text(args[0]);
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || v > 4096) {
      return config::Problem{"invalid value \"" + text + "\"", "it must be a number of CPUs, e.g. 1 or 0.5", 0};
    }
    return std::nullopt;
  };
}

config::Schema makeSchema() {
  std::vector<DirectiveSpec> d;
  auto row = [&d](DirectiveSpec spec) { d.push_back(std::move(spec)); };
  const std::vector<std::string> kMainOnly{"main"};

  row({"error_log", kMainOnly, 1, 2, false, false,
       config::sequence({{}, config::oneOf({"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"})}),
       "stderr info", "where the log goes and from which level", "stderr | journal | FILE [level]"});
  row({"listen", kMainOnly, 1, 1, false, true, config::addressValue(), "127.0.0.1:7070",
       "the HTTP API (and /metrics, /health); several allowed", "host:port | [v6]:port | unix:PATH | systemd:NAME"});
  for (auto& spec : agent::control::controlDirectives("solverd")) row(std::move(spec));
  row({"admin", kMainOnly, 0, 0, true, false, {}, "", "the admin listener: /metrics and /health", "{ ... }"});
  row({"listen", {"admin"}, 1, 1, false, true, config::addressValue(), "", "an admin address", "host:port | unix:PATH"});
  row({"workers", kMainOnly, 1, 1, false, false, config::integerValue(1, 4096), "2", "parallel solves", "N"});
  row({"spare_workers", kMainOnly, 1, 1, false, false, config::integerValue(0, 64), "1",
       "warm workers kept started, each in its own fresh cgroup, in addition to workers; 0: a worker "
       "starts with its job",
       "N"});
  row({"spare_start", kMainOnly, 1, 1, false, false, config::oneOf({"fork", "exec"}), "fork",
       "how spares are made: forked into their cgroups by a fork server (solverd-worker --fork-server, its "
       "libraries loaded once), or each exec'd; fork falls back to exec while the fork server is down",
       "fork | exec"});
  row({"queue_size", kMainOnly, 1, 1, false, false, config::integerValue(0, 10'000'000), "1000",
       "jobs that may wait for a worker; beyond, 503 with Retry-After", "N"});
  row({"worker_path", kMainOnly, 1, 1, false, false, {}, "",
       "the solverd-worker binary (default: beside the solverd binary)", "PATH"});
  row({"default_time_limit", kMainOnly, 1, 1, false, false, config::durationValue(), "1h",
       "a job's time limit when the request gives none, and the cap of the ones it gives", "DURATION"});
  row({"time_limit_grace", kMainOnly, 1, 1, false, false, config::durationValue(), "5s",
       "(beyond DESIGN.md) a worker still running this long after its time limit is killed", "DURATION"});
  row({"max_grace", kMainOnly, 1, 1, false, false, config::durationValue(), "60s",
       "the cap on a cancel's grace between interrupt and kill", "DURATION"});
  row({"kill_after", kMainOnly, 1, 1, false, false, config::durationValue(), "5s",
       "(beyond DESIGN.md) the grace of solverd's own cancels and of frames without grace_ms; at most this is kept back "
       "from a Request-Timeout budget",
       "DURATION"});
  row({"deadline_reserve", kMainOnly, 1, 1, false, false, config::durationValue(), "500ms",
       "the least time kept back from a Request-Timeout budget for the worker's start and exit and the "
       "answer's way back (up to kill_after)",
       "DURATION"});
  row({"on_disconnect", kMainOnly, 1, 1, false, false, config::oneOf({"none", "interrupt", "kill"}), "interrupt",
       "(beyond DESIGN.md) what solverd's own watch does when a request's connection closes early",
       "none | interrupt | kill"});
  row({"request_id_header", kMainOnly, 1, 1, false, false, {}, "X-Request-Id",
       "the header that carries the request id (the proxy's request_id_header)", "NAME"});
  row({"trust_request_id", kMainOnly, 1, 1, false, false, config::flagValue(), "on",
       "take the request id from request_id_header when it follows the id rule (solverd sits behind "
       "the proxy); off: every request gets a generated id", "on | off"});
  row({"tombstone_ttl", kMainOnly, 1, 1, false, false, config::durationValue(), "30s",
       "how long a cancel for an unknown id refuses that id", "DURATION"});
  row({"coalesce", kMainOnly, 1, 1, false, false, config::oneOf({"share", "supersede", "off"}), "share",
       "what requests with the same X-Solve-Key do", "share | supersede | off"});
  row({"cgroup_root", kMainOnly, 1, 1, false, false, {}, "",
       "the cgroup v2 directory that holds the job cgroups (job-HASH of the id, job-spare-N for warm workers) (default: found from /proc/self/cgroup)", "PATH"});
  row({"job_memory_max", kMainOnly, 1, 1, false, false, config::sizeValue(), "", "memory.max of each job", "SIZE"});
  row({"job_cpu_max", kMainOnly, 1, 1, false, false, cpuCount(), "", "cpu.max of each job, in CPUs", "CPUS"});
  row({"job_pids_max", kMainOnly, 1, 1, false, false, config::integerValue(1, 4'194'304), "",
       "pids.max of each job", "N"});
  row({"shutdown_timeout", kMainOnly, 1, 1, false, false, config::durationValue(), "30s",
       "on SIGTERM, how long running jobs may finish before they are cancelled", "DURATION"});
  row({"client_max_body_size", kMainOnly, 1, 1, false, false, config::sizeValue(), "64m",
       "(beyond DESIGN.md) the largest model accepted; beyond, 413", "SIZE"});
  row({"client_header_timeout", kMainOnly, 1, 1, false, false, config::durationValue(), "10s",
       "(beyond DESIGN.md) a request head not complete in time gets 408", "DURATION"});
  row({"keepalive_timeout", kMainOnly, 1, 1, false, false, config::durationValue(), "75s",
       "(beyond DESIGN.md) an idle keep-alive connection is closed after this", "DURATION"});
  row({"job_lease", kMainOnly, 1, 1, false, false, config::durationValue(), "30s",
       "how long a detached job (POST /v1/jobs) lives after its submission or last GET with no watcher",
       "DURATION"});
  row({"max_lease", kMainOnly, 1, 1, false, false, config::durationValue(), "1h",
       "the longest lease a POST /v1/jobs?lease= may ask for; beyond, 422", "DURATION"});
  row({"result_ttl", kMainOnly, 1, 1, false, false, config::durationValue(), "10m",
       "how long a finished job's result is kept; then its id answers 410 for gone_ttl, then 404", "DURATION"});
  row({"route", kMainOnly, 1, 1, false, false, agent::control::routeValue(""), "",
       "this server's job route: the ids of the jobs it accepts end in .NAME, which tether-proxy's "
       "`server ADDRESS route=NAME` sends back here (several solverd behind one upstream)",
       "NAME"});
  row({"gone_ttl", kMainOnly, 1, 1, false, false, config::durationValue(), "1h",
       "how long the id of a dropped result answers 410 gone before it answers 404", "DURATION"});
  row({"max_results", kMainOnly, 1, 1, false, false, config::integerValue(1, 1'000'000), "1000",
       "finished jobs kept at most; beyond, the oldest are dropped (their ids answer 410)", "N"});
  row({"heartbeat_interval", kMainOnly, 1, 1, false, false, config::durationValue(), "15s",
       "event streams (NDJSON, SSE) send a heartbeat this often; a write pending twice as long is a "
       "disconnect",
       "DURATION"});
  row({"tcp_keepalive", kMainOnly, 1, 3, false, false, config::tcpKeepaliveValue(), "10s 5s 3",
       "TCP keepalive probes and TCP_USER_TIMEOUT on API connections: the own watch finds clients "
       "that vanished without FIN or RST (as the proxy's)", "off | IDLE INTERVAL COUNT"});
  row({"callback_allow", kMainOnly, 1, kAnyArgs, false, true, {}, "",
       "who a callback=URL may reach: CIDRs, host names, `public` (without it: public addresses only; loopback and "
       "private ranges refused)",
       "CIDR | HOST | public ..."});
  row({"callback_secret", kMainOnly, 1, 1, false, false, {}, "",
       "the HMAC-SHA256 key of webhooks' Tether-Signature header (none: unsigned)", "STRING"});
  config::Schema schema{std::string(kProgram), std::move(d)};
  // What only the system can tell (a control `group` that does not exist) is checked by
  // readSettings(); running it here makes -t, -T, start-up and SIGHUP report it alike, as
  // tether-agent does (without it, `-t` passed a configuration that then failed to start).
  schema.validate = [](const config::Config& config) -> std::optional<config::Error> {
    config::Error error;
    if (readSettings(config, selfExecutable(), &error)) return std::nullopt;
    return error;
  };
  return schema;
}

}  // namespace

const config::Schema& schema() {
  static const config::Schema kSchema = makeSchema();
  return kSchema;
}

std::string_view defaultConfigText() {
  return R"(# solverd's built-in configuration (used without -c): loopback only.
error_log stderr info;
listen 127.0.0.1:7070;
control {
    listen unix:${RUNTIME_DIR}/control.sock;
    mode 0600;
}
admin { listen 127.0.0.1:9902; }
workers 2;
queue_size 1000;
)";
}

}  // namespace tether::solverd
