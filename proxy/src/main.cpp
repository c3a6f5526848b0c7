// tether-proxy: the thin main. Command line and configuration, logging, the loop, signals.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "tether/common/log.hpp"
#include "tether/common/service.hpp"
#include "tether/common/signals.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/config/cli.hpp"
#include "tether/proxy/config.hpp"
#include "tether/proxy/proxy.hpp"

using namespace tether;

int main(int argc, char** argv) {
  auto cli = config::parseCommandLine(argc, argv, proxy::schema(), proxy::defaultConfigText());
  if (cli.exit_code) return *cli.exit_code;
  proxy::Settings settings;
  if (auto err = proxy::toSettings(*cli.config, settings)) {
    std::cerr << err->format(proxy::kProgram) << "\n";
    return 1;
  }
  log::Target target;
  target.where = settings.error_log;
  if (!log::parseLevel(settings.error_log_level, target.level)) {
    std::cerr << proxy::kProgram << ": [emerg] invalid log level \"" << settings.error_log_level << "\"\n";
    return 1;
  }
  if (auto why = log::configure(proxy::kProgram, target); !why.empty()) {
    std::cerr << proxy::kProgram << ": [emerg] cannot open error log: " << why << "\n";
    return 1;
  }
  auto logger = log::get("proxy");

  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    ServiceNotifier notifier(&loop);
    // For EXTEND_TIMEOUT_USEC= on SIGTERM; follows reloads.
    auto shutdown_timeout = settings.shutdown_timeout;
    proxy::Proxy proxy(&loop, std::move(settings));
    if (auto why = proxy.start(); !why.empty()) {
      logger->critical("{}", why);
      rc = 1;
    } else {
      SignalWatcher signals(&loop, {
          .graceful = [&](int) {
            notifier.stopping("draining");
            logger->info("shutting down: draining {} requests", proxy.activeRequests());
            // DESIGN.md "Service life": a drain may take up to shutdown_timeout, then the
            // cancels of what is left; ask systemd for that much beyond TimeoutStopSec=.
            if (proxy.activeRequests() > 0) {
              notifier.extendTimeout(std::chrono::duration_cast<std::chrono::microseconds>(
                  shutdown_timeout + std::chrono::seconds(5)));
            }
            // The signal handles stay (they do not keep the loop alive): a late SIGTERM during
            // the exit is then a no-op rather than a kill with the default disposition.
            proxy.drain([&] {
              logger->info("drained, exiting");
              notifier.stopWatchdog();
            });
          },
          .immediate = [&](int) {
            logger->info("second termination signal: exiting now");
            uv_stop(&loop);
          },
          .reload = [&] {
            notifier.reloading();
            auto loaded = config::reload(cli, proxy::schema(), proxy::defaultConfigText());
            if (!loaded) {
              logger->error("reload failed, keeping the old configuration: {}", loaded.error().text());
            } else {
              proxy::Settings next;
              if (auto err = proxy::toSettings(loaded.config(), next)) {
                logger->error("reload failed, keeping the old configuration: {}", err->text());
              } else {
                log::Target next_target;
                next_target.where = next.error_log;
                bool level_ok = log::parseLevel(next.error_log_level, next_target.level);
                const auto next_shutdown_timeout = next.shutdown_timeout;
                if (auto problem = proxy.reload(std::move(next)); !problem.empty()) {
                  logger->error("reload failed, keeping the old configuration: {}", problem);
                } else {
                  shutdown_timeout = next_shutdown_timeout;
                  if (level_ok) log::configure(proxy::kProgram, next_target);
                  logger->info("configuration reloaded");
                }
              }
            }
            notifier.ready();
          },
      });
      if (int r = signals.start(); r < 0) {
        logger->critical("cannot install signal handlers: {}", uv_strerror(r));
        rc = 1;
      } else {
        notifier.ready("listening");
        // STATUS= for `systemctl status`: the counts change with every request, so every 5 s.
        notifier.statusEvery(std::chrono::seconds(5), [&proxy] {
          return std::to_string(proxy.openConnections()) + " connections, " +
                 std::to_string(proxy.activeRequests()) + " requests in flight";
        });
        uv_run(&loop, UV_RUN_DEFAULT);
      }
    }
    // From here on we only exit: another SIGTERM or SIGINT must not turn that into a kill. The
    // signal watcher is gone (libuv put the default disposition back as it stopped), and the
    // proxy's destructor is still to run: ignored before it, not after.
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
  }
  // Let the closes started by the destructors finish first: a closing client connection still
  // holds its configuration generation, whose control client closes its own handles when that
  // goes. closeLoop() would otherwise close those handles under their owner's feet.
  uv_run(&loop, UV_RUN_DEFAULT);
  closeLoop(&loop);
  return rc;
}
