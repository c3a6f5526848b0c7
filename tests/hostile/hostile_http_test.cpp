// Bad input over HTTP (issue 7): a corpus of malformed and hostile requests through tether-proxy
// (smuggling vectors, header floods, 1 MB header lines, invalid methods and versions, NUL bytes,
// slowloris on headers and on bodies, a client that never reads), each with its expected status
// or close, while another client streams good requests that must all succeed. No hostile request
// may start a job in solverd.
#include "harness.hpp"  // tests/proxy: raw clients (Client, statusOf)
#include "support.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace tether::hostile {
namespace {

using RawClient = tether::proxy::test::Client;

// True when every byte written on `client_fd` has been read by the process `proxy_pid`: nothing
// unacknowledged in the client's send queue (SIOCOUTQ) and nothing unread in the receive queue
// of the proxy's end of that connection (/proc/PID/net/tcp, matched by the client's port).
bool proxyReadEverything(pid_t proxy_pid, int client_fd) {
  int unsent = 0;
  if (::ioctl(client_fd, SIOCOUTQ, &unsent) != 0 || unsent != 0) return false;
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (::getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, "%04X", ntohs(local.sin_port));
  std::ifstream table("/proc/" + std::to_string(proxy_pid) + "/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    std::istringstream f(line);
    std::string sl, local_addr, remote_addr, state, queues;
    f >> sl >> local_addr >> remote_addr >> state >> queues;
    // The proxy's end: its remote address is the client's port. tx_queue:rx_queue in hex.
    if (remote_addr.substr(remote_addr.find(':') + 1) != port_hex) continue;
    return std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16) == 0;
  }
  return false;
}

struct Case {
  std::string name;
  std::string bytes;
  std::set<int> statuses;  // accepted answers; 0 = closed without an answer
  bool allow_close = false;
};

std::string knapsackBody() { return tether::test::readFile(tether::test::modelPath("knapsack.lp")); }

std::vector<Case> corpus() {
  const std::string host = "Host: solver\r\n";
  std::vector<Case> c;
  c.push_back({"garbage request line", "GARBAGE\r\n\r\n", {400}, true});
  c.push_back({"invalid method", "G@T /health HTTP/1.1\r\n" + host + "\r\n", {400}, true});
  c.push_back({"unknown version", "GET /health HTTP/9.9\r\n" + host + "\r\n", {400, 505}, true});
  c.push_back({"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505}, true});
  c.push_back({"no Host in HTTP/1.1", "GET /health HTTP/1.1\r\n\r\n", {400}, false});
  c.push_back({"two Host headers", "GET /health HTTP/1.1\r\n" + host + host + "\r\n", {400}, false});
  c.push_back({"CL.TE smuggling", "POST /v1/solve HTTP/1.1\r\n" + host +
                                      "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
               {400}, true});
  c.push_back({"TE.CL smuggling", "POST /v1/solve HTTP/1.1\r\n" + host +
                                      "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
               {400}, true});
  c.push_back({"two different Content-Lengths",
               "POST /v1/solve HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", {400}, true});
  c.push_back({"obfuscated Transfer-Encoding",
               "POST /v1/solve HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", {400, 501}, true});
  c.push_back({"Transfer-Encoding not ending in chunked",
               "POST /v1/solve HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", {400, 501},
               true});
  c.push_back({"space before colon", "GET /health HTTP/1.1\r\nHost : solver\r\n\r\n", {400}, true});
  c.push_back({"obs-fold", "GET /health HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", {400}, true});
  c.push_back({"NUL in a header value", std::string("GET /health HTTP/1.1\r\n") + host + "X-A: a" + std::string(1, '\0') +
                                            "b\r\n\r\n",
               {400}, true});
  c.push_back({"NUL in the target", std::string("GET /hea") + std::string(1, '\0') + "lth HTTP/1.1\r\n" + host + "\r\n",
               {400}, true});
  c.push_back({"negative Content-Length", "POST /v1/solve HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", {400},
               true});
  c.push_back({"chunk size overflow", "POST /v1/solve HTTP/1.1\r\n" + host +
                                          "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
               {400, 413}, true});
  c.push_back({"CONNECT", "CONNECT solver:443 HTTP/1.1\r\n" + host + "\r\n", {400, 405}, true});
  c.push_back({"1 MB header line", "GET /health HTTP/1.1\r\n" + host + "X-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n",
               {400, 431}, true});
  c.push_back({"1 MB request target", "GET /" + std::string(1 << 20, 'a') + " HTTP/1.1\r\n" + host + "\r\n",
               {400, 414, 431}, true});
  std::string flood = "GET /health HTTP/1.1\r\n" + host;
  for (int i = 0; i < 10000; ++i) flood += "X-" + std::to_string(i) + ": v\r\n";
  c.push_back({"10,000 headers", flood + "\r\n", {400, 431}, true});
  // Bytes aimed at the access log: quotes and braces that would forge a field or a JSON line,
  // backslashes, a tab, DEL, bytes that are not UTF-8 and a UTF-16 surrogate in UTF-8 form.
  c.push_back({"log injection in headers",
               "GET /health HTTP/1.1\r\n" + host + "Connection: close\r\nUser-Agent: x\"},\"forged\":1,{\"\\ \t" +
                   std::string("\x80\xff\xc3\xa9") + "\r\nReferer: \xed\xa0\x80\\u0000\r\n\r\n",
               {200}, false});
  c.push_back({"log injection in the target",
               "GET /health?q=\"}{\\\x80 HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", {200, 400}, true});
  c.push_back({"body larger than client_max_body_size",
               "POST /v1/solve HTTP/1.1\r\n" + host + "Content-Type: text/x-lp\r\nContent-Length: 99999999999\r\n\r\n",
               {413}, true});
  return c;
}

class HostileHttpTest : public HostileTest {};

TEST_F(HostileHttpTest, MalformedAndHostileRequestsGetTheirStatusWhileGoodClientsAllSucceed) {
  HostOptions o;
  o.workers = 2;
  o.proxy_server_extra = "  client_header_timeout 1s;\n  client_body_timeout 1s;\n  send_timeout 2s;\n";
  SolverHost host(cgroup_root_, o);
  ASSERT_TRUE(host.startSolverd()) << host.solverd()->output();
  ASSERT_TRUE(host.startProxy()) << host.proxy()->output();
  const pid_t proxy_pid = host.proxy()->pid();
  const int balance_before = host.fdBalance();
  const long rss_before = vmRssKb(proxy_pid);

  // The good client: keep-alive /health and full solves, one after another, all must succeed.
  std::atomic<bool> stop{false};
  std::atomic<int> good{0}, bad{0};
  std::string first_bad;
  std::thread good_client([&] {
    const std::string model = knapsackBody();
    auto c = std::make_unique<HttpClient>(host.proxyPort());
    for (int i = 0; !stop.load(); ++i) {
      if (i % 4 == 0) {
        c->send("POST", "/v1/solve?solver=glpk", model, {{"Content-Type", "text/x-lp"}});
      } else {
        c->send("GET", "/health");
      }
      auto r = c->response(10s);
      if (r && r->status == 200) {
        ++good;
      } else {
        if (bad++ == 0) first_bad = r ? std::to_string(r->status) + " " + r->body : "no response";
        c = std::make_unique<HttpClient>(host.proxyPort());
      }
    }
  });

  int checked = 0;
  for (const auto& k : corpus()) {
    RawClient c(host.proxyPort());
    c.send(k.bytes);  // may fail part-way: the proxy may close before a 1 MB line is in
    auto started = Clock::now();
    std::string reply = c.readUntilClosed(5s);
    bool closed = Clock::now() - started < 5s;
    int status = tether::proxy::test::statusOf(reply);
    if (status == 0) {
      EXPECT_TRUE(k.allow_close && closed) << k.name << ": neither an answer nor a close";
    } else {
      EXPECT_TRUE(k.statuses.count(status) != 0) << k.name << ": got " << status << "\n" << reply.substr(0, 200);
      EXPECT_TRUE(closed) << k.name << ": connection kept open after " << status;
    }
    ++checked;
  }

  // Slowloris: headers that never end, and a body that never ends, are cut off by the timeouts.
  for (std::string slow : {"GET /health HTTP/1.1\r\nHost: solver\r\nX-Slow: ",
                           "POST /v1/solve HTTP/1.1\r\nHost: solver\r\nContent-Type: text/x-lp\r\n"
                           "Content-Length: 1000\r\n\r\nMaximize"}) {
    RawClient c(host.proxyPort());
    c.send(slow);
    auto started = Clock::now();
    std::string reply = c.readUntilClosed(5s);
    double s = std::chrono::duration<double>(Clock::now() - started).count();
    EXPECT_LT(s, 4.0) << "slowloris kept for " << s << " s: " << slow.substr(0, 20);
    int status = tether::proxy::test::statusOf(reply);
    EXPECT_TRUE(status == 0 || status == 408 || status == 499) << status;
  }

  // A client that sends 2,000 pipelined requests and never reads its responses: the proxy must
  // not buffer them without bound.
  {
    RawClient c(host.proxyPort());
    std::string pipelined;
    for (int i = 0; i < 2000; ++i) pipelined += "GET /health HTTP/1.1\r\nHost: solver\r\n\r\n";
    ASSERT_TRUE(c.send(pipelined));
    // Memory is sampled once the proxy has read the whole flood (the client's send queue is
    // empty and so is the proxy's receive queue of this connection): sampled earlier, the
    // bytes would still sit in the kernel and no bound of the proxy's would be tested.
    EXPECT_TRUE(tether::test::waitFor([&] { return proxyReadEverything(proxy_pid, c.fd()); }, 10s))
        << "the proxy never read the whole flood";
    long rss = vmRssKb(proxy_pid);
    EXPECT_LT(rss - rss_before, 64 * 1024) << "proxy grew from " << rss_before << " kB to " << rss << " kB";
  }

  stop = true;
  good_client.join();
  std::printf("[ measure  ] %d hostile cases, %d good requests alongside, %d failed\n", checked, good.load(), bad.load());
  EXPECT_EQ(bad.load(), 0) << "first failure: " << first_bad;
  EXPECT_GT(good.load(), 0);
  // No hostile request started a job (the good client's solves are the only jobs).
  auto sm = host.solverdMetrics();
  EXPECT_EQ(metricSum(sm, "solverd_jobs_total"), metricSum(sm, "solverd_jobs_total", {"status=\"optimal\""})) << sm;

  EXPECT_TRUE(tether::test::waitFor([&] { return host.fdBalance() <= balance_before; }, 5s))
      << "proxy fds beyond its keep-alive pool: " << balance_before << " -> " << host.fdBalance();
  EXPECT_TRUE(host.healthy());
  auto errors = host.errorLines();
  EXPECT_TRUE(errors.empty()) << errors.size() << " error lines, first: " << errors.front();
}

// The access log under the same corpus (issue 18): a JSON log_format with every variable that
// carries the client's bytes writes one line per answered request, and every line parses as JSON
// whatever the client sent.
TEST_F(HostileHttpTest, EveryHostileRequestLeavesAnAccessLogLineThatParsesAsJson) {
  HostOptions o;  // access_log stderr (the tether format) stays, beside the JSON file
  o.proxy_main_extra =
      "log_format json escape=json '{\"request\":\"$request\",\"uri\":\"$request_uri\",'\n"
      "  '\"method\":\"$request_method\",\"status\":$status,\"ua\":\"$http_user_agent\",'\n"
      "  '\"referer\":\"$http_referer\",\"host\":\"$http_host\",\"xa\":\"$http_x_a\",'\n"
      "  '\"big\":\"$http_x_big\",\"te\":\"$http_transfer_encoding\",\"rid\":\"$request_id\",'\n"
      "  '\"phase\":\"$disconnect_phase\",\"cause\":\"$disconnect_cause\",\"time\":\"$time_local\"}';\n";
  char dir[] = "/tmp/tether-hlog-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string log_path = std::string(dir) + "/access.json";
  struct Cleanup {
    std::string dir, file;
    ~Cleanup() {
      std::remove(file.c_str());
      rmdir(dir.c_str());
    }
  } cleanup{dir, log_path};
  o.proxy_server_extra = "  client_header_timeout 1s;\n  access_log " + log_path + " json;\n";
  SolverHost logged(cgroup_root_, o);
  ASSERT_TRUE(logged.startSolverd()) << logged.solverd()->output();
  ASSERT_TRUE(logged.startProxy()) << logged.proxy()->output();

  int answered = 0;
  for (const auto& k : corpus()) {
    RawClient c(logged.proxyPort());
    c.send(k.bytes);
    if (tether::proxy::test::statusOf(c.readUntilClosed(5s)) != 0) ++answered;
  }
  std::vector<std::string> lines;
  auto read = [&] {
    lines.clear();
    std::ifstream in(log_path);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines.size() >= static_cast<size_t>(answered);
  };
  EXPECT_TRUE(tether::test::waitFor(read, 5s)) << lines.size() << " lines for " << answered << " answers";
  int parsed = 0;
  bool forged_ua_seen = false;
  for (const std::string& l : lines) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    EXPECT_TRUE(j.is_object()) << "not a JSON object: " << l.substr(0, 300);
    if (!j.is_object()) continue;
    ++parsed;
    EXPECT_TRUE(j["status"].is_number()) << l.substr(0, 300);
    EXPECT_FALSE(j.contains("forged")) << l;
    if (j["ua"].is_string() && j["ua"].get<std::string>().starts_with("x\"},\"forged\":1,{\"\\ \t")) {
      forged_ua_seen = true;  // valid UTF-8 comes back as sent
    }
  }
  std::printf("[ measure  ] %zu access log lines for %d answered hostile requests, %d parsed as JSON\n", lines.size(),
              answered, parsed);
  EXPECT_TRUE(forged_ua_seen) << "the log injection case left no line with its User-Agent";
  EXPECT_EQ(parsed, static_cast<int>(lines.size()));
  auto errors = logged.errorLines();
  EXPECT_TRUE(errors.empty()) << errors.size() << " error lines, first: " << errors.front();
}

}  // namespace
}  // namespace tether::hostile
