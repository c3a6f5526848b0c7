// Jobs that outlive a connection, through tether-proxy running the shipped configuration
// (packaging/etc/proxy.conf, with only its addresses replaced): Server-Sent Events arrive event by
// event, Last-Event-ID resumes, and a watcher that leaves lets go of its job (the shipped
// `location /v1/jobs` has `on_disconnect close`, so solverd's own watch sees the watcher go).
#include "daemon_support.hpp"

#include <fstream>
#include <memory>

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
    if (!adapted_) return;
    const std::string path = solverd_->dir() + "/proxy.conf";
    std::ofstream(path) << conf;
    proxy_ = std::make_unique<Process>(std::vector<std::string>{binPath("tether-proxy"), "-c", path});
    std::vector<std::string> m;
    if (proxy_->waitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 10s, &m)) port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  ~ShippedStack() {
    if (proxy_) {
      proxy_->signal(SIGTERM);
      if (!proxy_->wait(10s)) proxy_->signal(SIGKILL);
    }
  }
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
  w.watchSse(id);
  auto head = w.head(5s);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-type"], "text/event-stream");
  // Each event comes through while the response is far from complete (the job runs for
  // minutes): nothing waits for more bytes or for the end.
  auto accepted = w.nextSse(5s);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->event, "accepted");
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

}  // namespace
}  // namespace tether::test
