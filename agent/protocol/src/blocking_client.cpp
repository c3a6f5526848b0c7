#include "tether/agent/control/blocking_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace tether::agent::control {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until `deadline`. Returns 0, -ETIMEDOUT or -errno.
int waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) left = 0;
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, static_cast<int>(left));
    if (rc > 0) return 0;
    if (rc == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

BlockingConnection::~BlockingConnection() { close(); }

BlockingConnection::BlockingConnection(BlockingConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), decoder_(std::move(other.decoder_)) {}

BlockingConnection& BlockingConnection::operator=(BlockingConnection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    decoder_ = std::move(other.decoder_);
  }
  return *this;
}

void BlockingConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  decoder_ = FrameDecoder();
}

int BlockingConnection::connect(const std::string& path, std::chrono::milliseconds timeout) {
  close();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.data(), path.size());
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return -errno;
  const auto deadline = Clock::now() + timeout;
  int rc = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EINPROGRESS) {
    rc = waitFor(fd_, POLLOUT, deadline);
    if (rc == 0) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -err;
    }
  } else if (rc != 0) {
    rc = -errno;  // ENOENT, ECONNREFUSED, EAGAIN (the listener's backlog is full), EACCES
  }
  if (rc != 0) close();
  return rc;
}

int BlockingConnection::send(const Message& message, std::chrono::milliseconds timeout) {
  std::string bytes = encodeMessage(message);
  if (bytes.empty()) return -EMSGSIZE;
  return sendRaw(bytes, timeout);
}

int BlockingConnection::sendRaw(const std::string& bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return -ENOTCONN;
  const auto deadline = Clock::now() + timeout;
  size_t done = 0;
  while (done < bytes.size()) {
    // MSG_NOSIGNAL: a peer that went away gives EPIPE, not a SIGPIPE that kills tether-run.
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return -errno;
    if (int rc = waitFor(fd_, POLLOUT, deadline); rc != 0) return rc;
  }
  return 0;
}

int BlockingConnection::receive(Message& out, std::chrono::milliseconds timeout, ProtocolError* error) {
  if (fd_ < 0) return -ENOTCONN;
  const auto deadline = Clock::now() + timeout;
  nlohmann::json object;
  ProtocolError local;
  ProtocolError& err = error ? *error : local;
  for (;;) {
    auto result = decoder_.next(object, err);
    if (result == FrameDecoder::Result::Error) return -EPROTO;
    if (result == FrameDecoder::Result::Frame) return parseMessage(object, out, err) ? 0 : -EPROTO;
    std::array<char, 16 * 1024> buffer{};
    ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n > 0) {
      decoder_.feed(std::string_view(buffer.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) return -ECONNRESET;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    if (int rc = waitFor(fd_, POLLIN, deadline); rc != 0) return rc;
  }
}

int BlockingConnection::request(const Message& message, Message& reply, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (int rc = send(message, timeout); rc != 0) return rc;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return receive(reply, std::max(left, std::chrono::milliseconds(0)));
}

}  // namespace tether::agent::control
