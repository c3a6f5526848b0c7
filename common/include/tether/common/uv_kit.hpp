#pragma once
// The libuv ownership kit (issue 11), after uvw's Handle::init (src/uvw/handle.hpp): a handle is
// initialised by its owner's constructor, so there is no second step to forget, and its memory
// is freed only in its close callback, which libuv runs after every callback of that handle.
// close() twice is harmless; owners are neither copied nor moved (libuv keeps the address).
//
//   uv::Handle<uv_timer_t> timer(loop);          // uv_timer_init, or timer.status() < 0
//   uv::Handle<uv_pipe_t> pipe(loop, /*ipc=*/0);  // the init's extra arguments follow the loop
//   timer->data = this;
//   uv_timer_start(timer.get(), cb, 100, 0);
//   timer.close();                                // also done by the destructor
#include <uv.h>

#include <utility>

namespace tether::uv {

namespace detail {

// closeLoop() closes what is left on a loop, owned or not, and frees nothing. Its close callback
// is rewritten once libuv has run it, so an owner that closes its handle later can tell whether
// libuv still holds the memory (closeOwned below).
inline void closedByLoopDone(uv_handle_t*) {}
inline void closedByLoop(uv_handle_t* h) { h->close_cb = &closedByLoopDone; }

// Closes a handle whose memory its owner frees with `free_cb`. Reached from the owners' close()
// and destructors; the handle may have been closed already by closeLoop() (a daemon's or a
// test's end, when an owner outlives the loop's run):
//   - closeLoop's close still pending: libuv reads close_cb when the close completes, so it
//     takes our deleter instead;
//   - closeLoop's close done (the owner destroyed after closeLoop returned): libuv no longer
//     knows the handle, free it now;
//   - closed by someone else with their own callback: theirs to free.
inline void closeOwned(uv_handle_t* h, uv_close_cb free_cb) {
  if (!uv_is_closing(h)) {
    uv_close(h, free_cb);
  } else if (h->close_cb == &closedByLoopDone) {
    free_cb(h);
  } else if (h->close_cb == &closedByLoop || h->close_cb == nullptr) {
    h->close_cb = free_cb;
  }
}

}  // namespace detail

// How each handle type is initialised; a type without a row does not compile.
template <typename T>
struct Init;
template <>
struct Init<uv_timer_t> {
  static int run(uv_loop_t* loop, uv_timer_t* h) { return uv_timer_init(loop, h); }
};
template <>
struct Init<uv_tcp_t> {
  static int run(uv_loop_t* loop, uv_tcp_t* h) { return uv_tcp_init(loop, h); }
  // uv_tcp_init_ex: the socket is created now, of address family `flags` (AF_INET, AF_INET6).
  static int run(uv_loop_t* loop, uv_tcp_t* h, unsigned flags) { return uv_tcp_init_ex(loop, h, flags); }
};
template <>
struct Init<uv_pipe_t> {
  static int run(uv_loop_t* loop, uv_pipe_t* h, int ipc) { return uv_pipe_init(loop, h, ipc); }
};
template <>
struct Init<uv_idle_t> {
  static int run(uv_loop_t* loop, uv_idle_t* h) { return uv_idle_init(loop, h); }
};
template <>
struct Init<uv_check_t> {
  static int run(uv_loop_t* loop, uv_check_t* h) { return uv_check_init(loop, h); }
};
template <>
struct Init<uv_async_t> {
  static int run(uv_loop_t* loop, uv_async_t* h, uv_async_cb cb) { return uv_async_init(loop, h, cb); }
};
template <>
struct Init<uv_signal_t> {
  static int run(uv_loop_t* loop, uv_signal_t* h) { return uv_signal_init(loop, h); }
};
template <>
struct Init<uv_poll_t> {
  static int run(uv_loop_t* loop, uv_poll_t* h, int fd) { return uv_poll_init(loop, h, fd); }
};

template <typename T>
class Handle {
 public:
  // Initialises the handle; on failure status() has libuv's error and the handle is gone (an
  // uninitialised handle was never registered with the loop, so it is freed at once).
  template <typename... Args>
  explicit Handle(uv_loop_t* loop, Args&&... args) : handle_(new T{}) {
    status_ = Init<T>::run(loop, handle_, std::forward<Args>(args)...);
    if (status_ != 0) delete std::exchange(handle_, nullptr);
  }
  ~Handle() { close(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&&) = delete;
  Handle& operator=(Handle&&) = delete;

  int status() const { return status_; }  // 0, or the init's libuv error
  // True from a successful init until close().
  explicit operator bool() const { return handle_ != nullptr; }
  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  uv_handle_t* raw() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }

  // Closes the handle; its memory goes in the close callback, after any callback libuv still
  // owes it (a timer's never runs once closed). Safe to call any number of times.
  // A handle that closeLoop() closed already is still ours to free: see closeOwned().
  void close() {
    T* h = std::exchange(handle_, nullptr);
    if (h == nullptr) return;
    auto* raw_handle = reinterpret_cast<uv_handle_t*>(h);
    raw_handle->data = nullptr;  // a late callback that reads `data` finds no owner
    detail::closeOwned(raw_handle, &Handle::freeClosed);
  }

 private:
  static void freeClosed(uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); }

  T* handle_;
  int status_ = 0;
};

// Handles still open on `loop` (closing ones included): libuv's tests end with none.
inline size_t openHandles(uv_loop_t* loop) {
  size_t n = 0;
  uv_walk(loop, [](uv_handle_t*, void* count) { ++*static_cast<size_t*>(count); }, &n);
  return n;
}

// Runs the loop until no handle is left, closing whatever is still open: the end of every daemon
// and every event-loop test (libuv's own tests end the same way). Returns uv_loop_close's result,
// 0 when nothing is left. Destroy the owners of handles first where you can; one destroyed after
// this still frees its handle (detail::closeOwned).
inline int closeLoop(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, &detail::closedByLoop);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

}  // namespace tether::uv

namespace tether {
using uv::closeLoop;  // the name daemons and tests have used since before the kit
}  // namespace tether
