// tether-agent's `interrupt webhook` client (agent/src/daemon/webhook.cpp) on a test loop against
// a real TCP listener. The connect callback once freed its uv_connect_t and then read the stream
// from it: under ASan, SuccessfulPostReportsTheStatusLine failed with a heap-use-after-free in the
// connect callback before the fix.
#include "daemon/webhook.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "../common/loop_support.hpp"

namespace tether::agent::daemon {
namespace {

using tether::testing::pumpUntil;
using tether::testing::TestLoop;

// A listening socket on 127.0.0.1, port 0, non-blocking so the test pumps the loop beside it.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() {
    if (conn_ >= 0) ::close(conn_);
    ::close(fd_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int fd() const { return fd_; }
  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // Accepts (once) and reads what has arrived; true once a whole request head is in.
  bool readRequest() {
    if (conn_ < 0) conn_ = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn_ < 0) return false;
    char buf[4096];
    for (ssize_t n; (n = ::recv(conn_, buf, sizeof buf, 0)) > 0;) request_.append(buf, static_cast<size_t>(n));
    return request_.find("\r\n\r\n") != std::string::npos;
  }
  void reply(const std::string& bytes) { ASSERT_EQ(::send(conn_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size())); }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  int conn_ = -1;
  uint16_t port_ = 0;
  std::string request_;
};

TEST(AgentWebhook, SuccessfulPostReportsTheStatusLine) {
  TestLoop loop;
  Listener server;
  int status = 0;
  {
    Webhook hook(loop.get(), server.url("/cancel/{id}"));
    ASSERT_EQ(hook.fire("Root=1-abc/def", [&](int s, int) { status = s; }), 0);
    ASSERT_TRUE(pumpUntil(loop.get(), [&] { return server.readRequest(); }, 5000, server.fd()));
    EXPECT_EQ(server.request().rfind("POST /cancel/Root%3D1-abc%2Fdef HTTP/1.1\r\n", 0), 0u) << server.request();
    server.reply("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    ASSERT_TRUE(pumpUntil(loop.get(), [&] { return status != 0; }));
    EXPECT_EQ(hook.inFlight(), 0u);
  }
  EXPECT_EQ(status, 202);
  EXPECT_EQ(loop.close(), 0) << "a handle was left open";
}

TEST(AgentWebhook, RefusedConnectionIsRetriedThenReportsTheError) {
  TestLoop loop;
  uint16_t closed_port = 0;
  {
    Listener gone;  // bound and closed again: nothing listens on its port any more
    closed_port = gone.port();
  }
  int status = 0;
  int tries = 0;
  {
    Webhook hook(loop.get(), "http://127.0.0.1:" + std::to_string(closed_port) + "/stop/{id}");
    ASSERT_EQ(hook.fire("job-1", [&](int s, int t) { status = s; tries = t; }), 0);
    ASSERT_TRUE(pumpUntil(loop.get(), [&] { return status != 0; }));
    EXPECT_EQ(hook.inFlight(), 0u);
  }
  EXPECT_EQ(status, UV_ECONNREFUSED);
  EXPECT_EQ(tries, Webhook::kTries);
  EXPECT_EQ(loop.close(), 0) << "a handle was left open";
}

// Answers every request on every connection with `status_line` and closes the connection;
// counts the requests.
class AnsweringServer {
 public:
  explicit AnsweringServer(std::string status_line) : status_line_(std::move(status_line)) {}
  int fd() const { return listener_.fd(); }
  std::string url(const std::string& path) const { return listener_.url(path); }
  int requests() const { return requests_; }
  void serve() {
    for (int c; (c = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
      // Blocking on this one connection: curl sends its whole request at once.
      std::string request;
      char buf[4096];
      for (ssize_t n; request.find("\r\n\r\n") == std::string::npos && (n = ::recv(c, buf, sizeof buf, 0)) > 0;) {
        request.append(buf, static_cast<size_t>(n));
      }
      ++requests_;
      const std::string reply = "HTTP/1.1 " + status_line_ + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

 private:
  Listener listener_;
  std::string status_line_;
  int requests_ = 0;
};

// One webhook fired at a service answering `status_line` to everything: what came back, and how
// many requests the service saw.
struct Outcome {
  int status = 0;
  int tries = 0;
  int requests = 0;
};
Outcome fireAt(const std::string& status_line) {
  TestLoop loop;
  AnsweringServer server(status_line);
  Outcome out;
  {
    Webhook hook(loop.get(), server.url("/cancel/{id}"));
    EXPECT_EQ(hook.fire("job-4", [&](int s, int t) { out.status = s; out.tries = t; }), 0);
    EXPECT_TRUE(pumpUntil(loop.get(), [&] { server.serve(); return out.status != 0; }, 5000, server.fd()));
  }
  out.requests = server.requests();
  EXPECT_EQ(loop.close(), 0) << "a handle was left open";
  return out;
}

TEST(AgentWebhook, ServiceAnswering500IsRetriedThenGivenUp) {
  Outcome o = fireAt("500 Internal Server Error");
  EXPECT_EQ(o.status, 500);
  EXPECT_EQ(o.tries, Webhook::kTries);
  EXPECT_EQ(o.requests, Webhook::kTries);
}

TEST(AgentWebhook, ServiceAnswering404IsNotRetried) {
  Outcome o = fireAt("404 Not Found");
  EXPECT_EQ(o.status, 404);
  EXPECT_EQ(o.tries, 1);
  EXPECT_EQ(o.requests, 1);
}

}  // namespace
}  // namespace tether::agent::daemon
