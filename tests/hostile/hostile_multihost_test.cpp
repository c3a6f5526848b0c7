// Many hosts (issue 7): two solver hosts as network namespaces joined to the root namespace by
// veth pairs, each running solverd with tether-proxy beside it, and nginx in the root namespace
// balancing across the two proxies with its defaults. A client that leaves nginx must stop its
// job on the host that ran it, and only that job: nginx closes its upstream connection (hop 1),
// tether-proxy sends the cancel frame and closes its own upstream (hop 2), solverd interrupts.
#include "support.hpp"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>

namespace tether::hostile {
namespace {

// A /30 per host, derived from our pid and a per-process counter, so that concurrent runs (other
// build directories) and repeated runs (--gtest_repeat) do not collide in the root namespace.
unsigned g_run = 0;
std::string address(int host, int last) {
  unsigned v = ((static_cast<unsigned>(::getpid()) % 2048u * 16u + g_run % 8u * 2u) + static_cast<unsigned>(host)) * 4u;
  return "10." + std::to_string(234 + v / 65536) + "." + std::to_string(v / 256 % 256) + "." +
         std::to_string(v % 256 + static_cast<unsigned>(last));
}

class MultiHostTest : public HostileTest {};

TEST_F(MultiHostTest, ClientLeavingNginxStopsOnlyItsJobOnTheHostThatRanIt) {
  if (::access("/usr/sbin/nginx", X_OK) != 0) GTEST_SKIP() << "nginx is not installed (/usr/sbin/nginx)";
  if (::access("/usr/sbin/ip", X_OK) != 0) GTEST_SKIP() << "iproute2 is not installed (/usr/sbin/ip)";
  ++g_run;
  std::string tag = "thx" + std::to_string(::getpid() % 100000) + "r" + std::to_string(g_run % 8);
  std::vector<std::unique_ptr<Netns>> ns;
  for (int h = 0; h < 2; ++h) {
    ns.push_back(std::make_unique<Netns>(tag + std::to_string(h), address(h, 1), address(h, 2)));
    if (!ns.back()->ok()) GTEST_SKIP() << "cannot build a network namespace host: " << ns.back()->error();
  }
  std::string second_root = extraCgroupRoot();
  ASSERT_FALSE(second_root.empty());

  std::vector<std::unique_ptr<SolverHost>> hosts;
  std::vector<std::string> upstreams;
  for (int h = 0; h < 2; ++h) {
    HostOptions o;
    o.netns = ns[static_cast<size_t>(h)]->name();
    o.proxy_listen = address(h, 2) + ":8080";
    o.workers = 2;
    hosts.push_back(std::make_unique<SolverHost>(h == 0 ? cgroup_root_ : second_root, o));
    ASSERT_TRUE(hosts.back()->startSolverd()) << hosts.back()->solverd()->output();
    ASSERT_TRUE(hosts.back()->startProxy()) << hosts.back()->proxy()->output();
    upstreams.push_back(o.proxy_listen);
  }
  Nginx nginx(upstreams);
  ASSERT_TRUE(nginx.started()) << nginx.process()->output();

  // Three solves through nginx: round robin puts two on one host and one on the other.
  struct Solve {
    std::unique_ptr<HttpClient> client;
    std::string id;
    size_t host = 0;
    std::unique_ptr<ExitWatch> worker;
  };
  std::vector<Solve> solves;
  std::map<size_t, int> per_host;
  std::set<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    Solve s;
    s.client = std::make_unique<HttpClient>(nginx.socketPath());
    ASSERT_TRUE(s.client->connected());
    // Not streamed: with nginx's default proxy_buffering the NDJSON head would sit in its buffer,
    // so the job is found as the one new job on either host.
    s.client->send("POST", "/v1/solve?solver=cbc", tether::test::readFile(tether::test::modelPath("market_split_hard.lp")),
                   {{"Content-Type", "text/x-lp"}});
    nlohmann::json job;
    ASSERT_TRUE(tether::test::waitFor(
        [&] {
          for (size_t h = 0; h < hosts.size(); ++h) {
            auto list = hosts[h]->solverdGet("/v1/jobs");
            if (!list) continue;
            for (const auto& j : list->json().value("jobs", nlohmann::json::array())) {
              if (seen.count(j.value("id", std::string{})) != 0 || !j.contains("worker_pid")) continue;
              job = j;
              s.id = j["id"];
              s.host = h;
              return true;
            }
          }
          return false;
        },
        10s))
        << "solve " << i << " never ran on either host; nginx:\n" << nginx.process()->output();
    seen.insert(s.id);
    s.worker = std::make_unique<ExitWatch>(job["worker_pid"].get<pid_t>());
    ASSERT_TRUE(s.worker->valid());
    ++per_host[s.host];
    solves.push_back(std::move(s));
  }
  ASSERT_EQ(per_host.size(), 2u) << "nginx sent every solve to one host";
  size_t busy = per_host[0] == 2 ? 0 : 1;

  // The client of the first solve on the busy host leaves.
  size_t leaving = 0;
  while (solves[leaving].host != busy) ++leaving;
  auto closed_at = Clock::now();
  solves[leaving].client->close();
  auto exited_at = solves[leaving].worker->wait(10s);
  ASSERT_TRUE(exited_at) << "the worker of job " << solves[leaving].id << " outlived its client by 10 s";
  double ms = std::chrono::duration<double, std::milli>(*exited_at - closed_at).count();
  auto job = hosts[busy]->job(solves[leaving].id);
  ASSERT_TRUE(job.is_object());
  ASSERT_TRUE(job.contains("cancel")) << job.dump();
  std::printf("[ measure  ] client close -> worker exit across nginx and tether-proxy: %.3f ms "
              "(solverd: cancel received -> worker exited %.3f ms, cause %s)\n",
              ms, job["cancel"].value("received_to_exited_ms", -1.0),
              job["cancel"].value("reason", std::string{}).c_str());
  EXPECT_LT(ms, 2000.0);

  // Only that job: the other solves, on both hosts, still run and were never cancelled.
  for (size_t i = 0; i < solves.size(); ++i) {
    if (i == leaving) continue;
    EXPECT_FALSE(solves[i].worker->exited()) << "job " << solves[i].id << " stopped with another client";
    auto other = hosts[solves[i].host]->job(solves[i].id);
    EXPECT_FALSE(other.contains("cancel")) << other.dump();
    EXPECT_EQ(other.value("state", std::string{}), "running") << other.dump();
  }
  for (auto& h : hosts) {
    for (auto& line : h->proxy()->lines()) {
      if (line.find("cancel interrupt sent") == std::string::npos) continue;
      EXPECT_NE(line.find(solves[leaving].id), std::string::npos) << "unexpected cancel: " << line;
    }
  }

  // The rest leave too; every worker goes.
  for (size_t i = 0; i < solves.size(); ++i) {
    if (i == leaving) continue;
    solves[i].client->close();
    EXPECT_TRUE(solves[i].worker->wait(10s)) << "job " << solves[i].id;
  }
  for (auto& h : hosts) {
    EXPECT_TRUE(h->healthy());
    EXPECT_TRUE(h->errorLines().empty()) << h->errorLines().front();
  }
}

}  // namespace
}  // namespace tether::hostile
