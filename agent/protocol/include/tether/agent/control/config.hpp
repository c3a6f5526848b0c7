#pragma once
// The `control { ... }` block that solverd and tether-agent share (DESIGN.md): its directive rows
// for a daemon's schema, and the ServerOptions it describes.
//
//   control {
//       listen unix:/run/tether/control.sock;   # or systemd:NAME (socket activation)
//       mode 0660;  group tether;
//       allow uid 0;  allow group tether;       # SO_PEERCRED rules; the daemon's own uid always
//   }
#include "tether/agent/control/server.hpp"
#include "tether/config/config.hpp"

#include <optional>
#include <vector>

namespace tether::agent::control {

// The rows: `control` in main, and listen/mode/group/allow inside it. `who` names the daemon in
// the help text ("solverd", "the agent").
std::vector<config::DirectiveSpec> controlDirectives(std::string_view who);

struct ControlSettings {
  config::Address listen;   // unix:PATH or systemd:NAME
  ServerOptions server;     // path (unix:), mode, group (gid), allow rules
  std::string group_name;   // `group` as written, for tether::Listener (systemd:)
};

// A job route (request_id.hpp): solverd's `route NAME;` and, with `prefix` "route=", the
// parameter of tether-proxy's `server ADDRESS route=NAME;`. Checks every argument it is given.
config::Checker routeValue(std::string_view prefix);

// Reads a checked `control` block. Group names are resolved here (start-up); an unknown one is
// an error placed at its directive.
std::optional<ControlSettings> readControlBlock(const config::Block& block, config::Error* error);

// Starts `server` listening where `settings` says: a unix path it binds itself, or a socket passed
// by systemd (systemd:NAME) through tether::Listener. Returns 0 or a negative errno with `why` set.
int listenControl(uv_loop_t* loop, Server& server, const ControlSettings& settings, std::string* why);

}  // namespace tether::agent::control
