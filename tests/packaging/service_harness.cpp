#include "service_harness.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace tether::service_test {
namespace {

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on `fd` until the deadline; true when ready.
bool waitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, remainingMs(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string uniqueToken() {
  std::random_device rd;
  std::ostringstream out;
  out << std::hex << rd() << rd();
  return out.str();
}

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw std::runtime_error("unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

void makePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
}

// Parses one HTTP response out of `buf` if it is complete. `eof`: the peer closed, so a body
// without length ends here.
std::optional<HttpResponse> parseResponse(const std::string& buf, bool eof) {
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return std::nullopt;
  HttpResponse r;
  std::istringstream head(buf.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) return std::nullopt;
  r.status = std::atoi(line.c_str() + 9);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    r.headers[lower(line.substr(0, colon))] = value;
  }
  size_t body_start = head_end + 4;
  if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
    size_t len = std::stoul(it->second);
    if (buf.size() < body_start + len) return std::nullopt;
    r.body = buf.substr(body_start, len);
    return r;
  }
  if (lower(r.header("transfer-encoding")).find("chunked") != std::string::npos) {
    size_t pos = body_start;
    for (;;) {
      size_t eol = buf.find("\r\n", pos);
      if (eol == std::string::npos) return std::nullopt;
      size_t size = std::stoul(buf.substr(pos, eol - pos), nullptr, 16);
      if (size == 0) {
        // "0\r\n" then the empty line that ends the (absent) trailers.
        if (buf.size() < eol + 4) return std::nullopt;
        return r;
      }
      if (buf.size() < eol + 2 + size + 2) return std::nullopt;
      r.body += buf.substr(eol + 2, size);
      pos = eol + 2 + size + 2;
    }
  }
  if (r.status == 204 || r.status == 304) return r;
  if (!eof) return std::nullopt;
  r.body = buf.substr(body_start);
  return r;
}

}  // namespace

void Fd::reset() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/tsl-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string target = file(name);
  std::string tmp = target + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(tmp, target);
  return target;
}

NotifyListener::NotifyListener(std::string path) : path_(std::move(path)) {
  fd_ = Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr = unixAddress(path_);
  if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("cannot bind notify socket " + path_ + ": " + std::strerror(errno));
  }
}

void NotifyListener::drain(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  bool got = false;
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n >= 0) {
      messages_.emplace_back(buf, static_cast<size_t>(n));
      got = true;
      continue;
    }
    if (errno == EINTR) continue;
    // Queue empty: return what arrived, or wait (once) for the next datagram.
    if (got || timeout.count() == 0) return;
    if (!waitFd(fd_.get(), POLLIN, deadline)) return;
    got = true;
  }
}

std::optional<std::string> NotifyListener::waitFor(const std::string& needle, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    while (scanned_ < messages_.size()) {
      const std::string& m = messages_[scanned_++];
      if (m.find(needle) != std::string::npos) return m;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    drain(milliseconds(remainingMs(deadline)));
  }
}

std::vector<std::string> NotifyListener::all() {
  drain(milliseconds(0));
  return messages_;
}

int NotifyListener::count(const std::string& needle) {
  drain(milliseconds(0));
  return static_cast<int>(std::count_if(messages_.begin(), messages_.end(),
                                        [&](const std::string& m) { return m.find(needle) != std::string::npos; }));
}

Daemon::Daemon(SpawnOptions options) : marker_(uniqueToken()), stderr_path_(options.stderr_path) {
  // Everything the child needs is prepared here: after fork only async-signal-safe calls.
  std::vector<std::string> env_strings;
  auto overridden = [&](const std::string& name) {
    if (name.rfind("LISTEN_", 0) == 0 || name == "NOTIFY_SOCKET" || name.rfind("WATCHDOG_", 0) == 0) return true;
    return std::any_of(options.env.begin(), options.env.end(), [&](const auto& kv) { return kv.first == name; });
  };
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (!overridden(entry.substr(0, entry.find('=')))) env_strings.push_back(entry);
  }
  for (const auto& [name, value] : options.env) env_strings.push_back(name + "=" + value);
  env_strings.push_back("TETHER_SERVICE_TEST=" + marker_);
  std::string names;
  for (const auto& passed : options.listen_fds) names += (names.empty() ? "" : ":") + passed.name;
  if (!options.listen_fds.empty()) {
    env_strings.push_back("LISTEN_FDS=" + std::to_string(options.listen_fds.size()));
    env_strings.push_back("LISTEN_FDNAMES=" + names);
  }
  char listen_pid[32] = "LISTEN_PID=";
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  if (!options.listen_fds.empty()) envp.push_back(listen_pid);
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<int> passed_fds;
  for (const auto& passed : options.listen_fds) passed_fds.push_back(passed.fd);

  int log_fd = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open the daemon's log " + stderr_path_);

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Passed fds go to 3, 4, ... as sd_listen_fds(3) expects; first out of the way of that range.
    std::vector<int> moved;
    for (int fd : passed_fds) moved.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
    for (size_t i = 0; i < moved.size(); ++i) ::dup2(moved[i], 3 + static_cast<int>(i));
    if (!moved.empty()) {
      // LISTEN_PID must name the process that execs: the child itself.
      char digits[16];
      int n = 0;
      for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
      char* out = listen_pid + std::strlen("LISTEN_PID=");
      while (n > 0) *out++ = digits[--n];
      *out = '\0';
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  pidfd_ = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
}

Daemon::~Daemon() {
  if (!status_) {
    ::kill(pid_, SIGKILL);
    waitExit(milliseconds(10000));
  }
  for (pid_t p : markedProcesses()) ::kill(p, SIGKILL);
}

void Daemon::signal(int signum) const {
  if (!status_) ::kill(pid_, signum);
}

std::optional<int> Daemon::waitExit(milliseconds timeout) {
  if (status_) return status_;
  if (!waitFd(pidfd_.get(), POLLIN, Clock::now() + timeout)) return std::nullopt;
  int st = 0;
  if (::waitpid(pid_, &st, 0) == pid_) status_ = st;
  return status_;
}

std::string Daemon::log() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool Daemon::waitForLog(const std::string& needle, milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (log().find(needle) != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));  // polling a condition with a deadline
  }
}

std::optional<std::string> Daemon::listeningAddress(size_t index, milliseconds timeout) const {
  static const std::string kNeedle = "listening on ";
  auto deadline = Clock::now() + timeout;
  for (;;) {
    std::string text = log();
    size_t pos = 0;
    size_t seen = 0;
    while ((pos = text.find(kNeedle, pos)) != std::string::npos) {
      pos += kNeedle.size();
      size_t end = text.find_first_of(" \t\r\n", pos);
      if (end == std::string::npos) break;  // the line is still being written
      if (seen++ == index) return text.substr(pos, end - pos);
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

std::vector<pid_t> Daemon::markedProcesses() const {
  std::vector<pid_t> found;
  const std::string needle = "TETHER_SERVICE_TEST=" + marker_;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream environ_file(std::string("/proc/") + entry->d_name + "/environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(environ_file)), std::istreambuf_iterator<char>());
    size_t at = env.find(needle);
    if (at != std::string::npos && (at + needle.size() == env.size() || env[at + needle.size()] == '\0')) {
      found.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(proc);
  return found;
}

std::vector<pid_t> Daemon::waitNoProcessLeft(milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = markedProcesses();
    if (left.empty() || Clock::now() >= deadline) return left;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

std::optional<Endpoint> Endpoint::parse(const std::string& text) {
  Endpoint e;
  if (text.rfind("unix:", 0) == 0) {
    e.unix_path = text.substr(5);
    return e;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  e.host = text.substr(0, colon);
  if (e.host.size() >= 2 && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty() || e.host == "0.0.0.0") e.host = "127.0.0.1";
  if (e.host == "::") e.host = "::1";
  e.port = static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1));
  return e;
}

Fd connectTo(const Endpoint& endpoint, int* error) {
  Fd fd;
  int rc = -1;
  if (!endpoint.unix_path.empty()) {
    fd = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = unixAddress(endpoint.unix_path);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } else if (endpoint.host.find(':') != std::string::npos) {
    fd = Fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(endpoint.port);
    ::inet_pton(AF_INET6, endpoint.host.c_str(), &addr.sin6_addr);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } else {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(endpoint.port);
    ::inet_pton(AF_INET, endpoint.host.c_str(), &addr.sin_addr);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }
  if (rc != 0) {
    if (error != nullptr) *error = errno;
    return Fd();
  }
  if (error != nullptr) *error = 0;
  return fd;
}

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string buildRequest(const std::string& method, const std::string& target, const std::string& body,
                         const std::vector<std::string>& headers, bool close) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: tether.test\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) req += "Connection: close\r\n";
  return req + "\r\n" + body;
}

std::optional<HttpResponse> exchange(int fd, const std::string& request, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  if (!request.empty() && !writeAll(fd, request)) return std::nullopt;
  std::string buf;
  char chunk[16384];
  for (;;) {
    if (auto r = parseResponse(buf, false)) return r;
    if (!waitFd(fd, POLLIN, deadline)) return std::nullopt;
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return parseResponse(buf, true);
    buf.append(chunk, static_cast<size_t>(n));
  }
}

bool readUntil(int fd, std::string& buf, const std::string& needle, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char chunk[16384];
  while (buf.find(needle) == std::string::npos) {
    if (!waitFd(fd, POLLIN, deadline)) return false;
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

std::optional<HttpResponse> httpRequest(const Endpoint& endpoint, const std::string& method,
                                        const std::string& target, const std::string& body,
                                        const std::vector<std::string>& headers, milliseconds timeout) {
  Fd fd = connectTo(endpoint);
  if (!fd) return std::nullopt;
  return exchange(fd.get(), buildRequest(method, target, body, headers, true), timeout);
}

TestUpstream::TestUpstream() {
  listen_fd_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_.get(), 128) != 0 ||
      ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("test upstream: cannot listen");
  }
  port_ = ntohs(addr.sin_port);
  makePipe(wake_read_, wake_write_);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

TestUpstream::~TestUpstream() {
  stopping_ = true;
  release();
  (void)!::write(wake_write_.get(), "x", 1);
  acceptor_.join();
  for (auto& t : workers_) t.join();
}

void TestUpstream::holdPrefix(const std::string& prefix) {
  std::lock_guard lock(mutex_);
  held_prefixes_.push_back(prefix);
  released_ = false;
}

void TestUpstream::release() {
  {
    std::lock_guard lock(mutex_);
    released_ = true;
  }
  cv_.notify_all();
}

bool TestUpstream::waitReceived(int n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (received_.load() < n) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

void TestUpstream::acceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) continue;
    if (p[1].revents != 0) break;
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    workers_.emplace_back([this, fd] { serve(Fd(fd)); });
  }
}

void TestUpstream::serve(Fd fd) {
  std::string buf;
  char chunk[16384];
  for (;;) {
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      pollfd p{fd.get(), POLLIN, 0};
      int rc = ::poll(&p, 1, 50);
      if (stopping_) return;
      if (rc <= 0) continue;
      ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
    std::string head = lower(buf.substr(0, head_end));
    size_t body_len = 0;
    if (size_t cl = head.find("\ncontent-length:"); cl != std::string::npos) {
      body_len = std::stoul(head.substr(cl + 16));
    }
    while (buf.size() < head_end + 4 + body_len) {
      ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
    std::string request_line = buf.substr(0, buf.find("\r\n"));
    buf.erase(0, head_end + 4 + body_len);
    std::string method = request_line.substr(0, request_line.find(' '));
    std::string path = request_line.substr(method.size() + 1);
    path = path.substr(0, path.find(' '));
    received_++;

    bool held;
    {
      std::lock_guard lock(mutex_);
      held = std::any_of(held_prefixes_.begin(), held_prefixes_.end(),
                         [&](const std::string& prefix) { return path.rfind(prefix, 0) == 0; });
    }
    while (held) {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, milliseconds(5), [this] { return released_ || stopping_.load(); })) break;
      lock.unlock();
      // The proxy closing the upstream connection of a held request is what a cancel looks like
      // from here.
      pollfd p{fd.get(), POLLIN | POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0) {
        char peek;
        if (::recv(fd.get(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
          abandoned_++;
          return;
        }
      }
    }
    if (stopping_) return;
    std::string body = method + " " + path;
    std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
    if (!writeAll(fd.get(), response)) return;
  }
}

TestControlServer::TestControlServer(std::string path) : path_(std::move(path)) {
  listen_fd_ = listenUnix(path_);
  makePipe(wake_read_, wake_write_);
  thread_ = std::thread([this] { loop(); });
}

TestControlServer::~TestControlServer() {
  (void)!::write(wake_write_.get(), "x", 1);
  thread_.join();
}

std::optional<std::string> TestControlServer::waitFor(const std::string& needle, milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::optional<std::string> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& m : messages_) {
      if (m.find(needle) != std::string::npos) {
        found = m;
        return true;
      }
    }
    return false;
  });
  return found;
}

void TestControlServer::loop() {
  struct Peer {
    Fd fd;
    std::string buf;
  };
  std::vector<Peer> peers;
  auto reply = [](int fd, const nlohmann::json& message) { writeAll(fd, encodeFrame(message.dump())); };
  for (;;) {
    std::vector<pollfd> fds = {{wake_read_.get(), POLLIN, 0}, {listen_fd_.get(), POLLIN, 0}};
    for (auto& p : peers) fds.push_back({p.fd.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) {
      int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) peers.push_back({Fd(fd), {}});
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Peer& peer = peers[i - 2];
      char chunk[8192];
      ssize_t n = ::recv(peer.fd.get(), chunk, sizeof(chunk), 0);
      if (n <= 0) {
        peer.fd.reset();
        continue;
      }
      peer.buf.append(chunk, static_cast<size_t>(n));
      while (peer.buf.size() >= 4) {
        auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(peer.buf[k])); };
        uint32_t len = byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
        if (peer.buf.size() < 4 + len) break;
        std::string text = peer.buf.substr(4, len);
        peer.buf.erase(0, 4 + len);
        {
          std::lock_guard lock(mutex_);
          messages_.push_back(text);
        }
        cv_.notify_all();
        auto message = nlohmann::json::parse(text, nullptr, false);
        if (!message.is_object()) continue;
        std::string type = message.value("type", "");
        if (type == "hello") {
          reply(peer.fd.get(), {{"type", "hello"}, {"version", 1}, {"server", "solverd"}});
        } else if (type == "cancel") {
          reply(peer.fd.get(), {{"type", "cancel_ack"}, {"id", message.value("id", "")}, {"state", "running"}});
        }
      }
    }
    peers.erase(std::remove_if(peers.begin(), peers.end(), [](const Peer& p) { return !p.fd; }), peers.end());
  }
}

std::string encodeFrame(const std::string& json) {
  uint32_t len = static_cast<uint32_t>(json.size());
  char prefix[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                    static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
  return std::string(prefix, 4) + json;
}

Fd listenUnix(const std::string& path) {
  ::unlink(path.c_str());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unixAddress(path);
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd.get(), 512) != 0) {
    throw std::runtime_error("cannot listen on " + path + ": " + std::strerror(errno));
  }
  return fd;
}

std::string binary(const std::string& name) {
  std::string path = std::string(TETHER_BIN_DIR) + "/" + name;
  return ::access(path.c_str(), X_OK) == 0 ? path : std::string();
}

}  // namespace tether::service_test
