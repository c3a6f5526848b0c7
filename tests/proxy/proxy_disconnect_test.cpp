// Integration tests on the real tether-proxy binary: a client that leaves in each phase and by
// each cause produces exactly one cancel frame (right id, action, reason, phase) and one 499
// access log line; completed requests and on_disconnect none produce none.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "harness.hpp"

namespace tether::proxy::test {
namespace {

class ProxyDisconnect : public ::testing::Test {
 protected:
  void start(const std::string& on_disconnect = "interrupt", const std::string& location_extra = "",
             const std::string& server_extra = "") {
    control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
    dir_.write("p.conf", basicConfig(upstream_.port(), control_->path(), on_disconnect, location_extra, server_extra));
    proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
    ASSERT_TRUE(proxy_->waitListening(1)) << joined();
    port_ = proxy_->port();
    ASSERT_NE(port_, 0);
  }

  std::string joined() {
    std::string s;
    if (proxy_) {
      for (auto& l : proxy_->lines()) s += l + "\n";
    }
    return s;
  }

  // Waits for the upstream to have received a request for `path` and returns its request id.
  std::string waitUpstreamRequest(const std::string& path) {
    std::string id;
    upstream_.waitFor([&](const std::vector<UpstreamRequest>& rs) {
      for (auto& r : rs) {
        if (r.path == path) id = r.request_id;
      }
      return !id.empty();
    });
    return id;
  }

  std::vector<std::string> accessLines(const std::string& id) {
    std::vector<std::string> out;
    for (auto& l : proxy_->linesContaining("rid=" + id)) {
      if (l.find("\" ") != std::string::npos && l.find(" rt=") != std::string::npos) out.push_back(l);
    }
    return out;
  }

  // The common expectation: one cancel with these fields, one 499 line with phase and cause,
  // and the upstream connection closed.
  void expectOneCancel(const std::string& id, const std::string& action, const std::string& phase,
                       const std::string& cause, bool expect_upstream_closed = true) {
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(control_->waitForCancels(1)) << joined();
    ASSERT_TRUE(proxy_->waitForLine("rid=" + id + " rt=")) << joined();
    if (expect_upstream_closed) {
      EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->peer_closed; }))
          << "the upstream connection was not closed";
    }
    ASSERT_EQ(proxy_->stop(), 0) << joined();  // drains: any extra frame would be out by now
    auto cancels = control_->cancels();
    ASSERT_EQ(cancels.size(), 1u) << joined();
    EXPECT_EQ(cancels[0]["id"], id);
    EXPECT_EQ(cancels[0]["action"], action);
    EXPECT_EQ(cancels[0]["reason"], "client_disconnect");
    EXPECT_EQ(cancels[0]["phase"], phase);
    if (action == "interrupt") {
      EXPECT_EQ(cancels[0]["grace_ms"], 3000);
    }
    auto lines = accessLines(id);
    ASSERT_EQ(lines.size(), 1u) << joined();
    EXPECT_NE(lines[0].find("\" 499 "), std::string::npos) << lines[0];
    // `cause` may list alternatives ("eof|reset"): either is what the kernel reported.
    bool cause_found = false;
    for (size_t from = 0; from <= cause.size();) {
      const size_t bar = std::min(cause.find('|', from), cause.size());
      cause_found = cause_found || lines[0].find("phase=" + phase + " cause=" + cause.substr(from, bar - from)) !=
                                       std::string::npos;
      from = bar + 1;
    }
    EXPECT_TRUE(cause_found) << "phase=" << phase << " cause=" << cause << " in " << lines[0];
    EXPECT_TRUE(proxy_->errorLines().empty()) << joined();
  }

  TempDir dir_;
  TestUpstream upstream_;
  std::unique_ptr<ControlListener> control_;
  std::unique_ptr<ProxyProcess> proxy_;
  uint16_t port_ = 0;
};

TEST_F(ProxyDisconnect, ClientCloseWhileAwaitingResponseSendsOneInterrupt) {
  start();
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.close();
  expectOneCancel(id, "interrupt", "awaiting_response", "eof");
}

TEST_F(ProxyDisconnect, ClientResetWhileAwaitingResponseSendsOneCancel) {
  start();
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.reset();
  expectOneCancel(id, "interrupt", "awaiting_response", "reset");
}

TEST_F(ProxyDisconnect, OnDisconnectKillSendsKillAction) {
  start("kill");
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.close();
  expectOneCancel(id, "kill", "awaiting_response", "eof");
}

TEST_F(ProxyDisconnect, HalfCloseUnderAbortPolicyIsADisconnect) {
  start("interrupt", "    half_close abort;\n");
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.halfClose();
  expectOneCancel(id, "interrupt", "awaiting_response", "eof");
}

TEST_F(ProxyDisconnect, HalfCloseUnderWaitPolicyFinishesTheResponse) {
  start("interrupt", "    half_close wait;\n");
  Client c(port_);
  c.send("GET /slow/200 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/200");
  c.halfClose();
  std::string resp = c.readResponse();
  EXPECT_EQ(statusOf(resp), 200) << joined();
  EXPECT_EQ(bodyOf(resp), "done");
  EXPECT_EQ(headerOf(resp, "Connection"), "close");
  EXPECT_EQ(headerOf(resp, "X-Request-Id"), id);
  ASSERT_EQ(proxy_->stop(), 0);
  EXPECT_TRUE(control_->cancels().empty());
}

TEST_F(ProxyDisconnect, ClientCloseMidUploadSendsCancelInRequestBody) {
  start();
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'));
  std::string id = waitUpstreamRequest("/echo");
  c.close();
  expectOneCancel(id, "interrupt", "request_body", "eof");
}

TEST_F(ProxyDisconnect, ClientCloseMidResponseStreamSendsCancelInResponseBody) {
  start();
  Client c(port_);
  c.send("GET /stream/100/50 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string first = c.readSome();
  ASSERT_EQ(statusOf(first), 200) << joined();
  std::string id = headerOf(first, "X-Request-Id");
  c.close();
  // The stream's next chunks may already sit unread in the client's socket when it closes: the
  // kernel then sends a reset rather than a FIN, and the proxy says so.
  expectOneCancel(id, "interrupt", "response_body", "eof|reset");
}

TEST_F(ProxyDisconnect, ClientThatStopsReceivingMidStreamIsAWriteError) {
  // On a unix socket, a peer that shut its receiving side makes our next write fail with EPIPE
  // while its sending side stays open: a write error with no end of file to read first.
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string sock = dir_.file("p.sock");
  dir_.write("p.conf", basicConfig(upstream_.port(), control_->path(), "interrupt", "", "  listen unix:" + sock + ";\n"));
  proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
  ASSERT_TRUE(proxy_->waitListening(2)) << joined();
  Client c(sock);
  c.send("GET /stream/100/20 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string first = c.readSome();
  ASSERT_EQ(statusOf(first), 200) << joined();
  std::string id = headerOf(first, "X-Request-Id");
  shutdown(c.fd(), SHUT_RD);
  expectOneCancel(id, "interrupt", "response_body", "write_error");
}

TEST_F(ProxyDisconnect, StalledUploadHitsClientBodyTimeout) {
  start();  // client_body_timeout 1s in basicConfig
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
  std::string id = waitUpstreamRequest("/echo");
  expectOneCancel(id, "interrupt", "request_body", "timeout");
}

// Peak resident memory of a process in KiB (VmHWM), 0 if unknown.
long peakRssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

TEST_F(ProxyDisconnect, ClientThatStopsReadingHitsSendTimeoutWithBoundedMemory) {
  start("interrupt", "", "  send_timeout 500ms;\n");
  long baseline = peakRssKib(proxy_->pid());
  Client c(port_);
  c.send("GET /big/64 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/big/64");
  // The client reads nothing: backpressure stops the proxy reading the upstream, so it holds
  // no more than the socket buffers and its high-water mark, not the 64 MiB body.
  ASSERT_TRUE(proxy_->waitForLine("rid=" + id + " rt=", 10000ms)) << joined();
  long peak = peakRssKib(proxy_->pid());
  EXPECT_GT(peak, 0);
  // Growth, not the total: sanitizer builds start much larger.
  EXPECT_LT(peak - baseline, 16 * 1024) << "peak RSS " << baseline << " -> " << peak << " KiB";
  expectOneCancel(id, "interrupt", "response_body", "timeout");
}

TEST_F(ProxyDisconnect, CompletedRequestSendsNoCancel) {
  start();
  Client c(port_);
  c.send("GET /slow/50 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string resp = c.readResponse();
  EXPECT_EQ(statusOf(resp), 200);
  c.close();
  ASSERT_EQ(proxy_->stop(), 0);
  EXPECT_TRUE(control_->cancels().empty());
  EXPECT_TRUE(proxy_->linesContaining("\" 499 ").empty());
}

TEST_F(ProxyDisconnect, OnDisconnectNoneLetsTheUpstreamRequestRunToItsEnd) {
  start("none");
  Client c(port_);
  c.send("GET /slow/300 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/300");
  c.close();
  ASSERT_TRUE(proxy_->waitForLine("\" 499 ")) << joined();
  EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->completed; }))
      << "the upstream request did not run to its end";
  EXPECT_FALSE(upstream_.find(id)->peer_closed);
  ASSERT_EQ(proxy_->stop(), 0);
  EXPECT_TRUE(control_->cancels().empty());
}

TEST_F(ProxyDisconnect, OnDisconnectCloseClosesUpstreamWithoutCancel) {
  start("close");
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.close();
  EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->peer_closed; }));
  ASSERT_TRUE(proxy_->waitForLine("\" 499 "));
  ASSERT_EQ(proxy_->stop(), 0);
  EXPECT_TRUE(control_->cancels().empty());
}

TEST_F(ProxyDisconnect, PipelinedRequestsAreAnsweredInOrderWithoutCancel) {
  start();
  Client c(port_);
  c.send("GET /slow/100 HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n"
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
  std::string r1 = c.readResponse(), r2 = c.readResponse(), r3 = c.readResponse();
  EXPECT_EQ(bodyOf(r1), "done") << joined();
  EXPECT_EQ(bodyOf(r2), "hello");
  EXPECT_EQ(bodyOf(r3), "abc");
  c.close();
  ASSERT_EQ(proxy_->stop(), 0);
  EXPECT_TRUE(control_->cancels().empty());
  EXPECT_TRUE(proxy_->linesContaining("\" 499 ").empty()) << joined();
}

TEST_F(ProxyDisconnect, CloseAfterPipelinedBytesWhileAwaitingIsStillOneCancel) {
  start();
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.close();
  expectOneCancel(id, "interrupt", "awaiting_response", "eof");
}

TEST_F(ProxyDisconnect, CancelsQueuedWhileControlSocketIsDownArriveWhenItComesBack) {
  // The proxy starts with no control listener; the frame waits in the queue.
  dir_.write("p.conf", basicConfig(upstream_.port(), dir_.file("c.sock"), "interrupt"));
  proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
  ASSERT_TRUE(proxy_->waitListening(1));
  port_ = proxy_->port();
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  c.close();
  ASSERT_TRUE(proxy_->waitForLine("\" 499 "));
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  ASSERT_TRUE(control_->waitForCancels(1, 8000ms)) << joined();
  EXPECT_EQ(control_->cancels()[0]["id"], id);
}

// ---- upstream timeouts on cancelling locations (issue 13): a deadline, not a disconnect

TEST_F(ProxyDisconnect, UpstreamTimeoutOnInterruptLocationCancelsAndRelaysTheAnswerWithinKillAfter) {
  start("interrupt", "    proxy_read_timeout 300ms;\n");  // kill_after 3s in basicConfig
  Client c(port_);
  c.send("GET /slow/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/1500");
  ASSERT_TRUE(control_->waitForCancels(1)) << joined();
  // The frame went out at the timeout, long before the upstream's answer: the upstream
  // connection is still open then, and the client, still waiting, gets that answer.
  EXPECT_FALSE(upstream_.find(id)->completed);
  std::string resp = c.readResponse(5000ms);
  EXPECT_EQ(statusOf(resp), 200) << resp << joined();
  EXPECT_EQ(bodyOf(resp), "done");
  // The upstream marks the request completed just after writing it: wait for the mark.
  EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->completed; }));
  EXPECT_FALSE(upstream_.find(id)->peer_closed);
  c.close();
  ASSERT_EQ(proxy_->stop(), 0) << joined();
  auto cancels = control_->cancels();
  ASSERT_EQ(cancels.size(), 1u) << joined();
  EXPECT_EQ(cancels[0]["id"], id);
  EXPECT_EQ(cancels[0]["action"], "interrupt");
  EXPECT_EQ(cancels[0]["reason"], "upstream_timeout");
  EXPECT_EQ(cancels[0]["phase"], "awaiting_response");
  EXPECT_EQ(cancels[0]["grace_ms"], 3000);
  auto lines = accessLines(id);
  ASSERT_EQ(lines.size(), 1u) << joined();
  EXPECT_NE(lines[0].find("\" 200 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("phase=awaiting_response cause=upstream_timeout"), std::string::npos) << lines[0];
  EXPECT_TRUE(proxy_->errorLines().empty()) << joined();
}

TEST_F(ProxyDisconnect, UpstreamSilentPastKillAfterGives504) {
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string conf = basicConfig(upstream_.port(), control_->path(), "kill", "    proxy_read_timeout 200ms;\n");
  conf.replace(conf.find("kill_after 3s;"), 14, "kill_after 300ms;");
  dir_.write("p.conf", conf);
  proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
  ASSERT_TRUE(proxy_->waitListening(1)) << joined();
  Client c(proxy_->port());
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/hold");
  std::string resp = c.readResponse(5000ms);
  EXPECT_EQ(statusOf(resp), 504) << resp << joined();
  EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->peer_closed; }));
  ASSERT_TRUE(control_->waitForCancels(1)) << joined();
  c.close();
  ASSERT_EQ(proxy_->stop(), 0) << joined();
  auto cancels = control_->cancels();
  ASSERT_EQ(cancels.size(), 1u) << joined();
  EXPECT_EQ(cancels[0]["action"], "kill");
  EXPECT_EQ(cancels[0]["reason"], "upstream_timeout");
  auto lines = accessLines(id);
  ASSERT_EQ(lines.size(), 1u) << joined();
  EXPECT_NE(lines[0].find("\" 504 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("cause=upstream_timeout"), std::string::npos) << lines[0];
}

TEST_F(ProxyDisconnect, ClientLeavingInAnUpstreamTimeoutsGraceIsA499WithoutASecondCancel) {
  start("interrupt", "    proxy_read_timeout 200ms;\n");
  Client c(port_);
  c.send("GET /slow/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string id = waitUpstreamRequest("/slow/5000");
  ASSERT_TRUE(control_->waitForCancels(1)) << joined();
  c.close();
  ASSERT_TRUE(proxy_->waitForLine("rid=" + id + " rt=")) << joined();
  EXPECT_TRUE(upstream_.waitFor([&](auto&) { auto r = upstream_.find(id); return r && r->peer_closed; }));
  ASSERT_EQ(proxy_->stop(), 0) << joined();
  auto cancels = control_->cancels();
  ASSERT_EQ(cancels.size(), 1u) << joined();
  EXPECT_EQ(cancels[0]["reason"], "upstream_timeout");
  auto lines = accessLines(id);
  ASSERT_EQ(lines.size(), 1u) << joined();
  EXPECT_NE(lines[0].find("\" 499 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("phase=awaiting_response cause=eof"), std::string::npos) << lines[0];
  EXPECT_TRUE(proxy_->errorLines().empty()) << joined();
}

TEST_F(ProxyDisconnect, ClientThatVanishesIsFoundByTcpKeepalive) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and a veth pair";
  VethClient vc;
  if (!vc.ok()) GTEST_SKIP() << "cannot create a network namespace with a veth pair (ip netns/veth unavailable)";
  control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
  std::string conf = basicConfig(upstream_.port(), control_->path(), "interrupt", "", "  tcp_keepalive 1s 1s 2;\n");
  conf.replace(conf.find("listen 127.0.0.1:0;"), 19, "listen " + vc.proxyAddress() + ":0;");
  dir_.write("p.conf", conf);
  proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
  ASSERT_TRUE(proxy_->waitListening(1)) << joined();
  ASSERT_TRUE(vc.connectTo(proxy_->port()));
  ASSERT_TRUE(vc.send("GET /slow/20000 HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string id = waitUpstreamRequest("/slow/20000");
  ASSERT_TRUE(vc.cutLink());
  // idle 1s + 2 probes 1s apart: the proxy gives up after about 3 s.
  ASSERT_TRUE(control_->waitForCancels(1, 10000ms)) << joined();
  expectOneCancel(id, "interrupt", "awaiting_response", "keepalive");
}

}  // namespace
}  // namespace tether::proxy::test
