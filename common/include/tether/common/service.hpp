#pragma once
// Service life under systemd (Type=notify, DESIGN.md "Service life"): sd_notify(3) messages and
// the watchdog. Outside systemd (no NOTIFY_SOCKET) every call is a harmless no-op returning 0.
//
//   tether::ServiceNotifier notifier(loop);   // starts WATCHDOG=1 pings if WATCHDOG_USEC is set
//   ... open listeners ...
//   notifier.ready("listening");
//   ... on SIGHUP: notifier.reloading(); reload(); notifier.ready();
//   ... on SIGTERM: notifier.stopping(); drain with notifier.extendTimeout(...) as needed
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tether/common/uv_kit.hpp"

namespace tether {

// Sends one sd_notify message (several lines allowed). Returns > 0 when sent, 0 when
// NOTIFY_SOCKET is not set, a negative errno on failure. The environment is left in place.
int sdNotify(std::string_view message);

class ServiceNotifier {
 public:
  // Reads WATCHDOG_USEC (for this pid, sd_watchdog_enabled(3)) and, when set, pings WATCHDOG=1
  // every half of it on a uv timer, which does not keep the loop alive.
  explicit ServiceNotifier(uv_loop_t* loop);
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // True when NOTIFY_SOCKET is set (we run under a notify-type service).
  bool enabled() const;

  // READY=1 (plus STATUS= when `status` is given). After a reload too, ending RELOADING=1.
  int ready(std::string_view status = {});
  // STATUS=<text>: a one-line summary for `systemctl status` (counts of jobs, connections).
  int status(std::string_view text);
  // STOPPING=1 (plus STATUS=): the graceful shutdown has begun.
  int stopping(std::string_view status = {});
  // RELOADING=1 with MONOTONIC_USEC=<now> (systemd 253+ Type=notify-reload wants it; older
  // versions ignore the extra field).
  int reloading(std::string_view status = {});
  // EXTEND_TIMEOUT_USEC=: ask for more time during a long start-up or drain.
  int extendTimeout(std::chrono::microseconds extra);
  // WATCHDOG=1 now.
  int watchdogPing();

  // The watchdog period systemd asked for (WATCHDOG_USEC), zero when none.
  std::chrono::microseconds watchdogUsec() const { return watchdog_usec_; }
  // Stops the watchdog pings (at exit: systemd stops watching once STOPPING=1 is sent anyway).
  void stopWatchdog();

  // STATUS=<text()> every `period`, for daemons whose counts change too often to send on every
  // event (the proxy's connections, the agent's targets). Only under systemd; the timer does not
  // keep the loop alive. stopWatchdog() stops it too.
  void statusEvery(std::chrono::milliseconds period, std::function<std::string()> text);

 private:
  std::chrono::microseconds watchdog_usec_{0};
  uv_loop_t* loop_;
  std::unique_ptr<uv::Handle<uv_timer_t>> watchdog_timer_;
  std::unique_ptr<uv::Handle<uv_timer_t>> status_timer_;
  std::function<std::string()> status_text_;
};

}  // namespace tether
