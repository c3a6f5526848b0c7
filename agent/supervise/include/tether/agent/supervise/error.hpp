#pragma once
// Results of the supervision library. Nothing here throws on the event loop (STYLE.md): calls
// return an Error (errno plus the operation that failed) or a Result<T>, and the caller logs once.
#include <string>
#include <utility>
#include <variant>

namespace tether::agent::supervise {

// An errno value and the operation it came from ("mkdir /sys/fs/cgroup/unified/x/job-1").
// code 0 means success, so `if (auto err = f()) log(err.message())` reads as with std::error_code.
struct Error {
  int code = 0;
  std::string what;

  explicit operator bool() const { return code != 0; }
  // "what: strerror(code)", e.g. "write cgroup.kill: No such device".
  std::string message() const;
};

Error errnoError(int code, std::string what);

// A value or an Error. The value is valid only when ok().
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit, as std::expected
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace tether::agent::supervise
