#pragma once
// Test fixtures for tether-proxy's integration tests: the real binary in a child process, a small
// upstream HTTP server with controllable behaviour, a control-socket listener that decodes cancel
// frames, and raw-socket clients that can close, reset, half-close or stall.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tether::proxy::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `condition` every 2 ms until it holds or `timeout` passes (tests only).
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5000ms);

// A temporary directory under /tmp with a short path (unix sockets), removed at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// What the upstream saw of one request.
struct UpstreamRequest {
  std::string method, path, request_id;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool completed = false;       // the full response was written
  bool peer_closed = false;     // the proxy closed the connection before the response ended
  uint64_t connection = 0;      // which upstream connection carried it
};

// Paths: /fast (200 "hello"), /slow/MS (answers after MS ms unless the proxy closes first),
// /stream/N/MS (N chunks, one every MS ms), /echo (the body back), /hold (never answers),
// /close (closes without answering), /big/N (N MiB body). Anything else: 200 "ok".
class TestUpstream {
 public:
  TestUpstream();
  ~TestUpstream();
  uint16_t port() const { return port_; }
  std::vector<UpstreamRequest> requests();
  std::optional<UpstreamRequest> find(const std::string& request_id);
  uint64_t connections() const { return connections_.load(); }
  // Connections the proxy closed between requests (idle keep-alive connections).
  uint64_t closedIdle() const { return closed_idle_.load(); }
  bool waitFor(const std::function<bool(const std::vector<UpstreamRequest>&)>& pred,
               std::chrono::milliseconds timeout = 5000ms);

 private:
  void acceptLoop();
  void serve(int fd, uint64_t conn_no);
  size_t record(UpstreamRequest r);
  void update(size_t index, const std::function<void(UpstreamRequest&)>& f);
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> closed_idle_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> workers_;
  std::vector<int> fds_;
  std::vector<UpstreamRequest> requests_;
};

// A control socket (protocol v1) that records every frame it receives and acks cancels.
class ControlListener {
 public:
  explicit ControlListener(std::string path);
  ~ControlListener();
  const std::string& path() const { return path_; }
  std::vector<nlohmann::json> cancels();
  std::vector<nlohmann::json> frames();
  bool waitForCancels(size_t n, std::chrono::milliseconds timeout = 5000ms);
  // Monotonic ns at which each cancel frame was fully read.
  std::vector<uint64_t> cancelArrivalNs();

 private:
  void loop();
  std::string path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<nlohmann::json> frames_;
  std::vector<uint64_t> cancel_ns_;
};

// The real tether-proxy binary with a configuration file; stderr is collected line by line.
class ProxyProcess {
 public:
  ProxyProcess(const std::string& config_path, const std::vector<std::string>& extra_args = {});
  ~ProxyProcess();
  // Waits for `count` `listening on` lines; returns false if the process died or timed out.
  bool waitListening(size_t count, std::chrono::milliseconds timeout = 5000ms);
  // The port of the n-th TCP `listening on` line.
  uint16_t port(size_t n = 0);
  std::vector<std::string> lines();
  std::vector<std::string> linesContaining(const std::string& needle);
  bool waitForLine(const std::string& needle, std::chrono::milliseconds timeout = 5000ms);
  // Lines logged at [error] or worse, for the "no unexpected errors" check.
  std::vector<std::string> errorLines();
  pid_t pid() const { return pid_; }
  // SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop(std::chrono::milliseconds timeout = 5000ms);

 private:
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
  int status_ = -1;
  bool exited_ = false;
};

// A blocking client socket with deadlines.
class Client {
 public:
  explicit Client(uint16_t port);             // 127.0.0.1:port
  explicit Client(const std::string& unix_path);
  ~Client();
  int fd() const { return fd_; }
  bool send(const std::string& bytes);
  // Reads until one full response (Content-Length, chunked, or close-delimited) is in, or the
  // deadline passes. Returns the raw response text; "" on timeout/close without data.
  std::string readResponse(std::chrono::milliseconds timeout = 5000ms);
  // Reads until the peer closes (returns everything read) or the deadline passes.
  std::string readUntilClosed(std::chrono::milliseconds timeout = 5000ms);
  std::string readSome(std::chrono::milliseconds timeout = 5000ms);
  void close();
  void reset();      // SO_LINGER 0: the kernel sends RST
  void halfClose();  // shutdown(SHUT_WR)

 private:
  int fd_ = -1;
  std::string buffered_;
};

// A client in its own network namespace behind a veth pair, whose link we can cut: the client
// then vanishes without FIN or RST, as a laptop that lost its network does. Needs root and
// iproute2; ok() says whether the namespace could be made.
class VethClient {
 public:
  VethClient();
  ~VethClient();
  bool ok() const { return ok_; }
  std::string proxyAddress() const;  // the root namespace's end
  std::string clientAddress() const;  // the namespace's end
  // Connects from inside the namespace (a socket keeps the namespace it was created in).
  bool connectTo(uint16_t port);
  bool send(const std::string& s);
  bool cutLink();

 private:
  static bool run(const std::string& cmd);
  std::string name_, subnet_;
  bool ok_ = false;
  int fd_ = -1;
};

// A TCP port on 127.0.0.1 that nobody listens on right now (bound, then released).
uint16_t unusedPort();

// Status code of a raw response ("HTTP/1.1 200 OK..." -> 200), 0 if none.
int statusOf(const std::string& response);
// A header's value from a raw response (case-insensitive name), "" if absent.
std::string headerOf(const std::string& response, const std::string& name);
// The body of a raw response (after the blank line; chunked bodies decoded).
std::string bodyOf(const std::string& response);

// A proxy configuration for tests: one server on 127.0.0.1:0, the test upstream, the control
// socket, short timeouts. `location_extra` goes into the location block.
std::string basicConfig(uint16_t upstream_port, const std::string& control_path,
                        const std::string& on_disconnect = "interrupt",
                        const std::string& location_extra = "", const std::string& server_extra = "");

}  // namespace tether::proxy::test
