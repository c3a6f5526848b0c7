// The upstream side: connections to an upstream's servers (TCP or unix), a keep-alive pool per
// upstream, the response parser, connect/read/send timeouts, and the control client that carries
// this upstream's cancel frames.
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "context.hpp"
#include "h2_session.hpp"
#include "tether/agent/control/client.hpp"
#include "tether/common/clock.hpp"

namespace tether::proxy {
namespace {

const llhttp_settings_t& responseSettings();
UpstreamConn* self(llhttp_t* p) { return static_cast<UpstreamConn*>(p->data); }

}  // namespace

// ---- the group -----------------------------------------------------------------------------

UpstreamGroup::UpstreamGroup(Context& ctx, UpstreamSettings settings)
    : ctx_(ctx), settings_(std::move(settings)) {}

UpstreamGroup::~UpstreamGroup() {
  closeIdle();
  while (!grpc_.empty()) grpc_.front()->teardown();
  if (control_) control_->close();
}

std::string UpstreamGroup::resolve() {
  addrs_.assign(settings_.servers.size(), sockaddr_storage{});
  for (size_t i = 0; i < settings_.servers.size(); ++i) {
    const auto& a = settings_.servers[i];
    if (a.kind != config::Address::Kind::Tcp) continue;
    // Start-up only: a blocking lookup is fine here and never happens on the event loop.
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string host = a.host.empty() ? "127.0.0.1" : a.host;
    std::string port = std::to_string(a.port);
    int r = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (r != 0 || res == nullptr) {
      return "host not found in upstream \"" + settings_.name + "\": " + a.text() + " (" + gai_strerror(r) + ")";
    }
    std::memcpy(&addrs_[i], res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
  }
  return {};
}

void UpstreamGroup::startControl() {
  if (settings_.control_path.empty()) return;
  agent::control::ClientOptions options;
  options.path = settings_.control_path;
  agent::control::ClientEvents events;
  Context* ctx = &ctx_;
  std::string name = settings_.name;
  events.on_sent = [ctx](const agent::control::Cancel& c, uint64_t event_ns, uint64_t written_ns) {
    ctx->disconnect_to_cancel->observe(secondsBetween(event_ns, written_ns));
    ctx->cancels->with({std::string(agent::control::actionName(c.action)), std::string(agent::control::reasonLabel(c.reason)), "sent"}).inc();
  };
  events.on_ack = [ctx](const agent::control::CancelAck& ack, uint64_t) {
    ctx->log->info("rid={} cancel acknowledged: {}", ack.id, agent::control::cancelStateName(ack.state));
  };
  events.on_dropped = [ctx](const agent::control::Cancel& c) {
    ctx->cancels->with({std::string(agent::control::actionName(c.action)), std::string(agent::control::reasonLabel(c.reason)), "dropped"}).inc();
    ctx->log->warn("rid={} cancel dropped: control queue full", c.id);
  };
  events.on_error = [ctx, name](const agent::control::Error& e) {
    ctx->log->warn("upstream={} control peer error: {}", name, e.message);
  };
  // Logged on transitions only: while the peer stays away, each retry is a debug line.
  auto warned = std::make_shared<bool>(false);
  events.on_connection = [ctx, name, warned, path = settings_.control_path](bool up, int err) {
    if (up) {
      ctx->log->info("upstream={} control connected to unix:{}", name, path);
      *warned = false;
      return;
    }
    const char* why = err != 0 ? uv_strerror(err) : "closed";
    if (*warned) {
      ctx->log->debug("upstream={} control unix:{} still down: {}", name, path, why);
    } else {
      ctx->log->warn("upstream={} control unix:{} down: {}; cancels queue while it reconnects", name, path, why);
      *warned = true;
    }
  };
  control_ = std::make_unique<agent::control::Client>(ctx_.loop, options, std::move(events));
  control_->start();
}

std::string_view UpstreamGroup::sendCancel(const std::string& id, OnDisconnect action, Millis grace,
                                           Phase phase, uint64_t event_ns, std::string_view trace_id,
                                           agent::control::Reason reason) {
  if (!control_) return {};
  agent::control::Cancel c;
  c.id = id;
  c.action = action == OnDisconnect::Kill ? agent::control::Action::Kill : agent::control::Action::Interrupt;
  if (action == OnDisconnect::Interrupt) c.grace_ms = static_cast<uint32_t>(grace.count());
  c.reason = std::string(agent::control::reasonName(reason));
  c.phase = std::string(phaseName(phase));
  c.trace_id = std::string(trace_id);
  bool ok = control_->sendCancel(c, event_ns);
  std::string_view outcome = !ok ? "dropped" : control_->connected() ? "sent" : "queued";
  ctx_.log->info("rid={} cancel {} sent to unix:{} (phase {}, reason {}){}{}{}", id,
                 agent::control::actionName(c.action), settings_.control_path, c.phase, c.reason,
                 outcome == "sent" ? "" : outcome == "queued" ? ", queued until the control socket is back" : ", dropped",
                 trace_id.empty() ? "" : " trace=", trace_id);
  return outcome;
}

UpstreamConn* UpstreamGroup::acquire(const LocationSettings& loc, size_t server) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    UpstreamConn* c = *it;
    if (server != kAnyServer && c->server_ != server) {
      ++it;
      continue;
    }
    it = idle_.erase(it);
    if (!c->closing()) {
      c->reused_ = true;
      return c;
    }
  }
  return UpstreamConn::connect(ctx_, *this, loc, server);
}

UpstreamConn* UpstreamGroup::connectFresh(const LocationSettings& loc, size_t server) {
  return UpstreamConn::connect(ctx_, *this, loc, server);
}

void UpstreamGroup::release(UpstreamConn* conn) {
  if (ctx_.draining || idle_.size() >= settings_.keepalive) {
    conn->abort();
    return;
  }
  idle_.push_front(conn);
  conn->idle_pos_ = idle_.begin();
  conn->idleStart();
}

void UpstreamGroup::forget(UpstreamConn* conn) { idle_.erase(conn->idle_pos_); }

void UpstreamGroup::closeIdle() {
  for (auto it = grpc_.begin(); it != grpc_.end();) {
    GrpcUpstream* c = *it++;
    c->closeIfIdle();  // may erase itself
  }
  while (!idle_.empty()) {
    UpstreamConn* c = idle_.front();
    c->abort();  // removes itself from idle_
  }
}

// ---- one connection ------------------------------------------------------------------------

UpstreamConn::UpstreamConn(Context& ctx, UpstreamGroup& group, size_t server)
    : StreamConn(ctx, group.settings_.servers[server].kind == config::Address::Kind::Unix),
      group_(group), server_(server), server_text_(group.settings_.servers[server].text()) {
  llhttp_init(&parser_, HTTP_RESPONSE, &responseSettings());
  parser_.data = this;
}

UpstreamConn::~UpstreamConn() = default;

UpstreamConn* UpstreamConn::connect(Context& ctx, UpstreamGroup& group, const LocationSettings& loc, size_t server) {
  if (server >= group.settings_.servers.size()) server = group.next_++ % group.settings_.servers.size();
  auto* c = new UpstreamConn(ctx, group, server);
  c->loc_ = &loc;
  if (int r = c->connectTo(group.settings_.servers[server], group.addrs_[server]); r != 0) {
    c->teardown();
    return nullptr;
  }
  c->armTimer();
  return c;
}

void UpstreamConn::onConnect(int status) {
  if (closing_) return;
  if (status != 0) {
    ctx_.log->error("rid={} connect to upstream {} ({}) failed: {}",
                    client_ != nullptr ? client_->requestId() : "-", group_.settings_.name, server_text_,
                    uv_strerror(status));
    fail(status, false);
    return;
  }
  if (group_.settings_.servers[server_].kind == config::Address::Kind::Tcp) uv_tcp_nodelay(stream_.tcp(), 1);
  state_ = State::Busy;
  readStart();
  armTimer();
}

void UpstreamConn::attach(Exchange* client, const LocationSettings& loc, bool head_request,
                          std::shared_ptr<Generation> gen) {
  gen_ = std::move(gen);
  client_ = client;
  loc_ = &loc;
  head_request_ = head_request;
  request_sent_ = response_started_ = response_done_ = discard_ = bodyless_ = interim_ = got_bytes_ = false;
  deadline_ = false;
  status_ = 0;
  if (state_ == State::Idle) {
    state_ = State::Busy;
    timer_.cancel();
  }
  llhttp_init(&parser_, HTTP_RESPONSE, &responseSettings());
  parser_.data = this;
  if (!reading() && state_ == State::Busy) readStart();
}

void UpstreamConn::requestSent() {
  request_sent_ = true;
  armTimer();
}

void UpstreamConn::detach(bool keep_going) {
  client_ = nullptr;
  if (!keep_going) {
    abort();
    return;
  }
  discard_ = true;
  if (!reading() && state_ == State::Busy) readStart();
}

void UpstreamConn::abort() { teardown(); }

void UpstreamConn::idleStart() {
  gen_.reset();  // callers hold the generation until they return (see finishResponse)
  state_ = State::Idle;
  client_ = nullptr;
  loc_ = nullptr;
  // An idle connection is watched: any byte or end of file from the upstream closes it, and so
  // does keepalive_timeout (nginx's upstream keepalive_timeout).
  if (!reading()) readStart();
  armTimer();
}

void UpstreamConn::armTimer() {
  // In a deadline's grace the timer is the grace's end: progress does not extend it.
  if (closing_ || deadline_) return;
  Millis t{0};
  if (state_ == State::Connecting) {
    t = loc_ != nullptr ? loc_->connect_timeout : Millis(60000);
  } else if (state_ == State::Busy && pending() > 0) {
    t = loc_ != nullptr ? loc_->send_timeout : Millis(60000);
  } else if (state_ == State::Busy && request_sent_) {
    t = loc_ != nullptr ? loc_->read_timeout : Millis(60000);
  } else if (state_ == State::Idle) {
    t = group_.settings_.keepalive_timeout;
  } else {
    timer_.cancel();
    return;
  }
  ctx_.timeouts.arm(timer_, static_cast<uint64_t>(t.count()));
}

void UpstreamConn::onTimer() {
  if (closing_) return;
  if (state_ == State::Idle) {
    teardown();  // idle past keepalive_timeout
    return;
  }
  const char* doing = state_ == State::Connecting ? "connecting" : pending() > 0 ? "sending the request" : "reading the response";
  if (state_ == State::Busy && !deadline_ && client_ != nullptr && loc_ != nullptr &&
      (loc_->on_disconnect == OnDisconnect::Interrupt || loc_->on_disconnect == OnDisconnect::Kill)) {
    // proxy_read_timeout or proxy_send_timeout on a cancelling location, the client still
    // waiting: a deadline (DESIGN.md "Disconnect semantics"). The job is cancelled and the
    // connection kept for kill_after, so the client gets the interrupted result instead of a
    // 504 and a solve killed behind its back. A connect timeout reached no job: 504 below.
    deadline_ = true;
    ctx_.log->info("rid={} upstream {} ({}) timed out while {}; cancelling, {}ms for its answer", client_->requestId(),
                   group_.settings_.name, server_text_, doing, loc_->kill_after.count());
    ctx_.timeouts.arm(timer_, static_cast<uint64_t>(loc_->kill_after.count()));
    client_->onUpstreamDeadline();
    return;
  }
  ctx_.log->error("rid={} upstream {} ({}) timed out while {}{}", client_ != nullptr ? client_->requestId() : "-",
                  group_.settings_.name, server_text_, doing, deadline_ ? ", and gave no answer within kill_after" : "");
  fail(UV_ETIMEDOUT, true);
}

// A failed exchange: 504 for timeouts, 502 otherwise, or a cut response if it had begun.
void UpstreamConn::fail(int status, bool timeout) {
  (void)status;
  Exchange* c = std::exchange(client_, nullptr);
  bool stale = reused_ && !got_bytes_ && !timeout;
  teardown();
  if (c == nullptr) return;
  if (stale && c->retryOnFreshUpstream()) return;
  c->onUpstreamFailed(timeout ? 504 : 502);
}

void UpstreamConn::onRead(ssize_t nread, const char* data) {
  if (state_ == State::Idle) {
    // Bytes or end of file on an idle connection: the upstream closed it or broke protocol.
    teardown();
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF && response_started_ && llhttp_message_needs_eof(&parser_)) {
      // A body delimited by the connection's end (RFC 9112 section 6.3, rule 8).
      llhttp_finish(&parser_);
      if (response_done_) {
        finishResponse(true);
        return;
      }
    }
    if (reused_ && !got_bytes_) {
      // The upstream closed a kept-alive connection as we reused it: expected now and then.
      ctx_.log->debug("rid={} upstream {} ({}) closed a kept-alive connection before answering: {}",
                      client_ != nullptr ? client_->requestId() : "-", group_.settings_.name,
                      server_text_, uv_strerror(static_cast<int>(nread)));
    } else if (nread != UV_EOF || response_started_ || request_sent_) {
      ctx_.log->error("rid={} upstream {} ({}) closed the connection: {}",
                      client_ != nullptr ? client_->requestId() : "-", group_.settings_.name,
                      server_text_, uv_strerror(static_cast<int>(nread)));
    }
    fail(static_cast<int>(nread), false);
    return;
  }
  got_bytes_ = true;
  armTimer();
  llhttp_errno_t err = llhttp_execute(&parser_, data, static_cast<size_t>(nread));
  if (closing_) return;
  if (err == HPE_PAUSED && response_done_) {
    // Bytes after the response are a protocol error: such a connection is not reused.
    const char* pos = llhttp_get_error_pos(&parser_);
    finishResponse(pos == data + nread);
    return;
  }
  if (err == HPE_OK && client_ != nullptr) client_->flushHead();
  if (err != HPE_OK) {
    ctx_.log->error("rid={} upstream {} ({}) sent an invalid response: {}",
                    client_ != nullptr ? client_->requestId() : "-", group_.settings_.name, server_text_,
                    llhttp_errno_name(err));
    fail(UV_EPROTO, false);
  }
}

void UpstreamConn::finishResponse(bool clean) {
  bool reusable = clean && llhttp_should_keep_alive(&parser_) != 0 && request_sent_ && pending() == 0;
  llhttp_resume(&parser_);
  Exchange* c = std::exchange(client_, nullptr);
  if (c == nullptr) {
    // on_disconnect none: the request ran to its end; the response is discarded. The
    // generation may be an old one whose last user we are: keep it until we have returned.
    auto keep = gen_;
    if (reusable) {
      group_.release(this);
    } else {
      teardown();
    }
    return;
  }
  c->onResponseComplete(reusable);
}

void UpstreamConn::onDrained() {
  armTimer();
  if (client_ != nullptr) client_->onUpstreamDrained();
}

void UpstreamConn::onWriteFailed(int status) {
  if (reused_ && !got_bytes_) {
    fail(status, false);  // a kept-alive connection the upstream had closed: retried, see fail()
    return;
  }
  ctx_.log->error("rid={} write to upstream {} ({}) failed: {}", client_ != nullptr ? client_->requestId() : "-",
                  group_.settings_.name, server_text_, uv_strerror(status));
  fail(status, false);
}

void UpstreamConn::teardown() {
  if (closing_) return;
  if (state_ == State::Idle) group_.forget(this);
  client_ = nullptr;
  timer_.cancel();
  closeStream();
}

// ---- response parser callbacks -------------------------------------------------------------

int UpstreamConn::cbMessageBegin(llhttp_t* p) {
  UpstreamConn* u = self(p);
  u->head_.clear();
  u->reason_.clear();
  return 0;
}

int UpstreamConn::cbStatus(llhttp_t* p, const char* at, size_t len) {
  self(p)->reason_.append(at, len);
  return 0;
}

int UpstreamConn::cbHeaderField(llhttp_t* p, const char* at, size_t len) {
  UpstreamConn* u = self(p);
  u->head_.field(at, len);
  return u->head_.bytes() > 64 * 1024 ? -1 : 0;
}

int UpstreamConn::cbHeaderValue(llhttp_t* p, const char* at, size_t len) {
  return self(p)->head_.value(at, len) ? 0 : -1;
}

int UpstreamConn::cbHeaderValueComplete(llhttp_t* p) {
  self(p)->head_.valueComplete();
  return 0;
}

int UpstreamConn::cbHeadersComplete(llhttp_t* p) {
  UpstreamConn* u = self(p);
  u->status_ = p->status_code;
  if (u->status_ >= 100 && u->status_ < 200) {
    // Interim responses (100 Continue to our own request) are not forwarded: we answered the
    // client's Expect ourselves. 101 is refused: no upgrades through this proxy.
    if (u->status_ == 101) return -1;
    u->interim_ = true;
    return 0;
  }
  u->interim_ = false;
  u->response_started_ = true;
  u->trailer_from_ = u->head_.count();  // fields after this one are a chunked body's trailers
  u->bodyless_ = u->head_request_ || u->status_ == 204 || u->status_ == 304;
  if (u->client_ != nullptr) {
    u->client_->onResponseHead(*u);
    if (u->closing_) return -1;
  }
  return u->head_request_ ? 1 : 0;
}

bool UpstreamConn::passTrailer(std::string_view name) {
  // RFC 9110 section 6.5.1: framing, routing and authentication fields are not trailers.
  return !isHopByHop(name, {}) && !iequals(name, "content-length") && !iequals(name, "host") &&
         !iequals(name, "content-type") && !iequals(name, "authorization") && !iequals(name, "set-cookie");
}

int UpstreamConn::cbBody(llhttp_t* p, const char* at, size_t len) {
  UpstreamConn* u = self(p);
  if (u->client_ != nullptr) {
    u->client_->onResponseBody(at, len);
    if (u->closing_) return -1;
  }
  return 0;
}

int UpstreamConn::cbMessageComplete(llhttp_t* p) {
  UpstreamConn* u = self(p);
  if (u->interim_) {
    u->interim_ = false;
    return 0;
  }
  u->response_done_ = true;
  return HPE_PAUSED;  // finishResponse() runs once llhttp_execute has returned
}

namespace {

const llhttp_settings_t& responseSettings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = UpstreamConn::cbMessageBegin;
    s.on_status = UpstreamConn::cbStatus;
    s.on_header_field = UpstreamConn::cbHeaderField;
    s.on_header_value = UpstreamConn::cbHeaderValue;
    s.on_header_value_complete = UpstreamConn::cbHeaderValueComplete;
    s.on_headers_complete = UpstreamConn::cbHeadersComplete;
    s.on_body = UpstreamConn::cbBody;
    s.on_message_complete = UpstreamConn::cbMessageComplete;
    return s;
  }();
  return kSettings;
}

}  // namespace

}  // namespace tether::proxy
