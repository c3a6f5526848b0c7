// tether-agent's life: command line, configuration, logging, the loop, signals, sd_notify.
#include "agent_main.hpp"

#include "agent.hpp"
#include "settings.hpp"

#include "tether/common/service.hpp"
#include "tether/common/signals.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/config/cli.hpp"

#include <iostream>

namespace tether::agent::daemon {
namespace {

std::optional<Settings> settingsOf(const config::Config& config) {
  config::Error error;
  auto settings = readSettings(config, &error);
  if (!settings) std::cerr << error.format(kProgram) << "\n";
  return settings;
}

// Runs until SIGTERM/SIGINT and the shutdown are done. Returns the exit code.
int run(uv_loop_t* loop, const config::CommandLine& cli, const Settings& settings) {
  auto log = log::get("agent");
  Agent agent(loop, settings);
  ServiceNotifier notifier(loop);
  try {
    agent.start();
  } catch (const StartupError& e) {
    std::cerr << kProgram << ": [emerg] " << e.what() << "\n";
    return 1;
  }

  SignalWatcher* watcher = nullptr;  // set below; the actions run only once the loop runs
  SignalActions actions;
  actions.graceful = [&](int signum) {
    log->info("signal {}: shutting down", signum);
    notifier.stopping();
    agent.shutdown([&] {
      notifier.stopWatchdog();
      watcher->close();
    });
  };
  actions.immediate = [&](int signum) {
    log->info("signal {} again: closing now", signum);
    agent.closeNow();
    notifier.stopWatchdog();
    watcher->close();
  };
  actions.reload = [&] {
    notifier.reloading();
    auto reloaded = config::reload(cli, schema(), defaultConfigText());
    config::Error error;
    std::optional<Settings> fresh;
    if (!reloaded) {
      error = reloaded.error();
    } else {
      fresh = readSettings(reloaded.config(), &error);
    }
    if (!fresh) {
      log->error("reload: {}; keeping the running configuration", error.text());
    } else {
      log::configure(kProgram, fresh->log);
      agent.reload(std::move(*fresh));
      log->info("configuration reloaded");
    }
    notifier.ready();
  };
  SignalWatcher signals(loop, std::move(actions));
  watcher = &signals;
  if (int rc = signals.start(); rc < 0) {
    std::cerr << kProgram << ": [emerg] cannot install signal handlers: " << uv_strerror(rc) << "\n";
    return 1;
  }
  notifier.ready("listening");
  notifier.statusEvery(std::chrono::seconds(5), [&agent] { return std::to_string(agent.targets()) + " targets"; });
  uv_run(loop, UV_RUN_DEFAULT);
  log->info("exiting");
  return 0;
}

}  // namespace

int agentMain(int argc, const char* const* argv) {
  auto cli = config::parseCommandLine(argc, argv, schema(), defaultConfigText());
  if (cli.exit_code) return *cli.exit_code;
  auto settings = settingsOf(*cli.config);
  if (!settings) return 1;
  if (auto why = log::configure(kProgram, settings->log); !why.empty()) {
    std::cerr << kProgram << ": [emerg] cannot open the error log \"" << settings->log.where << "\": " << why << "\n";
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  const int exit_code = run(&loop, cli, *settings);
  (void)closeLoop(&loop);
  return exit_code;
}

}  // namespace tether::agent::daemon
