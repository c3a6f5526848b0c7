// solverd-worker: one solve per process, spoken to over stdin and stdout by solverd
// (DESIGN.md "Worker protocol"). Everything is in tether_solverd_worker; see worker.hpp.
#include "tether/agent/supervise/fork_server.hpp"
#include "tether/common/log.hpp"
#include "tether/solverd/worker/worker.hpp"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  // `--fork-server`: started by solverd (spare_start fork, DESIGN.md "Warm workers"), this process
  // loads its libraries once and forks each spare into its cgroup; the spare goes on below, from
  // serve()'s return, as an exec'd worker does from main.
  const bool fork_server = argc > 1 && std::strcmp(argv[1], "--fork-server") == 0;
  if (argc > 1 && !fork_server) {
    if (std::strcmp(argv[1], "-V") == 0) {
      std::printf("solverd-worker %s\n", TETHER_VERSION);
      return 0;
    }
    std::fprintf(stderr,
                 "usage: solverd-worker [--fork-server]\n"
                 "  reads one solve frame on stdin and writes log, incumbent and result frames on\n"
                 "  stdout (4-byte little-endian length + JSON); started by solverd, not by hand.\n"
                 "  --fork-server: forks such workers on solverd's requests on fd 3.\n");
    return std::strcmp(argv[1], "-h") == 0 ? 0 : 1;
  }
  // One solve per process, then exit: memory is never handed back to the kernel while it runs, so
  // the solvers' allocate-and-free cycles do not make glibc trim and regrow the heap (a brk pair
  // and fresh zero pages each time; strace showed dozens per tiny CBC solve) or map and unmap
  // large blocks.
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  tether::log::configure("solverd-worker", tether::log::Target{});
  if (fork_server) {
    namespace fs = tether::agent::supervise::fork_server;
    auto role = fs::serve(fs::kServerFd);
    if (!role) {
      tether::log::get("worker")->error("fork server: {}", role.error().message());
      return 1;
    }
    if (*role == fs::Role::kDone) return 0;  // solverd closed its end
  }
  const int code = tether::solverd::worker::runWorkerOnStdio();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // One solve per process: its result is written and everything it holds goes with the process,
  // so it leaves without running the libraries' destructors (sanitized builds run them: the
  // leak check happens there).
  std::fflush(nullptr);
  std::_Exit(code);
#else
  return code;
#endif
}
