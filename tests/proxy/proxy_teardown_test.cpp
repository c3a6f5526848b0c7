// In-process teardown tests (issue 11), in libuv's own style (test/test-tcp-close-reset.c): the
// proxy, an upstream and raw client sockets on one loop in the test's thread; each teardown path
// of a client connection (end of file, reset, write error, each timeout, upstream failure, the
// retry on a fresh connection, drain) is driven to its end, the proxy's connection count checked,
// and then the proxy destroyed and the loop closed: uv_walk must find no handle and
// uv_loop_close() must return 0. A path that leaked a connection, timer or upstream socket fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "../common/loop_support.hpp"
#include "tether/common/log.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/proxy/proxy.hpp"

namespace tether::proxy::test {
namespace {

using tether::testing::pumpUntil;

// The upstream, on the test's loop. By path: /fast answers 200 at once (keep-alive); /hold never
// answers until answerHeld(); /close closes without answering; /big sends an 8 MiB body; /stale
// answers, then closes the connection when its next request arrives (an upstream whose
// keep-alive timeout ran out just as the proxy reused the connection).
class LoopUpstream {
 public:
  LoopUpstream(uv_loop_t* loop, std::string path) : path_(std::move(path)), server_(loop, 0) {
    unlink(path_.c_str());
    server_->data = this;
    if (uv_pipe_bind(server_.get(), path_.c_str()) != 0 ||
        uv_listen(server_.stream(), 64, [](uv_stream_t* s, int status) {
          if (status == 0) static_cast<LoopUpstream*>(s->data)->accept();
        }) != 0) {
      ADD_FAILURE() << "upstream cannot listen on " << path_;
    }
  }
  ~LoopUpstream() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  size_t accepted() const { return accepted_; }
  size_t open() const { return conns_.size(); }
  size_t requests() const { return requests_; }
  void answerHeld() {
    for (auto& c : conns_) {
      for (; c->held > 0; --c->held) send(*c, kOk);
    }
  }

 private:
  static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  struct Conn {
    explicit Conn(uv_loop_t* loop) : pipe(loop, 0) {}
    uv::Handle<uv_pipe_t> pipe;
    std::string in;
    int held = 0;
    bool close_next = false;
    LoopUpstream* owner = nullptr;
    std::list<std::unique_ptr<Conn>>::iterator pos;
  };
  struct Write {
    uv_write_t req;
    std::string bytes;
  };

  void accept() {
    auto c = std::make_unique<Conn>(server_->loop);
    if (uv_accept(server_.stream(), c->pipe.stream()) != 0) return;
    ++accepted_;
    c->owner = this;
    c->pipe->data = c.get();
    conns_.push_front(std::move(c));
    conns_.front()->pos = conns_.begin();
    uv_read_start(
        conns_.front()->pipe.stream(),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char b[65536];
          *buf = uv_buf_init(b, sizeof b);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* conn = static_cast<Conn*>(s->data);
          if (conn == nullptr || n == 0) return;
          if (n < 0) {
            conn->owner->drop(*conn);
            return;
          }
          conn->in.append(buf->base, static_cast<size_t>(n));
          conn->owner->serve(*conn);
        });
  }

  void serve(Conn& c) {
    for (size_t end; (end = c.in.find("\r\n\r\n")) != std::string::npos;) {
      std::string head = c.in.substr(0, end);
      c.in.erase(0, end + 4);
      ++requests_;
      if (c.close_next) {
        drop(c);
        return;
      }
      std::string path = head.substr(head.find(' ') + 1);
      path = path.substr(0, path.find(' '));
      if (path == "/hold") {
        ++c.held;
      } else if (path == "/close") {
        drop(c);
        return;
      } else if (path == "/big") {
        send(c, "HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\n\r\n" + std::string(8 << 20, 'x'));
      } else {
        send(c, kOk);
        c.close_next = path == "/stale";
      }
    }
  }

  // The write's memory is its own: its callback (ECANCELED after a close) touches no Conn.
  void send(Conn& c, std::string_view bytes) {
    auto* w = new Write{{}, std::string(bytes)};
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    if (uv_write(&w->req, c.pipe.stream(), &buf, 1, [](uv_write_t* r, int) { delete reinterpret_cast<Write*>(r); }) != 0) {
      delete w;
    }
  }

  void drop(Conn& c) { conns_.erase(c.pos); }  // the Handle closes; its memory goes in the callback

  std::string path_;
  uv::Handle<uv_pipe_t> server_;
  std::list<std::unique_ptr<Conn>> conns_;
  size_t accepted_ = 0;
  size_t requests_ = 0;
};

// A non-blocking TCP client socket on the proxy's listener.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE() << "connect: " << strerror(errno);
    fcntl(fd_, F_SETFL, O_NONBLOCK);
  }
  ~RawClient() { close(); }
  int fd() const { return fd_; }
  void send(std::string_view bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }
  // Reads what is there; false once the peer closed (or reset) the connection.
  bool readSome() {
    char buf[65536];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        got_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return false;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
  const std::string& got() const { return got_; }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  void reset() {  // SO_LINGER 0: the kernel sends RST
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

 private:
  int fd_ = -1;
  std::string got_;
};

class ProxyTeardown : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as the daemon: a write to a gone peer is an EPIPE error
    log::Target quiet;
    quiet.level = spdlog::level::off;
    log::configure("proxy_teardown_test", quiet);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    base_ = "/tmp/tptd" + std::to_string(getpid());
    upstream_ = std::make_unique<LoopUpstream>(&loop_, base_ + "u.sock");
  }

  void TearDown() override {
    // Every path ends the same way: the proxy goes, and nothing may be left on the loop.
    proxy_.reset();
    upstream_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv::openHandles(&loop_), 0u) << "a handle outlived the proxy";
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // One server on 127.0.0.1:0 with one location over the loop upstream; `tune` adjusts it.
  void start(const std::function<void(ServerSettings&, LocationSettings&)>& tune = {},
             const std::string& upstream_path = {}) {
    Settings s;
    UpstreamSettings u;
    u.name = "app";
    u.servers.push_back(*config::parseAddress("unix:" + (upstream_path.empty() ? upstream_->path() : upstream_path)));
    u.keepalive = 8;
    u.control_path = base_ + "c.sock";  // nobody listens: cancels queue, the client retries
    s.upstreams.push_back(u);
    s.shutdown_timeout = Millis(300);
    ServerSettings srv;
    srv.listens.push_back(*config::parseAddress("127.0.0.1:0"));
    srv.access_logs.clear();  // off
    srv.client_header_timeout = Millis(150);
    srv.client_body_timeout = Millis(150);
    srv.send_timeout = Millis(150);
    srv.keepalive_timeout = Millis(150);
    LocationSettings loc;
    loc.path = "/";
    loc.upstream = "app";
    loc.on_disconnect = OnDisconnect::Interrupt;
    loc.kill_after = Millis(100);
    loc.read_timeout = Millis(150);
    loc.send_timeout = Millis(150);
    if (tune) tune(srv, loc);
    srv.locations.push_back(loc);
    s.servers.push_back(srv);
    proxy_ = std::make_unique<Proxy>(&loop_, std::move(s));
    ASSERT_EQ(proxy_->start(), "");
    auto addresses = proxy_->listening();
    ASSERT_EQ(addresses.size(), 1u);
    port_ = static_cast<uint16_t>(std::stoi(addresses[0].substr(addresses[0].rfind(':') + 1)));
  }

  bool pump(const std::function<bool()>& done, int timeout_ms = 3000) { return pumpUntil(&loop_, done, timeout_ms); }
  // The proxy closed the client connection (end of file or reset seen by the client) and holds
  // no connection any more.
  bool closedByProxy(RawClient& c) {
    return pump([&] { return !c.readSome(); }) && pump([&] { return proxy_->openConnections() == 0; });
  }
  bool upstreamConnectionsGone() { return pump([&] { return upstream_->open() == 0; }); }
  // tether_proxy_disconnects_total for one phase and cause (0 if absent).
  double disconnects(const std::string& phase, const std::string& cause) {
    std::string text = proxy_->metricsText();
    std::string key = "tether_proxy_disconnects_total{phase=\"" + phase + "\",cause=\"" + cause + "\"} ";
    size_t at = text.find(key);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + key.size()));
  }
  // The proxy answered `status` (its upstream connection closed, never pooled); the client then
  // leaves and the proxy holds no connection.
  void expectAnswerThenClientLeaves(RawClient& c, int status) {
    ASSERT_TRUE(pump([&] { c.readSome(); return statusOf(c.got()) != 0; }));
    EXPECT_EQ(statusOf(c.got()), status) << c.got();
    EXPECT_TRUE(upstreamConnectionsGone());
    c.close();
    ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
  }
  static int statusOf(const std::string& response) {
    return response.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(response.c_str() + 9) : 0;
  }

  uv_loop_t loop_{};
  std::string base_;
  std::unique_ptr<LoopUpstream> upstream_;
  std::unique_ptr<Proxy> proxy_;
  uint16_t port_ = 0;
};

// The proxy's tcp_keepalive goes through the same code as solverd's (common/tcp_keepalive.hpp):
// read back from the kernel on the accepted socket.
TEST_F(ProxyTeardown, TcpKeepaliveReachesTheAcceptedSocket) {
  start([](ServerSettings& srv, LocationSettings&) {
    srv.tcp_keepalive = {true, std::chrono::seconds(9), std::chrono::seconds(2), 5};
  });
  RawClient c(port_);
  std::vector<int> fds;
  ASSERT_TRUE(pump([&] { return !(fds = tether::testing::connectedTcpFds(&loop_)).empty(); }));
  ASSERT_EQ(fds.size(), 1u);
  auto k = tether::testing::readKeepalive(fds[0]);
  EXPECT_EQ(k.on, 1);
  EXPECT_EQ(k.idle, 9);
  EXPECT_EQ(k.interval, 2);
  EXPECT_EQ(k.count, 5);
  EXPECT_EQ(k.user_timeout_ms, 9000u + 2000u * 5);
  c.close();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
}

TEST_F(ProxyTeardown, ClientEndOfFileWhileAwaitingResponse) {
  start();
  RawClient c(port_);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { return upstream_->requests() == 1; }));
  c.close();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
  EXPECT_TRUE(upstreamConnectionsGone());  // closed, never pooled
  EXPECT_EQ(disconnects("awaiting_response", "eof"), 1);
}

TEST_F(ProxyTeardown, ClientResetWhileAwaitingResponse) {
  start();
  RawClient c(port_);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { return upstream_->requests() == 1; }));
  c.reset();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
  EXPECT_TRUE(upstreamConnectionsGone());
  EXPECT_EQ(disconnects("awaiting_response", "reset"), 1);
}

TEST_F(ProxyTeardown, ClientEndOfFileWhileIdleKeepAlive) {
  start();
  RawClient c(port_);
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { c.readSome(); return c.got().find("\r\n\r\nok") != std::string::npos; }));
  c.close();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
  EXPECT_EQ(upstream_->open(), 1u);  // the upstream connection stays pooled until the end
}

// The proxy meets the reset in a write (write error) or a read (reset), whichever comes first;
// both end in the same teardown.
TEST_F(ProxyTeardown, ClientResetMidResponseBodyWhileTheProxyWrites) {
  start([](ServerSettings& srv, LocationSettings&) { srv.send_timeout = Millis(5000); });
  RawClient c(port_);
  int small = 4096;
  setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { c.readSome(); return !c.got().empty(); }));
  c.reset();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
  EXPECT_TRUE(upstreamConnectionsGone());
  EXPECT_EQ(disconnects("response_body", "write_error") + disconnects("response_body", "reset"), 1);
}

TEST_F(ProxyTeardown, ClientHeaderTimeoutAnswers408AndCloses) {
  start();
  RawClient c(port_);
  c.send("GET /fast HTTP/1.1\r\nHo");
  EXPECT_TRUE(closedByProxy(c));
  EXPECT_EQ(statusOf(c.got()), 408) << c.got();
  EXPECT_EQ(upstream_->accepted(), 0u);
  EXPECT_EQ(disconnects("request_headers", "timeout"), 1);
}

TEST_F(ProxyTeardown, ClientBodyTimeoutIsADisconnect) {
  start();
  RawClient c(port_);
  c.send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
  EXPECT_TRUE(closedByProxy(c));
  EXPECT_TRUE(upstreamConnectionsGone());
  EXPECT_EQ(disconnects("request_body", "timeout"), 1);
}

TEST_F(ProxyTeardown, SendTimeoutOnAClientThatDoesNotRead) {
  start();
  RawClient c(port_);
  int small = 4096;
  setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { return upstream_->requests() == 1; }));
  // The client reads nothing: the proxy's writes stall until send_timeout.
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }, 5000));
  EXPECT_TRUE(upstreamConnectionsGone());
  EXPECT_EQ(disconnects("response_body", "timeout"), 1);
}

TEST_F(ProxyTeardown, KeepaliveTimeoutClosesAnIdleConnection) {
  start();
  RawClient c(port_);
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(closedByProxy(c));
  EXPECT_EQ(statusOf(c.got()), 200) << c.got();
}

TEST_F(ProxyTeardown, UpstreamReadTimeoutOnACloseLocationIs504) {
  start([](ServerSettings&, LocationSettings& loc) { loc.on_disconnect = OnDisconnect::Close; });
  RawClient c(port_);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  expectAnswerThenClientLeaves(c, 504);
}

TEST_F(ProxyTeardown, UpstreamTimeoutDeadlinePastKillAfterIs504) {
  start();  // interrupt: a cancel, kill_after for an answer, then 504
  RawClient c(port_);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  expectAnswerThenClientLeaves(c, 504);
}

TEST_F(ProxyTeardown, UpstreamTimeoutDeadlineAnsweredWithinKillAfter) {
  start([](ServerSettings&, LocationSettings& loc) { loc.kill_after = Millis(2000); });
  RawClient c(port_);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  // Past proxy_read_timeout the upstream answers (as solverd does with the interrupted result).
  uint64_t t0 = uv_now(&loop_);
  ASSERT_TRUE(pump([&] { return uv_now(&loop_) - t0 > 300; }));
  upstream_->answerHeld();
  ASSERT_TRUE(pump([&] { c.readSome(); return c.got().find("\r\n\r\nok") != std::string::npos; }));
  EXPECT_EQ(statusOf(c.got()), 200) << c.got();
  c.close();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
}

TEST_F(ProxyTeardown, UpstreamClosingWithoutAnswerIs502) {
  start();
  RawClient c(port_);
  c.send("GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
  expectAnswerThenClientLeaves(c, 502);
}

TEST_F(ProxyTeardown, UpstreamRefusingConnectionsIs502) {
  start({}, base_ + "gone.sock");  // nobody listens there
  RawClient c(port_);
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  expectAnswerThenClientLeaves(c, 502);
}

TEST_F(ProxyTeardown, StaleKeptAliveUpstreamIsRetriedOnAFreshConnection) {
  start();
  RawClient c(port_);
  c.send("GET /stale HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { c.readSome(); return c.got().find("\r\n\r\nok") != std::string::npos; }));
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] {
    c.readSome();
    return c.got().find("\r\n\r\nok", c.got().find("\r\n\r\nok") + 1) != std::string::npos;
  })) << c.got();
  EXPECT_EQ(upstream_->accepted(), 2u);  // the pooled one was stale: one fresh connection
  c.close();
  ASSERT_TRUE(pump([&] { return proxy_->openConnections() == 0; }));
}

TEST_F(ProxyTeardown, DrainClosesIdleConnectionsAndFinishesTheRequestInFlight) {
  start();
  RawClient idle(port_), busy(port_);
  idle.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { idle.readSome(); return statusOf(idle.got()) == 200; }));
  busy.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { return upstream_->requests() == 2; }));
  bool drained = false;
  proxy_->drain([&] { drained = true; });
  EXPECT_TRUE(pump([&] { return !idle.readSome(); }));  // the idle one closes at once
  upstream_->answerHeld();
  ASSERT_TRUE(pump([&] { return drained; }));
  busy.readSome();
  EXPECT_EQ(statusOf(busy.got()), 200) << busy.got();
  EXPECT_NE(busy.got().find("Connection: close"), std::string::npos) << busy.got();
  EXPECT_EQ(proxy_->openConnections(), 0u);
}

TEST_F(ProxyTeardown, ShutdownTimeoutCutsTheRequestInFlight) {
  start();
  RawClient busy(port_);
  busy.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(pump([&] { return upstream_->requests() == 1; }));
  bool drained = false;
  proxy_->drain([&] { drained = true; });
  ASSERT_TRUE(pump([&] { return drained; }));  // shutdown_timeout 300ms
  EXPECT_FALSE(busy.readSome());
  EXPECT_TRUE(upstreamConnectionsGone());
}

}  // namespace
}  // namespace tether::proxy::test
