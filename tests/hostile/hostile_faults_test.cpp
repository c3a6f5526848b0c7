// Faults (issue 7): what operators' accidents do to a running solver host (solverd + tether-proxy)
// and that nothing is lost: solverd restarted under a running proxy, the proxy SIGKILLed
// mid-request, the proxy out of file descriptors. After each case: no process of a cancelled job
// remains and no job cgroup is left (HostileTest::TearDown), no fd has leaked (/proc/PID/fd before
// and after), and both daemons still answer /health.
#include "support.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
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

  // The daemon's own limit shrinks to what it holds plus a few (prlimit, as `ulimit -n` would).
  // Only the soft limit: raising a hard limit back needs CAP_SYS_RESOURCE, which a container may lack.
  rlimit old{};
  ASSERT_EQ(::prlimit(proxy_pid, RLIMIT_NOFILE, nullptr, &old), 0);
  rlimit small{static_cast<rlim_t>(fds_before + 4), old.rlim_max};
  ASSERT_EQ(::prlimit(proxy_pid, RLIMIT_NOFILE, &small, nullptr), 0);

  // A flood of new clients: the first few get in, the rest wait in the backlog or are closed.
  std::vector<std::unique_ptr<HttpClient>> flood;
  for (int i = 0; i < 40; ++i) {
    flood.push_back(std::make_unique<HttpClient>(host->proxyPort()));
    flood.back()->send("GET", "/health");
  }
  int answered = 0;
  for (auto& c : flood) {
    auto fr = c->response(200ms);
    answered += fr && fr->status == 200 ? 1 : 0;
  }
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

}  // namespace
}  // namespace tether::hostile
