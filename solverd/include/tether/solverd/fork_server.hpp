#pragma once
// solverd's fork server (`spare_start fork`, DESIGN.md "Warm workers"): one long-lived
// `solverd-worker --fork-server` with the solver libraries loaded, a supervise::Target in its own
// cgroup (`job-fork-server`), with a SOCK_SEQPACKET socket on its fd 3. A spare is made by
// Target::start(): solverd creates the spare's cgroup and pipes as for an exec'd spare and fork()
// hands them to the server (agent/supervise fork_server.hpp), which clones the spare straight
// into that cgroup as solverd's own child (CLONE_PARENT). No exec: the spare's start costs a
// fork of a warm process, not an exec and the dynamic linker.
//
// States: starting (launched, not yet announced), ready, down (waiting for a restart, refused,
// or stopped). While it is not ready the pool execs its spares, but for the first start and a
// reload's start, when it waits for the announcement (at most kReadyTimeout), so that the first
// spares are forked too.
//
// Robustness: a server that dies, does not announce itself in time, or does not answer a request
// is killed if needed, logged at warn, counted and restarted: at once the first time, then after
// 1 s, 2 s, 4 s ... up to 60 s while it keeps dying within a second of its start (exec'd spares
// serve meanwhile: no hurry, and never a fork storm). Where clone3 is filtered the server uses
// clone(2) (agent/supervise fork_server.hpp); a kernel that refuses that too, or refuses the
// cgroup, turns the fork server off until the next reload (logged once). SIGHUP starts
// a new server (the binary may have changed) and kills the old one; the drain kills it.
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/solverd/spare_pool.hpp"

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

namespace tether::solverd {

class ForkServer {
 public:
  enum class State { kStarting, kReady, kDown };
  struct Stats {
    uint64_t started = 0;  // servers launched
    uint64_t died = 0;     // servers that ended without being asked to (or were killed as stuck)
  };

  // Launches the server at once; `on_change` runs (never inside a call of ours) when it becomes
  // ready or goes down.
  ForkServer(uv_loop_t* loop, const agent::supervise::CgroupTree* tree, WorkerOptions options,
             std::function<void()> on_change);
  // Kills what is left (its Targets' destructors: shutdown and error paths).
  ~ForkServer();
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  // Only when ready(): a new child in the cgroup `cgroup_fd`, stdio[i] on its fd i (a Starter of
  // Target::start). Blocks the loop for the server's answer (a clone: about a millisecond), at
  // most kRequestTimeout. A server that fails to answer is killed and restarted.
  agent::supervise::Result<agent::supervise::ChildProcess> fork(int cgroup_fd, const std::array<int, 3>& stdio);

  // SIGHUP: a new server with these options (the old one is killed); back-off and refusal reset.
  void restart(WorkerOptions options);
  // Drain: kills the server and starts none; `on_gone` runs once no server process is left.
  void stop(std::function<void()> on_gone);

  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  // Whether the pool should wait for the server rather than exec a spare now.
  bool worthWaiting() const { return state_ == State::kStarting && wait_for_ready_; }
  // Server processes alive (the current one and those being killed).
  size_t alive() const { return (current_ ? 1 : 0) + retiring_.size(); }
  int pid() const;
  const Stats& stats() const { return stats_; }

  static constexpr std::chrono::milliseconds kReadyTimeout{5'000};
  static constexpr std::chrono::milliseconds kRequestTimeout{1'000};

 private:
  struct Server;

  void launch(bool wait_for_ready);
  void onReadable();
  void onServerDone(Server* server, const agent::supervise::Outcome& outcome);
  void retire(const char* why);
  void goDown(const std::string& why, bool restart);
  void onTimer();
  void notify();
  void maybeGone();

  uv_loop_t* loop_;
  const agent::supervise::CgroupTree* tree_;
  WorkerOptions options_;
  std::function<void()> on_change_;
  std::function<void()> on_gone_;
  std::unique_ptr<Server> current_;
  std::list<std::unique_ptr<Server>> retiring_;  // killed, waiting for their Targets' on_done
  // One timer for the three waits of the down and starting states: the restart's back-off, the
  // announcement's deadline, and on_change_ outside the caller.
  std::unique_ptr<uv::Handle<uv_timer_t>> timer_;
  std::unique_ptr<uv::Handle<uv_idle_t>> notify_idle_;
  State state_ = State::kDown;
  bool wait_for_ready_ = false;
  bool refused_ = false;  // the kernel refuses the clone or the cgroup: off until a reload
  bool stopped_ = false;
  unsigned failures_ = 0;
  uint64_t next_number_ = 1;
  Stats stats_;
};

}  // namespace tether::solverd
