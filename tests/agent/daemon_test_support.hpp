#pragma once
// Helpers for the tests that run the real binaries (tether-agent, tether-run, tether-proxy, the
// Python solve service): child processes with their stderr captured, waiting for a log line with
// a deadline, raw HTTP over TCP, finding cbc processes, per-test cgroup roots.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tether::agent::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::string binPath(const std::string& name) { return std::string(TETHER_BIN_DIR) + "/" + name; }
inline std::string sourcePath(const std::string& rel) { return std::string(TETHER_SOURCE_DIR) + "/" + rel; }

// Polls `done` every 2 ms until it holds or `timeout` passes (tests only).
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A child process whose stderr (and stdout) is collected by a reader thread.
class Child {
 public:
  Child() = default;
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void start(const std::vector<std::string>& argv) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      setpgid(0, 0);  // the test can signal the child's whole group if it must
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
    reader_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard lock(mutex_);
        text_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
      }
    });
  }

  // The first line containing `needle`, waiting up to `timeout`.
  std::optional<std::string> waitForLine(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    std::optional<std::string> found;
    cv_.wait_for(lock, timeout, [&] {
      size_t at = text_.find(needle);
      if (at == std::string::npos) return false;
      size_t begin = text_.rfind('\n', at);
      begin = begin == std::string::npos ? 0 : begin + 1;
      size_t end = text_.find('\n', at);
      if (end == std::string::npos) return false;  // wait for the whole line
      found = text_.substr(begin, end - begin);
      return true;
    });
    return found;
  }

  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

  // Waits for the child to exit by itself; its wait status, or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    int status = 0;
    if (!eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout)) return std::nullopt;
    pid_ = -1;
    finishReading();
    return status;
  }

  // SIGTERM, then SIGKILL after `grace`; returns the wait status (or -1 if not started).
  int stop(std::chrono::milliseconds grace = 5s) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    const auto deadline = Clock::now() + grace;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) {
        kill(-pid_, SIGKILL);
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    pid_ = -1;
    finishReading();
    return status;
  }

  pid_t pid() const { return pid_; }

 private:
  // The reader ends when every writer of the pipe is gone (the child and anything it left).
  void finishReading() {
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string text_;
};

// "... listening on 127.0.0.1:43121" -> 43121 (0 if absent).
inline uint16_t portOf(const std::optional<std::string>& line) {
  if (!line) return 0;
  size_t colon = line->rfind(':');
  return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(line->substr(colon + 1)));
}

// A TCP connection to 127.0.0.1:port (blocking, CLOEXEC); -1 on failure.
inline int connectTcp(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool sendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the peer closes or `timeout` passes.
inline std::string readAll(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

inline std::string httpPost(const std::string& path, const std::string& extra_headers = {}) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n" +
         extra_headers + "\r\n";
}

// A /proc file's bytes, read with plain read(2): a process that exits meanwhile makes the read
// fail with ESRCH, which std::istreambuf_iterator would throw as an exception. "" on any error.
inline std::string readProcFile(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Live (not zombie) processes whose command line contains `needle`.
inline std::vector<int> processesWith(const std::string& needle) {
  std::vector<int> pids;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir("/proc"), closedir);
  if (!d) return pids;
  while (dirent* e = readdir(d.get())) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string base = std::string("/proc/") + e->d_name;
    if (readProcFile(base + "/cmdline").find(needle) == std::string::npos) continue;
    const std::string line = readProcFile(base + "/stat");
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;  // gone while we looked
    if (paren + 2 < line.size() && line[paren + 2] == 'Z') continue;
    pids.push_back(std::atoi(e->d_name));
  }
  return pids;
}

// A cgroup v2 directory for one test's targets, removed (with any empty job-* left) at the end.
class CgroupRoot {
 public:
  CgroupRoot() {
    static int counter = 0;
    const std::string base = "/sys/fs/cgroup/unified";
    if (access((base + "/cgroup.procs").c_str(), W_OK) == 0) {
      path_ = base + "/tether-agent-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    }
  }
  ~CgroupRoot() {
    if (path_.empty()) return;
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) return;
    for (const auto& entry : std::filesystem::directory_iterator(path_, ec)) {
      if (entry.is_directory()) rmdir(entry.path().c_str());
    }
    rmdir(path_.c_str());
  }
  CgroupRoot(const CgroupRoot&) = delete;
  CgroupRoot& operator=(const CgroupRoot&) = delete;
  // Empty when no cgroup v2 is writable here (the agent then runs its fallback).
  const std::string& path() const { return path_; }
  std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    std::error_code ec;
    if (path_.empty()) return out;
    for (const auto& entry : std::filesystem::directory_iterator(path_, ec)) {
      if (entry.is_directory()) out.push_back(entry.path().filename());
    }
    return out;
  }

 private:
  std::string path_;
};

// A fresh request id: 32 lowercase hex digits.
inline std::string testRequestId() {
  static uint64_t counter = 0;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%08x%08llx", static_cast<unsigned long long>(Clock::now().time_since_epoch().count()),
                static_cast<unsigned>(getpid()), static_cast<unsigned long long>(++counter));
  return buf;
}

}  // namespace tether::agent::test
