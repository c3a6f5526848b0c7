#pragma once
// tether-proxy's configuration: the directive table (DESIGN.md "Proxy"), the built-in default
// used without -c, and the conversion from a loaded config::Config to runtime Settings.
#include <optional>
#include <string_view>

#include "tether/config/config.hpp"
#include "tether/proxy/settings.hpp"

namespace tether::proxy {

inline constexpr std::string_view kProgram = "tether-proxy";

// Every directive tether-proxy knows, one row each.
const config::Schema& schema();

// The configuration used when -c is absent (`${RUNTIME_DIR}` is expanded by the config library):
// listen 127.0.0.1:8080, upstream solverd at 127.0.0.1:7070 with its control socket in the
// runtime directory, /v1/solve with on_disconnect interrupt, admin on 127.0.0.1:9901.
std::string_view defaultConfigText();

// Reads a checked configuration into Settings. The checks the table cannot make (proxy_pass
// naming an unknown upstream, an upstream without servers, a server without listen) come back
// as an Error placed at the directive.
std::optional<config::Error> toSettings(const config::Config& config, Settings& out);

}  // namespace tether::proxy
