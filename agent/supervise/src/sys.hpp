#pragma once
// Private helpers of the supervision library: whole-file reads and single-write writes, as cgroup
// interface files want them (a write to cgroup.procs or cgroup.kill must be one write(2) call).
#include <string>
#include <string_view>

#include "tether/agent/supervise/error.hpp"

namespace tether::agent::supervise::sys {

Result<std::string> readFile(const std::string& path);
Error writeFile(const std::string& path, std::string_view data);
// Reads an already open file from offset 0 (cgroup.events on every POLLPRI).
Result<std::string> readFd(int fd, const std::string& what);
// The value after `key ` on a line of a "key value" file (cgroup.events, cpu.stat).
bool findKeyValue(std::string_view text, std::string_view key, uint64_t& out);
// pidfd_open(2) and pidfd_send_signal(2) as raw system calls: glibc 2.36's <sys/pidfd.h>
// lacks the extern "C" block, so its declarations do not link from C++ (fixed in 2.37).
int pidfdOpen(int pid);
int pidfdSendSignal(int pidfd, int sig);
// Closes an fd we own, keeping errno intact for the caller's error path.
void closeFd(int& fd);

}  // namespace tether::agent::supervise::sys
