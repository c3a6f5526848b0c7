// Process trees for the supervision tests (tests/agent/supervise_test.cpp). Every mode prints
// "ready PID..." on stdout once its whole tree is set up (so tests wait for that line, never
// sleep), listing every pid of the tree, then waits for signals.
//
//   tree N            leader + N children, each with one grandchild; default SIGINT
//   ignore-int N      the same, every process ignores SIGINT
//   setsid            leader + a child that calls setsid() (escapes the process group)
//   die-together N    leader + N children; the first SIGINT anyone gets SIGKILLs the whole
//                     group, so processes exit while the supervisor is still signalling
//   exit CODE         exits at once with CODE, printing nothing
//   pause             a single process that just waits
//   fork-server       agent/supervise's fork server on fd 3 (fork_server.hpp); each child it makes
//                     prints "forked PID PPID CGROUP" (its v2 cgroup from /proc/self/cgroup),
//                     reads its stdin to the end and exits 9; the server exits 0 when its client
//                     closes the socket
//   fork-server-clone2  the same, the server using clone(2) as where clone3 is filtered
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tether/agent/supervise/fork_server.hpp"

namespace {

int ready_pipe[2];

void waitForever() {
  for (;;) pause();
}

// Tells the leader "I am set up" by sending our pid through the shared pipe.
void announce() {
  int pid = getpid();
  if (write(ready_pipe[1], &pid, sizeof pid) != sizeof pid) _exit(3);
}

void onSigintKillGroup(int) { kill(0, SIGKILL); }

// Forks a process that runs `body`; the parent returns.
template <typename F>
void spawnChild(F body) {
  pid_t pid = fork();
  if (pid < 0) _exit(4);
  if (pid == 0) {
    body();
    _exit(0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: supervise_fixture MODE [N]\n");
    return 2;
  }
  std::string mode = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : 0;
  if (mode == "exit") return n;
  if (mode == "fork-server" || mode == "fork-server-clone2") {
    namespace fs = tether::agent::supervise::fork_server;
    auto role = fs::serve(fs::kServerFd, fs::ServeOptions{mode == "fork-server-clone2"});
    if (!role) {
      std::fprintf(stderr, "fork server: %s\n", role.error().message().c_str());
      return 1;
    }
    if (*role == fs::Role::kDone) return 0;
    char cgroup[512] = {};
    if (FILE* f = std::fopen("/proc/self/cgroup", "r")) {
      char line[512];
      while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "0::", 3) == 0) std::snprintf(cgroup, sizeof cgroup, "%s", line + 3);
      }
      std::fclose(f);
    }
    std::printf("forked %d %d %s", getpid(), getppid(), cgroup);
    std::fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 9;
  }
  if (pipe(ready_pipe) != 0) return 3;
  int expected = 0;
  if (mode == "tree" || mode == "ignore-int") {
    if (mode == "ignore-int") signal(SIGINT, SIG_IGN);  // inherited by the whole tree
    for (int i = 0; i < n; ++i) {
      spawnChild([] {
        spawnChild([] {
          announce();
          waitForever();
        });
        announce();
        waitForever();
      });
    }
    expected = 2 * n;
  } else if (mode == "setsid") {
    spawnChild([] {
      if (setsid() < 0) _exit(5);
      announce();
      waitForever();
    });
    expected = 1;
  } else if (mode == "die-together") {
    signal(SIGINT, onSigintKillGroup);
    for (int i = 0; i < n; ++i) {
      spawnChild([] {
        announce();
        waitForever();
      });
    }
    expected = n;
  } else if (mode != "pause") {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::string line = "ready " + std::to_string(getpid());
  for (int i = 0; i < expected; ++i) {
    int pid = 0;
    if (read(ready_pipe[0], &pid, sizeof pid) != sizeof pid) return 6;
    line += " " + std::to_string(pid);
  }
  line += "\n";
  if (write(1, line.data(), line.size()) < 0) return 7;
  waitForever();
}
