// solverd: the thin main. Everything else is in the tether_solverd library (tests link it).
#include "tether/common/log.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/config/cli.hpp"
#include "tether/solverd/daemon.hpp"
#include "tether/solverd/settings.hpp"

#include <iostream>

namespace sd = tether::solverd;

int main(int argc, char** argv) {
  auto cli = tether::config::parseCommandLine(argc, argv, sd::schema(), sd::defaultConfigText());
  if (cli.exit_code) return *cli.exit_code;
  const std::string self = sd::selfExecutable();
  tether::config::Error error;
  auto settings = sd::readSettings(*cli.config, self, &error);
  if (!settings) {
    std::cerr << error.format(sd::kProgram) << "\n";
    return 1;
  }
  if (std::string why = tether::log::configure(sd::kProgram, settings->log); !why.empty()) {
    std::cerr << sd::kProgram << ": [emerg] cannot open the log " << settings->log.where << ": " << why << "\n";
    return 1;
  }
  auto logger = tether::log::get("solverd");

  // SIGHUP: the same file again (or the built-in default); on error the old settings stay.
  auto reloader = [&cli, &self, logger]() -> std::optional<sd::Settings> {
    auto loaded = tether::config::reload(cli, sd::schema(), sd::defaultConfigText());
    if (!loaded) {
      logger->error("reload failed, keeping the running configuration: {}", loaded.error().text());
      return std::nullopt;
    }
    tether::config::Error err;
    auto s = sd::readSettings(loaded.config(), self, &err);
    if (!s) logger->error("reload failed, keeping the running configuration: {}", err.text());
    return s;
  };

  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    sd::Daemon daemon(&loop, std::move(*settings), reloader);
    try {
      daemon.start();
    } catch (const std::exception& e) {
      logger->critical("{}", e.what());
      rc = 1;
    }
    if (rc == 0) uv_run(&loop, UV_RUN_DEFAULT);
  }
  tether::closeLoop(&loop);
  return rc;
}
