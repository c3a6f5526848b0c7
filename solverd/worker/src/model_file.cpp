#include "model_file.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tether::solverd::worker {

ModelFile::~ModelFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool ModelFile::create(std::string_view text, std::string& message) {
  auto fail = [&message](int err) {
    message = std::string("cannot hold the model in memory: ") + std::strerror(err);
    return false;
  };
  if (fd_ >= 0) return fail(EEXIST);
  int fd = memfd_create("tether-model", MFD_CLOEXEC);
  if (fd < 0) return fail(errno);
  fd_ = fd;
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
  return true;
}

std::string withModelName(std::string message, const std::string& path) {
  if (path.empty()) return message;
  for (size_t at = message.find(path); at != std::string::npos;
       at = message.find(path, at + 5)) {
    message.replace(at, path.size(), "model");
  }
  return message;
}

}  // namespace tether::solverd::worker
