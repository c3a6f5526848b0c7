#pragma once
// Helpers shared by the control-protocol tests: short socket paths, waiting on a loop with a
// deadline, a loop on its own thread (for tests that talk to a server with blocking sockets),
// and a handler that records what the server dispatched.
#include "tether/agent/control/server.hpp"
#include "tether/common/uv_kit.hpp"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tether::agent::control::test {

// A fresh directory under /tmp (sun_path is 108 bytes: keep it short), removed at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tctl-XXXXXX";
    char* made = mkdtemp(tmpl);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `loop` until `done()` holds or `timeout` passes; a 2 ms timer wakes the loop to look.
// Returns whether done() held.
inline bool runUntil(uv_loop_t* loop, const std::function<bool()>& done,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  uv::Handle<uv_timer_t> tick(loop);
  uv_timer_start(tick.get(), [](uv_timer_t*) {}, 2, 2);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    uv_run(loop, UV_RUN_ONCE);
  }
  return true;
}

// A loop owned by a test: closed at the end with every handle gone (libuv's own test habit).
class TestLoop {
 public:
  TestLoop() { uv_loop_init(&loop_); }
  ~TestLoop() { EXPECT_EQ(closeLoop(&loop_), 0) << "a handle was left on the loop"; }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;
  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_{};
};

// A cancel with defaults for everything but the id.
inline Cancel cancelOf(std::string id) {
  Cancel c;
  c.id = std::move(id);
  return c;
}

// Records every dispatched request; answers cancels with `state`.
class RecordingHandler : public Handler {
 public:
  CancelAck onCancel(const PeerCredentials& peer, const Cancel& cancel) override {
    std::lock_guard lock(mutex);
    cancels.push_back(cancel);
    peers.push_back(peer);
    return CancelAck{cancel.id, state};
  }
  Message onRegister(const PeerCredentials& peer, const Register& request) override {
    std::lock_guard lock(mutex);
    peers.push_back(peer);
    registers.push_back(request);
    return Registered{request.id, std::string("/sys/fs/cgroup/job-") + request.id};
  }
  nlohmann::json statusTargets() override { return nlohmann::json::array({{{"id", "abc"}}}); }

  std::vector<Cancel> cancelsSnapshot() {
    std::lock_guard lock(mutex);
    return cancels;
  }

  std::mutex mutex;
  CancelState state = CancelState::Running;
  std::vector<Cancel> cancels;
  std::vector<Register> registers;
  std::vector<PeerCredentials> peers;
};

// A control server on a loop of its own thread, so the test thread can use blocking sockets.
class ServerThread {
 public:
  ServerThread(Handler& handler, ServerOptions options) {
    uv_loop_init(&loop_);
    server_ = std::make_unique<Server>(&loop_, handler, std::move(options));
    std::string why;
    listen_rc_ = server_->listen(&why);
    listen_error_ = why;
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      auto* self = static_cast<ServerThread*>(a->data);
      self->server_->close();
      uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
    });
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~ServerThread() { stop(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  void stop() {
    if (!thread_.joinable()) return;
    uv_async_send(&stop_);
    thread_.join();
    counters_ = server_->counters();
    server_.reset();
    EXPECT_EQ(closeLoop(&loop_), 0);
  }

  int listenResult() const { return listen_rc_; }
  const std::string& listenError() const { return listen_error_; }
  // Read only after stop(): the counters live on the loop thread.
  const ServerCounters& counters() const { return counters_; }

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<Server> server_;
  int listen_rc_ = 0;
  std::string listen_error_;
  ServerCounters counters_;
  std::thread thread_;
};

}  // namespace tether::agent::control::test
