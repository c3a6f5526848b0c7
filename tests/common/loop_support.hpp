#pragma once
// Test support for event-loop tests of common/: the loop runs in the test's own thread and is
// pumped (uv_run NOWAIT plus a poll on the loop's backend fd) while raw client sockets are read
// non-blocking, so a test waits for events with a deadline and never sleeps.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tether/common/uv_kit.hpp"

namespace tether::testing {

// One turn: wait up to `max_wait_ms` for loop activity (or activity on `extra_fd`), run ready
// callbacks.
inline void pumpOnce(uv_loop_t* loop, int extra_fd = -1, int max_wait_ms = 5) {
  pollfd fds[2] = {{uv_backend_fd(loop), POLLIN, 0}, {extra_fd, POLLIN, 0}};
  int wait = uv_backend_timeout(loop);
  if (wait < 0 || wait > max_wait_ms) wait = max_wait_ms;
  ::poll(fds, extra_fd >= 0 ? 2 : 1, wait);
  uv_run(loop, UV_RUN_NOWAIT);
}

// Pumps the loop until `done` holds or `timeout_ms` passes; returns whether `done` held.
inline bool pumpUntil(uv_loop_t* loop, const std::function<bool()>& done, int timeout_ms = 5000,
                      int extra_fd = -1) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    pumpOnce(loop, extra_fd);
  }
  return true;
}

// A loop owned by a test, closed at the end with every handle (libuv's own tests end so):
// a test fails if a handle would be left.
class TestLoop {
 public:
  TestLoop() { uv_loop_init(&loop_); }
  ~TestLoop() { close(); }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;
  uv_loop_t* get() { return &loop_; }
  // Closes remaining handles; returns uv_loop_close's result (0 when nothing is left).
  int close() {
    if (closed_) return 0;
    closed_ = true;
    return closeLoop(&loop_);
  }

 private:
  uv_loop_t loop_{};
  bool closed_ = false;
};

// Keeps a loop alive (uv_run returns at once when only unref'd handles are left, as signal and
// watchdog handles are) while a test pumps it; closed with the loop.
class KeepLoopAlive {
 public:
  explicit KeepLoopAlive(uv_loop_t* loop) : handle_(loop, nullptr) {}

 private:
  uv::Handle<uv_async_t> handle_;
};

// A raw blocking-connect, non-blocking-read client socket.
class RawClient {
 public:
  RawClient() = default;
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connectTcp(uint16_t port, bool v6 = false) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int rc;
    if (v6) {
      sockaddr_in6 sa{};
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons(port);
      sa.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    } else {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port);
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    }
    return rc == 0 && setNonBlocking();
  }

  bool connectUnix(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && setNonBlocking();
  }

  // Sends everything, pumping the loop while the socket buffer is full.
  bool send(uv_loop_t* loop, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN) return false;
      pumpOnce(loop);
    }
    return true;
  }

  // Reads what is available into received(); returns false once the peer closed (or reset).
  bool readAvailable() {
    char buf[65536];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        received_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        closed_ = true;
        return false;
      }
      if (errno == EAGAIN) return true;
      reset_ = errno == ECONNRESET;
      closed_ = true;
      return false;
    }
  }

  // Pumps until `done(received())` holds or the peer closed; then returns `done`'s value.
  bool readUntil(uv_loop_t* loop, const std::function<bool(const std::string&)>& done,
                 int timeout_ms = 5000) {
    pumpUntil(
        loop,
        [&] {
          if (!closed_) readAvailable();
          return done(received_) || closed_;
        },
        timeout_ms, fd_);
    return done(received_);
  }

  // Pumps until the server closed the connection.
  bool waitClosed(uv_loop_t* loop, int timeout_ms = 5000) {
    return pumpUntil(
        loop,
        [&] {
          if (!closed_) readAvailable();
          return closed_;
        },
        timeout_ms, fd_);
  }

  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Close with RST instead of FIN (SO_LINGER with a zero timeout).
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void setReceiveBuffer(int bytes) { ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes); }

  int fd() const { return fd_; }
  std::string& received() { return received_; }
  bool closed() const { return closed_; }
  bool wasReset() const { return reset_; }

 private:
  bool setNonBlocking() {
    const int flags = ::fcntl(fd_, F_GETFL);
    return ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) == 0;
  }
  int fd_ = -1;
  std::string received_;
  bool closed_ = false;
  bool reset_ = false;
};

// A parsed response (test side, deliberately independent of the server's code).
struct ParsedResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

// Parses complete responses from the front of `data` (Content-Length or chunked bodies; a
// response without either takes the rest when `eof`). Stops at the first incomplete one.
inline std::vector<ParsedResponse> parseResponses(const std::string& data, bool eof = false) {
  std::vector<ParsedResponse> out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t head_end = data.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) break;
    ParsedResponse r;
    const std::string head = data.substr(pos, head_end - pos);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) break;
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers.emplace_back(line.substr(0, colon), value);
    }
    size_t body_start = head_end + 4;
    if (r.status == 100) {
      pos = body_start;
      continue;  // interim response
    }
    if (auto te = r.header("Transfer-Encoding"); te && *te == "chunked") {
      r.chunked = true;
      size_t p = body_start;
      bool done = false;
      while (true) {
        const size_t le = data.find("\r\n", p);
        if (le == std::string::npos) break;
        const size_t size = std::stoul(data.substr(p, le - p), nullptr, 16);
        if (data.size() < le + 2 + size + 2) break;
        if (size == 0) {
          p = le + 4;
          done = true;
          break;
        }
        r.body.append(data, le + 2, size);
        p = le + 2 + size + 2;
      }
      if (!done) break;
      pos = p;
    } else if (auto cl = r.header("Content-Length")) {
      const size_t n = std::stoul(*cl);
      if (data.size() < body_start + n) break;
      r.body = data.substr(body_start, n);
      pos = body_start + n;
    } else if (r.status == 204 || r.status == 304) {
      pos = body_start;
    } else {
      if (!eof) break;
      r.body = data.substr(body_start);
      pos = data.size();
    }
    out.push_back(std::move(r));
  }
  return out;
}

// The keepalive options of a socket, as the kernel reports them (getsockopt), to check what a
// server set on the connections it accepted.
struct KeepaliveReadBack {
  int on = -1, idle = -1, interval = -1, count = -1;
  unsigned user_timeout_ms = 0;
};
inline KeepaliveReadBack readKeepalive(int fd) {
  KeepaliveReadBack k;
  socklen_t len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.on, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.interval, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.count, &len);
  len = sizeof k.user_timeout_ms;
  getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &k.user_timeout_ms, &len);
  return k;
}

// The fds of the connected TCP handles on `loop` (accepted connections: listeners have no peer).
inline std::vector<int> connectedTcpFds(uv_loop_t* loop) {
  std::vector<int> fds;
  uv_walk(
      loop,
      [](uv_handle_t* h, void* out) {
        if (h->type != UV_TCP || uv_is_closing(h)) return;
        sockaddr_storage ss{};
        int len = sizeof ss;
        if (uv_tcp_getpeername(reinterpret_cast<uv_tcp_t*>(h), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
        uv_os_fd_t fd;
        if (uv_fileno(h, &fd) == 0) static_cast<std::vector<int>*>(out)->push_back(fd);
      },
      &fds);
  return fds;
}

}  // namespace tether::testing
