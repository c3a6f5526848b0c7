#pragma once
// Process signals on the uv loop (uv_signal_t), with the daemons' shared meaning
// (DESIGN.md "Service life"):
//   SIGTERM, SIGINT  first: graceful shutdown (drain); second: immediate shutdown
//   SIGHUP           reload the configuration
//   SIGPIPE          ignored (a write to a closed socket is an EPIPE error, handled where written)
//
//   tether::SignalWatcher signals(loop, {
//       .graceful = [&] { notifier.stopping(); server.drain(...); },
//       .immediate = [&] { server.closeAll(); },
//       .reload = [&] { reload(); },
//   });
//   if (int rc = signals.start(); rc < 0) throw ...;
#include <uv.h>

#include <functional>
#include <memory>

#include "tether/common/uv_kit.hpp"

namespace tether {

struct SignalActions {
  std::function<void(int signum)> graceful;   // first SIGTERM or SIGINT
  std::function<void(int signum)> immediate;  // any later SIGTERM or SIGINT
  std::function<void()> reload;               // SIGHUP
};

// Ignores SIGPIPE for the whole process (SignalWatcher::start does it too).
void ignoreSigpipe();

class SignalWatcher {
 public:
  SignalWatcher(uv_loop_t* loop, SignalActions actions);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Installs the handlers and ignores SIGPIPE. The signal handles do not keep the loop alive
  // (uv_unref): the loop ends when the daemon's real work (listeners, connections) is closed.
  // Returns 0 or a libuv error.
  int start();
  // Removes the handlers (default dispositions come back, except SIGPIPE). Idempotent.
  void close();

  // How many SIGTERM/SIGINT arrived so far.
  int terminations() const { return terminations_; }

 private:
  void onSignal(int signum);
  uv_loop_t* loop_;
  SignalActions actions_;
  int terminations_ = 0;
  std::unique_ptr<uv::Handle<uv_signal_t>> term_;
  std::unique_ptr<uv::Handle<uv_signal_t>> int_;
  std::unique_ptr<uv::Handle<uv_signal_t>> hup_;
};

}  // namespace tether
