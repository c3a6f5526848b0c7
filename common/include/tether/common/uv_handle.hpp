#pragma once
// The older two-step handle (init, then markInitialized()); new code uses uv::Handle (uv_kit.hpp).
// Ownership of libuv handles, after uvw (src/uvw/handle.hpp): a handle's memory is freed only in
// its close callback, close() twice is harmless, and owners are neither copied nor moved (libuv
// keeps a pointer to the handle, so its address must not change while it is open).
#include <uv.h>

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "tether/common/uv_kit.hpp"  // closeLoop(), used with these handles

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
    // Possibly closed already by closeLoop(): uv::detail::closeOwned says who frees it.
    uv::detail::closeOwned(reinterpret_cast<uv_handle_t*>(h), &UvHandle::freeClosed);
  }

 private:
  static void freeClosed(uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); }

  T* handle_;
  bool initialized_ = false;
};

}  // namespace tether
