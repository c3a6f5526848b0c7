#include "support.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tether::hostile {
namespace fs = std::filesystem;
using tether::test::binPath;
using tether::test::readFile;
using tether::test::waitFor;

int fdCount(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

long vmRssKb(pid_t pid) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

long raiseFdLimit(long want) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  rlim_t target = static_cast<rlim_t>(want);
  if (target > r.rlim_max) {
    // Root may raise the hard limit too (up to fs.nr_open); others stop at their hard limit.
    rlimit raised{target, target};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return want;
    target = r.rlim_max;
  }
  if (target > r.rlim_cur) {
    r.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ::getrlimit(RLIMIT_NOFILE, &r);
  return static_cast<long>(r.rlim_cur);
}

double metricSum(const std::string& exposition, const std::string& name, const std::vector<std::string>& label_parts) {
  double sum = 0;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || !line.starts_with(name)) continue;
    char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another metric whose name starts with `name`
    bool match = true;
    for (const auto& part : label_parts) match = match && line.find(part) != std::string::npos;
    if (!match) continue;
    auto space = line.rfind(' ');
    if (space != std::string::npos) sum += std::strtod(line.c_str() + space + 1, nullptr);
  }
  return sum;
}

// ---- ExitWatch

ExitWatch::ExitWatch(pid_t pid) { fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

ExitWatch::~ExitWatch() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<Clock::time_point> ExitWatch::wait(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return Clock::now();
    if (r == 0) return std::nullopt;
    if (errno != EINTR) return std::nullopt;
  }
}

bool ExitWatch::exited() {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// ---- SolverHost

SolverHost::SolverHost(std::string cgroup_root, HostOptions options)
    : cgroup_root_(std::move(cgroup_root)), options_(std::move(options)) {
  char tmpl[] = "/tmp/hst-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  api_path_ = dir_ + "/api.sock";
  control_path_ = dir_ + "/control.sock";
  admin_path_ = dir_ + "/admin.sock";
  solverd_conf_ = dir_ + "/solverd.conf";
  proxy_conf_ = dir_ + "/proxy.conf";

  // solverd has no TCP listener: its unix sockets reach across network namespaces, so the test
  // (in the root namespace) inspects it the same way wherever it runs.
  std::string s = "error_log stderr info;\nlisten unix:" + api_path_ + ";\n";
  s += "control { listen unix:" + control_path_ + "; }\n";
  s += "cgroup_root " + cgroup_root_ + ";\nworker_path " +
       (options_.worker_path.empty() ? binPath("solverd-worker") : options_.worker_path) + ";\n";
  s += "workers " + std::to_string(options_.workers) + ";\nqueue_size " + std::to_string(options_.queue_size) + ";\n";
  // No warm workers unless a case asks: the cases count solverd's fds and its job cgroups, and
  // expect none once their jobs are done (spare_worker_test covers spares).
  if (options_.solverd_extra.find("spare_workers") == std::string::npos) s += "spare_workers 0;\n";
  s += "shutdown_timeout 2s;\n" + options_.solverd_extra;
  std::ofstream(solverd_conf_) << s;

  std::string p = "error_log stderr info;\nshutdown_timeout 2s;\n" + options_.proxy_main_extra;
  p += "admin { listen unix:" + admin_path_ + "; }\n";
  p += "upstream solverd {\n  server unix:" + api_path_ + ";\n  keepalive 64;\n  control unix:" +
       (options_.proxy_control.empty() ? control_path_ : options_.proxy_control) + ";\n}\n";
  p += "server {\n  listen " + options_.proxy_listen + ";\n";
  p += std::string("  access_log ") + (options_.access_log ? "stderr" : "off") + ";\n";
  p += "  client_max_body_size 64m;\n" + options_.proxy_server_extra;
  p += "  location /v1/solve {\n    proxy_pass http://solverd;\n    on_disconnect " + options_.on_disconnect +
       ";\n    kill_after 1s;\n  }\n";
  p += "  location = /health { proxy_pass http://solverd; on_disconnect none; }\n}\n";
  std::ofstream(proxy_conf_) << p;
}

SolverHost::~SolverHost() {
  stopProxy(5s);
  stopSolverd(10s);
  proxy_.reset();
  solverd_.reset();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::vector<std::string> SolverHost::prefix() const {
  if (options_.netns.empty()) return {};
  // `ip netns exec` execs the command in place (no fork), so the pid we hold is the daemon's.
  return {"/usr/sbin/ip", "netns", "exec", options_.netns};
}

bool SolverHost::startSolverd() {
  auto argv = prefix();
  for (std::string a : {binPath("solverd"), std::string("-c"), solverd_conf_}) argv.push_back(a);
  solverd_ = std::make_unique<Process>(argv);
  return solverd_->waitForLine("listening on unix:" + control_path_, 10s).has_value();
}

bool SolverHost::startProxy() {
  auto argv = prefix();
  for (std::string a : {binPath("tether-proxy"), std::string("-c"), proxy_conf_}) argv.push_back(a);
  proxy_ = std::make_unique<Process>(argv);
  proxy_port_ = 0;
  std::vector<std::string> m;
  // The admin listener is a unix socket, so the only TCP listener is the public one.
  if (!proxy_->waitForLine(R"(listening on [0-9.]+:(\d+))", 10s, &m)) return false;
  proxy_port_ = static_cast<uint16_t>(std::stoi(m[1]));
  return proxy_->waitForLine("listening on unix:" + admin_path_, 5s).has_value();
}

void SolverHost::killSolverd() {
  if (!solverd_) return;
  solverd_->signal(SIGKILL);
  solverd_->wait(10s);
}

void SolverHost::killProxy() {
  if (!proxy_) return;
  proxy_->signal(SIGKILL);
  proxy_->wait(10s);
}

std::optional<int> SolverHost::stopSolverd(std::chrono::milliseconds timeout) {
  if (!solverd_) return std::nullopt;
  if (auto done = solverd_->wait(0ms)) return done;
  solverd_->signal(SIGTERM);
  return solverd_->wait(timeout);
}

std::optional<int> SolverHost::stopProxy(std::chrono::milliseconds timeout) {
  if (!proxy_) return std::nullopt;
  if (auto done = proxy_->wait(0ms)) return done;
  proxy_->signal(SIGTERM);
  return proxy_->wait(timeout);
}

std::optional<HttpResponse> SolverHost::solverdGet(const std::string& target) {
  HttpClient c(api_path_);
  if (!c.connected()) return std::nullopt;
  c.send("GET", target);
  return c.response(10s);
}

std::optional<HttpResponse> SolverHost::proxyAdminGet(const std::string& target) {
  HttpClient c(admin_path_);
  if (!c.connected()) return std::nullopt;
  c.send("GET", target);
  return c.response(10s);
}

std::string SolverHost::solverdMetrics() {
  auto r = solverdGet("/metrics");
  return r ? r->body : std::string{};
}

std::string SolverHost::proxyMetrics() {
  auto r = proxyAdminGet("/metrics");
  return r ? r->body : std::string{};
}

nlohmann::json SolverHost::job(const std::string& id) {
  auto r = solverdGet("/v1/jobs/" + id);
  if (!r || r->status != 200) return nullptr;
  return r->json();
}

double SolverHost::liveJobs() {
  auto m = solverdMetrics();
  if (m.empty()) return -1;
  return metricSum(m, "solverd_jobs_queued") + metricSum(m, "solverd_jobs_running");
}

bool SolverHost::healthy() {
  auto own = solverdGet("/health");
  if (!own || own->status != 200) return false;
  if (options_.netns.empty()) {
    auto through = tether::test::httpRequest(proxy_port_, "GET", "/health", {}, {}, 10s);
    if (!through || through->status != 200) return false;
  }
  auto admin = proxyAdminGet("/health");
  return admin && admin->status == 200;
}

int SolverHost::fdBalance() {
  if (!proxy_ || !solverd_) return 0;
  return fdCount(proxy_->pid()) - fdCount(solverd_->pid());
}

std::string SolverHost::tail(size_t n) {
  std::string out;
  for (Process* p : {solverd_.get(), proxy_.get()}) {
    if (p == nullptr) continue;
    auto lines = p->lines();
    for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  }
  return out;
}

std::vector<std::string> SolverHost::errorLines() {
  std::vector<std::string> out;
  for (Process* p : {solverd_.get(), proxy_.get()}) {
    if (p == nullptr) continue;
    for (auto& l : p->lines()) {
      if (l.find("[error]") != std::string::npos || l.find("[critical]") != std::string::npos) out.push_back(l);
    }
  }
  return out;
}

bool sendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string streamedSolveRequest(const std::string& model_file) {
  std::string body = readFile(tether::test::modelPath(model_file));
  return "POST /v1/solve?solver=cbc HTTP/1.1\r\nHost: solver\r\nContent-Type: text/x-lp\r\n"
         "Accept: application/x-ndjson\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string startStreamedSolve(HttpClient& client, const std::string& model_file, std::chrono::milliseconds timeout) {
  client.send("POST", "/v1/solve?solver=cbc", readFile(tether::test::modelPath(model_file)),
              {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}});
  auto head = client.head(timeout);
  if (!head || head->status != 200) return {};
  if (!client.eventNamed("accepted", timeout)) return {};
  return head->headers["x-request-id"];
}

// ---- Netns

int shell(const std::string& command, std::string* output) {
  std::string out;
  FILE* f = ::popen((command + " 2>&1").c_str(), "r");
  if (f == nullptr) return -1;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  if (output != nullptr) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Netns::Netns(std::string name, const std::string& outer_addr, const std::string& inner_addr) : name_(std::move(name)) {
  std::string out;
  if (shell("ip netns add " + name_, &out) != 0) {
    error_ = "ip netns add " + name_ + ": " + out;
    name_.clear();
    return;
  }
  // veth names are at most 15 bytes; the namespace name is short and unique per test process.
  std::string outer = name_ + "o", inner = name_ + "i";
  std::string script = "set -e; ip link add " + outer + " type veth peer name " + inner + " netns " + name_ +
                       "; ip addr add " + outer_addr + "/30 dev " + outer + "; ip link set " + outer + " up" +
                       "; ip -n " + name_ + " addr add " + inner_addr + "/30 dev " + inner + "; ip -n " + name_ +
                       " link set " + inner + " up; ip -n " + name_ + " link set lo up";
  if (shell(script, &out) != 0) {
    error_ = "veth set-up: " + out;
    return;
  }
  ok_ = true;
}

Netns::~Netns() {
  if (name_.empty()) return;
  // Deleting the veth is synchronous, while a namespace's devices go asynchronously after
  // `ip netns del`: without this, a next test reusing the names could find them still there.
  shell("ip link del " + name_ + "o");
  shell("ip netns del " + name_);
}

// ---- Nginx

Nginx::Nginx(const std::vector<std::string>& upstream_servers) {
  char tmpl[] = "/tmp/hng-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  socket_path_ = dir_ + "/nginx.sock";
  ::chmod(dir_.c_str(), 0755);  // nginx's workers run as nobody and reach their temp dirs here
  // nginx's defaults otherwise: round robin, proxy_http_version 1.0, buffering on,
  // proxy_ignore_client_abort off (it closes the upstream connection when its client leaves).
  std::string c = "daemon off;\nworker_processes 1;\npid " + dir_ + "/nginx.pid;\nerror_log stderr notice;\n";
  c += "events { worker_connections 1024; }\nhttp {\n  access_log " + dir_ + "/access.log;\n";
  for (std::string t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    c += "  " + t + "_temp_path " + dir_ + "/" + t + ";\n";
  }
  c += "  upstream hosts {\n";
  for (const auto& s : upstream_servers) c += "    server " + s + ";\n";
  c += "  }\n  server {\n    listen unix:" + socket_path_ + ";\n    location / { proxy_pass http://hosts; }\n  }\n}\n";
  std::ofstream(dir_ + "/nginx.conf") << c;
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/sbin/nginx", "-p", dir_, "-c", dir_ + "/nginx.conf", "-e", "stderr"});
  // Ready once a connection is accepted: nginx binds the socket file before it listens on it, and
  // a client in between (a loaded machine) is refused.
  auto accepting = [this] { return fs::exists(socket_path_) && HttpClient(socket_path_).connected(); };
  started_ = waitFor([&] { return accepting() || process_->wait(0ms).has_value(); }, 10s) && accepting();
}

Nginx::~Nginx() {
  if (process_) {
    process_->signal(SIGQUIT);  // graceful: the master stops its workers and exits
    if (!process_->wait(5s)) process_->signal(SIGKILL);
    process_.reset();
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

// ---- fixture

void HostileTest::SetUp() {
  for (std::string b : {"solverd", "solverd-worker", "tether-proxy"}) {
    if (!fs::exists(binPath(b))) GTEST_SKIP() << b << " is not built in " << TETHER_BIN_DIR;
  }
  std::string why;
  auto root = tether::test::makeCgroupRoot(&why);
  if (!root) GTEST_SKIP() << "no writable cgroup v2: " << why;
  cgroup_root_ = *root;
}

void HostileTest::TearDown() {
  if (!cgroup_root_.empty()) tether::test::expectNoLeftovers(cgroup_root_);
  for (const auto& root : extra_roots_) tether::test::expectNoLeftovers(root);
}

std::string HostileTest::extraCgroupRoot() {
  auto root = tether::test::makeCgroupRoot(nullptr);
  if (!root) return {};
  extra_roots_.push_back(*root);
  return *root;
}

}  // namespace tether::hostile
