#pragma once
// A child process of this process as the supervision library takes it over: its pid, and a
// pidfd that the Target watches and reaps through (waitid(P_PIDFD) works for our own children
// only, so whoever made it must have made it ours: fork, clone3, or CLONE_PARENT from a child).

namespace tether::agent::supervise {

struct ChildProcess {
  int pid = -1;
  int pidfd = -1;
};

}  // namespace tether::agent::supervise
