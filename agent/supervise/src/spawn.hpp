#pragma once
// Private: starting a child inside a cgroup (used by Target::spawn).
#include <string>
#include <vector>

#include "tether/agent/supervise/child.hpp"
#include "tether/agent/supervise/error.hpp"

namespace tether::agent::supervise::spawn {

using Child = ChildProcess;

// clone3(2) with CLONE_PIDFD, into the cgroup `cgroup_fd` (CLONE_INTO_CGROUP; -1: the caller's)
// and, with `as_sibling`, as a child of the caller's parent (CLONE_PARENT: the fork server's
// children are solverd's). Returns as fork() does: 0 in the child, the pid in the caller with
// *pidfd set, -1 with errno (ENOSYS/EPERM where a seccomp profile filters clone3).
long cloneInto(int cgroup_fd, bool as_sibling, int* pidfd);
// Where clone3 is filtered: clone(2) with CLONE_PARENT | CLONE_PIDFD (a child of the caller's
// parent, *pidfd set), which has no CLONE_INTO_CGROUP: the child joins its cgroup itself.
long cloneSibling(int* pidfd);

// Between a fork and exec (or the fork server's child main), async-signal-safe: the signal mask
// emptied and every disposition back to SIG_DFL (SIG_IGN survives exec, and a daemon's blocked
// or ignored signals must not leak into a solver).
void resetSignals();
// Puts fds[i] (when >= 0) on fd i for i < n, lifting every source to n or above first so that
// placing one cannot clobber another. False with errno on failure. Async-signal-safe.
bool placeFds(const int* fds, int n);

// Everything the child needs, prepared in the parent: after fork the child only makes
// async-signal-safe system calls (the daemon may have other threads holding locks).
struct Plan {
  std::string path;                 // resolved executable
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::string cwd;
  int stdio[3] = {-1, -1, -1};      // fd for 0, 1, 2; -1 inherits
  int fd3 = -1;                     // fd for 3; -1: none
  int cgroup_fd = -1;               // the job cgroup directory; -1: no cgroup
  bool new_process_group = true;
};

// Starts the child and waits until it has exec'd (or reports why it could not). clone3 with
// CLONE_INTO_CGROUP | CLONE_PIDFD where available; else fork, the child writing itself into
// cgroup.procs, and pidfd_open. The caller owns child.pidfd and reaps through it.
Result<Child> start(const Plan& plan);

// For tests: make start() take the fork path even where clone3 works.
void forceForkForTesting(bool on);

// argv[0] looked up in PATH (from `env` if it sets PATH, else ours); ENOENT if not found.
Result<std::string> resolveExecutable(const std::string& name, const std::vector<std::string>& env);

}  // namespace tether::agent::supervise::spawn
