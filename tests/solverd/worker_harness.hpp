#pragma once
// A real solverd-worker process on pipes, for the worker tests: frames in, frames out, exit
// status, all with deadlines. The destructor kills (SIGKILL) and reaps a worker that is still
// running, so no test leaves a process behind even when it fails half way.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tether::solverd::worker::test {

using namespace std::chrono_literals;

std::string sourcePath(const std::string& relative);  // TETHER_SOURCE_DIR/relative
std::string readFile(const std::string& path);
std::string workerBinary();                           // TETHER_BIN_DIR/solverd-worker

// tests/solverd/models/models.json
nlohmann::json modelIndex();
std::string modelText(const std::string& file);       // tests/solverd/models/<file>

nlohmann::json solveFrame(const std::string& model, const std::string& format, const std::string& solver,
                          const nlohmann::json& options = nlohmann::json::object());

class WorkerProcess {
 public:
  WorkerProcess();
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Writes one frame (or raw bytes) to the worker's stdin. Returns false if the pipe is closed.
  bool send(const nlohmann::json& frame);
  bool sendRaw(const std::string& bytes);
  void closeStdin();
  void signal(int sig);

  // The next frame from the worker's stdout, waiting up to `timeout`; nullopt on timeout, at
  // the end of stdout, or on a bad frame (badFrame() then says so).
  std::optional<nlohmann::json> next(std::chrono::milliseconds timeout);
  // Frames until one of type `type` (inclusive), up to `timeout` in all; every frame read is
  // kept in frames().
  std::optional<nlohmann::json> nextOfType(const std::string& type, std::chrono::milliseconds timeout);
  const std::vector<nlohmann::json>& frames() const { return frames_; }
  bool badFrame() const { return bad_frame_; }

  // Reads every remaining frame until the end of stdout, then reaps the worker. Returns its exit
  // code (or 128 + signal), or nullopt if it did not end within `timeout`.
  std::optional<int> finish(std::chrono::milliseconds timeout);

  // The worker's stderr, read so far (drained in finish()).
  std::string stderrText();

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);
  void drainStderr();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  bool stdout_eof_ = false;
  bool bad_frame_ = false;
  bool reaped_ = false;
  std::string buffer_;
  std::string stderr_;
  std::vector<nlohmann::json> frames_;
};

// Base fixture of the worker tests: after every test, no child process of the test may be
// left, running or unreaped (waitpid(-1) must say ECHILD).
class NoWorkerLeftBehind : public testing::Test {
 protected:
  void TearDown() override;
};

// The whole exchange for a model that finishes on its own: send the solve frame, read to the
// end, reap. `exit_code` gets the exit code, the return value every frame.
std::vector<nlohmann::json> runToEnd(const nlohmann::json& solve, int& exit_code,
                                     std::chrono::milliseconds timeout = 60s);

}  // namespace tether::solverd::worker::test
