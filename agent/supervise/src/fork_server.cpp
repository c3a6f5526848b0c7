#include "tether/agent/supervise/fork_server.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>

#include "spawn.hpp"
#include "sys.hpp"
#include "tether/common/clock.hpp"

namespace tether::agent::supervise::fork_server {
namespace {

constexpr uint32_t kMagic = 0x74667331;  // "tfs1"
constexpr int kRequestFds = 4;           // cgroup dir, stdin, stdout, stderr

struct Request {
  uint32_t magic = kMagic;
  uint32_t seq = 0;
};

struct Reply {
  uint32_t magic = kMagic;
  uint32_t seq = 0;
  int32_t pid = -1;
  int32_t error = 0;
};

// One datagram with up to kRequestFds fds. MSG_CMSG_CLOEXEC: a received fd never leaks into an
// exec (the server's children close every fd anyway).
struct Received {
  ssize_t bytes = -1;
  int fds[kRequestFds] = {-1, -1, -1, -1};
  int nfds = 0;
  bool truncated = false;
};

Received receive(int sock, void* body, size_t size) {
  Received r;
  iovec iov{body, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kRequestFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  do {
    r.bytes = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (r.bytes < 0 && errno == EINTR);
  if (r.bytes < 0) return r;
  r.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (r.nfds < kRequestFds) {
        r.fds[r.nfds++] = fd;
      } else {
        ::close(fd);
        r.truncated = true;
      }
    }
  }
  return r;
}

void closeAll(Received& r) {
  for (int i = 0; i < r.nfds; ++i) sys::closeFd(r.fds[i]);
  r.nfds = 0;
}

// Sends `body` with `fds` attached (nfds may be 0).
int sendWith(int sock, const void* body, size_t size, const int* fds, int nfds) {
  iovec iov{const_cast<void*>(body), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kRequestFds)]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<size_t>(nfds));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<size_t>(nfds));
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<size_t>(nfds));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(size) ? 0 : (n < 0 ? errno : EMSGSIZE);
}

// Waits for `sock` to be readable until `deadline_ns` (CLOCK_MONOTONIC); 0, ETIMEDOUT or errno.
int waitReadable(int sock, uint64_t deadline_ns) {
  for (;;) {
    uint64_t now = monotonicNs();
    pollfd pfd{sock, POLLIN, 0};
    int n = ::poll(&pfd, 1, now >= deadline_ns ? 0 : static_cast<int>((deadline_ns - now + 999'999) / 1'000'000));
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return errno;
    if (n == 0 && monotonicNs() >= deadline_ns) return ETIMEDOUT;
  }
}

Result<Reply> receiveReply(int sock, int timeout_ms, int* pidfd) {
  if (int err = waitReadable(sock, monotonicNs() + static_cast<uint64_t>(timeout_ms) * 1'000'000)) {
    return errnoError(err, "wait for the fork server");
  }
  Reply reply;
  Received r = receive(sock, &reply, sizeof reply);
  if (r.bytes == 0) return errnoError(EPIPE, "the fork server closed its socket");
  if (r.bytes < 0) return errnoError(errno, "recvmsg from the fork server");
  if (r.bytes != static_cast<ssize_t>(sizeof reply) || reply.magic != kMagic || r.truncated ||
      r.nfds > (pidfd != nullptr ? 1 : 0)) {
    closeAll(r);
    return errnoError(EPROTO, "bad message from the fork server");
  }
  if (pidfd != nullptr) *pidfd = r.nfds == 1 ? r.fds[0] : -1;
  return reply;
}

// In the new child, before it returns into its main: async-signal-safe calls only (the server
// is single-threaded, so this is belt and braces, but cheap).
bool becomeChild(const Received& r, int procs_fd) {
  // clone(2) path: into the cgroup before anything else (the server moves us too, before it
  // answers; whichever write comes second is a no-op).
  if (procs_fd >= 0 && ::write(procs_fd, "0", 1) != 1) return false;
  spawn::resetSignals();
  // Its own process group, as a spawned target's (a terminal's ^C to solverd's group must not
  // reach a waiting spare).
  if (::setpgid(0, 0) != 0) return false;
  const int stdio[3] = {r.fds[1], r.fds[2], r.fds[3]};
  if (!spawn::placeFds(stdio, 3)) return false;
  // The server's socket, the fds it was sent and anything else it had open: nothing of the
  // server stays in the child (it execs nothing, so CLOEXEC would not do it).
  return ::close_range(3, ~0U, 0) == 0;
}

// Threads of this process (entries of /proc/self/task), 0 if unreadable.
int threadCount() {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

}  // namespace

Result<Role> serve(int sock, ServeOptions options) {
  bool clone3_filtered = options.force_clone2;
  Reply ready;
  ready.pid = static_cast<int32_t>(::getpid());
  if (int err = sendWith(sock, &ready, sizeof ready, nullptr, 0)) return errnoError(err, "announce the fork server");
  for (;;) {
    Request req;
    Received r = receive(sock, &req, sizeof req);
    if (r.bytes == 0) return Role::kDone;
    if (r.bytes < 0) return errnoError(errno, "recvmsg");
    Reply reply;
    reply.seq = req.seq;
    if (r.bytes != static_cast<ssize_t>(sizeof req) || req.magic != kMagic || r.truncated || r.nfds != kRequestFds) {
      reply.error = EPROTO;
    } else {
      // Checked before every clone, not once: a library may start a thread late (the child runs
      // on without an exec, so a lock held by another thread would never be released in it).
      if (int threads = threadCount(); threads != 1) {
        closeAll(r);
        return errnoError(EDEADLK, "the fork server has " + std::to_string(threads) + " threads, not 1");
      }
      int pidfd = -1;
      int procs_fd = -1;
      long pid = -1;
      if (!clone3_filtered) {
        pid = spawn::cloneInto(r.fds[0], /*as_sibling=*/true, &pidfd);
        // Filtered once, filtered for good: no second failed clone3 per request.
        if (pid < 0 && (errno == ENOSYS || errno == EPERM)) clone3_filtered = true;
      }
      if (clone3_filtered) {
        procs_fd = ::openat(r.fds[0], "cgroup.procs", O_WRONLY | O_CLOEXEC);
        pid = procs_fd < 0 ? -1 : spawn::cloneSibling(&pidfd);
      }
      if (pid == 0) {
        if (becomeChild(r, procs_fd)) return Role::kChild;
        static constexpr char kNote[] = "fork server child: cannot join its cgroup or set up its stdio\n";
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kNote, sizeof kNote - 1);
        ::_exit(127);
      }
      if (pid < 0) {
        reply.error = errno;
      } else {
        reply.pid = static_cast<int32_t>(pid);
        // clone(2) path: the server moves the child into its cgroup before it answers, so the
        // child is there when the client watches it (a cgroup.kill must reach it), whether or not
        // the child has run yet. Failing that, the child is killed and handed over all the same,
        // for the client to reap.
        if (procs_fd >= 0) {
          std::string text = std::to_string(pid);
          if (::write(procs_fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
            reply.error = errno != 0 ? errno : EIO;
            sys::pidfdSendSignal(pidfd, SIGKILL);
          }
        }
      }
      sys::closeFd(procs_fd);
      closeAll(r);
      int err = sendWith(sock, &reply, sizeof reply, &pidfd, pidfd >= 0 ? 1 : 0);
      sys::closeFd(pidfd);
      // The child is the client's either way; without the answer the client times out and
      // restarts us.
      if (err != 0) return errnoError(err, "answer the client");
      continue;
    }
    closeAll(r);
    if (int err = sendWith(sock, &reply, sizeof reply, nullptr, 0)) return errnoError(err, "answer the client");
  }
}

Result<int> awaitReady(int sock, int timeout_ms) {
  auto reply = receiveReply(sock, timeout_ms, nullptr);
  if (!reply) return reply.error();
  if (reply->seq != 0 || reply->pid <= 0) return errnoError(EPROTO, "bad announcement from the fork server");
  return static_cast<int>(reply->pid);
}

Result<ChildProcess> request(int sock, int cgroup_fd, const std::array<int, 3>& stdio, int timeout_ms) {
  static uint32_t next_seq = 1;  // the client runs on one thread (solverd's loop)
  Request req;
  req.seq = next_seq++;
  if (req.seq == 0) req.seq = next_seq++;
  int fds[kRequestFds] = {cgroup_fd, stdio[0], stdio[1], stdio[2]};
  for (int fd : fds) {
    if (fd < 0) return errnoError(EBADF, "fork server request");
  }
  if (int err = sendWith(sock, &req, sizeof req, fds, kRequestFds)) return errnoError(err, "send to the fork server");
  int pidfd = -1;
  auto reply = receiveReply(sock, timeout_ms, &pidfd);
  if (!reply) return reply.error();
  ChildProcess child{reply->pid, pidfd};
  if (reply->seq != req.seq || (reply->error == 0 && (reply->pid <= 0 || pidfd < 0))) {
    // A child we cannot account for: kill it (it is ours), and the caller restarts the server.
    if (pidfd >= 0) sys::pidfdSendSignal(pidfd, SIGKILL);
    sys::closeFd(child.pidfd);
    return errnoError(EPROTO, "bad answer from the fork server");
  }
  if (reply->error != 0) {
    if (child.pidfd >= 0) {
      // A child that could not join its cgroup, killed by the server: ours to reap.
      siginfo_t info{};
      while (::waitid(P_PIDFD, static_cast<id_t>(child.pidfd), &info, WEXITED) != 0 && errno == EINTR) {
      }
    }
    sys::closeFd(child.pidfd);
    return errnoError(reply->error, "clone in the fork server");
  }
  return child;
}

}  // namespace tether::agent::supervise::fork_server
