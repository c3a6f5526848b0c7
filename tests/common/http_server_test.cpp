#include "tether/common/http_server.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loop_support.hpp"
#include "tether/config/address.hpp"

namespace tether::http {
namespace {

using tether::testing::parseResponses;
using tether::testing::pumpUntil;
using tether::testing::RawClient;
using tether::testing::TestLoop;

// One server on 127.0.0.1:0 whose handler the test chooses; by default it answers
// "METHOD PATH BODY" at once, and holds requests whose path starts with /hold for the test.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    server_ = std::make_unique<Server>(loop_.get(), options, [this](std::shared_ptr<Exchange> ex) {
      ++handled_;
      order_.push_back(ex->request().path);
      if (handler_) {
        handler_(ex);
        return;
      }
      if (ex->request().path.rfind("/hold", 0) == 0) {
        ex->onDisconnect([this](DisconnectCause cause) { disconnects_.push_back(cause); });
        held_.push_back(ex);
        return;
      }
      const auto& r = ex->request();
      ex->respond(200, {{"Content-Type", "text/plain"}}, r.method + " " + r.target + " " + r.body);
    });
    std::string why;
    auto listener = Listener::open(loop_.get(), *config::parseAddress("127.0.0.1:0"), {}, &why);
    ASSERT_NE(listener, nullptr) << why;
    port_ = listener->port();
    ASSERT_EQ(server_->addListener(std::move(listener)), 0);
  }

  void TearDown() override {
    held_.clear();
    server_.reset();
    EXPECT_EQ(loop_.close(), 0) << "a handle was left open";
  }

  std::unique_ptr<RawClient> connect() {
    auto c = std::make_unique<RawClient>();
    EXPECT_TRUE(c->connectTcp(port_));
    return c;
  }

  // Sends `request` on a new connection and returns the first response.
  testing::ParsedResponse roundTrip(RawClient& c, const std::string& request, size_t count = 1) {
    EXPECT_TRUE(c.send(loop_.get(), request));
    c.readUntil(loop_.get(), [&](const std::string& d) { return parseResponses(d, c.closed()).size() >= count; });
    auto responses = parseResponses(c.received(), c.closed());
    if (responses.size() < count) {
      ADD_FAILURE() << "no complete response; received: " << c.received();
      return {};
    }
    return responses.front();
  }

  TestLoop loop_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  int handled_ = 0;
  std::vector<std::string> order_;
  std::vector<std::shared_ptr<Exchange>> held_;
  std::vector<DisconnectCause> disconnects_;
  std::function<void(std::shared_ptr<Exchange>)> handler_;
};

// tcp_keepalive IDLE INTERVAL COUNT (solverd's API): every knob and TCP_USER_TIMEOUT reach the
// accepted socket, read back from the kernel.
TEST_F(HttpServerTest, TcpKeepaliveSetsAllThreeKnobsAndTheUserTimeout) {
  ServerOptions options;
  options.tcp_keepalive = {true, std::chrono::seconds(7), std::chrono::seconds(3), 4};
  start(options);
  auto c = connect();
  std::vector<int> fds;
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return !(fds = testing::connectedTcpFds(loop_.get())).empty(); }));
  ASSERT_EQ(fds.size(), 1u);
  auto k = testing::readKeepalive(fds[0]);
  EXPECT_EQ(k.on, 1);
  EXPECT_EQ(k.idle, 7);
  EXPECT_EQ(k.interval, 3);
  EXPECT_EQ(k.count, 4);
  EXPECT_EQ(k.user_timeout_ms, 7000u + 3000u * 4);
}

TEST_F(HttpServerTest, TcpKeepaliveOffLeavesTheSocketAlone) {
  start();
  auto c = connect();
  std::vector<int> fds;
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return !(fds = testing::connectedTcpFds(loop_.get())).empty(); }));
  EXPECT_EQ(testing::readKeepalive(fds[0]).on, 0);
  EXPECT_EQ(testing::readKeepalive(fds[0]).user_timeout_ms, 0u);
}

TEST_F(HttpServerTest, SimpleGetAnsweredWithContentLength) {
  start();
  auto c = connect();
  auto r = roundTrip(*c, "GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /health?x=1 ");
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  EXPECT_FALSE(r.header("Connection"));
}

TEST_F(HttpServerTest, RequestCarriesPathQueryHeadersPeerAndRequestId) {
  Request seen;
  std::string id;
  handler_ = [&](std::shared_ptr<Exchange> ex) {
    seen = ex->request();
    id = ex->requestId();
    ex->respond(204, {}, {});
  };
  start();
  auto c = connect();
  const std::string given = "0123456789abcdef0123456789abcdef";
  auto r = roundTrip(*c, "GET /v1/jobs/7?action=kill&x=a%20b HTTP/1.1\r\nHost: a\r\nX-Request-Id: " +
                             given + "\r\nX-Solve-Key:  k1  \r\n\r\n");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.path, "/v1/jobs/7");
  EXPECT_EQ(seen.query, "action=kill&x=a%20b");
  EXPECT_EQ(seen.queryParam("action"), "kill");
  EXPECT_EQ(seen.queryParam("x"), "a b");
  EXPECT_FALSE(seen.queryParam("y"));
  ASSERT_NE(seen.header("x-solve-key"), nullptr);
  EXPECT_EQ(*seen.header("x-solve-key"), "k1");
  EXPECT_EQ(seen.peer.rfind("127.0.0.1:", 0), 0u) << seen.peer;
  EXPECT_EQ(id, given);
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  auto c = connect();
  auto r1 = roundTrip(*c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r1.body, "GET /a ");
  c->received().clear();
  auto r2 = roundTrip(*c, "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz");
  EXPECT_EQ(r2.body, "POST /b xyz");
  EXPECT_EQ(server_->stats().connections, 1u);
  EXPECT_EQ(handled_, 2);
}

TEST_F(HttpServerTest, PipelinedRequestsAnsweredInOrderOneAtATime) {
  // The first request is answered late (from a timer): the second must wait for it.
  uv::Handle<uv_timer_t> timer(loop_.get());
  std::shared_ptr<Exchange> first;
  int in_handler_while_first_pending = 0;
  handler_ = [&](std::shared_ptr<Exchange> ex) {
    if (first && !first->complete()) ++in_handler_while_first_pending;
    if (ex->request().path == "/slow") {
      first = ex;
      timer->data = &first;
      uv_timer_start(timer.get(), [](uv_timer_t* t) {
        (*static_cast<std::shared_ptr<Exchange>*>(t->data))->respond(200, {}, "slow");
      }, 20, 0);
      return;
    }
    ex->respond(200, {}, ex->request().path);
  };
  start();
  auto c = connect();
  roundTrip(*c,
            "GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n"
            "GET /three HTTP/1.1\r\nHost: a\r\n\r\n",
            3);
  auto rs = parseResponses(c->received());
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].body, "slow");
  EXPECT_EQ(rs[1].body, "/two");
  EXPECT_EQ(rs[2].body, "/three");
  EXPECT_EQ(in_handler_while_first_pending, 0);
  EXPECT_TRUE(disconnects_.empty());
  first.reset();
}

TEST_F(HttpServerTest, ChunkedRequestBodyIsDechunked) {
  start();
  auto c = connect();
  auto r = roundTrip(*c,
                     "POST /solve HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /solve hello world");
}

TEST_F(HttpServerTest, RequestSplitIntoSingleBytesIsParsed) {
  start();
  auto c = connect();
  const std::string req = "POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
  for (char ch : req) {
    ASSERT_TRUE(c->send(loop_.get(), std::string(1, ch)));
    tether::testing::pumpOnce(loop_.get(), -1, 0);
  }
  c->readUntil(loop_.get(), [](const std::string& d) { return !parseResponses(d).empty(); });
  auto rs = parseResponses(c->received());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].body, "POST /p?q=1 body");
}

struct BadRequestCase {
  const char* name;
  const char* request;
  int status;
};

class HttpServerBadRequestTest : public HttpServerTest,
                                 public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(HttpServerBadRequestTest, IsRefusedAndConnectionClosed) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), GetParam().request));
  ASSERT_TRUE(c->waitClosed(loop_.get())) << "the server kept the connection open";
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u) << c->received();
  EXPECT_EQ(rs[0].status, GetParam().status);
  EXPECT_EQ(rs[0].header("Connection"), "close");
  EXPECT_EQ(handled_, 0) << "the handler saw a bad request";
  EXPECT_EQ(server_->stats().errors, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, HttpServerBadRequestTest,
    ::testing::Values(
        BadRequestCase{"ContentLengthWithTransferEncoding",
                       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                       400},
        BadRequestCase{"DifferingDuplicateContentLength",
                       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
        BadRequestCase{"BadChunkSize",
                       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
        BadRequestCase{"ObsFoldedHeader", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", 400},
        BadRequestCase{"GarbageVersion", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400},
        BadRequestCase{"MissingHost", "GET / HTTP/1.1\r\n\r\n", 400},
        BadRequestCase{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        BadRequestCase{"ChunkedNotLastEncoding",
                       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400},
        BadRequestCase{"UnsupportedMajorVersion", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505}),
    [](const ::testing::TestParamInfo<BadRequestCase>& tp) { return std::string(tp.param.name); });

// Separate from the table: a const char* would end at the NUL.
TEST_F(HttpServerTest, NulByteInHeaderValueGets400) {
  start();
  auto c = connect();
  const std::string req("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 36);
  ASSERT_TRUE(c->send(loop_.get(), req));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 400);
}

TEST_F(HttpServerTest, ErrorAnswersAreReportedToTheDaemonWithReasonAndPeer) {
  ServerOptions o;
  std::vector<std::string> reported;
  o.on_error = [&](int status, const std::string& reason, const std::string& peer) {
    reported.push_back(std::to_string(status) + " " + reason + " " + peer.substr(0, 10));
  };
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].rfind("400 HPE_INVALID_CHUNK_SIZE", 0), 0u) << reported[0];
  EXPECT_NE(reported[0].find(" 127.0.0.1:"), std::string::npos) << reported[0];
}

TEST_F(HttpServerTest, ContentLengthOverLimitGets413BeforeTheBody) {
  ServerOptions o;
  o.limits.max_body_size = 100;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"));
  ASSERT_TRUE(c->readUntil(loop_.get(), [](const std::string& d) { return !parseResponses(d).empty(); }));
  EXPECT_EQ(parseResponses(c->received())[0].status, 413);
  EXPECT_TRUE(c->waitClosed(loop_.get()));
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServerTest, ChunkedBodyOverLimitGets413) {
  ServerOptions o;
  o.limits.max_body_size = 8;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(),
                      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 413);
}

TEST_F(HttpServerTest, OversizedHeadersGet431) {
  ServerOptions o;
  o.limits.max_header_size = 1024;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4096, 'x') + "\r\n\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 431);
}

TEST_F(HttpServerTest, TooManyHeadersGet431) {
  ServerOptions o;
  o.limits.max_headers = 10;
  start(o);
  auto c = connect();
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 20; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  ASSERT_TRUE(c->send(loop_.get(), req + "\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 431);
}

TEST_F(HttpServerTest, SlowlorisHeaderGets408AfterHeaderTimeout) {
  ServerOptions o;
  o.header_timeout_ms = 100;
  start(o);
  auto c = connect();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->send(loop_.get(), "GET / HTTP/1.1\r\nHost: a\r\nX-A: "));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  const auto waited = std::chrono::steady_clock::now() - t0;
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 408);
  EXPECT_GE(waited, std::chrono::milliseconds(90));
}

TEST_F(HttpServerTest, SilentConnectionIsClosedWithoutAnAnswerAfterHeaderTimeout) {
  ServerOptions o;
  o.header_timeout_ms = 50;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  EXPECT_EQ(c->received(), "");
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionClosedAfterKeepaliveTimeout) {
  ServerOptions o;
  o.keepalive_timeout_ms = 50;
  start(o);
  auto c = connect();
  roundTrip(*c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  EXPECT_EQ(parseResponses(c->received(), true).size(), 1u);
}

TEST_F(HttpServerTest, StreamedResponseIsChunkedAndEndsWithFinish) {
  uv::Handle<uv_timer_t> timer(loop_.get());
  struct Stream {
    std::shared_ptr<Exchange> ex;
    int sent = 0;
  } stream;
  handler_ = [&](std::shared_ptr<Exchange> ex) {
    ASSERT_TRUE(ex->startStream(200, {{"Content-Type", "application/x-ndjson"}}));
    stream.ex = ex;
    timer->data = &stream;
    uv_timer_start(timer.get(), [](uv_timer_t* t) {
      auto* s = static_cast<Stream*>(t->data);
      s->ex->write("{\"event\":\"log\",\"n\":" + std::to_string(s->sent) + "}\n");
      if (++s->sent == 3) {
        s->ex->finish();
        uv_timer_stop(t);
      }
    }, 5, 5);
  };
  start();
  auto c = connect();
  auto r = roundTrip(*c, "POST /v1/solve HTTP/1.1\r\nHost: a\r\nAccept: application/x-ndjson\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body, "{\"event\":\"log\",\"n\":0}\n{\"event\":\"log\",\"n\":1}\n{\"event\":\"log\",\"n\":2}\n");
  EXPECT_TRUE(stream.ex->complete());
  EXPECT_TRUE(disconnects_.empty());
}

TEST_F(HttpServerTest, Http10StreamEndsWithConnectionClose) {
  handler_ = [&](std::shared_ptr<Exchange> ex) {
    ex->startStream(200, {});
    ex->write("part1 ");
    ex->write("part2");
    ex->finish();
  };
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET / HTTP/1.0\r\n\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(rs[0].chunked);
  EXPECT_EQ(rs[0].body, "part1 part2");
  EXPECT_EQ(rs[0].header("Connection"), "close");
}

TEST_F(HttpServerTest, DisconnectCallbackFiresWhenClientClosesBeforeResponse) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  EXPECT_TRUE(held_[0]->connected());
  c->close();
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return disconnects_.size() == 1; }));
  EXPECT_EQ(disconnects_[0], DisconnectCause::Eof);
  EXPECT_FALSE(held_[0]->connected());
  EXPECT_FALSE(held_[0]->respond(200, {}, "late")) << "answering a gone client must be refused";
  EXPECT_TRUE(pumpUntil(loop_.get(), [&] { return server_->stats().connections == 0; }));
  EXPECT_EQ(server_->stats().disconnects, 1u);
  EXPECT_EQ(server_->stats().in_flight, 0u);
}

TEST_F(HttpServerTest, DisconnectCallbackReportsResetForRst) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  c->reset();
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return disconnects_.size() == 1; }));
  EXPECT_EQ(disconnects_[0], DisconnectCause::Reset);
}

TEST_F(HttpServerTest, DisconnectCallbackFiresMidStream) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  ASSERT_TRUE(held_[0]->startStream(200, {}));
  ASSERT_TRUE(held_[0]->write("first"));
  ASSERT_TRUE(c->readUntil(loop_.get(), [](const std::string& d) { return d.find("first") != std::string::npos; }));
  c->close();
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return disconnects_.size() == 1; }));
  EXPECT_FALSE(held_[0]->write("second"));
}

TEST_F(HttpServerTest, NoDisconnectCallbackForCompletedRequest) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  ASSERT_TRUE(held_[0]->respond(200, {}, "done"));
  ASSERT_TRUE(c->readUntil(loop_.get(), [](const std::string& d) { return !parseResponses(d).empty(); }));
  c->close();
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return server_->stats().connections == 0; }));
  EXPECT_TRUE(disconnects_.empty());
  EXPECT_EQ(server_->stats().disconnects, 0u);
}

TEST_F(HttpServerTest, PipelinedBytesWhileAnsweringAreKeptNotADisconnect) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  ASSERT_TRUE(c->send(loop_.get(), "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"));
  // Let the server read the pipelined bytes while /hold is pending.
  for (int i = 0; i < 10; ++i) tether::testing::pumpOnce(loop_.get(), -1, 1);
  EXPECT_EQ(handled_, 1) << "the next request must wait for the pending response";
  EXPECT_TRUE(disconnects_.empty());
  held_[0]->respond(200, {}, "held");
  c->readUntil(loop_.get(), [](const std::string& d) { return parseResponses(d).size() >= 2; });
  auto rs = parseResponses(c->received());
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].body, "held");
  EXPECT_EQ(rs[1].body, "GET /next ");
  EXPECT_TRUE(disconnects_.empty());
}

TEST_F(HttpServerTest, ConnectionCloseRequestClosesAfterResponse) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  ASSERT_TRUE(c->waitClosed(loop_.get()));
  auto rs = parseResponses(c->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].header("Connection"), "close");
}

TEST_F(HttpServerTest, Http10KeepAliveIsConfirmed) {
  start();
  auto c = connect();
  auto r = roundTrip(*c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(r.header("Connection"), "keep-alive");
  c->received().clear();
  auto r2 = roundTrip(*c, "GET /again HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r2.body, "GET /again ");
  EXPECT_TRUE(c->waitClosed(loop_.get()));
}

TEST_F(HttpServerTest, HeadResponseHasLengthButNoBody) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n"));
  c->readUntil(loop_.get(), [](const std::string& d) { return d.find("GET /y ") != std::string::npos; });
  EXPECT_EQ(c->received().find("HEAD /x"), std::string::npos) << c->received();
  EXPECT_NE(c->received().find("Content-Length: 8\r\n"), std::string::npos);
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  ASSERT_TRUE(c->readUntil(loop_.get(), [](const std::string& d) { return d.find("100 Continue") != std::string::npos; }));
  ASSERT_TRUE(c->send(loop_.get(), "abc"));
  c->readUntil(loop_.get(), [](const std::string& d) { return !parseResponses(d).empty(); });
  auto rs = parseResponses(c->received());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].body, "POST /e abc");
}

TEST_F(HttpServerTest, AbandonedExchangeIsAnswered500) {
  handler_ = [](std::shared_ptr<Exchange>) {};
  start();
  auto c = connect();
  auto r = roundTrip(*c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 500);
}

TEST_F(HttpServerTest, DrainClosesIdleAnswersInFlightWithConnectionClose) {
  start();
  auto idle = connect();
  roundTrip(*idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  auto busy = connect();
  ASSERT_TRUE(busy->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  bool drained = false;
  server_->drain([&] { drained = true; });
  EXPECT_TRUE(idle->waitClosed(loop_.get())) << "an idle keep-alive connection is closed at once";
  EXPECT_FALSE(drained);
  // New connections are refused: the listener is closed.
  RawClient late;
  EXPECT_FALSE(late.connectTcp(port_));
  held_[0]->respond(200, {}, "last");
  ASSERT_TRUE(busy->waitClosed(loop_.get()));
  auto rs = parseResponses(busy->received(), true);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].body, "last");
  EXPECT_EQ(rs[0].header("Connection"), "close");
  busy->close();  // ends the server's lingering close at once
  EXPECT_TRUE(pumpUntil(loop_.get(), [&] { return drained; }));
  EXPECT_TRUE(disconnects_.empty());
}

TEST_F(HttpServerTest, DrainWithNothingOpenReportsAtOnce) {
  start();
  bool drained = false;
  server_->drain([&] { drained = true; });
  EXPECT_TRUE(drained);
}

TEST_F(HttpServerTest, CloseAllReportsShutdownToInFlightExchanges) {
  start();
  auto c = connect();
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  server_->closeAll();
  ASSERT_EQ(disconnects_.size(), 1u);
  EXPECT_EQ(disconnects_[0], DisconnectCause::Shutdown);
  EXPECT_TRUE(c->waitClosed(loop_.get()));
}

TEST_F(HttpServerTest, StreamBackpressureReportsQueuedBytesAndWritableCallback) {
  start();
  auto c = connect();
  // The client's default receive buffer: a 4 KiB one drains the megabytes the kernel took (the
  // server fills its send buffer before anything is queued) at a few KiB per delayed ACK.
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  auto ex = held_[0];
  ASSERT_TRUE(ex->startStream(200, {}));
  // The client reads nothing: the kernel buffers fill and libuv queues the rest.
  const std::string chunk(64 * 1024, 'x');
  size_t written = 0;
  while (ex->queuedBytes() == 0 && written < 64 * 1024 * 1024) {
    ASSERT_TRUE(ex->write(chunk));
    written += chunk.size();
  }
  ASSERT_GT(ex->queuedBytes(), 0u);
  bool writable = false;
  ex->onWritable([&] { writable = true; });
  EXPECT_FALSE(writable);
  // The client drains: the queue empties and the callback runs once.
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] {
    c->readAvailable();
    c->received().clear();
    return writable;
  }, 10000, c->fd()));
  EXPECT_EQ(ex->queuedBytes(), 0u);
  ex->finish();
}

TEST_F(HttpServerTest, ClientThatStopsReadingIsDisconnectedAfterSendTimeout) {
  ServerOptions o;
  o.send_timeout_ms = 100;
  start(o);
  auto c = connect();
  c->setReceiveBuffer(4096);
  ASSERT_TRUE(c->send(loop_.get(), "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return held_.size() == 1; }));
  auto ex = held_[0];
  ASSERT_TRUE(ex->startStream(200, {}));
  const std::string chunk(64 * 1024, 'x');
  // Timeouts count from the loop's time (cached at the start of its iteration, as libuv's timers
  // do), so the clock starts before the writes that fill the socket, not after them.
  const auto t0 = std::chrono::steady_clock::now();
  while (ex->queuedBytes() == 0) ASSERT_TRUE(ex->write(chunk));
  ASSERT_TRUE(pumpUntil(loop_.get(), [&] { return disconnects_.size() == 1; }));
  EXPECT_EQ(disconnects_[0], DisconnectCause::Timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
}

TEST_F(HttpServerTest, ServesUnixSocketClients) {
  handler_ = [](std::shared_ptr<Exchange> ex) { ex->respond(200, {}, ex->request().peer); };
  start();
  std::string why;
  const std::string path = "/tmp/tether-http-" + std::to_string(getpid()) + ".sock";
  auto listener = Listener::open(loop_.get(), *config::parseAddress("unix:" + path), {}, &why);
  ASSERT_NE(listener, nullptr) << why;
  ASSERT_EQ(server_->addListener(std::move(listener)), 0);
  RawClient c;
  ASSERT_TRUE(c.connectUnix(path));
  auto r = roundTrip(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.body, "unix:");  // as nginx's $remote_addr
}

}  // namespace
}  // namespace tether::http
