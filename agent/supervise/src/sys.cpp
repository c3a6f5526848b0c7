#include "sys.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace tether::agent::supervise {

std::string Error::message() const {
  if (code == 0) return what;
  return what + ": " + std::strerror(code);
}

Error errnoError(int code, std::string what) { return Error{code, std::move(what)}; }

namespace sys {

Result<std::string> readFd(int fd, const std::string& what) {
  std::string out;
  char buf[4096];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "read " + what);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return out;
}

Result<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError(errno, "open " + path);
  auto r = readFd(fd, path);
  closeFd(fd);
  return r;
}

Error writeFile(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errnoError(errno, "open " + path);
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  Error err;
  if (n < 0) {
    err = errnoError(errno, "write " + path);
  } else if (static_cast<size_t>(n) != data.size()) {
    err = errnoError(EIO, "short write " + path);
  }
  closeFd(fd);
  return err;
}

bool findKeyValue(std::string_view text, std::string_view key, uint64_t& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      std::string_view value = line.substr(key.size() + 1);
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
      return ec == std::errc{};
    }
    pos = end + 1;
  }
  return false;
}

int pidfdOpen(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

void closeFd(int& fd) {
  if (fd < 0) return;
  int saved = errno;
  ::close(fd);
  errno = saved;
  fd = -1;
}

}  // namespace sys
}  // namespace tether::agent::supervise
