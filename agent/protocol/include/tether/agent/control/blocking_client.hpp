#pragma once
// A small blocking control-protocol connection, for command-line tools (tether-run registers
// itself before exec) and tests. Not for event loops: every call waits up to its deadline.
#include "tether/agent/control/message.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace tether::agent::control {

class BlockingConnection {
 public:
  BlockingConnection() = default;
  ~BlockingConnection();
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;
  BlockingConnection(BlockingConnection&& other) noexcept;
  BlockingConnection& operator=(BlockingConnection&& other) noexcept;

  // Connects to a unix socket (path without "unix:"). Returns 0 or -errno (ETIMEDOUT).
  int connect(const std::string& path, std::chrono::milliseconds timeout);

  // Sends one frame. Returns 0 or -errno.
  int send(const Message& message, std::chrono::milliseconds timeout);
  int sendRaw(const std::string& bytes, std::chrono::milliseconds timeout);

  // Receives one message. Returns 0, -ECONNRESET on end of file, -ETIMEDOUT, or -EPROTO for a
  // bad frame or message (`error` then says why, if given).
  int receive(Message& out, std::chrono::milliseconds timeout, ProtocolError* error = nullptr);

  // send() then receive() of the reply.
  int request(const Message& message, Message& reply, std::chrono::milliseconds timeout);

  void close();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  FrameDecoder decoder_;
};

}  // namespace tether::agent::control
