#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "tether/common/clock.hpp"

namespace tether::proxy::test {

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads into `buf` with a deadline; returns bytes read, 0 on EOF, -1 on timeout/error.
ssize_t readWithin(int fd, char* buf, size_t len, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 50)));
    if (r < 0 && errno != EINTR) return -1;
    if (r <= 0) continue;
    ssize_t n = ::read(fd, buf, len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return n < 0 ? -1 : n;
  }
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Length of one complete HTTP message at the start of `s` (head + body), or 0 if incomplete.
// `close_delimited` = body runs to the end of the connection.
size_t messageLength(const std::string& s, bool response, bool* close_delimited = nullptr) {
  size_t head_end = s.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  size_t body_start = head_end + 4;
  std::string head = lower(s.substr(0, head_end));
  if (response) {
    int status = atoi(s.c_str() + 9);
    if ((status >= 100 && status < 200) || status == 204 || status == 304) return body_start;
  }
  auto header = [&](const std::string& name) -> std::optional<std::string> {
    size_t p = head.find("\r\n" + name + ":");
    if (p == std::string::npos) return std::nullopt;
    p += name.size() + 3;
    size_t e = head.find("\r\n", p);
    std::string v = head.substr(p, e - p);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    return v;
  };
  if (auto te = header("transfer-encoding"); te && te->find("chunked") != std::string::npos) {
    size_t pos = body_start;
    while (true) {
      size_t le = s.find("\r\n", pos);
      if (le == std::string::npos) return 0;
      size_t n = strtoul(s.c_str() + pos, nullptr, 16);
      pos = le + 2;
      if (n == 0) {
        size_t end = s.find("\r\n", pos);  // no trailers in our tests
        return end == std::string::npos ? 0 : end + 2;
      }
      if (s.size() < pos + n + 2) return 0;
      pos += n + 2;
    }
  }
  if (auto cl = header("content-length")) {
    size_t n = strtoul(cl->c_str(), nullptr, 10);
    return s.size() >= body_start + n ? body_start + n : 0;
  }
  if (!response) return body_start;
  if (close_delimited) *close_delimited = true;
  return 0;
}

}  // namespace

// ---- TempDir -------------------------------------------------------------------------------

TempDir::TempDir() {
  char tmpl[] = "/tmp/tpXXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& text) const {
  std::ofstream(file(name)) << text;
}

// ---- TestUpstream --------------------------------------------------------------------------

TestUpstream::TestUpstream() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 512) != 0) {
    throw std::runtime_error("test upstream: cannot listen");
  }
  socklen_t len = sizeof a;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

TestUpstream::~TestUpstream() {
  stop_ = true;
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  ::close(listen_fd_);
}

std::vector<UpstreamRequest> TestUpstream::requests() {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::optional<UpstreamRequest> TestUpstream::find(const std::string& id) {
  std::lock_guard lock(mutex_);
  for (auto& r : requests_) {
    if (r.request_id == id) return r;
  }
  return std::nullopt;
}

bool TestUpstream::waitFor(const std::function<bool(const std::vector<UpstreamRequest>&)>& pred,
                           std::chrono::milliseconds timeout) {
  return waitUntil([&] { return pred(requests()); }, timeout);
}

size_t TestUpstream::record(UpstreamRequest r) {
  std::lock_guard lock(mutex_);
  requests_.push_back(std::move(r));
  return requests_.size() - 1;
}

void TestUpstream::update(size_t index, const std::function<void(UpstreamRequest&)>& f) {
  std::lock_guard lock(mutex_);
  f(requests_[index]);
}

void TestUpstream::acceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    uint64_t n = ++connections_;
    std::lock_guard lock(mutex_);
    workers_.emplace_back([this, fd, n] { serve(fd, n); });
  }
}

void TestUpstream::serve(int fd, uint64_t conn_no) {
  std::string in;
  char buf[16384];
  auto deadline_far = [] { return Clock::now() + 30s; };
  // Waits up to `ms`, returning true early if the peer closed (or sent bytes we do not expect).
  auto peerClosedWithin = [&](int ms) {
    auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < end && !stop_) {
      pollfd p{fd, POLLIN | POLLRDHUP, 0};
      int r = poll(&p, 1, 5);
      if (r > 0) {
        char c;
        ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && errno == EAGAIN)) return true;
        if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
      }
    }
    return false;
  };
  bool close_next = false;
  while (!stop_) {
    // Read one request head.
    size_t head_end;
    bool closed = false;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, 20);
      if (stop_) break;
      if (r <= 0) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        closed = true;
        ++closed_idle_;
        break;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    if (closed || stop_) break;
    if (close_next) break;  // /stale-next: the request after it finds the connection closed
    UpstreamRequest req;
    req.connection = conn_no;
    std::string head = in.substr(0, head_end);
    in.erase(0, head_end + 4);
    size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    req.method = head.substr(0, sp1);
    req.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        req.headers[lower(line.substr(0, colon))] = v;
      }
      pos = next;
    }
    req.request_id = req.headers.count("x-request-id") ? req.headers["x-request-id"] : "";
    size_t index = record(req);
    // Body: Content-Length or chunked (decoded).
    bool body_ok = true;
    if (req.headers.count("content-length")) {
      size_t n = std::stoul(req.headers["content-length"]);
      while (in.size() < n) {
        ssize_t r = readWithin(fd, buf, sizeof buf, deadline_far());
        if (r <= 0) {
          body_ok = false;
          break;
        }
        in.append(buf, static_cast<size_t>(r));
      }
      if (body_ok) {
        req.body = in.substr(0, n);
        in.erase(0, n);
      }
    } else if (req.headers.count("transfer-encoding")) {
      while (true) {
        size_t le;
        while ((le = in.find("\r\n")) == std::string::npos) {
          ssize_t r = readWithin(fd, buf, sizeof buf, deadline_far());
          if (r <= 0) {
            body_ok = false;
            break;
          }
          in.append(buf, static_cast<size_t>(r));
        }
        if (!body_ok) break;
        size_t n = strtoul(in.c_str(), nullptr, 16);
        while (in.size() < le + 2 + n + 2) {
          ssize_t r = readWithin(fd, buf, sizeof buf, deadline_far());
          if (r <= 0) {
            body_ok = false;
            break;
          }
          in.append(buf, static_cast<size_t>(r));
        }
        if (!body_ok) break;
        req.body.append(in, le + 2, n);
        in.erase(0, le + 2 + n + 2);
        if (n == 0) break;
      }
    }
    if (!body_ok) {
      update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
      break;
    }
    update(index, [&](UpstreamRequest& r) { r.body = req.body; });
    auto respond = [&](const std::string& body) {
      std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
      return writeAll(fd, out);
    };
    bool ok = true;
    const std::string& path = req.path;
    if (path == "/fast") {
      ok = respond("hello");
    } else if (path == "/stale-next") {
      // Answers as if keeping the connection, then closes it when the next request arrives,
      // as an upstream whose keep-alive timeout ran out just as the proxy reused it.
      ok = respond("hello");
      close_next = true;
    } else if (path.rfind("/slow/", 0) == 0) {
      int ms = atoi(path.c_str() + 6);
      if (peerClosedWithin(ms)) {
        update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
        break;
      }
      ok = respond("done");
    } else if (path.rfind("/stream/", 0) == 0) {
      int n = atoi(path.c_str() + 8);
      int ms = atoi(path.c_str() + path.rfind('/') + 1);
      ok = writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < n && ok; ++i) {
        std::string line = "{\"event\":\"log\",\"n\":" + std::to_string(i) + "}\n";
        char size[16];
        snprintf(size, sizeof size, "%zx\r\n", line.size());
        ok = writeAll(fd, size + line + "\r\n");
        if (ok && i + 1 < n && peerClosedWithin(ms)) ok = false;
      }
      if (ok) ok = writeAll(fd, "0\r\n\r\n");
      if (!ok) {
        update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
        break;
      }
    } else if (path.rfind("/big/", 0) == 0) {
      // N MiB, written as fast as the proxy takes them; gives up when stopped or cut off.
      size_t total = static_cast<size_t>(atoi(path.c_str() + 5)) << 20;
      ok = writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n");
      std::string block(64 * 1024, 'x');
      for (size_t sent = 0; ok && sent < total && !stop_; sent += block.size()) {
        std::string_view rest(block);
        while (!rest.empty() && !stop_) {
          pollfd p{fd, POLLOUT, 0};
          if (poll(&p, 1, 20) <= 0) continue;
          if ((p.revents & (POLLERR | POLLHUP)) != 0) {
            ok = false;
            break;
          }
          ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n < 0 && errno != EAGAIN) {
            ok = false;
            break;
          }
          if (n > 0) rest.remove_prefix(static_cast<size_t>(n));
        }
      }
      if (!ok || stop_) {
        update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
        break;
      }
    } else if (path == "/echo") {
      ok = respond(req.body);
    } else if (path == "/hold") {
      if (peerClosedWithin(20000)) update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
      break;
    } else if (path == "/close") {
      break;
    } else {
      ok = respond("ok");
    }
    if (!ok) {
      update(index, [](UpstreamRequest& r) { r.peer_closed = true; });
      break;
    }
    update(index, [](UpstreamRequest& r) { r.completed = true; });
  }
  ::close(fd);
}

// ---- ControlListener -----------------------------------------------------------------------

ControlListener::ControlListener(std::string path) : path_(std::move(path)) {
  ::unlink(path_.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("control listener: cannot listen on " + path_);
  }
  if (pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  thread_ = std::thread([this] { loop(); });
}

ControlListener::~ControlListener() {
  char c = 1;
  (void)!::write(wake_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
  ::unlink(path_.c_str());
}

void ControlListener::loop() {
  struct Conn {
    int fd;
    std::string in;
  };
  std::vector<Conn> conns;
  while (true) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (auto& c : conns) fds.push_back({c.fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;
    if (fds[1].revents != 0) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) conns.push_back({fd, {}});
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Conn& c = conns[i - 2];
      char buf[4096];
      ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.in.append(buf, static_cast<size_t>(n));
      while (c.in.size() >= 4) {
        uint32_t len = static_cast<uint8_t>(c.in[0]) | static_cast<uint8_t>(c.in[1]) << 8 |
                       static_cast<uint8_t>(c.in[2]) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(c.in[3])) << 24;
        if (c.in.size() < 4 + len) break;
        auto j = nlohmann::json::parse(c.in.substr(4, len), nullptr, false);
        c.in.erase(0, 4 + len);
        uint64_t now = monotonicNs();
        nlohmann::json reply;
        if (j.is_object() && j.value("type", "") == "hello") {
          reply = {{"type", "hello"}, {"version", 1}, {"server", "test"}};
        } else if (j.is_object() && j.value("type", "") == "cancel") {
          reply = {{"type", "cancel_ack"}, {"id", j.value("id", "")}, {"state", "running"}};
        }
        {
          std::lock_guard lock(mutex_);
          frames_.push_back(j);
          if (j.is_object() && j.value("type", "") == "cancel") cancel_ns_.push_back(now);
        }
        if (!reply.is_null()) {
          std::string payload = reply.dump();
          uint32_t l = static_cast<uint32_t>(payload.size());
          std::string frame{static_cast<char>(l & 0xff), static_cast<char>((l >> 8) & 0xff),
                            static_cast<char>((l >> 16) & 0xff), static_cast<char>(l >> 24)};
          writeAll(c.fd, frame + payload);
        }
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.fd < 0; }), conns.end());
  }
  for (auto& c : conns) ::close(c.fd);
}

std::vector<nlohmann::json> ControlListener::frames() {
  std::lock_guard lock(mutex_);
  return frames_;
}

std::vector<nlohmann::json> ControlListener::cancels() {
  std::vector<nlohmann::json> out;
  for (auto& f : frames()) {
    if (f.is_object() && f.value("type", "") == "cancel") out.push_back(f);
  }
  return out;
}

std::vector<uint64_t> ControlListener::cancelArrivalNs() {
  std::lock_guard lock(mutex_);
  return cancel_ns_;
}

bool ControlListener::waitForCancels(size_t n, std::chrono::milliseconds timeout) {
  return waitUntil([&] { return cancels().size() >= n; }, timeout);
}

// ---- ProxyProcess --------------------------------------------------------------------------

ProxyProcess::ProxyProcess(const std::string& config_path, const std::vector<std::string>& extra_args) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  std::string bin = std::string(TETHER_BIN_DIR) + "/tether-proxy";
  std::vector<std::string> args{bin, "-c", config_path};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(p[1], 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  ::close(p[1]);
  err_fd_ = p[0];
  reader_ = std::thread([this] {
    std::string partial;
    char buf[4096];
    while (true) {
      ssize_t n = ::read(err_fd_, buf, sizeof buf);
      if (n <= 0) break;
      partial.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::lock_guard lock(mutex_);
        lines_.push_back(partial.substr(0, nl));
        partial.erase(0, nl + 1);
      }
    }
    if (!partial.empty()) {
      std::lock_guard lock(mutex_);
      lines_.push_back(partial);
    }
  });
}

ProxyProcess::~ProxyProcess() {
  stop();
  reader_.join();
  ::close(err_fd_);
}

int ProxyProcess::stop(std::chrono::milliseconds timeout) {
  if (exited_) return status_;
  ::kill(pid_, SIGTERM);
  bool done = waitUntil([&] {
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      exited_ = true;
    }
    return exited_;
  }, timeout);
  if (!done) {
    ::kill(pid_, SIGKILL);
    int st;
    waitpid(pid_, &st, 0);
    exited_ = true;
    status_ = -1;
  }
  return status_;
}

std::vector<std::string> ProxyProcess::lines() {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::vector<std::string> ProxyProcess::linesContaining(const std::string& needle) {
  std::vector<std::string> out;
  for (auto& l : lines()) {
    if (l.find(needle) != std::string::npos) out.push_back(l);
  }
  return out;
}

bool ProxyProcess::waitForLine(const std::string& needle, std::chrono::milliseconds timeout) {
  return waitUntil([&] { return !linesContaining(needle).empty(); }, timeout);
}

bool ProxyProcess::waitListening(size_t count, std::chrono::milliseconds timeout) {
  return waitUntil([&] {
    if (!exited_) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exited_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
    }
    return exited_ || linesContaining("listening on ").size() >= count;
  }, timeout) && !exited_;
}

uint16_t ProxyProcess::port(size_t n) {
  size_t i = 0;
  for (auto& l : linesContaining("listening on ")) {
    auto p = l.rfind(':');
    if (l.find("unix:") != std::string::npos || p == std::string::npos) continue;
    if (i++ == n) return static_cast<uint16_t>(atoi(l.c_str() + p + 1));
  }
  return 0;
}

std::vector<std::string> ProxyProcess::errorLines() {
  std::vector<std::string> out;
  for (auto& l : lines()) {
    if (l.find("[error]") != std::string::npos || l.find("[critical]") != std::string::npos) out.push_back(l);
  }
  return out;
}

// ---- Client --------------------------------------------------------------------------------

Client::Client(uint16_t port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect failed");
}

Client::Client(const std::string& unix_path) {
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, unix_path.c_str(), sizeof a.sun_path - 1);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect failed");
}

Client::~Client() { close(); }

bool Client::send(const std::string& bytes) { return writeAll(fd_, bytes); }

std::string Client::readResponse(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[16384];
  while (true) {
    bool close_delimited = false;
    size_t n = messageLength(buffered_, true, &close_delimited);
    if (n > 0) {
      std::string out = buffered_.substr(0, n);
      buffered_.erase(0, n);
      return out;
    }
    ssize_t r = readWithin(fd_, buf, sizeof buf, deadline);
    if (r <= 0) {
      if (r == 0 && close_delimited) return std::exchange(buffered_, {});
      return r == 0 ? std::exchange(buffered_, {}) : std::string();
    }
    buffered_.append(buf, static_cast<size_t>(r));
  }
}

std::string Client::readUntilClosed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[16384];
  while (true) {
    ssize_t r = readWithin(fd_, buf, sizeof buf, deadline);
    if (r <= 0) return std::exchange(buffered_, {});
    buffered_.append(buf, static_cast<size_t>(r));
  }
}

std::string Client::readSome(std::chrono::milliseconds timeout) {
  if (!buffered_.empty()) return std::exchange(buffered_, {});
  char buf[16384];
  ssize_t r = readWithin(fd_, buf, sizeof buf, Clock::now() + timeout);
  return r > 0 ? std::string(buf, static_cast<size_t>(r)) : std::string();
}

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Client::reset() {
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

void Client::halfClose() { shutdown(fd_, SHUT_WR); }

// ---- VethClient ----------------------------------------------------------------------------

VethClient::VethClient() {
  name_ = "tp" + std::to_string(getpid() % 100000);
  subnet_ = std::to_string(getpid() % 200 + 20);
  ok_ = run("ip netns add " + name_) && run("ip link add " + name_ + "a type veth peer name " + name_ + "b") &&
        run("ip link set " + name_ + "b netns " + name_) &&
        run("ip addr add 10.211." + subnet_ + ".1/30 dev " + name_ + "a") && run("ip link set " + name_ + "a up") &&
        run("ip -n " + name_ + " addr add 10.211." + subnet_ + ".2/30 dev " + name_ + "b") &&
        run("ip -n " + name_ + " link set " + name_ + "b up") && run("ip -n " + name_ + " link set lo up");
}

VethClient::~VethClient() {
  if (fd_ >= 0) ::close(fd_);
  run("ip link del " + name_ + "a");
  run("ip netns del " + name_);
}

std::string VethClient::proxyAddress() const { return "10.211." + subnet_ + ".1"; }
std::string VethClient::clientAddress() const { return "10.211." + subnet_ + ".2"; }

bool VethClient::connectTo(uint16_t port) {
  std::thread t([&] {
    int ns = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return;
    ::close(ns);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, proxyAddress().c_str(), &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      fd_ = fd;
    } else {
      ::close(fd);
    }
  });
  t.join();
  return fd_ >= 0;
}

bool VethClient::send(const std::string& s) {
  return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

bool VethClient::cutLink() { return run("ip -n " + name_ + " link set " + name_ + "b down"); }

bool VethClient::run(const std::string& cmd) { return system((cmd + " 2>/dev/null").c_str()) == 0; }

uint16_t unusedPort() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

int statusOf(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return atoi(response.c_str() + 9);
}

std::string headerOf(const std::string& response, const std::string& name) {
  size_t head_end = response.find("\r\n\r\n");
  std::string head = lower(response.substr(0, head_end));
  size_t p = head.find("\r\n" + lower(name) + ":");
  if (p == std::string::npos) return "";
  p += name.size() + 3;
  size_t e = head.find("\r\n", p);
  if (e == std::string::npos) e = head.size();
  std::string v = response.substr(p, e - p);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  return v;
}

std::string bodyOf(const std::string& response) {
  size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) return "";
  std::string body = response.substr(head_end + 4);
  if (lower(headerOf(response, "transfer-encoding")).find("chunked") == std::string::npos) return body;
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t le = body.find("\r\n", pos);
    if (le == std::string::npos) break;
    size_t n = strtoul(body.c_str() + pos, nullptr, 16);
    if (n == 0) break;
    out.append(body, le + 2, n);
    pos = le + 2 + n + 2;
  }
  return out;
}

std::string basicConfig(uint16_t upstream_port, const std::string& control_path,
                        const std::string& on_disconnect, const std::string& location_extra,
                        const std::string& server_extra) {
  std::string c = "error_log stderr info;\nshutdown_timeout 2s;\n";
  c += "upstream app {\n  server 127.0.0.1:" + std::to_string(upstream_port) + ";\n  keepalive 8;\n";
  if (!control_path.empty()) c += "  control unix:" + control_path + ";\n";
  c += "}\nserver {\n  listen 127.0.0.1:0;\n  access_log stderr;\n  client_header_timeout 1s;\n";
  c += "  client_body_timeout 1s;\n  client_max_body_size 1m;\n" + server_extra;
  c += "  location / {\n    proxy_pass http://app;\n    on_disconnect " + on_disconnect + ";\n";
  c += "    kill_after 3s;\n" + location_extra + "  }\n}\n";
  return c;
}

}  // namespace tether::proxy::test
