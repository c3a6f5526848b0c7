// solverd's `Request-Timeout: SECONDS` (DESIGN.md "Deadlines"): the caller's remaining budget,
// sent by tether-proxy for a gRPC deadline or by a plain HTTP client itself, caps the job's time
// limit so that the solver stops and answers with its incumbent before the deadline instead of
// being killed at it. The real daemon, workers, cbc and cgroups.
#include "daemon_support.hpp"

namespace tether::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers lpHeaders(const std::string& id, const std::string& request_timeout) {
  return {{"Content-Type", "text/x-lp"}, {"X-Request-Id", id}, {"Request-Timeout", request_timeout}};
}

class RequestTimeoutTest : public DaemonTest {
 protected:
  std::unique_ptr<Solverd> start(const std::string& extra = {}) {
    auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{extra, false, {}, {}});
    EXPECT_TRUE(d->started()) << d->process().output();
    return d;
  }
};

// A tenth of a 2 s budget is below the least reserve, 1 s here (this build's sanitized worker
// takes 300 to 450 ms to exit after its result), which kill_after 2s allows: the solver gets 1 s,
// and 1 s to stop, exit and send its incumbent. A warm worker, as solverd's default has one.
TEST_F(RequestTimeoutTest, HardModelWithATwoSecondBudgetAnswersTimeLimitWithItsIncumbentWithinTheBudget) {
  auto d = start("spare_workers 1;\nkill_after 2s;\ndeadline_reserve 1s;\n");
  ASSERT_TRUE(d->started());
  const std::string id = newId();
  auto t0 = Clock::now();
  auto r = httpRequest(d->port(), "POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
                       lpHeaders(id, "2"), 10s);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_TRUE(r) << d->process().output();
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = r->json();
  EXPECT_EQ(j["status"], "time_limit") << r->body;
  EXPECT_TRUE(j["objective"].is_number()) << "no incumbent: " << r->body;
  std::cout << "[ measured ] Request-Timeout 2: answered after " << ms << " ms, objective " << j["objective"]
            << "\n";
  EXPECT_LT(ms, 2000) << "the answer came after the caller's deadline";
  auto job = d->job(id);
  EXPECT_DOUBLE_EQ(job["time_limit"].get<double>(), 1) << job.dump();
  d->expectNoErrorsLogged();
}

// The reserve is a tenth of the budget, at least deadline_reserve (500ms), at most kill_after; a
// query time_limit below the cap stays; a budget below the floor gives the floor.
TEST_F(RequestTimeoutTest, CapIsTheBudgetLessATenthBetweenDeadlineReserveAndKillAfterNeverBelowTheFloor) {
  auto d = start("kill_after 2s;\n");
  ASSERT_TRUE(d->started());
  auto limitOf = [&](const std::string& query, const std::string& budget) {
    const std::string id = newId();
    auto r = httpRequest(d->port(), "POST", "/v1/solve?solver=cbc" + query, readFile(modelPath("knapsack.lp")),
                         lpHeaders(id, budget), 10s);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    return d->job(id)["time_limit"].get<double>();
  };
  EXPECT_DOUBLE_EQ(limitOf("", "10"), 9);      // a tenth
  EXPECT_DOUBLE_EQ(limitOf("", "30"), 28);     // kill_after
  EXPECT_DOUBLE_EQ(limitOf("", "2.000"), 1.5); // deadline_reserve
  EXPECT_DOUBLE_EQ(limitOf("", "0.550"), 0.1); // the floor
  EXPECT_DOUBLE_EQ(limitOf("&time_limit=3", "10"), 3);
  EXPECT_DOUBLE_EQ(limitOf("", "0.05"), 0.1);
  // A detached job (POST /v1/jobs) reads the same header.
  const std::string id = newId();
  auto r = httpRequest(d->port(), "POST", "/v1/jobs", readFile(modelPath("knapsack.lp")), lpHeaders(id, "10"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
  EXPECT_DOUBLE_EQ(d->job(id)["time_limit"].get<double>(), 9) << d->job(id).dump();
  ASSERT_TRUE(d->waitFinished(id, 10s));
  d->expectNoErrorsLogged();
}

TEST_F(RequestTimeoutTest, MalformedValueGets400NamingTheHeaderWithoutAWorker) {
  auto d = start();
  ASSERT_TRUE(d->started());
  for (const char* bad : {"soon", "-1", "1e3", "2s", ".5", "1.", "1.2.3", ""}) {
    auto r = httpRequest(d->port(), "POST", "/v1/solve", readFile(modelPath("knapsack.lp")), lpHeaders(newId(), bad));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << "Request-Timeout: " << bad << " -> " << r->body;
    EXPECT_EQ(r->json()["error"], "bad_request_timeout") << r->body;
    EXPECT_NE(r->json().value("message", std::string{}).find("Request-Timeout"), std::string::npos) << r->body;
  }
  auto jobs = httpRequest(d->port(), "GET", "/v1/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_TRUE(jobs->json()["jobs"].empty()) << jobs->body;
}

}  // namespace
}  // namespace tether::test
