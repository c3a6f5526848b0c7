#include "tether/agent/control/config.hpp"

#include "tether/agent/control/request_id.hpp"
#include "tether/common/listener.hpp"

#include <cerrno>

namespace tether::agent::control {
namespace {

// `listen` of the control block: a unix socket (or one passed by systemd): the protocol is local
// by design, since SO_PEERCRED is its authentication.
config::Checker localAddress() {
  return [](std::span<const std::string_view> args) -> std::optional<config::Problem> {
    auto address = config::parseAddress(args[0]);
    if (!address || address->kind == config::Address::Kind::Tcp) {
      return config::Problem{"invalid value \"" + std::string(args[0]) + "\"", "it must be unix:PATH or systemd:NAME", 0};
    }
    return std::nullopt;
  };
}

}  // namespace

std::vector<config::DirectiveSpec> controlDirectives(std::string_view who) {
  const std::vector<std::string> kMain{"main"};
  const std::vector<std::string> kControl{"control"};
  return {
      {"control", kMain, 0, 0, true, false, {}, "", "the control socket (protocol v1)", "{ ... }"},
      {"listen", kControl, 1, 1, false, false, localAddress(), "", "the control socket", "unix:PATH | systemd:NAME"},
      {"mode", kControl, 1, 1, false, false, config::modeValue(), "", "the control socket file's mode", "0660"},
      {"group", kControl, 1, 1, false, false, {}, "", "the control socket file's group", "NAME | GID"},
      {"allow", kControl, 2, 2, false, true, config::sequence({config::oneOf({"uid", "group"}), {}}), "",
       "peers allowed by SO_PEERCRED besides " + std::string(who) + "'s own uid", "uid N | group NAME|GID"},
  };
}

std::optional<ControlSettings> readControlBlock(const config::Block& block, config::Error* error) {
  auto fail = [&](config::Error e) -> std::optional<ControlSettings> {
    if (error) *error = std::move(e);
    return std::nullopt;
  };
  ControlSettings s;
  s.listen = block.address("listen");
  s.server.path = s.listen.path;
  if (block.has("mode")) s.server.mode = static_cast<mode_t>(block.mode("mode"));
  if (const config::Directive* group = block.find("group")) {
    s.group_name = std::string(group->args[0]);
    std::string why;
    auto rule = parseAllowRule("group", s.group_name, &why);
    if (!rule) return fail(config::errorAt(*group, why, 0));
    s.server.group = rule->value;
  }
  for (const config::Directive* allow : block.all("allow")) {
    std::string why;
    auto rule = parseAllowRule(std::string(allow->args[0]), std::string(allow->args[1]), &why);
    if (!rule) return fail(config::errorAt(*allow, why, 1));
    s.server.allow.push_back(*rule);
  }
  return s;
}

int listenControl(uv_loop_t* loop, Server& server, const ControlSettings& settings, std::string* why) {
  if (settings.listen.kind == config::Address::Kind::Unix) return server.listen(why);
  ListenOptions options;
  options.mode = settings.server.mode;
  options.group = settings.group_name;
  std::string reason;
  auto listener = Listener::open(loop, settings.listen, options, &reason);
  if (!listener) {
    if (why) *why = "cannot listen on " + settings.listen.text() + ": " + reason;
    return -EINVAL;
  }
  if (int rc = server.listen(std::move(listener)); rc != 0) {
    if (why) *why = "cannot listen on " + settings.listen.text() + ": " + uv_strerror(rc);
    return rc;
  }
  return 0;
}

config::Checker routeValue(std::string_view prefix) {
  return [prefix = std::string(prefix)](std::span<const std::string_view> args) -> std::optional<config::Problem> {
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].starts_with(prefix) && isValidRoute(args[i].substr(prefix.size()))) continue;
      return config::Problem{"invalid value \"" + std::string(args[i]) + "\"",
                             "it must be " + prefix + "NAME, 1 to 32 letters, digits, \"-\" or \"_\"", i};
    }
    return std::nullopt;
  };
}

}  // namespace tether::agent::control
