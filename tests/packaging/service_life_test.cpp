// Service life of the three daemons as systemd runs them (DESIGN.md "Service life", issue 6):
// sd_notify messages and their order, the watchdog, SIGHUP reloads, SIGTERM drains, socket
// activation with a restart, and the shutdown order proxy-then-solverd. Each test runs the real
// binaries from TETHER_BIN_DIR and skips, saying so, when one is not built.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "service_harness.hpp"

namespace tether::service_test {
namespace {

// Listening sockets (TCP, TCP6, unix) that process `pid` holds right now, from procfs: its fds'
// socket inodes matched against the LISTEN rows of its network namespace's tables.
int listeningSockets(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::vector<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0) inodes.push_back(target.substr(8, target.size() - 9));
  }
  auto held = [&](const std::string& inode) { return std::find(inodes.begin(), inodes.end(), inode) != inodes.end(); };
  int n = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state == "0A" && held(inode)) ++n;  // TCP_LISTEN
    }
  }
  std::ifstream unix_table(proc + "/net/unix");
  std::string line;
  std::getline(unix_table, line);
  while (std::getline(unix_table, line)) {
    std::istringstream f(line);
    std::string num, refs, protocol, flags, type, st, inode;
    f >> num >> refs >> protocol >> flags >> type >> st >> inode;
    if (flags == "00010000" && held(inode)) ++n;  // __SO_ACCEPTCON: listening
  }
  return n;
}

constexpr milliseconds kStart{15000};
constexpr milliseconds kEvent{10000};

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string describeExit(std::optional<int> status) {
  if (!status) return "still running";
  if (WIFEXITED(*status)) return "exit " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return "killed by signal " + std::to_string(WTERMSIG(*status));
  return "status " + std::to_string(*status);
}

bool exitedZero(std::optional<int> status) { return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0; }

std::string joined(const std::vector<std::string>& messages) {
  std::string out;
  for (const auto& m : messages) {
    std::string one = m;
    for (char& c : one) c = c == '\n' ? ' ' : c;
    out += "  [" + one + "]\n";
  }
  return out;
}

// Index of the first message containing `needle` at or after `from`, -1 when none.
int indexOf(const std::vector<std::string>& messages, const std::string& needle, int from = 0) {
  for (int i = from; i < static_cast<int>(messages.size()); ++i) {
    if (messages[static_cast<size_t>(i)].find(needle) != std::string::npos) return i;
  }
  return -1;
}

// What one daemon needs to run in a test: its binary and a configuration for a directory.
struct DaemonKind {
  std::string name;        // binary name
  std::string conf_name;   // file name of its configuration
  std::function<std::string(const TempDir&)> config;
};

void PrintTo(const DaemonKind& kind, std::ostream* os) { *os << kind.name; }

std::string proxyConfig(const TempDir& dir, uint16_t upstream_port, const std::string& shutdown_timeout,
                        const std::string& listen, const std::string& extra_locations = "") {
  return "error_log stderr info;\n"
         "shutdown_timeout " + shutdown_timeout + ";\n"
         "admin { listen 127.0.0.1:0; }\n"
         "upstream backend {\n"
         "    server 127.0.0.1:" + std::to_string(upstream_port) + ";\n"
         "    keepalive 8;\n"
         "    control unix:" + dir.file("control.sock") + ";\n"
         "}\n"
         "server {\n"
         "    listen " + listen + ";\n"
         "    access_log stderr;\n"
         "    location /slow { proxy_pass http://backend; on_disconnect interrupt; kill_after 1s; }\n"
         "    location /fast { proxy_pass http://backend; on_disconnect none; }\n" +
         extra_locations +
         "}\n";
}

std::string solverdConfig(const TempDir& dir, const std::string& shutdown_timeout, const std::string& listen,
                          const std::string& max_grace = "2s") {
  return "error_log stderr info;\n"
         "listen " + listen + ";\n"
         "control { listen unix:" + dir.file("solverd-control.sock") + "; }\n"
         "admin { listen 127.0.0.1:0; }\n"
         "workers 1;\n"
         "shutdown_timeout " + shutdown_timeout + ";\n"
         "max_grace " + max_grace + ";\n"
         "worker_path " + std::string(TETHER_BIN_DIR) + "/solverd-worker;\n";
}

std::string agentConfig(const TempDir& dir) {
  return "error_log stderr info;\n"
         "control { listen unix:" + dir.file("agent.sock") + "; }\n"
         "admin { listen 127.0.0.1:0; }\n";
}

// One running daemon with its notify socket: the pieces every test below starts with.
struct Running {
  std::unique_ptr<NotifyListener> notify;
  std::unique_ptr<Daemon> daemon;
  std::string conf_path;
};

Running start(const TempDir& dir, const std::string& binary_path, const std::string& conf_name,
              const std::string& config_text, std::vector<std::pair<std::string, std::string>> env = {},
              std::vector<PassedFd> fds = {}, const std::string& log_name = "") {
  Running r;
  std::string tag = log_name.empty() ? conf_name : log_name;
  r.notify = std::make_unique<NotifyListener>(dir.file(tag + ".notify"));
  r.conf_path = dir.write(conf_name, config_text);
  env.emplace_back("NOTIFY_SOCKET", r.notify->path());
  r.daemon = std::make_unique<Daemon>(SpawnOptions{
      {binary_path, "-c", r.conf_path}, env, std::move(fds), dir.file(tag + ".log")});
  return r;
}

#define REQUIRE_BINARY(var, name)                                              \
  const std::string var = binary(name);                                        \
  if (var.empty()) GTEST_SKIP() << name " is not built in " TETHER_BIN_DIR " yet"

// ---------------------------------------------------------------------------------------------
// The harness itself, against systemd's own tools and plain sockets: what the daemon tests
// below rely on works before any daemon is involved.

TEST(Harness, NotifyListenerReceivesWhatSystemdNotifySends) {
  if (::access("/usr/bin/systemd-notify", X_OK) != 0) GTEST_SKIP() << "systemd-notify is not installed";
  TempDir dir;
  NotifyListener notify(dir.file("n.sock"));
  // --pid=self: it would name its parent otherwise; --no-block: no BARRIER=1 round trip.
  Daemon d(SpawnOptions{{"/usr/bin/systemd-notify", "--pid=self", "--no-block", "--ready", "--status=3 jobs"},
                        {{"NOTIFY_SOCKET", notify.path()}},
                        {},
                        dir.file("n.log")});
  auto message = notify.waitFor("READY=1", kEvent);
  ASSERT_TRUE(message) << d.log();
  EXPECT_NE(message->find("STATUS=3 jobs"), std::string::npos) << *message;
  EXPECT_TRUE(exitedZero(d.waitExit(kEvent))) << d.log();
  EXPECT_TRUE(d.waitNoProcessLeft(kEvent).empty());
}

TEST(Harness, PassesListenFdsToTheExecedProcessAsSystemdDoes) {
  TempDir dir;
  Fd held = listenUnix(dir.file("s.sock"));
  Daemon d(SpawnOptions{{"/bin/sh", "-c", "echo \"pid=$$ LISTEN_PID=$LISTEN_PID fds=$LISTEN_FDS names=$LISTEN_FDNAMES\"; "
                                          "readlink /proc/self/fd/3 >/dev/null && echo fd3=open"},
                        {},
                        {PassedFd{held.get(), "http"}},
                        dir.file("s.log")});
  EXPECT_TRUE(exitedZero(d.waitExit(kEvent))) << d.log();
  std::string log = d.log();
  std::string pid = std::to_string(d.pid());
  EXPECT_NE(log.find("pid=" + pid + " LISTEN_PID=" + pid + " fds=1 names=http"), std::string::npos) << log;
  EXPECT_NE(log.find("fd3=open"), std::string::npos) << log;
}

TEST(Harness, UpstreamHoldsUntilReleasedAndControlServerAcksCancels) {
  TestUpstream upstream;
  Endpoint e;
  e.host = "127.0.0.1";
  e.port = upstream.port();
  auto fast = httpRequest(e, "GET", "/fast/x");
  ASSERT_TRUE(fast);
  EXPECT_EQ(fast->status, 200);
  EXPECT_EQ(fast->body, "GET /fast/x");
  upstream.holdPrefix("/slow");
  auto held = std::async(std::launch::async, [&] { return httpRequest(e, "GET", "/slow/y"); });
  ASSERT_TRUE(upstream.waitReceived(2, kEvent));
  EXPECT_EQ(held.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  upstream.release();
  auto slow = held.get();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->body, "GET /slow/y");

  TempDir dir;
  TestControlServer control(dir.file("c.sock"));
  Endpoint c;
  c.unix_path = control.path();
  Fd fd = connectTo(c);
  ASSERT_TRUE(fd);
  std::string frame = R"({"type":"cancel","id":"ab","action":"interrupt","reason":"shutdown"})";
  std::string bytes = encodeFrame(frame);
  ASSERT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto got = control.waitFor("\"reason\":\"shutdown\"", kEvent);
  ASSERT_TRUE(got);
  char reply[256];
  EXPECT_GT(::read(fd.get(), reply, sizeof(reply)), 4);
}

// ---------------------------------------------------------------------------------------------
// The same notify contract for every daemon.

class EachDaemon : public ::testing::TestWithParam<DaemonKind> {
 protected:
  void SetUp() override {
    path_ = binary(GetParam().name);
    if (path_.empty()) GTEST_SKIP() << GetParam().name << " is not built in " TETHER_BIN_DIR " yet";
  }
  Running startIt(std::vector<std::pair<std::string, std::string>> env = {}) {
    return start(dir_, path_, GetParam().conf_name, GetParam().config(dir_), std::move(env));
  }
  // SIGTERM, then: STOPPING=1, exit 0, nothing left.
  void stopCleanly(Running& r) {
    auto sigterm_at = Clock::now();
    r.daemon->signal(SIGTERM);
    EXPECT_TRUE(r.notify->waitFor("STOPPING=1", kEvent)) << "no STOPPING=1 after SIGTERM; got:\n"
                                                         << joined(r.notify->all());
    auto status = r.daemon->waitExit(kEvent);
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at);
    EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << r.daemon->log();
    // Nothing in flight: the stop is immediate, not a wait for shutdown_timeout (5 s here).
    EXPECT_LT(took, milliseconds(4000)) << GetParam().name << " idled through its shutdown_timeout";
    EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty());
    std::cout << GetParam().name << " exited " << took.count() << " ms after SIGTERM\n";
  }
  TempDir dir_;
  std::string path_;
};

TEST_P(EachDaemon, NotifiesReadyOnlyAfterListeningThenStoppingOnSigtermAndExitsZero) {
  Running r = startIt();
  auto ready = r.notify->waitFor("READY=1", kStart);
  ASSERT_TRUE(ready) << "no READY=1; log:\n" << r.daemon->log();
  // The order, checked where it happens: when READY=1 arrives the daemon already holds its
  // listening sockets (the log, read by another thread, may lag behind the notify socket).
  EXPECT_GT(listeningSockets(r.daemon->pid()), 0) << "READY=1 came before the daemon listened";
  EXPECT_TRUE(r.daemon->waitForLog("listening on ", kEvent)) << r.daemon->log();
  int first_status = indexOf(r.notify->all(), "STATUS=");
  if (first_status < 0) {
    EXPECT_TRUE(r.notify->waitFor("STATUS=", milliseconds(3000))) << "no STATUS= with live counts";
  }
  stopCleanly(r);
  auto messages = r.notify->all();
  int ready_at = indexOf(messages, "READY=1");
  int stopping_at = indexOf(messages, "STOPPING=1");
  EXPECT_LT(ready_at, stopping_at) << joined(messages);
  EXPECT_EQ(indexOf(messages, "READY=1", stopping_at + 1), -1) << "READY=1 after STOPPING=1:\n" << joined(messages);
  std::cout << "notifications of " << GetParam().name << ":\n" << joined(messages);
}

TEST_P(EachDaemon, PingsTheWatchdogWhenWatchdogUsecIsSet) {
  Running r = startIt({{"WATCHDOG_USEC", "300000"}});
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
  // Pings every 150 ms: three within two seconds even on a loaded machine.
  auto deadline = Clock::now() + milliseconds(2000);
  while (r.notify->count("WATCHDOG=1") < 3 && Clock::now() < deadline) r.notify->waitFor("WATCHDOG=1", milliseconds(200));
  EXPECT_GE(r.notify->count("WATCHDOG=1"), 3) << joined(r.notify->all());
  stopCleanly(r);
}

TEST_P(EachDaemon, SighupNotifiesReloadingThenReadyAndSurvivesABrokenConfig) {
  Running r = startIt();
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
  r.daemon->signal(SIGHUP);
  ASSERT_TRUE(r.notify->waitFor("RELOADING=1", kEvent)) << joined(r.notify->all()) << r.daemon->log();
  ASSERT_TRUE(r.notify->waitFor("READY=1", kEvent)) << "no READY=1 after RELOADING=1:\n" << joined(r.notify->all());

  // A broken file: the error names file:line, the daemon keeps running on the old configuration.
  dir_.write(GetParam().conf_name, GetParam().config(dir_) + "lisen 1;\n");
  int broken_line = 0;
  for (char c : GetParam().config(dir_)) broken_line += c == '\n';
  ++broken_line;
  r.daemon->signal(SIGHUP);
  std::string where = r.conf_path + ":" + std::to_string(broken_line);
  EXPECT_TRUE(r.daemon->waitForLog(where, kEvent)) << "no error naming " << where << "; log:\n" << r.daemon->log();
  // systemd leaves the reloading state only on READY=1, whatever the outcome.
  EXPECT_TRUE(r.notify->waitFor("READY=1", kEvent)) << joined(r.notify->all());
  EXPECT_FALSE(r.daemon->waitExit(milliseconds(200))) << "exited after a broken reload";
  stopCleanly(r);
}

INSTANTIATE_TEST_SUITE_P(
    ServiceLife, EachDaemon,
    ::testing::Values(
        DaemonKind{"tether-proxy", "proxy.conf",
                   [](const TempDir& dir) { return proxyConfig(dir, 9, "5s", "unix:" + dir.file("http.sock")); }},
        DaemonKind{"solverd", "solverd.conf",
                   [](const TempDir& dir) { return solverdConfig(dir, "5s", "unix:" + dir.file("api.sock")); }},
        DaemonKind{"tether-agent", "agent.conf", [](const TempDir& dir) { return agentConfig(dir); }}),
    [](const ::testing::TestParamInfo<DaemonKind>& param_info) {
      std::string n = param_info.param.name;
      for (char& c : n) c = c == '-' ? '_' : c;
      return n;
    });

// ---------------------------------------------------------------------------------------------
// tether-proxy: drains, reloads and restarts around requests in flight.

class ProxyService : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy_ = binary("tether-proxy");
    if (proxy_.empty()) GTEST_SKIP() << "tether-proxy is not built in " TETHER_BIN_DIR " yet";
    control_ = std::make_unique<TestControlServer>(dir_.file("control.sock"));
    http_.unix_path = dir_.file("http.sock");
  }
  void TearDown() override {
    upstream_.release();
  }
  Running startProxy(const std::string& shutdown_timeout, const std::string& extra = "") {
    Running r = start(dir_, proxy_, "proxy.conf",
                      proxyConfig(dir_, upstream_.port(), shutdown_timeout, "unix:" + http_.unix_path, extra));
    EXPECT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
    return r;
  }
  // Starts `n` requests to `path` on their own connections; returns their futures.
  std::vector<std::future<std::optional<HttpResponse>>> inFlight(int n, const std::string& path) {
    std::vector<std::future<std::optional<HttpResponse>>> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(std::async(std::launch::async, [this, path] { return httpRequest(http_, "GET", path); }));
    }
    return out;
  }
  TempDir dir_;
  std::string proxy_;
  TestUpstream upstream_;
  std::unique_ptr<TestControlServer> control_;
  Endpoint http_;
};

TEST_F(ProxyService, SigtermDrainsInFlightRequestsWithConnectionCloseAndAcceptsNoNewConnection) {
  Running r = startProxy("10s");
  upstream_.holdPrefix("/slow");
  auto requests = inFlight(3, "/slow/job");
  ASSERT_TRUE(upstream_.waitReceived(3, kEvent)) << r.daemon->log();

  auto sigterm_at = Clock::now();
  r.daemon->signal(SIGTERM);
  ASSERT_TRUE(r.notify->waitFor("STOPPING=1", kEvent)) << joined(r.notify->all());
  // A drain with requests in flight asks systemd for shutdown_timeout (10s) and some beyond
  // TimeoutStopSec=.
  auto extend = r.notify->waitFor("EXTEND_TIMEOUT_USEC=", kEvent);
  ASSERT_TRUE(extend) << joined(r.notify->all());
  const size_t at = extend->find("EXTEND_TIMEOUT_USEC=");
  EXPECT_GE(std::stoull(extend->substr(at + 20)), 10'000'000ULL) << *extend;
  // Stopped accepting: the listener is closed, a new client is refused at once.
  int error = 0;
  auto deadline = Clock::now() + kEvent;
  while (connectTo(http_, &error) && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  // Refused, or the socket file is gone with the listener: either way nothing is accepted.
  EXPECT_TRUE(error == ECONNREFUSED || error == ENOENT) << "a new connection was still accepted during the drain";

  upstream_.release();
  for (auto& f : requests) {
    auto response = f.get();
    ASSERT_TRUE(response) << "an in-flight request was lost in the drain (the upstream saw "
                          << upstream_.abandoned() << " connections closed); log:\n" << r.daemon->log();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "GET /slow/job");
    EXPECT_EQ(response->header("connection"), "close") << "a drained response must say Connection: close";
  }
  auto status = r.daemon->waitExit(kEvent);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at);
  EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << r.daemon->log();
  EXPECT_LT(took, milliseconds(10000)) << "the drain outlasted shutdown_timeout";
  EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty());
  std::cout << "drained 3 in-flight requests, exit after " << took.count() << " ms\n";
}

TEST_F(ProxyService, SigtermPastShutdownTimeoutCancelsWithReasonShutdownAndLogs499) {
  Running r = startProxy("1s");
  upstream_.holdPrefix("/slow");
  auto requests = inFlight(1, "/slow/forever");
  ASSERT_TRUE(upstream_.waitReceived(1, kEvent)) << r.daemon->log();
  auto sigterm_at = Clock::now();
  r.daemon->signal(SIGTERM);

  auto cancel = control_->waitFor("\"cancel\"", kEvent);
  ASSERT_TRUE(cancel) << "no cancel frame after shutdown_timeout; log:\n" << r.daemon->log();
  EXPECT_NE(cancel->find("\"reason\":\"shutdown\""), std::string::npos) << *cancel;
  EXPECT_NE(cancel->find("\"action\":\"interrupt\""), std::string::npos) << *cancel;
  auto status = r.daemon->waitExit(kEvent);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at);
  EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << r.daemon->log();
  EXPECT_GE(took, milliseconds(900)) << "cancelled before shutdown_timeout";
  std::string log = r.daemon->log();
  bool logged_499_shutdown = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    logged_499_shutdown |= line.find(" 499 ") != std::string::npos && line.find("shutdown") != std::string::npos;
  }
  EXPECT_TRUE(logged_499_shutdown) << "no access log line with 499 and reason shutdown:\n" << log;
  requests[0].wait();
  EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty());
  std::cout << "cancel frame: " << *cancel << "\nexit after " << took.count() << " ms\n";
}

TEST_F(ProxyService, SighupWithChangedLocationLeavesTheInFlightRequestAlone) {
  Running r = startProxy("10s");
  auto before = httpRequest(http_, "GET", "/added");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 404) << "no location /added yet";

  upstream_.holdPrefix("/slow");
  auto requests = inFlight(1, "/slow/during-reload");
  ASSERT_TRUE(upstream_.waitReceived(1, kEvent)) << r.daemon->log();
  dir_.write("proxy.conf", proxyConfig(dir_, upstream_.port(), "10s", "unix:" + http_.unix_path,
                                       "    location /added { proxy_pass http://backend; }\n"));
  r.daemon->signal(SIGHUP);
  ASSERT_TRUE(r.notify->waitFor("RELOADING=1", kEvent)) << r.daemon->log();
  ASSERT_TRUE(r.notify->waitFor("READY=1", kEvent)) << r.daemon->log();

  auto after = httpRequest(http_, "GET", "/added");
  ASSERT_TRUE(after) << r.daemon->log();
  EXPECT_EQ(after->status, 200) << "the new location is not in force after SIGHUP";
  EXPECT_EQ(after->body, "GET /added");
  upstream_.release();
  auto in_flight = requests[0].get();
  ASSERT_TRUE(in_flight) << "the in-flight request was disturbed by the reload; log:\n" << r.daemon->log();
  EXPECT_EQ(in_flight->status, 200);
  EXPECT_EQ(in_flight->body, "GET /slow/during-reload");
  EXPECT_EQ(upstream_.abandoned(), 0);
}

TEST_F(ProxyService, SighupWithBrokenConfigLogsFileLineAndKeepsServingTheOldOne) {
  Running r = startProxy("10s");
  upstream_.holdPrefix("/slow");
  auto requests = inFlight(1, "/slow/during-reload");
  ASSERT_TRUE(upstream_.waitReceived(1, kEvent));
  std::string good = proxyConfig(dir_, upstream_.port(), "10s", "unix:" + http_.unix_path);
  // Line 3 of the new file is the broken one.
  std::string broken = good.substr(0, good.find('\n', good.find('\n') + 1) + 1) + "    lisen 8080;\n" +
                       good.substr(good.find('\n', good.find('\n') + 1) + 1);
  dir_.write("proxy.conf", broken);
  r.daemon->signal(SIGHUP);
  std::string where = r.conf_path + ":3";
  EXPECT_TRUE(r.daemon->waitForLog(where, kEvent)) << "no error naming " << where << ":\n" << r.daemon->log();
  EXPECT_TRUE(r.daemon->waitForLog("unknown directive \"lisen\"", kEvent)) << r.daemon->log();

  auto fast = httpRequest(http_, "GET", "/fast/still-there");
  ASSERT_TRUE(fast) << r.daemon->log();
  EXPECT_EQ(fast->status, 200) << "the old configuration is no longer in force";
  upstream_.release();
  auto in_flight = requests[0].get();
  ASSERT_TRUE(in_flight);
  EXPECT_EQ(in_flight->status, 200);
  EXPECT_FALSE(r.daemon->exited());
}

// systemd holds tether-proxy.socket's listener across a restart: the old process stops
// accepting, the new one takes over the same socket, and a client that keeps connecting all the
// while is never refused. The test holds the socket as systemd would and passes it with
// LISTEN_FDS/LISTEN_FDNAMES=http to both processes.
TEST_F(ProxyService, RestartOnTheSameActivatedSocketRefusesNoConnection) {
  Fd held = listenUnix(http_.unix_path);
  auto proxyWithSocket = [&](const std::string& tag) {
    Running r = start(dir_, proxy_, "proxy.conf", proxyConfig(dir_, upstream_.port(), "5s", "systemd:http"), {},
                      {PassedFd{held.get(), "http"}}, tag);
    EXPECT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
    return r;
  };
  Running first = proxyWithSocket("first");
  // The activated socket is logged with its real address, as every listener is.
  EXPECT_TRUE(first.daemon->waitForLog("listening on unix:" + http_.unix_path, kEvent)) << first.daemon->log();

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::atomic<int> failed{0};
  std::thread client([&] {
    while (!stop) {
      int error = 0;
      Fd fd = connectTo(http_, &error);
      if (!fd) {
        ++refused;
        continue;
      }
      auto response = exchange(fd.get(), buildRequest("GET", "/fast/ping", "", {}, true), kEvent);
      if (response && response->status == 200) {
        ++ok;
      } else {
        ++failed;
      }
    }
  });
  auto waitOk = [&](int n) {
    auto deadline = Clock::now() + kEvent;
    while (ok < n && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
    return ok >= n;
  };
  EXPECT_TRUE(waitOk(20));
  first.daemon->signal(SIGTERM);
  Running second = proxyWithSocket("second");
  auto first_status = first.daemon->waitExit(kEvent);
  int served_before = ok;
  EXPECT_TRUE(waitOk(served_before + 20)) << "the new process serves nothing:\n" << second.daemon->log();
  stop = true;
  client.join();
  EXPECT_TRUE(exitedZero(first_status)) << describeExit(first_status) << "\n" << first.daemon->log();
  EXPECT_EQ(refused, 0) << "connections refused during the restart";
  EXPECT_EQ(failed, 0) << "requests that got no 200 during the restart";
  second.daemon->signal(SIGTERM);
  EXPECT_TRUE(exitedZero(second.daemon->waitExit(kEvent))) << second.daemon->log();
  std::cout << ok << " requests served across the restart, " << refused << " refused, " << failed << " failed\n";
}

// The real systemd-socket-activate with a named unix socket, as the brief of issue 6 asks.
TEST_F(ProxyService, StartsUnderSystemdSocketActivateWithANamedSocket) {
  const std::string activate = "/usr/bin/systemd-socket-activate";
  if (::access(activate.c_str(), X_OK) != 0) GTEST_SKIP() << "systemd-socket-activate is not installed";
  std::string conf = dir_.write("proxy.conf", proxyConfig(dir_, upstream_.port(), "5s", "systemd:http"));
  NotifyListener notify(dir_.file("activate.notify"));
  Daemon d(SpawnOptions{{activate, "-l", http_.unix_path, "--fdname=http", "-E", "NOTIFY_SOCKET=" + notify.path(),
                         proxy_, "-c", conf},
                        {},
                        {},
                        dir_.file("activate.log")});
  // systemd-socket-activate binds, listens, then execs the proxy on the first connection (same
  // pid). The socket file appears at bind, before listen: a connect in between is refused and
  // starts nothing, so the first request is retried until a connection is taken.
  auto deadline = Clock::now() + kEvent;
  auto response = httpRequest(http_, "GET", "/fast/activated");
  while (!response && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
    response = httpRequest(http_, "GET", "/fast/activated");
  }
  ASSERT_TRUE(response) << d.log();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(notify.waitFor("READY=1", kEvent)) << d.log();
  d.signal(SIGTERM);
  auto status = d.waitExit(kEvent);
  EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << d.log();
}

// ---------------------------------------------------------------------------------------------
// tether-agent: its control socket comes from tether-agent.socket (`listen systemd:control`).

// Starts `binary` with a control socket held as systemd holds it (`listen systemd:control`) and
// checks that it answers hello there as `server`, then stops cleanly.
void expectHelloOnControlSocketPassedBySystemd(const std::string& binary, const std::string& conf_name,
                                               const std::string& conf_head, const std::string& server) {
  TempDir dir;
  Endpoint control;
  control.unix_path = dir.file("control.sock");
  Fd held = listenUnix(control.unix_path);
  Running r = start(dir, binary, conf_name, conf_head + "control { listen systemd:control; }\n", {},
                    {PassedFd{held.get(), "control"}});
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
  EXPECT_TRUE(r.daemon->waitForLog("listening on unix:" + control.unix_path, kEvent)) << r.daemon->log();
  Fd fd = connectTo(control);
  ASSERT_TRUE(fd);
  std::string hello = R"({"type":"hello","version":1,"role":"proxy"})";
  std::string frame = encodeFrame(hello);
  ASSERT_EQ(::write(fd.get(), frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  std::string reply;
  char buf[512];
  auto deadline = Clock::now() + kEvent;
  while (reply.find("\"hello\"") == std::string::npos && Clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  EXPECT_NE(reply.find("\"hello\""), std::string::npos) << "reply: " << reply << "\n" << r.daemon->log();
  EXPECT_NE(reply.find("\"server\":\"" + server + "\""), std::string::npos) << reply;
  r.daemon->signal(SIGTERM);
  EXPECT_TRUE(exitedZero(r.daemon->waitExit(kEvent))) << r.daemon->log();
  EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty());
}

TEST(AgentService, AnswersHelloOnTheControlSocketPassedBySystemd) {
  REQUIRE_BINARY(agent, "tether-agent");
  expectHelloOnControlSocketPassedBySystemd(agent, "agent.conf", "error_log stderr info;\nadmin { listen 127.0.0.1:0; }\n",
                                            "tether-agent");
}

// solverd's control block takes systemd:NAME too (solverd.socket can hold it across restarts).
TEST(SolverdService, AnswersHelloOnTheControlSocketPassedBySystemd) {
  REQUIRE_BINARY(solverd, "solverd");
  expectHelloOnControlSocketPassedBySystemd(
      solverd, "solverd.conf",
      "error_log stderr info;\nlisten 127.0.0.1:0;\nworker_path " + std::string(TETHER_BIN_DIR) + "/solverd-worker;\n",
      "solverd");
}

// ---------------------------------------------------------------------------------------------
// solverd: the drain of running jobs.

// Running means a worker exists: polls solverd's job list until a job shows up as running.
::testing::AssertionResult waitJobRunning(const Endpoint& api) {
  auto deadline = Clock::now() + kEvent;
  std::string last = "(no answer)";
  while (Clock::now() < deadline) {
    auto jobs = httpRequest(api, "GET", "/v1/jobs");
    if (jobs) last = std::to_string(jobs->status) + " " + jobs->body;
    if (jobs && jobs->body.find("\"state\":\"running\"") != std::string::npos) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(milliseconds(20));
  }
  return ::testing::AssertionFailure() << "no running job; last GET /v1/jobs: " << last;
}

std::string hardModel() { return readFile(std::string(TETHER_SOURCE_DIR) + "/tests/solverd/models/market_split_hard.lp"); }

TEST(SolverdService, SigtermPastShutdownTimeoutInterruptsTheRunningJobAndAnswers503ToNewOnes) {
  REQUIRE_BINARY(solverd, "solverd");
  REQUIRE_BINARY(worker, "solverd-worker");
  TempDir dir;
  Endpoint api;
  api.unix_path = dir.file("api.sock");
  Running r = start(dir, solverd, "solverd.conf", solverdConfig(dir, "2s", "unix:" + api.unix_path));
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();

  auto running = std::async(std::launch::async, [&] {
    return httpRequest(api, "POST", "/v1/solve?solver=cbc&time_limit=120", hardModel(),
                       {"Content-Type: text/x-lp"}, milliseconds(60000));
  });
  ASSERT_TRUE(waitJobRunning(api)) << "solverd: " << describeExit(r.daemon->waitExit(milliseconds(0))) << "\n"
                                   << r.daemon->log();

  auto sigterm_at = Clock::now();
  r.daemon->signal(SIGTERM);
  ASSERT_TRUE(r.notify->waitFor("STOPPING=1", kEvent));
  // The API stays up during the drain (the result must still reach its client), but takes no
  // new work. A refused connection is also "no new work" if solverd closed the listener.
  auto late = httpRequest(api, "POST", "/v1/solve?solver=cbc", "minimize\n obj: x\nsubject to\n c: x >= 1\nend\n",
                          {"Content-Type: text/x-lp"});
  if (late) {
    EXPECT_EQ(late->status, 503) << late->body;
  }

  auto result = running.get();
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at);
  ASSERT_TRUE(result) << "the running job's client got nothing; log:\n" << r.daemon->log();
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_NE(result->body.find("\"interrupted\""), std::string::npos)
      << "past shutdown_timeout the job is interrupted and returns its incumbent: " << result->body;
  auto status = r.daemon->waitExit(kEvent);
  EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << r.daemon->log();
  EXPECT_GE(took, milliseconds(1900)) << "the job was stopped before shutdown_timeout";
  EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty()) << "a worker outlived solverd";
  std::cout << "solverd stopped " << took.count() << " ms after SIGTERM; result: " << result->body.substr(0, 200)
            << "\n";
}

// solverd.socket passes the API socket as `api` (the shipped solverd.conf: `listen systemd:api`).
TEST(SolverdService, ServesTheApiOnASocketPassedBySystemd) {
  REQUIRE_BINARY(solverd, "solverd");
  TempDir dir;
  Endpoint api;
  api.unix_path = dir.file("api.sock");
  Fd held = listenUnix(api.unix_path);
  Running r = start(dir, solverd, "solverd.conf", solverdConfig(dir, "5s", "systemd:api"), {},
                    {PassedFd{held.get(), "api"}});
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
  EXPECT_TRUE(r.daemon->waitForLog("listening on unix:" + api.unix_path, kEvent)) << r.daemon->log();
  auto health = httpRequest(api, "GET", "/health");
  ASSERT_TRUE(health) << r.daemon->log();
  EXPECT_EQ(health->status, 200) << health->body;
  r.daemon->signal(SIGTERM);
  EXPECT_TRUE(exitedZero(r.daemon->waitExit(kEvent))) << r.daemon->log();
}

// A worker that ignores the interrupt frame, end of stdin and SIGTERM alike: only the ladder's
// kill stops it. (Every backend heeds the interrupt since GLPK's simplex runs in slices, so no
// real solve can stand in for it any more.)
std::string stubbornWorker(const TempDir& dir) {
  std::string path = dir.file("stubborn-worker.sh");
  std::ofstream(path) << "#!/bin/sh\ntrap '' TERM INT\nexec sleep 60\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

TEST(SolverdService, SigtermPastShutdownTimeoutKillsAJobThatIgnoresTheInterrupt) {
  REQUIRE_BINARY(solverd, "solverd");
  REQUIRE_BINARY(worker, "solverd-worker");
  TempDir dir;
  Endpoint api;
  api.unix_path = dir.file("api.sock");
  // shutdown_timeout 1s, then the interrupt, then max_grace 1s, then cgroup.kill.
  std::string conf = solverdConfig(dir, "1s", "unix:" + api.unix_path, "1s");
  conf = conf.substr(0, conf.find("worker_path ")) + "worker_path " + stubbornWorker(dir) + ";\n";
  Running r = start(dir, solverd, "solverd.conf", conf);
  ASSERT_TRUE(r.notify->waitFor("READY=1", kStart)) << r.daemon->log();
  Fd fd = connectTo(api);
  ASSERT_TRUE(fd);
  std::string request = buildRequest("POST", "/v1/solve?solver=glpk", "Maximize\n obj: x\nSubject To\n c: x <= 1\nEnd\n",
                                     {"Content-Type: text/x-lp", "Accept: application/x-ndjson"}, true);
  ASSERT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  // With `workers 1` and nothing queued, the job's worker is spawned when it is accepted.
  std::string stream;
  ASSERT_TRUE(readUntil(fd.get(), stream, "\"event\":\"accepted\"", milliseconds(30000))) << stream << "\n" << r.daemon->log();

  auto sigterm_at = Clock::now();
  r.daemon->signal(SIGTERM);
  auto status = r.daemon->waitExit(milliseconds(15000));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at);
  bool got_result = readUntil(fd.get(), stream, "\"event\":\"result\"", kEvent);
  EXPECT_TRUE(exitedZero(status)) << describeExit(status) << "\n" << r.daemon->log();
  // Stopped by the kill after the grace: not before shutdown_timeout + max_grace, not much after.
  EXPECT_GE(took, milliseconds(1900)) << "stopped before the grace ran out: did the stub stop on the interrupt?\n"
                                      << r.daemon->log();
  EXPECT_LT(took, milliseconds(8000)) << r.daemon->log();
  EXPECT_TRUE(got_result) << "the client got no result event: " << stream.substr(stream.size() > 600 ? stream.size() - 600 : 0);
  EXPECT_NE(stream.find("\"status\":\"interrupted\""), std::string::npos) << stream.substr(stream.size() > 600 ? stream.size() - 600 : 0);
  std::string log = r.daemon->log();
  size_t killed = log.find("received->killed=");
  ASSERT_NE(killed, std::string::npos) << log;
  EXPECT_NE(log[killed + std::string("received->killed=").size()], '-') << "the job was not killed:\n" << log;
  EXPECT_TRUE(r.daemon->waitNoProcessLeft(kEvent).empty()) << "a worker outlived solverd";
  std::cout << "solverd killed the stubborn job and exited " << took.count() << " ms after SIGTERM\n";
}

// ---------------------------------------------------------------------------------------------
// End to end: systemd stops tether-proxy first (After=solverd.service), then solverd.

TEST(ShutdownOrder, StoppingProxyThenSolverdWithASolveInFlightLosesNoCompletedResult) {
  REQUIRE_BINARY(proxy, "tether-proxy");
  REQUIRE_BINARY(solverd, "solverd");
  REQUIRE_BINARY(worker, "solverd-worker");
  TempDir dir;
  Endpoint api;
  api.unix_path = dir.file("api.sock");
  Running s = start(dir, solverd, "solverd.conf", solverdConfig(dir, "5s", "unix:" + api.unix_path));
  ASSERT_TRUE(s.notify->waitFor("READY=1", kStart)) << s.daemon->log();
  std::string proxy_conf =
      "error_log stderr info;\nshutdown_timeout 20s;\nadmin { listen 127.0.0.1:0; }\n"
      "upstream solverd { server unix:" + api.unix_path + "; control unix:" + dir.file("solverd-control.sock") +
      "; }\nserver {\n    listen unix:" + dir.file("http.sock") +
      ";\n    location /v1/solve { proxy_pass http://solverd; on_disconnect interrupt; kill_after 2s; }\n}\n";
  Running p = start(dir, proxy, "proxy.conf", proxy_conf);
  ASSERT_TRUE(p.notify->waitFor("READY=1", kStart)) << p.daemon->log();
  Endpoint http;
  http.unix_path = dir.file("http.sock");

  // A solve that completes on its own after ~2 s (time_limit), while the stop is under way.
  auto solve = std::async(std::launch::async, [&] {
    return httpRequest(http, "POST", "/v1/solve?solver=cbc&time_limit=2", hardModel(), {"Content-Type: text/x-lp"},
                       milliseconds(60000));
  });
  ASSERT_TRUE(waitJobRunning(api)) << "solverd: " << describeExit(s.daemon->waitExit(milliseconds(0))) << "\n"
                                   << s.daemon->log() << p.daemon->log();

  auto sigterm_at = Clock::now();
  auto since = [&] { return std::chrono::duration_cast<milliseconds>(Clock::now() - sigterm_at).count(); };
  p.daemon->signal(SIGTERM);
  auto result = solve.get();
  auto result_ms = since();
  auto proxy_status = p.daemon->waitExit(milliseconds(25000));
  auto proxy_exit_ms = since();
  s.daemon->signal(SIGTERM);
  auto solverd_status = s.daemon->waitExit(milliseconds(25000));
  std::cout << "after the proxy's SIGTERM: result " << result_ms << " ms, proxy exit " << proxy_exit_ms
            << " ms, solverd exit " << since() << " ms\n";

  ASSERT_TRUE(result) << "the completed result was lost in the shutdown\n" << p.daemon->log() << s.daemon->log();
  EXPECT_EQ(result->status, 200) << result->body;
  // The solve ended on its own (optimal or at its time limit), not cancelled by the stop.
  EXPECT_TRUE(result->body.find("\"status\":\"time_limit\"") != std::string::npos ||
              result->body.find("\"status\":\"optimal\"") != std::string::npos)
      << result->body;
  EXPECT_TRUE(exitedZero(proxy_status)) << describeExit(proxy_status) << "\n" << p.daemon->log();
  EXPECT_TRUE(exitedZero(solverd_status)) << describeExit(solverd_status) << "\n" << s.daemon->log();
  EXPECT_TRUE(p.daemon->waitNoProcessLeft(kEvent).empty());
  EXPECT_TRUE(s.daemon->waitNoProcessLeft(kEvent).empty()) << "a worker outlived solverd";
  std::cout << "result through the stopping proxy: " << result->body.substr(0, 160) << "\n";
}

}  // namespace
}  // namespace tether::service_test
