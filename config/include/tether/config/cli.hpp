#pragma once
// The command line every daemon shares (DESIGN.md "Command line"): -c FILE, -t, -T, -V, -h.
//
//   auto cli = tether::config::parseCommandLine(argc, argv, kSchema, kDefaultConfig);
//   if (cli.exit_code) return *cli.exit_code;
//   run(*cli.config);     // on SIGHUP: tether::config::reload(cli, kSchema, kDefaultConfig)
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "tether/config/config.hpp"

namespace tether::config {

// Where the built-in default puts its sockets: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=;
// the first if it lists several), else $XDG_RUNTIME_DIR/tether, else /tmp/tether-$UID.
std::string defaultRuntimeDir();

// Replaces every `${RUNTIME_DIR}` in a built-in default configuration text with `runtime_dir`.
std::string expandDefaults(std::string_view text, std::string_view runtime_dir);

struct CommandLine {
  std::optional<int> exit_code;  // set: exit now with it (after -t, -T, -V, -h or an error)
  std::optional<Config> config;  // set otherwise: the configuration to run with
  std::string config_path;       // the -c FILE, "" when running on the built-in default
  std::string runtime_dir;       // the expansion of ${RUNTIME_DIR} used for the default
};

// Parses argv. Messages: -t/-T results and errors to `err` in nginx wording
// (`tether-proxy: configuration file X test is successful`), -T's dump, -V, -h and `--directives`
// (the Markdown reference, for docs/directives.md) to `out`. When running on the built-in
// default, creates the runtime directory (0700) if missing, as the sockets go there.
CommandLine parseCommandLine(int argc, const char* const* argv, const Schema& schema,
                             std::string_view default_text, std::ostream& out, std::ostream& err);
CommandLine parseCommandLine(int argc, const char* const* argv, const Schema& schema,
                             std::string_view default_text);  // std::cout and std::cerr

// Loads the same configuration again (SIGHUP): the file of -c, else the built-in default.
LoadResult reload(const CommandLine& command_line, const Schema& schema,
                  std::string_view default_text);

// `tether-proxy version 0.1.0`
std::string versionLine(std::string_view program);

}  // namespace tether::config
