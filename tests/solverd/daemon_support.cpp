#include "daemon_support.hpp"

#include "tether/agent/control/frame.hpp"
#include "tether/agent/control/request_id.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

extern char** environ;

namespace tether::test {
namespace fs = std::filesystem;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string modelPath(const std::string& file) { return std::string(TETHER_SOURCE_DIR) + "/tests/solverd/models/" + file; }
std::string binPath(const std::string& name) { return std::string(TETHER_BIN_DIR) + "/" + name; }

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);  // polling with a deadline (tests only)
  }
}

// ---- Process

Process::Process(std::vector<std::string> argv, std::vector<std::string> env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
  for (auto& e : env) envs.push_back(e);
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data()) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  stderr_fd_ = fds[0];
  reader_ = std::thread([this] {
    std::string partial;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
      if (n <= 0) break;
      partial.append(buf, static_cast<size_t>(n));
      size_t pos;
      while ((pos = partial.find('\n')) != std::string::npos) {
        std::lock_guard lock(mutex_);
        lines_.push_back(partial.substr(0, pos));
        partial.erase(0, pos + 1);
        cv_.notify_all();
      }
    }
    std::lock_guard lock(mutex_);
    if (!partial.empty()) lines_.push_back(partial);
    cv_.notify_all();
  });
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
}

std::optional<std::string> Process::waitForLine(const std::string& pattern, std::chrono::milliseconds timeout,
                                                std::vector<std::string>* groups) {
  std::regex re(pattern);
  std::unique_lock lock(mutex_);
  size_t checked = 0;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      std::smatch m;
      if (std::regex_search(lines_[checked], m, re)) {
        if (groups != nullptr) {
          groups->clear();
          for (const auto& sub : m) groups->push_back(sub.str());
        }
        return lines_[checked];
      }
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && checked == lines_.size()) return std::nullopt;
  }
}

std::vector<std::string> Process::lines() {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::string Process::output() {
  std::string out;
  for (auto& l : lines()) out += l + "\n";
  return out;
}

void Process::signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  bool done = waitFor(
      [&] {
        pid_t r = waitpid(pid_, &status_, WNOHANG);
        return r == pid_;
      },
      timeout);
  if (!done) return std::nullopt;
  reaped_ = true;
  return status_;
}

// ---- cgroups and processes

std::optional<std::string> makeCgroupRoot(std::string* why) {
  static std::atomic<int> counter{0};
  for (std::string base : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    if (!fs::exists(base + "/cgroup.procs")) continue;
    std::string root = base + "/tether-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    if (::mkdir(root.c_str(), 0755) == 0) return root;
    if (why != nullptr) *why = "cannot create " + root + ": " + std::strerror(errno);
  }
  if (why != nullptr && why->empty()) *why = "no cgroup v2 hierarchy mounted";
  return std::nullopt;
}

std::vector<std::string> jobCgroups(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory() && entry.path().filename().string().starts_with("job-")) out.push_back(entry.path());
  }
  return out;
}

std::vector<pid_t> workerPids(const std::string& cgroup_root) {
  std::vector<pid_t> out;
  for (const auto& cg : jobCgroups(cgroup_root)) {
    std::istringstream in(readFile(cg + "/cgroup.procs"));
    pid_t pid;
    while (in >> pid) out.push_back(pid);
  }
  return out;
}

void expectNoLeftovers(const std::string& cgroup_root) {
  // A job cgroup is removed only once empty, so none left means no worker left either.
  bool clean = waitFor([&] { return jobCgroups(cgroup_root).empty(); }, 3s);
  EXPECT_TRUE(clean) << "left behind: " << workerPids(cgroup_root).size() << " worker process(es) in "
                     << jobCgroups(cgroup_root).size() << " job cgroup(s) under " << cgroup_root;
  for (const auto& cg : jobCgroups(cgroup_root)) {
    std::ofstream(cg + "/cgroup.kill") << "1";
  }
  waitFor([&] { return workerPids(cgroup_root).empty(); }, 2s);
  for (const auto& cg : jobCgroups(cgroup_root)) ::rmdir(cg.c_str());
  std::error_code ec;
  // The daemon's own sub-cgroups (if any) go first, then the root.
  for (auto& entry : fs::directory_iterator(cgroup_root, ec)) {
    if (entry.is_directory()) ::rmdir(entry.path().c_str());
  }
  ::rmdir(cgroup_root.c_str());
}

// ---- systemd notifications

NotifySocket::NotifySocket() {
  static std::atomic<int> counter{0};
  path_ = "/tmp/sdt-notify-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".sock";
  ::unlink(path_.c_str());
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
  bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
}

std::string NotifySocket::next(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
  char buf[4096];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
}

// ---- HTTP

static int connectTcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

static int connectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

HttpClient::HttpClient(uint16_t port) : fd_(connectTcp(port)) {}
HttpClient::HttpClient(const std::string& unix_path) : fd_(connectUnix(unix_path)) {}
HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void HttpClient::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

void HttpClient::send(const std::string& method, const std::string& target, const std::string& body,
                      std::vector<std::pair<std::string, std::string>> headers) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
  for (auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  size_t off = 0;
  while (off < req.size() && fd_ >= 0) {
    ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

bool HttpClient::fill(Clock::time_point deadline) {
  if (fd_ < 0) return false;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char buf[65536];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) return false;
  buf_.append(buf, static_cast<size_t>(n));
  return true;
}

std::optional<HttpResponse> HttpClient::head(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(deadline)) return std::nullopt;
  }
  HttpResponse r;
  std::istringstream in(buf_.substr(0, end));
  std::string status_line;
  std::getline(in, status_line);
  if (status_line.size() < 12) return std::nullopt;
  r.status = std::stoi(status_line.substr(9, 3));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  buf_.erase(0, end + 4);
  chunked_ = r.headers.count("transfer-encoding") != 0 && r.headers["transfer-encoding"] == "chunked";
  return r;
}

// Moves complete chunks from buf_ to payload_; false at the last chunk or on timeout.
bool HttpClient::readChunkedPayload(Clock::time_point deadline) {
  for (;;) {
    size_t eol = buf_.find("\r\n");
    if (eol != std::string::npos) {
      size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
      if (size == 0) return false;
      if (buf_.size() >= eol + 2 + size + 2) {
        payload_.append(buf_, eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        return true;
      }
    }
    if (!fill(deadline)) return false;
  }
}

std::optional<HttpResponse> HttpClient::response(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  auto r = head(timeout);
  if (!r) return std::nullopt;
  if (chunked_) {
    while (readChunkedPayload(deadline)) {
    }
    r->body = std::move(payload_);
    payload_.clear();
    return r;
  }
  size_t length = r->headers.count("content-length") ? std::stoul(r->headers["content-length"]) : 0;
  while (buf_.size() < length) {
    if (!fill(deadline)) return std::nullopt;
  }
  r->body = buf_.substr(0, length);
  buf_.erase(0, length);
  return r;
}

std::optional<nlohmann::json> HttpClient::nextEvent(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t nl = payload_.find('\n');
    if (nl != std::string::npos) {
      auto j = nlohmann::json::parse(payload_.substr(0, nl), nullptr, false);
      payload_.erase(0, nl + 1);
      return j;
    }
    if (!readChunkedPayload(deadline)) return std::nullopt;
  }
}

namespace {

// Reads with `next(time left)` until `wanted` holds for what it returns, up to `timeout`.
template <typename Next, typename Wanted>
auto readUntil(std::chrono::milliseconds timeout, Next next, Wanted wanted) -> decltype(next(timeout)) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = next(left);
    if (!e || wanted(*e)) return e;
  }
}

}  // namespace

std::optional<nlohmann::json> HttpClient::eventNamed(const std::string& name, std::chrono::milliseconds timeout) {
  return readUntil(
      timeout, [this](std::chrono::milliseconds left) { return nextEvent(left); },
      [&name](const nlohmann::json& e) { return e.value("event", std::string{}) == name; });
}

std::optional<HttpClient::SseEvent> HttpClient::nextSse(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t end = payload_.find("\n\n");
    if (end != std::string::npos) {
      SseEvent e;
      std::istringstream in(payload_.substr(0, end));
      payload_.erase(0, end + 2);
      std::string line;
      while (std::getline(in, line)) {
        if (line.starts_with(":")) {
          e.comment = line.substr(1);
          continue;
        }
        auto colon = line.find(':');
        std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.erase(0, 1);
        if (field == "id") e.id = value;
        if (field == "event") e.event = value;
        if (field == "data") e.data += (e.data.empty() ? "" : "\n") + value;
      }
      return e;
    }
    if (!readChunkedPayload(deadline)) return std::nullopt;
  }
}

std::optional<HttpClient::SseEvent> HttpClient::sseNamed(const std::string& name, std::chrono::milliseconds timeout) {
  return readUntil(
      timeout, [this](std::chrono::milliseconds left) { return nextSse(left); },
      [&name](const SseEvent& e) { return e.event == name; });
}

bool HttpClient::sseHeartbeat(std::chrono::milliseconds timeout) {
  return readUntil(
             timeout, [this](std::chrono::milliseconds left) { return nextSse(left); },
             [](const SseEvent& e) { return e.comment == " heartbeat"; })
      .has_value();
}

void HttpClient::watchSse(const std::string& id, std::optional<uint64_t> last_event_id) {
  std::vector<std::pair<std::string, std::string>> headers{{"Accept", "text/event-stream"}};
  if (last_event_id) headers.emplace_back("Last-Event-ID", std::to_string(*last_event_id));
  send("GET", "/v1/jobs/" + id + "/events", {}, std::move(headers));
}

std::optional<HttpClient::SseEvent> HttpClient::watchSseAccepted(const std::string& id) {
  watchSse(id);
  auto head = this->head(5s);
  if (!head) {
    ADD_FAILURE() << "no response head for the events of " << id;
    return std::nullopt;
  }
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-type"], "text/event-stream");
  auto accepted = nextSse(5s);
  if (!accepted) {
    ADD_FAILURE() << "no first event for " << id;
    return std::nullopt;
  }
  EXPECT_EQ(accepted->event, "accepted");
  return accepted;
}

std::optional<HttpResponse> httpRequest(uint16_t port, const std::string& method, const std::string& target,
                                        const std::string& body,
                                        std::vector<std::pair<std::string, std::string>> headers,
                                        std::chrono::milliseconds timeout) {
  HttpClient c(port);
  if (!c.connected()) return std::nullopt;
  c.send(method, target, body, std::move(headers));
  return c.response(timeout);
}

// ---- control

std::string newId() { return agent::control::newRequestId(); }

IgnoringWorkerScript::IgnoringWorkerScript() {
  char tmpl[] = "/tmp/sdt-ignoring-XXXXXX";
  int fd = ::mkstemp(tmpl);
  path_ = tmpl;
  const std::string script = "#!/bin/sh\ntrap '' INT TERM\nexec sleep 60\n";
  if (fd >= 0) {
    EXPECT_EQ(::write(fd, script.data(), script.size()), static_cast<ssize_t>(script.size()));
    ::fchmod(fd, 0755);
    ::close(fd);
  }
}

IgnoringWorkerScript::~IgnoringWorkerScript() { ::unlink(path_.c_str()); }

double receivedToKilledMs(const nlohmann::json& job) {
  if (!job.is_object() || !job.contains("cancel")) return -1;
  const auto& c = job["cancel"];
  const auto received = c.value("received_ns", uint64_t{0});
  const auto killed = c.value("killed_ns", uint64_t{0});
  if (received == 0 || killed == 0) return -1;
  return static_cast<double>(killed - received) / 1e6;
}

nlohmann::json cancelFrame(const std::string& id, const std::string& action, uint32_t grace_ms) {
  return {{"type", "cancel"}, {"id", id}, {"action", action}, {"grace_ms", grace_ms}, {"reason", "client_disconnect"},
          {"phase", "awaiting_response"}};
}

std::optional<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& frame) {
  int fd = connectUnix(path);
  if (fd < 0) return std::nullopt;
  std::string bytes = agent::control::encodeFrame(frame);
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  agent::control::FrameDecoder decoder;
  auto deadline = Clock::now() + 5s;
  std::optional<nlohmann::json> reply;
  while (!reply && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
    nlohmann::json out;
    agent::control::ProtocolError error;
    if (decoder.next(out, error) == agent::control::FrameDecoder::Result::Frame) reply = out;
  }
  ::close(fd);
  return reply;
}

nlohmann::json modelIndex() {
  return nlohmann::json::parse(readFile(modelPath("models.json")), nullptr, false);
}

// ---- Solverd

Solverd::Solverd(const std::string& cgroup_root, Options options) {
  char tmpl[] = "/tmp/sdt-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  config_path_ = dir_ + "/solverd.conf";
  control_path_ = dir_ + "/control.sock";
  std::string conf;
  if (options.extra_config.find("error_log") == std::string::npos) conf += "error_log stderr info;\n";
  conf += "listen 127.0.0.1:0;\n";
  if (options.unix_api) {
    api_unix_path_ = dir_ + "/api.sock";
    conf += "listen unix:" + api_unix_path_ + ";\n";
  }
  conf += "control { listen unix:" + control_path_ + "; }\n";
  conf += "cgroup_root " + cgroup_root + ";\n";
  conf += "worker_path " + (options.worker_path.empty() ? binPath("solverd-worker") : options.worker_path) + ";\n";
  // Short drains by default, so that a test's end never waits long; a test may set its own.
  if (options.extra_config.find("shutdown_timeout") == std::string::npos) conf += "shutdown_timeout 2s;\n";
  if (options.extra_config.find("kill_after") == std::string::npos) conf += "kill_after 500ms;\n";
  // No warm workers unless a test asks: most tests count the worker processes and cgroups of
  // their jobs, and a spare would be one more (spare_worker_test runs the default and others).
  if (options.extra_config.find("spare_workers") == std::string::npos) conf += "spare_workers 0;\n";
  conf += options.extra_config;
  std::ofstream(config_path_) << conf;
  process_ = std::make_unique<Process>(std::vector<std::string>{binPath("solverd"), "-c", config_path_},
                                       options.env);
  std::vector<std::string> m;
  // A configuration or start-up error ends the wait at once.
  if (process_->waitForLine(R"(listening on 127\.0\.0\.1:(\d+)|\[emerg\]|\[critical\])", 10s, &m) && !m[1].empty()) {
    port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (port_ != 0) process_->waitForLine("ready:", 10s);
}

Solverd::~Solverd() {
  if (process_ && !process_->wait(0ms)) {
    process_->signal(SIGTERM);
    if (!process_->wait(10s)) process_->signal(SIGKILL);
  }
  process_.reset();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

nlohmann::json Solverd::job(const std::string& id) {
  auto r = httpRequest(port_, "GET", "/v1/jobs/" + agent::control::percentEncodeId(id));
  if (!r || r->status != 200) return nullptr;
  return r->json();
}

std::optional<nlohmann::json> Solverd::waitFinished(const std::string& id, std::chrono::milliseconds timeout) {
  nlohmann::json last;
  bool ok = waitFor(
      [&] {
        last = job(id);
        return last.is_object() && last.value("state", std::string{}) == "finished";
      },
      timeout);
  if (!ok) return std::nullopt;
  return last;
}

std::string Solverd::metrics() {
  auto r = httpRequest(port_, "GET", "/metrics");
  return r ? r->body : std::string{};
}

std::optional<int> Solverd::stop(std::chrono::milliseconds timeout) {
  process_->signal(SIGTERM);
  return process_->wait(timeout);
}

void Solverd::expectNoErrorsLogged() {
  for (auto& line : process_->lines()) {
    EXPECT_EQ(line.find("[error]"), std::string::npos) << line;
    EXPECT_EQ(line.find("[critical]"), std::string::npos) << line;
  }
}

// ---- fixture

void DaemonTest::SetUp() {
  if (!fs::exists(binPath("solverd")) || !fs::exists(binPath("solverd-worker"))) {
    GTEST_SKIP() << "solverd or solverd-worker not built in " << TETHER_BIN_DIR;
  }
  std::string why;
  auto root = makeCgroupRoot(&why);
  if (!root) GTEST_SKIP() << "no writable cgroup v2: " << why;
  cgroup_root_ = *root;
}

void DaemonTest::TearDown() {
  if (!cgroup_root_.empty()) expectNoLeftovers(cgroup_root_);
}

}  // namespace tether::test
