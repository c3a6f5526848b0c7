#include "tether/common/signals.hpp"

#include <csignal>

namespace tether {

void ignoreSigpipe() { std::signal(SIGPIPE, SIG_IGN); }

SignalWatcher::SignalWatcher(uv_loop_t* loop, SignalActions actions)
    : loop_(loop), actions_(std::move(actions)) {}

SignalWatcher::~SignalWatcher() { close(); }

int SignalWatcher::start() {
  ignoreSigpipe();
  struct Slot {
    std::unique_ptr<uv::Handle<uv_signal_t>>* handle;
    int signum;
  };
  const Slot slots[] = {{&term_, SIGTERM}, {&int_, SIGINT}, {&hup_, SIGHUP}};
  for (const auto& slot : slots) {
    if (*slot.handle) continue;
    auto h = std::make_unique<uv::Handle<uv_signal_t>>(loop_);
    if (h->status() < 0) return h->status();
    h->get()->data = this;
    int rc = uv_signal_start(
        h->get(), [](uv_signal_t* s, int signum) { static_cast<SignalWatcher*>(s->data)->onSignal(signum); },
        slot.signum);
    if (rc < 0) return rc;
    uv_unref(h->raw());
    *slot.handle = std::move(h);
  }
  return 0;
}

void SignalWatcher::close() {
  term_.reset();
  int_.reset();
  hup_.reset();
}

void SignalWatcher::onSignal(int signum) {
  if (signum == SIGHUP) {
    if (actions_.reload) actions_.reload();
    return;
  }
  // SIGTERM and SIGINT count together: Ctrl-C twice is as urgent as `systemctl kill` twice.
  if (++terminations_ == 1) {
    if (actions_.graceful) actions_.graceful(signum);
  } else if (actions_.immediate) {
    actions_.immediate(signum);
  }
}

}  // namespace tether
