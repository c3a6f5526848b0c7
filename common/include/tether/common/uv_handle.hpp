#pragma once
// Ownership of libuv handles, after uvw (src/uvw/handle.hpp): a handle's memory is freed only in
// its close callback, close() twice is harmless, and owners are neither copied nor moved (libuv
// keeps a pointer to the handle, so its address must not change while it is open).
#include <uv.h>

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace tether {

// UvHandle<T> wraps a heap-allocated libuv handle of type T (uv_tcp_t, uv_timer_t, ...).
// The handle outlives the owner if it is still closing: the close callback deletes it.
// `data` of the raw handle is free for the user.
template <typename T>
class UvHandle {
 public:
  UvHandle() : handle_(new T{}) {}
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&&) = delete;
  UvHandle& operator=(UvHandle&&) = delete;

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  uv_handle_t* raw() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }

  // True once init succeeded and until close() is called.
  bool active() const { return handle_ != nullptr && initialized_; }
  void markInitialized() { initialized_ = true; }

  // Closes the handle; memory is freed in the close callback. An uninitialized handle was never
  // registered with the loop, so it is freed at once. Safe to call any number of times.
  void close() {
    if (handle_ == nullptr) return;
    T* h = std::exchange(handle_, nullptr);
    if (!initialized_) {
      delete h;
      return;
    }
    auto* raw_handle = reinterpret_cast<uv_handle_t*>(h);
    if (uv_is_closing(raw_handle)) {
      // Closed by someone who does not own it: closeLoop() at the end of a daemon or a test closes
      // every handle left with no callback, and the owner may be destroyed after that. The memory
      // is still ours: hand libuv our deleter for the close it has pending (libuv reads close_cb
      // when the close completes). A handle closed by another owner's callback is theirs to free.
      if (raw_handle->close_cb == nullptr) raw_handle->close_cb = &UvHandle::freeClosed;
      return;
    }
    uv_close(raw_handle, &UvHandle::freeClosed);
  }

 private:
  static void freeClosed(uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); }

  T* handle_;
  bool initialized_ = false;
};

// Runs the loop until no handle is left, closing whatever is still open: the end of every daemon
// and every event-loop test (libuv's own tests end the same way). Destroy the owners of handles
// (UvHandle and the objects holding them) first: a handle closed here has no callback, and a
// UvHandle destroyed after this returns finds it closed and can no longer free it.
inline int closeLoop(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

}  // namespace tether
