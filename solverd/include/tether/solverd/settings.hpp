#pragma once
// solverd's configuration: the directive table (config_schema.cpp), the built-in default, and
// the typed settings the runtime reads (settings.cpp). DESIGN.md "Configuration language" and
// "solverd.conf" name the directives; the ones beyond DESIGN.md are marked there.
#include "tether/agent/control/config.hpp"
#include "tether/common/log.hpp"
#include "tether/common/tcp_keepalive.hpp"
#include "tether/config/address.hpp"
#include "tether/config/config.hpp"
#include "tether/solverd/job.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::solverd {

inline constexpr std::string_view kProgram = "solverd";

const config::Schema& schema();
// The configuration used without -c: loopback addresses, the control socket in the runtime
// directory (${RUNTIME_DIR}, expanded by the command-line helper).
std::string_view defaultConfigText();


struct Settings {
  log::Target log;
  std::vector<config::Address> listen;
  std::optional<agent::control::ControlSettings> control;  // unix:PATH or systemd:NAME
  std::vector<config::Address> admin;
  size_t workers = 2;
  size_t spare_workers = 1;  // warm workers (spare_pool.hpp), in addition to `workers`
  bool fork_spares = true;   // `spare_start fork` (the fork server, fork_server.hpp) or `exec`
  size_t queue_size = 1000;
  std::string worker_path;  // absolute; resolved beside the solverd binary when not configured
  std::chrono::milliseconds default_time_limit{3'600'000};
  std::chrono::milliseconds max_grace{60'000};
  std::chrono::milliseconds tombstone_ttl{30'000};
  std::string request_id_header = "X-Request-Id";  // changes with a restart (the API listener's)
  bool trust_request_id = true;
  std::chrono::milliseconds kill_after{5'000};        // grace of solverd's own cancels
  std::chrono::milliseconds deadline_reserve{500};    // least kept back from a Request-Timeout
  std::chrono::milliseconds time_limit_grace{5'000};  // past time_limit + this: killed
  std::chrono::milliseconds shutdown_timeout{30'000};
  std::chrono::milliseconds client_header_timeout{10'000};
  std::chrono::milliseconds keepalive_timeout{75'000};
  TcpKeepalive tcp_keepalive{true, std::chrono::seconds(10), std::chrono::seconds(5), 3};
  uint64_t client_max_body_size = 64ULL << 20;
  CoalesceMode coalesce = CoalesceMode::Share;
  std::optional<CancelAction> on_disconnect = CancelAction::Interrupt;  // nullopt: none
  std::string cgroup_root;  // "" = found from /proc/self/cgroup
  std::optional<uint64_t> job_memory_max;
  std::optional<double> job_cpu_max;  // CPUs
  std::optional<uint64_t> job_pids_max;
  // Detached jobs and event streams (DESIGN.md "Jobs that outlive a connection").
  std::chrono::milliseconds job_lease{30'000};
  std::chrono::milliseconds max_lease{3'600'000};
  std::chrono::milliseconds result_ttl{600'000};
  std::chrono::milliseconds gone_ttl{3'600'000};  // then the id answers 410, then 404
  std::string route;  // `route NAME;`: detached jobs' ids end in ".NAME" ("" for none)
  size_t max_results = 1000;
  std::chrono::milliseconds heartbeat_interval{15'000};
  // Webhooks: every argument of every `callback_allow` (empty: public addresses only), the secret.
  std::vector<std::string> callback_allow;
  std::string callback_secret;

  // The grace of a cancel: the frame's grace_ms (or kill_after when absent), capped by max_grace.
  std::chrono::milliseconds graceFor(std::optional<uint32_t> grace_ms) const;
};

// Reads the typed settings of a loaded configuration. Returns an Error placed at the directive
// for what the schema's checkers cannot see (an unknown group, a relative worker_path that does
// not exist is left to the spawn). `self_exe` is the solverd binary's path (for worker_path).
std::optional<Settings> readSettings(const config::Config& config, const std::string& self_exe,
                                     config::Error* error);

// The directory part of /proc/self/exe, for `worker_path` beside the binary.
std::string selfExecutable();

}  // namespace tether::solverd
