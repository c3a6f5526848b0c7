#pragma once
// Test support for solverd and the end-to-end tests: a daemon process with its config in a temp
// dir, blocking HTTP and NDJSON clients with deadlines, a cgroup root per test, and the check
// that no worker process and no job cgroup outlives a test.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tether::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string readFile(const std::string& path);
std::string modelPath(const std::string& file);  // tests/solverd/models/<file>
std::string binPath(const std::string& name);    // TETHER_BIN_DIR/<name>

// Waits until `condition` holds, polling every few ms, up to `timeout`.
bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A child process with its stderr captured line by line (a reader thread).
class Process {
 public:
  Process(std::vector<std::string> argv, std::vector<std::string> env = {});
  ~Process();  // SIGKILL and reap if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // The first captured line matching `pattern` (std::regex search), waiting up to `timeout`;
  // `groups` gets the match's sub-expressions ([0] the whole match).
  std::optional<std::string> waitForLine(const std::string& pattern, std::chrono::milliseconds timeout,
                                         std::vector<std::string>* groups = nullptr);
  std::vector<std::string> lines();
  std::string output();
  void signal(int sig);
  // Waits for exit; returns the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool reaped_ = false;
  int status_ = 0;
};

// A per-test cgroup v2 root (under /sys/fs/cgroup/unified or /sys/fs/cgroup). Skips the test
// when none is writable. The destructor-side check lives in NoLeftovers().
std::optional<std::string> makeCgroupRoot(std::string* why);
// Job cgroups (job-*) under `root`.
std::vector<std::string> jobCgroups(const std::string& root);
// Pids of the processes in the job cgroups under `cgroup_root`: the workers of this test's
// daemon (other tests may run workers at the same time, in their own roots).
std::vector<pid_t> workerPids(const std::string& cgroup_root);
// EXPECTs no worker process and no job cgroup remain (waiting briefly for ones being reaped),
// then removes the root.
void expectNoLeftovers(const std::string& cgroup_root);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// A blocking client connection with deadlines: TCP to 127.0.0.1:port, or a unix socket.
class HttpClient {
 public:
  explicit HttpClient(uint16_t port);
  explicit HttpClient(const std::string& unix_path);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void send(const std::string& method, const std::string& target, const std::string& body = {},
            std::vector<std::pair<std::string, std::string>> headers = {});
  // Reads a whole response (Content-Length or chunked).
  std::optional<HttpResponse> response(std::chrono::milliseconds timeout = 30s);
  // Streams: reads the head, then one NDJSON event at a time.
  std::optional<HttpResponse> head(std::chrono::milliseconds timeout = 30s);
  std::optional<nlohmann::json> nextEvent(std::chrono::milliseconds timeout = 30s);
  // Reads events until one with "event" == `name`.
  std::optional<nlohmann::json> eventNamed(const std::string& name, std::chrono::milliseconds timeout = 30s);
  // Server-Sent Events: the next block up to its blank line. A comment block (": heartbeat") has
  // `comment` set and no fields.
  struct SseEvent {
    std::string id;
    std::string event;
    std::string data;
    std::string comment;
    nlohmann::json json() const { return nlohmann::json::parse(data, nullptr, false); }
  };
  std::optional<SseEvent> nextSse(std::chrono::milliseconds timeout = 30s);
  // Reads SSE blocks until an event named `name` (comments skipped).
  std::optional<SseEvent> sseNamed(const std::string& name, std::chrono::milliseconds timeout = 30s);
  // Reads SSE blocks until a heartbeat comment; false when none came in time.
  bool sseHeartbeat(std::chrono::milliseconds timeout);
  // Sends GET /v1/jobs/ID/events asking for SSE, resuming after `last_event_id` when given.
  void watchSse(const std::string& id, std::optional<uint64_t> last_event_id = std::nullopt);
  // watchSse, then checks the response head (200, text/event-stream) and returns the first
  // event, which must be `accepted`; nullopt, with a test failure, otherwise.
  std::optional<SseEvent> watchSseAccepted(const std::string& id);
  void close();
  void reset();  // SO_LINGER 0: RST

 private:
  bool fill(Clock::time_point deadline);
  bool readChunkedPayload(Clock::time_point deadline);
  int fd_ = -1;
  std::string buf_;
  std::string payload_;  // de-chunked stream bytes not yet split into lines
  bool chunked_ = false;
};

// One-shot request on a fresh connection.
std::optional<HttpResponse> httpRequest(uint16_t port, const std::string& method, const std::string& target,
                                        const std::string& body = {},
                                        std::vector<std::pair<std::string, std::string>> headers = {},
                                        std::chrono::milliseconds timeout = 30s);

// A running solverd with its own temp dir, cgroup root and sockets.
class Solverd {
 public:
  struct Options {
    std::string extra_config;  // directives appended to the generated configuration
    bool unix_api = false;     // also listen on unix:<dir>/api.sock
    std::string worker_path;   // default: TETHER_BIN_DIR/solverd-worker
    std::vector<std::string> env = {};  // NAME=VALUE added to the daemon's environment
  };
  Solverd(const std::string& cgroup_root, Options options);
  ~Solverd();  // SIGTERM, then SIGKILL after a deadline

  uint16_t port() const { return port_; }
  const std::string& controlPath() const { return control_path_; }
  const std::string& apiUnixPath() const { return api_unix_path_; }
  const std::string& configPath() const { return config_path_; }
  const std::string& dir() const { return dir_; }
  Process& process() { return *process_; }
  bool started() const { return port_ != 0; }

  nlohmann::json job(const std::string& id);
  // Waits until GET /v1/jobs/ID says finished; returns the description.
  std::optional<nlohmann::json> waitFinished(const std::string& id, std::chrono::milliseconds timeout = 30s);
  std::string metrics();
  // Stops with SIGTERM and returns the exit status (nullopt on timeout).
  std::optional<int> stop(std::chrono::milliseconds timeout = 20s);
  // EXPECTs that the daemon logged no [error] / [critical] line.
  void expectNoErrorsLogged();

 private:
  std::string dir_;
  std::string config_path_;
  std::string control_path_;
  std::string api_unix_path_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

// A NOTIFY_SOCKET for a daemon under test (sd_notify's datagrams), bound at a short temp path.
class NotifySocket {
 public:
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  bool bound() const { return bound_; }
  // "NOTIFY_SOCKET=PATH", for Solverd::Options::env.
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }
  // The next datagram, or an empty string after `timeout`.
  std::string next(std::chrono::milliseconds timeout = 5s);

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

// A fresh request id (32 hex digits).
std::string newId();

// A stand-in `worker_path` that ignores its interrupt frame, SIGINT and SIGTERM (a shell that
// sleeps with both signals ignored): only the ladder's kill ends it. Removed with the object.
class IgnoringWorkerScript {
 public:
  IgnoringWorkerScript();
  ~IgnoringWorkerScript();
  IgnoringWorkerScript(const IgnoringWorkerScript&) = delete;
  IgnoringWorkerScript& operator=(const IgnoringWorkerScript&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Milliseconds from a job's cancel to its kill (GET /v1/jobs/ID's cancel record), -1 if none.
double receivedToKilledMs(const nlohmann::json& job);
// Sends one control frame (a JSON object) and returns the reply, or nullopt.
std::optional<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& frame);
// A cancel frame for `id`.
nlohmann::json cancelFrame(const std::string& id, const std::string& action, uint32_t grace_ms = 5000);

// The model corpus index (tests/solverd/models/models.json).
nlohmann::json modelIndex();

// Base fixture: a cgroup root per test (skip when none is writable), and after each test no
// solverd-worker process and no job cgroup left.
class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::string cgroup_root_;
};

}  // namespace tether::test
