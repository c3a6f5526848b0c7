// Jobs that outlive a connection, through tether-proxy running the shipped configuration
// (packaging/etc/proxy.conf, with only its addresses replaced): Server-Sent Events arrive event by
// event, Last-Event-ID resumes, and a watcher that leaves lets go of its job (the shipped
// `location /v1/jobs` has `on_disconnect close`, so solverd's own watch sees the watcher go).
#include "daemon_support.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>

namespace tether::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Replaces `from` in `text` once; false when it is not there (the shipped file changed shape).
bool replaceOnce(std::string& text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  if (at == std::string::npos) return false;
  text.replace(at, from.size(), to);
  return true;
}

// tether-proxy on `conf` (written to DIR/proxy.conf); the port of its listener, 0 if it did not start.
uint16_t startProxy(const std::string& conf, const std::string& dir, std::unique_ptr<Process>& proxy) {
  const std::string path = dir + "/proxy.conf";
  std::ofstream(path) << conf;
  proxy = std::make_unique<Process>(std::vector<std::string>{binPath("tether-proxy"), "-c", path});
  std::vector<std::string> m;
  if (!proxy->waitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 10s, &m)) return 0;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

void stopProxy(std::unique_ptr<Process>& proxy) {
  if (!proxy) return;
  proxy->signal(SIGTERM);
  if (!proxy->wait(10s)) proxy->signal(SIGKILL);
}

class ShippedStack {
 public:
  ShippedStack(const std::string& cgroup_root, const std::string& solverd_extra) {
    solverd_ = std::make_unique<Solverd>(cgroup_root, Solverd::Options{solverd_extra, false, {}, {}});
    if (!solverd_->started()) return;
    std::string conf = readFile(std::string(TETHER_SOURCE_DIR) + "/packaging/etc/proxy.conf");
    adapted_ = replaceOnce(conf, "listen systemd:http;", "listen 127.0.0.1:0;") &&
               replaceOnce(conf, "server unix:/run/tether/solverd.sock;",
                           "server 127.0.0.1:" + std::to_string(solverd_->port()) + ";") &&
               replaceOnce(conf, "control unix:/run/tether/control.sock;",
                           "control unix:" + solverd_->controlPath() + ";") &&
               replaceOnce(conf, "admin { listen 127.0.0.1:9901; }", "");
    if (adapted_) port_ = startProxy(conf, solverd_->dir(), proxy_);
  }
  ~ShippedStack() { stopProxy(proxy_); }
  bool adapted() const { return adapted_; }
  bool started() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  Solverd& solverd() { return *solverd_; }
  std::string proxyOutput() { return proxy_ ? proxy_->output() : std::string("(no proxy)"); }

  // The job as solverd's GET /v1/jobs lists it (the list renews no lease).
  nlohmann::json listed(const std::string& id) {
    auto r = httpRequest(solverd_->port(), "GET", "/v1/jobs");
    if (!r || r->status != 200) return nullptr;
    nlohmann::json body = r->json();
    for (auto& j : body["jobs"]) {
      if (j["id"] == id) return j;
    }
    return nullptr;
  }

 private:
  std::unique_ptr<Solverd> solverd_;
  std::unique_ptr<Process> proxy_;
  uint16_t port_ = 0;
  bool adapted_ = false;
};

class JobsThroughProxyTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped()) return;
    if (!std::ifstream(binPath("tether-proxy"))) GTEST_SKIP() << "tether-proxy not built in " << TETHER_BIN_DIR;
  }

  // POST /v1/jobs of the hard instance through the proxy; returns the job id.
  static std::string submitHard(ShippedStack& stack, const std::string& lease) {
    auto r = httpRequest(stack.port(), "POST", "/v1/jobs?solver=cbc&lease=" + lease,
                         readFile(modelPath("market_split_hard.lp")), {{"Content-Type", "text/x-lp"}});
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 202) << r->body;
    std::string id = r->json().value("id", std::string{});
    EXPECT_EQ(r->headers["location"], "/v1/jobs/" + id);
    return id;
  }
};

TEST_F(JobsThroughProxyTest, SseThroughTheShippedProxyArrivesEventByEventAndResumesWithLastEventId) {
  ShippedStack stack(cgroup_root_, "heartbeat_interval 300ms;\n");
  ASSERT_TRUE(stack.adapted()) << "packaging/etc/proxy.conf changed shape: adapt this test";
  ASSERT_TRUE(stack.started()) << stack.proxyOutput();
  std::string id = submitHard(stack, "1h");
  ASSERT_EQ(id.size(), 32U);

  HttpClient w(stack.port());
  // Each event comes through while the response is far from complete (the job runs for
  // minutes): nothing waits for more bytes or for the end.
  auto accepted = w.watchSseAccepted(id);
  ASSERT_TRUE(accepted);
  auto inc = w.sseNamed("incumbent", 20s);
  ASSERT_TRUE(inc);
  EXPECT_EQ(stack.listed(id)["state"], "running");
  EXPECT_TRUE(w.sseHeartbeat(3s)) << "no heartbeat came through the proxy";
  EXPECT_EQ(stack.listed(id)["state"], "running");
  w.close();

  const uint64_t seq = std::stoull(inc->id);
  HttpClient again(stack.port());
  again.watchSse(id, seq - 1);
  ASSERT_TRUE(again.head(5s));
  ASSERT_TRUE(again.sseNamed("accepted", 5s));
  auto replayed = again.nextSse(5s);
  ASSERT_TRUE(replayed);
  EXPECT_EQ(replayed->id, inc->id);
  EXPECT_EQ(replayed->data, inc->data);

  auto del = httpRequest(stack.port(), "DELETE", "/v1/jobs/" + id + "?action=interrupt");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 202) << del->body;
  auto result = again.sseNamed("result", 10s);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->json()["status"], "interrupted") << result->data;
  EXPECT_TRUE(stack.solverd().waitFinished(id, 10s));
  stack.solverd().expectNoErrorsLogged();
}

TEST_F(JobsThroughProxyTest, WatcherLeavingThroughTheShippedProxyLetsGoOfItsJob) {
  ShippedStack stack(cgroup_root_, "");
  ASSERT_TRUE(stack.adapted()) << "packaging/etc/proxy.conf changed shape: adapt this test";
  ASSERT_TRUE(stack.started()) << stack.proxyOutput();
  std::string id = submitHard(stack, "300ms");
  ASSERT_EQ(id.size(), 32U);
  HttpClient w(stack.port());
  w.send("GET", "/v1/jobs/" + id + "/events");
  ASSERT_TRUE(w.head(5s));
  ASSERT_TRUE(w.eventNamed("accepted", 5s));
  // The lease runs out; the watcher behind the proxy holds the job.
  ASSERT_TRUE(waitFor(
      [&] {
        auto j = stack.listed(id);
        return j.value("lease_expires_in_ms", 1.0) == 0.0 && j["state"] == "running";
      },
      5s))
      << stack.listed(id).dump();
  EXPECT_EQ(stack.listed(id)["watchers"], 1);
  w.close();
  nlohmann::json job;
  ASSERT_TRUE(waitFor(
      [&] {
        job = stack.listed(id);
        return job["state"] == "finished";
      },
      10s))
      << job.dump() << stack.proxyOutput();
  EXPECT_EQ(job["cancel"]["reason"], "lease_expired") << job.dump();
  EXPECT_EQ(job["status"], "interrupted") << job.dump();
}

// Several hosts (DESIGN.md "Several hosts"): two solverd behind one upstream of tether-proxy,
// each with its own `route`, the proxy's servers with theirs. Every poll, watcher and cancel of a
// job reaches the solverd that accepted it (the other would answer 404), and when that one is
// gone the client gets an error, never the other's 404.
class TwoSolverdStack {
 public:
  explicit TwoSolverdStack(const std::string& cgroup_root) {
    for (const char* route : {"a", "b"}) {
      solverd_.push_back(std::make_unique<Solverd>(
          cgroup_root, Solverd::Options{std::string("route ") + route + ";\nworkers 2;\n", false, {}, {}}));
      if (!solverd_.back()->started()) return;
    }
    std::string conf = readFile(std::string(TETHER_SOURCE_DIR) + "/packaging/etc/proxy.conf");
    adapted_ = replaceOnce(conf, "listen systemd:http;", "listen 127.0.0.1:0;") &&
               replaceOnce(conf, "server unix:/run/tether/solverd.sock;",
                           "server 127.0.0.1:" + std::to_string(solverd_[0]->port()) + " route=a;\n" +
                               "server 127.0.0.1:" + std::to_string(solverd_[1]->port()) + " route=b;") &&
               // /v1/solve's cancel frames (not used here: the job API's location has none).
               replaceOnce(conf, "control unix:/run/tether/control.sock;",
                           "control unix:" + solverd_[0]->controlPath() + ";") &&
               replaceOnce(conf, "admin { listen 127.0.0.1:9901; }", "");
    if (adapted_) port_ = startProxy(conf, solverd_[0]->dir(), proxy_);
  }
  ~TwoSolverdStack() { stopProxy(proxy_); }
  bool started() const { return port_ != 0; }
  bool adapted() const { return adapted_; }
  uint16_t port() const { return port_; }
  Solverd& solverd(size_t i) { return *solverd_[i]; }
  std::string proxyOutput() { return proxy_ ? proxy_->output() : std::string("(no proxy)"); }

 private:
  std::vector<std::unique_ptr<Solverd>> solverd_;
  std::unique_ptr<Process> proxy_;
  uint16_t port_ = 0;
  bool adapted_ = false;
};

// The ids of the jobs that solverd's own GET /v1/jobs lists (the list renews no lease).
std::vector<std::string> listedIds(Solverd& d) {
  std::vector<std::string> out;
  auto r = httpRequest(d.port(), "GET", "/v1/jobs");
  if (!r || r->status != 200) return out;
  const nlohmann::json body = r->json();
  for (const auto& j : body["jobs"]) out.push_back(j.value("id", std::string{}));
  return out;
}

nlohmann::json listedJob(Solverd& d, const std::string& id) {
  auto r = httpRequest(d.port(), "GET", "/v1/jobs");
  if (!r || r->status != 200) return nlohmann::json::object();
  const nlohmann::json body = r->json();
  for (const auto& j : body["jobs"]) {
    if (j.value("id", std::string{}) == id) return j;
  }
  return nlohmann::json::object();
}

TEST_F(JobsThroughProxyTest, JobIdsRoutePollsWatchersAndCancelsToTheSolverdThatAcceptedThem) {
  TwoSolverdStack stack(cgroup_root_);
  ASSERT_TRUE(stack.adapted()) << "packaging/etc/proxy.conf changed shape: adapt this test";
  ASSERT_TRUE(stack.started()) << stack.proxyOutput();
  // Two submissions at once: two upstream connections, one to each server (round robin).
  std::map<std::string, std::string> owner_of;  // id -> route
  {
    std::vector<std::unique_ptr<HttpClient>> posts;
    for (int i = 0; i < 2; ++i) {
      posts.push_back(std::make_unique<HttpClient>(stack.port()));
      posts.back()->send("POST", "/v1/jobs?solver=cbc&lease=1h", readFile(modelPath("market_split_hard.lp")),
                         {{"Content-Type", "text/x-lp"}});
    }
    for (auto& p : posts) {
      auto r = p->response(10s);
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 202) << r->body;
      const std::string id = r->json().value("id", std::string{});
      EXPECT_EQ(r->headers["location"], "/v1/jobs/" + id);
      ASSERT_GT(id.size(), 2U);
      owner_of[id] = id.substr(id.size() - 2);
    }
  }
  std::set<std::string> routes;
  for (const auto& [id, route] : owner_of) routes.insert(route);
  ASSERT_EQ(routes, (std::set<std::string>{".a", ".b"})) << "both servers should have taken one job";

  for (const auto& [id, route] : owner_of) {
    Solverd& owner = stack.solverd(route == ".a" ? 0 : 1);
    Solverd& other = stack.solverd(route == ".a" ? 1 : 0);
    const auto owned = listedIds(owner);
    EXPECT_NE(std::find(owned.begin(), owned.end(), id), owned.end()) << id;
    // The other server does not know the job: reaching it would be a 404.
    auto direct = httpRequest(other.port(), "GET", "/v1/jobs/" + id);
    ASSERT_TRUE(direct);
    EXPECT_EQ(direct->status, 404);
    // Polls through the proxy, on one kept-alive connection and on fresh ones: each renews the
    // lease on the owner, whatever upstream connections the pool holds.
    HttpClient kept(stack.port());
    for (int i = 0; i < 4; ++i) {
      kept.send("GET", "/v1/jobs/" + id);
      auto r = kept.response(5s);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200) << r->body;
      auto fresh = httpRequest(stack.port(), "GET", "/v1/jobs/" + id);
      ASSERT_TRUE(fresh);
      EXPECT_EQ(fresh->status, 200) << fresh->body;
    }
    // A watcher through the proxy: the owner's job list counts it.
    HttpClient w(stack.port());
    w.watchSse(id);
    auto head = w.head(5s);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    auto accepted = w.nextSse(5s);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->event, "accepted");
    EXPECT_TRUE(waitFor([&] { return listedJob(owner, id).value("watchers", 0) == 1; }, 5s))
        << listedJob(owner, id).dump();
  }
  // DELETE through the proxy stops the job on its owner.
  for (const auto& [id, route] : owner_of) {
    Solverd& owner = stack.solverd(route == ".a" ? 0 : 1);
    auto r = httpRequest(stack.port(), "DELETE", "/v1/jobs/" + id + "?action=kill");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 202) << r->body;
    auto job = owner.waitFinished(id, 10s);
    ASSERT_TRUE(job) << owner.process().output();
    EXPECT_EQ((*job)["cancel"]["action"], "kill") << job->dump();
  }
  // The owner of one job stops: its id through the proxy is an error (502), not the other's 404;
  // the other job still answers.
  std::string gone_id, kept_id;
  for (const auto& [id, route] : owner_of) (route == ".a" ? gone_id : kept_id) = id;
  ASSERT_TRUE(stack.solverd(0).stop());
  for (int i = 0; i < 3; ++i) {
    auto r = httpRequest(stack.port(), "GET", "/v1/jobs/" + gone_id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 502) << r->body;
    auto e = httpRequest(stack.port(), "GET", "/v1/jobs/" + gone_id + "/events");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 502) << e->body;
  }
  auto still = httpRequest(stack.port(), "GET", "/v1/jobs/" + kept_id);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, 200) << still->body;
  stack.solverd(1).expectNoErrorsLogged();
}

}  // namespace
}  // namespace tether::test
