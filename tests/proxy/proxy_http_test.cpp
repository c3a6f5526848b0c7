// Integration tests on the real tether-proxy binary: proxying as nginx does it (framing both ways,
// keep-alive, headers, request ids, timeouts, routing, listeners) and strict parsing of bad input.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "harness.hpp"

namespace tether::proxy::test {
namespace {

class ProxyHttp : public ::testing::Test {
 protected:
  void startWith(const std::string& config, size_t listeners = 1) {
    dir_.write("p.conf", config);
    proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
    ASSERT_TRUE(proxy_->waitListening(listeners)) << joined();
    port_ = proxy_->port();
  }
  void start(const std::string& location_extra = "", const std::string& server_extra = "") {
    control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
    startWith(basicConfig(upstream_.port(), control_->path(), "interrupt", location_extra, server_extra));
  }
  std::string joined() {
    std::string s;
    if (proxy_) {
      for (auto& l : proxy_->lines()) s += l + "\n";
    }
    return s;
  }
  std::string roundTrip(const std::string& request) {
    Client c(port_);
    c.send(request);
    return c.readResponse();
  }
  // Sends a bad request and expects `status` and a closed connection.
  void expectRejected(const std::string& request, int status) {
    Client c(port_);
    c.send(request);
    std::string resp = c.readUntilClosed();
    EXPECT_EQ(statusOf(resp), status) << request << "\n---\n" << resp;
  }

  TempDir dir_;
  TestUpstream upstream_;
  std::unique_ptr<ControlListener> control_;
  std::unique_ptr<ProxyProcess> proxy_;
  uint16_t port_ = 0;
};

TEST_F(ProxyHttp, GetIsProxiedWithRequestIdForwardedHeadersAndHost) {
  start();
  std::string resp = roundTrip("GET /fast?x=1 HTTP/1.1\r\nHost: example.org\r\nX-Forwarded-For: 10.0.0.1\r\n"
                               "X-Request-Id: client-chosen\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
                               "Keep-Alive: timeout=5\r\n\r\n");
  ASSERT_EQ(statusOf(resp), 200) << joined();
  EXPECT_EQ(bodyOf(resp), "ok");
  std::string id = headerOf(resp, "X-Request-Id");
  ASSERT_EQ(id.size(), 32u);
  EXPECT_NE(id, "client-chosen");
  auto r = upstream_.find(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "/fast?x=1");
  EXPECT_EQ(r->headers["host"], "example.org");
  EXPECT_EQ(r->headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(r->headers["x-forwarded-proto"], "http");
  EXPECT_EQ(r->headers.count("x-secret"), 0u) << "a header named in Connection is hop-by-hop";
  EXPECT_EQ(r->headers.count("keep-alive"), 0u);
  EXPECT_EQ(r->headers.count("connection"), 0u);
}

TEST_F(ProxyHttp, TrustedRequestIdIsKeptAndEchoed) {
  start("", "  trust_request_id on;\n");
  std::string resp = roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n");
  EXPECT_EQ(headerOf(resp, "X-Request-Id"), "0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(upstream_.find("0123456789abcdef0123456789abcdef"));
}

TEST_F(ProxyHttp, TrustedBalancerIdsUnderARenamedHeaderFollowTheRuleAndOthersAreReplacedAndLogged) {
  start("", "  request_id_header X-Correlation-Id;\n  trust_request_id on;\n");
  // What Envoy, an AWS load balancer and a W3C tracer send: kept, upstream and back.
  for (std::string given : {"f47ac10b-58cc-4372-a567-0e02b2c3d479", "Root=1-67891233-abcdef012345678912345678",
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}) {
    std::string resp = roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: " + given + "\r\n\r\n");
    EXPECT_EQ(headerOf(resp, "X-Correlation-Id"), given);
    EXPECT_TRUE(upstream_.waitFor([&](const auto& rs) {
      for (const auto& q : rs) {
        auto it = q.headers.find("x-correlation-id");
        if (it != q.headers.end() && it->second == given) return true;
      }
      return false;
    })) << given << " did not reach the upstream";
  }
  // Quotes and inner spaces break the rule: a generated id stands in, and the access log says so.
  for (std::string given : {"has space", "quo\"te"}) {
    std::string resp = roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: " + given + "\r\n\r\n");
    ASSERT_EQ(statusOf(resp), 200) << joined();
    const std::string id = headerOf(resp, "X-Correlation-Id");
    EXPECT_EQ(id.size(), 32u) << id;
    EXPECT_NE(id, given);
    EXPECT_TRUE(proxy_->waitForLine("rid=" + id + " rid_replaced=invalid")) << joined();
  }
  // A valid id is not marked.
  for (const auto& line : proxy_->linesContaining("rid=f47ac10b-58cc-4372-a567-0e02b2c3d479")) {
    EXPECT_EQ(line.find("rid_replaced"), std::string::npos) << line;
  }
}

TEST_F(ProxyHttp, KeepAliveReusesOneUpstreamConnection) {
  start();
  Client c(port_);
  for (int i = 0; i < 5; ++i) {
    c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_EQ(statusOf(c.readResponse()), 200);
  }
  EXPECT_EQ(upstream_.connections(), 1u);
  auto rs = upstream_.requests();
  ASSERT_EQ(rs.size(), 5u);
  for (auto& r : rs) EXPECT_EQ(r.connection, rs[0].connection);
}

TEST_F(ProxyHttp, StaleKeepAliveUpstreamConnectionIsRetriedOnAFreshOne) {
  start();
  Client c(port_);
  c.send("GET /stale-next HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(statusOf(c.readResponse()), 200);
  // This request goes out on the pooled connection, which the upstream then closes unanswered.
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string resp = c.readResponse();
  EXPECT_EQ(statusOf(resp), 200) << joined();
  EXPECT_EQ(bodyOf(resp), "hello");
  EXPECT_EQ(upstream_.connections(), 2u);
  // A request with a body is not replayed: its bytes are gone.
  c.send("GET /stale-next HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(statusOf(c.readResponse()), 200);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(statusOf(c.readResponse()), 502);
}

TEST_F(ProxyHttp, IdleUpstreamConnectionClosesAfterItsKeepaliveTimeout) {
  startWith("upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + "; keepalive_timeout 200ms; }\n"
            "server { listen 127.0.0.1:0; location / { proxy_pass http://a; } }\n");
  EXPECT_EQ(statusOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), 200);
  // The pooled connection is closed after 200 ms idle; the next request needs a new one.
  auto t0 = Clock::now();
  EXPECT_TRUE(waitUntil([&] { return upstream_.closedIdle() == 1; }, 3000ms));
  EXPECT_GE(Clock::now() - t0, 150ms);
  EXPECT_EQ(statusOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), 200);
  EXPECT_EQ(upstream_.connections(), 2u);
}

TEST_F(ProxyHttp, ChunkedRequestAndChunkedResponseAreStreamed) {
  start();
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  std::string resp = c.readResponse();
  EXPECT_EQ(statusOf(resp), 200) << joined();
  EXPECT_EQ(bodyOf(resp), "hello world");
  c.send("GET /stream/3/1 HTTP/1.1\r\nHost: t\r\n\r\n");
  resp = c.readResponse();
  EXPECT_EQ(headerOf(resp, "Transfer-Encoding"), "chunked");
  EXPECT_EQ(bodyOf(resp), "{\"event\":\"log\",\"n\":0}\n{\"event\":\"log\",\"n\":1}\n{\"event\":\"log\",\"n\":2}\n");
}

TEST_F(ProxyHttp, LargeBodyIsStreamedBothWays) {
  start();
  std::string body(600 * 1024, 'a');
  for (size_t i = 0; i < body.size(); i += 7) body[i] = static_cast<char>('a' + i % 26);
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string resp = c.readResponse(10000ms);
  ASSERT_EQ(statusOf(resp), 200) << joined();
  EXPECT_TRUE(bodyOf(resp) == body);
}

TEST_F(ProxyHttp, ExpectContinueIsAnsweredBeforeTheBody) {
  start();
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = c.readSome();
  EXPECT_EQ(interim.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u) << interim;
  c.send("ping");
  std::string resp = c.readResponse();
  EXPECT_EQ(bodyOf(resp), "ping");
  auto rs = upstream_.requests();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].headers.count("expect"), 0u);
}

TEST_F(ProxyHttp, ExpectContinueOverTheBodyLimitGets413WithoutContinue) {
  start();
  expectRejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n", 413);
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST_F(ProxyHttp, Http10ClientGetsAnAnswerAndTheConnectionCloses) {
  start();
  Client c(port_);
  c.send("GET /stream/2/1 HTTP/1.0\r\n\r\n");
  std::string resp = c.readUntilClosed();
  EXPECT_EQ(statusOf(resp), 200) << resp;
  EXPECT_EQ(headerOf(resp, "Transfer-Encoding"), "");
  EXPECT_NE(resp.find("{\"event\":\"log\",\"n\":1}\n"), std::string::npos);
}

TEST_F(ProxyHttp, HeadRequestGetsHeadersOnly) {
  start();
  Client c(port_);
  c.send("HEAD /fast HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string first = c.readSome();
  // The HEAD answer carries Content-Length 5 but no body; the GET after it gets "hello".
  std::string all = first;
  waitUntil([&] { all += c.readSome(100ms); return all.find("hello") != std::string::npos; });
  EXPECT_EQ(all.find("HTTP/1.1 200"), 0u);
  EXPECT_EQ(all.find("hello"), all.size() - 5) << all;
}

TEST_F(ProxyHttp, LocationsExactMatchThenLongestPrefix) {
  TestUpstream second;
  std::string conf = "upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + "; }\n"
                     "upstream b { server 127.0.0.1:" + std::to_string(second.port()) + "; }\n"
                     "server { listen 127.0.0.1:0; access_log off;\n"
                     "  location / { proxy_pass http://a; }\n"
                     "  location /v1/ { proxy_pass http://b; }\n"
                     "  location = /v1/exact { proxy_pass http://a; }\n}\n";
  startWith(conf);
  roundTrip("GET /v1/solve HTTP/1.1\r\nHost: t\r\n\r\n");
  roundTrip("GET /v1/exact HTTP/1.1\r\nHost: t\r\n\r\n");
  roundTrip("GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(second.requests().size(), 1u);
  EXPECT_EQ(second.requests()[0].path, "/v1/solve");
  EXPECT_EQ(upstream_.requests().size(), 2u);
}

TEST_F(ProxyHttp, SeveralServerBlocksEachWithItsListenerLocationsAndAccessLog) {
  TestUpstream second;
  std::string log_a = dir_.file("a.log"), log_b = dir_.file("b.log");
  startWith("upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + "; }\n"
            "upstream b { server 127.0.0.1:" + std::to_string(second.port()) + "; }\n"
            "server { listen 127.0.0.1:0; access_log " + log_a + "; location / { proxy_pass http://a; } }\n"
            "server { listen 127.0.0.1:0; access_log " + log_b + "; location / { proxy_pass http://b; } }\n", 2);
  Client ca(proxy_->port(0)), cb(proxy_->port(1));
  ca.send("GET /fast HTTP/1.1\r\nHost: t\r\nUser-Agent: ua-a\r\nReferer: http://r/\r\n\r\n");
  cb.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string ra = ca.readResponse(), rb = cb.readResponse();
  EXPECT_EQ(upstream_.requests().size(), 1u);
  EXPECT_EQ(second.requests().size(), 1u);
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  // The line is written just after the response, so it may trail the client's read a little.
  std::string a, b;
  waitUntil([&] {
    a = read(log_a);
    b = read(log_b);
    return !a.empty() && !b.empty();
  });
  // nginx's combined format, then id, request time, upstream time and upstream.
  EXPECT_NE(a.find("127.0.0.1 - - ["), std::string::npos) << a;
  EXPECT_NE(a.find("] \"GET /fast HTTP/1.1\" 200 5 \"http://r/\" \"ua-a\" rid=" + headerOf(ra, "X-Request-Id") + " rt="),
            std::string::npos) << a;
  EXPECT_NE(a.find(" urt="), std::string::npos) << a;
  EXPECT_NE(b.find("rid=" + headerOf(rb, "X-Request-Id")), std::string::npos) << b;
  EXPECT_EQ(a.find(headerOf(rb, "X-Request-Id")), std::string::npos);
}

TEST_F(ProxyHttp, RoundRobinOverSeveralServers) {
  TestUpstream second;
  std::string conf = "upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + ";"
                     " server 127.0.0.1:" + std::to_string(second.port()) + "; keepalive 0; }\n"
                     "server { listen 127.0.0.1:0; access_log off; location / { proxy_pass http://a; } }\n";
  startWith(conf);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(statusOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), 200);
  EXPECT_EQ(upstream_.requests().size(), 2u);
  EXPECT_EQ(second.requests().size(), 2u);
}

TEST_F(ProxyHttp, UnixListenerAndUnixUpstream) {
  // tether-proxy in front of tether-proxy: the inner one listens on a unix socket.
  std::string inner_sock = dir_.file("in.sock");
  dir_.write("inner.conf", "upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + "; }\n"
                           "server { listen unix:" + inner_sock + "; access_log off; location / { proxy_pass http://a; } }\n");
  ProxyProcess inner(dir_.file("inner.conf"));
  ASSERT_TRUE(inner.waitListening(1));
  EXPECT_FALSE(inner.linesContaining("listening on unix:" + inner_sock).empty());
  startWith("upstream u { server unix:" + inner_sock + "; }\n"
            "server { listen 127.0.0.1:0; access_log off; location / { proxy_pass http://u; } }\n");
  std::string resp = roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(bodyOf(resp), "hello") << joined();
  Client direct(inner_sock);
  direct.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(bodyOf(direct.readResponse()), "hello");
}

TEST_F(ProxyHttp, Ipv6Listener) {
  int s = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool has_v6 = s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (s >= 0) close(s);
  if (!has_v6) GTEST_SKIP() << "no IPv6 loopback on this machine";
  startWith("upstream a { server 127.0.0.1:" + std::to_string(upstream_.port()) + "; }\n"
            "server { listen [::1]:0; access_log off; location / { proxy_pass http://a; } }\n");
  EXPECT_FALSE(proxy_->linesContaining("listening on [::1]:").empty()) << joined();
}

TEST_F(ProxyHttp, UpstreamDownGives502) {
  uint16_t dead_port = unusedPort();  // nobody listens: connections are refused
  startWith("upstream a { server 127.0.0.1:" + std::to_string(dead_port) + "; }\n"
            "server { listen 127.0.0.1:0; location / { proxy_pass http://a; } }\n");
  EXPECT_EQ(statusOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), 502);
}

// nginx's behaviour where nothing is cancelled; interrupt and kill locations turn the timeout into
// a cancel first (proxy_disconnect_test's UpstreamTimeout cases).
TEST_F(ProxyHttp, UpstreamReadTimeoutOnCloseLocationGives504WithoutCancel) {
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  startWith(basicConfig(upstream_.port(), control_->path(), "close", "    proxy_read_timeout 200ms;\n"));
  auto t0 = Clock::now();
  EXPECT_EQ(statusOf(roundTrip("GET /slow/3000 HTTP/1.1\r\nHost: t\r\n\r\n")), 504);
  EXPECT_LT(Clock::now() - t0, 2000ms) << "no kill_after grace on a close location";
  ASSERT_EQ(proxy_->stop(), 0) << joined();
  EXPECT_TRUE(control_->cancels().empty());
  EXPECT_TRUE(proxy_->linesContaining("upstream_timeout").empty()) << joined();
}

TEST_F(ProxyHttp, UpstreamConnectTimeoutGives504) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and a veth pair";
  VethClient blackhole;
  if (!blackhole.ok()) GTEST_SKIP() << "cannot create a network namespace with a veth pair";
  ASSERT_TRUE(blackhole.cutLink());  // SYNs to the namespace's address now vanish
  startWith("upstream a { server " + blackhole.clientAddress() + ":80; }\n"
            "server { listen 127.0.0.1:0; location / { proxy_pass http://a; proxy_connect_timeout 300ms; } }\n");
  auto t0 = Clock::now();
  EXPECT_EQ(statusOf(roundTrip("GET /x HTTP/1.1\r\nHost: t\r\n\r\n")), 504) << joined();
  EXPECT_LT(Clock::now() - t0, 3s);
}

TEST_F(ProxyHttp, UpstreamClosingWithoutAnswerGives502) {
  start();
  EXPECT_EQ(statusOf(roundTrip("GET /close HTTP/1.1\r\nHost: t\r\n\r\n")), 502);
}

TEST_F(ProxyHttp, AdminListenerServesMetricsHealthAndRequests) {
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string conf = basicConfig(upstream_.port(), control_->path());
  conf += "admin { listen 127.0.0.1:0; }\n";
  startWith(conf, 2);
  uint16_t admin_port = proxy_->port(1);
  Client slow(port_);
  slow.send("GET /slow/400 HTTP/1.1\r\nHost: t\r\n\r\n");
  upstream_.waitFor([](auto& rs) { return !rs.empty(); });
  Client a(admin_port);
  a.send("GET /requests HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string reqs = bodyOf(a.readResponse());
  auto j = nlohmann::json::parse(reqs);
  ASSERT_EQ(j.size(), 1u) << reqs;
  EXPECT_EQ(j[0]["phase"], "awaiting_response");
  EXPECT_EQ(j[0]["id"].get<std::string>().size(), 32u);
  EXPECT_EQ(j[0]["upstream"], "127.0.0.1:" + std::to_string(upstream_.port()));
  EXPECT_EQ(slow.readResponse().empty(), false);
  a.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(bodyOf(a.readResponse()), "ok\n");
  a.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string metrics = bodyOf(a.readResponse());
  EXPECT_NE(metrics.find("tether_proxy_requests_total{code=\"200\"} 1"), std::string::npos) << metrics;
  for (auto name : {"tether_proxy_disconnects_total", "tether_proxy_cancels_total",
                    "tether_proxy_disconnect_to_cancel_seconds", "tether_proxy_active_requests",
                    "tether_proxy_open_connections"}) {
    EXPECT_NE(metrics.find(std::string("# TYPE ") + name), std::string::npos) << name;
  }
}

// The live status page (DESIGN.md "Status page"): GET / is the self-contained page with the
// snapshot of the moment; GET /status is the snapshot as JSON, and with Accept: text/event-stream
// a stream of snapshots that sends one as soon as a request comes, not only once a second.
TEST_F(ProxyHttp, AdminStatusPageAndItsStreamShowARequestAsItComes) {
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string conf = basicConfig(upstream_.port(), control_->path());
  conf += "admin { listen 127.0.0.1:0; }\n";
  startWith(conf, 2);
  Client a(proxy_->port(1));
  a.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string page = a.readResponse();
  EXPECT_EQ(statusOf(page), 200);
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << page.substr(0, 400);
  EXPECT_NE(page.find("Content-Security-Policy: default-src 'self'"), std::string::npos);
  EXPECT_NE(page.find("const initial = {\"cancels_by_reason\":{}"), std::string::npos) << "no embedded snapshot";
  EXPECT_NE(page.find("new EventSource(\"/status\")"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos) << "the page fetches an external asset";

  Client events(proxy_->port(1));
  events.send("GET /status HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
  // The first snapshot at once, then the once-a-second one: the next tick is a second away.
  std::string stream;
  auto count = [](const std::string& text) {
    size_t n = 0;
    for (size_t at = text.find("data: {"); at != std::string::npos; at = text.find("data: {", at + 1)) ++n;
    return n;
  };
  for (auto start = Clock::now(); count(stream) < 2 && Clock::now() - start < 3s;) stream += events.readSome(1000ms);
  EXPECT_NE(stream.find("Content-Type: text/event-stream"), std::string::npos) << stream;
  ASSERT_EQ(count(stream), 2u) << stream;
  EXPECT_NE(stream.find("\"requests\":[]"), std::string::npos) << stream;

  const auto sent = Clock::now();
  Client slow(port_);
  slow.send("GET /slow/2000 HTTP/1.1\r\nHost: t\r\n\r\n");
  upstream_.waitFor([](auto& rs) { return !rs.empty(); });
  // The request shows in the stream well before the once-a-second snapshot would have brought it.
  std::string more;
  while (more.find("\"phase\":\"awaiting_response\"") == std::string::npos && Clock::now() - sent < 3s) {
    more += events.readSome(1000ms);
  }
  EXPECT_NE(more.find("\"phase\":\"awaiting_response\""), std::string::npos) << more;
  EXPECT_NE(more.find("\"protocol\":\"HTTP/1.1\""), std::string::npos) << more;
  EXPECT_LT(Clock::now() - sent, 700ms) << "the snapshot came with the next tick, not on the change";

  a.send("GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
  auto j = nlohmann::json::parse(bodyOf(a.readResponse()));
  ASSERT_EQ(j["requests"].size(), 1u) << j.dump();
  EXPECT_EQ(j["requests"][0]["upstream"], "127.0.0.1:" + std::to_string(upstream_.port()));
  EXPECT_EQ(j["status_streams"], 1) << j.dump();
  for (auto key : {"cancels_by_reason", "disconnects_by_phase", "disconnect_to_cancel", "connections", "requests_total"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST_F(ProxyHttp, MetricsCountDisconnectsAndCancels) {
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string conf = basicConfig(upstream_.port(), control_->path());
  conf += "admin { listen 127.0.0.1:0; }\n";
  startWith(conf, 2);
  {
    Client c(port_);
    c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    upstream_.waitFor([](auto& rs) { return !rs.empty(); });
  }
  ASSERT_TRUE(control_->waitForCancels(1));
  Client a(proxy_->port(1));
  std::string metrics;
  waitUntil([&] {
    a.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    metrics = bodyOf(a.readResponse());
    return metrics.find("tether_proxy_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",result=\"sent\"} 1") != std::string::npos;
  });
  EXPECT_NE(metrics.find("tether_proxy_disconnects_total{phase=\"awaiting_response\",cause=\"eof\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tether_proxy_requests_total{code=\"499\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tether_proxy_disconnect_to_cancel_seconds_count 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tether_proxy_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",result=\"sent\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tether_proxy_control_events_total{upstream=\"app\",event=\"sent\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tether_proxy_control_connected{upstream=\"app\"} 1"), std::string::npos) << metrics;
}

TEST_F(ProxyHttp, SighupReloadSwitchesNewRequestsAndKeepsOldConfigOnError) {
  TestUpstream second;
  auto conf = [](uint16_t port) {
    return "upstream a { server 127.0.0.1:" + std::to_string(port) + "; }\n"
           "server { listen 127.0.0.1:0; access_log off; location / { proxy_pass http://a; } }\n";
  };
  startWith(conf(upstream_.port()));
  uint16_t port = port_;
  // An in-flight request on the old configuration is not disturbed by the reload.
  Client slow(port);
  slow.send("GET /slow/300 HTTP/1.1\r\nHost: t\r\n\r\n");
  upstream_.waitFor([](auto& rs) { return !rs.empty(); });
  // The listener address is unchanged (127.0.0.1:0 is re-read as the same address), so it is kept.
  dir_.write("p.conf", conf(second.port()));
  kill(proxy_->pid(), SIGHUP);
  ASSERT_TRUE(proxy_->waitForLine("configuration reloaded")) << joined();
  EXPECT_EQ(bodyOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), "hello");
  EXPECT_EQ(second.requests().size(), 1u);
  EXPECT_EQ(bodyOf(slow.readResponse()), "done");
  dir_.write("p.conf", "upstream a { server 127.0.0.1:1; }\nserver { listen 127.0.0.1:0; location / { proxy_pass http://nope; } }\n");
  kill(proxy_->pid(), SIGHUP);
  ASSERT_TRUE(proxy_->waitForLine("reload failed, keeping the old configuration")) << joined();
  EXPECT_EQ(bodyOf(roundTrip("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")), "hello");
  EXPECT_EQ(second.requests().size(), 2u);
}

TEST_F(ProxyHttp, SigtermDrainsInFlightRequestsWithConnectionClose) {
  start();
  Client idle(port_);
  idle.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(statusOf(idle.readResponse()), 200);
  Client busy(port_);
  busy.send("GET /slow/300 HTTP/1.1\r\nHost: t\r\n\r\n");
  upstream_.waitFor([](auto& rs) { return rs.size() == 2; });
  kill(proxy_->pid(), SIGTERM);
  // The idle keep-alive connection is closed at once; the in-flight one gets its answer.
  EXPECT_EQ(idle.readUntilClosed(2000ms), "");
  std::string resp = busy.readResponse();
  EXPECT_EQ(bodyOf(resp), "done") << joined();
  EXPECT_EQ(headerOf(resp, "Connection"), "close");
  EXPECT_EQ(proxy_->stop(), 0) << joined();
  EXPECT_TRUE(control_->cancels().empty());
}

TEST_F(ProxyHttp, ShutdownTimeoutCancelsWhatIsLeftWithReasonShutdown) {
  start();  // shutdown_timeout 2s in basicConfig
  Client busy(port_);
  busy.send("GET /slow/20000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id;
  upstream_.waitFor([&](auto& rs) { if (!rs.empty()) id = rs[0].request_id; return !id.empty(); });
  kill(proxy_->pid(), SIGTERM);
  ASSERT_TRUE(control_->waitForCancels(1, 10000ms)) << joined();
  auto c = control_->cancels()[0];
  EXPECT_EQ(c["id"], id);
  EXPECT_EQ(c["reason"], "shutdown");
  EXPECT_EQ(proxy_->stop(), 0) << joined();
  auto lines = proxy_->linesContaining("rid=" + id + " rt=");
  ASSERT_EQ(lines.size(), 1u) << joined();
  EXPECT_NE(lines[0].find("\" 499 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("phase=awaiting_response cause=shutdown"), std::string::npos) << lines[0];
}

// ---- strict parsing ------------------------------------------------------------------------

TEST_F(ProxyHttp, ContentLengthWithTransferEncodingIs400) {
  start();
  expectRejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST_F(ProxyHttp, DifferingDuplicateContentLengthIs400) {
  start();
  expectRejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400);
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST_F(ProxyHttp, BadChunkSizeIs400) {
  start();
  expectRejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400);
}

TEST_F(ProxyHttp, ObsFoldIs400) {
  start();
  expectRejected("GET /fast HTTP/1.1\r\nHost: t\r\nX-Long: a\r\n b\r\n\r\n", 400);
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST_F(ProxyHttp, MalformedRequestLineIs400) {
  start();
  expectRejected("GET /fast HTTP/9.9\r\nHost: t\r\n\r\n", 400);
  expectRejected("G@T /fast HTTP/1.1\r\nHost: t\r\n\r\n", 400);
  expectRejected("GET /fast HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400);
}

TEST_F(ProxyHttp, MissingOrDuplicateHostIs400) {
  start();
  expectRejected("GET /fast HTTP/1.1\r\n\r\n", 400);
  expectRejected("GET /fast HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

TEST_F(ProxyHttp, BodyOverClientMaxBodySizeIs413) {
  start();  // client_max_body_size 1m
  expectRejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413);
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string chunk(64 * 1024, 'x');
  char size[16];
  snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  for (int i = 0; i < 20; ++i) {
    if (!c.send(size + chunk + "\r\n")) break;
  }
  std::string resp = c.readUntilClosed();
  EXPECT_EQ(statusOf(resp), 413) << resp.substr(0, 200);
}

TEST_F(ProxyHttp, OversizedHeadersAre431) {
  start();
  expectRejected("GET /fast HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431);
}

TEST_F(ProxyHttp, SlowlorisGets408AfterClientHeaderTimeout) {
  start();  // client_header_timeout 1s
  Client c(port_);
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n");
  auto t0 = Clock::now();
  std::string resp = c.readUntilClosed(5000ms);
  EXPECT_EQ(statusOf(resp), 408) << resp;
  EXPECT_LT(Clock::now() - t0, 3s);
}

TEST_F(ProxyHttp, RandomBytesDoNotDisturbOtherConnections) {
  start();
  Client good(port_);
  std::mt19937 rng(12345);
  for (int i = 0; i < 200; ++i) {
    Client bad(port_);
    std::string junk(1 + rng() % 2000, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    if (i % 3 == 0) junk = "GET / HTTP/1.1\r\nHost: t\r\n" + junk;
    if (i % 5 == 0) junk = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + junk;
    bad.send(junk);
    if (i % 2 == 0) bad.reset();
    if (i % 20 == 0) {
      good.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
      ASSERT_EQ(bodyOf(good.readResponse()), "hello") << joined();
    }
  }
  good.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(bodyOf(good.readResponse()), "hello");
  EXPECT_EQ(proxy_->stop(), 0) << joined();
}

TEST_F(ProxyHttp, NginxAsUpstream) {
  if (access("/usr/sbin/nginx", X_OK) != 0) GTEST_SKIP() << "nginx is not installed";
  // nginx answers /n itself and proxies /slow/ to the test upstream.
  uint16_t nginx_port = unusedPort();
  std::string conf = "daemon off; master_process off; worker_processes 1; error_log stderr warn; pid " +
                     dir_.file("nginx.pid") + ";\nevents { worker_connections 64; }\nhttp {\n access_log off;\n"
                     " client_body_temp_path " + dir_.path() + "; proxy_temp_path " + dir_.path() + ";\n"
                     " server { listen 127.0.0.1:" + std::to_string(nginx_port) + ";\n"
                     "  location = /n { return 200 \"nginx\\n\"; }\n"
                     "  location /slow/ { proxy_pass http://127.0.0.1:" + std::to_string(upstream_.port()) + "; }\n } }\n";
  dir_.write("nginx.conf", conf);
  pid_t nginx = fork();
  if (nginx == 0) {
    execl("/usr/sbin/nginx", "nginx", "-p", dir_.path().c_str(), "-c", dir_.file("nginx.conf").c_str(),
          "-e", "stderr", static_cast<char*>(nullptr));
    _exit(127);
  }
  bool up = waitUntil([&] {
    try {
      Client probe(nginx_port);
      return true;
    } catch (...) {
      return false;
    }
  });
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string pconf = basicConfig(nginx_port, control_->path());
  if (up) {
    startWith(pconf);
    std::string resp = roundTrip("GET /n HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(bodyOf(resp), "nginx\n") << resp;
    // A disconnect through nginx: the cancel names the id nginx received, and nginx closes its
    // own upstream connection too.
    Client c(port_);
    c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string id;
    upstream_.waitFor([&](auto& rs) { if (!rs.empty()) id = rs[0].request_id; return !id.empty(); });
    c.close();
    EXPECT_TRUE(control_->waitForCancels(1)) << joined();
    if (!control_->cancels().empty()) {
      EXPECT_EQ(control_->cancels()[0]["id"], id);
    }
    EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->peer_closed; }));
  }
  kill(nginx, SIGQUIT);
  int st;
  if (!waitUntil([&] { return waitpid(nginx, &st, WNOHANG) == nginx; }, 5000ms)) {
    kill(nginx, SIGKILL);
    waitpid(nginx, &st, 0);
  }
  ASSERT_TRUE(up) << "nginx did not start";
}

}  // namespace
}  // namespace tether::proxy::test
