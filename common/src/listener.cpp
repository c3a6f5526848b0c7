#include "tether/common/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <utility>

namespace tether {
namespace {

std::string uvError(int rc) { return uv_strerror(rc); }

// fds handed out by open(), so that two `systemd:NAME` listeners never share one socket.
std::set<int>& takenSystemdFds() {
  static std::set<int> taken;
  return taken;
}

// True when something accepts connections on the unix socket at `path` (another daemon): then
// the file is not stale and must not be unlinked. Blocking connect() on a unix socket returns at
// once (it never waits for accept), so this is safe at start-up.
bool unixSocketLive(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 || errno == EAGAIN;
  ::close(fd);
  return live;
}

// Resolves a TCP listen host into a socket address; "" means all IPv4 addresses, as nginx's
// `listen 8080` does. Literals first; names through getaddrinfo (start-up only, may block).
bool resolveListenAddress(const std::string& host, uint16_t port, sockaddr_storage& out,
                          std::string* why) {
  std::memset(&out, 0, sizeof out);
  const std::string h = host.empty() || host == "*" ? "0.0.0.0" : host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (uv_ip4_addr(h.c_str(), port, v4) == 0) return true;
  if (uv_ip6_addr(h.c_str(), port, v6) == 0) return true;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(h.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    if (why) *why = "host not found: " + h + " (" + gai_strerror(rc) + ")";
    return false;
  }
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (out.ss_family == AF_INET) v4->sin_port = htons(port);
  if (out.ss_family == AF_INET6) v6->sin6_port = htons(port);
  return true;
}

}  // namespace

std::string formatSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  switch (sa->sa_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf) == nullptr) return {};
      std::string out(buf);
      out.append(":").append(std::to_string(ntohs(in->sin_port)));
      return out;
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf) == nullptr) return {};
      // Appended piece by piece: GCC 12 misreads `"[" + std::string(..)` at -O2 as an overlapping
      // memcpy (-Wrestrict, a known false positive of operator+(const char*, string&&)).
      std::string out("[");
      out.append(buf).append("]:").append(std::to_string(ntohs(in6->sin6_port)));
      return out;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      const size_t off = offsetof(sockaddr_un, sun_path);
      if (len <= static_cast<socklen_t>(off) || un->sun_path[0] == '\0') return "unix";
      std::string out("unix:");
      out.append(un->sun_path, strnlen(un->sun_path, static_cast<size_t>(len) - off));
      return out;
    }
    default:
      return {};
  }
}

std::string peerAddress(const uv_stream_t* client) {
  uv_os_fd_t fd = -1;
  if (client == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(client), &fd) != 0) return {};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return formatSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::vector<SystemdSocket> systemdSockets() {
  std::vector<SystemdSocket> out;
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(0, &names);
  for (int i = 0; i < n; ++i) {
    SystemdSocket s;
    s.fd = SD_LISTEN_FDS_START + i;
    s.name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
    s.taken = takenSystemdFds().count(s.fd) != 0;
    out.push_back(std::move(s));
  }
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) std::free(names[i]);
    std::free(names);
  }
  return out;
}

Listener::Listener(uv_loop_t* loop, config::Address configured)
    : loop_(loop), configured_(std::move(configured)) {}

Listener::~Listener() { close(); }

std::unique_ptr<Listener> Listener::open(uv_loop_t* loop, const config::Address& address,
                                         const ListenOptions& options, std::string* why) {
  std::unique_ptr<Listener> l(new Listener(loop, address));
  auto fail = [&](std::string text) -> std::unique_ptr<Listener> {
    if (why) *why = std::move(text);
    return nullptr;
  };
  int rc = 0;
  switch (address.kind) {
    case config::Address::Kind::Tcp: {
      sockaddr_storage ss{};
      if (!resolveListenAddress(address.host, address.port, ss, why)) return nullptr;
      l->tcp_ = std::make_unique<uv::Handle<uv_tcp_t>>(loop, static_cast<unsigned>(ss.ss_family));
      if (rc = l->tcp_->status(); rc < 0) return fail(uvError(rc));
      const unsigned flags = ss.ss_family == AF_INET6 && options.ipv6_only ? UV_TCP_IPV6ONLY : 0;
      rc = uv_tcp_bind(l->tcp_->get(), reinterpret_cast<sockaddr*>(&ss), flags);
      break;
    }
    case config::Address::Kind::Unix: {
      const std::string& path = address.path;
      if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
        return fail("unix socket path too long or empty: " + path);
      }
      struct stat st {};
      if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return fail(path + " exists and is not a socket");
        if (unixSocketLive(path)) return fail(uvError(UV_EADDRINUSE));
        // A stale socket file from a daemon that did not exit cleanly (nginx leaves them too).
        ::unlink(path.c_str());
      }
      l->pipe_ = std::make_unique<uv::Handle<uv_pipe_t>>(loop, 0);
      if (rc = l->pipe_->status(); rc < 0) return fail(uvError(rc));
      l->is_unix_ = true;
      rc = uv_pipe_bind(l->pipe_->get(), path.c_str());
      if (rc == 0) {
        l->unlink_path_ = path;
        // Between bind and chmod the file has the umask's mode; nobody can be waiting for it yet
        // because we are not listening, and connect() before listen() is refused.
        if (options.mode && ::chmod(path.c_str(), *options.mode) != 0) {
          return fail("chmod " + path + ": " + std::strerror(errno));
        }
        if (!options.group.empty()) {
          group grp{};
          group* found = nullptr;
          std::vector<char> buf(16384);
          if (getgrnam_r(options.group.c_str(), &grp, buf.data(), buf.size(), &found) != 0 ||
              found == nullptr) {
            return fail("unknown group \"" + options.group + "\"");
          }
          if (::chown(path.c_str(), static_cast<uid_t>(-1), found->gr_gid) != 0) {
            return fail("chown " + path + ": " + std::strerror(errno));
          }
        }
      }
      break;
    }
    case config::Address::Kind::Systemd: {
      const auto sockets = systemdSockets();
      if (sockets.empty()) {
        return fail("no sockets passed by systemd (LISTEN_FDS not set for this process), so \"" +
                    address.name + "\" was not passed");
      }
      const SystemdSocket* chosen = nullptr;
      std::string passed;
      for (const auto& s : sockets) {
        if (!passed.empty()) passed += ", ";
        passed += s.name;
        if (chosen == nullptr && s.name == address.name && !s.taken) chosen = &s;
      }
      if (chosen == nullptr) {
        return fail("systemd socket \"" + address.name + "\" was not passed (passed: " + passed + ")");
      }
      if (sd_is_socket(chosen->fd, AF_UNSPEC, SOCK_STREAM, -1) <= 0) {
        return fail("systemd socket \"" + address.name + "\" is not a stream socket");
      }
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getsockname(chosen->fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return fail(std::string("getsockname: ") + std::strerror(errno));
      }
      // sd_listen_fds sets FD_CLOEXEC already; said again because a child must never inherit it.
      ::fcntl(chosen->fd, F_SETFD, FD_CLOEXEC);
      if (ss.ss_family == AF_UNIX) {
        l->pipe_ = std::make_unique<uv::Handle<uv_pipe_t>>(loop, 0);
        if (rc = l->pipe_->status(); rc < 0) return fail(uvError(rc));
        l->is_unix_ = true;
        rc = uv_pipe_open(l->pipe_->get(), chosen->fd);
      } else {
        l->tcp_ = std::make_unique<uv::Handle<uv_tcp_t>>(loop);
        if (rc = l->tcp_->status(); rc < 0) return fail(uvError(rc));
        rc = uv_tcp_open(l->tcp_->get(), chosen->fd);
      }
      // From here on the handle owns the fd: close() closes it.
      if (rc == 0) {
        takenSystemdFds().insert(chosen->fd);
        l->systemd_fd_ = chosen->fd;
      }
      break;
    }
  }
  if (rc < 0) return fail(uvError(rc));

  sockaddr_storage bound{};
  int len = sizeof bound;
  if (l->is_unix_) {
    char path[sizeof(sockaddr_un::sun_path) + 1] = {};
    size_t size = sizeof path;
    rc = uv_pipe_getsockname(l->pipe_->get(), path, &size);
    if (rc < 0) return fail(uvError(rc));
    l->address_ = "unix:";
    l->address_.append(path, size);
  } else {
    rc = uv_tcp_getsockname(l->tcp_->get(), reinterpret_cast<sockaddr*>(&bound), &len);
    if (rc < 0) return fail(uvError(rc));
    l->address_ = formatSockaddr(reinterpret_cast<sockaddr*>(&bound), static_cast<socklen_t>(len));
    l->port_ = ntohs(bound.ss_family == AF_INET6
                         ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  uv_stream_t* stream = l->stream();
  if (stream == nullptr) return fail("no socket");  // both inits above succeeded: cannot happen
  stream->data = l.get();
  // listen() now, not in start(): a bind error such as EADDRINUSE shows at open() (libuv reports
  // bind errors late, at listen time) and connections queue in the backlog until start().
  rc = uv_listen(stream, options.backlog, [](uv_stream_t* server, int status) {
    auto* self = static_cast<Listener*>(server->data);
    if (self->on_connection_) {
      self->on_connection_(status);
    } else if (status == 0) {
      // Not started yet: libuv holds this one connection and stops watching until uv_accept;
      // start() hands it over.
      ++self->pending_;
    }
  });
  if (rc < 0) return fail(uvError(rc));
  return l;
}

uv_stream_t* Listener::stream() const {
  if (tcp_) return tcp_->stream();
  if (pipe_) return pipe_->stream();
  return nullptr;
}

int Listener::start(ConnectionCallback on_connection) {
  if (stream() == nullptr) return UV_EBADF;
  on_connection_ = std::move(on_connection);
  for (; pending_ > 0; --pending_) on_connection_(0);
  return 0;
}

int Listener::accept(uv::Stream& client) {
  if (stream() == nullptr) return UV_EBADF;
  if (client.stream() == nullptr) return client.status() < 0 ? client.status() : UV_ECANCELED;
  if (client.kind() != (is_unix_ ? uv::StreamKind::Pipe : uv::StreamKind::Tcp)) return UV_EINVAL;
  return uv_accept(stream(), client.stream());
}

void Listener::close() {
  if (stream() == nullptr) return;
  tcp_.reset();
  pipe_.reset();
  // The fd is closed with the handle; its number may come back for something else.
  if (systemd_fd_ >= 0) takenSystemdFds().erase(std::exchange(systemd_fd_, -1));
  if (!unlink_path_.empty()) {
    ::unlink(unlink_path_.c_str());
    unlink_path_.clear();
  }
}

}  // namespace tether
