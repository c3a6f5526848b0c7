#pragma once
// Private: starting a child inside a cgroup (used by Target::spawn).
#include <string>
#include <vector>

#include "tether/agent/supervise/error.hpp"

namespace tether::agent::supervise::spawn {

struct Child {
  int pid = -1;
  int pidfd = -1;
};

// Everything the child needs, prepared in the parent: after fork the child only makes
// async-signal-safe system calls (the daemon may have other threads holding locks).
struct Plan {
  std::string path;                 // resolved executable
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::string cwd;
  int stdio[3] = {-1, -1, -1};      // fd for 0, 1, 2; -1 inherits
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
