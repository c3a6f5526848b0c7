#include "tether/agent/control/server.hpp"

#include "tether/common/uv_handle.hpp"

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

// Backpressure: past this many bytes of replies waiting in libuv's write queue the server stops
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

struct WriteReq {
  uv_write_t req{};
  std::string bytes;
};

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

struct Connection {
  Server::Impl* server = nullptr;
  StreamHandle pipe;  // a uv_pipe_t; the union type is what tether::Listener::accept() takes
  FrameDecoder decoder;
  PeerCredentials peer;
  bool close_after_write = false;
  bool paused = false;  // reads stopped until the replies drain (backpressure)
  size_t pending_writes = 0;
  std::list<std::unique_ptr<Connection>>::iterator self;
};

struct Server::Impl {
  uv_loop_t* loop;
  Handler& handler;
  ServerOptions options;
  uid_t own_uid = getuid();
  std::unique_ptr<UvHandle<uv_pipe_t>> listener;  // listen(why): our own socket
  std::unique_ptr<Listener> adopted;               // listen(Listener): the daemon's
  bool bound = false;
  std::list<std::unique_ptr<Connection>> connections;
  ServerCounters counters;
  // One read buffer for every connection: the read callback consumes it before returning.
  std::array<char, 64 * 1024> read_buffer{};

  Impl(uv_loop_t* l, Handler& h, ServerOptions o) : loop(l), handler(h), options(std::move(o)) {}

  // The one teardown of a connection. Reached from: a read error or end of file, the write
  // callback after an error reply (bad frame, forbidden peer), a write failure, the connection
  // limit, and Server::close(). The Connection is destroyed here; the
  // handle's memory goes in its close callback, after libuv has cancelled pending writes.
  void drop(Connection* conn) {
    conn->pipe.raw()->data = nullptr;
    conn->pipe.close();
    connections.erase(conn->self);
  }

  // Returns false if the connection was dropped (and `conn` destroyed).
  bool write(Connection* conn, const Message& message) {
    std::string bytes = encodeMessage(message);
    if (bytes.empty()) return true;  // larger than a frame may be: nothing sensible to send
    auto* req = new WriteReq;
    req->bytes = std::move(bytes);
    uv_buf_t buf = uv_buf_init(req->bytes.data(), static_cast<unsigned>(req->bytes.size()));
    int rc = uv_write(&req->req, conn->pipe.stream(), &buf, 1, [](uv_write_t* w, int status) {
      auto* r = reinterpret_cast<WriteReq*>(w);
      // data is null once the connection was dropped (the write was cancelled by uv_close).
      auto* c = static_cast<Connection*>(w->handle->data);
      delete r;
      if (c == nullptr) return;
      --c->pending_writes;
      if (status < 0 || (c->close_after_write && c->pending_writes == 0)) {
        c->server->drop(c);
        return;
      }
      if (c->paused && uv_stream_get_write_queue_size(c->pipe.stream()) <= kResumeBacklog) c->server->resume(c);
    });
    if (rc < 0) {
      delete req;
      drop(conn);
      return false;
    }
    ++conn->pending_writes;
    if (!conn->paused && !conn->close_after_write &&
        uv_stream_get_write_queue_size(conn->pipe.stream()) > kMaxWriteBacklog) {
      conn->paused = true;
      ++counters.read_pauses;
      uv_read_stop(conn->pipe.stream());
    }
    return true;
  }

  // The replies drained: handle the frames already read, then read again (unless those frames
  // filled the queue once more, or failed the connection).
  void resume(Connection* conn) {
    conn->paused = false;
    if (!process(conn)) return;
    if (!conn->paused && !conn->close_after_write) startReading(conn);
  }

  // Replies `error` and closes once the reply is out; reads stop at once.
  void fail(Connection* conn, ErrorCode code, std::string message) {
    uv_read_stop(conn->pipe.stream());
    conn->close_after_write = true;
    write(conn, Error{code, std::move(message), {}});
  }

  void onConnection() {
    auto conn = std::make_unique<Connection>();
    conn->server = this;
    if (adopted) {
      if (adopted->accept(conn->pipe) != 0) return;
    } else {
      if (uv_pipe_init(loop, &conn->pipe.get()->pipe, 0) != 0) return;
      conn->pipe.markInitialized();
      if (uv_accept(listener->stream(), conn->pipe.stream()) != 0) return;
    }
    Connection* c = conn.get();
    c->pipe.raw()->data = c;
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
    uv_read_start(
        c->pipe.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* cc = static_cast<Connection*>(h->data);
          *buf = uv_buf_init(cc->server->read_buffer.data(), static_cast<unsigned>(cc->server->read_buffer.size()));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* cc = static_cast<Connection*>(s->data);
          if (cc == nullptr) return;
          if (n < 0) {
            cc->server->drop(cc);
            return;
          }
          if (n > 0) cc->server->onBytes(cc, std::string_view(buf->base, static_cast<size_t>(n)));
        });
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
        fail(conn, error.code, error.message);
        return true;
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

  s.listener = std::make_unique<UvHandle<uv_pipe_t>>();
  int rc = uv_pipe_init(s.loop, s.listener->get(), 0);
  if (rc != 0) return failed(rc, "cannot create a socket for");
  s.listener->markInitialized();
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
