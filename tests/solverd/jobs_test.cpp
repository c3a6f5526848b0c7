// Jobs that outlive a connection, on the real daemon: detached jobs (POST /v1/jobs) and their
// leases, watchers (GET /v1/jobs/ID/events), holders shared with waiting requests, result_ttl,
// bad input and SIGTERM. Real workers, solvers and cgroups; no worker or job cgroup outlives a
// test (DaemonTest::TearDown).
#include "daemon_support.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

namespace tether::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers lpHeaders(const std::string& key = {}) {
  Headers h{{"Content-Type", "text/x-lp"}};
  if (!key.empty()) h.emplace_back("X-Solve-Key", key);
  return h;
}

class JobsTest : public DaemonTest {
 protected:
  std::unique_ptr<Solverd> start(const std::string& extra = {}) {
    auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{extra, false, {}, {}});
    EXPECT_TRUE(d->started()) << d->process().output();
    return d;
  }

  // POST /v1/jobs of the hard market-split instance (CBC runs it for minutes).
  static std::optional<HttpResponse> submitHard(Solverd& d, const std::string& query = "?solver=cbc",
                                                const std::string& key = {}) {
    return httpRequest(d.port(), "POST", "/v1/jobs" + query, readFile(modelPath("market_split_hard.lp")),
                       lpHeaders(key));
  }

  // The job as GET /v1/jobs lists it: unlike GET /v1/jobs/ID, the list renews no lease.
  static nlohmann::json listed(Solverd& d, const std::string& id) {
    auto r = httpRequest(d.port(), "GET", "/v1/jobs");
    if (!r || r->status != 200) return nullptr;
    nlohmann::json body = r->json();
    for (auto& j : body["jobs"]) {
      if (j["id"] == id) return j;
      for (auto& req : j["requests"]) {
        if (req["id"] == id) return j;
      }
    }
    return nullptr;
  }

  static std::optional<nlohmann::json> waitListedFinished(Solverd& d, const std::string& id,
                                                          std::chrono::milliseconds timeout) {
    nlohmann::json last;
    if (!waitFor(
            [&] {
              last = listed(d, id);
              return last.is_object() && last["state"] == "finished";
            },
            timeout)) {
      return std::nullopt;
    }
    return last;
  }
};

TEST_F(JobsTest, DetachedJobIsPolledToItsResult) {
  auto d = start();
  ASSERT_TRUE(d->started());
  auto r = httpRequest(d->port(), "POST", "/v1/jobs?solver=glpk", readFile(modelPath("knapsack.lp")), lpHeaders());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  auto body = r->json();
  std::string id = body["id"];
  EXPECT_EQ(r->headers["location"], "/v1/jobs/" + id);
  EXPECT_EQ(body["lease_ms"], 30000);
  EXPECT_TRUE(body["lease_expires_at"].is_string()) << r->body;
  // The client has gone (its connection is closed): the lease alone holds the job.
  auto job = d->waitFinished(id, 20s);
  ASSERT_TRUE(job) << d->process().output();
  EXPECT_EQ((*job)["status"], "optimal") << job->dump();
  EXPECT_EQ((*job)["result"]["objective"], 309.0) << job->dump();
  EXPECT_FALSE(job->contains("cancel")) << job->dump();
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, LeaseRunningOutWithNoWatcherInterruptsTheJobWhichKeepsItsIncumbent) {
  auto d = start();
  ASSERT_TRUE(d->started());
  auto r = submitHard(*d, "?solver=cbc&lease=1s");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  EXPECT_EQ(r->json()["lease_ms"], 1000);
  // Polling renews the lease: the job lives while we ask, until it has an incumbent.
  ASSERT_TRUE(waitFor([&] { return d->job(id).value("incumbents", 0) > 0; }, 20s)) << d->job(id).dump();
  ASSERT_EQ(workerPids(cgroup_root_).size(), 1U);
  // Then nobody asks: the lease runs out and the job is interrupted.
  auto job = waitListedFinished(*d, id, 10s);
  ASSERT_TRUE(job) << listed(*d, id).dump();
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  EXPECT_EQ((*job)["cancel"]["reason"], "lease_expired") << job->dump();
  EXPECT_EQ((*job)["cancel"]["action"], "interrupt") << job->dump();
  EXPECT_TRUE((*job)["result"]["objective"].is_number()) << job->dump();
  EXPECT_TRUE(workerPids(cgroup_root_).empty());
  EXPECT_TRUE(waitFor([&] { return jobCgroups(cgroup_root_).empty(); }, 2s));
  EXPECT_TRUE(d->process().waitForLine("job=" + id + ".*status=interrupted.*reason=lease_expired", 2s));
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, WatcherHoldsAJobPastItsLeaseAndItsLeavingStopsIt) {
  auto d = start();
  ASSERT_TRUE(d->started());
  auto r = submitHard(*d, "?solver=cbc&lease=200ms");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  HttpClient watcher(d->port());
  watcher.send("GET", "/v1/jobs/" + id + "/events");
  auto head = watcher.head(5s);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-type"], "application/x-ndjson");
  auto accepted = watcher.eventNamed("accepted", 5s);
  ASSERT_TRUE(accepted);
  EXPECT_EQ((*accepted)["job"], id);
  // The lease runs out while the watcher is there: the job runs on, held by the watcher alone.
  ASSERT_TRUE(waitFor(
      [&] {
        auto j = listed(*d, id);
        return j.value("lease_expires_in_ms", 1.0) == 0.0 && j["state"] == "running";
      },
      5s))
      << listed(*d, id).dump();
  EXPECT_EQ(listed(*d, id)["holders"], 1);
  EXPECT_EQ(listed(*d, id)["watchers"], 1);
  EXPECT_TRUE(watcher.eventNamed("incumbent", 20s));
  EXPECT_EQ(listed(*d, id)["state"], "running");
  watcher.close();
  auto job = waitListedFinished(*d, id, 10s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  EXPECT_EQ((*job)["cancel"]["reason"], "lease_expired") << job->dump();
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, KeyedJobSharedByAWaitingRequestAndADetachedHolderOutlivesTheRequest) {
  auto d = start("coalesce share;\n");
  ASSERT_TRUE(d->started());
  std::string key = "k-" + newId();
  std::string waiting = newId();
  HttpClient c(d->port());
  Headers h = lpHeaders(key);
  h.emplace_back("X-Request-Id", waiting);
  h.emplace_back("Accept", "application/x-ndjson");
  c.send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")), h);
  ASSERT_TRUE(c.head(5s));
  ASSERT_TRUE(c.eventNamed("accepted", 5s));
  auto r = submitHard(*d, "?solver=cbc&lease=1500ms", key);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  EXPECT_EQ(r->json()["shared"], true) << r->body;
  EXPECT_EQ(r->json()["job"], waiting) << r->body;
  EXPECT_EQ(listed(*d, waiting)["holders"], 2) << listed(*d, waiting).dump();
  // The waiting request leaves: the lease still holds the one job.
  c.close();
  ASSERT_TRUE(d->process().waitForLine("job=" + waiting + " one request cancelled .*1 holder\\(s\\) keep it going", 5s))
      << d->process().output();
  auto j = listed(*d, waiting);
  EXPECT_EQ(j["state"], "running") << j.dump();
  EXPECT_EQ(workerPids(cgroup_root_).size(), 1U);
  // Then the last holder, the lease, goes.
  auto job = waitListedFinished(*d, waiting, 10s);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["status"], "interrupted") << job->dump();
  EXPECT_EQ((*job)["cancel"]["reason"], "lease_expired") << job->dump();
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, ResultTtlGivesGoneThenGoneTtlGivesNotFoundAndAnUnknownIdIsNotFound) {
  // result_ttl, then the 410 window (gone_ttl, an hour by default), then 404.
  auto d = start("result_ttl 300ms;\ngone_ttl 600ms;\n");
  ASSERT_TRUE(d->started());
  auto r = httpRequest(d->port(), "POST", "/v1/jobs?solver=glpk", readFile(modelPath("knapsack.lp")), lpHeaders());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  ASSERT_TRUE(d->waitFinished(id, 20s));
  int status = 0;
  ASSERT_TRUE(waitFor(
      [&] {
        auto g = httpRequest(d->port(), "GET", "/v1/jobs/" + id);
        status = g ? g->status : 0;
        return status != 200;
      },
      5s));
  EXPECT_EQ(status, 410);
  auto events = httpRequest(d->port(), "GET", "/v1/jobs/" + id + "/events");
  ASSERT_TRUE(events);
  EXPECT_EQ(events->status, 410);
  // The 410 window closes: the id is unknown from now on, for the job and its events alike.
  ASSERT_TRUE(waitFor(
      [&] {
        auto g = httpRequest(d->port(), "GET", "/v1/jobs/" + id);
        status = g ? g->status : 0;
        return status != 410;
      },
      5s));
  EXPECT_EQ(status, 404);
  events = httpRequest(d->port(), "GET", "/v1/jobs/" + id + "/events");
  ASSERT_TRUE(events);
  EXPECT_EQ(events->status, 404);
  for (const std::string method : {"GET", "DELETE"}) {
    auto u = httpRequest(d->port(), method, "/v1/jobs/" + newId());
    ASSERT_TRUE(u);
    EXPECT_EQ(u->status, 404) << method;
  }
  auto u = httpRequest(d->port(), "GET", "/v1/jobs/" + newId() + "/events");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->status, 404);
}

TEST_F(JobsTest, LeaseOutOfRangeGets422AndAFullQueueGets503) {
  auto d = start("workers 1;\nqueue_size 1;\nmax_lease 1m;\n");
  ASSERT_TRUE(d->started());
  for (std::string lease : {"2m", "0s", "soon", ""}) {
    auto r = httpRequest(d->port(), "POST", "/v1/jobs?lease=" + lease, readFile(modelPath("knapsack.lp")),
                         lpHeaders());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << lease << ": " << r->body;
    EXPECT_EQ(r->json()["error"], "invalid_lease") << r->body;
  }
  auto jobs = httpRequest(d->port(), "GET", "/v1/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_TRUE(jobs->json()["jobs"].empty()) << jobs->body;

  std::vector<std::string> admitted;
  int full = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = submitHard(*d);
    ASSERT_TRUE(r);
    if (r->status == 202) {
      admitted.push_back(r->json()["id"]);
    } else {
      EXPECT_EQ(r->status, 503) << r->body;
      EXPECT_EQ(r->json()["error"], "queue_full") << r->body;
      EXPECT_EQ(r->headers["retry-after"], "1");
      ++full;
    }
  }
  EXPECT_EQ(admitted.size(), 2U);  // one running, one queued
  EXPECT_EQ(full, 2);
  for (const auto& id : admitted) {
    auto del = httpRequest(d->port(), "DELETE", "/v1/jobs/" + id + "?action=kill");
    ASSERT_TRUE(del);
    EXPECT_EQ(del->status, 202) << del->body;
  }
  for (const auto& id : admitted) EXPECT_TRUE(waitListedFinished(*d, id, 5s));
}

TEST_F(JobsTest, SigtermCancelsARunningDetachedJobWithReasonShutdown) {
  auto d = start("shutdown_timeout 300ms;\n");
  ASSERT_TRUE(d->started());
  auto r = submitHard(*d, "?solver=cbc&lease=1h");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  ASSERT_TRUE(waitFor([&] { return listed(*d, id)["state"] == "running"; }, 5s));
  auto status = d->stop(20s);
  ASSERT_TRUE(status) << d->process().output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << d->process().output();
  EXPECT_TRUE(d->process().waitForLine("job=" + id + ".*status=interrupted.*reason=shutdown", 1s))
      << d->process().output();
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, SseWatcherGetsNumberedEventsAndHeartbeatsAndResumesAfterLastEventId) {
  auto d = start("heartbeat_interval 200ms;\n");
  ASSERT_TRUE(d->started());
  auto r = submitHard(*d, "?solver=cbc&lease=1h");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  HttpClient w(d->port());
  auto accepted = w.watchSseAccepted(id);
  ASSERT_TRUE(accepted);
  EXPECT_TRUE(accepted->id.empty());
  EXPECT_EQ(accepted->json()["job"], id);
  auto inc = w.sseNamed("incumbent", 20s);
  ASSERT_TRUE(inc);
  ASSERT_FALSE(inc->id.empty());
  const uint64_t seq = std::stoull(inc->id);
  EXPECT_TRUE(inc->json()["objective"].is_number()) << inc->data;
  // Heartbeats: an SSE comment every heartbeat_interval.
  EXPECT_TRUE(w.sseHeartbeat(3s));
  w.close();

  // A reconnecting EventSource sends the last id it saw: the events after it come again.
  HttpClient again(d->port());
  again.watchSse(id, seq - 1);
  ASSERT_TRUE(again.head(5s));
  ASSERT_TRUE(again.sseNamed("accepted", 5s));
  auto replayed = again.nextSse(5s);
  ASSERT_TRUE(replayed);
  EXPECT_EQ(replayed->id, inc->id);
  EXPECT_EQ(replayed->data, inc->data);
  again.close();
  HttpClient after(d->port());
  after.watchSse(id, seq);
  ASSERT_TRUE(after.head(5s));
  ASSERT_TRUE(after.sseNamed("accepted", 5s));
  auto del = httpRequest(d->port(), "DELETE", "/v1/jobs/" + id + "?action=interrupt");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 202);
  std::vector<uint64_t> ids;
  std::optional<HttpClient::SseEvent> result;
  while (auto e = after.nextSse(10s)) {
    if (!e->id.empty()) ids.push_back(std::stoull(e->id));
    if (e->event == "result") {
      result = e;
      break;
    }
  }
  ASSERT_TRUE(result);
  EXPECT_EQ(result->json()["status"], "interrupted") << result->data;
  ASSERT_FALSE(ids.empty());
  EXPECT_GT(ids.front(), seq);  // nothing at or before Last-Event-ID
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_TRUE(d->waitFinished(id, 10s));
  d->expectNoErrorsLogged();
}

TEST_F(JobsTest, ReaderThatStopsReadingIsFoundByTheHeartbeatAndLetsGoOfItsJob) {
  // A worker that logs 16 KiB a millisecond (tests/hostile/bad_worker.cpp): the stream fills the
  // socket buffers of a client that does not read (the kernel takes a few MB first: seconds).
  const std::string bad_worker = binPath("hostile_bad_worker");
  if (::access(bad_worker.c_str(), X_OK) != 0) GTEST_SKIP() << "hostile_bad_worker not built";
  char tmpl[] = "/tmp/sdc-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string script = dir + "/chatty.sh";
  std::ofstream(script) << "#!/bin/sh\nexec " << bad_worker << " chatty\n";
  ::chmod(script.c_str(), 0755);
  {
    Solverd d(cgroup_root_, Solverd::Options{"heartbeat_interval 100ms;\n", false, script, {}});
    ASSERT_TRUE(d.started()) << d.process().output();
    std::string id = newId();
    HttpClient c(d.port());
    int small = 4096;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    c.send("POST", "/v1/solve", readFile(modelPath("knapsack.lp")),
           {{"Content-Type", "text/x-lp"}, {"X-Request-Id", id}, {"Accept", "text/event-stream"}});
    auto head = c.head(5s);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    // From here on the client reads nothing, but stays connected.
    EXPECT_TRUE(d.process().waitForLine("rid=" + id + " reader stalled", 10s)) << d.process().output();
    auto job = d.waitFinished(id, 10s);
    ASSERT_TRUE(job) << d.process().output();
    EXPECT_EQ((*job)["cancel"]["reason"], "client_disconnect") << job->dump();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tether::test
