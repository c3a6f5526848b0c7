// Settings from a checked configuration (the schema is in config_schema.cpp).
#include "settings.hpp"

#include "tether/agent/control/config.hpp"


#include <array>
#include <charconv>
#include <csignal>

namespace tether::agent::daemon {
namespace {

struct SignalName {
  std::string_view name;
  int number;
};
constexpr std::array<SignalName, 8> kSignals{{
    {"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"KILL", SIGKILL}, {"ALRM", SIGALRM},
}};

}  // namespace

std::optional<int> parseSignal(std::string_view name) {
  int number = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
  if (ec == std::errc() && ptr == name.data() + name.size()) {
    if (number > 0 && number < NSIG) return number;
    return std::nullopt;
  }
  if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (const auto& row : kSignals) {
    if (row.name == name) return row.number;
  }
  return std::nullopt;
}

supervise::SupervisorOptions Settings::supervisorOptions() const {
  supervise::SupervisorOptions o;
  o.default_grace_ms = static_cast<uint64_t>(default_grace.count());
  o.max_grace_ms = static_cast<uint64_t>(max_grace.count());
  o.tombstone_ttl_ms = static_cast<uint64_t>(tombstone_ttl.count());
  o.interrupt_signal = interrupt_signal;
  return o;
}

std::optional<Settings> readSettings(const config::Config& config, config::Error* error) {
  const config::Block& root = config.root();
  Settings s;
  auto fail = [&](config::Error e) -> std::optional<Settings> {
    if (error) *error = std::move(e);
    return std::nullopt;
  };

  const auto log_args = root.args("error_log");
  if (!log_args.empty()) s.log.where = std::string(log_args[0]);
  if (log_args.size() > 1) log::parseLevel(log_args[1], s.log.level);

  const config::Directive* control = root.find("control");
  if (control == nullptr || !control->block || !control->block->has("listen")) {
    const std::string message = "no \"listen\" in the \"control\" block: the agent needs its control socket";
    if (control != nullptr) return fail(config::errorAt(*control, message));
    config::Error e;
    e.message = message;
    return fail(e);
  }
  auto control_settings = control::readControlBlock(*control->block, error);
  if (!control_settings) return std::nullopt;
  s.control = std::move(*control_settings);
  s.control.server.server_name = std::string(kProgram);

  if (const config::Directive* admin = root.find("admin"); admin != nullptr && admin->block) {
    s.admin = admin->block->addresses("listen");
  }

  const auto interrupt = root.args("interrupt");
  if (interrupt.size() == 2 && interrupt[0] == "webhook") {
    s.interrupt_webhook = std::string(interrupt[1]);
  } else if (interrupt.size() == 2) {
    s.interrupt_signal = parseSignal(interrupt[1]).value_or(SIGINT);
  }
  s.default_grace = root.duration("default_grace");
  s.max_grace = root.duration("max_grace");
  s.tombstone_ttl = root.duration("tombstone_ttl");
  if (root.has("cgroup_root")) s.cgroup_root = std::string(root.str("cgroup_root"));
  return s;
}

}  // namespace tether::agent::daemon
