#include "worker_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tether::solverd::worker::test {
namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// The wire format written out here on purpose rather than taken from the codec under test:
// 4-byte little-endian length, then the JSON text.
std::string frameBytes(const std::string& payload) {
  std::string out(4, '\0');
  for (size_t i = 0; i < 4; ++i) out[i] = static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  return out + payload;
}

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string sourcePath(const std::string& relative) { return std::string(TETHER_SOURCE_DIR) + "/" + relative; }

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string workerBinary() { return std::string(TETHER_BIN_DIR) + "/solverd-worker"; }

nlohmann::json modelIndex() {
  return nlohmann::json::parse(readFile(sourcePath("tests/solverd/models/models.json")));
}

std::string modelText(const std::string& file) { return readFile(sourcePath("tests/solverd/models/" + file)); }

nlohmann::json solveFrame(const std::string& model, const std::string& format, const std::string& solver,
                          const nlohmann::json& options) {
  return {{"type", "solve"}, {"format", format}, {"model", model}, {"solver", solver}, {"options", options}};
}

WorkerProcess::WorkerProcess() {
  int in[2];
  int out[2];
  int err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  const std::string binary = workerBinary();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    // dup2 clears O_CLOEXEC on the copies: only fds 0, 1 and 2 reach the worker.
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    char* argv[] = {const_cast<char*>(binary.c_str()), nullptr};
    ::execv(binary.c_str(), argv);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
}

WorkerProcess::~WorkerProcess() {
  closeFd(stdin_fd_);
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  closeFd(stdout_fd_);
  closeFd(stderr_fd_);
}

bool WorkerProcess::sendRaw(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    if (stdin_fd_ < 0) return false;
    ssize_t n = ::write(stdin_fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool WorkerProcess::send(const nlohmann::json& frame) { return sendRaw(frameBytes(frame.dump())); }

void WorkerProcess::closeStdin() { closeFd(stdin_fd_); }

void WorkerProcess::signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void WorkerProcess::drainStderr() {
  char buf[4096];
  ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
  if (n > 0) {
    stderr_.append(buf, static_cast<size_t>(n));
  } else if (n == 0) {
    closeFd(stderr_fd_);
  }
}

// Reads more of stdout (and whatever stderr has: the worker must never block on a full stderr
// pipe). Returns false at the deadline or at the end of stdout.
bool WorkerProcess::fill(Clock::time_point deadline) {
  for (;;) {
    if (stdout_eof_) return false;
    pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {stderr_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, remainingMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (fds[1].revents != 0) drainStderr();
    if (fds[0].revents != 0) {
      char buf[65536];
      ssize_t got = ::read(stdout_fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        stdout_eof_ = true;
        return false;
      }
      buffer_.append(buf, static_cast<size_t>(got));
      return true;
    }
  }
}

std::optional<nlohmann::json> WorkerProcess::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (buffer_.size() >= 4) {
      const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data());
      const size_t length = static_cast<size_t>(p[0]) | (static_cast<size_t>(p[1]) << 8) |
                            (static_cast<size_t>(p[2]) << 16) | (static_cast<size_t>(p[3]) << 24);
      if (buffer_.size() >= 4 + length) {
        auto frame = nlohmann::json::parse(buffer_.begin() + 4, buffer_.begin() + 4 + static_cast<long>(length),
                                           nullptr, false);
        buffer_.erase(0, 4 + length);
        if (frame.is_discarded() || !frame.is_object()) {
          bad_frame_ = true;
          return std::nullopt;
        }
        frames_.push_back(frame);
        return frame;
      }
    }
    if (!fill(deadline)) {
      if (stdout_eof_ && !buffer_.empty()) bad_frame_ = true;  // a frame cut short
      return std::nullopt;
    }
  }
}

std::optional<nlohmann::json> WorkerProcess::nextOfType(const std::string& type, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto frame = next(std::chrono::milliseconds(remainingMs(deadline)));
    if (!frame) return std::nullopt;
    if ((*frame)["type"] == type) return frame;
  }
}

std::optional<int> WorkerProcess::finish(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (next(std::chrono::milliseconds(remainingMs(deadline)))) {
  }
  if (!stdout_eof_) return std::nullopt;
  while (stderr_fd_ >= 0) {
    pollfd fd{stderr_fd_, POLLIN, 0};
    if (::poll(&fd, 1, remainingMs(deadline)) <= 0) break;
    drainStderr();
  }
  // stdout is closed: the worker is exiting. Reap it, polling with the deadline.
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 || Clock::now() >= deadline) return std::nullopt;
    ::usleep(2000);
  }
}

std::string WorkerProcess::stderrText() { return stderr_; }

void NoWorkerLeftBehind::TearDown() {
  int status = 0;
  pid_t left = ::waitpid(-1, &status, WNOHANG);
  EXPECT_TRUE(left < 0 && errno == ECHILD) << "a child process outlived the test (waitpid says " << left << ")";
}

std::vector<nlohmann::json> runToEnd(const nlohmann::json& solve, int& exit_code, std::chrono::milliseconds timeout) {
  WorkerProcess worker;
  worker.send(solve);
  auto code = worker.finish(timeout);
  exit_code = code.value_or(-1);
  return worker.frames();
}

}  // namespace tether::solverd::worker::test
