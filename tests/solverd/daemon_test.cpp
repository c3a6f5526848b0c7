// solverd as a process: the HTTP API, the queue, cancels by control frame and by its own watch,
// coalescing, crashes and time limits, drain. Real workers, real solvers, real cgroups; after
// each test no solverd-worker process and no job cgroup is left (DaemonTest::TearDown).
#include "daemon_support.hpp"
#include "../support/transportation_lp.hpp"

#include "tether/agent/control/blocking_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <memory>

namespace tether::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers lpHeaders(const std::string& id = {}, bool stream = false, const std::string& key = {}) {
  Headers h{{"Content-Type", "text/x-lp"}};
  if (!id.empty()) h.emplace_back("X-Request-Id", id);
  if (stream) h.emplace_back("Accept", "application/x-ndjson");
  if (!key.empty()) h.emplace_back("X-Solve-Key", key);
  return h;
}

// Starts a streamed solve of the hard market-split instance and waits for its accepted event.
std::unique_ptr<HttpClient> startHardSolve(Solverd& d, const std::string& id, const std::string& key = {},
                                           const std::string& query = "?solver=cbc") {
  auto c = std::make_unique<HttpClient>(d.port());
  c->send("POST", "/v1/solve" + query, readFile(modelPath("market_split_hard.lp")), lpHeaders(id, true, key));
  auto h = c->head(10s);
  EXPECT_TRUE(h.has_value());
  if (h) {
    EXPECT_EQ(h->status, 200);
  }
  auto accepted = c->eventNamed("accepted", 10s);
  EXPECT_TRUE(accepted.has_value());
  return c;
}

class SolverdTest : public DaemonTest {
 protected:
  std::unique_ptr<Solverd> start(const std::string& extra = {}, bool unix_api = false) {
    auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{extra, unix_api, {}, {}});
    EXPECT_TRUE(d->started()) << d->process().output();
    return d;
  }
};

TEST_F(SolverdTest, EveryCorpusModelGetsItsKnownAnswerFromEveryBackend) {
  auto d = start("workers 2;\n");
  ASSERT_TRUE(d->started());
  int checked = 0;
  const nlohmann::json index = modelIndex();
  for (const auto& m : index["models"]) {
    if (m["role"] != "check") continue;
    std::string type = m["format"] == "lp" ? "text/x-lp" : "text/x-mps";
    for (const auto& solver : m["solvers"]) {
      auto r = httpRequest(d->port(), "POST", "/v1/solve?solver=" + solver.get<std::string>(),
                           readFile(modelPath(m["file"])), {{"Content-Type", type}});
      ASSERT_TRUE(r) << m["file"] << " " << solver;
      ASSERT_EQ(r->status, 200) << m["file"] << " " << solver << ": " << r->body;
      auto j = r->json();
      EXPECT_EQ(j["status"], m["status"]) << m["file"] << " " << solver << ": " << r->body;
      if (m["objective"].is_number()) {
        EXPECT_NEAR(j["objective"].get<double>(), m["objective"].get<double>(), 1e-6) << m["file"] << " " << solver;
      }
      EXPECT_TRUE(j.contains("cpu_ms")) << r->body;
      EXPECT_FALSE(r->headers["x-request-id"].empty());
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
  auto metrics = d->metrics();
  EXPECT_NE(metrics.find("solverd_jobs_total{solver=\"cbc\",status=\"optimal\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("solverd_job_cpu_seconds_total{status=\"optimal\"}"), std::string::npos);
  d->expectNoErrorsLogged();
}

TEST_F(SolverdTest, MalformedModelGets400WithTheSolversMessage) {
  auto d = start();
  ASSERT_TRUE(d->started());
  for (std::string solver : {"cbc", "clp", "glpk"}) {
    auto r = httpRequest(d->port(), "POST", "/v1/solve?solver=" + solver, readFile(modelPath("malformed.lp")),
                         lpHeaders());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << solver << ": " << r->body;
    auto j = r->json();
    EXPECT_EQ(j["error"], "invalid_model") << r->body;
    EXPECT_FALSE(j.value("message", std::string{}).empty()) << r->body;
  }
}

TEST_F(SolverdTest, BadRequestsGet415And422And413WithoutAWorker) {
  auto d = start("client_max_body_size 1k;\n");
  ASSERT_TRUE(d->started());
  auto model = readFile(modelPath("knapsack.lp"));
  auto r = httpRequest(d->port(), "POST", "/v1/solve", model, {{"Content-Type", "text/plain"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  r = httpRequest(d->port(), "POST", "/v1/solve?solver=gurobi", model, lpHeaders());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  nlohmann::json body{{"model", model}, {"options", {{"presolve", 1}}}};
  r = httpRequest(d->port(), "POST", "/v1/solve", body.dump(), {{"Content-Type", "application/json"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  r = httpRequest(d->port(), "POST", "/v1/solve", std::string(2048, 'x'), lpHeaders());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  auto jobs = httpRequest(d->port(), "GET", "/v1/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_TRUE(jobs->json()["jobs"].empty()) << jobs->body;
}

TEST_F(SolverdTest, JsonBodyAndUnixSocketListenerAnswer) {
  auto d = start({}, true);
  ASSERT_TRUE(d->started());
  nlohmann::json body{{"model", readFile(modelPath("knapsack.lp"))}, {"format", "lp"}, {"solver", "glpk"},
                      {"options", {{"time_limit", 30}}}};
  HttpClient c(d->apiUnixPath());
  ASSERT_TRUE(c.connected());
  c.send("POST", "/v1/solve", body.dump(), {{"Content-Type", "application/json"}});
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->json()["objective"], 309.0);
  EXPECT_EQ(r->json()["solver"], "glpk");
}

TEST_F(SolverdTest, StreamShowsAcceptedIncumbentsThenTheInterruptedResultAfterDelete) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  auto inc = c->eventNamed("incumbent", 20s);
  ASSERT_TRUE(inc) << d->process().output();
  EXPECT_TRUE((*inc)["objective"].is_number());
  auto del = httpRequest(d->port(), "DELETE", "/v1/jobs/" + id + "?action=interrupt");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 202) << del->body;
  auto result = c->eventNamed("result", 10s);
  ASSERT_TRUE(result);
  EXPECT_EQ((*result)["status"], "interrupted") << result->dump();
  auto job = d->waitFinished(id);
  ASSERT_TRUE(job);
  std::cout << "[ measured ] DELETE interrupt: received->exited " << (*job)["cancel"]["received_to_exited_ms"]
            << " ms\n";
}

TEST_F(SolverdTest, ClientLeavingAfterAnIncumbentInterruptsTheJobWhichKeepsThatIncumbent) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  auto inc = c->eventNamed("incumbent", 20s);
  ASSERT_TRUE(inc);
  double seen = (*inc)["objective"];
  c->close();  // solverd's own watch: no proxy, no control frame
  auto job = d->waitFinished(id, 10s);
  ASSERT_TRUE(job) << d->process().output();
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  ASSERT_TRUE((*job)["result"]["objective"].is_number()) << job->dump();
  EXPECT_LE((*job)["result"]["objective"].get<double>(), seen);  // at least as good (minimizing)
  EXPECT_EQ((*job)["cancel"]["reason"], "client_disconnect");
  double ms = (*job)["cancel"]["received_to_exited_ms"];
  std::cout << "[ measured ] own watch interrupt: received->exited " << ms << " ms\n";
  EXPECT_LT(ms, 1000);
  EXPECT_TRUE(d->process().waitForLine("job=" + id + ".*status=interrupted.*received->exited=", 2s));
  auto metrics = d->metrics();
  EXPECT_NE(
      metrics.find("solverd_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",phase=\"running\"} 1"),
      std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("solverd_cancel_to_exit_seconds_count 1"), std::string::npos) << metrics;
}

TEST_F(SolverdTest, ControlKillEmptiesTheCgroupAtOnce) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  ASSERT_TRUE(waitFor([&] { return d->job(id).value("state", std::string{}) == "running"; }, 5s));
  auto ack = controlRequest(d->controlPath(), cancelFrame(id, "kill"));
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["type"], "cancel_ack");
  EXPECT_EQ((*ack)["state"], "running");
  auto job = d->waitFinished(id, 5s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  double ms = (*job)["cancel"]["received_to_exited_ms"];
  std::cout << "[ measured ] control kill: received->exited " << ms << " ms\n";
  // solverd's own measure, with a bound a loaded 2-core CI machine holds: cgroup.kill empties the
  // cgroup in about 2 ms alone; the tight figure is bench/'s.
  EXPECT_LT(ms, 1000);
  auto result = c->eventNamed("result", 5s);
  EXPECT_TRUE(result);
}

TEST_F(SolverdTest, CancelBeforeItsRequestLeavesATombstoneAndTheRequestNeverStarts) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto ack = controlRequest(d->controlPath(), cancelFrame(id, "interrupt"));
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["state"], "unknown");
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders(id));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_EQ(r->json()["error"], "cancelled");
  EXPECT_TRUE(d->job(id).is_null());
}

TEST_F(SolverdTest, GarbageOnTheControlSocketGetsAnErrorAndSolverdServesOn) {
  auto d = start();
  ASSERT_TRUE(d->started());
  agent::control::BlockingConnection conn;
  ASSERT_EQ(conn.connect(d->controlPath(), 2s), 0);
  ASSERT_EQ(conn.sendRaw(std::string("\xff\xff\xff\x7fgarbage", 11), 2s), 0);
  agent::control::Message reply;
  ASSERT_EQ(conn.receive(reply, 2s), 0);
  ASSERT_TRUE(std::holds_alternative<agent::control::Error>(reply));
  auto hello = controlRequest(d->controlPath(), {{"type", "hello"}, {"version", 1}, {"role", "proxy"}});
  ASSERT_TRUE(hello);
  EXPECT_EQ((*hello)["server"], "solverd");
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(SolverdTest, FullQueueGets503WithRetryAfterAndACancelledQueuedJobNeverSpawns) {
  auto d = start("workers 1;\nqueue_size 1;\n");
  ASSERT_TRUE(d->started());
  std::string a = newId(), b = newId();
  auto ca = startHardSolve(*d, a);
  auto cb = startHardSolve(*d, b);
  EXPECT_EQ(d->job(b)["state"], "queued");
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->headers["retry-after"], "1");
  cb->close();
  auto jb = d->waitFinished(b, 5s);
  ASSERT_TRUE(jb);
  EXPECT_FALSE(jb->contains("worker_pid")) << jb->dump();
  EXPECT_EQ((*jb)["result"]["started"], false);
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  ca->close();
  EXPECT_TRUE(d->waitFinished(a, 10s));
}

// Issue 13: solverd's own watch often reports a request's connection closing before the proxy's
// frame arrives; the frame says why (here upstream_timeout), and that is the reason the job keeps.
// GLPK's simplex ignores the watch's interrupt, so the job is still running when the frame (a kill,
// to end it at once) comes.
TEST_F(SolverdTest, FrameAfterTheOwnWatchsCancelGivesTheJobTheFramesReason) {
  auto d = start("kill_after 10s;\n");
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = std::make_unique<HttpClient>(d->port());
  c->send("POST", "/v1/solve?solver=glpk", ::tether::test::transportationLp(150, 99), lpHeaders(id, true, {}));
  auto head = c->head(10s);
  ASSERT_TRUE(head);
  ASSERT_EQ(head->status, 200) << head->body;
  ASSERT_TRUE(waitFor([&] { return d->job(id).value("state", std::string()) == "running"; }, 10s));
  c->close();
  ASSERT_TRUE(d->process().waitForLine("job=" + id + " cancel interrupt \\(client_disconnect", 5s))
      << d->process().output();
  nlohmann::json frame = cancelFrame(id, "kill");
  frame["reason"] = "upstream_timeout";
  auto ack = controlRequest(d->controlPath(), frame);
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["state"], "running") << ack->dump();
  auto job = d->waitFinished(id, 10s);
  ASSERT_TRUE(job) << d->process().output();
  EXPECT_EQ((*job)["cancel"]["reason"], "upstream_timeout") << job->dump();
  EXPECT_EQ((*job)["cancel"]["action"], "kill") << job->dump();
}

TEST_F(SolverdTest, ThousandQueuedClientsLeavingAtOnceEmptyTheQueueWithoutSpawning) {
  rlimit rl{8192, 8192};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) GTEST_SKIP() << "cannot raise RLIMIT_NOFILE to 8192";
  auto d = start("workers 1;\nqueue_size 2000;\n");
  ASSERT_TRUE(d->started());
  std::string running = newId();
  auto first = startHardSolve(*d, running);
  std::string model = readFile(modelPath("knapsack.lp"));
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < 1000; ++i) {
    clients.push_back(std::make_unique<HttpClient>(d->port()));
    ASSERT_TRUE(clients.back()->connected()) << i;
    clients.back()->send("POST", "/v1/solve", model, lpHeaders());
  }
  ASSERT_TRUE(waitFor([&] { return d->metrics().find("solverd_jobs_queued 1000") != std::string::npos; }, 20s))
      << d->metrics();
  auto t0 = Clock::now();
  for (auto& c : clients) c->close();
  ASSERT_TRUE(waitFor([&] { return d->metrics().find("solverd_jobs_queued 0") != std::string::npos; }, 5s));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  std::cout << "[ measured ] 1000 queued clients gone -> queue empty in " << ms << " ms\n";
  // A bound on liveness that a loaded 2-core CI machine under ASan holds (it measured 420 ms to
  // 6.7 s there); the tight figure belongs to bench/load_10k.sh. What this test asserts is above:
  // the queue empties and nothing was spawned.
  EXPECT_LT(ms, 15000);
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  auto metrics = d->metrics();
  EXPECT_NE(
      metrics.find("solverd_cancels_total{action=\"interrupt\",reason=\"client_disconnect\",phase=\"queued\"} 1000"),
      std::string::npos)
      << metrics;
  first->close();
  EXPECT_TRUE(d->waitFinished(running, 10s));
}

TEST_F(SolverdTest, ThreeClientsWithOneKeyShareOneWorkerUntilTheLastLeaves) {
  auto d = start("coalesce share;\n");
  ASSERT_TRUE(d->started());
  std::string key = "k-" + newId();
  std::string a = newId(), b = newId(), c = newId();
  auto ca = startHardSolve(*d, a, key);
  ASSERT_TRUE(waitFor([&] { return workerPids(cgroup_root_).size() == 1; }, 5s));
  auto cb = startHardSolve(*d, b, key);
  auto cc = startHardSolve(*d, c, key);
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  EXPECT_EQ(d->job(b)["id"], a);
  EXPECT_EQ(d->job(c)["id"], a);
  ca->close();
  cb->close();
  ASSERT_TRUE(waitFor([&] {
    auto j = d->job(a);
    int live = 0;
    for (auto& r : j["requests"]) live += r["live"].get<bool>() ? 1 : 0;
    return live == 1;
  }, 5s));
  EXPECT_EQ(d->job(a)["state"], "running");
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  cc->close();
  auto job = d->waitFinished(a, 10s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["status"], "interrupted");
}

TEST_F(SolverdTest, SupersedeCancelsTheOlderRequestWhichGets409) {
  auto d = start("coalesce supersede;\n");
  ASSERT_TRUE(d->started());
  std::string key = "k-" + newId();
  std::string a = newId(), b = newId();
  auto ca = startHardSolve(*d, a, key);
  auto cb = startHardSolve(*d, b, key);
  auto err = ca->eventNamed("error", 5s);
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["status"], 409);
  EXPECT_EQ((*err)["error"], "superseded");
  auto ja = d->waitFinished(a, 10s);
  ASSERT_TRUE(ja);
  EXPECT_EQ((*ja)["cancel"]["reason"], "superseded");
  EXPECT_EQ(d->job(b)["state"], "running");
  cb->close();
  EXPECT_TRUE(d->waitFinished(b, 10s));
}

TEST_F(SolverdTest, WorkerKilledBySigsegvMidSolveGivesCrashedAndSolverdServesOn) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  ASSERT_TRUE(c->eventNamed("incumbent", 20s));
  int pid = d->job(id)["worker_pid"];
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGSEGV);
  auto result = c->eventNamed("result", 10s);
  ASSERT_TRUE(result);
  EXPECT_EQ((*result)["status"], "crashed") << result->dump();
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(d->metrics().find("solverd_worker_crashes_total 1"), std::string::npos);
}

// The grace that governs (DESIGN.md "The cancel ladder"): a worker that ignores its interrupt
// runs until the kill, so the kill's time shows whose grace held. solverd's own watch has 2s (a
// margin for a loaded machine to send the frame before the watch's kill); the frames below carry
// 4s, as a proxy location with kill_after 4s sends.
class GraceTest : public SolverdTest {
 protected:
  void SetUp() override {
    SolverdTest::SetUp();
    if (IsSkipped()) return;
    Solverd::Options o;
    o.extra_config = "kill_after 2s;\non_disconnect interrupt;\n";
    o.worker_path = worker_.path();
    d_ = std::make_unique<Solverd>(cgroup_root_, o);
    ASSERT_TRUE(d_->started()) << d_->process().output();
  }
  // Starts a request with its own id and waits for its worker.
  std::unique_ptr<HttpClient> startRequest(const std::string& id) {
    auto c = std::make_unique<HttpClient>(d_->port());
    c->send("POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders(id));
    EXPECT_TRUE(waitFor([&] { return workerPids(cgroup_root_).size() == 1; }, 5s)) << d_->process().output();
    return c;
  }
  bool workerGone() { return workerPids(cgroup_root_).empty(); }
  nlohmann::json frame(const std::string& id, const std::string& reason) {
    nlohmann::json f = cancelFrame(id, "interrupt", 4000);
    f["reason"] = reason;
    return f;
  }

  IgnoringWorkerScript worker_;
  std::unique_ptr<Solverd> d_;
};

TEST_F(GraceTest, FrameAfterTheWatchSetsTheKillAtTheFirstInterruptPlusTheFramesGrace) {
  const std::string id = newId();
  auto c = startRequest(id);
  c->close();
  // solverd's own watch cancels first (grace 2s) ...
  ASSERT_TRUE(waitFor([&] { return d_->job(id).contains("cancel"); }, 5s)) << d_->process().output();
  EXPECT_EQ(d_->job(id)["cancel"]["reason"], "client_disconnect");
  // ... then the proxy's frame arrives: its 4s governs, and its reason is the job's.
  auto ack = controlRequest(d_->controlPath(), frame(id, "upstream_timeout"));
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["state"], "running") << ack->dump();
  EXPECT_FALSE(waitFor([&] { return workerGone(); }, 2500ms)) << "killed at the watch's 2s";
  EXPECT_TRUE(waitFor([&] { return workerGone(); }, 4s)) << "the frame's 4s did not kill it";
  auto job = d_->waitFinished(id, 5s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["cancel"]["reason"], "upstream_timeout") << job->dump();
  const double ms = receivedToKilledMs(*job);
  std::cout << "[ measured ] watch 2s then frame 4s: cancel received -> killed " << ms << " ms\n";
  EXPECT_GE(ms, 3900) << job->dump();
  d_->expectNoErrorsLogged();
}

TEST_F(GraceTest, WatchAfterTheFrameChangesNothing) {
  const std::string id = newId();
  auto c = startRequest(id);
  auto ack = controlRequest(d_->controlPath(), frame(id, "client_disconnect"));
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["state"], "running") << ack->dump();
  ASSERT_TRUE(d_->job(id).contains("cancel"));
  c->close();  // solverd's own watch now sees the connection end: its 2s must not shorten the 4s
  ASSERT_TRUE(waitFor([&] { return d_->metrics().find("solverd_http_disconnects_total 1") != std::string::npos; }, 2s))
      << "the watch never saw the connection end, so it cannot have been tested";
  EXPECT_FALSE(waitFor([&] { return workerGone(); }, 2500ms)) << "the watch's 2s replaced the frame's 4s";
  EXPECT_TRUE(waitFor([&] { return workerGone(); }, 4s));
  auto job = d_->waitFinished(id, 5s);
  ASSERT_TRUE(job);
  EXPECT_GE(receivedToKilledMs(*job), 3900) << job->dump();
}

TEST_F(GraceTest, FrameWithAnUnknownFieldAndAnUnknownReasonIsActedOnAndTheReasonKept) {
  // A UUID id, as Envoy sends it: trusted (solverd's default) and kept.
  const std::string id = "f47ac10b-58cc-4372-a567-" + newId().substr(0, 12);
  auto c = startRequest(id);
  nlohmann::json f = cancelFrame(id, "kill", 0);
  f["reason"] = "quota_exceeded";                        // a newer peer's reason
  f["traceparent"] = {{"version", "00"}, {"flags", 1}};  // a newer peer's field
  auto ack = controlRequest(d_->controlPath(), f);
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["type"], "cancel_ack") << ack->dump();
  EXPECT_EQ((*ack)["state"], "running") << ack->dump();
  EXPECT_TRUE(waitFor([&] { return workerGone(); }, 2s));
  auto r = c->response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["x-request-id"], id);
  EXPECT_EQ(r->json()["status"], "interrupted") << r->body;
  auto job = d_->waitFinished(id, 5s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["cancel"]["reason"], "quota_exceeded") << job->dump();
  EXPECT_EQ((*job)["cancel"]["action"], "kill") << job->dump();
}

TEST_F(SolverdTest, WorkerPastItsTimeLimitPlusGraceIsKilled) {
  // A worker that ignores its time limit and every frame: a shell that sleeps.
  std::string script = "/tmp/sdt-stubborn-" + std::to_string(getpid()) + ".sh";
  std::ofstream(script) << "#!/bin/sh\nexec sleep 60\n";
  ::chmod(script.c_str(), 0755);
  Solverd::Options o;
  o.extra_config = "time_limit_grace 200ms;\n";
  o.worker_path = script;
  Solverd d(cgroup_root_, o);
  ASSERT_TRUE(d.started()) << d.process().output();
  auto t0 = Clock::now();
  auto r = httpRequest(d.port(), "POST", "/v1/solve?time_limit=1", readFile(modelPath("knapsack.lp")), lpHeaders(),
                       10s);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ::unlink(script.c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json()["status"], "time_limit") << r->body;
  std::cout << "[ measured ] time_limit 1s + grace 200ms: answered after " << ms << " ms\n";
  EXPECT_GE(ms, 1100);
  EXPECT_LT(ms, 5000);
}

TEST_F(SolverdTest, FiftyMegabyteModelIsSolved) {
  auto d = start();
  ASSERT_TRUE(d->started());
  // The knapsack with 50 MB of comment lines in front: the bytes cross HTTP, the solve frame
  // and the solver's reader.
  std::string model;
  std::string comment = "\\ " + std::string(1000, 'x') + "\n";
  while (model.size() < 50u << 20) model += comment;
  model += readFile(modelPath("knapsack.lp"));
  // 50 MB through a sanitized daemon and worker on a loaded CI machine: up to a minute or more.
  auto r = httpRequest(d->port(), "POST", "/v1/solve", model, lpHeaders(), 240s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body.substr(0, 500);
  EXPECT_EQ(r->json()["objective"], 309.0) << r->body.substr(0, 500);
}

TEST_F(SolverdTest, HealthMetricsAndJobsListAnswer) {
  auto d = start();
  ASSERT_TRUE(d->started());
  auto h = httpRequest(d->port(), "GET", "/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->json()["status"], "ok");
  auto id = newId();
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders(id));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["x-request-id"], id);
  auto jobs = httpRequest(d->port(), "GET", "/v1/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_EQ(jobs->json()["jobs"][0]["id"], id);
  auto m = d->metrics();
  for (std::string name : {"solverd_jobs_total", "solverd_jobs_running", "solverd_jobs_queued", "solverd_cancels_total",
                           "solverd_cancel_to_exit_seconds", "solverd_job_cpu_seconds_total",
                           "solverd_worker_crashes_total"}) {
    EXPECT_NE(m.find("# TYPE " + name), std::string::npos) << name;
  }
}

TEST_F(SolverdTest, SigtermRefusesNewJobsCancelsRunningOnesAfterShutdownTimeoutAndExitsZero) {
  auto d = start("shutdown_timeout 300ms;\n");
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  ASSERT_TRUE(waitFor([&] { return d->job(id).value("state", std::string{}) == "running"; }, 5s));
  d->process().signal(SIGTERM);
  ASSERT_TRUE(d->process().waitForLine("shutting down", 5s));
  auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders(), 2s);
  if (r) {
    EXPECT_EQ(r->status, 503);  // else the listener is closed already: refused, as it should be
  }
  auto result = c->eventNamed("result", 10s);
  ASSERT_TRUE(result);
  EXPECT_EQ((*result)["status"], "interrupted");
  c->close();
  auto status = d->process().wait(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << d->process().output();
  d->expectNoErrorsLogged();
}

TEST_F(SolverdTest, SighupReloadsTheConfiguration) {
  auto d = start("workers 1;\n");
  ASSERT_TRUE(d->started());
  std::string conf = readFile(d->configPath());
  conf.replace(conf.find("workers 1;"), 10, "workers 3;");
  std::ofstream(d->configPath()) << conf;
  d->process().signal(SIGHUP);
  EXPECT_TRUE(d->process().waitForLine("configuration reloaded: 3 workers", 5s)) << d->process().output();
  std::ofstream(d->configPath()) << conf << "bogus_directive 1;\n";
  d->process().signal(SIGHUP);
  EXPECT_TRUE(d->process().waitForLine("reload failed, keeping the running configuration", 5s));
  auto h = httpRequest(d->port(), "GET", "/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->json()["workers"], 3);
}

TEST_F(SolverdTest, SighupOpensNewListenersAndClosesDroppedOnesWhileASolveRuns) {
  auto d = start("", /*unix_api=*/true);
  ASSERT_TRUE(d->started());
  auto solve = startHardSolve(*d, newId(), {}, "?solver=cbc&time_limit=2");
  const std::string old_path = d->apiUnixPath();
  const std::string new_path = d->dir() + "/api2.sock";
  std::string conf = readFile(d->configPath());
  conf.replace(conf.find("listen unix:" + old_path + ";"), ("listen unix:" + old_path + ";").size(),
               "listen unix:" + new_path + ";");
  std::ofstream(d->configPath()) << conf;
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->process().waitForLine("listening on unix:" + new_path, 5s)) << d->process().output();
  ASSERT_TRUE(d->process().waitForLine("no longer listening on unix:" + old_path, 5s)) << d->process().output();

  HttpClient fresh(new_path);
  ASSERT_TRUE(fresh.connected());
  fresh.send("GET", "/health");
  auto health = fresh.response(5s);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_FALSE(HttpClient(old_path).connected()) << "the dropped address still accepts";

  // The solve that was running on the kept TCP listener is not disturbed.
  auto result = solve->eventNamed("result", 20s);
  ASSERT_TRUE(result) << d->process().output();
  EXPECT_NE((*result)["status"], "crashed");
  d->expectNoErrorsLogged();
}

TEST_F(SolverdTest, SighupWithAnAddressInUseKeepsTheRunningListeners) {
  auto d = start("", /*unix_api=*/true);
  ASSERT_TRUE(d->started());
  std::string conf = readFile(d->configPath());
  // Its own TCP port is taken (by itself): the new address cannot be opened, so nothing changes.
  conf += "listen 127.0.0.1:" + std::to_string(d->port()) + ";\n";
  conf.replace(conf.find("listen 127.0.0.1:0;"), std::string("listen 127.0.0.1:0;").size(), "");
  conf += "listen unix:" + d->dir() + "/never.sock;\n";
  std::ofstream(d->configPath()) << conf;
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->process().waitForLine("keeping the running configuration", 5s)) << d->process().output();
  EXPECT_FALSE(HttpClient(d->dir() + "/never.sock").connected());
  auto h = httpRequest(d->port(), "GET", "/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST_F(SolverdTest, JobLimitsApplyWhereDelegatedElseSolverdSaysSoAndSolvesUnlimited) {
  auto d = start("job_memory_max 1g;\njob_pids_max 64;\njob_cpu_max 1;\n");
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  ASSERT_TRUE(waitFor([&] { return !jobCgroups(cgroup_root_).empty(); }, 5s));
  std::string cg = jobCgroups(cgroup_root_).front();
  bool applied = readFile(cg + "/memory.max") == "1073741824\n";
  bool said = d->process().waitForLine("job limit not applied: memory.max", 100ms).has_value();
  EXPECT_TRUE(applied || said) << d->process().output();
  if (!applied) std::cout << "[ note ] memory controller not delegated here: limits logged as not applied\n";
  c->close();
  EXPECT_TRUE(d->waitFinished(id, 10s));
}

TEST_F(SolverdTest, RestartAfterSigkillRemovesTheJobCgroupsThePredecessorLeft) {
  auto d = start();
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto c = startHardSolve(*d, id);
  ASSERT_TRUE(waitFor([&] { return !workerPids(cgroup_root_).empty(); }, 5s));
  d->process().signal(SIGKILL);
  ASSERT_TRUE(d->process().wait(5s));
  // The worker sees EOF on its stdin and stops; the empty directory stays behind.
  ASSERT_TRUE(waitFor([&] { return workerPids(cgroup_root_).empty(); }, 5s));
  ASSERT_EQ(jobCgroups(cgroup_root_).size(), 1U);
  auto next = start();
  ASSERT_TRUE(next->started());
  EXPECT_TRUE(jobCgroups(cgroup_root_).empty());
  EXPECT_TRUE(next->process().waitForLine("removed 1 empty job cgroup", 1s));
}

TEST_F(SolverdTest, TellsSystemdReadyAfterListeningAndStoppingOnSigterm) {
  NotifySocket notify;
  ASSERT_TRUE(notify.bound());
  auto next = [&notify] { return notify.next(5s); };
  Solverd::Options o;
  o.env = {notify.env()};
  // With an admin listener too: both drains end at once when idle (regression: the shutdown
  // timer was armed after them and kept an idle daemon alive for the whole shutdown_timeout).
  o.extra_config = "admin { listen 127.0.0.1:0; }\nshutdown_timeout 5s;\n";
  Solverd d(cgroup_root_, o);
  ASSERT_TRUE(d.started());
  std::string ready = next();
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find("STATUS="), std::string::npos) << ready;
  auto sigterm_at = Clock::now();
  d.process().signal(SIGTERM);
  std::string msg;
  bool stopping = false;
  while (!(msg = next()).empty()) {
    if (msg.find("STOPPING=1") != std::string::npos) {
      stopping = true;
      break;
    }
  }
  EXPECT_TRUE(stopping);
  auto status = d.process().wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_LT(Clock::now() - sigterm_at, 2s) << "an idle solverd waited for its shutdown_timeout";
}

}  // namespace
}  // namespace tether::test
