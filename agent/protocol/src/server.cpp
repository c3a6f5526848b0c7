#include "tether/agent/control/server.hpp"

#include "tether/common/uv_kit.hpp"
#include "tether/common/uv_stream.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <list>
#include <sstream>

namespace tether::agent::control {
namespace {

// Backpressure: past this many bytes of replies queued on a connection (uv::Stream::pending) the
// server stops
// reading from that peer (it would only queue more replies), and reads again once the queue is
// back under kResumeBacklog. A peer is never cut off for reading slowly: tether-proxy sends
// bursts of thousands of cancels while its loop is busy with the disconnects that caused them;
// closed, it would reconnect with backoff and resend, and its bounded queue could overflow
// (tests/agent: a slow reader's burst of 20,000 was closed after 17,360 acks). A peer that
// never reads costs at most this backlog plus one read's worth of frames.
constexpr size_t kMaxWriteBacklog = 1 << 20;
constexpr size_t kResumeBacklog = kMaxWriteBacklog / 4;

bool parseU32(const std::string& text, uint32_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// Supplementary groups of a live process, from /proc/PID/status ("Groups:\t4 24 27").
// SO_PEERCRED carries only the primary gid. Reached only when a group rule did not match the
// primary gid; reading procfs does not block.
std::vector<gid_t> supplementaryGroups(pid_t pid) {
  std::vector<gid_t> groups;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream fields(line.substr(7));
    gid_t g = 0;
    while (fields >> g) groups.push_back(g);
    break;
  }
  return groups;
}

}  // namespace

std::optional<AllowRule> parseAllowRule(const std::string& kind, const std::string& value,
                                        std::string* why) {
  auto invalid = [&]() -> std::optional<AllowRule> {
    if (why) *why = "invalid value \"" + value + "\"";
    return std::nullopt;
  };
  AllowRule rule;
  if (kind == "uid") {
    rule.kind = AllowRule::Kind::Uid;
    if (!parseU32(value, rule.value)) return invalid();
    return rule;
  }
  if (kind == "group" || kind == "gid") {
    rule.kind = AllowRule::Kind::Gid;
    if (parseU32(value, rule.value)) return rule;
    std::array<char, 16384> buffer{};
    group entry{};
    group* found = nullptr;
    if (getgrnam_r(value.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
      if (why) *why = "unknown group \"" + value + "\"";
      return std::nullopt;
    }
    rule.value = found->gr_gid;
    return rule;
  }
  if (why) *why = "invalid value \"" + kind + "\", expected uid or group";
  return std::nullopt;
}

bool peerAllowed(const PeerCredentials& peer, const std::vector<AllowRule>& rules, uid_t own_uid) {
  if (peer.uid == own_uid) return true;
  bool any_group_rule = false;
  for (const auto& rule : rules) {
    if (rule.kind == AllowRule::Kind::Uid && rule.value == peer.uid) return true;
    if (rule.kind == AllowRule::Kind::Gid) {
      if (rule.value == peer.gid) return true;
      any_group_rule = true;
    }
  }
  if (!any_group_rule) return false;
  const auto groups = supplementaryGroups(peer.pid);
  for (const auto& rule : rules) {
    if (rule.kind != AllowRule::Kind::Gid) continue;
    for (gid_t g : groups) {
      if (g == rule.value) return true;
    }
  }
  return false;
}

Message Handler::onRegister(const PeerCredentials&, const Register& request) {
  return Error{ErrorCode::UnknownType, "this server does not take registrations", request.id};
}

Unregistered Handler::onUnregister(const PeerCredentials&, const Unregister& request) {
  return Unregistered{request.id, false};
}

// One peer. The Server owns it (in `connections`) and destroys it in drop(), also from inside
// the stream's callbacks: the stream's state outlives its owner until libuv is done with it.
struct Connection final : uv::StreamEvents {
  Connection(Server::Impl* s, uv_loop_t* loop, uv::StreamKind kind);
  void onRead(ssize_t nread, const char* data) override;
  void onDrained() override;
  void onWriteProgress() override;
  void onWriteFailed(int status) override;

  Server::Impl* server;
  uv::Stream pipe;  // a pipe; TCP only from an adopted TCP listener, whose peers are refused
  FrameDecoder decoder;
  PeerCredentials peer;
  bool close_after_write = false;
  bool paused = false;  // reads stopped until the replies drain (backpressure)
  std::list<std::unique_ptr<Connection>>::iterator self;
};

struct Server::Impl {
  uv_loop_t* loop;
  Handler& handler;
  ServerOptions options;
  uid_t own_uid = getuid();
  std::unique_ptr<uv::Handle<uv_pipe_t>> listener;  // listen(why): our own socket
  std::unique_ptr<Listener> adopted;               // listen(Listener): the daemon's
  bool bound = false;
  std::list<std::unique_ptr<Connection>> connections;
  ServerCounters counters;
  // One read buffer for every connection: the read callback consumes it before returning.
  std::array<char, 64 * 1024> read_buffer{};

  Impl(uv_loop_t* l, Handler& h, ServerOptions o) : loop(l), handler(h), options(std::move(o)) {}

  // The one teardown of a connection. Reached from: a read error or end of file, an error reply
  // (bad frame, forbidden peer) once it is written, a write failure, the connection limit, and
  // Server::close(). The Connection is destroyed here; the stream frees its handle in the close
  // callback, after libuv has cancelled the writes still queued.
  void drop(Connection* conn) { connections.erase(conn->self); }

  // Returns false if the connection was dropped (and `conn` destroyed).
  bool write(Connection* conn, const Message& message) {
    std::string bytes = encodeMessage(message);
    if (bytes.empty()) return true;  // larger than a frame may be: nothing sensible to send
    if (conn->pipe.write(bytes) < 0) {
      drop(conn);
      return false;
    }
    if (conn->close_after_write) {
      if (conn->pipe.pending() > 0) return true;  // dropped once it drained (onDrained)
      drop(conn);
      return false;
    }
    if (!conn->paused && conn->pipe.pending() > kMaxWriteBacklog) {
      conn->paused = true;
      ++counters.read_pauses;
      conn->pipe.readStop();
    }
    return true;
  }

  // A queued reply went out: read again once the backlog is small (onDrained, onWriteProgress).
  void wrote(Connection* conn) {
    if (conn->close_after_write) {
      if (conn->pipe.pending() == 0) drop(conn);
      return;
    }
    if (conn->paused && conn->pipe.pending() <= kResumeBacklog) resume(conn);
  }

  // The replies drained: handle the frames already read, then read again (unless those frames
  // filled the queue once more, or failed the connection).
  void resume(Connection* conn) {
    conn->paused = false;
    if (!process(conn)) return;
    if (!conn->paused && !conn->close_after_write) startReading(conn);
  }

  // Replies `error` and closes once the reply is out; reads stop at once. Returns false if the
  // connection was dropped already (the reply went out at once, or could not).
  bool fail(Connection* conn, ErrorCode code, std::string message) {
    conn->pipe.readStop();
    conn->close_after_write = true;
    return write(conn, Error{code, std::move(message), {}});
  }

  void onConnection() {
    const auto kind = adopted && !adopted->isUnix() ? uv::StreamKind::Tcp : uv::StreamKind::Pipe;
    auto conn = std::make_unique<Connection>(this, loop, kind);
    if (adopted) {
      if (adopted->accept(conn->pipe) != 0) return;
    } else {
      if (conn->pipe.status() != 0 || uv_accept(listener->stream(), conn->pipe.stream()) != 0) return;
    }
    Connection* c = conn.get();
    connections.push_back(std::move(conn));
    c->self = std::prev(connections.end());
    ++counters.accepted;

    uv_os_fd_t fd = -1;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (uv_fileno(c->pipe.raw(), &fd) != 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      drop(c);
      return;
    }
    c->peer = PeerCredentials{cred.pid, cred.uid, cred.gid};
    if (connections.size() > options.max_connections) {
      drop(c);
      return;
    }
    if (!peerAllowed(c->peer, options.allow, own_uid)) {
      ++counters.forbidden;
      fail(c, ErrorCode::Forbidden, "uid " + std::to_string(cred.uid) + " is not allowed");
      return;
    }
    startReading(c);
  }

  void startReading(Connection* c) {
    c->pipe.setReadBuffer(read_buffer.data(), read_buffer.size());
    c->pipe.readStart();
  }

  void onBytes(Connection* conn, std::string_view bytes) {
    conn->decoder.feed(bytes);
    process(conn);
  }

  // Handles the complete frames buffered so far. Returns false if the connection was dropped.
  bool process(Connection* conn) {
    nlohmann::json object;
    ProtocolError error;
    // close_after_write stops the loop: a connection that failed takes no further requests.
    // `paused` too: the rest waits in the decoder until the peer has read its replies.
    while (!conn->close_after_write && !conn->paused) {
      auto result = conn->decoder.next(object, error);
      if (result == FrameDecoder::Result::NeedMore) return true;
      if (result == FrameDecoder::Result::Error) {
        ++counters.bad_frames;
        return fail(conn, error.code, error.message);
      }
      Message message;
      if (!parseMessage(object, message, error)) {
        ++counters.bad_messages;
        // A bad or unknown message is not a broken stream: reply and keep the connection, so
        // a newer peer can probe for message types this server does not know.
        if (!write(conn, Error{error.code, error.message, {}})) return false;
        continue;
      }
      ++counters.messages;
      if (!dispatch(conn, message)) return false;
    }
    return true;
  }

  // Returns false if the connection was dropped while replying.
  bool dispatch(Connection* conn, const Message& message) {
    if (const auto* hello = std::get_if<Hello>(&message)) {
      if (hello->version != kProtocolVersion) {
        return write(conn, Error{ErrorCode::BadMessage,
                                 "unsupported version " + std::to_string(hello->version), {}});
      }
      return write(conn, Hello{kProtocolVersion, {}, options.server_name});
    }
    if (const auto* cancel = std::get_if<Cancel>(&message)) return write(conn, handler.onCancel(conn->peer, *cancel));
    if (const auto* reg = std::get_if<Register>(&message)) return write(conn, handler.onRegister(conn->peer, *reg));
    if (const auto* unreg = std::get_if<Unregister>(&message)) {
      return write(conn, handler.onUnregister(conn->peer, *unreg));
    }
    if (std::holds_alternative<Status>(message)) return write(conn, Status{handler.statusTargets()});
    ++counters.bad_messages;
    return write(conn, Error{ErrorCode::UnknownType,
                             std::string("\"").append(typeName(message)).append("\" is not a request"), {}});
  }
};

Connection::Connection(Server::Impl* s, uv_loop_t* loop, uv::StreamKind kind)
    : server(s), pipe(loop, kind, *this) {}

void Connection::onRead(ssize_t nread, const char* data) {
  if (nread < 0) {
    server->drop(this);
    return;
  }
  server->onBytes(this, std::string_view(data, static_cast<size_t>(nread)));
}

void Connection::onDrained() { server->wrote(this); }
void Connection::onWriteProgress() { server->wrote(this); }
void Connection::onWriteFailed(int) { server->drop(this); }

Server::Server(uv_loop_t* loop, Handler& handler, ServerOptions options)
    : impl_(std::make_unique<Impl>(loop, handler, std::move(options))) {}

Server::~Server() { close(); }

int Server::listen(std::string* why) {
  auto& s = *impl_;
  auto failed = [&](int rc, const std::string& what) {
    if (why) *why = what + " \"" + s.options.path + "\": " + uv_strerror(rc);
    s.listener.reset();
    return rc;
  };
  // A socket file left by a previous run refuses every connect; remove it (nginx and systemd do
  // the same). Anything else at the path is not ours to delete: bind then fails with EADDRINUSE.
  struct stat st {};
  if (lstat(s.options.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(s.options.path.c_str());

  s.listener = std::make_unique<uv::Handle<uv_pipe_t>>(s.loop, 0);
  int rc = s.listener->status();
  if (rc != 0) return failed(rc, "cannot create a socket for");
  s.listener->get()->data = &s;
  rc = uv_pipe_bind(s.listener->get(), s.options.path.c_str());
  if (rc != 0) return failed(rc, "cannot bind");
  s.bound = true;
  if (s.options.mode && chmod(s.options.path.c_str(), *s.options.mode) != 0) {
    return failed(uv_translate_sys_error(errno), "cannot chmod");
  }
  if (s.options.group && chown(s.options.path.c_str(), static_cast<uid_t>(-1), *s.options.group) != 0) {
    return failed(uv_translate_sys_error(errno), "cannot chown");
  }
  rc = uv_listen(s.listener->stream(), 128, [](uv_stream_t* server, int status) {
    auto* impl = static_cast<Impl*>(server->data);
    if (impl == nullptr || status < 0) return;
    impl->onConnection();
  });
  if (rc != 0) return failed(rc, "cannot listen on");
  return 0;
}

int Server::listen(std::unique_ptr<Listener> listener) {
  auto& s = *impl_;
  s.adopted = std::move(listener);
  return s.adopted->start([&s](int status) {
    if (status == 0) {
      s.onConnection();
    } else {
      // The callback must accept once per call; an error status has nothing to accept.
    }
  });
}

std::string Server::address() const {
  if (impl_->adopted) return impl_->adopted->address();
  return "unix:" + impl_->options.path;
}

void Server::close() {
  auto& s = *impl_;
  if (s.listener) {
    s.listener->get()->data = nullptr;
    s.listener.reset();
  }
  s.adopted.reset();
  if (s.bound) {
    unlink(s.options.path.c_str());
    s.bound = false;
  }
  while (!s.connections.empty()) s.drop(s.connections.front().get());
}

size_t Server::connectionCount() const { return impl_->connections.size(); }
const ServerCounters& Server::counters() const { return impl_->counters; }

}  // namespace tether::agent::control
