#include "tether/agent/supervise/target.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "spawn.hpp"
#include "sys.hpp"
#include "tether/common/clock.hpp"

extern char** environ;

namespace tether::agent::supervise {
namespace {

constexpr uint64_t kNsPerMs = 1'000'000;
// How many times signalAll() re-reads cgroup.procs to catch children forked while it signals.
constexpr int kSignalRounds = 8;
// ~Target: how long it waits for a tree it killed to go (shutdown and error paths only).
constexpr int kDestroyWaitMs = 1000;

std::unique_ptr<uv::Handle<uv_pipe_t>> openPipe(uv_loop_t* loop, int& fd) {
  auto pipe = std::make_unique<uv::Handle<uv_pipe_t>>(loop, /*ipc=*/0);
  if (!*pipe) return nullptr;
  if (uv_pipe_open(pipe->get(), fd) != 0) return nullptr;
  fd = -1;  // the pipe handle owns it now
  return pipe;
}

std::vector<std::string> buildEnv(const SpawnOptions& spawn) {
  std::vector<std::string> env;
  auto nameOf = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  if (spawn.inherit_env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string entry(*e);
      bool overridden = std::any_of(spawn.env.begin(), spawn.env.end(), [&](const std::string& o) {
        return nameOf(o) == nameOf(entry);
      });
      if (!overridden) env.push_back(std::move(entry));
    }
  }
  env.insert(env.end(), spawn.env.begin(), spawn.env.end());
  return env;
}

// waitid(2) through the raw system call: its fifth argument (rusage) is not in glibc's wrapper,
// and it is the only CPU figure for a target without a cgroup.
long waitidRusage(int pidfd, siginfo_t* info, int options, rusage* usage) {
  return ::syscall(SYS_waitid, P_PIDFD, pidfd, info, options, usage);
}

// A starter that failed after its child existed (solverd's fork server dying between its clone
// and its answer) leaves a child we have no pid for in the fresh cgroup: kill what is there, reap
// what is ours (ECHILD for the rest), so the cgroup can go. Error paths only; bounded waits.
void reapOrphans(const std::string& cgroup) {
  auto procs = readCgroupProcs(cgroup);
  std::vector<int> pidfds;
  if (procs) {
    for (int pid : *procs) {
      int pidfd = sys::pidfdOpen(pid);
      if (pidfd >= 0) pidfds.push_back(pidfd);
    }
  }
  sys::writeFile(cgroup + "/cgroup.kill", "1");
  for (int& pidfd : pidfds) {
    pollfd pfd{pidfd, POLLIN, 0};
    if (::poll(&pfd, 1, kDestroyWaitMs) > 0) {
      siginfo_t info{};
      ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
    }
    sys::closeFd(pidfd);
  }
}

uint64_t rusageUsec(const rusage& ru) {
  auto usec = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000ULL + static_cast<uint64_t>(tv.tv_usec);
  };
  return usec(ru.ru_utime) + usec(ru.ru_stime);
}

}  // namespace

std::string_view toString(Target::State state) {
  switch (state) {
    case Target::State::kRunning: return "running";
    case Target::State::kInterrupting: return "interrupting";
    case Target::State::kKilling: return "killing";
    case Target::State::kDone: return "done";
  }
  return "unknown";
}

std::string ExitStatus::describe() const {
  switch (kind) {
    case Kind::kExited: return "exit " + std::to_string(code);
    case Kind::kSignaled: {
      const char* name = sigabbrev_np(signal);
      std::string s = "signal " + (name != nullptr ? "SIG" + std::string(name) : std::to_string(signal));
      return core_dumped ? s + " (core dumped)" : s;
    }
    case Kind::kUnknown: break;
  }
  return "unknown";
}

Target::Target(uv_loop_t* loop, Options options) : loop_(loop), options_(std::move(options)) {
  started_ns_ = monotonicNs();
}

Result<std::unique_ptr<Target>> Target::spawn(uv_loop_t* loop, const CgroupTree* tree,
                                              Options options, const SpawnOptions& spawn) {
  if (!isValidTargetId(options.id)) return errnoError(EINVAL, "invalid target id");
  if (spawn.argv.empty()) return errnoError(EINVAL, "empty command");
  std::vector<std::string> env = buildEnv(spawn);
  auto path = spawn::resolveExecutable(spawn.argv[0], env);
  if (!path) return path.error();
  return start(loop, tree, std::move(options), {spawn.stdin_mode, spawn.stdout_mode, spawn.stderr_mode},
               [&](int cgroup_fd, const std::array<int, 3>& stdio) {
                 spawn::Plan plan;
                 plan.path = *path;
                 plan.argv = spawn.argv;
                 plan.envp = std::move(env);
                 plan.cwd = spawn.cwd;
                 std::copy(stdio.begin(), stdio.end(), plan.stdio);
                 plan.cgroup_fd = cgroup_fd;
                 plan.fd3 = spawn.fd3;
                 return spawn::start(plan);
               });
}

Result<std::unique_ptr<Target>> Target::start(uv_loop_t* loop, const CgroupTree* tree, Options options,
                                              const std::array<Stdio, 3>& stdio, const Starter& starter) {
  if (!isValidTargetId(options.id)) return errnoError(EINVAL, "invalid target id");
  std::unique_ptr<Target> target(new Target(loop, std::move(options)));
  // Nothing runs yet: until the child exists, ~Target must not try to kill anything.
  target->state_ = State::kDone;
  bool use_cgroup = tree != nullptr && tree->available();
  target->unavailable_limits_ = tree != nullptr ? tree->unavailableLimits(target->options_.limits)
                                                : CgroupTree{}.unavailableLimits(target->options_.limits);
  int cgroup_fd = -1;
  if (use_cgroup) {
    auto cg = target->options_.cgroup_name.empty()
                  ? tree->createJobCgroup(target->options_.id, target->options_.limits)
                  : tree->createNamedCgroup(target->options_.cgroup_name, target->options_.limits);
    if (!cg) return cg.error();
    target->cgroup_ = *cg;
    cgroup_fd = ::open(cg->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0) {
      Error err = errnoError(errno, "open " + *cg);
      ::rmdir(cg->c_str());
      target->cgroup_.clear();
      return err;
    }
  }

  // The child's ends and ours; every fd here is closed on every path below.
  std::array<int, 3> child_fd = {-1, -1, -1};
  int our_fd[3] = {-1, -1, -1};
  Error err;
  for (int i = 0; i < 3 && !err; ++i) {
    if (stdio[i] == Stdio::kNull) {
      child_fd[i] = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (child_fd[i] < 0) err = errnoError(errno, "open /dev/null");
    } else if (stdio[i] == Stdio::kPipe) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) {
        err = errnoError(errno, "pipe2");
      } else {
        // stdin: the child reads fds[0]; stdout/stderr: the child writes fds[1].
        child_fd[i] = i == 0 ? fds[0] : fds[1];
        our_fd[i] = i == 0 ? fds[1] : fds[0];
      }
    }
  }
  Result<ChildProcess> child = errnoError(ECANCELED, "not started");
  if (!err) {
    child = starter(cgroup_fd, child_fd);
    if (!child) err = child.error();
  }
  for (int& fd : child_fd) sys::closeFd(fd);
  sys::closeFd(cgroup_fd);
  if (err) {
    // Orphans first, while our pipe ends keep them from exiting unseen: a child that exits
    // before its pid is read would stay a zombie we have no pidfd for.
    if (!target->cgroup_.empty()) {
      auto populated = readPopulated(target->cgroup_);
      if (populated && *populated) reapOrphans(target->cgroup_);
    }
    for (int& fd : our_fd) sys::closeFd(fd);
    if (!target->cgroup_.empty()) ::rmdir(target->cgroup_.c_str());
    target->cgroup_.clear();
    return err;
  }
  target->pid_ = child->pid;
  target->pidfd_ = child->pidfd;
  target->state_ = State::kRunning;
  target->stdin_fd_ = std::exchange(our_fd[0], -1);
  std::unique_ptr<uv::Handle<uv_pipe_t>>* pipes[3] = {nullptr, &target->stdout_pipe_, &target->stderr_pipe_};
  for (int i = 1; i < 3; ++i) {
    if (our_fd[i] < 0) continue;
    *pipes[i] = openPipe(loop, our_fd[i]);
    sys::closeFd(our_fd[i]);  // only still open if uv_pipe_open failed
    if (!*pipes[i] && !err) err = errnoError(EIO, "uv_pipe_open");
  }
  if (!err) err = target->startWatching();
  // On error the destructor kills, reaps and removes what was started.
  if (err) return err;
  return target;
}

Result<std::unique_ptr<Target>> Target::adopt(uv_loop_t* loop, const CgroupTree* tree,
                                              Options options, int pid) {
  if (!isValidTargetId(options.id)) return errnoError(EINVAL, "invalid target id");
  if (pid <= 0) return errnoError(EINVAL, "invalid pid");
  std::unique_ptr<Target> target(new Target(loop, std::move(options)));
  target->adopted_ = true;
  target->unavailable_limits_ = tree != nullptr ? tree->unavailableLimits(target->options_.limits)
                                                : CgroupTree{}.unavailableLimits(target->options_.limits);
  // The pidfd first: from here on "pid" means this process, whatever later reuses the number.
  target->pidfd_ = sys::pidfdOpen(pid);
  if (target->pidfd_ < 0) return errnoError(errno, "pidfd_open " + std::to_string(pid));
  target->pid_ = pid;
  // Until it is watched, a failure must leave the process alone: ~Target would kill it.
  target->state_ = State::kDone;
  if (tree != nullptr && tree->available()) {
    auto origin = cgroupOfPid(pid);
    if (!origin) return origin.error();
    auto cg = target->options_.cgroup_name.empty()
                  ? tree->createJobCgroup(target->options_.id, target->options_.limits)
                  : tree->createNamedCgroup(target->options_.cgroup_name, target->options_.limits);
    if (!cg) return cg.error();
    target->origin_cgroup_ = *origin;
    target->cgroup_ = *cg;
    if (auto err = sys::writeFile(*cg + "/cgroup.procs", std::to_string(pid))) {
      ::rmdir(cg->c_str());
      target->cgroup_.clear();
      return err;
    }
    // If the process died before the write, the number may have named a newcomer: put whatever
    // we moved back where the original came from and fail. Never signal it.
    if (sys::pidfdSendSignal(target->pidfd_, 0) != 0) {
      Error err = errnoError(ESRCH, "adopt " + std::to_string(pid));
      if (auto moved = readCgroupProcs(*cg)) {
        for (int other : *moved) sys::writeFile(*origin + "/cgroup.procs", std::to_string(other));
      }
      ::rmdir(cg->c_str());
      target->cgroup_.clear();
      return err;
    }
  }
  target->state_ = State::kRunning;
  if (auto err = target->startWatching()) {
    // Hand it back untouched (as release() does) rather than kill a process we failed to watch.
    if (!target->cgroup_.empty()) {
      if (auto moved = readCgroupProcs(target->cgroup_)) {
        for (int other : *moved) {
          sys::writeFile(target->origin_cgroup_ + "/cgroup.procs", std::to_string(other));
        }
      }
      ::rmdir(target->cgroup_.c_str());
      target->cgroup_.clear();
    }
    target->state_ = State::kDone;
    return err;
  }
  return target;
}

Error Target::startWatching() {
  pidfd_poll_ = std::make_unique<uv::Handle<uv_poll_t>>(loop_, pidfd_);
  if (!*pidfd_poll_) return errnoError(-pidfd_poll_->status(), "uv_poll_init pidfd");
  (*pidfd_poll_)->data = this;
  uv_poll_start(pidfd_poll_->get(), UV_READABLE, [](uv_poll_t* h, int, int) {
    static_cast<Target*>(h->data)->onPidfdReadable();
  });

  grace_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  (*grace_timer_)->data = this;
  defer_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  (*defer_timer_)->data = this;

  if (cgroup_.empty()) {
    populated_ = false;
    return {};
  }
  // cgroup.events signals POLLPRI (kernfs_notify) when `populated` changes (cgroup-v2.rst,
  // "cgroup.events"); the state is read once after the watch is armed so no change is missed.
  std::string events = cgroup_ + "/cgroup.events";
  events_fd_ = ::open(events.c_str(), O_RDONLY | O_CLOEXEC);
  if (events_fd_ < 0) return errnoError(errno, "open " + events);
  events_poll_ = std::make_unique<uv::Handle<uv_poll_t>>(loop_, events_fd_);
  if (!*events_poll_) return errnoError(-events_poll_->status(), "uv_poll_init " + events);
  (*events_poll_)->data = this;
  uv_poll_start(events_poll_->get(), UV_PRIORITIZED, [](uv_poll_t* h, int, int) {
    static_cast<Target*>(h->data)->onEventsChanged();
  });
  auto text = sys::readFd(events_fd_, events);
  uint64_t populated = 1;
  if (text && sys::findKeyValue(*text, "populated", populated)) populated_ = populated != 0;
  if (!populated_) uv_timer_start(defer_timer_->get(), [](uv_timer_t* h) {
    static_cast<Target*>(h->data)->onDeferred();
  }, 0, 0);
  return {};
}

bool Target::leaderAlive() const {
  if (leader_exited_ || pidfd_ < 0) return false;
  return sys::pidfdSendSignal(pidfd_, 0) == 0;
}

void Target::onPidfdReadable() {
  if (state_ == State::kDone || leader_exited_) return;
  if (adopted_) {
    // Not our child: readable means it exited; its status belongs to its parent.
    leader_exited_ = true;
  } else {
    siginfo_t info{};
    rusage usage{};
    long rc;
    do {
      rc = waitidRusage(pidfd_, &info, WEXITED | WNOHANG, &usage);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0 || info.si_pid == 0) return;  // not yet (should not happen once readable)
    leader_exited_ = true;
    rusage_cpu_usec_ = rusageUsec(usage);
    if (info.si_code == CLD_EXITED) {
      status_.kind = ExitStatus::Kind::kExited;
      status_.code = info.si_status;
    } else {
      status_.kind = ExitStatus::Kind::kSignaled;
      status_.signal = info.si_status;
      status_.core_dumped = info.si_code == CLD_DUMPED;
    }
  }
  if (pidfd_poll_) uv_poll_stop(pidfd_poll_->get());
  maybeFinish();
}

void Target::onEventsChanged() {
  if (state_ == State::kDone || events_fd_ < 0) return;
  // Reading also re-arms kernfs's poll (it remembers the last event seen per open file).
  auto text = sys::readFd(events_fd_, "cgroup.events");
  uint64_t populated = 1;
  if (!text || !sys::findKeyValue(*text, "populated", populated)) return;
  populated_ = populated != 0;
  maybeFinish();
}

void Target::onDeferred() {
  if (state_ == State::kDone) return;
  if (!cgroup_.empty()) {
    if (auto populated = readPopulated(cgroup_)) populated_ = *populated;
  }
  maybeFinish();
}

void Target::maybeFinish() {
  if (state_ == State::kDone) return;
  if (!leader_exited_ && !released_) return;
  if (!cgroup_.empty() && populated_) {
    // The event may still be in flight; the file is the truth.
    if (auto populated = readPopulated(cgroup_)) populated_ = *populated;
  }
  if (!cgroup_.empty() && populated_) {
    // The leader is gone but its tree is not: kill the rest (once), or wait for it.
    if (options_.kill_stragglers && !released_ && !stragglers_killed_) {
      stragglers_killed_ = true;
      killAll();
    }
    return;
  }
  finish();
}

void Target::finish() {
  // Reached from maybeFinish() only: leader gone (or released) and cgroup empty.
  state_ = State::kDone;
  uint64_t now = monotonicNs();
  Outcome outcome;
  outcome.id = options_.id;
  outcome.pid = pid_;
  outcome.status = status_;
  outcome.in_cgroup = !cgroup_.empty();
  outcome.cgroup = cgroup_;
  outcome.released = released_;
  outcome.started_ns = started_ns_;
  outcome.done_ns = now;
  if (!cgroup_.empty()) {
    if (auto usage = readCpuUsageUsec(cgroup_)) outcome.cpu_usec = *usage;
    if (::rmdir(cgroup_.c_str()) != 0) outcome.cleanup_error = errnoError(errno, "rmdir " + cgroup_);
    cgroup_.clear();
  } else {
    outcome.cpu_usec = rusage_cpu_usec_;
  }
  if (cancel_) {
    cancel_->exited_ns = now;
    outcome.cancel = cancel_;
  }
  closeWatchers();
  // The callback may destroy us: nothing of `this` is touched after it.
  DoneCallback on_done = std::move(options_.on_done);
  if (on_done) on_done(*this, outcome);
}

void Target::closeWatchers() {
  // uv_close takes the fds out of epoll at once, so closing them right after is safe.
  if (pidfd_poll_) pidfd_poll_->close();
  if (events_poll_) events_poll_->close();
  if (grace_timer_) grace_timer_->close();
  if (defer_timer_) defer_timer_->close();
  sys::closeFd(pidfd_);
  sys::closeFd(events_fd_);
  sys::closeFd(stdin_fd_);  // untaken: the child's stdin reaches its end
}

Target::State Target::cancel(CancelAction action, uint64_t grace_ms, std::string_view reason) {
  if (state_ == State::kDone) return state_;
  uint64_t now = monotonicNs();
  if (!cancel_) {
    cancel_.emplace();
    cancel_->received_ns = now;
    cancel_->reason = std::string(reason);
    cancel_->action = action;
  }
  if (action == CancelAction::Kill) {
    doKill(now);
    return state_;
  }
  uint64_t grace_ns = std::min(grace_ms, options_.max_grace_ms) * kNsPerMs;
  if (state_ == State::kRunning) {
    state_ = State::kInterrupting;
    cancel_->interrupt_error =
        options_.interrupt ? options_.interrupt(*this) : signalAll(options_.interrupt_signal);
    if (cancel_->signalled_ns == 0) cancel_->signalled_ns = monotonicNs();
    grace_deadline_ns_ = now + grace_ns;
  } else if (state_ == State::kInterrupting && now + grace_ns < grace_deadline_ns_) {
    grace_deadline_ns_ = now + grace_ns;  // a later cancel may shorten the grace, never restart it
  } else {
    return state_;
  }
  armGraceTimer(now);
  return state_;
}

Target::State Target::regrace(uint64_t grace_ms) {
  if (state_ != State::kInterrupting || !cancel_) return state_;
  const uint64_t now = monotonicNs();
  grace_deadline_ns_ = cancel_->signalled_ns + std::min(grace_ms, options_.max_grace_ms) * kNsPerMs;
  if (grace_deadline_ns_ <= now) {
    doKill(now);
    return state_;
  }
  armGraceTimer(now);
  return state_;
}

void Target::armGraceTimer(uint64_t now_ns) {
  // libuv timers count from the loop's cached time, truncated to the ms: refresh it and round up
  // by one so that the grace is never shorter than asked.
  uv_update_time(loop_);
  uint64_t remaining_ms = (grace_deadline_ns_ - now_ns + kNsPerMs - 1) / kNsPerMs + 1;
  uv_timer_start(grace_timer_->get(), [](uv_timer_t* h) {
    static_cast<Target*>(h->data)->onGraceExpired();
  }, remaining_ms, 0);
}

void Target::onGraceExpired() {
  if (state_ != State::kInterrupting) return;
  doKill(monotonicNs());
}

void Target::doKill(uint64_t now_ns) {
  if (state_ == State::kKilling || state_ == State::kDone) return;
  uv_timer_stop(grace_timer_->get());
  state_ = State::kKilling;
  cancel_->action = CancelAction::Kill;
  Error err = killAll();
  cancel_->kill_error = err;
  cancel_->killed_ns = now_ns;
  if (cancel_->signalled_ns == 0) cancel_->signalled_ns = now_ns;
}

Error Target::signalAll(int sig) {
  // pid_ 0 would make kill(-pid_) signal our own process group.
  if (state_ == State::kDone || pid_ <= 0) return errnoError(ESRCH, "signal " + options_.id);
  if (cgroup_.empty()) {
    // Fallback. A spawned leader that is not reaped keeps its pid and group id reserved, so the
    // group is ours; an adopted process is reached through its pidfd only.
    if (!adopted_ && !leader_exited_) {
      if (::kill(-pid_, sig) == 0) return {};
    }
    if (leader_exited_ || pidfd_ < 0) return errnoError(ESRCH, "signal " + options_.id);
    if (sys::pidfdSendSignal(pidfd_, sig) != 0) {
      return errnoError(errno, "pidfd_send_signal " + std::to_string(pid_));
    }
    return {};
  }
  // Every member, re-reading until no new pid shows up: a child forked while we signal appears
  // in the next read. Membership guards against reuse: a pid that left the cgroup is not read.
  std::vector<int> signalled;
  for (int round = 0; round < kSignalRounds; ++round) {
    auto procs = readCgroupProcs(cgroup_);
    if (!procs) return procs.error();
    bool fresh = false;
    for (int pid : *procs) {
      if (std::find(signalled.begin(), signalled.end(), pid) != signalled.end()) continue;
      fresh = true;
      signalled.push_back(pid);
      ::kill(pid, sig);  // ESRCH: it exited between the read and now, which is fine
    }
    if (!fresh) break;
  }
  if (signalled.empty()) return errnoError(ESRCH, "signal " + options_.id + ": cgroup empty");
  return {};
}

Error Target::killAll() {
  if (state_ == State::kDone || pid_ <= 0) return {};
  if (cgroup_.empty()) {
    Error err = signalAll(SIGKILL);
    return err.code == ESRCH ? Error{} : err;
  }
  // cgroup.kill SIGKILLs every process of the subtree and whatever forks meanwhile
  // (cgroup-v2.rst, "cgroup.kill"). The cgroup is never reused afterwards.
  return sys::writeFile(cgroup_ + "/cgroup.kill", "1");
}

Error Target::release() {
  if (!adopted_) return errnoError(EINVAL, "release of a spawned target");
  if (state_ == State::kDone || released_) return {};
  released_ = true;
  uv_timer_stop(grace_timer_->get());
  Error first;
  if (!cgroup_.empty()) {
    auto procs = readCgroupProcs(cgroup_);
    if (!procs) return procs.error();
    for (int pid : *procs) {
      Error err = sys::writeFile(origin_cgroup_ + "/cgroup.procs", std::to_string(pid));
      if (err && !first) first = err;
    }
  }
  // Finish from the loop, never inside the caller (which may be iterating its own table).
  uv_timer_start(defer_timer_->get(), [](uv_timer_t* h) {
    static_cast<Target*>(h->data)->onDeferred();
  }, 0, 0);
  return first;
}

std::unique_ptr<uv::Stream> Target::takeStdinStream(uv::StreamEvents& events) {
  if (stdin_fd_ < 0) return nullptr;
  auto stream = std::make_unique<uv::Stream>(loop_, uv::StreamKind::Pipe, events);
  if (stream->status() != 0 || stream->open(stdin_fd_) != 0) return nullptr;  // the fd stays ours
  stdin_fd_ = -1;  // the stream owns it now
  return stream;
}
std::unique_ptr<uv::Handle<uv_pipe_t>> Target::takeStdoutPipe() { return std::move(stdout_pipe_); }
std::unique_ptr<uv::Handle<uv_pipe_t>> Target::takeStderrPipe() { return std::move(stderr_pipe_); }

Target::~Target() {
  if (state_ != State::kDone) {
    // Shutdown or an error path: kill the tree and wait (bounded) so no process or cgroup stays.
    if (!released_) killAll();
    if (!adopted_ && !leader_exited_ && pidfd_ >= 0) {
      if (cgroup_.empty()) sys::pidfdSendSignal(pidfd_, SIGKILL);
      pollfd pfd{pidfd_, POLLIN, 0};
      if (::poll(&pfd, 1, kDestroyWaitMs) > 0) {
        siginfo_t info{};
        ::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG);
      }
    }
    if (!cgroup_.empty()) {
      uint64_t deadline = monotonicNs() + kDestroyWaitMs * kNsPerMs;
      for (;;) {
        // Read through events_fd_ itself: that is what re-arms its POLLPRI.
        auto text = events_fd_ >= 0 ? sys::readFd(events_fd_, "cgroup.events")
                                    : sys::readFile(cgroup_ + "/cgroup.events");
        uint64_t populated = 0;
        if (!text || !sys::findKeyValue(*text, "populated", populated) || populated == 0) break;
        uint64_t now = monotonicNs();
        if (now >= deadline || events_fd_ < 0) break;
        pollfd pfd{events_fd_, POLLPRI, 0};
        ::poll(&pfd, 1, static_cast<int>((deadline - now) / kNsPerMs) + 1);
      }
      ::rmdir(cgroup_.c_str());
    }
  }
  closeWatchers();
}

}  // namespace tether::agent::supervise
