#include "fuzz_request_path.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "tether/common/log.hpp"
#include "tether/proxy/proxy.hpp"

namespace tether::proxy::test {
namespace {

// The upstream: answers every read with one small response (it does not parse; the proxy does).
struct TinyUpstream {
  uv_pipe_t server{};
  static void onConnection(uv_stream_t* s, int status) {
    if (status != 0) return;
    auto* client = new uv_pipe_t{};
    uv_pipe_init(s->loop, client, 0);
    if (uv_accept(s, reinterpret_cast<uv_stream_t*>(client)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(client), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
      return;
    }
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(client),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char b[65536];
          *buf = uv_buf_init(b, sizeof b);
        },
        [](uv_stream_t* c, ssize_t n, const uv_buf_t*) {
          if (n < 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(c), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
            return;
          }
          static char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
          uv_buf_t out = uv_buf_init(kResponse, sizeof kResponse - 1);
          uv_try_write(c, &out, 1);
        });
  }
};

int connectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) abort();
  return fd;
}

struct World {
  uv_loop_t loop{};
  TinyUpstream upstream;
  std::unique_ptr<Proxy> proxy;
  std::string proxy_path, proxy_h2_path, upstream_path;
  int good_fd = -1;

  World() {
    signal(SIGPIPE, SIG_IGN);  // as the daemon does: a write to a gone peer is an EPIPE error
    uv_loop_init(&loop);
    std::string base = "/tmp/tpfz" + std::to_string(getpid());
    proxy_path = base + "p.sock";
    proxy_h2_path = base + "h.sock";
    upstream_path = base + "u.sock";
    unlink(upstream_path.c_str());
    uv_pipe_init(&loop, &upstream.server, 0);
    if (uv_pipe_bind(&upstream.server, upstream_path.c_str()) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&upstream.server), 128, TinyUpstream::onConnection) != 0) {
      abort();
    }
    log::Target quiet;
    quiet.level = spdlog::level::off;
    log::configure("fuzz", quiet);
    Settings s;
    UpstreamSettings u;
    u.name = "app";
    u.servers.push_back(*config::parseAddress("unix:" + upstream_path));
    s.upstreams.push_back(u);
    ServerSettings srv;
    srv.listens.push_back(*config::parseAddress("unix:" + proxy_path));
    srv.access_logs.clear();  // access_log off
    srv.client_max_body_size = 4096;
    srv.client_header_timeout = Millis(200);
    srv.client_body_timeout = Millis(200);
    LocationSettings loc;
    loc.path = "/";
    loc.upstream = "app";
    srv.locations.push_back(loc);
    s.servers.push_back(srv);
    ServerSettings h2 = srv;
    h2.listens = {*config::parseAddress("unix:" + proxy_h2_path)};
    h2.http2.enabled = true;
    h2.http2.max_concurrent_streams = 8;  // small, so that limits and rapid reset are reachable
    s.servers.push_back(h2);
    proxy = std::make_unique<Proxy>(&loop, std::move(s));
    if (!proxy->start().empty()) abort();
    good_fd = connectUnix(proxy_path);
  }

  // Runs the loop until `done` or a bound on iterations (a wedged connection is a finding).
  template <typename F>
  bool runUntil(F done) {
    for (int i = 0; i < 20000; ++i) {
      if (done()) return true;
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    return done();
  }
};

World& world() {
  static World* w = new World();  // lives for the whole fuzzing process
  return *w;
}

bool peerClosed(int fd) {
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN;
  }
}

}  // namespace

namespace {

int fuzzConnection(const std::string& path, std::string_view prefix, const uint8_t* data, size_t size) {
  World& w = world();
  int fd = connectUnix(path);
  if (!prefix.empty() && write(fd, prefix.data(), prefix.size()) != static_cast<ssize_t>(prefix.size())) abort();
  size_t off = 0;
  // Write what the socket takes, letting the loop drain it.
  w.runUntil([&] {
    while (off < size) {
      ssize_t n = write(fd, data + off, size - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    return off >= size;
  });
  shutdown(fd, SHUT_WR);
  bool closed = w.runUntil([&] { return peerClosed(fd); });
  close(fd);
  if (!closed) {
    // The client left (end of file): any connection state must end; timers cover slow paths.
    uint64_t deadline = uv_now(&w.loop) + 2000;
    while (w.proxy->openConnections() > 1 && uv_now(&w.loop) < deadline) uv_run(&w.loop, UV_RUN_ONCE);
  }
  // The long-lived connection still gets answers.
  static const char kGood[] = "GET /ok HTTP/1.1\r\nHost: f\r\n\r\n";
  if (write(w.good_fd, kGood, sizeof kGood - 1) != static_cast<ssize_t>(sizeof kGood - 1)) abort();
  std::string got;
  bool answered = w.runUntil([&] {
    char buf[4096];
    ssize_t n = read(w.good_fd, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return got.find("\r\n\r\nok") != std::string::npos;
  });
  if (!answered) abort();
  return 0;
}

}  // namespace

int fuzzRequestPath(const uint8_t* data, size_t size) { return fuzzConnection(world().proxy_path, {}, data, size); }

int fuzzHttp2Path(const uint8_t* data, size_t size) {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  return fuzzConnection(world().proxy_h2_path, kPreface, data, size);
}

}  // namespace tether::proxy::test
