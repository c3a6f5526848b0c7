// solverd's warm workers (`spare_workers`, DESIGN.md "Warm workers") as a process: a spare waits
// in its own fresh cgroup before it gets a job, a job's cgroup (cancelled, killed or not) is never
// given to another, spares are replaced after jobs, crashes and kills, reload and drain retire
// them, a failing worker binary backs off, `spare_workers 0` starts every worker with its job, and
// nothing is left once solverd stops. The fork server (`spare_start fork`, the default): forked
// spares are solverd's children in their own cgroups and solve with every backend, a killed fork
// server is restarted while spares are exec'd, SIGHUP restarts it, and the drain leaves nothing.
// Real workers, real cgroups.
#include "daemon_support.hpp"
#include "tether/agent/supervise/cgroup.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace tether::test {
namespace {

namespace fs = std::filesystem;
using Headers = std::vector<std::pair<std::string, std::string>>;

struct SpareSeen {
  std::string cgroup;
  pid_t pid = 0;
};

// The cgroups made for spares (job-spare-N) under `root`, but for those in `not_in` (the ones of
// running jobs that took a spare, or seen before), with the one process in each once it is there.
std::vector<SpareSeen> spares(const std::string& root, const std::set<std::string>& not_in = {}) {
  std::vector<SpareSeen> out;
  for (const auto& cg : jobCgroups(root)) {
    if (!fs::path(cg).filename().string().starts_with("job-spare-") || not_in.contains(cg)) continue;
    std::istringstream in(readFile(cg + "/cgroup.procs"));
    pid_t pid = 0;
    if (in >> pid) out.push_back({cg, pid});
  }
  return out;
}

// Waits for exactly `n` spares outside `not_in`, each running the worker binary (a spare is in
// its cgroup from clone3 on, before its exec), and returns them.
std::vector<SpareSeen> waitForSpares(const std::string& root, size_t n, const std::set<std::string>& not_in = {}) {
  std::vector<SpareSeen> found;
  waitFor([&] {
    found = spares(root, not_in);
    return found.size() == n && std::all_of(found.begin(), found.end(), [](const SpareSeen& s) {
             std::error_code ec;
             return fs::read_symlink("/proc/" + std::to_string(s.pid) + "/exe", ec).filename() == "solverd-worker";
           });
  }, 10s);
  return found;
}

// The value of an unlabelled series in a /metrics text, or -1.
double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// The v2 cgroup of a process, as a path under the cgroup2 mount ("0::/a/b" -> "/a/b").
std::string cgroupOf(pid_t pid) {
  std::string text = readFile("/proc/" + std::to_string(pid) + "/cgroup");
  auto at = text.find("0::");
  if (at == std::string::npos) return {};
  auto end = text.find('\n', at);
  return text.substr(at + 3, end == std::string::npos ? std::string::npos : end - at - 3);
}

// A process's command line, its arguments joined by spaces ("" once it is gone).
std::string cmdline(pid_t pid) {
  std::string text = readFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(text.begin(), text.end(), '\0', ' ');
  return text;
}

// A spare forked by the fork server runs on from `solverd-worker --fork-server` without an exec;
// an exec'd one has the plain command line.
bool forked(pid_t pid) { return cmdline(pid).find("--fork-server") != std::string::npos; }

pid_t parentOf(pid_t pid) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("PPid:")) return static_cast<pid_t>(std::stol(line.substr(5)));
  }
  return 0;
}

// The fork servers' processes: those in a job-fork-server* cgroup under `root`.
std::vector<SpareSeen> forkServers(const std::string& root) {
  std::vector<SpareSeen> out;
  for (const auto& cg : jobCgroups(root)) {
    if (!fs::path(cg).filename().string().starts_with("job-fork-server")) continue;
    std::istringstream in(readFile(cg + "/cgroup.procs"));
    pid_t pid = 0;
    while (in >> pid) out.push_back({cg, pid});
  }
  return out;
}

// Waits until exactly one fork server runs, other than `not_pid`, and it is ready; returns it.
SpareSeen waitForForkServer(Solverd& d, const std::string& root, pid_t not_pid = 0) {
  SpareSeen found;
  waitFor([&] {
    auto servers = forkServers(root);
    if (servers.size() != 1 || servers[0].pid == not_pid) return false;
    found = servers[0];
    return metric(d.metrics(), "solverd_fork_server_up") == 1;
  }, 10s);
  return found;
}

Headers lpHeaders(const std::string& id) { return {{"Content-Type", "text/x-lp"}, {"X-Request-Id", id}}; }

class SpareWorkerTest : public DaemonTest {
 protected:
  std::unique_ptr<Solverd> start(const std::string& extra) {
    auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{extra, false, {}, {}});
    EXPECT_TRUE(d->started()) << d->process().output();
    return d;
  }

  // One knapsack solve, answered 200 with a result.
  nlohmann::json solveKnapsack(Solverd& d, const std::string& id) {
    auto r = httpRequest(d.port(), "POST", "/v1/solve?solver=cbc", readFile(modelPath("knapsack.lp")), lpHeaders(id));
    EXPECT_TRUE(r.has_value());
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    auto job = d.waitFinished(id, 10s);
    EXPECT_TRUE(job.has_value());
    return job ? *job : nlohmann::json{};
  }
};

TEST_F(SpareWorkerTest, ASpareWaitsInItsOwnCgroupAndItsJobKeepsItWhileAReplacementStarts) {
  auto d = start("spare_workers 1;\n");
  ASSERT_TRUE(d->started());
  auto before = waitForSpares(cgroup_root_, 1);
  ASSERT_EQ(before.size(), 1U);
  const SpareSeen spare = before[0];
  // Alone in a cgroup of its own, the worker binary, before any job exists.
  EXPECT_TRUE(spare.cgroup.ends_with(cgroupOf(spare.pid))) << spare.cgroup << " vs " << cgroupOf(spare.pid);
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(spare.pid) + "/exe").filename(), "solverd-worker");
  EXPECT_EQ(metric(d->metrics(), "solverd_spare_workers"), 1);

  std::string id = newId();
  auto job = solveKnapsack(*d, id);
  EXPECT_EQ(job["worker_start"], "spare") << job.dump();
  EXPECT_EQ(job["worker_pid"], spare.pid);
  EXPECT_EQ(job["cgroup"], spare.cgroup);
  EXPECT_EQ(job["result"]["status"], "optimal") << job.dump();
  EXPECT_FALSE(fs::exists(spare.cgroup)) << "the job's cgroup outlived its job";

  // The replacement: a new process in a new cgroup.
  auto after = waitForSpares(cgroup_root_, 1, {spare.cgroup});
  ASSERT_EQ(after.size(), 1U);
  EXPECT_NE(after[0].pid, spare.pid);
  auto metrics = d->metrics();
  EXPECT_EQ(metric(metrics, "solverd_spare_workers_taken_total"), 1) << metrics;
  EXPECT_EQ(metric(metrics, "solverd_spare_workers_started_total"), 2) << metrics;
  EXPECT_EQ(metric(metrics, "solverd_spare_workers_died_total"), 0) << metrics;
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, CancelledAndKilledJobsCgroupsAreNeverGivenToAnotherJob) {
  auto d = start("workers 1;\nspare_workers 2;\non_disconnect none;\n");
  ASSERT_TRUE(d->started());
  ASSERT_EQ(waitForSpares(cgroup_root_, 2).size(), 2U);
  std::set<std::string> used;
  for (const std::string action : {"kill", "interrupt"}) {
    std::string id = newId();
    HttpClient c(d->port());
    c.send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
           {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}, {"X-Request-Id", id}});
    ASSERT_TRUE(c.head(10s));
    ASSERT_TRUE(c.eventNamed("incumbent", 20s));
    ASSERT_TRUE(controlRequest(d->controlPath(), cancelFrame(id, action, 5000)));
    auto job = d->waitFinished(id, 10s);
    ASSERT_TRUE(job);
    EXPECT_EQ((*job)["worker_start"], "spare") << job->dump();
    std::string cg = (*job)["cgroup"];
    EXPECT_FALSE(fs::exists(cg)) << action << ": " << cg;
    EXPECT_TRUE(used.insert(cg).second) << cg << " served two jobs";
  }
  // Later jobs and spares never get one of those cgroups back.
  auto job = solveKnapsack(*d, newId());
  EXPECT_FALSE(used.contains(job["cgroup"].get<std::string>())) << job.dump();
  used.insert(job["cgroup"].get<std::string>());
  for (const auto& s : waitForSpares(cgroup_root_, 2, used)) EXPECT_FALSE(used.contains(s.cgroup));
  // The spares here were forked (spare_start fork, the default): a fork server's children get
  // fresh cgroups as exec'd ones do.
  EXPECT_GE(metric(d->metrics(), "solverd_spare_workers_forked_total"), 4);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, ASpareThatCrashesOrIsKilledIsCountedAndReplaced) {
  auto d = start("spare_workers 1;\n");
  ASSERT_TRUE(d->started());
  auto first = waitForSpares(cgroup_root_, 1);
  ASSERT_EQ(first.size(), 1U);
  // A crash: the process dies of a signal (SIGUSR1: no core file, and no sanitizer report that
  // would turn a SIGSEGV into an exit 1 in the sanitized build).
  ASSERT_EQ(::kill(first[0].pid, SIGUSR1), 0);
  auto second = waitForSpares(cgroup_root_, 1, {first[0].cgroup});
  ASSERT_EQ(second.size(), 1U);
  EXPECT_TRUE(d->process().waitForLine("spare-1 pid=\\d+ exited before it was given a job \\(signal SIGUSR1", 5s))
      << d->process().output();
  // A kill of the whole cgroup, as the OOM killer or an operator would.
  std::ofstream(second[0].cgroup + "/cgroup.kill") << "1";
  auto third = waitForSpares(cgroup_root_, 1, {first[0].cgroup, second[0].cgroup});
  ASSERT_EQ(third.size(), 1U);
  ASSERT_TRUE(waitFor([&] { return metric(d->metrics(), "solverd_spare_workers_died_total") == 2; }, 5s))
      << d->metrics();
  // Still serving, on the replacement.
  auto job = solveKnapsack(*d, newId());
  EXPECT_EQ(job["worker_pid"], third[0].pid);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, ReloadRetiresTheSparesAndStartsNewOnes) {
  auto d = start("spare_workers 2;\n");
  ASSERT_TRUE(d->started());
  auto old = waitForSpares(cgroup_root_, 2);
  ASSERT_EQ(old.size(), 2U);
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->process().waitForLine("configuration reloaded", 5s)) << d->process().output();
  auto fresh = waitForSpares(cgroup_root_, 2, {old[0].cgroup, old[1].cgroup});
  ASSERT_EQ(fresh.size(), 2U);
  for (const auto& s : old) {
    EXPECT_TRUE(waitFor([&] { return !fs::exists(s.cgroup); }, 5s)) << s.cgroup;
    EXPECT_TRUE(waitFor([&] { return ::kill(s.pid, 0) != 0; }, 5s)) << "retired spare " << s.pid << " still runs";
  }
  EXPECT_EQ(metric(d->metrics(), "solverd_spare_workers_retired_total"), 2);
  EXPECT_EQ(metric(d->metrics(), "solverd_spare_workers_died_total"), 0);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, DrainRetiresTheSparesAndAQueuedJobStartsColdThenNothingIsLeft) {
  auto d = start("workers 1;\nspare_workers 1;\nshutdown_timeout 20s;\non_disconnect none;\n");
  ASSERT_TRUE(d->started());
  ASSERT_EQ(waitForSpares(cgroup_root_, 1).size(), 1U);
  // A runs on the spare until we kill it; B (one second) waits in the queue behind it.
  std::string a = newId(), b = newId();
  std::string model = readFile(modelPath("market_split_hard.lp"));
  HttpClient ca(d->port()), cb(d->port());
  ca.send("POST", "/v1/solve?solver=cbc", model, lpHeaders(a));
  ASSERT_TRUE(waitFor([&] { return d->job(a)["state"] == "running"; }, 5s));
  EXPECT_EQ(d->job(a)["worker_start"], "spare");
  cb.send("POST", "/v1/solve?solver=cbc&time_limit=1", model, lpHeaders(b));
  ASSERT_TRUE(waitFor([&] { return d->job(b)["state"] == "queued"; }, 5s));
  const std::string a_cgroup = d->job(a)["cgroup"];
  auto replacement = waitForSpares(cgroup_root_, 1, {a_cgroup});
  ASSERT_EQ(replacement.size(), 1U);

  d->process().signal(SIGTERM);
  // The spare goes at once, while A still runs.
  ASSERT_TRUE(waitFor([&] { return !fs::exists(replacement[0].cgroup); }, 5s));
  EXPECT_TRUE(fs::exists(a_cgroup));  // the API is closed for new connections now
  ASSERT_TRUE(d->process().waitForLine("shutting down", 5s));
  ASSERT_TRUE(controlRequest(d->controlPath(), cancelFrame(a, "kill")));
  // B starts on a worker of its own (job-<hash of its id>), not on a spare.
  EXPECT_TRUE(waitFor([&] { return fs::exists(fs::path(cgroup_root_) / ::tether::agent::supervise::jobCgroupName(b)); }, 10s))
      << d->process().output();
  auto ra = ca.response(10s);
  auto rb = cb.response(10s);
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(ra->status, 200);
  EXPECT_EQ(rb->status, 200);
  auto status = d->process().wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  // Nothing outlives solverd: no spare process, no cgroup (checked at once, no waiting).
  EXPECT_TRUE(jobCgroups(cgroup_root_).empty());
  EXPECT_NE(::kill(replacement[0].pid, 0), 0);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, SystemdStatusCountsTheSparesReady) {
  NotifySocket notify;
  ASSERT_TRUE(notify.bound());
  Solverd::Options o;
  o.env = {notify.env()};
  o.extra_config = "spare_workers 2;\n";
  Solverd d(cgroup_root_, o);
  ASSERT_TRUE(d.started()) << d.process().output();
  std::vector<std::string> seen;
  bool two_ready = false;
  for (auto deadline = Clock::now() + 10s; !two_ready && Clock::now() < deadline;) {
    std::string message = notify.next(1s);
    if (message.empty()) continue;
    seen.push_back(message);
    two_ready = message.find("STATUS=0 running, 0 queued, 2 spare") != std::string::npos;
  }
  EXPECT_TRUE(two_ready) << ::testing::PrintToString(seen);
}

TEST_F(SpareWorkerTest, AForkedSpareWaitsInItsOwnCgroupAsSolverdsChildBeforeItGetsAJob) {
  auto d = start("spare_workers 2;\n");
  ASSERT_TRUE(d->started());
  const pid_t solverd = d->process().pid();
  auto server = waitForForkServer(*d, cgroup_root_);
  ASSERT_NE(server.pid, 0) << d->process().output();
  EXPECT_EQ(parentOf(server.pid), solverd);
  auto ready = waitForSpares(cgroup_root_, 2);
  ASSERT_EQ(ready.size(), 2U);
  for (const auto& spare : ready) {
    // Forked (no exec), alone in its own cgroup, and solverd's child, not the fork server's.
    EXPECT_TRUE(forked(spare.pid)) << cmdline(spare.pid);
    EXPECT_TRUE(spare.cgroup.ends_with(cgroupOf(spare.pid))) << spare.cgroup << " vs " << cgroupOf(spare.pid);
    EXPECT_EQ(readFile(spare.cgroup + "/cgroup.procs"), std::to_string(spare.pid) + "\n");
    EXPECT_EQ(parentOf(spare.pid), solverd);
    EXPECT_NE(spare.pid, server.pid);
  }
  auto metrics = d->metrics();
  EXPECT_EQ(metric(metrics, "solverd_spare_workers_forked_total"), 2) << metrics;
  EXPECT_EQ(metric(metrics, "solverd_fork_server_died_total"), 0) << metrics;
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, JobsSolveOnForkedSparesWithEveryBackend) {
  auto d = start("workers 1;\nspare_workers 1;\n");
  ASSERT_TRUE(d->started());
  std::set<std::string> used;
  for (const std::string solver : {"cbc", "clp", "glpk"}) {
    auto ready = waitForSpares(cgroup_root_, 1, used);
    ASSERT_EQ(ready.size(), 1U) << solver;
    ASSERT_TRUE(forked(ready[0].pid)) << solver << ": " << cmdline(ready[0].pid);
    std::string id = newId();
    auto r = httpRequest(d->port(), "POST", "/v1/solve?solver=" + solver, readFile(modelPath("knapsack.lp")),
                         lpHeaders(id));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200) << r->body;
    auto job = d->waitFinished(id, 10s);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ((*job)["worker_start"], "spare") << job->dump();
    EXPECT_EQ((*job)["worker_pid"], ready[0].pid) << job->dump();
    // clp solves the relaxation: optimal either way, the objective is the backend's.
    EXPECT_EQ((*job)["result"]["status"], "optimal") << job->dump();
    EXPECT_EQ((*job)["result"]["solver"], solver) << job->dump();
    used.insert(ready[0].cgroup);
  }
  EXPECT_EQ(metric(d->metrics(), "solverd_spare_workers_taken_total"), 3);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, AKilledForkServerIsRestartedAndSparesAreExecdUntilItIsBack) {
  auto d = start("workers 1;\nspare_workers 1;\n");
  ASSERT_TRUE(d->started());
  auto first = waitForForkServer(*d, cgroup_root_);
  ASSERT_NE(first.pid, 0);
  auto spare = waitForSpares(cgroup_root_, 1);
  ASSERT_EQ(spare.size(), 1U);
  // The first death restarts it at once.
  ASSERT_EQ(::kill(first.pid, SIGKILL), 0);
  auto second = waitForForkServer(*d, cgroup_root_, first.pid);
  ASSERT_NE(second.pid, 0) << d->process().output();
  EXPECT_TRUE(d->process().waitForLine("fork server pid=" + std::to_string(first.pid) +
                                           " exited \\(signal SIGKILL\\).*restart in 0 ms", 5s))
      << d->process().output();
  // A second death within a second of its start: restarted after a back-off of 1 s, and the
  // spare that replaces the one a job takes meanwhile is exec'd.
  ASSERT_EQ(::kill(second.pid, SIGKILL), 0);
  ASSERT_TRUE(waitFor([&] { return metric(d->metrics(), "solverd_fork_server_died_total") == 2; }, 5s));
  EXPECT_TRUE(d->process().waitForLine("restart in 1000 ms", 5s)) << d->process().output();
  auto job = solveKnapsack(*d, newId());
  EXPECT_EQ(job["worker_pid"], spare[0].pid) << job.dump();
  auto execd = waitForSpares(cgroup_root_, 1, {spare[0].cgroup});
  ASSERT_EQ(execd.size(), 1U);
  EXPECT_FALSE(forked(execd[0].pid)) << cmdline(execd[0].pid);
  // Back: the next replacement is forked again.
  auto third = waitForForkServer(*d, cgroup_root_, second.pid);
  ASSERT_NE(third.pid, 0) << d->process().output();
  auto job2 = solveKnapsack(*d, newId());
  EXPECT_EQ(job2["worker_pid"], execd[0].pid) << job2.dump();
  auto again = waitForSpares(cgroup_root_, 1, {spare[0].cgroup, execd[0].cgroup});
  ASSERT_EQ(again.size(), 1U);
  EXPECT_TRUE(forked(again[0].pid)) << cmdline(again[0].pid);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, ReloadRestartsTheForkServerAndDrainLeavesNoServerSpareOrCgroup) {
  auto d = start("spare_workers 1;\n");
  ASSERT_TRUE(d->started());
  auto old_server = waitForForkServer(*d, cgroup_root_);
  ASSERT_NE(old_server.pid, 0);
  auto old_spare = waitForSpares(cgroup_root_, 1);
  ASSERT_EQ(old_spare.size(), 1U);
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->process().waitForLine("configuration reloaded", 5s)) << d->process().output();
  auto new_server = waitForForkServer(*d, cgroup_root_, old_server.pid);
  ASSERT_NE(new_server.pid, 0) << d->process().output();
  EXPECT_TRUE(waitFor([&] { return ::kill(old_server.pid, 0) != 0; }, 5s)) << "old fork server still runs";
  auto new_spare = waitForSpares(cgroup_root_, 1, {old_spare[0].cgroup});
  ASSERT_EQ(new_spare.size(), 1U);
  EXPECT_TRUE(forked(new_spare[0].pid));
  // The old server was asked to go: not a death.
  EXPECT_EQ(metric(d->metrics(), "solverd_fork_server_died_total"), 0);

  auto status = d->stop(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_TRUE(jobCgroups(cgroup_root_).empty());
  EXPECT_NE(::kill(new_server.pid, 0), 0);
  EXPECT_NE(::kill(new_spare[0].pid, 0), 0);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, SpareStartExecStartsNoForkServer) {
  auto d = start("spare_workers 1;\nspare_start exec;\n");
  ASSERT_TRUE(d->started());
  auto ready = waitForSpares(cgroup_root_, 1);
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_FALSE(forked(ready[0].pid)) << cmdline(ready[0].pid);
  EXPECT_TRUE(forkServers(cgroup_root_).empty());
  EXPECT_EQ(metric(d->metrics(), "solverd_spare_workers_forked_total"), 0);
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, SpareWorkersZeroStartsEachWorkerWithItsJob) {
  auto d = start("spare_workers 0;\n");
  ASSERT_TRUE(d->started());
  std::string id = newId();
  auto job = solveKnapsack(*d, id);
  EXPECT_EQ(job["worker_start"], "cold") << job.dump();
  EXPECT_EQ(fs::path(job["cgroup"].get<std::string>()).filename(), ::tether::agent::supervise::jobCgroupName(id));
  EXPECT_TRUE(spares(cgroup_root_).empty());
  EXPECT_TRUE(forkServers(cgroup_root_).empty());  // and no fork server
  auto metrics = d->metrics();
  EXPECT_EQ(metric(metrics, "solverd_spare_workers"), 0) << metrics;
  EXPECT_EQ(metric(metrics, "solverd_fork_server_up"), 0) << metrics;
  EXPECT_EQ(metric(metrics, "solverd_spare_workers_started_total"), 0) << metrics;
  d->expectNoErrorsLogged();
}

TEST_F(SpareWorkerTest, AWorkerBinaryThatFailsAtStartBacksOffInsteadOfAForkStorm) {
  // /bin/false stands for a worker that dies at start (a missing library, a bad build).
  auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{"spare_workers 1;\n", false, "/bin/false", {}});
  ASSERT_TRUE(d->started()) << d->process().output();
  auto t0 = Clock::now();
  // Back-off: the first two at once, then 100 ms, 200 ms, ...: the fifth failure comes no sooner
  // than 700 ms after the first start; a fork storm would be there in a few milliseconds.
  ASSERT_TRUE(waitFor([&] { return metric(d->metrics(), "solverd_spare_workers_died_total") >= 5; }, 10s))
      << d->metrics();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_GE(elapsed, 600);
  EXPECT_TRUE(d->process().waitForLine("spare-\\d+ pid=\\d+ exited before it was given a job \\(exit 1\\).*failures "
                                       "in a row, next spare in \\d+ ms",
                                       1s))
      << d->process().output();
  auto health = httpRequest(d->port(), "GET", "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

}  // namespace
}  // namespace tether::test
