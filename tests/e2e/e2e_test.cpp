// End to end: client -> tether-proxy -> solverd -> solverd-worker, all real processes. A client
// that leaves is noticed by the proxy, which sends a cancel frame to solverd's control socket;
// solverd's own watch is switched off here (`on_disconnect none`) so that the cancel measured is
// the proxy's.
#include "daemon_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

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
  Stack(const std::string& cgroup_root, const std::string& proxy_action, const std::string& solverd_extra,
        const std::string& proxy_main_extra = "", const std::string& proxy_server_extra = "") {
    solverd_ = std::make_unique<Solverd>(cgroup_root, Solverd::Options{solverd_extra, false, {}, {}});
    if (!solverd_->started()) return;
    proxy_conf_ = solverd_->dir() + "/proxy.conf";
    std::ofstream(proxy_conf_) << "error_log stderr info;\n"
                               << proxy_main_extra
                               << "upstream solverd {\n"
                               << "    server 127.0.0.1:" << solverd_->port() << ";\n"
                               << "    control unix:" << solverd_->controlPath() << ";\n"
                               << "}\n"
                               << "server {\n"
                               << "    listen 127.0.0.1:0;\n"
                               << proxy_server_extra
                               << "    location /v1/solve {\n"
                               << "        proxy_pass http://solverd;\n"
                               << "        on_disconnect " << proxy_action << ";\n"
                               << "        kill_after 5s;\n"
                               << "    }\n"
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

 private:
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
  Stack stack(cgroup_root_, "interrupt", "on_disconnect none;\n");
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
  EXPECT_FALSE(cancel["phase"].get<std::string>().empty());  // carried by the proxy's frame
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
  stack.solverd().expectNoErrorsLogged();
}

// One W3C trace id from the client's traceparent to the worker's exit (issue 18): the proxy's
// access log, solverd's job record and log, and the cancel frame of the client that leaves.
// solverd's own connection watch is off, so the cancel solverd records is the proxy's frame.
TEST_F(EndToEndTest, TraceparentFollowsTheRequestIntoSolverdsJobAndTheCancelOfTheClientThatLeaves) {
  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  TempLogDir logs;
  Stack stack(cgroup_root_, "interrupt", "on_disconnect none;\n",
              "log_format trace escape=json '{\"rid\":\"$request_id\",\"trace_id\":\"$trace_id\",'\n"
              "  '\"status\":$status,\"cancel_action\":\"$cancel_action\"}';\n",
              "    access_log " + logs.path + " trace;\n");
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

TEST_F(EndToEndTest, ClientLeavingThroughTheProxyUnderKillEmptiesTheCgroupWithinMilliseconds) {
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
  // The issue's figure is 10 ms (about 1-2 ms measured alone); generous under parallel load.
  EXPECT_LT(ms, 100);
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

}  // namespace
}  // namespace tether::test
