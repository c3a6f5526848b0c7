// End to end: an existing solver service (tests/agent/fixtures/solve_service.py, Python's
// threaded http.server) runs `tether-run --id "$REQUEST_ID" -- cbc ...` per request, and
// tether-agent stops those cbc processes when asked: by a cancel frame straight from the test
// (as tether-proxy would send it), through the real tether-proxy when a client leaves, and through
// the webhook action, where the service stops its own solve.
#include "daemon_agent_harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <sstream>

namespace tether::agent::test {
namespace {

// The market split instance that keeps cbc busy for many seconds (m = 4), and one it solves at
// once (m = 2).
constexpr const char* kHardSolve = "/solve?m=4&seed=1";
constexpr const char* kEasySolve = "/solve?m=2&seed=1";

class SolveService {
 public:
  void start(const std::string& agent_socket, const std::string& workdir) {
    ASSERT_NO_FATAL_FAILURE(child_.start({"/usr/bin/python3", sourcePath("tests/agent/fixtures/solve_service.py"),
                                          "--agent", "unix:" + agent_socket, "--tether-run", binPath("tether-run"),
                                          "--workdir", workdir}));
    port_ = portOf(child_.waitForLine("listening on 127.0.0.1:"));
    ASSERT_NE(port_, 0) << child_.text();
  }
  uint16_t port() const { return port_; }
  Child& child() { return child_; }

 private:
  Child child_;
  uint16_t port_ = 0;
};

class TetherProxy {
 public:
  void start(const std::string& dir, uint16_t upstream_port, const std::string& agent_socket) {
    const std::string config = dir + "/proxy.conf";
    std::ofstream conf(config);
    conf << "error_log stderr info;\n"
         << "admin { listen unix:" << dir << "/proxy-admin.sock; }\n"
         << "upstream service {\n    server 127.0.0.1:" << upstream_port << ";\n"
         << "    control unix:" << agent_socket << ";\n}\n"
         << "server {\n    listen 127.0.0.1:0;\n    access_log stderr;\n"
         << "    location /solve {\n        proxy_pass http://service;\n        on_disconnect interrupt;\n"
         << "        kill_after 50ms;\n    }\n}\n";
    conf.close();
    ASSERT_NO_FATAL_FAILURE(child_.start({binPath("tether-proxy"), "-c", config}));
    // The admin listener is on a unix socket: the one TCP `listening on` is the server's.
    port_ = portOf(child_.waitForLine("listening on 127.0.0.1:"));
    ASSERT_NE(port_, 0) << child_.text();
  }

  uint16_t serverPort() const { return port_; }
  Child& child() { return child_; }

 private:
  Child child_;
  uint16_t port_ = 0;
};

// The agent's own measure of a cancel (its `target rid=... done` line: "exited +X ms"), bounded by
// what a loaded 2-core CI machine holds; the tight figures are bench/'s.
void expectExitedWithin(const std::string& done_line, double bound_ms) {
  const size_t at = done_line.find("exited +");
  ASSERT_NE(at, std::string::npos) << done_line;
  const double ms = std::stod(done_line.substr(at + 8));
  EXPECT_LT(ms, bound_ms) << done_line;
}

class AgentE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/cbc", X_OK) != 0) GTEST_SKIP() << "cbc (coinor-cbc) is not installed";
    if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  }

  void TearDown() override {
    if (IsSkipped()) return;
    service_.child().stop();
    for (const auto& rid : ids_) {
      EXPECT_TRUE(processesWith("ms-" + rid).empty()) << "a cbc of " << rid << " outlived the test";
    }
    agent_.stopAndCheck();
  }

  // A client that asks the service (directly, or through `port`) for a hard solve with `rid`,
  // and the cbc that tether-run started for it, registered with the agent.
  int startHardSolve(uint16_t port, const std::string& rid, bool wait_registered = true) {
    ids_.push_back(rid);
    int fd = connectTcp(port);
    EXPECT_GE(fd, 0);
    EXPECT_TRUE(sendAll(fd, httpPost(kHardSolve, rid.empty() ? "" : "X-Request-Id: " + rid + "\r\n")));
    if (wait_registered) {
      // tether-run's own command line names the model too: wait for the registration, then cbc.
      EXPECT_TRUE(eventually([&] { return agent_.tracks(rid); }, 10s)) << agent_.child().text();
      EXPECT_TRUE(eventually([&] { return !processesWith("ms-" + rid).empty(); }, 10s)) << "cbc never started";
    }
    return fd;
  }

  // agent, service, and tether-proxy in front of the service with the agent as its control socket.
  void startBehindProxy(TetherProxy& proxy) {
    // Required, not skipped: the proxy is part of this tree and the acceptance test of the issue.
    ASSERT_EQ(access(binPath("tether-proxy").c_str(), X_OK), 0) << "tether-proxy was not built";
    ASSERT_NO_FATAL_FAILURE(agent_.start());
    ASSERT_NO_FATAL_FAILURE(service_.start(agent_.socket(), agent_.dir().path()));
    ASSERT_NO_FATAL_FAILURE(proxy.start(agent_.dir().path(), service_.port(), agent_.socket()));
  }

  AgentProcess agent_;
  SolveService service_;
  std::vector<std::string> ids_;
};

TEST_F(AgentE2e, ClientThatLeavesAfterOneSecondLeavesNoCbcSoonAfterTheCancel) {
  ASSERT_NO_FATAL_FAILURE(agent_.start("default_grace 5s;"));
  ASSERT_NO_FATAL_FAILURE(service_.start(agent_.socket(), agent_.dir().path()));
  const std::string rid = testRequestId();
  int client = startHardSolve(service_.port(), rid);
  std::this_thread::sleep_for(1s);  // the client's patience, not a synchronization
  close(client);
  // What tether-proxy sends on that disconnect under `on_disconnect interrupt; kill_after 50ms;`.
  const auto cancelled = Clock::now();
  EXPECT_EQ(agent_.cancel(rid, control::Action::Interrupt, 50).state, control::CancelState::Running);
  ASSERT_TRUE(eventually([&] { return processesWith("ms-" + rid).empty(); }, 2s));
  const auto gone_ms = std::chrono::duration<double, std::milli>(Clock::now() - cancelled).count();
  std::printf("cancel to no cbc process: %.1f ms\n", gone_ms);
  auto done = agent_.child().waitForLine("target rid=" + rid + " pid=", 2s);
  ASSERT_TRUE(done) << agent_.child().text();
  expectExitedWithin(*done, 1000.0);
  EXPECT_FALSE(agent_.tracks(rid));
}

TEST_F(AgentE2e, KillActionLeavesNoCbcAtOnce) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  ASSERT_NO_FATAL_FAILURE(service_.start(agent_.socket(), agent_.dir().path()));
  const std::string rid = testRequestId();
  int client = startHardSolve(service_.port(), rid);
  close(client);
  const auto cancelled = Clock::now();
  EXPECT_EQ(agent_.cancel(rid, control::Action::Kill, 0).state, control::CancelState::Running);
  ASSERT_TRUE(eventually([&] { return processesWith("ms-" + rid).empty(); }, 2s));
  const auto gone_ms = std::chrono::duration<double, std::milli>(Clock::now() - cancelled).count();
  std::printf("kill to no cbc process: %.1f ms\n", gone_ms);
  auto done = agent_.child().waitForLine("target rid=" + rid + " pid=", 2s);
  ASSERT_TRUE(done) << agent_.child().text();
  EXPECT_NE(done->find("(killed)"), std::string::npos) << *done;
  expectExitedWithin(*done, 1000.0);
}

TEST_F(AgentE2e, ClientThatStaysGetsItsAnswer) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  ASSERT_NO_FATAL_FAILURE(service_.start(agent_.socket(), agent_.dir().path()));
  const std::string rid = testRequestId();
  ids_.push_back(rid);
  int fd = connectTcp(service_.port());
  ASSERT_TRUE(sendAll(fd, httpPost(kEasySolve, "X-Request-Id: " + rid + "\r\n")));
  const std::string response = readAll(fd, 20s);
  close(fd);
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
  EXPECT_NE(response.find("exit 0"), std::string::npos) << response;
  EXPECT_NE(response.find("Objective value"), std::string::npos) << response;
  ASSERT_TRUE(agent_.child().waitForLine("registered rid=" + rid, 2s));
  ASSERT_TRUE(agent_.child().waitForLine("target rid=" + rid + " pid=", 2s));
}

TEST_F(AgentE2e, WebhookInterruptLetsTheServiceStopItsOwnSolve) {
  // The service must run before the agent, whose configuration names the service's port.
  control::test::TempDir workdir;
  const std::string socket = workdir.file("pre.sock");
  ASSERT_NO_FATAL_FAILURE(service_.start(socket, workdir.path()));
  // The agent's socket is in its own directory: point the service at it through a symlink.
  // Quoted: an unquoted `{` starts a block in the configuration language, as in nginx.
  ASSERT_NO_FATAL_FAILURE(agent_.start("interrupt webhook \"http://127.0.0.1:" + std::to_string(service_.port()) +
                                       "/cancel/{id}\";\ndefault_grace 10s;"));
  ASSERT_EQ(symlink(agent_.socket().c_str(), socket.c_str()), 0);

  const std::string rid = testRequestId();
  int client = startHardSolve(service_.port(), rid);
  std::this_thread::sleep_for(1s);
  close(client);
  EXPECT_EQ(agent_.cancel(rid, control::Action::Interrupt, 10000).state, control::CancelState::Running);
  // cbc stops on the service's own SIGINT (it takes up to a couple of seconds to wind down),
  // well before the 10 s grace would have it killed.
  ASSERT_TRUE(agent_.child().waitForLine("webhook rid=" + rid + " answered 200", 5s)) << agent_.child().text();
  auto done = agent_.child().waitForLine("target rid=" + rid + " pid=", 8s);
  ASSERT_TRUE(done) << agent_.child().text();
  EXPECT_EQ(done->find("(killed)"), std::string::npos) << *done;
  EXPECT_TRUE(processesWith("ms-" + rid).empty());
  int fd = connectTcp(service_.port());
  ASSERT_TRUE(sendAll(fd, "GET /cancels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(readAll(fd, 5s).find(rid), std::string::npos);
  close(fd);
}

TEST_F(AgentE2e, WebhookTargetThatRefusesIsRetriedGivenUpAndTheKillStillStopsTheSolve) {
  // A port nothing listens on: bound, read, closed.
  uint16_t refused_port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    refused_port = ntohs(addr.sin_port);
    ::close(fd);
  }
  control::test::TempDir workdir;
  const std::string socket = workdir.file("pre.sock");
  ASSERT_NO_FATAL_FAILURE(service_.start(socket, workdir.path()));
  ASSERT_NO_FATAL_FAILURE(agent_.start("interrupt webhook \"http://127.0.0.1:" + std::to_string(refused_port) +
                                       "/cancel/{id}\";\ndefault_grace 1s;"));
  ASSERT_EQ(symlink(agent_.socket().c_str(), socket.c_str()), 0);

  const std::string rid = testRequestId();
  int client = startHardSolve(service_.port(), rid);
  close(client);
  EXPECT_EQ(agent_.cancel(rid, control::Action::Interrupt, 1000).state, control::CancelState::Running);
  // Every try refused: retried, then given up at warn; the grace runs out and the kill stops cbc.
  ASSERT_TRUE(agent_.child().waitForLine("webhook rid=" + rid + " given up after 3 tries: connection refused", 5s))
      << agent_.child().text();
  auto done = agent_.child().waitForLine("target rid=" + rid + " pid=", 8s);
  ASSERT_TRUE(done) << agent_.child().text();
  EXPECT_NE(done->find("(killed)"), std::string::npos) << *done;
  EXPECT_TRUE(eventually([&] { return processesWith("ms-" + rid).empty(); }, 2s));
}

TEST_F(AgentE2e, ThroughTetherProxyAClientThatLeavesAfterOneSecondLeavesNoCbcSoonAfter) {
  TetherProxy proxy;
  ASSERT_NO_FATAL_FAILURE(startBehindProxy(proxy));

  // The proxy makes up the request id: learn it from the agent's registration.
  int client = connectTcp(proxy.serverPort());
  ASSERT_GE(client, 0);
  ASSERT_TRUE(sendAll(client, httpPost(kHardSolve)));
  auto registered = agent_.child().waitForLine("registered rid=", 10s);
  ASSERT_TRUE(registered) << agent_.child().text() << proxy.child().text() << service_.child().text();
  const size_t at = registered->find("rid=") + 4;
  const std::string rid = registered->substr(at, registered->find(' ', at) - at);
  ids_.push_back(rid);
  ASSERT_TRUE(eventually([&] { return !processesWith("ms-" + rid).empty(); }, 10s));

  std::this_thread::sleep_for(1s);
  const auto left = Clock::now();
  close(client);
  ASSERT_TRUE(eventually([&] { return processesWith("ms-" + rid).empty(); }, 2s)) << agent_.child().text();
  const auto gone_ms = std::chrono::duration<double, std::milli>(Clock::now() - left).count();
  std::printf("client close to no cbc process (through tether-proxy): %.1f ms\n", gone_ms);
  EXPECT_TRUE(agent_.child().waitForLine("cancel rid=" + rid + " action=interrupt grace_ms=50", 2s));
  auto done = agent_.child().waitForLine("target rid=" + rid + " pid=", 2s);
  ASSERT_TRUE(done) << agent_.child().text();
  expectExitedWithin(*done, 1000.0);
  // The access log's status field for this request, not any "499" anywhere in the output.
  EXPECT_TRUE(proxy.child().waitForLine("\" 499 ", 2s)) << proxy.child().text();
  bool logged = false;
  std::istringstream out(proxy.child().text());
  for (std::string line; std::getline(out, line);) {
    if (line.find("\" 499 ") != std::string::npos && line.find(" rid=" + rid + " ") != std::string::npos &&
        line.find(" phase=awaiting_response ") != std::string::npos) {
      logged = true;
    }
  }
  EXPECT_TRUE(logged) << "no access-log line with status 499 for rid=" << rid << "\n" << proxy.child().text();
  proxy.child().stop();
}

TEST_F(AgentE2e, ThroughTetherProxyAClientThatStaysGetsItsAnswer) {
  TetherProxy proxy;
  ASSERT_NO_FATAL_FAILURE(startBehindProxy(proxy));
  int fd = connectTcp(proxy.serverPort());
  ASSERT_TRUE(sendAll(fd, httpPost(kEasySolve)));
  const std::string response = readAll(fd, 20s);
  close(fd);
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response << proxy.child().text();
  EXPECT_NE(response.find("Objective value"), std::string::npos) << response;
  EXPECT_EQ(agent_.child().text().find("cancel rid="), std::string::npos) << "a completed request sends no cancel";
  proxy.child().stop();
}

}  // namespace
}  // namespace tether::agent::test
