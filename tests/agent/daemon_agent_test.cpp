// tether-agent and tether-run as binaries: registration, exit status, tombstones, ownership,
// an unreachable agent, status and metrics.
#include "daemon_agent_harness.hpp"
#include "tether/agent/supervise/cgroup.hpp"

#include <gtest/gtest.h>

namespace tether::agent::test {
namespace {

struct RunResult {
  int status = -1;  // exit code, or 128 + signal
  std::string output;
};

// Runs a command to its end (stdout and stderr together).
RunResult runToEnd(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 20s) {
  Child child;
  child.start(argv);
  RunResult r;
  auto status = child.wait(timeout);
  if (!status) status = child.stop(0ms);
  r.status = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  r.output = child.text();
  return r;
}

// A Python peer that registers pid 1 (root's init) and prints the reply (for a refused peer, the
// `error` frame the server sent before closing).
constexpr const char* kRegisterPidOne =
    "import socket,struct,sys,json\n"
    "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
    "b=json.dumps({'type':'register','id':'r1','pid':1}).encode()\n"
    "try: s.sendall(struct.pack('<I',len(b))+b)\n"
    "except BrokenPipeError: pass\n"  // a refused peer may be closed before it writes
    "h=s.recv(4); n=struct.unpack('<I',h)[0]; print(s.recv(n).decode())\n";

class AgentDaemon : public ::testing::Test {
 protected:
  void TearDown() override { agent_.stopAndCheck(); }

  std::vector<std::string> tetherRun(const std::string& id, std::vector<std::string> cmd, bool require = false) {
    std::vector<std::string> argv{binPath("tether-run"), "--agent", "unix:" + agent_.socket(), "--id", id};
    if (require) argv.push_back("--require-agent");
    argv.push_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  }

  AgentProcess agent_;
};

TEST_F(AgentDaemon, TetherRunKeepsTheCommandsExitStatusAndRunsItInTheTargetsCgroup) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  const std::string rid = testRequestId();
  auto r = runToEnd(tetherRun(rid, {"/bin/sh", "-c", "grep '^0::' /proc/self/cgroup; exit 7"}));
  EXPECT_EQ(r.status, 7) << r.output;
  if (agent_.hasCgroups()) {
    EXPECT_NE(r.output.find("/" + supervise::jobCgroupName(rid) + "\n"), std::string::npos) << r.output;
  }
  EXPECT_TRUE(agent_.child().waitForLine("registered rid=" + rid));
  EXPECT_TRUE(agent_.child().waitForLine("target rid=" + rid + " pid="));
}

TEST_F(AgentDaemon, CancelledIdIsTombstonedAndTetherRunExits125WithoutRunningTheCommand) {
  ASSERT_NO_FATAL_FAILURE(agent_.start("tombstone_ttl 30s;"));
  const std::string rid = testRequestId();
  EXPECT_EQ(agent_.cancel(rid, control::Action::Interrupt, 100).state, control::CancelState::Unknown);
  const std::string marker = agent_.dir().file("ran");
  auto r = runToEnd(tetherRun(rid, {"/usr/bin/touch", marker}));
  EXPECT_EQ(r.status, 125) << r.output;
  EXPECT_NE(r.output.find("was cancelled"), std::string::npos) << r.output;
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "the command ran although its id was cancelled";
}

TEST_F(AgentDaemon, CancelWithAnUnknownFieldAndAnUnknownReasonForABalancerIdIsActedOn) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  // An AWS load balancer's trace id: `=` and `-`, never a directory name of its own.
  const std::string rid = "Root=1-" + testRequestId().substr(0, 8) + "-" + testRequestId().substr(8, 24);
  Child sleeper;
  ASSERT_NO_FATAL_FAILURE(sleeper.start(tetherRun(rid, {"/bin/sleep", "30"})));
  ASSERT_TRUE(eventually([&] { return agent_.tracks(rid); }, 5s)) << agent_.child().text();
  // A newer proxy's frame: a reason and a field this version does not know.
  const nlohmann::json frame{{"type", "cancel"},       {"id", rid},
                             {"action", "kill"},        {"reason", "quota_exceeded"},
                             {"phase", "response_body"}, {"traceparent", {{"version", "00"}, {"flags", 1}}}};
  control::BlockingConnection c;
  ASSERT_EQ(c.connect(agent_.socket(), 2s), 0);
  ASSERT_EQ(c.sendRaw(control::encodeRawFrame(frame.dump()), 2s), 0);
  control::Message reply;
  ASSERT_EQ(c.receive(reply, 2s), 0);
  ASSERT_TRUE(std::holds_alternative<control::CancelAck>(reply)) << control::toJson(reply).dump();
  EXPECT_EQ(std::get<control::CancelAck>(reply).state, control::CancelState::Running);
  int status = 0;
  ASSERT_TRUE(eventually([&] { return waitpid(sleeper.pid(), &status, WNOHANG) == sleeper.pid(); }, 2s));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(agent_.child().waitForLine("cancel rid=" + rid + " action=kill grace_ms=default reason=quota_exceeded"))
      << agent_.child().text();
}

TEST_F(AgentDaemon, TetherRunReplacesAnIdThatBreaksTheRuleWithAGeneratedOneAndSaysSo) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  auto r = runToEnd(tetherRun("has space", {"/bin/sh", "-c", "exit 4"}, /*require=*/true));
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("[warn] --id breaks the request id rule"), std::string::npos) << r.output;
  auto registered = agent_.child().waitForLine("registered rid=");
  ASSERT_TRUE(registered) << agent_.child().text();
  EXPECT_EQ(registered->find("has space"), std::string::npos) << *registered;
}

TEST_F(AgentDaemon, UnreachableAgentRunsTheCommandWithOneWarningUnlessRequired) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  const std::string absent = "unix:" + agent_.dir().file("absent.sock");
  auto r = runToEnd({binPath("tether-run"), "--agent", absent, "--id", "x1", "--", "/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(r.status, 3) << r.output;
  size_t first = r.output.find("[warn]");
  EXPECT_NE(first, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[warn]", first + 1), std::string::npos) << "warned more than once: " << r.output;

  const std::string marker = agent_.dir().file("ran");
  r = runToEnd({binPath("tether-run"), "--agent", absent, "--id", "x1", "--require-agent", "--", "/usr/bin/touch", marker});
  EXPECT_EQ(r.status, 125) << r.output;
  EXPECT_NE(access(marker.c_str(), F_OK), 0);
}

TEST_F(AgentDaemon, SecondRegistrationOfARunningIdIsRefusedAsConflict) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  const std::string rid = testRequestId();
  Child first;
  ASSERT_NO_FATAL_FAILURE(first.start(tetherRun(rid, {"/bin/sleep", "30"})));
  ASSERT_TRUE(eventually([&] { return agent_.tracks(rid); }, 5s));
  auto r = runToEnd(tetherRun(rid, {"/bin/true"}, /*require=*/true));
  EXPECT_EQ(r.status, 125) << r.output;
  EXPECT_NE(r.output.find("conflict"), std::string::npos) << r.output;
  // kill: cgroup.kill (or SIGKILL through the pidfd) at once.
  EXPECT_EQ(agent_.cancel(rid, control::Action::Kill, 0).state, control::CancelState::Running);
  int status = 0;
  ASSERT_TRUE(eventually([&] { return waitpid(first.pid(), &status, WNOHANG) == first.pid(); }, 2s));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(agent_.child().waitForLine("target rid=" + rid + " pid="));
  EXPECT_EQ(agent_.cancel(rid, control::Action::Kill, 0).state, control::CancelState::Finished);
}

TEST_F(AgentDaemon, PeerMayNotRegisterAnotherUsersProcess) {
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv to act as another user";
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  // As nobody, whom no allow rule admits: the peer itself is refused (the socket is 0666).
  auto r = runToEnd({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                     kRegisterPidOne, agent_.socket()});
  EXPECT_NE(r.output.find("\"forbidden\""), std::string::npos) << r.output;
  EXPECT_FALSE(agent_.tracks("r1"));
}

TEST_F(AgentDaemon, AllowedPeerStillMayNotRegisterAnotherUsersProcess) {
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv to act as another user";
  ASSERT_NO_FATAL_FAILURE(agent_.start({}, "allow uid 65534;"));
  auto r = runToEnd({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                     kRegisterPidOne, agent_.socket()});
  EXPECT_NE(r.output.find("\"forbidden\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is not the peer's"), std::string::npos) << r.output;
  EXPECT_FALSE(agent_.tracks("r1"));
}

TEST_F(AgentDaemon, MetricsCountTargetsCancelsAndCancelToExit) {
  ASSERT_NO_FATAL_FAILURE(agent_.start());
  const std::string rid = testRequestId();
  Child sleeper;
  ASSERT_NO_FATAL_FAILURE(sleeper.start(tetherRun(rid, {"/bin/sleep", "30"})));
  ASSERT_TRUE(eventually([&] { return agent_.tracks(rid); }, 5s));

  auto scrape = [&] {
    int fd = connectTcp(agent_.adminPort());
    sendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string body = readAll(fd, 5s);
    close(fd);
    return body;
  };
  EXPECT_NE(scrape().find("tether_agent_targets 1"), std::string::npos);
  EXPECT_EQ(agent_.cancel(rid, control::Action::Interrupt, 1000).state, control::CancelState::Running);
  ASSERT_TRUE(agent_.child().waitForLine("target rid=" + rid + " pid="));
  const std::string m = scrape();
  EXPECT_NE(m.find("tether_agent_targets 0"), std::string::npos) << m;
  EXPECT_NE(m.find("tether_agent_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",result=\"running\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("tether_agent_cancel_to_exit_seconds_count 1"), std::string::npos) << m;
  int fd = connectTcp(agent_.adminPort());
  sendAll(fd, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(readAll(fd, 5s).find("200 OK"), std::string::npos);
  close(fd);
  sleeper.stop();
}

TEST(AgentCommandLine, BadConfigurationIsReportedInNginxWordingWithExit1) {
  control::test::TempDir dir;
  const std::string path = dir.file("bad.conf");
  std::ofstream(path) << "control { listen unix:/tmp/x.sock; }\nlisen 1;\n";
  auto r = runToEnd({binPath("tether-agent"), "-t", "-c", path});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("tether-agent: [emerg] unknown directive \"lisen\" in " + path + ":2:1"), std::string::npos)
      << r.output;
  std::ofstream(path) << "control { listen 127.0.0.1:80; }\n";
  r = runToEnd({binPath("tether-agent"), "-t", "-c", path});
  EXPECT_EQ(r.status, 1) << r.output;
  // Checked against the system, by -t too.
  std::ofstream(path) << "control { listen unix:/tmp/x.sock; group no-such-group-here; }\n";
  r = runToEnd({binPath("tether-agent"), "-t", "-c", path});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("unknown group \"no-such-group-here\" in " + path + ":1:"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tether::agent::test
