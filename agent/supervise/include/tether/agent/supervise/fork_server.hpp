#pragma once
// A fork server: a long-lived process with its libraries loaded (solverd-worker --fork-server)
// that clones each new child straight into a cgroup chosen by its client, without an exec. Both
// halves of its wire format are here. The client (solverd) and the server share a
// SOCK_SEQPACKET socketpair (one message per datagram, the server's end on its fd 3):
//
//   server -> client, once it is ready:  Reply{kMagic, seq 0, its pid, error 0}
//   client -> server:  Request{kMagic, seq}   + SCM_RIGHTS [cgroup dir, fd 0, fd 1, fd 2]
//   server -> client:  Reply{kMagic, seq, pid, 0} + SCM_RIGHTS [pidfd]   or Reply{..., -1, errno}
//
// The child is made with clone3(CLONE_INTO_CGROUP | CLONE_PIDFD | CLONE_PARENT): it starts in
// its cgroup and is the client's child (the server's sibling), so the client reaps it through
// the pidfd with waitid(P_PIDFD) as a child it spawned itself (Target::start). Where clone3 is
// filtered (ENOSYS or EPERM: systemd's RestrictNamespaces= answers ENOSYS to every clone3, as
// solverd.service sets it), clone(2) with CLONE_PARENT | CLONE_PIDFD, the child writing itself
// into the cgroup's cgroup.procs before anything else (as Target::spawn's fork fallback does
// before its exec) and the server writing it there too before it answers: the child runs nothing
// outside its cgroup, and is in it once the client has it.
// The server keeps nothing of the child: the fds it was sent are closed once the child exists.
//
// The server must be single-threaded: the child runs on from the clone without an exec, and a
// lock held by another thread at the clone would stay held in the child forever. The clone is a
// raw system call (glibc has no clone3 wrapper), so glibc's thread descriptor in the child keeps
// the server's tid: calls that act on the calling thread through that cached tid
// (pthread_setaffinity_np or pthread_setschedparam on pthread_self(), PI mutexes) would reach
// the server; the worker and its solver libraries use none of them.
#include <array>

#include "tether/agent/supervise/child.hpp"
#include "tether/agent/supervise/error.hpp"

namespace tether::agent::supervise::fork_server {

// The fd the server's end of the socket is on.
constexpr int kServerFd = 3;

// In the server process. Announces itself, then makes a child per request until the client's
// end closes. Returns kDone in the server (its client is gone: exit), kChild in a new child (in
// its cgroup, fds 0-2 set, every other fd closed, signal mask and dispositions reset, in a
// process group of its own: run the child's main), or an error (the server cannot go on: exit).
enum class Role { kDone, kChild };
struct ServeOptions {
  bool force_clone2 = false;  // tests: take the clone(2) path even where clone3 works
};
Result<Role> serve(int sock, ServeOptions options = {});

// In the client. Waits (at most `timeout_ms`) for the server's announcement; its pid.
Result<int> awaitReady(int sock, int timeout_ms);
// Asks the server for a child in `cgroup_fd` with stdio[i] on its fd i (all four fds required),
// waiting at most `timeout_ms` for the answer (ETIMEDOUT: the server is stuck). The fds stay the
// caller's. The child is the caller's own; the caller owns its pidfd.
Result<ChildProcess> request(int sock, int cgroup_fd, const std::array<int, 3>& stdio, int timeout_ms);

}  // namespace tether::agent::supervise::fork_server
