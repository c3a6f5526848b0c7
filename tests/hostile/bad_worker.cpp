// A misbehaving solverd worker for the hostile suite (issue 7), given to solverd through its
// `worker_path` directive (a one-line script that execs this with a mode). Each mode breaks one
// promise of the worker protocol (DESIGN.md, "Worker protocol"):
//   ignore    ignores the interrupt frame, SIGTERM and SIGINT, and never answers
//   setsid    as `ignore`, and first forks a child that calls setsid() (leaving the worker's
//             session and process group) and lives on; the child's pid goes to stderr
//   badlength writes a frame whose length prefix is out of range, then waits
//   badjson   writes a frame of the right length whose payload is not JSON, then waits
//   hog [MB]  allocates and touches memory, 16 MiB at a time, up to MB (default 512), then
//             waits: where job_memory_max is enforced the kernel stops it first
//   chatty    writes a 16 KiB log frame every millisecond and ignores the interrupt: a stream
//             reader that stops reading soon has writes pending (the heartbeat's stall watch)
// The worker prints "bad_worker pid=N" (and "child=N") on stderr, which solverd logs with the
// job id. It never exits on its own: only solverd's cancel ladder (cgroup.kill) ends it.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void writeAll(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string lengthPrefix(uint32_t n) {
  std::string p(4, '\0');
  for (int i = 0; i < 4; ++i) p[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return p;
}

// Reads and discards stdin (the solve frame, interrupt frames) until it closes, then waits for
// the end, which only SIGKILL brings.
[[noreturn]] void ignoreEverything() {
  char buf[4096];
  while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  for (;;) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "ignore";
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "bad_worker pid=%d mode=%s\n", static_cast<int>(::getpid()), mode.c_str());
  std::fflush(stderr);

  if (mode == "setsid") {
    pid_t child = ::fork();
    if (child == 0) {
      ::setsid();
      // The child leaves the pipes to solverd too: only the cgroup still holds it.
      ::close(STDIN_FILENO);
      ::close(STDOUT_FILENO);
      ::close(STDERR_FILENO);
      for (;;) ::pause();
    }
    std::fprintf(stderr, "bad_worker child=%d\n", static_cast<int>(child));
    std::fflush(stderr);
  } else if (mode == "badlength") {
    writeAll(lengthPrefix(0xfffffff0u) + "{}");
  } else if (mode == "badjson") {
    const std::string payload = "this is not json at all";
    writeAll(lengthPrefix(static_cast<uint32_t>(payload.size())) + payload);
  } else if (mode == "hog") {
    const long cap_mb = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 512;
    std::vector<char*> blocks;
    for (long mb = 0; mb < cap_mb; mb += 16) {
      auto* block = static_cast<char*>(std::malloc(16u << 20));
      if (block == nullptr) break;
      std::memset(block, 0x5a, 16u << 20);  // touched, so it is resident, not just reserved
      blocks.push_back(block);
    }
    std::fprintf(stderr, "bad_worker holds %zu MiB\n", blocks.size() * 16);
    std::fflush(stderr);
  } else if (mode == "chatty") {
    const std::string payload = R"({"type":"log","line":")" + std::string(16 * 1024, 'x') + "\"}";
    const std::string frame = lengthPrefix(static_cast<uint32_t>(payload.size())) + payload;
    for (;;) {
      writeAll(frame);
      ::usleep(1000);
    }
  }
  ignoreEverything();
}
