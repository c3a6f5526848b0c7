#pragma once
// Test support for the hostile suite (issue 7): solverd and tether-proxy started together as one
// "solver host" (optionally inside a network namespace), nginx in front, and the measurements the
// suite checks after every case (fd counts, resident memory, worker exits by pidfd, metrics).
// Processes, HTTP clients, cgroup roots and control requests come from the solverd test support
// (tests/solverd/daemon_support.hpp); only what it lacks lives here.
#include "daemon_support.hpp"

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tether::hostile {

using namespace std::chrono_literals;
using tether::test::Clock;
using tether::test::HttpClient;
using tether::test::HttpResponse;
using tether::test::Process;

// ---- measurements of a running process (/proc)

// Open file descriptors of `pid` (entries of /proc/PID/fd), -1 if the process is gone.
int fdCount(pid_t pid);
// VmRSS of `pid` in kB, -1 if unknown.
long vmRssKb(pid_t pid);
// Raises RLIMIT_NOFILE of this process (inherited by the daemons it starts) to `want`, or to the
// hard limit when that is lower; returns the new soft limit.
long raiseFdLimit(long want);

// The sum of every sample of `name` in a Prometheus text exposition whose labels contain all of
// `label_parts` (e.g. {"action=\"interrupt\""}).
double metricSum(const std::string& exposition, const std::string& name, const std::vector<std::string>& label_parts = {});

// A pidfd on a worker, taken while it runs, so that its exit is observed as an event (poll) and
// timed without racing pid reuse.
class ExitWatch {
 public:
  explicit ExitWatch(pid_t pid);
  ~ExitWatch();
  ExitWatch(const ExitWatch&) = delete;
  ExitWatch& operator=(const ExitWatch&) = delete;
  bool valid() const { return fd_ >= 0; }
  // Waits for the exit; returns when it was seen, or nullopt at the deadline.
  std::optional<Clock::time_point> wait(std::chrono::milliseconds timeout);
  bool exited();  // without waiting

 private:
  int fd_ = -1;
};

// ---- one solver host: solverd + tether-proxy beside it, talking over unix sockets in `dir`

struct HostOptions {
  std::string netns;                          // run both daemons in this network namespace
  std::string proxy_listen = "127.0.0.1:0";   // the proxy's public listener
  int workers = 1;
  int queue_size = 100;
  std::string solverd_extra;                  // directives appended to solverd.conf
  std::string worker_path;                    // solverd's worker_path; default: solverd-worker
  std::string proxy_main_extra;               // directives at the top of the proxy's configuration
  std::string proxy_server_extra;             // directives appended to the proxy's server block
  std::string on_disconnect = "interrupt";
  bool access_log = true;
  std::string proxy_control;                  // the proxy's `control` socket; default: solverd's
};

class SolverHost {
 public:
  SolverHost(std::string cgroup_root, HostOptions options);
  ~SolverHost();  // stops both daemons (SIGTERM, then SIGKILL), removes `dir`
  SolverHost(const SolverHost&) = delete;
  SolverHost& operator=(const SolverHost&) = delete;

  // Start (or restart) a daemon on the same sockets; false if it did not log its listeners.
  bool startSolverd();
  bool startProxy();
  // SIGKILL and reap (no drain): what an operator's accident or the OOM killer does.
  void killSolverd();
  void killProxy();
  // SIGTERM and reap; the exit status, nullopt on timeout.
  std::optional<int> stopSolverd(std::chrono::milliseconds timeout = 15s);
  std::optional<int> stopProxy(std::chrono::milliseconds timeout = 15s);

  Process* solverd() { return solverd_.get(); }
  Process* proxy() { return proxy_.get(); }
  uint16_t proxyPort() const { return proxy_port_; }
  const std::string& dir() const { return dir_; }
  const std::string& apiPath() const { return api_path_; }          // solverd's HTTP API
  const std::string& controlPath() const { return control_path_; }  // solverd's control socket
  const std::string& adminPath() const { return admin_path_; }      // the proxy's admin listener
  const std::string& cgroupRoot() const { return cgroup_root_; }

  // GET on solverd's API socket / on the proxy's admin socket.
  std::optional<HttpResponse> solverdGet(const std::string& target);
  std::optional<HttpResponse> proxyAdminGet(const std::string& target);
  std::string solverdMetrics();
  std::string proxyMetrics();
  // solverd's view of one job (GET /v1/jobs/ID), null if unknown.
  nlohmann::json job(const std::string& id);
  // Jobs solverd still holds queued or running.
  double liveJobs();
  // /health through the proxy and on solverd itself both answer 200.
  bool healthy();
  // Proxy fds minus solverd fds. An idle keep-alive connection between them holds one fd on each
  // side, so pooling leaves this unchanged while a leaked client fd in the proxy raises it: the
  // leak check for tests after which the pool may hold more connections than before.
  int fdBalance();
  // The last `n` lines of both daemons' logs, for failure messages.
  std::string tail(size_t n = 20);
  // Lines either daemon logged at [error] or [critical].
  std::vector<std::string> errorLines();

 private:
  std::vector<std::string> prefix() const;
  std::string cgroup_root_;
  HostOptions options_;
  std::string dir_, api_path_, control_path_, admin_path_, solverd_conf_, proxy_conf_;
  std::unique_ptr<Process> solverd_, proxy_;
  uint16_t proxy_port_ = 0;
};

// Writes all of `bytes` to a socket (MSG_NOSIGNAL); false if the peer went away first.
bool sendAll(int fd, const std::string& bytes);

// A streamed solve (Accept: application/x-ndjson) of `model_file` through `client`, waiting for
// the response head and the accepted event; returns the request id (the job id), "" on failure.
std::string startStreamedSolve(HttpClient& client, const std::string& model_file = "market_split_hard.lp",
                               std::chrono::milliseconds timeout = 10s);
// The request bytes of such a solve, for raw-socket clients.
std::string streamedSolveRequest(const std::string& model_file = "market_split_hard.lp");

// ---- network namespaces

// `ip netns add NAME` plus a veth pair: `outer` in the root namespace with `outer_addr`, `inner`
// inside with `inner_addr` (both /30), loopback up. Deleting the namespace deletes the pair.
class Netns {
 public:
  Netns(std::string name, const std::string& outer_addr, const std::string& inner_addr);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
  std::string error_;
};

// Runs a command line through /bin/sh; returns its exit status and fills `output` (stdout+stderr).
int shell(const std::string& command, std::string* output = nullptr);

// nginx in the root namespace with a configuration of its defaults plus `upstream_servers`
// round-robin behind `listen unix:DIR/nginx.sock`.
class Nginx {
 public:
  Nginx(const std::vector<std::string>& upstream_servers);
  ~Nginx();
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;
  bool started() const { return started_; }
  const std::string& socketPath() const { return socket_path_; }
  Process* process() { return process_.get(); }

 private:
  std::string dir_, socket_path_;
  std::unique_ptr<Process> process_;
  bool started_ = false;
};

// Fixture: a cgroup v2 root per test (skip when none is writable, or when a binary is missing);
// after the test no worker process or job cgroup is left.
class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Another cgroup root for a second daemon, checked and removed in TearDown too ("" on failure).
  std::string extraCgroupRoot();
  std::string cgroup_root_;
  std::vector<std::string> extra_roots_;
};

}  // namespace tether::hostile
