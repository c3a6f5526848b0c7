#include "spawn.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>

#include "sys.hpp"

namespace tether::agent::supervise::spawn {
namespace {

std::atomic<bool> force_fork{false};

// What the child reports through the exec-error pipe when a step fails before exec.
enum class Stage : int { kCgroup = 1, kProcessGroup, kStdio, kChdir, kExec };

struct Report {
  Stage stage;
  int err;
};

const char* stageName(Stage stage) {
  switch (stage) {
    case Stage::kCgroup: return "join cgroup";
    case Stage::kProcessGroup: return "setpgid";
    case Stage::kStdio: return "set up stdio";
    case Stage::kChdir: return "chdir";
    case Stage::kExec: return "exec";
  }
  return "start";
}

struct RawPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  const int* stdio;
  int fd3;
  int procs_fd;  // fork path: cgroup.procs to write "0" (= the writer) into
  int report_fd;
  bool new_process_group;
};

[[noreturn]] void fail(int report_fd, Stage stage) {
  Report report{stage, errno};
  // Nothing to do if the parent is gone; _exit either way.
  [[maybe_unused]] ssize_t n = ::write(report_fd, &report, sizeof report);
  ::_exit(127);
}

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void runChild(const RawPlan& p) {
  // Signal dispositions and mask are inherited across exec; a daemon's blocked or ignored
  // signals (SIGPIPE, those libuv watches) must not leak into the solver. Handlers reset on exec
  // anyway; SIG_IGN does not.
  resetSignals();
  if (p.procs_fd >= 0 && ::write(p.procs_fd, "0", 1) != 1) fail(p.report_fd, Stage::kCgroup);
  if (p.new_process_group && ::setpgid(0, 0) != 0) fail(p.report_fd, Stage::kProcessGroup);
  const int fds[4] = {p.stdio[0], p.stdio[1], p.stdio[2], p.fd3};
  const int placed = p.fd3 >= 0 ? 4 : 3;
  if (!placeFds(fds, placed)) fail(p.report_fd, Stage::kStdio);
  // Every other fd is closed at exec, whoever opened it without O_CLOEXEC.
  ::close_range(static_cast<unsigned>(placed), ~0U, CLOSE_RANGE_CLOEXEC);
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) fail(p.report_fd, Stage::kChdir);
  ::execve(p.path, p.argv, p.envp);
  fail(p.report_fd, Stage::kExec);
}

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Reaps a child that failed before exec; it has exited or is about to.
void reap(int pidfd) {
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0 && errno == EINTR) {
  }
}

}  // namespace

void resetSignals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
}

bool placeFds(const int* fds, int n) {
  int lifted[4] = {-1, -1, -1, -1};
  if (n > 4) return false;
  for (int i = 0; i < n; ++i) {
    if (fds[i] < 0) continue;
    lifted[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, n);
    if (lifted[i] < 0) return false;
  }
  // dup2 clears O_CLOEXEC on the copy: these stay open across exec.
  for (int i = 0; i < n; ++i) {
    if (lifted[i] >= 0 && ::dup2(lifted[i], i) < 0) return false;
  }
  return true;
}

long cloneInto(int cgroup_fd, bool as_sibling, int* pidfd) {
  clone_args args{};
  args.flags = CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0) | (as_sibling ? CLONE_PARENT : 0);
  args.pidfd = reinterpret_cast<uintptr_t>(pidfd);
  // With CLONE_PARENT the kernel takes the exit signal of the caller (SIGCHLD for a process that
  // was itself forked) and refuses any other (kernel/fork.c, clone3_args_valid).
  args.exit_signal = as_sibling ? 0 : SIGCHLD;
  args.cgroup = cgroup_fd >= 0 ? static_cast<uint64_t>(cgroup_fd) : 0;
  return ::syscall(SYS_clone3, &args, sizeof args);
}

long cloneSibling(int* pidfd) {
  // clone(2)'s third argument is the parent's tid pointer on every architecture's argument order,
  // which is where CLONE_PIDFD stores the pidfd; exit signal 0: CLONE_PARENT takes the caller's.
  return ::syscall(SYS_clone, CLONE_PARENT | CLONE_PIDFD, nullptr, pidfd, nullptr, nullptr);
}

void forceForkForTesting(bool on) { force_fork = on; }

Result<std::string> resolveExecutable(const std::string& name, const std::vector<std::string>& env) {
  if (name.empty()) return errnoError(EINVAL, "empty command");
  if (name.find('/') != std::string::npos) return name;
  std::string path_var;
  bool from_env = false;
  for (const auto& e : env) {
    if (e.compare(0, 5, "PATH=") == 0) {
      path_var = e.substr(5);
      from_env = true;
    }
  }
  if (!from_env) {
    const char* p = std::getenv("PATH");
    path_var = p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
  }
  int last_error = ENOENT;
  size_t pos = 0;
  while (pos <= path_var.size()) {
    size_t end = path_var.find(':', pos);
    if (end == std::string::npos) end = path_var.size();
    std::string dir = path_var.substr(pos, end - pos);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (errno == EACCES) last_error = EACCES;
    pos = end + 1;
  }
  return errnoError(last_error, "find " + name + " in PATH");
}

Result<Child> start(const Plan& plan) {
  std::vector<char*> argv = pointers(plan.argv);
  std::vector<char*> envp = pointers(plan.envp);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errnoError(errno, "pipe2");
  RawPlan raw{plan.path.c_str(), argv.data(), envp.data(),
              plan.cwd.empty() ? nullptr : plan.cwd.c_str(), plan.stdio, plan.fd3, -1, report[1],
              plan.new_process_group};

  Child child;
  bool forked = false;
  if (!force_fork) {
    long pid = cloneInto(plan.cgroup_fd, false, &child.pidfd);
    if (pid == 0) runChild(raw);
    if (pid > 0) {
      child.pid = static_cast<int>(pid);
      forked = true;
    } else if (errno != ENOSYS && errno != EPERM) {
      // ENOSYS/EPERM: clone3 filtered by a seccomp profile (older container runtimes); any
      // other error is real (e.g. the cgroup refuses: EBUSY, EOPNOTSUPP).
      int err = errno;
      sys::closeFd(report[0]);
      sys::closeFd(report[1]);
      return errnoError(err, "clone3");
    }
  }
  if (!forked) {
    int procs_fd = -1;
    if (plan.cgroup_fd >= 0) {
      procs_fd = ::openat(plan.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (procs_fd < 0) {
        int err = errno;
        sys::closeFd(report[0]);
        sys::closeFd(report[1]);
        return errnoError(err, "open cgroup.procs");
      }
    }
    raw.procs_fd = procs_fd;
    pid_t pid = ::fork();
    if (pid == 0) runChild(raw);
    int err = errno;
    sys::closeFd(procs_fd);
    if (pid < 0) {
      sys::closeFd(report[0]);
      sys::closeFd(report[1]);
      return errnoError(err, "fork");
    }
    child.pid = pid;
    // Our own unreaped child: its pid cannot be reused before we wait for it, so no race.
    child.pidfd = sys::pidfdOpen(pid);
    if (child.pidfd < 0) {
      // Should never happen on a kernel with cgroup v2 + pidfds (5.3+); reap it the old way.
      err = errno;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      sys::closeFd(report[0]);
      sys::closeFd(report[1]);
      return errnoError(err, "pidfd_open");
    }
  }
  sys::closeFd(report[1]);
  // Blocks only until the child execs (the report pipe closes on exec), as uv_spawn does.
  Report r{};
  ssize_t n;
  do {
    n = ::read(report[0], &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  sys::closeFd(report[0]);
  if (n == static_cast<ssize_t>(sizeof r)) {
    reap(child.pidfd);
    sys::closeFd(child.pidfd);
    return errnoError(r.err, std::string(stageName(r.stage)) + " " + plan.path);
  }
  return child;
}

}  // namespace tether::agent::supervise::spawn
