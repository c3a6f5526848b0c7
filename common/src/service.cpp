#include "tether/common/service.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <string>

namespace tether {
namespace {

std::string withStatus(std::string_view state, std::string_view status) {
  std::string msg(state);
  if (!status.empty()) {
    msg += "\nSTATUS=";
    msg += status;
  }
  return msg;
}

uint64_t monotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace

int sdNotify(std::string_view message) {
  const std::string text(message);
  return sd_notify(0, text.c_str());
}

ServiceNotifier::ServiceNotifier(uv_loop_t* loop) : loop_(loop) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  watchdog_usec_ = std::chrono::microseconds(usec);
  watchdog_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop);
  if (!*watchdog_timer_) {
    watchdog_timer_.reset();
    return;
  }
  // Half the period, as sd_watchdog_enabled(3) advises, so one late loop turn is not fatal.
  const uint64_t period_ms = std::max<uint64_t>(1, usec / 2000);
  uv_timer_start(watchdog_timer_->get(), [](uv_timer_t*) { sd_notify(0, "WATCHDOG=1"); },
                 period_ms, period_ms);
  // The pings alone must not keep a finished daemon's loop running.
  uv_unref(watchdog_timer_->raw());
}

ServiceNotifier::~ServiceNotifier() = default;

bool ServiceNotifier::enabled() const {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s != nullptr && *s != '\0';
}

int ServiceNotifier::ready(std::string_view status) { return sdNotify(withStatus("READY=1", status)); }

int ServiceNotifier::status(std::string_view text) {
  return sdNotify(std::string("STATUS=") + std::string(text));
}

int ServiceNotifier::stopping(std::string_view status) {
  return sdNotify(withStatus("STOPPING=1", status));
}

int ServiceNotifier::reloading(std::string_view status) {
  return sdNotify(withStatus("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicUsec()), status));
}

int ServiceNotifier::extendTimeout(std::chrono::microseconds extra) {
  return sdNotify("EXTEND_TIMEOUT_USEC=" + std::to_string(extra.count()));
}

int ServiceNotifier::watchdogPing() { return sdNotify("WATCHDOG=1"); }

void ServiceNotifier::stopWatchdog() {
  watchdog_timer_.reset();
  status_timer_.reset();
}

void ServiceNotifier::statusEvery(std::chrono::milliseconds period, std::function<std::string()> text) {
  if (!enabled()) return;
  status_text_ = std::move(text);
  status_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  if (!*status_timer_) {
    status_timer_.reset();
    return;
  }
  status_timer_->get()->data = this;
  const auto ms = static_cast<uint64_t>(std::max<int64_t>(1, period.count()));
  uv_timer_start(status_timer_->get(), [](uv_timer_t* timer) {
    auto* self = static_cast<ServiceNotifier*>(timer->data);
    self->status(self->status_text_());
  }, ms, ms);
  uv_unref(status_timer_->raw());
}

}  // namespace tether
