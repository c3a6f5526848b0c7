// uv::Stream, the one write path (issue 11), tested as libuv tests its streams: real socketpairs
// and TCP loopback, a reader that does not read to force backpressure, a peer that resets to
// force a write error; every test ends with no handle on the loop and uv_loop_close() == 0.
#include "tether/common/uv_stream.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/common/uv_kit.hpp"

namespace tether::uv {
namespace {

// A stream's owner that records what it hears, in order.
class Owner : public StreamEvents {
 public:
  Owner(uv_loop_t* loop, StreamKind kind) : stream(loop, kind, *this) { stream.setReadBuffer(buf_, sizeof buf_); }
  virtual ~Owner() = default;

  void onConnect(int status) override {
    connect_status = status;
    events.push_back("connect");
  }
  void onRead(ssize_t nread, const char* data) override {
    if (nread > 0) {
      received.append(data, static_cast<size_t>(nread));
    } else {
      read_error = static_cast<int>(nread);
      events.push_back("read_error");
    }
  }
  void onDrained() override {
    ++drained;
    events.push_back("drained");
  }
  void onWriteProgress() override { ++progress; }
  void onWriteFailed(int status) override {
    write_failures.push_back(status);
    events.push_back("write_failed");
    if (close_on_failure) stream.close();
  }
  void onClosed() override {
    ++closed;
    events.push_back("closed");
    if (on_closed) on_closed();
  }

  Stream stream;
  std::string received;
  std::vector<std::string> events;
  std::vector<int> write_failures;
  int connect_status = 1;
  int read_error = 0;
  int drained = 0;
  int progress = 0;
  int closed = 0;
  bool close_on_failure = false;
  std::function<void()> on_closed;

 private:
  char buf_[64 * 1024];
};

std::string pattern(size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + seed) % 251);
  return s;
}

class UvStream : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }  // as every tether daemon does
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);  // the close callbacks free the handles
    EXPECT_EQ(openHandles(&loop_), 0u);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Runs the loop until `done` holds; fails the test after `max_turns` turns without it.
  bool runUntil(const std::function<bool()>& done, int max_turns = 100000) {
    for (int i = 0; i < max_turns && !done(); ++i) uv_run(&loop_, UV_RUN_ONCE);
    return done();
  }

  // Two connected unix sockets as streams; small kernel buffers so that a few hundred KiB fill
  // them (the kernel may round the sizes up).
  void socketPair(Owner& a, Owner& b) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    int small = 16 * 1024;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ASSERT_EQ(a.stream.open(fds[0]), 0);
    ASSERT_EQ(b.stream.open(fds[1]), 0);
  }

  uv_loop_t loop_{};
};

TEST_F(UvStream, SmallWriteGoesOutAtOnceWithNothingQueued) {
  Owner a(&loop_, StreamKind::Pipe), b(&loop_, StreamKind::Pipe);
  socketPair(a, b);
  ASSERT_EQ(b.stream.readStart(), 0);
  ASSERT_EQ(a.stream.write("hello, "), 0);
  uv_buf_t bufs[] = {uv_buf_init(const_cast<char*>("wor"), 3), uv_buf_init(const_cast<char*>("ld"), 2)};
  ASSERT_EQ(a.stream.write(bufs, 2), 0);
  EXPECT_EQ(a.stream.pending(), 0u);
  EXPECT_EQ(a.stream.written(), 12u);
  ASSERT_TRUE(runUntil([&] { return b.received.size() == 12; }));
  EXPECT_EQ(b.received, "hello, world");
  EXPECT_EQ(a.drained, 0);  // nothing was ever queued, so nothing drained
  a.stream.close();
  b.stream.close();
  ASSERT_TRUE(runUntil([&] { return a.closed == 1 && b.closed == 1; }));
  EXPECT_FALSE(a.stream);
  EXPECT_EQ(a.stream.stream(), nullptr);
}

TEST_F(UvStream, SlowReaderQueuesTheRemainderOfTheWritevPiecesAndDrainsInOrder) {
  Owner a(&loop_, StreamKind::Pipe), b(&loop_, StreamKind::Pipe);
  socketPair(a, b);
  const std::string p1 = pattern(300000, 1), p2 = pattern(70001, 2), p3 = pattern(250000, 3), p4 = pattern(5, 4);
  uv_buf_t bufs[] = {uv_buf_init(const_cast<char*>(p1.data()), static_cast<unsigned>(p1.size())),
                     uv_buf_init(const_cast<char*>(p2.data()), static_cast<unsigned>(p2.size())),
                     uv_buf_init(const_cast<char*>(p3.data()), static_cast<unsigned>(p3.size()))};
  const size_t total = p1.size() + p2.size() + p3.size();
  ASSERT_EQ(a.stream.write(bufs, 3), 0);
  // The kernel took some (uv_try_write), the rest is queued: the sum is exact.
  const size_t queued = a.stream.pending();
  EXPECT_GT(queued, 0u);
  EXPECT_LT(queued, total);
  EXPECT_EQ(a.stream.written() + queued, total);
  // With bytes queued a new write goes behind them whole, never ahead.
  ASSERT_EQ(a.stream.write(p4), 0);
  EXPECT_EQ(a.stream.pending(), queued + p4.size());
  // The peer starts reading: the queue drains, once, and the bytes arrive in order.
  ASSERT_EQ(b.stream.readStart(), 0);
  ASSERT_TRUE(runUntil([&] { return a.drained == 1; }));
  EXPECT_EQ(a.stream.pending(), 0u);
  EXPECT_EQ(a.stream.written(), total + p4.size());
  ASSERT_TRUE(runUntil([&] { return b.received.size() == total + p4.size(); }));
  EXPECT_TRUE(b.received == p1 + p2 + p3 + p4);
  EXPECT_TRUE(a.write_failures.empty());
}

TEST_F(UvStream, PeerResetFailsTheQueuedWriteAndCloseComesAfterIt) {
  Handle<uv_tcp_t> listener(&loop_);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(uv_tcp_bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), 0), 0);
  int len = sizeof addr;
  ASSERT_EQ(uv_tcp_getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Owner server(&loop_, StreamKind::Tcp);
  listener->data = &server;
  ASSERT_EQ(uv_listen(listener.stream(), 8,
                      [](uv_stream_t* l, int status) {
                        ASSERT_EQ(status, 0);
                        auto* s = static_cast<Owner*>(l->data);
                        ASSERT_EQ(uv_accept(l, s->stream.stream()), 0);
                        s->events.push_back("accepted");
                      }),
            0);
  Owner client(&loop_, StreamKind::Tcp);
  ASSERT_EQ(client.stream.connect(reinterpret_cast<sockaddr*>(&addr)), 0);
  ASSERT_TRUE(runUntil([&] { return client.connect_status == 0 && !server.events.empty(); }));
  listener.close();

  // The server never reads: a few MiB fill both kernel buffers and the rest is queued.
  uv_os_fd_t client_fd = -1;
  ASSERT_EQ(uv_fileno(client.stream.raw(), &client_fd), 0);
  int small = 16 * 1024;
  setsockopt(client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::string big = pattern(8 << 20, 7);
  ASSERT_EQ(client.stream.write(big), 0);
  ASSERT_GT(client.stream.pending(), 0u);
  // The server resets (SO_LINGER 0, and unread data would reset anyway).
  uv_os_fd_t fd = -1;
  ASSERT_EQ(uv_fileno(server.stream.raw(), &fd), 0);
  linger l{1, 0};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
  server.stream.close();

  client.close_on_failure = true;
  ASSERT_TRUE(runUntil([&] { return client.closed == 1; }));
  ASSERT_EQ(client.write_failures.size(), 1u);
  EXPECT_TRUE(client.write_failures[0] == UV_ECONNRESET || client.write_failures[0] == UV_EPIPE)
      << uv_err_name(client.write_failures[0]);
  // Nothing after the close: the failure, then the close callback.
  EXPECT_EQ(client.events, (std::vector<std::string>{"connect", "write_failed", "closed"}));
  EXPECT_EQ(client.stream.write("late"), UV_ECANCELED);
  EXPECT_EQ(server.closed, 1);
}

TEST_F(UvStream, OwnerFreedInItsCloseCallbackAfterEveryWriteCallback) {
  // The proxy's connections: close() with writes queued, the owner deletes itself in onClosed.
  auto* a = new Owner(&loop_, StreamKind::Pipe);
  Owner b(&loop_, StreamKind::Pipe);
  socketPair(*a, b);
  bool freed = false;
  a->on_closed = [&] {
    // The cancelled write reached nobody: the owner asked for the close.
    EXPECT_EQ(a->events, std::vector<std::string>{"closed"});
    freed = true;
    delete a;
  };
  ASSERT_EQ(a->stream.write(pattern(1 << 20, 9)), 0);
  ASSERT_GT(a->stream.pending(), 0u);
  a->stream.close();
  a->stream.close();  // twice is harmless
  EXPECT_EQ(a->stream.write("more"), UV_ECANCELED);
  EXPECT_EQ(a->stream.readStart(), UV_ECANCELED);
  ASSERT_TRUE(runUntil([&] { return freed; }));
  b.stream.close();
}

TEST_F(UvStream, StreamDestroyedWithWritesQueuedReportsNothingMore) {
  Owner b(&loop_, StreamKind::Pipe);
  {
    Owner a(&loop_, StreamKind::Pipe);
    socketPair(a, b);
    ASSERT_EQ(a.stream.write(pattern(1 << 20, 5)), 0);
    ASSERT_GT(a.stream.pending(), 0u);
  }
  // libuv cancels the queued write after `a` is gone; its callback must find no owner.
  uv_run(&loop_, UV_RUN_NOWAIT);
  ASSERT_EQ(b.stream.readStart(), 0);
  ASSERT_TRUE(runUntil([&] { return b.read_error != 0; }));
  EXPECT_EQ(b.read_error, UV_EOF);
  b.stream.close();
}

TEST_F(UvStream, ReadStartAndStopAreIdempotentAndEndOfFileStopsReading) {
  Owner a(&loop_, StreamKind::Pipe), b(&loop_, StreamKind::Pipe);
  socketPair(a, b);
  ASSERT_EQ(b.stream.readStart(), 0);
  ASSERT_EQ(b.stream.readStart(), 0);
  EXPECT_TRUE(b.stream.reading());
  b.stream.readStop();
  b.stream.readStop();
  EXPECT_FALSE(b.stream.reading());
  ASSERT_EQ(a.stream.write("ping"), 0);
  for (int i = 0; i < 3; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(b.received, "");  // not reading: the bytes wait in the kernel
  ASSERT_EQ(b.stream.readStart(), 0);
  ASSERT_TRUE(runUntil([&] { return b.received == "ping"; }));
  a.stream.close();
  ASSERT_TRUE(runUntil([&] { return b.read_error != 0; }));
  EXPECT_EQ(b.read_error, UV_EOF);
  EXPECT_FALSE(b.stream.reading());
  b.stream.close();
}

TEST_F(UvStream, ReadStartWithoutABufferIsRefused) {
  struct NoBuffer final : StreamEvents {
    void onRead(ssize_t, const char*) override { ADD_FAILURE() << "read without a buffer"; }
    void onWriteFailed(int) override {}
  } events;
  Stream s(&loop_, StreamKind::Tcp, events);
  ASSERT_EQ(s.status(), 0);
  EXPECT_EQ(s.readStart(), UV_EINVAL);
  EXPECT_EQ(s.pipe(), nullptr);
  EXPECT_NE(s.tcp(), nullptr);
}

TEST_F(UvStream, ConnectToAMissingSocketFailsInTheCallback) {
  Owner c(&loop_, StreamKind::Pipe);
  ASSERT_EQ(c.stream.connect("/nonexistent/tether-uv-stream.sock"), 0);
  ASSERT_TRUE(runUntil([&] { return c.connect_status != 1; }));
  EXPECT_EQ(c.connect_status, UV_ENOENT);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 9, &addr);
  EXPECT_EQ(c.stream.connect(reinterpret_cast<const sockaddr*>(&addr)), UV_EINVAL);  // a pipe takes a path
}

// An owner that outlives the loop's run: closeLoop() closes its stream and its timer, libuv
// cancels the queued write, and the owner frees itself in that callback while both closes are
// still pending; then a second owner destroyed after closeLoop returned. Nothing leaks (LSan),
// nothing is freed twice (ASan), libuv's close assertions hold.
TEST(UvStreamCloseLoop, OwnersDestroyedDuringAndAfterCloseLoopFreeTheirHandles) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop{};
  ASSERT_EQ(uv_loop_init(&loop), 0);
  struct SelfFreeing final : Owner {
    explicit SelfFreeing(uv_loop_t* l) : Owner(l, StreamKind::Pipe), timer(l) {}
    void onWriteFailed(int status) override {
      EXPECT_EQ(status, UV_ECANCELED);
      delete this;
    }
    Handle<uv_timer_t> timer;
  };
  auto* during = new SelfFreeing(&loop);
  auto after = std::make_unique<Owner>(&loop, StreamKind::Pipe);
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ASSERT_EQ(during->stream.open(fds[0]), 0);
  ASSERT_EQ(after->stream.open(fds[1]), 0);
  ASSERT_EQ(during->stream.write(pattern(1 << 20, 3)), 0);
  ASSERT_GT(during->stream.pending(), 0u);
  uv_timer_start(during->timer.get(), [](uv_timer_t*) {}, 60000, 0);
  EXPECT_EQ(closeLoop(&loop), 0);
  EXPECT_EQ(after->closed, 0);
  after->stream.close();  // the handle is closed already: onClosed comes at once
  EXPECT_EQ(after->closed, 1);
  after.reset();
}

}  // namespace
}  // namespace tether::uv
