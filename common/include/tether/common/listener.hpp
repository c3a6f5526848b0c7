#pragma once
// Listening sockets for a config::Address on a uv loop: TCP (IPv4/IPv6), unix stream sockets, and
// sockets passed by systemd socket activation (`systemd:NAME`, sd_listen_fds_with_names(3)).
//
//   std::string why;
//   auto listener = tether::Listener::open(loop, address, {}, &why);
//   if (!listener) throw StartupError("cannot listen on " + address.text() + ": " + why);
//   log->info("listening on {}", listener->address());   // team convention, exactly this wording
//   listener->start([&](int status) {
//     auto conn = std::make_unique<Conn>(loop, listener->isUnix() ? uv::StreamKind::Pipe
//                                                                 : uv::StreamKind::Tcp);
//     if (status == 0 && listener->accept(conn->stream) == 0) { ... }
//   });
//
// Opening happens at start-up (and on reload), so open() may block briefly (getaddrinfo for a
// host name); everything after it runs on the loop without blocking.
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/common/uv_kit.hpp"
#include "tether/common/uv_stream.hpp"
#include "tether/config/address.hpp"

namespace tether {

struct ListenOptions {
  int backlog = 511;  // nginx's default
  // Unix sockets only: the socket file's mode (e.g. 0660) and group name, applied after bind.
  std::optional<mode_t> mode;
  std::string group;
  // TCP on an IPv6 address: accept only IPv6 (nginx's ipv6only=on default), so `[::]:80` and
  // `0.0.0.0:80` can both be listened on.
  bool ipv6_only = true;
};

class Listener {
 public:
  using ConnectionCallback = std::function<void(int status)>;

  // Binds and listens. Returns nullptr and sets *why (if given) to a short phrase on failure:
  // the libuv error text ("address already in use"), "systemd socket \"NAME\" was not passed
  // (passed: a, b)", "no sockets passed by systemd (LISTEN_FDS not set)", ...
  // TCP: SO_REUSEADDR (libuv sets it on bind); port 0 lets the kernel choose, address() tells
  // which. Unix: a stale socket file (nobody accepting on it) is unlinked first; a live one is
  // "address already in use". The file is unlinked again by close() or the destructor.
  static std::unique_ptr<Listener> open(uv_loop_t* loop, const config::Address& address,
                                        const ListenOptions& options = {},
                                        std::string* why = nullptr);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts accepting: `on_connection` runs for each pending connection (status < 0: a libuv
  // error such as UV_EMFILE) and must call accept() once per call. Returns 0 or a libuv error.
  int start(ConnectionCallback on_connection);

  // Accepts into `client`, a Stream of the listener's kind (isUnix(): a pipe, else TCP). Returns 0
  // or a libuv error (UV_EINVAL for the wrong kind); on error the caller discards `client`.
  int accept(uv::Stream& client);

  // Stops accepting and closes the socket (unlinking a unix socket file we created). Idempotent.
  void close();

  // The real bound address: `127.0.0.1:43121`, `[::1]:43121`, `*:8080` is never shown (the
  // kernel's 0.0.0.0:8080 is), `unix:/tmp/x.sock`. For a systemd socket, its bound address too.
  const std::string& address() const { return address_; }
  // The configured address, as written (`systemd:web`, `unix:/run/x.sock`, `127.0.0.1:0`).
  const config::Address& configured() const { return configured_; }
  bool isUnix() const { return is_unix_; }
  // TCP: the bound port; 0 for unix sockets.
  uint16_t port() const { return port_; }
  uv_loop_t* loop() const { return loop_; }
  // The listening socket; null once closed.
  uv_stream_t* stream() const;

 private:
  Listener(uv_loop_t* loop, config::Address configured);
  uv_loop_t* loop_;
  config::Address configured_;
  // One of the two, by the address's kind.
  std::unique_ptr<uv::Handle<uv_tcp_t>> tcp_;
  std::unique_ptr<uv::Handle<uv_pipe_t>> pipe_;
  std::string address_;
  std::string unlink_path_;  // unix socket file we bound and must remove
  bool is_unix_ = false;
  uint16_t port_ = 0;
  ConnectionCallback on_connection_;
  int pending_ = 0;  // connections that arrived between open() and start()
  int systemd_fd_ = -1;  // the passed fd we adopted (marked taken until close)
};

// Text of a socket address as the listen log line and access logs show it: `1.2.3.4:80`,
// `[::1]:80`, `unix:/path` (or `unix` for an unnamed peer). Empty on failure.
std::string formatSockaddr(const struct sockaddr* sa, socklen_t len);
// The peer of a connected stream in the same form ("unix" for unix peers without a name).
std::string peerAddress(const uv_stream_t* client);

// The sockets systemd passed to this process (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), read from
// the environment at each call (which is left set, so a reload can look again); open() takes
// them from here by name and each fd is handed out at most once per process (`taken`).
struct SystemdSocket {
  int fd = -1;
  std::string name;  // "unknown" when LISTEN_FDNAMES is absent (systemd's own default)
  bool taken = false;
};
std::vector<SystemdSocket> systemdSockets();

}  // namespace tether
