#pragma once
// Warm workers (DESIGN.md "Warm workers"): `spare_workers` solverd-worker processes started ahead
// of demand, each in its own fresh cgroup, blocked on their stdin until a solve frame comes. A job
// takes one (WorkerRunner) and the pool starts a replacement in the background, so a small solve
// pays for its solve and not for a process start.
//
// Isolation is that of a cold worker: a spare is a whole supervise::Target, one process tree in
// one cgroup, and the job that takes it owns both until its end, when the cgroup is removed. A
// cgroup is never handed to a second job, whether its job ended, was cancelled or was killed.
// cgroup v2 refuses rename(2) of a cgroup directory (EPERM: only cgroup v1 has kernfs rename),
// so a spare's cgroup cannot become `job-<id>` when it is handed a job: it is made as
// `job-spare-N` (N counts the spares of this solverd; the supervise library adds a suffix if the
// name exists), and the job keeps that name (GET /v1/jobs/ID and the job's log line say which).
//
// `spare_start fork` (the default): spares are forked into their cgroups by the fork server
// (fork_server.hpp), a solverd-worker with its libraries loaded, so a spare's start costs a fork
// instead of an exec and the dynamic linker; the pool execs them while that server is down.
// `spare_start exec`: every spare is exec'd. Either way a spare is solverd's own child, in its own
// fresh cgroup, a whole Target. DESIGN.md compares the two.
//
// A spare that dies before it gets a job is counted and replaced; spares that keep dying soon
// after their start (a broken worker binary) are replaced with an exponential back-off, logged at
// each failure, never as a fork storm. SIGHUP retires every spare (the binary or the limits may
// have changed) and starts new ones; drain retires them and starts none.
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/common/uv_kit.hpp"

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tether::solverd {

class ForkServer;

struct WorkerOptions {
  std::string worker_path;
  agent::supervise::Limits limits;
  std::chrono::milliseconds max_grace{60'000};
  std::chrono::milliseconds time_limit_grace{5'000};
  size_t spare_workers = 0;             // warm workers kept ready (`spare_workers`)
  bool fork_spares = false;             // `spare_start fork`: spares come from the fork server
  std::vector<std::string> extra_args;  // appended to the worker's argv (tests)
};

// One solverd-worker process in its own fresh cgroup, with its stdin, stdout and stderr on pipes
// (stdin stays with the Target until the job's session takes it as a uv::Stream): a spare until a
// job takes it, then that job's. The Target's callbacks go through `hooks`, set
// by whoever owns the process at the time (the pool, then the job's session).
struct WorkerProcess {
  struct Hooks {
    agent::supervise::Target::InterruptAction interrupt;
    agent::supervise::Target::DoneCallback on_done;
  };
  std::unique_ptr<Hooks> hooks;  // first: destroyed after the Target that calls it
  std::unique_ptr<agent::supervise::Target> target;
  std::unique_ptr<uv::Handle<uv_pipe_t>> stdout_pipe;
  std::unique_ptr<uv::Handle<uv_pipe_t>> stderr_pipe;
  uint64_t started_ns = 0;
};

// Starts solverd-worker in a fresh cgroup, `cgroup_name` or a hash of `id` (or the process-group fallback when `tree`
// is null or unavailable): exec'd, or forked by `fork_server` when one is given (ready). The
// process waits for its solve frame.
agent::supervise::Result<WorkerProcess> spawnWorker(uv_loop_t* loop, const agent::supervise::CgroupTree* tree,
                                                    const WorkerOptions& options, const std::string& id,
                                                    const std::string& cgroup_name = {},
                                                    ForkServer* fork_server = nullptr);

// Logs what a worker process writes on its stderr, line by line at info ("WHO pid=N stderr:
// ..."), while it waits (a spare, the fork server): what a failing binary says (the dynamic
// linker, a sanitizer) is the reason of its death.
class StderrLog {
 public:
  void start(uv::Handle<uv_pipe_t>& pipe, std::string who, int pid);
  // Stops reading and logs a last unterminated line.
  void stop(uv::Handle<uv_pipe_t>& pipe);

 private:
  void flush();
  std::string who_;
  int pid_ = 0;
  std::array<char, 4096> buf_{};
  std::string line_;
};

class SparePool {
 public:
  struct Stats {
    uint64_t started = 0;  // spares started
    uint64_t taken = 0;    // spares handed a job
    uint64_t died = 0;     // spares that exited before a job (or failed to start)
    uint64_t retired = 0;  // spares stopped by a reload or the drain
    uint64_t forked = 0;   // spares made by the fork server (the others were exec'd)
  };

  SparePool(uv_loop_t* loop, const agent::supervise::CgroupTree* tree, WorkerOptions options);
  // Kills the spares that are left (their Targets' destructors: shutdown and error paths).
  ~SparePool();
  SparePool(const SparePool&) = delete;
  SparePool& operator=(const SparePool&) = delete;

  // A ready spare for a job, or nullopt (none ready, or the pool was stopped). Its replacement
  // starts when a job ends (jobEnded) or shortly after, never inside the caller.
  std::optional<WorkerProcess> take();
  // A job's worker has ended: the loop is free for a pending replacement's spawn now.
  void jobEnded();
  // SIGHUP: retires every spare and starts `options.spare_workers` new ones with these options.
  void setOptions(WorkerOptions options);
  // Drain: retires every spare and starts no more; take() answers nullopt from now on.
  // `on_empty` runs once no spare process is left (perhaps at once).
  void stop(std::function<void()> on_empty);

  // Called whenever ready() may have changed (STATUS=); never from inside take().
  void setOnChange(std::function<void()> on_change) { on_change_ = std::move(on_change); }

  size_t ready() const { return ready_.size(); }
  // Processes alive: spares ready, spares being retired, fork servers.
  size_t alive() const;
  const Stats& stats() const { return stats_; }
  // The fork server, when `spare_start fork` and spares are on (else null).
  const ForkServer* forkServer() const { return fork_server_.get(); }

 private:
  struct Spare;
  using SpareList = std::list<std::unique_ptr<Spare>>;

  void schedule(std::chrono::milliseconds delay);
  void onRefillTimer();
  void startOne();
  void onSpareDone(Spare* spare, const agent::supervise::Outcome& outcome);
  void retireAll(const char* why);
  void failed(const std::string& what, uint64_t lived_ns);
  void maybeEmpty();
  void configureForkServer();
  void changed() {
    if (on_change_) on_change_();
  }

  uv_loop_t* loop_;
  const agent::supervise::CgroupTree* tree_;
  WorkerOptions options_;
  SpareList ready_;
  SpareList retiring_;  // killed, waiting for their Targets' on_done
  std::unique_ptr<uv::Handle<uv_timer_t>> refill_timer_;
  std::unique_ptr<ForkServer> fork_server_;
  bool timer_armed_ = false;
  bool stopped_ = false;
  std::function<void()> on_empty_;
  std::function<void()> on_change_;
  uint64_t next_number_ = 1;     // names spare-N
  unsigned failures_ = 0;        // spares in a row that died soon after their start
  Stats stats_;
};

}  // namespace tether::solverd
