#pragma once
// Connection timeouts without a libuv timer each (issue 11; nginx keeps one timer tree for all its
// connections). A connection re-arms its timeout several times per request (header, body, send,
// keep-alive), and uv_timer_start/uv_timer_stop keep libuv's timer heap in order at every call:
// about 5% of the proxy's CPU at 1,000 connections. Here every timeout of one duration sits in one
// list: deadlines are the loop's time plus that duration, so a list appended to in time order is
// sorted by deadline, and arming or cancelling is an unlink and a push_back. Each list keeps one
// uv_timer_t armed for its first deadline. A connection's timeout moves between lists when its
// kind changes (header_timeout to send_timeout).
//
//   uv::Timeouts timeouts(loop);                      // one per loop (the daemon's context)
//   uv::Timeout t([](uv::Timeout& self) { ... });    // one per connection, a member
//   timeouts.arm(t, 60'000);                          // (re)arms; cancel() or destruction stops it
//
// Precision: libuv's cached loop time, in milliseconds, as uv_timer_start. A callback may arm,
// cancel or destroy any Timeout, its own included, and may destroy its owner.
#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>

namespace tether::uv {

class Timeouts;

class Timeout {
 public:
  using Callback = void (*)(Timeout& self);
  explicit Timeout(Callback callback, void* data = nullptr) : callback_(callback), data(data) {}
  ~Timeout() { cancel(); }
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;

  void cancel();
  bool armed() const { return list_ != nullptr; }

 private:
  friend class Timeouts;
  struct List;
  Callback callback_;
  Timeout* prev_ = nullptr;
  Timeout* next_ = nullptr;
  List* list_ = nullptr;
  uint64_t due_ = 0;

 public:
  void* data;  // the owner, for the callback
};

class Timeouts {
 public:
  explicit Timeouts(uv_loop_t* loop);
  // Cancels every timeout still armed (their owners find them disarmed) and closes the timers.
  ~Timeouts();
  Timeouts(const Timeouts&) = delete;
  Timeouts& operator=(const Timeouts&) = delete;

  // Arms `t` to run `ms` milliseconds from the loop's time (again: from now). 0 runs it on the
  // next loop iteration, as uv_timer_start(0) would.
  void arm(Timeout& t, uint64_t ms);
  // Durations in use (one uv_timer_t each), for tests.
  size_t lists() const { return lists_.size(); }

 private:
  friend class Timeout;
  void fire(Timeout::List& list);
  uv_loop_t* loop_;
  std::map<uint64_t, std::unique_ptr<Timeout::List>> lists_;
};

}  // namespace tether::uv
