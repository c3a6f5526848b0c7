#pragma once
// The service-life test harness: runs a daemon binary the way systemd does (NOTIFY_SOCKET,
// WATCHDOG_USEC, LISTEN_FDS/LISTEN_FDNAMES with the fds at 3...), listens to its sd_notify
// datagrams, reads its stderr log, and talks HTTP and control frames to it. Everything waits
// for an event with a deadline; nothing sleeps for synchronization.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tether::service_test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An fd with one owner.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// A fresh directory under /tmp (short: unix socket paths go in it), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `text` to `name` in the directory (atomically: a reload must never see half a file).
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// The sd_notify side of systemd: an AF_UNIX datagram socket whose path goes in NOTIFY_SOCKET.
class NotifyListener {
 public:
  explicit NotifyListener(std::string path);
  const std::string& path() const { return path_; }
  // Waits for the next message whose text contains `needle` (messages before it are kept in
  // all()). Returns the message, or nullopt at the deadline.
  std::optional<std::string> waitFor(const std::string& needle, milliseconds timeout);
  // Every message received so far, in order.
  std::vector<std::string> all();
  // How many received messages contain `needle` (after draining what is queued).
  int count(const std::string& needle);

 private:
  void drain(milliseconds timeout);
  std::string path_;
  Fd fd_;
  std::vector<std::string> messages_;
  size_t scanned_ = 0;
};

// A listening socket that the test holds, passed to daemons as systemd would (LISTEN_FDS).
struct PassedFd {
  int fd;
  std::string name;
};

struct SpawnOptions {
  std::vector<std::string> argv;                       // argv[0] is the binary's path
  std::vector<std::pair<std::string, std::string>> env;  // added to the test's environment
  std::vector<PassedFd> listen_fds;                    // become fds 3.. with LISTEN_* set
  std::string stderr_path;                             // where stderr (the log) goes
};

// A daemon process. Its environment carries a marker (TETHER_SERVICE_TEST=<unique>) that its
// children inherit, so leftovers can be found after it exits. The destructor kills what is left.
class Daemon {
 public:
  explicit Daemon(SpawnOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signum) const;
  // Waits for exit; returns the wait status, or nullopt at the deadline.
  std::optional<int> waitExit(milliseconds timeout);
  bool exited() const { return status_.has_value(); }
  // The whole stderr log so far.
  std::string log() const;
  // Waits until the log contains `needle`; returns whether it did before the deadline.
  bool waitForLog(const std::string& needle, milliseconds timeout) const;
  // The address of the n-th `listening on <address>` line (waits for it).
  std::optional<std::string> listeningAddress(size_t index, milliseconds timeout) const;
  // Pids of live processes that carry this daemon's marker (itself included while it runs).
  std::vector<pid_t> markedProcesses() const;
  // Waits until no marked process is left; returns those still there at the deadline.
  std::vector<pid_t> waitNoProcessLeft(milliseconds timeout) const;

 private:
  std::string marker_;
  std::string stderr_path_;
  pid_t pid_ = -1;
  Fd pidfd_;
  std::optional<int> status_;
};

// A parsed "host:port" or "unix:PATH" from a `listening on` line.
struct Endpoint {
  std::string host;  // empty for unix
  uint16_t port = 0;
  std::string unix_path;
  static std::optional<Endpoint> parse(const std::string& text);
};

// Connects (blocking, with a deadline); returns the fd or the errno in `error`.
Fd connectTo(const Endpoint& endpoint, int* error = nullptr);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string header(const std::string& name) const;
};

// Sends `request` (raw bytes) on `fd` and reads one response (Content-Length, chunked, or up
// to end of file). nullopt when the connection ended first or at the deadline.
std::optional<HttpResponse> exchange(int fd, const std::string& request, milliseconds timeout);
// Appends what arrives on `fd` to `buf` until `buf` contains `needle` (true), or end of file or
// the deadline (false): for streamed responses (NDJSON events) read as they come.
bool readUntil(int fd, std::string& buf, const std::string& needle, milliseconds timeout);
// One request on a new connection with `Connection: close`.
std::optional<HttpResponse> httpRequest(const Endpoint& endpoint, const std::string& method,
                                        const std::string& target, const std::string& body = "",
                                        const std::vector<std::string>& headers = {},
                                        milliseconds timeout = milliseconds(10000));
std::string buildRequest(const std::string& method, const std::string& target, const std::string& body,
                         const std::vector<std::string>& headers, bool close);

// A small upstream HTTP/1.1 server in a thread, as the proxy's peer: answers every request with
// 200 and body "<method> <path>", after holding it while `hold(path)` is true. Counts what it
// received so tests can wait for "the request reached the upstream".
class TestUpstream {
 public:
  TestUpstream();
  ~TestUpstream();
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;
  uint16_t port() const { return port_; }
  // Requests whose path starts with `prefix` wait until release() (or the server stops).
  void holdPrefix(const std::string& prefix);
  void release();
  // Waits until at least `n` requests arrived.
  bool waitReceived(int n, milliseconds timeout);
  int received() const { return received_.load(); }
  // Connections the upstream saw closed by the proxy while a held request was unanswered.
  int abandoned() const { return abandoned_.load(); }

 private:
  void acceptLoop();
  void serve(Fd fd);
  Fd listen_fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> received_{0};
  std::atomic<int> abandoned_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> held_prefixes_;
  bool released_ = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  Fd wake_read_;
  Fd wake_write_;
};

// A control-protocol v1 server (DESIGN.md "Control protocol") in a thread, standing in for
// solverd's control socket: answers hello and cancel, and keeps every message it received.
class TestControlServer {
 public:
  explicit TestControlServer(std::string path);
  ~TestControlServer();
  TestControlServer(const TestControlServer&) = delete;
  TestControlServer& operator=(const TestControlServer&) = delete;
  const std::string& path() const { return path_; }
  // Waits for a received message (JSON text) containing `needle`.
  std::optional<std::string> waitFor(const std::string& needle, milliseconds timeout);

 private:
  void loop();
  std::string path_;
  Fd listen_fd_;
  Fd wake_read_;
  Fd wake_write_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> messages_;
  std::thread thread_;
};

// A control-protocol v1 frame: 4-byte little-endian length, then the JSON text.
std::string encodeFrame(const std::string& json);

// A listening unix stream socket, held by the test (systemd's role for a .socket unit).
Fd listenUnix(const std::string& path);

// Path of a built binary (TETHER_BIN_DIR); empty when it is not built.
std::string binary(const std::string& name);

}  // namespace tether::service_test
