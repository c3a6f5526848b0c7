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
//
// UvHandle (uv_handle.hpp) is the older two-step form; new code uses this one.
#include <uv.h>

#include <utility>

namespace tether::uv {

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
  void close() {
    T* h = std::exchange(handle_, nullptr);
    if (h == nullptr) return;
    auto* raw_handle = reinterpret_cast<uv_handle_t*>(h);
    raw_handle->data = nullptr;  // a late callback that reads `data` finds no owner
    uv_close(raw_handle, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
  }

 private:
  T* handle_;
  int status_ = 0;
};

// Handles still open on `loop` (closing ones included): libuv's tests end with none.
inline size_t openHandles(uv_loop_t* loop) {
  size_t n = 0;
  uv_walk(loop, [](uv_handle_t*, void* count) { ++*static_cast<size_t*>(count); }, &n);
  return n;
}

}  // namespace tether::uv
