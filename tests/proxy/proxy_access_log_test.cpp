// The access log and trace context through the real tether-proxy binary: several log_formats
// written to several files per request, the disconnect and cancel variables of a client that
// leaves, and the W3C traceparent as the upstream and the control socket receive it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "harness.hpp"

namespace tether::proxy::test {
namespace {

// Every variable, as JSON: each line of this format must parse.
const std::string kJsonFormat =
    "log_format all escape=json '{\"remote_addr\":\"$remote_addr\",\"time\":\"$time_iso8601\",'\n"
    "  '\"request\":\"$request\",\"method\":\"$request_method\",\"uri\":\"$request_uri\",'\n"
    "  '\"status\":$status,\"bytes\":$body_bytes_sent,\"rt\":$request_time,'\n"
    "  '\"urt\":\"$upstream_response_time\",\"upstream\":\"$upstream_addr\",\"rid\":\"$request_id\",'\n"
    "  '\"trace_id\":\"$trace_id\",\"ua\":\"$http_user_agent\",\"phase\":\"$disconnect_phase\",'\n"
    "  '\"cause\":\"$disconnect_cause\",\"cancel_action\":\"$cancel_action\",'\n"
    "  '\"cancel_outcome\":\"$cancel_outcome\"}';\n";

constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

class ProxyAccessLog : public ::testing::Test {
 protected:
  void start(const std::string& main_extra, const std::string& server_extra) {
    control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
    dir_.write("p.conf", main_extra + basicConfig(upstream_.port(), control_->path(), "interrupt", "", server_extra));
    proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
    ASSERT_TRUE(proxy_->waitListening(1)) << joined();
    port_ = proxy_->port();
  }
  std::string joined() {
    std::string s;
    if (proxy_) {
      for (auto& l : proxy_->lines()) s += l + "\n";
    }
    return s;
  }
  // The lines of a log file once it has `n` (a line is written just after its response).
  std::vector<std::string> linesOf(const std::string& path, size_t n) {
    std::vector<std::string> lines;
    waitUntil([&] {
      lines.clear();
      std::ifstream in(path);
      for (std::string l; std::getline(in, l);) lines.push_back(l);
      return lines.size() >= n;
    });
    return lines;
  }
  nlohmann::json onlyJsonLine(const std::string& path) {
    auto lines = linesOf(path, 1);
    EXPECT_EQ(lines.size(), 1u);
    if (lines.empty()) return {};
    auto j = nlohmann::json::parse(lines[0], nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << lines[0];
    return j;
  }

  TempDir dir_;
  TestUpstream upstream_;
  std::unique_ptr<ControlListener> control_;
  std::unique_ptr<ProxyProcess> proxy_;
  uint16_t port_ = 0;
};

TEST_F(ProxyAccessLog, SeveralFormatsAndFilesEachGetOneLinePerRequest) {
  const std::string a = dir_.file("a.log"), b = dir_.file("b.log"), c = dir_.file("c.log");
  start(kJsonFormat + "log_format short escape=none '$status $request_id \"$http_user_agent\" $http_x_solve_key';\n",
        "  access_log " + a + " all;\n  access_log " + b + " short;\n  access_log " + c + ";\n");
  Client client(port_);
  client.send("GET /fast?x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: ua \"quoted\"\r\nX-Solve-Key: k7\r\n"
              "traceparent: " + std::string(kTraceparent) + "\r\n\r\n");
  std::string resp = client.readResponse();
  ASSERT_EQ(statusOf(resp), 200) << resp;
  const std::string rid = headerOf(resp, "X-Request-Id");

  nlohmann::json j = onlyJsonLine(a);
  EXPECT_EQ(j["remote_addr"], "127.0.0.1");
  EXPECT_EQ(j["request"], "GET /fast?x=1 HTTP/1.1");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["uri"], "/fast?x=1");
  EXPECT_EQ(j["status"], 200);
  const size_t body_bytes = bodyOf(resp).size();
  EXPECT_EQ(j["bytes"], body_bytes);
  EXPECT_TRUE(j["rt"].is_number());
  EXPECT_NE(j["urt"], "");
  EXPECT_EQ(j["upstream"], "127.0.0.1:" + std::to_string(upstream_.port()));
  EXPECT_EQ(j["rid"], rid);
  EXPECT_EQ(j["trace_id"], kTraceId);
  EXPECT_EQ(j["ua"], "ua \"quoted\"");
  EXPECT_EQ(j["phase"], "");  // not a disconnect: unset is an empty string in JSON
  EXPECT_EQ(j["cancel_action"], "");
  EXPECT_EQ(std::string(j["time"]).size(), 25u) << j["time"];  // 2026-12-01T00:00:00+00:00

  auto short_lines = linesOf(b, 1);
  ASSERT_EQ(short_lines.size(), 1u);
  EXPECT_EQ(short_lines[0], "200 " + rid + " \"ua \"quoted\"\" k7");  // escape=none: as received

  auto tether_lines = linesOf(c, 1);
  ASSERT_EQ(tether_lines.size(), 1u);
  EXPECT_NE(tether_lines[0].find("\"GET /fast?x=1 HTTP/1.1\" 200 " + std::to_string(body_bytes) +
                                 " \"-\" \"ua \\x22quoted\\x22\" rid=" + rid + " rt="),
            std::string::npos) << tether_lines[0];
  EXPECT_NE(tether_lines[0].find(" trace=" + std::string(kTraceId)), std::string::npos) << tether_lines[0];
  // access_log stderr (basicConfig's) still writes its own line in the tether format.
  EXPECT_TRUE(proxy_->waitForLine("rid=" + rid + " rt=")) << joined();
}

// A client that leaves while the upstream works: 499 with its phase and cause, the cancel frame
// named by $cancel_action and $cancel_outcome; and the trace: the upstream gets the client's
// trace with a new parent id and the tracestate unchanged, the cancel frame carries the trace id.
TEST_F(ProxyAccessLog, ClientThatLeavesIsLoggedWithItsDisconnectItsCancelAndItsTrace) {
  const std::string a = dir_.file("a.log");
  start(kJsonFormat, "  access_log " + a + " all;\n");
  Client client(port_);
  client.send("GET /hold HTTP/1.1\r\nHost: t\r\ntraceparent: " + std::string(kTraceparent) +
              "\r\ntracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\r\n\r\n");
  ASSERT_TRUE(upstream_.waitFor([](const auto& rs) { return !rs.empty(); }));
  UpstreamRequest seen = upstream_.requests()[0];
  client.close();
  ASSERT_TRUE(control_->waitForCancels(1)) << joined();

  const std::string sent = seen.headers["traceparent"];
  ASSERT_EQ(sent.size(), 55u) << sent;
  EXPECT_EQ(sent.substr(0, 36), std::string("00-") + kTraceId + "-");
  EXPECT_NE(sent.substr(36, 16), "00f067aa0ba902b7") << "the proxy is a new parent";
  EXPECT_NE(sent.substr(36, 16), "0000000000000000");
  EXPECT_EQ(sent.substr(52), "-01") << "the flags pass unchanged";
  EXPECT_EQ(seen.headers["tracestate"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

  nlohmann::json cancel = control_->cancels()[0];
  EXPECT_EQ(cancel["id"], seen.request_id);
  EXPECT_EQ(cancel["trace_id"], kTraceId);

  nlohmann::json j = onlyJsonLine(a);
  EXPECT_EQ(j["status"], 499);
  EXPECT_EQ(j["phase"], "awaiting_response");
  EXPECT_EQ(j["cause"], "eof");
  EXPECT_EQ(j["cancel_action"], "interrupt");
  EXPECT_EQ(j["cancel_outcome"], "sent");
  EXPECT_EQ(j["trace_id"], kTraceId);
  EXPECT_EQ(j["rid"], seen.request_id);
  EXPECT_TRUE(proxy_->waitForLine("rid=" + seen.request_id + " cancel interrupt sent to unix:")) << joined();
  EXPECT_FALSE(proxy_->linesContaining("trace=" + std::string(kTraceId)).empty()) << joined();
}

TEST_F(ProxyAccessLog, TraceContextStartBeginsATraceWhenNoValidOneComes) {
  const std::string a = dir_.file("a.log");
  start(kJsonFormat, "  access_log " + a + " all;\n  trace_context start;\n");
  // Upper-case hex is not a valid traceparent (W3C Trace Context section 3.2.2.2).
  Client client(port_);
  client.send("GET /fast HTTP/1.1\r\nHost: t\r\ntraceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\n"
              "tracestate: congo=t61rcWkgMzE\r\n\r\n");
  ASSERT_EQ(statusOf(client.readResponse()), 200);
  ASSERT_EQ(upstream_.requests().size(), 1u);
  UpstreamRequest seen = upstream_.requests()[0];
  const std::string sent = seen.headers["traceparent"];
  ASSERT_EQ(sent.size(), 55u) << sent;
  const std::string trace = sent.substr(3, 32);
  EXPECT_NE(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(sent.substr(52), "-00") << "a trace we start is not sampled: we record no spans";
  EXPECT_EQ(seen.headers.count("tracestate"), 0u) << "a tracestate does not outlive its trace";
  nlohmann::json j = onlyJsonLine(a);
  EXPECT_EQ(j["trace_id"], trace);
}

TEST_F(ProxyAccessLog, TraceContextPassDropsAnInvalidTraceparentAndOffLeavesBothHeadersAlone) {
  const std::string a = dir_.file("a.log");
  start(kJsonFormat, "  access_log " + a + " all;\n");  // trace_context pass, the default
  const std::string bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";  // all-zero trace id
  Client c1(port_);
  c1.send("GET /fast HTTP/1.1\r\nHost: t\r\ntraceparent: " + bad + "\r\ntracestate: a=b\r\n\r\n");
  ASSERT_EQ(statusOf(c1.readResponse()), 200);
  ASSERT_EQ(upstream_.requests().size(), 1u);
  EXPECT_EQ(upstream_.requests()[0].headers.count("traceparent"), 0u);
  EXPECT_EQ(upstream_.requests()[0].headers.count("tracestate"), 0u);
  EXPECT_EQ(onlyJsonLine(a)["trace_id"], "");
  proxy_->stop();

  TempDir off_dir;
  off_dir.write("p.conf", basicConfig(upstream_.port(), "", "close", "", "  trace_context off;\n"));
  ProxyProcess off(off_dir.file("p.conf"));
  ASSERT_TRUE(off.waitListening(1));
  Client c2(off.port());
  c2.send("GET /fast HTTP/1.1\r\nHost: t\r\ntraceparent: " + std::string(kTraceparent) + "\r\ntracestate: a=b\r\n\r\n");
  std::string resp = c2.readResponse();
  ASSERT_EQ(statusOf(resp), 200);
  ASSERT_EQ(upstream_.requests().size(), 2u);
  EXPECT_EQ(upstream_.requests()[1].headers["traceparent"], kTraceparent);
  EXPECT_EQ(upstream_.requests()[1].headers["tracestate"], "a=b");
  const std::string rid = headerOf(resp, "X-Request-Id");
  ASSERT_TRUE(off.waitForLine("rid=" + rid + " rt="));
  EXPECT_EQ(off.linesContaining("trace=").size(), 0u) << "off: the proxy takes no part in the trace";
}

}  // namespace
}  // namespace tether::proxy::test
