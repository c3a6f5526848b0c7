// End to end: client -> tether-proxy -> solverd -> solverd-worker, all real processes. A client
// that leaves is noticed by the proxy, which sends a cancel frame to solverd's control socket;
// solverd's own watch is switched off here (`on_disconnect none`) so that the cancel measured is
// the proxy's.
#include "daemon_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "tether/config/units.hpp"

namespace tether::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// A file path in a fresh directory under /tmp, removed with it.
struct TempLogDir {
  TempLogDir() {
    char tmpl[] = "/tmp/tether-e2e-XXXXXX";
    dir = mkdtemp(tmpl) != nullptr ? tmpl : "/tmp";
    path = dir + "/access.log";
  }
  ~TempLogDir() {
    std::remove(path.c_str());
    if (dir != "/tmp") rmdir(dir.c_str());
  }
  std::string dir, path;
};

class Stack {
 public:
  struct Options {
    std::string proxy_action = "interrupt";
    std::string solverd_extra;
    std::string proxy_server_extra;     // directives of the proxy's server block
    std::string location_kill_after = "5s";
    std::string worker_path;            // default: the real solverd-worker
    std::string solve_location_extra;   // directives of the proxy's /v1/solve location
    std::string proxy_main_extra;       // directives of the proxy's main context (log_format)
  };

  Stack(const std::string& cgroup_root, const std::string& proxy_action, const std::string& solverd_extra,
        const std::string& solve_location_extra = "")
      : Stack(cgroup_root, Options{proxy_action, solverd_extra, {}, "5s", {}, solve_location_extra, {}}) {}

  Stack(const std::string& cgroup_root, const Options& o) {
    solverd_ = std::make_unique<Solverd>(cgroup_root, Solverd::Options{o.solverd_extra, false, o.worker_path, {}});
    if (!solverd_->started()) return;
    proxy_conf_ = solverd_->dir() + "/proxy.conf";
    admin_path_ = solverd_->dir() + "/proxy-admin.sock";
    std::ofstream(proxy_conf_) << "error_log stderr info;\n"
                               << "admin { listen unix:" << admin_path_ << "; }\n"
                               << o.proxy_main_extra
                               << "upstream solverd {\n"
                               << "    server 127.0.0.1:" << solverd_->port() << ";\n"
                               << "    control unix:" << solverd_->controlPath() << ";\n"
                               << "}\n"
                               << "server {\n"
                               << "    listen 127.0.0.1:0;\n"
                               << o.proxy_server_extra
                               << "    location /v1/solve {\n"
                               << "        proxy_pass http://solverd;\n"
                               << "        on_disconnect " << o.proxy_action << ";\n"
                               << "        kill_after " << o.location_kill_after << ";\n"
                               << o.solve_location_extra << "    }\n"
                               << "    location / { proxy_pass http://solverd; on_disconnect none; }\n"
                               << "}\n";
    proxy_ = std::make_unique<Process>(std::vector<std::string>{binPath("tether-proxy"), "-c", proxy_conf_});
    std::vector<std::string> m;
    if (proxy_->waitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 10s, &m)) port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  ~Stack() {
    if (proxy_) {
      proxy_->signal(SIGTERM);
      if (!proxy_->wait(10s)) proxy_->signal(SIGKILL);
    }
  }
  bool started() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  Solverd& solverd() { return *solverd_; }
  Process& proxy() { return *proxy_; }
  std::string proxyMetrics() {
    HttpClient c(admin_path_);
    c.send("GET", "/metrics");
    auto r = c.response(5s);
    return r ? r->body : std::string();
  }

 private:
  std::string admin_path_;
  std::unique_ptr<Solverd> solverd_;
  std::unique_ptr<Process> proxy_;
  std::string proxy_conf_;
  uint16_t port_ = 0;
};

class EndToEndTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped()) return;
    if (!std::ifstream(binPath("tether-proxy"))) GTEST_SKIP() << "tether-proxy not built in " << TETHER_BIN_DIR;
  }

  // Streams the hard instance through the proxy; returns the client after the first incumbent,
  // with the request id the proxy gave it and that incumbent's objective.
  std::unique_ptr<HttpClient> solveUntilIncumbent(Stack& stack, std::string& id, double& objective,
                                                  const std::string& key = {}) {
    auto c = std::make_unique<HttpClient>(stack.port());
    Headers headers{{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}};
    if (!key.empty()) headers.emplace_back("X-Solve-Key", key);
    c->send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")), headers);
    auto head = c->head(10s);
    EXPECT_TRUE(head);
    if (!head) return c;
    EXPECT_EQ(head->status, 200);
    id = head->headers["x-request-id"];
    auto inc = c->eventNamed("incumbent", 20s);
    EXPECT_TRUE(inc);
    if (inc) objective = (*inc)["objective"];
    return c;
  }
};

TEST_F(EndToEndTest, ClientLeavingThroughTheProxyInterruptsTheSolveWhichReturnsItsIncumbent) {
  // A deadline on the location (proxy_read_timeout) that the client leaves before: no part to play.
  Stack stack(cgroup_root_, "interrupt", "on_disconnect none;\n", "        proxy_read_timeout 30s;\n");
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  std::string id;
  double incumbent = 0;
  auto c = solveUntilIncumbent(stack, id, incumbent);
  ASSERT_EQ(id.size(), 32U);
  c->close();
  auto job = stack.solverd().waitFinished(id, 10s);
  ASSERT_TRUE(job) << stack.solverd().process().output();
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  ASSERT_TRUE((*job)["result"]["objective"].is_number()) << job->dump();
  EXPECT_LE((*job)["result"]["objective"].get<double>(), incumbent);
  const auto& cancel = (*job)["cancel"];
  EXPECT_EQ(cancel["action"], "interrupt");
  EXPECT_EQ(cancel["reason"], "client_disconnect");
  EXPECT_EQ(cancel["phase"], "response_body");  // carried by the proxy's frame: the stream had begun
  double ms = cancel["received_to_exited_ms"];
  std::cout << "[ measured ] proxy interrupt: cancel received -> signalled " << cancel["received_to_signalled_ms"]
            << " ms, -> worker exited " << ms << " ms\n";
  // DESIGN's figure is 100 ms (about 12 ms measured alone). Under a loaded CI machine (2 cores,
  // parallel tests running solvers) the worker may wait for the CPU, so the assertion is only
  // that it stopped gracefully, before the ladder's kill (kill_after 5s): the figure printed
  // above is the one to read.
  EXPECT_EQ(cancel["killed_ns"], 0) << "the worker did not stop on the interrupt frame";
  EXPECT_LT(ms, 5000);
  EXPECT_TRUE(stack.solverd().process().waitForLine("job=" + id + " solver=cbc status=interrupted objective=", 2s));
  EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + ".*cancel interrupt", 2s)) << stack.proxy().output();
  auto metrics = stack.solverd().metrics();
  EXPECT_NE(metrics.find("solverd_jobs_total{solver=\"cbc\",status=\"interrupted\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("solverd_cancel_to_exit_seconds_count 1"), std::string::npos) << metrics;
  // A client that leaves is a client_disconnect everywhere, even on a location with a deadline.
  EXPECT_NE(metrics.find("solverd_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",phase=\"running\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("upstream_timeout"), std::string::npos) << metrics;
  auto proxy_metrics = stack.proxyMetrics();
  EXPECT_NE(proxy_metrics.find("tether_proxy_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",result=\"sent\"} 1"),
            std::string::npos)
      << proxy_metrics;
  EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + " rt=.* phase=\\w+ cause=eof", 2s)) << stack.proxy().output();
  stack.solverd().expectNoErrorsLogged();
}

// Issue 13: a client who waits keeps its solve. The proxy's timeout on a cancelling location is a
// deadline: the cancel says upstream_timeout, and the waiting client gets the interrupted result.
TEST_F(EndToEndTest, UpstreamTimeoutOnAnInterruptLocationAnswersTheWaitingClientWithTheIncumbent) {
  // solverd's own watch stays on: the proxy keeps the upstream connection through the grace, so
  // the only cancel solverd sees is the proxy's frame.
  Stack stack(cgroup_root_, "interrupt", "", "        proxy_read_timeout 2s;\n");
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  // A plain JSON solve: nothing comes back until the result, as for a new user's curl.
  auto r = httpRequest(stack.port(), "POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
                       {{"Content-Type", "text/x-lp"}}, 20s);
  ASSERT_TRUE(r) << stack.proxy().output();
  EXPECT_EQ(r->status, 200) << r->body << stack.proxy().output();
  auto body = r->json();
  EXPECT_EQ(body["status"], "interrupted") << r->body;
  EXPECT_TRUE(body["objective"].is_number()) << "no incumbent in the interrupted result: " << r->body;
  const std::string id = body.value("id", std::string());
  ASSERT_EQ(id.size(), 32U) << r->body;

  auto job = stack.solverd().waitFinished(id, 5s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["cancel"]["reason"], "upstream_timeout") << job->dump();
  EXPECT_EQ((*job)["cancel"]["phase"], "awaiting_response") << job->dump();
  EXPECT_EQ((*job)["cancel"]["killed_ns"], 0) << "the worker did not stop on the interrupt frame";
  EXPECT_TRUE(waitFor([&] { return workerPids(cgroup_root_).empty() && jobCgroups(cgroup_root_).empty(); }, 5s));

  auto metrics = stack.solverd().metrics();
  EXPECT_NE(metrics.find("solverd_cancels_total{action=\"interrupt\",reason=\"upstream_timeout\",phase=\"running\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("client_disconnect"), std::string::npos) << metrics;
  auto proxy_metrics = stack.proxyMetrics();
  EXPECT_NE(proxy_metrics.find("tether_proxy_cancels_total{action=\"interrupt\",reason=\"upstream_timeout\",result=\"sent\"} 1"),
            std::string::npos)
      << proxy_metrics;
  EXPECT_EQ(proxy_metrics.find("client_disconnect"), std::string::npos) << proxy_metrics;
  EXPECT_EQ(proxy_metrics.find("tether_proxy_disconnects_total{"), std::string::npos) << proxy_metrics;

  EXPECT_TRUE(stack.solverd().process().waitForLine("job=" + id + " cancel interrupt \\(upstream_timeout", 2s))
      << stack.solverd().process().output();
  EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + " cancel interrupt sent .*reason upstream_timeout", 2s))
      << stack.proxy().output();
  EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + " rt=.* phase=awaiting_response cause=upstream_timeout", 2s))
      << stack.proxy().output();
  for (const auto& line : stack.solverd().process().lines()) {
    EXPECT_EQ(line.find("client_disconnect"), std::string::npos) << line;
  }
  for (const auto& line : stack.proxy().lines()) {
    EXPECT_EQ(line.find("[error]"), std::string::npos) << line;
  }
  stack.solverd().expectNoErrorsLogged();
}

// One W3C trace id from the client's traceparent to the worker's exit (issue 18): the proxy's
// access log, solverd's job record and log, and the cancel frame of the client that leaves.
// solverd's own connection watch is off, so the cancel solverd records is the proxy's frame.
TEST_F(EndToEndTest, TraceparentFollowsTheRequestIntoSolverdsJobAndTheCancelOfTheClientThatLeaves) {
  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  TempLogDir logs;
  Stack::Options o;
  o.solverd_extra = "on_disconnect none;\n";
  o.proxy_main_extra =
      "log_format trace escape=json '{\"rid\":\"$request_id\",\"trace_id\":\"$trace_id\",'\n"
      "  '\"status\":$status,\"cancel_action\":\"$cancel_action\"}';\n";
  o.proxy_server_extra = "    access_log " + logs.path + " trace;\n";
  Stack stack(cgroup_root_, o);
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  auto c = std::make_unique<HttpClient>(stack.port());
  c->send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
          {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"},
           {"traceparent", "00-" + trace + "-b7ad6b7169203331-01"}, {"tracestate", "vendor=x"}});
  auto head = c->head(10s);
  ASSERT_TRUE(head);
  ASSERT_EQ(head->status, 200);
  const std::string id = head->headers["x-request-id"];
  ASSERT_TRUE(c->eventNamed("incumbent", 20s)) << stack.solverd().process().output();

  nlohmann::json running = stack.solverd().job(id);
  EXPECT_EQ(running["trace_id"], trace) << running.dump();
  ASSERT_EQ(running["requests"].size(), 1u);
  EXPECT_EQ(running["requests"][0]["trace_id"], trace);

  c->close();
  auto job = stack.solverd().waitFinished(id, 10s);
  ASSERT_TRUE(job) << stack.solverd().process().output();
  EXPECT_EQ((*job)["trace_id"], trace);
  EXPECT_EQ((*job)["cancel"]["reason"], "client_disconnect");
  EXPECT_EQ((*job)["cancel"]["trace_id"], trace) << "the proxy's cancel frame carries the trace id";

  EXPECT_TRUE(stack.solverd().process().waitForLine("job=" + id + " cancel interrupt .* trace=" + trace, 2s))
      << stack.solverd().process().output();
  EXPECT_TRUE(stack.solverd().process().waitForLine("job=" + id + " solver=cbc status=interrupted .* trace=" + trace, 2s))
      << stack.solverd().process().output();
  EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + " cancel interrupt sent .* trace=" + trace, 2s))
      << stack.proxy().output();
  // The line is written when the proxy notices the close, which the solverd checks above followed.
  std::optional<nlohmann::json> line;
  std::string unparsed;
  waitFor([&] {
    std::ifstream in(logs.path);
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_discarded()) unparsed = l;
      if (j.is_object() && j["rid"] == id) line = j;
    }
    return line.has_value();
  }, 5s);
  EXPECT_EQ(unparsed, "") << "an access log line that is not JSON";
  ASSERT_TRUE(line) << "no access log line for " << id;
  EXPECT_EQ((*line)["trace_id"], trace);
  EXPECT_EQ((*line)["status"], 499);
  EXPECT_EQ((*line)["cancel_action"], "interrupt");
  stack.solverd().expectNoErrorsLogged();
}

TEST_F(EndToEndTest, ClientLeavingThroughTheProxyUnderKillEmptiesTheCgroupAtOnce) {
  Stack stack(cgroup_root_, "kill", "on_disconnect none;\n");
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  std::string id;
  double incumbent = 0;
  auto c = solveUntilIncumbent(stack, id, incumbent);
  ASSERT_EQ(id.size(), 32U);
  c->close();
  auto job = stack.solverd().waitFinished(id, 10s);
  ASSERT_TRUE(job);
  const auto& cancel = (*job)["cancel"];
  EXPECT_EQ(cancel["action"], "kill");
  EXPECT_NE(cancel["killed_ns"], 0);
  double ms = cancel["received_to_exited_ms"];
  std::cout << "[ measured ] proxy kill: cancel received -> cgroup empty " << ms << " ms\n";
  // solverd's own measure. The issue's figure is 10 ms (about 1-2 ms measured alone); the bound
  // is one a loaded 2-core CI machine holds, the tight figure is bench/'s. The order matters
  // more: it was killed, not interrupted (killed_ns above), before the 5s grace.
  EXPECT_LT(ms, 1000);
  EXPECT_EQ((*job)["status"], "interrupted");
  EXPECT_TRUE(jobCgroups(cgroup_root_).empty());
}

TEST_F(EndToEndTest, ThreeClientsWithOneKeyThroughTheProxyShareOneWorkerUntilTheLastLeaves) {
  Stack stack(cgroup_root_, "interrupt", "on_disconnect none;\ncoalesce share;\n");
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  std::string key = "k-" + newId();
  std::string ids[3];
  double incumbent = 0;
  std::unique_ptr<HttpClient> clients[3];
  for (int i = 0; i < 3; ++i) clients[i] = solveUntilIncumbent(stack, ids[i], incumbent, key);
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  const std::string job_id = stack.solverd().job(ids[0])["id"];
  EXPECT_EQ(stack.solverd().job(ids[2])["id"], job_id);
  clients[0]->close();
  clients[1]->close();
  // The proxy's two cancel frames take two requests out; the third keeps the job going.
  ASSERT_TRUE(waitFor([&] {
    int live = 0;
    const nlohmann::json job = stack.solverd().job(job_id);  // kept: the loop below reads into it
    for (const auto& r : job["requests"]) live += r["live"].get<bool>() ? 1 : 0;
    return live == 1;
  }, 5s)) << stack.solverd().job(job_id).dump();
  EXPECT_EQ(stack.solverd().job(job_id)["state"], "running");
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  clients[2]->close();
  auto job = stack.solverd().waitFinished(job_id, 10s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["status"], "interrupted");
}

TEST_F(EndToEndTest, CompletedRequestThroughTheProxySendsNoCancel) {
  Stack stack(cgroup_root_, "interrupt", "");
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  auto r = httpRequest(stack.port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")),
                       {{"Content-Type", "text/x-lp"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json()["objective"], 309.0);
  auto health = httpRequest(stack.port(), "GET", "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(stack.solverd().metrics().find("solverd_cancels_total{"), std::string::npos);
}

// `-T` of a binary run with its built-in configuration.
std::string effectiveDefaults(const std::string& binary) {
  std::string out;
  FILE* p = popen((binPath(binary) + " -T 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

// The first `name VALUE;` line after `after` (a line prefix), as a duration.
std::optional<std::chrono::milliseconds> durationAfter(const std::string& text, const std::string& after,
                                                       const std::string& name) {
  std::istringstream in(text);
  std::string line;
  bool inside = after.empty();
  while (std::getline(in, line)) {
    std::string trimmed = line.substr(std::min(line.find_first_not_of(' '), line.size()));
    if (!inside) {
      inside = trimmed.rfind(after, 0) == 0;
      continue;
    }
    if (trimmed == "}") {
      if (!after.empty()) return std::nullopt;  // the block ended without it
      continue;
    }
    if (trimmed.rfind(name + " ", 0) != 0) continue;
    std::string value = trimmed.substr(name.size() + 1);
    return config::parseDuration(value.substr(0, value.find(';')));
  }
  return std::nullopt;
}

// A new user's setup (`./scripts/run`: both daemons on their built-in configuration) must not
// cut a plain JSON solve that solverd would still finish: the proxy's solve location waits longer
// than solverd's longest solve plus its grace.
TEST(BuiltInDefaults, ProxySolveLocationWaitsLongerThanSolverdsTimeLimitPlusGrace) {
  std::string proxy = effectiveDefaults("tether-proxy");
  std::string solverd = effectiveDefaults("solverd");
  auto read_timeout = durationAfter(proxy, "location /v1/solve {", "proxy_read_timeout");
  auto time_limit = durationAfter(solverd, "", "default_time_limit");
  auto grace = durationAfter(solverd, "", "time_limit_grace");
  ASSERT_TRUE(read_timeout) << proxy;
  ASSERT_TRUE(time_limit) << solverd;
  ASSERT_TRUE(grace) << solverd;
  std::cout << "[ measured ] proxy_read_timeout " << read_timeout->count() << " ms, solverd default_time_limit "
            << time_limit->count() << " ms + time_limit_grace " << grace->count() << " ms\n";
  EXPECT_GT(*read_timeout, *time_limit + *grace) << proxy << solverd;
}

// Behind a balancer that sets its own ids under a renamed header: the proxy trusts them, solverd
// (its own watch off, so only the proxy's frame can stop the solve) takes the same header, and
// the one id is the response's, the job's and the cancel frame's.
TEST_F(EndToEndTest, BalancerIdsUnderARenamedHeaderAreEchoedAndTheirCancelStopsTheWorker) {
  Stack::Options o;
  o.proxy_server_extra = "    request_id_header X-Correlation-Id;\n    trust_request_id on;\n";
  o.solverd_extra = "on_disconnect none;\nrequest_id_header X-Correlation-Id;\ntrust_request_id on;\n";
  Stack stack(cgroup_root_, o);
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  const std::string unique = newId();
  for (const std::string& id : {"f47ac10b-58cc-4372-a567-" + unique.substr(0, 12),  // Envoy, Istio
                                unique,                                                // nginx $request_id
                                "Root=1-" + unique.substr(0, 8) + "-" + unique.substr(8, 24)}) {  // AWS
    SCOPED_TRACE(id);
    HttpClient c(stack.port());
    c.send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
           {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}, {"X-Correlation-Id", id}});
    auto head = c.head(10s);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->headers["x-correlation-id"], id) << "the response does not echo the balancer's id";
    auto accepted = c.eventNamed("accepted", 10s);
    ASSERT_TRUE(accepted);
    EXPECT_EQ((*accepted)["id"], id) << "solverd gave the request another id";
    ASSERT_TRUE(c.eventNamed("incumbent", 20s)) << "the hard solve ended before its client left";
    ASSERT_EQ(workerPids(cgroup_root_).size(), 1U);
    c.close();
    // Only the proxy's frame can stop it: solverd's own watch is off.
    EXPECT_TRUE(waitFor([&] { return workerPids(cgroup_root_).empty(); }, 10s)) << "the worker outlived its client";
    auto job = stack.solverd().waitFinished(id, 10s);
    ASSERT_TRUE(job) << stack.solverd().process().output();
    EXPECT_EQ((*job)["id"], id);
    EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
    EXPECT_EQ((*job)["cancel"]["reason"], "client_disconnect");
    // (the three ids hold no character special to a regular expression)
    EXPECT_TRUE(stack.proxy().waitForLine("rid=" + id + " cancel interrupt sent", 2s)) << stack.proxy().output();
  }
  EXPECT_NE(stack.solverd().metrics().find("solverd_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",phase=\"running\"} 3"),
            std::string::npos)
      << stack.solverd().metrics();
  EXPECT_TRUE(jobCgroups(cgroup_root_).empty());
  stack.solverd().expectNoErrorsLogged();
}

// The grace that governs: the location's kill_after (4s), although solverd's own watch (on, with
// its kill_after 1s) sees the upstream connection close. The worker ignores its interrupt, so only
// the kill ends it, and when it comes shows whose grace held.
TEST_F(EndToEndTest, WorkerIgnoringItsInterruptIsKilledAtTheLocationsGraceNotSolverds) {
  IgnoringWorkerScript worker;
  Stack::Options o;
  o.location_kill_after = "4s";
  o.solverd_extra = "kill_after 1s;\non_disconnect interrupt;\n";
  o.worker_path = worker.path();
  Stack stack(cgroup_root_, o);
  ASSERT_TRUE(stack.started()) << stack.proxy().output();
  HttpClient c(stack.port());
  c.send("POST", "/v1/solve", readFile(modelPath("knapsack.lp")), {{"Content-Type", "text/x-lp"}});
  ASSERT_TRUE(waitFor([&] { return workerPids(cgroup_root_).size() == 1; }, 5s)) << stack.solverd().process().output();
  const auto left = Clock::now();
  c.close();
  auto gone = [&] { return workerPids(cgroup_root_).empty(); };
  EXPECT_FALSE(waitFor(gone, 2s)) << "killed before 2s: solverd's kill_after 1s governed";
  EXPECT_TRUE(waitFor(gone, 4s)) << "still running 6s after its client left";
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - left).count();
  std::cout << "[ measured ] kill_after 4s at the location, 1s in solverd: client close -> worker gone " << ms
            << " ms\n";
  std::vector<std::string> m;
  ASSERT_TRUE(stack.proxy().waitForLine(R"(rid=(\w+) cancel interrupt sent)", 1s, &m)) << stack.proxy().output();
  auto job = stack.solverd().waitFinished(m[1], 5s);
  ASSERT_TRUE(job);
  // solverd's own record: the kill came 4s after the first interrupt, whoever sent that.
  EXPECT_GE(receivedToKilledMs(*job), 3900) << job->dump();
  EXPECT_EQ((*job)["cancel"]["reason"], "client_disconnect");
  stack.solverd().expectNoErrorsLogged();
}

}  // namespace
}  // namespace tether::test
