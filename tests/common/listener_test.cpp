#include "tether/common/listener.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "loop_support.hpp"

namespace tether {
namespace {

using testing::pumpUntil;
using testing::RawClient;
using testing::TestLoop;

config::Address address(const std::string& text) {
  std::string why;
  auto a = config::parseAddress(text, &why);
  EXPECT_TRUE(a.has_value()) << text << ": " << why;
  return a.value_or(config::Address{});
}

std::string tempSocketPath(const char* tag) {
  return "/tmp/tether-" + std::string(tag) + "-" + std::to_string(getpid()) + ".sock";
}

// Accepts one connection on `l` and reports its peer address.
std::string acceptOne(uv_loop_t* loop, Listener& l, RawClient& client) {
  std::string peer;
  struct Quiet final : uv::StreamEvents {
    void onRead(ssize_t, const char*) override {}
    void onWriteFailed(int) override {}
  } events;
  uv::Stream accepted(loop, l.isUnix() ? uv::StreamKind::Pipe : uv::StreamKind::Tcp, events);
  EXPECT_EQ(l.start([&](int status) {
    ASSERT_EQ(status, 0);
    ASSERT_EQ(l.accept(accepted), 0);
    peer = peerAddress(accepted.stream());
  }), 0);
  (void)client;
  EXPECT_TRUE(pumpUntil(loop, [&] { return !peer.empty(); }));
  return peer;
}

TEST(ListenerTest, TcpPortZeroReportsTheRealPort) {
  TestLoop loop;
  std::string why;
  auto l = Listener::open(loop.get(), address("127.0.0.1:0"), {}, &why);
  ASSERT_NE(l, nullptr) << why;
  EXPECT_NE(l->port(), 0);
  EXPECT_EQ(l->address(), "127.0.0.1:" + std::to_string(l->port()));
  EXPECT_FALSE(l->isUnix());
  RawClient c;
  ASSERT_TRUE(c.connectTcp(l->port()));
  EXPECT_EQ(acceptOne(loop.get(), *l, c).rfind("127.0.0.1:", 0), 0u);
  l.reset();
  EXPECT_EQ(loop.close(), 0);
}

TEST(ListenerTest, AcceptIntoAStreamOfTheListenersKindOnly) {
  TestLoop loop;
  auto l = Listener::open(loop.get(), address("127.0.0.1:0"));
  ASSERT_NE(l, nullptr);
  struct Quiet final : uv::StreamEvents {
    void onRead(ssize_t, const char*) override {}
    void onWriteFailed(int status) override { ADD_FAILURE() << uv_strerror(status); }
  } events;
  uv::Stream pipe(loop.get(), uv::StreamKind::Pipe, events);
  uv::Stream tcp(loop.get(), uv::StreamKind::Tcp, events);
  int pipe_rc = 1, tcp_rc = 1;
  ASSERT_EQ(l->start([&](int status) {
    ASSERT_EQ(status, 0);
    pipe_rc = l->accept(pipe);  // refused: the connection stays for the right kind
    tcp_rc = l->accept(tcp);
  }), 0);
  RawClient c;
  ASSERT_TRUE(c.connectTcp(l->port()));
  ASSERT_TRUE(pumpUntil(loop.get(), [&] { return tcp_rc != 1; }));
  EXPECT_EQ(pipe_rc, UV_EINVAL);
  ASSERT_EQ(tcp_rc, 0);
  ASSERT_EQ(tcp.write("accepted"), 0);
  EXPECT_TRUE(c.readUntil(loop.get(), [](const std::string& r) { return r == "accepted"; }));
  l.reset();
  tcp.close();
  pipe.close();
  EXPECT_EQ(loop.close(), 0);
}

TEST(ListenerTest, ConnectionBeforeStartIsHandedOverByStart) {
  TestLoop loop;
  auto l = Listener::open(loop.get(), address("127.0.0.1:0"));
  ASSERT_NE(l, nullptr);
  RawClient c;
  ASSERT_TRUE(c.connectTcp(l->port()));
  for (int i = 0; i < 5; ++i) testing::pumpOnce(loop.get(), -1, 1);
  EXPECT_FALSE(acceptOne(loop.get(), *l, c).empty());
}

TEST(ListenerTest, TcpPortInUseFailsAtOpenWithTheReason) {
  TestLoop loop;
  auto first = Listener::open(loop.get(), address("127.0.0.1:0"));
  ASSERT_NE(first, nullptr);
  std::string why;
  auto second = Listener::open(loop.get(), address("127.0.0.1:" + std::to_string(first->port())), {}, &why);
  EXPECT_EQ(second, nullptr);
  EXPECT_EQ(why, "address already in use");
}

TEST(ListenerTest, Ipv6LoopbackWithBrackets) {
  {
    const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    const bool ok = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    if (probe >= 0) ::close(probe);
    if (!ok) GTEST_SKIP() << "this machine has no IPv6 loopback (::1)";
  }
  TestLoop loop;
  std::string why;
  auto l = Listener::open(loop.get(), address("[::1]:0"), {}, &why);
  ASSERT_NE(l, nullptr) << why;
  EXPECT_EQ(l->address(), "[::1]:" + std::to_string(l->port()));
  RawClient c;
  ASSERT_TRUE(c.connectTcp(l->port(), true));
  EXPECT_EQ(acceptOne(loop.get(), *l, c).rfind("[::1]:", 0), 0u);
}

TEST(ListenerTest, UnixSocketReplacesStaleFileAppliesModeAndUnlinksOnClose) {
  TestLoop loop;
  const std::string path = tempSocketPath("stale");
  {
    // A stale socket file: bound, then its owner went away without unlinking it.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    ::unlink(path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
  }
  ListenOptions options;
  options.mode = 0660;
  std::string why;
  auto l = Listener::open(loop.get(), address("unix:" + path), options, &why);
  ASSERT_NE(l, nullptr) << why;
  EXPECT_EQ(l->address(), "unix:" + path);
  EXPECT_TRUE(l->isUnix());
  EXPECT_EQ(l->port(), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  RawClient c;
  ASSERT_TRUE(c.connectUnix(path));
  EXPECT_EQ(acceptOne(loop.get(), *l, c), "unix");
  l->close();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed on close";
}

TEST(ListenerTest, LiveUnixSocketIsAddressInUseAndKept) {
  TestLoop loop;
  const std::string path = tempSocketPath("live");
  auto first = Listener::open(loop.get(), address("unix:" + path));
  ASSERT_NE(first, nullptr);
  std::string why;
  EXPECT_EQ(Listener::open(loop.get(), address("unix:" + path), {}, &why), nullptr);
  EXPECT_EQ(why, "address already in use");
  EXPECT_EQ(::access(path.c_str(), F_OK), 0) << "a live socket must not be unlinked";
}

TEST(ListenerTest, UnixPathThatIsARegularFileIsRefused) {
  TestLoop loop;
  const std::string path = tempSocketPath("file");
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  std::string why;
  EXPECT_EQ(Listener::open(loop.get(), address("unix:" + path), {}, &why), nullptr);
  EXPECT_NE(why.find("not a socket"), std::string::npos) << why;
  ::unlink(path.c_str());
}

TEST(ListenerTest, UnixSocketGroupIsApplied) {
  if (geteuid() != 0) GTEST_SKIP() << "changing a file's group to root needs root";
  TestLoop loop;
  ListenOptions options;
  options.group = "root";
  const std::string path = tempSocketPath("grp0");
  std::string why;
  auto l = Listener::open(loop.get(), address("unix:" + path), options, &why);
  ASSERT_NE(l, nullptr) << why;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 0u);
}

TEST(ListenerTest, UnknownGroupIsRefused) {
  TestLoop loop;
  ListenOptions options;
  options.group = "no-such-group-tether";
  std::string why;
  EXPECT_EQ(Listener::open(loop.get(), address("unix:" + tempSocketPath("grp")), options, &why), nullptr);
  EXPECT_EQ(why, "unknown group \"no-such-group-tether\"");
}

// Socket activation in-process: a real listening socket is placed at fd 3 (SD_LISTEN_FDS_START)
// with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, as systemd or systemd-socket-activate would.
class SystemdListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_fd3_ = ::fcntl(3, F_DUPFD_CLOEXEC, 100);  // whatever fd 3 was, kept for TearDown
    source_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(source_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(source_, 16), 0);
    socklen_t len = sizeof sa;
    ::getsockname(source_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    if (source_ != 3) {  // fd 3 may have been free, and then the socket is there already
      ASSERT_EQ(::dup2(source_, 3), 3);
      ::close(source_);
    }
    ::setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "web", 1);
  }
  void TearDown() override {
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (saved_fd3_ >= 0) {
      ::dup2(saved_fd3_, 3);
      ::close(saved_fd3_);
    } else {
      ::close(3);
    }
  }
  int saved_fd3_ = -1;
  int source_ = -1;
  uint16_t port_ = 0;
};

TEST_F(SystemdListenerTest, NamedSocketIsAdoptedWithItsBoundAddress) {
  TestLoop loop;
  auto sockets = systemdSockets();
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].name, "web");
  EXPECT_EQ(sockets[0].fd, 3);
  std::string why;
  auto l = Listener::open(loop.get(), address("systemd:web"), {}, &why);
  ASSERT_NE(l, nullptr) << why;
  EXPECT_EQ(l->address(), "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(l->port(), port_);
  EXPECT_TRUE(systemdSockets()[0].taken);
  RawClient c;
  ASSERT_TRUE(c.connectTcp(port_));
  EXPECT_FALSE(acceptOne(loop.get(), *l, c).empty());
  // The listener owns fd 3 now and closes it; TearDown puts the old fd 3 back.
}

TEST_F(SystemdListenerTest, NameNotPassedSaysWhichWere) {
  TestLoop loop;
  std::string why;
  EXPECT_EQ(Listener::open(loop.get(), address("systemd:api"), {}, &why), nullptr);
  EXPECT_EQ(why, "systemd socket \"api\" was not passed (passed: web)");
}

TEST(ListenerTest, SystemdNameWithoutSocketActivationSaysSo) {
  TestLoop loop;
  ::unsetenv("LISTEN_FDS");
  std::string why;
  EXPECT_EQ(Listener::open(loop.get(), address("systemd:web"), {}, &why), nullptr);
  EXPECT_NE(why.find("no sockets passed by systemd"), std::string::npos) << why;
}

}  // namespace
}  // namespace tether
