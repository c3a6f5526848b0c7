// Webhooks on the real daemon: a callback=URL reaches a test receiver with a valid signature, is
// retried after a 500, and targets callback_allow does not admit are refused: at submission
// (422) when the URL names them, at connect time when a name resolves to them.
#include "daemon_support.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

namespace tether::test {
namespace {

// A webhook receiver: one thread, 127.0.0.1:0, answers each request with the next status of its
// script (then 200) and keeps what it received.
class Receiver {
 public:
  struct Received {
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    Clock::time_point at;
  };

  explicit Receiver(std::deque<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0 || ::listen(fd_, 16) != 0) return;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  uint16_t port() const { return port_; }
  std::vector<Received> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      ::close(c);
    }
  }

  void serve(int c) {
    std::string buf;
    auto deadline = Clock::now() + 5s;
    size_t end = std::string::npos;
    size_t length = 0;
    Received r;
    while (Clock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
      if (end == std::string::npos && (end = buf.find("\r\n\r\n")) != std::string::npos) {
        std::istringstream in(buf.substr(0, end));
        std::string line;
        std::getline(in, line);  // request line
        while (std::getline(in, line)) {
          if (!line.empty() && line.back() == '\r') line.pop_back();
          auto colon = line.find(':');
          if (colon == std::string::npos) continue;
          std::string name = line.substr(0, colon);
          for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        }
        length = r.headers.count("content-length") != 0 ? std::stoul(r.headers["content-length"]) : 0;
      }
      if (end != std::string::npos && buf.size() >= end + 4 + length) break;
    }
    if (end == std::string::npos) return;
    r.body = buf.substr(end + 4, length);
    r.at = Clock::now();
    int status = 200;
    {
      std::lock_guard lock(mutex_);
      if (!statuses_.empty()) {
        status = statuses_.front();
        statuses_.pop_front();
      }
      received_.push_back(std::move(r));
    }
    std::string reply = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::deque<int> statuses_;
  std::vector<Received> received_;
};

std::string hmacHex(const std::string& key, const std::string& text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), mac, &len);
  std::string out;
  char two[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(two, sizeof two, "%02x", mac[i]);
    out += two;
  }
  return out;
}

class WebhookTest : public DaemonTest {
 protected:
  std::unique_ptr<Solverd> start(const std::string& extra = {}) {
    auto d = std::make_unique<Solverd>(cgroup_root_, Solverd::Options{extra, false, {}, {}});
    EXPECT_TRUE(d->started()) << d->process().output();
    return d;
  }
  static std::optional<HttpResponse> submit(Solverd& d, const std::string& callback) {
    return httpRequest(d.port(), "POST", "/v1/jobs?solver=glpk&callback=" + callback,
                       readFile(modelPath("knapsack.lp")), {{"Content-Type", "text/x-lp"}});
  }
};

TEST_F(WebhookTest, WebhookReachesTheTargetSignedAndIsRetriedAfterA500) {
  Receiver receiver({500});
  ASSERT_NE(receiver.port(), 0);
  auto d = start("callback_secret s3cret;\ncallback_allow 127.0.0.1/32;\n");
  ASSERT_TRUE(d->started());
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook";
  auto r = submit(*d, url);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  ASSERT_TRUE(waitFor([&] { return receiver.received().size() >= 2; }, 10s)) << d->process().output();
  auto got = receiver.received();
  ASSERT_EQ(got.size(), 2U);
  // The second try, one second after the 500.
  auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(got[1].at - got[0].at).count();
  EXPECT_GE(gap, 900);
  const auto& hook = got[1];
  EXPECT_EQ(hook.headers.at("content-type"), "application/json");
  const std::string signature = hook.headers.count("tether-signature") ? hook.headers.at("tether-signature") : "";
  auto comma = signature.find(",v1=");
  ASSERT_TRUE(signature.starts_with("t=") && comma != std::string::npos) << signature;
  const std::string t = signature.substr(2, comma - 2);
  EXPECT_EQ(signature.substr(comma + 4), hmacHex("s3cret", t + "." + hook.body));
  EXPECT_NE(signature.substr(comma + 4), hmacHex("other", t + "." + hook.body));
  auto body = nlohmann::json::parse(hook.body, nullptr, false);
  EXPECT_EQ(body["event"], "result") << hook.body;
  EXPECT_EQ(body["id"], id);
  EXPECT_EQ(body["status"], "optimal") << hook.body;
  EXPECT_EQ(body["result"]["objective"], 309.0) << hook.body;
  EXPECT_FALSE(body.contains("requests")) << hook.body;
  EXPECT_TRUE(d->process().waitForLine("job=" + id + " webhook delivered to .* \\(200, try 2\\)", 2s))
      << d->process().output();
  d->expectNoErrorsLogged();
}

TEST_F(WebhookTest, CallbackTargetsNotAllowedOrMalformedGet422AtSubmit) {
  auto d = start();
  ASSERT_TRUE(d->started());
  for (std::string url : {"http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]/x", "http://10.1.2.3/x",
                          "http://192.168.0.1/x", "http://169.254.169.254/latest/meta-data"}) {
    auto r = submit(*d, url);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << url << ": " << r->body;
    EXPECT_EQ(r->json()["error"], "callback_refused") << url << ": " << r->body;
  }
  for (std::string url : {"not%20a%20url", "ftp://example.com/x", "http://exa%20mple.com/x", "http://%5B::1/x"}) {
    auto r = submit(*d, url);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << url << ": " << r->body;
    EXPECT_EQ(r->json()["error"], "invalid_callback") << url << ": " << r->body;
  }
  // The JSON form's "callback", and /v1/solve, are checked alike.
  nlohmann::json body{{"model", readFile(modelPath("knapsack.lp"))}, {"callback", "http://127.0.0.1/x"}};
  for (std::string path : {"/v1/jobs", "/v1/solve"}) {
    auto r = httpRequest(d->port(), "POST", path, body.dump(), {{"Content-Type", "application/json"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << path << ": " << r->body;
  }
  auto jobs = httpRequest(d->port(), "GET", "/v1/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_TRUE(jobs->json()["jobs"].empty()) << jobs->body;
}

TEST_F(WebhookTest, NameResolvingToLoopbackIsRefusedAtConnectTime) {
  // This host's own name: not "localhost", so the URL passes at submission, but it resolves to a
  // loopback address, which the connect-time check refuses.
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (::getaddrinfo(name, nullptr, &hints, &res) != 0 || res == nullptr) GTEST_SKIP() << name << " does not resolve";
  bool loopback = (ntohl(reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr) >> 24) == 127;
  ::freeaddrinfo(res);
  if (!loopback) GTEST_SKIP() << name << " does not resolve to a loopback address";
  Receiver receiver({});
  auto d = start();
  ASSERT_TRUE(d->started());
  auto r = submit(*d, "http://" + std::string(name) + ":" + std::to_string(receiver.port()) + "/hook");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  EXPECT_TRUE(d->process().waitForLine("job=" + id + " webhook to .* given up after 1 try: the address connected to is not allowed", 10s))
      << d->process().output();
  EXPECT_TRUE(receiver.received().empty());
}

TEST_F(WebhookTest, SigtermCancelsADetachedJobAndItsWebhookSaysShutdownBeforeTheExit) {
  Receiver receiver({});
  auto d = start("shutdown_timeout 300ms;\ncallback_allow 127.0.0.1;\n");
  ASSERT_TRUE(d->started());
  auto r = httpRequest(d->port(), "POST",
                       "/v1/jobs?solver=cbc&lease=1h&callback=http://127.0.0.1:" + std::to_string(receiver.port()) + "/h",
                       readFile(modelPath("market_split_hard.lp")), {{"Content-Type", "text/x-lp"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = r->json()["id"];
  ASSERT_TRUE(waitFor([&] { return d->job(id).value("state", std::string{}) == "running"; }, 5s));
  auto status = d->stop(20s);
  ASSERT_TRUE(status) << d->process().output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << d->process().output();
  // solverd waited for the webhook before it exited.
  auto got = receiver.received();
  ASSERT_EQ(got.size(), 1U) << d->process().output();
  auto body = nlohmann::json::parse(got[0].body, nullptr, false);
  EXPECT_EQ(body["status"], "interrupted") << got[0].body;
  EXPECT_EQ(body["cancel"]["reason"], "shutdown") << got[0].body;
  d->expectNoErrorsLogged();
}

}  // namespace
}  // namespace tether::test
