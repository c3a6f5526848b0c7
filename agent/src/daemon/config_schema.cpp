// tether-agent's directive table: one row per directive, as nginx's ngx_command_t arrays. The
// rows also generate docs/directives.md (tether-agent --directives).
#include "settings.hpp"

#include "tether/agent/control/config.hpp"

namespace tether::agent::daemon {
namespace {

using config::DirectiveSpec;

// `interrupt signal NAME;` | `interrupt webhook URL;`
config::Checker interruptValue() {
  return [](std::span<const std::string_view> args) -> std::optional<config::Problem> {
    if (args[0] == "signal") {
      if (!parseSignal(args[1])) return config::Problem{"invalid value \"" + std::string(args[1]) + "\"", "it must be a signal name such as SIGINT", 1};
      return std::nullopt;
    }
    if (args[0] == "webhook") {
      if (args[1].substr(0, 7) != "http://") {
        return config::Problem{"invalid value \"" + std::string(args[1]) + "\"", "it must be an http:// URL", 1};
      }
      return std::nullopt;
    }
    return config::Problem{"invalid value \"" + std::string(args[0]) + "\"", "it must be \"signal\" or \"webhook\"", 0};
  };
}

config::Schema makeSchema() {
  std::vector<DirectiveSpec> d;
  auto row = [&d](DirectiveSpec spec) { d.push_back(std::move(spec)); };
  const std::vector<std::string> kMainOnly{"main"};

  row({"error_log", kMainOnly, 1, 2, false, false,
       config::sequence({{}, config::oneOf({"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"})}),
       "stderr info", "where the log goes and from which level", "stderr | journal | FILE [level]"});
  for (auto& spec : control::controlDirectives("the agent")) row(std::move(spec));
  row({"admin", kMainOnly, 0, 0, true, false, {}, "", "the admin listener: /metrics and /health", "{ ... }"});
  row({"listen", {"admin"}, 1, 1, false, true, config::addressValue(), "", "an admin address", "host:port | unix:PATH"});
  row({"interrupt", kMainOnly, 2, 2, false, false, interruptValue(), "signal SIGINT",
       "how a target is asked to stop before the kill: a signal to every process, or an HTTP POST to a URL "
       "in which {id} is replaced by the request id",
       "signal NAME | webhook URL"});
  row({"default_grace", kMainOnly, 1, 1, false, false, config::durationValue(), "5s",
       "the grace between interrupt and kill for a cancel that gives none", "DURATION"});
  row({"max_grace", kMainOnly, 1, 1, false, false, config::durationValue(), "60s",
       "the cap on a cancel's grace between interrupt and kill", "DURATION"});
  row({"tombstone_ttl", kMainOnly, 1, 1, false, false, config::durationValue(), "30s",
       "how long a cancel for an unknown id refuses a registration with that id", "DURATION"});
  row({"cgroup_root", kMainOnly, 1, 1, false, false, {}, "",
       "the cgroup v2 directory that holds the job cgroups (job-HASH of the id) (default: found from /proc/self/cgroup)", "PATH"});
  config::Schema schema{std::string(kProgram), std::move(d)};
  // What only the system can tell (a group that does not exist, a missing control listener) is
  // checked by readSettings(); running it here makes -t, -T, start-up and SIGHUP report it alike.
  schema.validate = [](const config::Config& config) -> std::optional<config::Error> {
    config::Error error;
    if (readSettings(config, &error)) return std::nullopt;
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
  return R"(# tether-agent's built-in configuration (used without -c): loopback only.
error_log stderr info;
control {
    listen unix:${RUNTIME_DIR}/agent.sock;
    mode 0600;
}
admin { listen 127.0.0.1:9903; }
interrupt signal SIGINT;
)";
}

}  // namespace tether::agent::daemon
