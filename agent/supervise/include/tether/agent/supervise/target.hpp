#pragma once
// A Target: one supervised process tree in its own fresh cgroup, on the caller's libuv loop, with
// the cancel ladder of DESIGN.md: `interrupt` (a caller-supplied action, by default a signal to
// every process of the target), then after the grace (capped by max_grace) `cgroup.kill`;
// `kill`: cgroup.kill at once.
//
// Starting: spawn() forks the command straight into its cgroup (clone3 with CLONE_INTO_CGROUP and
// CLONE_PIDFD; where clone3 is refused, fork and the child writes itself to cgroup.procs before
// exec). start() is spawn() with the child made by the caller's Starter instead (solverd's fork
// server, clone3 from another process with CLONE_PARENT): the same cgroup, pipes and watch.
// adopt() moves a running process (a `register` from tether-run) into a fresh cgroup.
// Watching: the leader through a pidfd on a uv_poll (reaped with waitid(P_PIDFD), never
// waitpid(-1), which belongs to libuv), the tree through poll(POLLPRI) on cgroup.events, also on
// a uv_poll: `populated 0` arrives within a millisecond of cgroup.kill. Nothing sleeps.
//
// Done = the leader has exited (spawned: reaped, with its status) and the cgroup is empty; then
// cpu.stat is read, the cgroup removed, and on_done called once. A leader that exits while other
// processes of its tree remain gets them killed (kill_stragglers, default on), since the
// cgroup can only be removed empty.
//
// Without a usable cgroup (CgroupTree unavailable): the child gets a new process group and is
// watched by its pidfd; signals go to the process group only while the unreaped leader holds the
// group id (a pid or pgid is never reused before its zombie is reaped), adopted processes are
// signalled through their pidfd only. Best effort: setsid() escapes it. inCgroup() says which.
//
// Pid reuse: a pid is never signalled after its target exited: leaders through pidfds
// (pidfd_send_signal), everything else through cgroup membership (cgroup.procs, cgroup.kill).
//
// Thread: everything runs on the loop thread given to spawn()/adopt().
#include <sys/types.h>
#include <uv.h>

#include <csignal>
#include <cstdint>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/agent/control/vocabulary.hpp"
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/child.hpp"
#include "tether/agent/supervise/error.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/common/uv_stream.hpp"

namespace tether::agent::supervise {

// The ladder's steps are the protocol's actions (interrupt, kill): one vocabulary end to end.
using CancelAction = control::Action;

// How the child's fd 0, 1, 2 are set up.
enum class Stdio {
  kInherit,  // the daemon's own
  kNull,     // /dev/null
  kPipe,     // a pipe whose other end the caller gets as a uv_pipe_t (take*Pipe())
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  bool inherit_env = true;        // the daemon's environment, plus `env`
  std::vector<std::string> env;   // "NAME=VALUE" entries (override inherited ones)
  std::string cwd;                // empty: the daemon's
  Stdio stdin_mode = Stdio::kNull;
  Stdio stdout_mode = Stdio::kInherit;
  Stdio stderr_mode = Stdio::kInherit;
  // Put on the child's fd 3 (solverd's fork server gets its socket there); -1: none. Stays the
  // caller's.
  int fd3 = -1;
};

// How the leader ended.
struct ExitStatus {
  enum class Kind {
    kUnknown,   // adopted (not our child) or released: only the target knows
    kExited,    // code
    kSignaled,  // signal, core_dumped
  };
  Kind kind = Kind::kUnknown;
  int code = 0;
  int signal = 0;
  bool core_dumped = false;
  // "exit 0", "signal SIGKILL", "signal SIGSEGV (core dumped)", "unknown".
  std::string describe() const;
};

// One cancel of one target, with CLOCK_MONOTONIC timestamps in ns (tether/common/clock.hpp);
// 0 means "has not happened". A second cancel only adds to this record (see Target::cancel).
// solverd keeps the same record for a job (queued jobs too, which have no Target).
struct CancelRecord {
  CancelAction action = CancelAction::Interrupt;  // the strongest asked for
  std::string reason;          // of the first cancel (a protocol reason, known or not)
  std::string phase;           // the proxy's disconnect phase, when a frame carried one
  uint64_t received_ns = 0;    // first cancel call
  uint64_t signalled_ns = 0;   // interrupt action run, or cgroup.kill written, whichever first
  uint64_t killed_ns = 0;      // cgroup.kill (or SIGKILL in the fallback) written
  uint64_t exited_ns = 0;      // the target was done (leader gone, cgroup empty)
  Error interrupt_error;       // what the interrupt action returned
  Error kill_error;            // what writing cgroup.kill returned
};

// Reported once, in on_done.
struct Outcome {
  std::string id;
  int pid = 0;
  ExitStatus status;
  std::optional<uint64_t> cpu_usec;  // cpu.stat usage_usec of the whole tree; in the fallback,
                                     // the leader's rusage (spawned only)
  std::optional<CancelRecord> cancel;
  bool in_cgroup = false;
  bool released = false;             // release() handed the process back instead of an exit
  std::string cgroup;                // the (now removed) cgroup; empty in the fallback
  uint64_t started_ns = 0;
  uint64_t done_ns = 0;
  Error cleanup_error;               // rmdir or cgroup.kill failure at the end (the cgroup may remain)
};

class Target {
 public:
  enum class State {
    kRunning,
    kInterrupting,  // interrupt action run, grace timer armed
    kKilling,       // cgroup.kill written, waiting for the tree to go
    kDone,          // on_done has been called
  };

  // Asks the target to stop gracefully. Returns an Error if it could not be asked at all.
  using InterruptAction = std::function<Error(Target&)>;
  // Called once when the target is done. The callback MAY DESTROY the Target (the usual thing
  // to do); the Target touches nothing of itself after calling it.
  using DoneCallback = std::function<void(Target&, const Outcome&)>;

  struct Options {
    std::string id;                        // see isValidTargetId()
    uint64_t max_grace_ms = 60'000;        // cap on every cancel's grace (`max_grace`)
    int interrupt_signal = SIGINT;         // used by the default interrupt action
    InterruptAction interrupt;             // empty: signalAll(interrupt_signal)
    bool kill_stragglers = true;           // leader gone: kill what remains of the tree
    Limits limits;                         // applied where delegated; see unavailableLimits()
    // The cgroup's name under the tree, for targets the daemon names itself (solverd's spares:
    // "job-spare-N"). Empty: jobCgroupName(id), a hash, since a request id may hold `/` or `%`.
    std::string cgroup_name;
    // The interrupt action must not destroy the Target; on_done may.
    DoneCallback on_done;
  };

  // Makes the child for start(): in the cgroup whose directory is `cgroup_fd` (-1: no cgroup, the
  // fallback) with stdio[i] (-1: inherited) on its fd i, and as a child of this process. The fds
  // stay the caller's. Returns once the child exists (or why it could not be made).
  using Starter = std::function<Result<ChildProcess>(int cgroup_fd, const std::array<int, 3>& stdio)>;

  // Starts `spawn.argv` in a fresh cgroup under `tree` (or in the fallback when `tree` is null or
  // unavailable). Errors: EINVAL bad id or empty argv, ENOENT/EACCES for the command (the child
  // reports its exec error back before this returns), cgroup errors from mkdir/clone3.
  static Result<std::unique_ptr<Target>> spawn(uv_loop_t* loop, const CgroupTree* tree,
                                               Options options, const SpawnOptions& spawn);
  // As spawn(), with the child made by `starter`: the fresh cgroup, the stdio of `stdio` (kPipe:
  // the pipes, taken with take*Pipe()), the watch and the ladder are spawn()'s. Errors: EINVAL
  // bad id, cgroup errors, and the starter's.
  static Result<std::unique_ptr<Target>> start(uv_loop_t* loop, const CgroupTree* tree, Options options,
                                               const std::array<Stdio, 3>& stdio, const Starter& starter);
  // Moves running process `pid` (and only it: call before it forks, as tether-run does) into a
  // fresh cgroup. ESRCH if it is gone. Its exit status stays unknown (it is not our child).
  static Result<std::unique_ptr<Target>> adopt(uv_loop_t* loop, const CgroupTree* tree,
                                               Options options, int pid);

  // Destroying a Target that is not done kills its tree (cgroup.kill), reaps a spawned leader and
  // removes the cgroup, waiting at most one second: only for shutdown and error paths.
  ~Target();
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  // The ladder. Interrupt: the first one runs the interrupt action and arms the grace timer
  // (min(grace_ms, max_grace)); later ones never restart the grace, but may shorten it.
  // Kill: cgroup.kill at once (also ends a running grace). After done: no-op.
  // Returns the state after the call.
  State cancel(CancelAction action, uint64_t grace_ms, std::string_view reason);
  // Sets the running grace to end `grace_ms` (capped by max_grace) after the first interrupt,
  // later or sooner than it was: solverd's own connection watch defers to the proxy's frame,
  // whose grace is the location's kill_after (DESIGN.md "The cancel ladder"). A deadline already
  // past kills at once. Only while interrupting; returns the state after the call.
  State regrace(uint64_t grace_ms);

  // Sends `sig` to every process of the target (every pid in cgroup.procs, re-read until no new
  // pid shows up, so children forked meanwhile are caught); in the fallback, to the process
  // group / the leader's pidfd while the leader is alive. ESRCH when nothing is left.
  Error signalAll(int sig);
  // cgroup.kill (fallback: SIGKILL as above). Recorded in the cancel record only via cancel().
  Error killAll();
  // Adopted targets only (`unregister`): moves every process back to the cgroup the leader came
  // from and finishes with released = true (no signal sent). EINVAL for spawned targets.
  Error release();

  // The caller's ends of the kPipe streams. stdin is written through the one write path, a
  // uv::Stream made on the Target's loop for `events` when it is taken; stdout and stderr come
  // already uv_pipe_open()ed (data is free for the caller). Take them to keep them after the
  // Target is gone; untaken ones close with the Target. Null when that stream is not a pipe or
  // was taken.
  std::unique_ptr<uv::Stream> takeStdinStream(uv::StreamEvents& events);
  std::unique_ptr<uv::Handle<uv_pipe_t>> takeStdoutPipe();
  std::unique_ptr<uv::Handle<uv_pipe_t>> takeStderrPipe();

  const std::string& id() const { return options_.id; }
  int pid() const { return pid_; }
  State state() const { return state_; }
  bool inCgroup() const { return !cgroup_.empty(); }
  const std::string& cgroupPath() const { return cgroup_; }  // empty in the fallback
  bool adopted() const { return adopted_; }
  uint64_t startedNs() const { return started_ns_; }
  const std::optional<CancelRecord>& cancelRecord() const { return cancel_; }
  // Limits asked for that could not be applied (see CgroupTree::unavailableLimits()).
  const std::vector<std::string>& unavailableLimits() const { return unavailable_limits_; }

 private:
  Target(uv_loop_t* loop, Options options);
  Error startWatching();
  void onPidfdReadable();
  void onEventsChanged();
  void onGraceExpired();
  void armGraceTimer(uint64_t now_ns);
  void onDeferred();
  void doKill(uint64_t now_ns);
  void maybeFinish();
  void finish();
  void closeWatchers();
  bool leaderAlive() const;

  uv_loop_t* loop_;
  Options options_;
  int pid_ = 0;
  int pidfd_ = -1;
  int events_fd_ = -1;  // cgroup.events, for POLLPRI
  std::string cgroup_;
  std::string origin_cgroup_;  // adopted: where the leader came from (release())
  bool adopted_ = false;
  bool leader_exited_ = false;
  bool populated_ = true;
  bool stragglers_killed_ = false;
  bool released_ = false;
  State state_ = State::kRunning;
  ExitStatus status_;
  std::optional<uint64_t> rusage_cpu_usec_;
  uint64_t started_ns_ = 0;
  uint64_t grace_deadline_ns_ = 0;
  std::optional<CancelRecord> cancel_;
  std::vector<std::string> unavailable_limits_;
  std::unique_ptr<uv::Handle<uv_poll_t>> pidfd_poll_;
  std::unique_ptr<uv::Handle<uv_poll_t>> events_poll_;
  std::unique_ptr<uv::Handle<uv_timer_t>> grace_timer_;
  std::unique_ptr<uv::Handle<uv_timer_t>> defer_timer_;  // release(): finish outside the caller
  int stdin_fd_ = -1;  // our end of the child's stdin until takeStdinStream()
  std::unique_ptr<uv::Handle<uv_pipe_t>> stdout_pipe_, stderr_pipe_;
};

std::string_view toString(Target::State state);  // "running" | "interrupting" | "killing" | "done"

}  // namespace tether::agent::supervise
