#pragma once
// tether-agent's configuration: the directive table (config_schema.cpp) and the typed settings
// read from a loaded configuration (settings.cpp). Runtime code (agent.cpp) sees only Settings.
#include "tether/agent/control/config.hpp"
#include "tether/agent/supervise/supervisor.hpp"
#include "tether/common/log.hpp"
#include "tether/config/config.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::agent::daemon {

inline constexpr std::string_view kProgram = "tether-agent";

const config::Schema& schema();
// The built-in configuration used without -c (`${RUNTIME_DIR}` is expanded by the config library).
std::string_view defaultConfigText();

struct Settings {
  log::Target log;
  control::ControlSettings control;    // where (unix:PATH or systemd:NAME), mode, group, allow rules
  std::vector<config::Address> admin;  // may be empty: no admin listener
  // `interrupt signal SIGINT;` or `interrupt webhook URL;` (URL with {id}).
  int interrupt_signal = 2;
  std::string interrupt_webhook;
  std::chrono::milliseconds default_grace{5000};
  std::chrono::milliseconds max_grace{60000};
  std::chrono::milliseconds tombstone_ttl{30000};
  std::string cgroup_root;  // empty: discovered

  supervise::SupervisorOptions supervisorOptions() const;
};

// Reads the settings of a configuration that passed the schema checks. Checks that need the
// system (a group name that does not exist, an unknown signal name) fail here with an error placed
// at the directive, in nginx wording.
std::optional<Settings> readSettings(const config::Config& config, config::Error* error);

// "SIGINT" or "INT" or "2" -> 2; nullopt if unknown.
std::optional<int> parseSignal(std::string_view name);

}  // namespace tether::agent::daemon
