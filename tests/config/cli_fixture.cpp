// A minimal daemon main over the proxy test schema, so the command line is tested as a real
// process: exit codes, stdout and stderr.
#include <iostream>

#include "test_schema.hpp"
#include "tether/config/cli.hpp"

namespace {
constexpr std::string_view kDefault = R"(# built-in default: loopback, sockets in the runtime directory
upstream solverd { server unix:${RUNTIME_DIR}/solverd.sock; control unix:${RUNTIME_DIR}/control.sock; }
server { listen 127.0.0.1:8080; location / { proxy_pass http://solverd; } }
)";
}  // namespace

int main(int argc, char** argv) {
  const auto cli = tether::config::parseCommandLine(argc, argv, tether::config::testing::proxySchema(), kDefault);
  if (cli.exit_code) return *cli.exit_code;
  // "Running": print what a daemon would listen on, then exit.
  const auto& root = cli.config->root();
  std::cout << "running with " << (cli.config_path.empty() ? "the built-in default" : cli.config_path)
            << ", upstream control " << root.find("upstream")->block->address("control").text() << "\n";
  return 0;
}
