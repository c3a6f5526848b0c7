#include "tether/solverd/settings.hpp"

#include "webhooks.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>

namespace tether::solverd {

std::chrono::milliseconds Settings::graceFor(std::optional<uint32_t> grace_ms) const {
  std::chrono::milliseconds grace = grace_ms ? std::chrono::milliseconds(*grace_ms) : kill_after;
  return std::min(grace, max_grace);
}

std::string selfExecutable() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

std::optional<Settings> readSettings(const config::Config& config, const std::string& self_exe,
                                     config::Error* error) {
  const config::Block& root = config.root();
  Settings s;
  auto fail = [&](const config::Directive* where, std::string message, std::optional<size_t> arg = {}) {
    if (error != nullptr) {
      if (where != nullptr) {
        *error = config::errorAt(*where, std::move(message), arg);
      } else {
        *error = config::Error{std::move(message), {}, 0, 0, {}};
      }
    }
    return std::nullopt;
  };

  auto log_args = root.args("error_log");
  s.log.where = std::string(log_args.at(0));
  if (log_args.size() > 1) log::parseLevel(log_args[1], s.log.level);

  s.listen = root.addresses("listen");

  if (const config::Directive* control = root.find("control")) {
    const config::Block& b = *control->block;
    if (!b.has("listen")) return fail(control, "\"control\" block needs a \"listen unix:PATH\"");
    auto c = agent::control::readControlBlock(b, error);
    if (!c) return std::nullopt;
    c->server.server_name = std::string(kProgram);
    s.control = std::move(*c);
  }
  if (const config::Directive* admin = root.find("admin")) {
    s.admin = admin->block->addresses("listen");
  }

  s.workers = static_cast<size_t>(root.integer("workers"));
  s.spare_workers = static_cast<size_t>(root.integer("spare_workers"));
  s.fork_spares = root.str("spare_start") == "fork";
  s.queue_size = static_cast<size_t>(root.integer("queue_size"));
  if (root.has("worker_path")) {
    s.worker_path = std::string(root.str("worker_path"));
  } else {
    s.worker_path = (std::filesystem::path(self_exe).parent_path() / "solverd-worker").string();
  }
  s.default_time_limit = root.duration("default_time_limit");
  s.time_limit_grace = root.duration("time_limit_grace");
  s.max_grace = root.duration("max_grace");
  s.kill_after = root.duration("kill_after");
  s.deadline_reserve = root.duration("deadline_reserve");
  s.tombstone_ttl = root.duration("tombstone_ttl");
  s.request_id_header = std::string(root.str("request_id_header"));
  s.trust_request_id = root.flag("trust_request_id");
  s.shutdown_timeout = root.duration("shutdown_timeout");
  s.client_header_timeout = root.duration("client_header_timeout");
  s.keepalive_timeout = root.duration("keepalive_timeout");
  s.tcp_keepalive.enabled = root.args("tcp_keepalive").size() == 3;
  if (s.tcp_keepalive.enabled) {
    s.tcp_keepalive.idle = root.duration("tcp_keepalive", 0);
    s.tcp_keepalive.interval = root.duration("tcp_keepalive", 1);
    s.tcp_keepalive.count = static_cast<uint32_t>(root.integer("tcp_keepalive", 2));
  }
  s.client_max_body_size = root.size("client_max_body_size");
  s.coalesce = parseCoalesceMode(root.str("coalesce")).value_or(CoalesceMode::Share);
  std::string_view on_disconnect = root.str("on_disconnect");
  if (CancelAction action{}; on_disconnect != "none" && agent::control::parseAction(on_disconnect, action)) {
    s.on_disconnect = action;
  } else {
    s.on_disconnect = std::nullopt;
  }
  if (root.has("cgroup_root")) s.cgroup_root = std::string(root.str("cgroup_root"));
  if (root.has("job_memory_max")) s.job_memory_max = root.size("job_memory_max");
  if (root.has("job_cpu_max")) s.job_cpu_max = std::strtod(std::string(root.str("job_cpu_max")).c_str(), nullptr);
  if (root.has("job_pids_max")) s.job_pids_max = static_cast<uint64_t>(root.integer("job_pids_max"));
  s.job_lease = root.duration("job_lease");
  s.max_lease = root.duration("max_lease");
  s.result_ttl = root.duration("result_ttl");
  s.gone_ttl = root.duration("gone_ttl");
  if (root.has("route")) s.route = std::string(root.str("route"));
  s.max_results = static_cast<size_t>(root.integer("max_results"));
  s.heartbeat_interval = root.duration("heartbeat_interval");
  if (s.job_lease > s.max_lease) {
    return fail(root.find("job_lease"), "job_lease is longer than max_lease");
  }
  for (const config::Directive* allow : root.all("callback_allow")) {
    for (size_t i = 0; i < allow->args.size(); ++i) {
      std::string entry(allow->args[i]);
      // Each entry alone, so that the error points at the bad one.
      if (std::string why; !CallbackPolicy::parse({entry}, &why)) return fail(allow, why, i);
      s.callback_allow.push_back(std::move(entry));
    }
  }
  if (root.has("callback_secret")) s.callback_secret = std::string(root.str("callback_secret"));
  if (s.heartbeat_interval.count() <= 0) return fail(root.find("heartbeat_interval"), "heartbeat_interval must be positive");
  return s;
}

}  // namespace tether::solverd
