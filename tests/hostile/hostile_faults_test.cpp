// Faults (issue 7): what operators' accidents do to a running solver host (solverd + tether-proxy)
// and that nothing is lost: solverd restarted under a running proxy, the proxy SIGKILLed
// mid-request, the proxy out of file descriptors. After each case: no process of a cancelled job
// remains and no job cgroup is left (HostileTest::TearDown), no fd has leaked (/proc/PID/fd before
// and after), and both daemons still answer /health.
#include "support.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace tether::hostile {
namespace {

size_t countLines(Process& p, const std::string& needle) {
  size_t n = 0;
  for (auto& l : p.lines()) n += l.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

// A streamed hard solve through the proxy, running in a worker; its pidfd.
struct RunningSolve {
  std::unique_ptr<HttpClient> client;
  std::string id;
  std::unique_ptr<ExitWatch> worker;
};

RunningSolve startRunning(SolverHost& host) {
  RunningSolve s;
  s.client = std::make_unique<HttpClient>(host.proxyPort());
  s.id = startStreamedSolve(*s.client);
  nlohmann::json job;
  if (s.id.empty() || !tether::test::waitFor(
                          [&] {
                            job = host.job(s.id);
                            return job.is_object() && job.contains("worker_pid");
                          },
                          10s)) {
    return s;
  }
  s.worker = std::make_unique<ExitWatch>(job["worker_pid"].get<pid_t>());
  return s;
}

// Shrinks a daemon's soft RLIMIT_NOFILE to `limit` (prlimit, as `ulimit -n` would); false on
// failure. Only the soft limit: raising a hard limit back needs CAP_SYS_RESOURCE, which a
// container may lack. `old` gets the limits to restore.
bool shrinkFdLimit(pid_t pid, int limit, rlimit& old) {
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &old) != 0) return false;
  rlimit small{static_cast<rlim_t>(limit), old.rlim_max};
  return ::prlimit(pid, RLIMIT_NOFILE, &small, nullptr) == 0;
}

// A flood of new clients, each asking GET /health; `flood` keeps them open. Returns how many
// were answered 200 within a short wait (the rest wait in the backlog or were closed).
template <typename Target>
int floodWithHealthChecks(const Target& target, std::vector<std::unique_ptr<HttpClient>>& flood, int clients = 40) {
  for (int i = 0; i < clients; ++i) {
    flood.push_back(std::make_unique<HttpClient>(target));
    flood.back()->send("GET", "/health");
  }
  int answered = 0;
  for (auto& c : flood) {
    auto fr = c->response(200ms);
    answered += fr && fr->status == 200 ? 1 : 0;
  }
  return answered;
}

class FaultsTest : public HostileTest {
 protected:
  std::unique_ptr<SolverHost> startHost(HostOptions o = {}) {
    auto h = std::make_unique<SolverHost>(cgroup_root_, o);
    EXPECT_TRUE(h->startSolverd()) << h->solverd()->output();
    EXPECT_TRUE(h->startProxy()) << h->proxy()->output();
    EXPECT_TRUE(tether::test::waitFor([&] { return countLines(*h->proxy(), "control connected") == 1; }, 5s));
    return h;
  }
};

TEST_F(FaultsTest, SolverdRestartUnderARunningProxyGetsTheControlConnectionBackAndCancelsStillWork) {
  auto host = startHost();
  const pid_t proxy_pid = host->proxy()->pid();
  const int proxy_fds = fdCount(proxy_pid);

  ASSERT_TRUE(host->stopSolverd());
  auto restarted_at = Clock::now();
  ASSERT_TRUE(host->startSolverd()) << host->solverd()->output();
  ASSERT_TRUE(tether::test::waitFor([&] { return countLines(*host->proxy(), "control connected") == 2; }, 10s))
      << host->tail();
  std::printf("[ measure  ] control connection back %.1f ms after solverd restarted\n",
              std::chrono::duration<double, std::milli>(Clock::now() - restarted_at).count());

  // A client that leaves after the restart still stops its job, by frame and by solverd's watch.
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  s.client->close();
  ASSERT_TRUE(s.worker->wait(5s)) << "job " << s.id << " outlived its client";
  auto job = host->job(s.id);
  EXPECT_TRUE(job.contains("cancel")) << job.dump();
  EXPECT_TRUE(tether::test::waitFor(
      [&] { return metricSum(host->proxyMetrics(), "tether_proxy_cancels_total", {"result=\"sent\""}) == 1; }, 5s))
      << host->proxyMetrics();

  EXPECT_TRUE(tether::test::waitFor([&] { return fdCount(proxy_pid) <= proxy_fds + 1; }, 5s))
      << "proxy fds " << proxy_fds << " -> " << fdCount(proxy_pid);
  EXPECT_TRUE(host->healthy());
  auto errors = host->errorLines();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST_F(FaultsTest, ClientLeavingWhileTheControlSocketIsDownStillStopsItsJobBySolverdsOwnWatch) {
  // The proxy's control socket leads nowhere (solverd's control listener down or misconfigured):
  // the cancel frame can only queue, but the disconnect still closes the upstream connection,
  // which solverd watches.
  HostOptions o;
  o.proxy_control = "/tmp/hostile-nowhere.sock";
  auto host = std::make_unique<SolverHost>(cgroup_root_, o);
  ASSERT_TRUE(host->startSolverd()) << host->solverd()->output();
  ASSERT_TRUE(host->startProxy()) << host->proxy()->output();
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  s.client->close();
  ASSERT_TRUE(s.worker->wait(5s)) << "job " << s.id << " outlived its client";
  auto job = host->job(s.id);
  ASSERT_TRUE(job.contains("cancel")) << job.dump();
  EXPECT_EQ(job["cancel"].value("reason", std::string{}), "client_disconnect") << job.dump();
  // The frame is kept for when the control socket comes back, not lost.
  auto pm = host->proxyMetrics();
  EXPECT_EQ(metricSum(pm, "tether_proxy_cancels_total", {"result=\"dropped\""}), 0.0) << pm;
  EXPECT_TRUE(host->healthy());
}

TEST_F(FaultsTest, ProxyKilledMidRequestLeavesNoOrphanedJobBecauseSolverdWatchesItsConnection) {
  auto host = startHost();
  const pid_t solverd_pid = host->solverd()->pid();
  const int solverd_fds = fdCount(solverd_pid);
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  auto killed_at = Clock::now();
  host->killProxy();
  auto exited = s.worker->wait(5s);
  ASSERT_TRUE(exited) << "job " << s.id << " outlived the proxy that carried it\n" << host->tail();
  std::printf("[ measure  ] proxy SIGKILL -> orphaned worker exit %.1f ms\n",
              std::chrono::duration<double, std::milli>(*exited - killed_at).count());
  auto job = host->job(s.id);
  EXPECT_TRUE(job.contains("cancel")) << job.dump();
  s.client.reset();

  ASSERT_TRUE(host->startProxy()) << host->proxy()->output();
  EXPECT_TRUE(tether::test::waitFor([&] { return fdCount(solverd_pid) <= solverd_fds + 1; }, 5s))
      << "solverd fds " << solverd_fds << " -> " << fdCount(solverd_pid);
  EXPECT_TRUE(host->healthy());
  auto errors = host->errorLines();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

// solverd removes, at start-up, the empty job-<id> cgroups a SIGKILLed predecessor left under
// cgroup_root (the worker itself exits on stdin EOF).
TEST_F(FaultsTest, SolverdKilledMidJobLeavesNoWorkerAndARestartLeavesNoJobCgroup) {
  auto host = startHost();
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  host->killSolverd();
  // The worker sees EOF on its stdin and stops; its client sees the proxy give up.
  ASSERT_TRUE(s.worker->wait(5s)) << "job " << s.id << " outlived solverd";
  EXPECT_FALSE(s.client->eventNamed("result", 5s)) << "a result from a dead solverd";
  ASSERT_TRUE(host->startSolverd()) << host->solverd()->output();
  EXPECT_TRUE(tether::test::waitFor([&] { return tether::test::jobCgroups(cgroup_root_).empty(); }, 5s))
      << "job cgroups of the killed solverd are still there after its restart";
  EXPECT_TRUE(host->healthy());
}

TEST_F(FaultsTest, ProxyOutOfFileDescriptorsRefusesNewClientsKeepsExistingOnesAndRecovers) {
  auto host = startHost();
  const pid_t proxy_pid = host->proxy()->pid();
  // An existing keep-alive client with a pooled upstream connection behind it.
  HttpClient existing(host->proxyPort());
  existing.send("GET", "/health");
  auto r = existing.response(5s);
  ASSERT_TRUE(r && r->status == 200);
  const int fds_before = fdCount(proxy_pid);
  const int balance_before = host->fdBalance();

  // The daemon's own limit shrinks to what it holds plus a few.
  rlimit old{};
  ASSERT_TRUE(shrinkFdLimit(proxy_pid, fds_before + 4, old));

  // A flood of new clients: the first few get in, the rest wait in the backlog or are closed.
  std::vector<std::unique_ptr<HttpClient>> flood;
  const int answered = floodWithHealthChecks(host->proxyPort(), flood);
  EXPECT_LT(answered, 40) << "the limit did not bite";
  EXPECT_GT(host->proxy()->pid(), 0);
  ASSERT_FALSE(host->proxy()->wait(0ms)) << "the proxy died of fd exhaustion\n" << host->tail();

  // The existing client still works (its upstream connection is already open) ...
  flood.clear();  // ... and once the load drops, the proxy recovers.
  existing.send("GET", "/health");
  r = existing.response(5s);
  EXPECT_TRUE(r && r->status == 200);
  ASSERT_EQ(::prlimit(proxy_pid, RLIMIT_NOFILE, &old, nullptr), 0);
  EXPECT_TRUE(tether::test::waitFor(
      [&] {
        auto h = tether::test::httpRequest(host->proxyPort(), "GET", "/health", {}, {}, 1s);
        return h && h->status == 200;
      },
      10s));
  existing.close();
  EXPECT_TRUE(tether::test::waitFor([&] { return host->fdBalance() <= balance_before - 1; }, 5s))
      << "proxy fds beyond its keep-alive pool: " << balance_before << " -> " << host->fdBalance()
      << " (the existing client closed)";
  EXPECT_TRUE(host->healthy());
  for (auto& line : host->errorLines()) {
    // Running out of fds is the operator's doing: worth a warning, not an error of ours.
    ADD_FAILURE() << line;
  }
}

TEST_F(FaultsTest, SolverdOutOfFileDescriptorsRefusesNewConnectionsKeepsExistingOnesAndRecovers) {
  auto host = startHost();
  const pid_t pid = host->solverd()->pid();
  // An existing keep-alive client of solverd's API.
  HttpClient existing(host->apiPath());
  existing.send("GET", "/health");
  auto r = existing.response(5s);
  ASSERT_TRUE(r && r->status == 200);
  const int fds_before = fdCount(pid);

  // solverd's own soft limit shrinks to what it holds plus a few.
  rlimit old{};
  ASSERT_TRUE(shrinkFdLimit(pid, fds_before + 4, old));
  std::vector<std::unique_ptr<HttpClient>> flood;
  const int answered = floodWithHealthChecks(host->apiPath(), flood);
  std::printf("[ measure  ] solverd at %d fds with a limit of %d: %d of 40 new clients answered\n", fds_before,
              fds_before + 4, answered);
  EXPECT_LT(answered, 40) << "the limit did not bite";
  ASSERT_FALSE(host->solverd()->wait(0ms)) << "solverd died of fd exhaustion\n" << host->tail();

  // A solve needs pipes and a pidfd for its worker: it fails cleanly (or waits), solverd lives on.
  auto solve = tether::test::httpRequest(host->proxyPort(), "POST", "/v1/solve?solver=cbc",
                                         tether::test::readFile(tether::test::modelPath("knapsack.lp")),
                                         {{"Content-Type", "text/x-lp"}}, 5s);
  std::printf("[ measure  ] a solve while solverd is out of fds: %s\n",
              solve ? (std::to_string(solve->status) + " " + solve->body.substr(0, 120)).c_str() : "no answer");
  ASSERT_FALSE(host->solverd()->wait(0ms)) << "solverd died of fd exhaustion\n" << host->tail();

  // The existing client still works ...
  existing.send("GET", "/health");
  r = existing.response(5s);
  EXPECT_TRUE(r && r->status == 200);
  // ... and once the load drops and the limit is back, solverd recovers: health and a solve.
  flood.clear();
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &old, nullptr), 0);
  EXPECT_TRUE(tether::test::waitFor(
      [&] {
        auto h = host->solverdGet("/health");
        return h && h->status == 200;
      },
      10s));
  solve = tether::test::httpRequest(host->proxyPort(), "POST", "/v1/solve?solver=cbc",
                                    tether::test::readFile(tether::test::modelPath("knapsack.lp")),
                                    {{"Content-Type", "text/x-lp"}}, 20s);
  ASSERT_TRUE(solve) << host->tail();
  EXPECT_EQ(solve->status, 200) << solve->body;
  existing.close();
  EXPECT_TRUE(tether::test::waitFor([&] { return tether::test::jobCgroups(cgroup_root_).empty(); }, 5s));
  // The proxy's pool may keep a connection or two to solverd open; nothing else may remain.
  EXPECT_TRUE(tether::test::waitFor([&] { return fdCount(pid) <= fds_before + 2; }, 5s))
      << "solverd fds " << fds_before << " -> " << fdCount(pid);
  EXPECT_TRUE(host->healthy());
  // Only solverd's lines: the proxy rightly logs an [error] for the upstream connection solverd
  // accepted and closed (the 502 above), as nginx does.
  for (auto& line : host->solverd()->lines()) {
    if (line.find("[error]") != std::string::npos || line.find("[critical]") != std::string::npos) ADD_FAILURE() << line;
  }
}

// ---- misbehaving workers (tests/hostile/bad_worker.cpp through solverd's worker_path)

// A `worker_path` script that execs the bad worker in one mode; removed with its directory.
class BadWorkerScript {
 public:
  explicit BadWorkerScript(const std::string& args) {
    char tmpl[] = "/tmp/hbw-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/worker.sh";
    std::ofstream(path_) << "#!/bin/sh\nexec " << tether::test::binPath("hostile_bad_worker") << " " << args << "\n";
    ::chmod(path_.c_str(), 0755);
  }
  ~BadWorkerScript() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  BadWorkerScript(const BadWorkerScript&) = delete;
  BadWorkerScript& operator=(const BadWorkerScript&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// Open fds of `pid` that are not sockets (pipes, pidfds, files, ...).
int nonSocketFds(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && !target.string().starts_with("socket:")) ++n;
  }
  return n;
}

class BadWorkerTest : public FaultsTest {
 protected:
  std::unique_ptr<SolverHost> startWith(const BadWorkerScript& script) {
    HostOptions o;
    o.worker_path = script.path();
    // solverd's own cancel (its connection watch sees the proxy close the upstream) has its
    // default grace, 5s; the proxy's frame asks for 1s (kill_after 1s), and that must hold
    // whichever of the two arrives first.
    auto host = startHost(o);
    solverd_fds_ = fdCount(host->solverd()->pid());
    solverd_pipes_ = nonSocketFds(host->solverd()->pid());
    return host;
  }
  // After every case: solverd holds no job, no fd more than before, and still answers.
  void expectSolverdClean(SolverHost& host) {
    EXPECT_TRUE(tether::test::waitFor([&] { return host.liveJobs() == 0; }, 5s)) << host.tail();
    EXPECT_TRUE(tether::test::waitFor([&] { return tether::test::jobCgroups(cgroup_root_).empty(); }, 5s))
        << "a job cgroup is left";
    // A worker's fds are pipes and a pidfd; the proxy's pool to solverd (keepalive 64) may keep
    // a socket per request it has carried, so sockets are only bounded by it.
    const pid_t pid = host.solverd()->pid();
    EXPECT_TRUE(tether::test::waitFor([&] { return nonSocketFds(pid) <= solverd_pipes_; }, 5s))
        << "solverd fds other than sockets " << solverd_pipes_ << " -> " << nonSocketFds(pid);
    EXPECT_LE(fdCount(pid), solverd_fds_ + 64);
    EXPECT_FALSE(host.solverd()->wait(0ms)) << "solverd died\n" << host.tail();
    EXPECT_TRUE(host.healthy());
  }
  // The client leaves; the proxy's cancel (interrupt, grace kill_after 1s) reaches solverd,
  // which kills the cgroup once the grace has passed. Returns the close-to-exit time in ms.
  double leaveAndWaitForExit(SolverHost& host, RunningSolve& s, ExitWatch* also = nullptr) {
    auto left_at = Clock::now();
    s.client->close();
    auto exited = s.worker->wait(10s);
    EXPECT_TRUE(exited) << "job " << s.id << " outlived its client\n" << host.tail();
    if (also != nullptr) {
      EXPECT_TRUE(also->wait(5s)) << "the setsid child of job " << s.id << " outlived it";
    }
    auto job = host.job(s.id);
    EXPECT_TRUE(job.contains("cancel")) << job.dump();
    std::printf("[ measure  ] job %s cancel: %s\n", s.id.c_str(), job.value("cancel", nlohmann::json()).dump().c_str());
    return exited ? std::chrono::duration<double, std::milli>(*exited - left_at).count() : -1.0;
  }
  int solverd_fds_ = 0;
  int solverd_pipes_ = 0;
};

TEST_F(BadWorkerTest, WorkerIgnoringTheInterruptFrameAndSigtermIsKilledWithItsCgroupAfterTheGrace) {
  BadWorkerScript script("ignore");
  auto host = startWith(script);
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  double ms = leaveAndWaitForExit(*host, s);
  std::printf("[ measure  ] worker ignoring interrupt and SIGTERM: client close -> exit %.1f ms (grace 1s)\n", ms);
  // It did not stop on the interrupt: only the kill after the proxy's grace of 1s ended it.
  EXPECT_GE(ms, 900.0);
  EXPECT_LT(ms, 2500.0) << "the grace of the proxy's frame (1s) did not hold";
  expectSolverdClean(*host);
}

TEST_F(BadWorkerTest, WorkerThatForksASetsidChildHasBothKilledThroughTheCgroup) {
  BadWorkerScript script("setsid");
  auto host = startWith(script);
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  std::vector<std::string> m;
  ASSERT_TRUE(host->solverd()->waitForLine(R"(bad_worker child=(\d+))", 5s, &m)) << host->tail();
  const pid_t child = static_cast<pid_t>(std::stoi(m[1]));
  ExitWatch child_watch(child);
  ASSERT_TRUE(child_watch.valid());
  ASSERT_FALSE(child_watch.exited());
  double ms = leaveAndWaitForExit(*host, s, &child_watch);
  std::printf("[ measure  ] worker with a setsid child: client close -> worker exit %.1f ms\n", ms);
  expectSolverdClean(*host);
}

TEST_F(BadWorkerTest, WorkerWritingGarbageFramesIsKilledAndTheRequestGetsAnError) {
  for (const char* mode : {"badlength", "badjson"}) {
    SCOPED_TRACE(mode);
    BadWorkerScript script(mode);
    auto host = startWith(script);
    auto r = tether::test::httpRequest(host->proxyPort(), "POST", "/v1/solve?solver=cbc",
                                       tether::test::readFile(tether::test::modelPath("knapsack.lp")),
                                       {{"Content-Type", "text/x-lp"}}, 10s);
    ASSERT_TRUE(r) << host->tail();
    // Not a result: an error (500 worker_failed) or, at the least, `crashed`.
    if (r->status == 200) {
      EXPECT_EQ(r->json()["status"], "crashed") << r->body;
    } else {
      EXPECT_EQ(r->status, 500) << r->body;
      EXPECT_EQ(r->json()["error"], "worker_failed") << r->body;
    }
    expectSolverdClean(*host);
  }
}

TEST_F(BadWorkerTest, WorkerExceedingItsMemoryLimitLeavesSolverdServing) {
  // A hog of 256 MiB (bounded: with no memory limit in force it would take the machine).
  BadWorkerScript script("hog 256");
  auto host = startWith(script);
  auto s = startRunning(*host);
  ASSERT_TRUE(s.worker) << host->tail();
  ASSERT_TRUE(host->solverd()->waitForLine("bad_worker holds", 20s)) << host->tail();
  EXPECT_TRUE(host->healthy());
  double ms = leaveAndWaitForExit(*host, s);
  std::printf("[ measure  ] memory hog: client close -> exit %.1f ms\n", ms);
  expectSolverdClean(*host);
  const std::string controllers = tether::test::readFile(cgroup_root_ + "/cgroup.controllers");
  if (controllers.find("memory") == std::string::npos) {
    GTEST_SKIP() << "the memory controller is not on cgroup v2 here (hybrid layout: memory is on v1), so "
                    "job_memory_max cannot be enforced; checked only that solverd survives a hog and cleans up";
  }
  // Where it is enforced (not on this machine, so this part has not run here): the kernel's OOM
  // killer ends the hog inside its 64 MiB and solverd reports `crashed`.
  HostOptions o;
  o.worker_path = script.path();
  o.solverd_extra = "job_memory_max 64m;\n";
  auto limited = startHost(o);
  auto r = tether::test::httpRequest(limited->proxyPort(), "POST", "/v1/solve?solver=cbc",
                                     tether::test::readFile(tether::test::modelPath("knapsack.lp")),
                                     {{"Content-Type", "text/x-lp"}}, 20s);
  ASSERT_TRUE(r) << limited->tail();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->json()["status"], "crashed") << r->body;
}

}  // namespace
}  // namespace tether::hostile
