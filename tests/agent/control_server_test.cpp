// The control server on real unix sockets: hello, dispatch, bad frames, SO_PEERCRED rules.
#include "control_test_support.hpp"
#include "tether/agent/control/blocking_client.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace tether::agent::control {
namespace {

using namespace std::chrono_literals;
using test::RecordingHandler;
using test::ServerThread;
using test::TempDir;

constexpr auto kTimeout = 2s;

BlockingConnection connectTo(const std::string& path) {
  BlockingConnection c;
  EXPECT_EQ(c.connect(path, kTimeout), 0) << path;
  return c;
}

// Each test gets a fresh directory, a recording handler and options pointing into it.
class ControlServer : public ::testing::Test {
 protected:
  ControlServer() { options_.path = dir_.file("c.sock"); }

  void start() {
    server_ = std::make_unique<ServerThread>(handler_, options_);
    ASSERT_EQ(server_->listenResult(), 0) << server_->listenError();
  }
  BlockingConnection connect() { return connectTo(options_.path); }

  TempDir dir_;
  RecordingHandler handler_;
  ServerOptions options_;
  std::unique_ptr<ServerThread> server_;
};

TEST_F(ControlServer, HelloIsAnsweredWithTheServerName) {
  options_.server_name = "solverd";
  ASSERT_NO_FATAL_FAILURE(start());

  auto c = connect();
  Message reply;
  ASSERT_EQ(c.request(Hello{1, "proxy", {}}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Hello>(reply));
  EXPECT_EQ(std::get<Hello>(reply).server, "solverd");
  EXPECT_EQ(std::get<Hello>(reply).version, 1);
}

TEST_F(ControlServer, CancelIsDispatchedWithPeerCredentialsAndAcked) {
  handler_.state = CancelState::Queued;
  ASSERT_NO_FATAL_FAILURE(start());

  auto c = connect();
  Message reply;
  ASSERT_EQ(c.request(Cancel{"r1", Action::Kill, 100, "client_disconnect", "request_body"}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<CancelAck>(reply));
  EXPECT_EQ(std::get<CancelAck>(reply).id, "r1");
  EXPECT_EQ(std::get<CancelAck>(reply).state, CancelState::Queued);

  std::lock_guard lock(handler_.mutex);
  ASSERT_EQ(handler_.cancels.size(), 1u);
  EXPECT_EQ(handler_.cancels[0].action, Action::Kill);
  EXPECT_EQ(handler_.cancels[0].grace_ms, 100u);
  EXPECT_EQ(handler_.cancels[0].phase, "request_body");
  EXPECT_EQ(handler_.peers[0].pid, getpid());
  EXPECT_EQ(handler_.peers[0].uid, getuid());
  EXPECT_EQ(handler_.peers[0].gid, getgid());
}

TEST_F(ControlServer, ManyRequestsInOneWriteAreAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(start());

  auto c = connect();
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += encodeMessage(Cancel{"id" + std::to_string(i), Action::Interrupt, {}, "x", {}});
  ASSERT_EQ(c.sendRaw(batch, kTimeout), 0);
  for (int i = 0; i < 100; ++i) {
    Message reply;
    ASSERT_EQ(c.receive(reply, kTimeout), 0);
    ASSERT_TRUE(std::holds_alternative<CancelAck>(reply));
    EXPECT_EQ(std::get<CancelAck>(reply).id, "id" + std::to_string(i));
  }
}

TEST_F(ControlServer, RegisterUnregisterAndStatusAreDispatched) {
  ASSERT_NO_FATAL_FAILURE(start());

  auto c = connect();
  Message reply;
  ASSERT_EQ(c.request(Register{"job1", std::nullopt}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Registered>(reply));
  EXPECT_EQ(std::get<Registered>(reply).cgroup, "/sys/fs/cgroup/job-job1");
  ASSERT_EQ(c.request(Unregister{"job1"}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Unregistered>(reply));
  ASSERT_EQ(c.request(Status{}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Status>(reply));
  ASSERT_TRUE(std::get<Status>(reply).targets.has_value());
  EXPECT_EQ((*std::get<Status>(reply).targets)[0]["id"], "abc");
}

TEST_F(ControlServer, GarbageGetsBadFrameAndCloseWhileAnotherClientKeepsWorking) {
  ASSERT_NO_FATAL_FAILURE(start());

  auto good = connect();
  auto bad = connect();
  Message reply;
  ASSERT_EQ(good.request(Hello{1, "proxy", {}}, reply, kTimeout), 0);

  ASSERT_EQ(bad.sendRaw("GET / HTTP/1.1\r\n\r\n", kTimeout), 0);
  ASSERT_EQ(bad.receive(reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Error>(reply));
  EXPECT_EQ(std::get<Error>(reply).code, ErrorCode::BadFrame);
  EXPECT_EQ(bad.receive(reply, kTimeout), -ECONNRESET) << "the server must close after a bad frame";

  ASSERT_EQ(good.request(Cancel{"still", Action::Interrupt, {}, "x", {}}, reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<CancelAck>(reply));
  EXPECT_EQ(std::get<CancelAck>(reply).id, "still");

  server_->stop();
  EXPECT_EQ(server_->counters().bad_frames, 1u);
}

TEST_F(ControlServer, BadJsonAndNonObjectCloseTheConnection) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* body : {"{not json", "[1]"}) {
    auto c = connect();
    Message reply;
    ASSERT_EQ(c.sendRaw(encodeRawFrame(body), kTimeout), 0);
    ASSERT_EQ(c.receive(reply, kTimeout), 0);
    ASSERT_TRUE(std::holds_alternative<Error>(reply)) << body;
    EXPECT_EQ(std::get<Error>(reply).code, ErrorCode::BadFrame);
    EXPECT_EQ(c.receive(reply, kTimeout), -ECONNRESET);
  }
}

TEST_F(ControlServer, UnknownTypeGetsAnErrorAndTheConnectionStaysOpen) {
  ASSERT_NO_FATAL_FAILURE(start());

  auto c = connect();
  Message reply;
  ASSERT_EQ(c.sendRaw(encodeRawFrame(R"({"type":"teleport","id":"x"})"), kTimeout), 0);
  ASSERT_EQ(c.receive(reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Error>(reply));
  EXPECT_EQ(std::get<Error>(reply).code, ErrorCode::UnknownType);
  ASSERT_EQ(c.request(test::cancelOf("x"), reply, kTimeout), 0);
  ASSERT_EQ(c.sendRaw(encodeRawFrame(R"({"type":"cancel"})"), kTimeout), 0);
  ASSERT_EQ(c.receive(reply, kTimeout), 0);
  ASSERT_TRUE(std::holds_alternative<Error>(reply));
  EXPECT_EQ(std::get<Error>(reply).code, ErrorCode::BadMessage);
  ASSERT_EQ(c.request(Hello{}, reply, kTimeout), 0);
  EXPECT_TRUE(std::holds_alternative<Hello>(reply));
}

// In a forked child: drop to `uid`, connect, send hello, read one frame. Exit code 0 if the
// reply is an error "forbidden" followed by end of file, 1 if it is a hello, 2 otherwise.
// Only raw system calls after fork: the parent has a loop thread running.
[[noreturn]] void childHelloAs(uid_t uid, gid_t gid, const char* path, const std::string& hello) {
  if (setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) _exit(3);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(4);
  // The server may have refused and closed already: MSG_NOSIGNAL turns SIGPIPE into EPIPE.
  (void)!send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
  static char buf[4096];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    if (got >= 4 && memmem(buf, got, "\"hello\"", 7) != nullptr) _exit(1);
  }
  buf[got] = '\0';
  if (got > 4 && std::strstr(buf + 4, "\"forbidden\"") != nullptr) _exit(0);
  _exit(2);
}

int helloAs(uid_t uid, gid_t gid, const std::string& path) {
  const std::string hello = encodeMessage(Hello{1, "test", {}});
  pid_t pid = fork();
  if (pid == 0) childHelloAs(uid, gid, path.c_str(), hello);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST_F(ControlServer, PeerOfAnotherUidIsForbiddenAndClosed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a peer under another uid";
  chmod(dir_.path().c_str(), 0755);
  options_.mode = 0666;  // the filesystem lets everyone in: SO_PEERCRED alone must refuse
  ASSERT_NO_FATAL_FAILURE(start());

  EXPECT_EQ(helloAs(65534, 65534, options_.path), 0);
  server_->stop();
  EXPECT_EQ(server_->counters().forbidden, 1u);
}

TEST_F(ControlServer, AllowUidAndAllowGroupRulesAdmitOtherPeers) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a peer under another uid";
  chmod(dir_.path().c_str(), 0755);
  options_.mode = 0666;
  options_.allow = {*parseAllowRule("uid", "65534"), *parseAllowRule("group", "4242")};
  ASSERT_NO_FATAL_FAILURE(start());

  EXPECT_EQ(helloAs(65534, 65534, options_.path), 1) << "allow uid 65534";
  EXPECT_EQ(helloAs(4000, 4242, options_.path), 1) << "allow group 4242";
  EXPECT_EQ(helloAs(4001, 4001, options_.path), 0) << "neither rule";
}

TEST(ControlServerSetup, ModeIsAppliedAndAStaleSocketFileIsReplaced) {
  TempDir dir;
  RecordingHandler handler;
  ServerOptions options;
  options.path = dir.file("c.sock");
  options.mode = 0600;
  {
    ServerThread first(handler, options);
    ASSERT_EQ(first.listenResult(), 0);
  }
  // Leave a dead socket file behind, as a crashed daemon would.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, options.path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);

  ServerThread second(handler, options);
  ASSERT_EQ(second.listenResult(), 0) << second.listenError();
  struct stat st {};
  ASSERT_EQ(stat(options.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto c = connectTo(options.path);
  Message reply;
  EXPECT_EQ(c.request(Hello{}, reply, kTimeout), 0);
}

// Regression for bench/load_10k.sh: a peer that writes a burst of cancels and reads the acks
// only when it cannot write any more (tether-proxy with its loop busy) used to be closed once
// 1 MiB of acks waited; the server now stops reading from it instead, and every cancel is acked.
TEST_F(ControlServer, BurstOfTwentyThousandCancelsFromASlowReaderIsAllAckedOnOneConnection) {
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr int kCancels = 20000;
  auto c = connect();
  std::string burst;
  for (int i = 0; i < kCancels; ++i) {
    burst += encodeMessage(Cancel{"burst-" + std::to_string(i), Action::Interrupt, 5000, "client_disconnect",
                                  "awaiting_response"});
  }
  FrameDecoder decoder;
  int acks = 0;
  bool in_order = true;
  size_t written = 0;
  // Reads everything the socket holds now; false if the server closed the connection.
  auto drain = [&] {
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = recv(c.fd(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN;
      decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
      nlohmann::json object;
      ProtocolError error;
      while (decoder.next(object, error) == FrameDecoder::Result::Frame) {
        Message m;
        if (!parseMessage(object, m, error) || !std::holds_alternative<CancelAck>(m)) return false;
        in_order = in_order && std::get<CancelAck>(m).id == "burst-" + std::to_string(acks);
        ++acks;
      }
    }
  };
  // A bound on liveness, not on speed (the burst takes seconds under ASan on a busy CI machine).
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (acks < kCancels && std::chrono::steady_clock::now() < deadline) {
    if (written < burst.size()) {
      ssize_t n = send(c.fd(), burst.data() + written, burst.size() - written, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        written += static_cast<size_t>(n);
        continue;
      }
      if (errno != EAGAIN) {
        const int err = errno;
        server_->stop();
        FAIL() << "the server closed the connection after " << acks << " acks, " << written << " bytes: "
               << std::strerror(err) << "; handled " << server_->counters().messages << ", bad frames "
               << server_->counters().bad_frames << ", pauses " << server_->counters().read_pauses;
      }
      // Read only once the server has stopped taking frames for a while: a slow reader. A whole
      // second, because a loaded machine (CI) may take longer than a short wait to handle what
      // the kernel holds, and a reader that gave up sooner would drain the replies before they
      // ever filled the server's queue: the pause this test is about would not happen.
      pollfd p{c.fd(), POLLOUT, 0};
      if (poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT) != 0) continue;
    } else {
      pollfd p{c.fd(), POLLIN, 0};
      poll(&p, 1, 1000);
    }
    ASSERT_TRUE(drain()) << "the server closed the connection after " << acks << " acks";
  }
  EXPECT_EQ(acks, kCancels);
  EXPECT_TRUE(in_order);
  server_->stop();
  EXPECT_EQ(server_->counters().messages, static_cast<uint64_t>(kCancels));
  EXPECT_GE(server_->counters().read_pauses, 1u) << "the burst never filled the server's reply queue";
  std::lock_guard lock(handler_.mutex);
  EXPECT_EQ(handler_.cancels.size(), static_cast<size_t>(kCancels));
}

TEST(ControlServerSetup, AllowRuleParsingRejectsNonsense) {
  std::string why;
  EXPECT_FALSE(parseAllowRule("uid", "abc", &why));
  EXPECT_EQ(why, "invalid value \"abc\"");
  EXPECT_FALSE(parseAllowRule("group", "no-such-group-here", &why));
  EXPECT_FALSE(parseAllowRule("user", "0", &why));
  auto root_group = parseAllowRule("group", "root");
  ASSERT_TRUE(root_group);
  EXPECT_EQ(root_group->value, 0u);
}

}  // namespace
}  // namespace tether::agent::control
