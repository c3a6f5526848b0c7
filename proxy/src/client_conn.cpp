// The client side of an exchange: parses requests with llhttp, forwards them to an upstream,
// streams the response back, and turns a client that leaves into a disconnect (DESIGN.md
// "Disconnect semantics"): 499 in the access log, the upstream closed, one cancel frame.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>

#include "context.hpp"
#include "h2_session.hpp"
#include "tether/common/clock.hpp"
#include "tether/agent/control/request_id.hpp"
#include "tether/common/trace_context.hpp"

namespace tether::proxy {
namespace {

const llhttp_settings_t& requestSettings();

void appendNumber(std::string& out, uint64_t v, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, base);
  out.append(buf, r.ptr);
}

ClientConn* self(llhttp_t* p) { return static_cast<ClientConn*>(p->data); }

}  // namespace

void ClientConn::accept(Context& ctx, uv_stream_t* listener, std::shared_ptr<const ServerRef> server,
                        bool unix_socket) {
  auto* conn = new ClientConn(ctx, std::move(server), unix_socket);
  TcpKeepalive keepalive = conn->settings_->tcp_keepalive;
  if (unix_socket) keepalive.enabled = false;
  if (int r = conn->ServerConnection::accept(listener, keepalive); r != 0) {
    conn->teardown();
    return;
  }
  conn->armTimer();
}

ClientConn::ClientConn(Context& ctx, std::shared_ptr<const ServerRef> server, bool unix_socket)
    : http::ServerConnection(ctx.loop, ctx.timeouts, unix_socket ? uv::StreamKind::Pipe : uv::StreamKind::Tcp,
                             ctx.read_buf, sizeof ctx.read_buf),
      ctx_(ctx),
      server_(std::move(server)),
      settings_(server_->settings) {
  sniffing_ = settings_->http2.enabled;
  ctx_.conns.push_front(this);
  pos_ = ctx_.conns.begin();
}

// The parser's state exists while a request is parsed or answered: an idle keep-alive connection
// holds none (nextRequest() frees it).
llhttp_t& ClientConn::parser() {
  if (!parser_) {
    parser_ = std::make_unique<llhttp_t>();
    llhttp_init(parser_.get(), HTTP_REQUEST, &requestSettings());
    parser_->data = this;
  }
  return *parser_;
}

ClientConn::~ClientConn() = default;

// ---- the request ---------------------------------------------------------------------------

Request::Request(ClientConn& conn) : RequestBase(conn.ctx_, *conn.server_, conn.peerIp(), 1), conn_(conn) {}

std::string_view Request::peer() const { return conn_.peer(); }
bool Request::downstreamGone() const { return conn_.closing(); }
void Request::pauseDownstream() { conn_.readStop(); }

// The deadline (Request-Timeout) passed: 504 while the response has not begun, else the
// response is cut (the client must see the truncation). The cancel frame went first.
void Request::onDeadline() {
  if (UpstreamConn* up = std::exchange(upstream_, nullptr)) up->abort();
  if (response_started_) {
    keep_alive_ = false;
    accessLog();
    conn_.teardown();
    return;
  }
  upstream_end_ns_ = monotonicNs();
  conn_.respondLocal(504, "Gateway Time-out\n", !request_done_);
}

// ---- reading -------------------------------------------------------------------------------

void ClientConn::onBytes(const char* data, size_t len) { feed(data, len); }

void ClientConn::onPeerGone(Cause cause) {
  Phase ph = phase();
  if (cause == Cause::Eof && (ph == Phase::AwaitingResponse || ph == Phase::ResponseBody) && req_->loc_ != nullptr &&
      req_->loc_->half_close == HalfClose::Wait && !hasPipelined()) {
    // half_close wait: the client only closed its sending side; finish the response.
    setHalfClosed();
    readStop();
    return;
  }
  disconnect(cause);
}

// HTTP/2 with prior knowledge (RFC 9113 section 3.3) starts with this preface; no HTTP/1.1
// request line does ("PRI" is no method a server accepts), so three bytes decide.
bool ClientConn::sniffHttp2(const char* data, size_t len) {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  // The first one or two bytes wait in the pipelined buffer until three have come.
  std::string bytes;
  if (hasPipelined()) {
    keepPipelined(data, len, kMaxPipelined);
    bytes = takePipelined();
    data = bytes.data();
    len = bytes.size();
  }
  std::string_view got(data, len);
  // "PRI" starts no HTTP/1.1 request we serve: from there on nghttp2 checks the rest of the
  // preface, and a wrong one gets GOAWAY(PROTOCOL_ERROR) rather than an HTTP/1.1 400.
  size_t n = std::min<size_t>(got.size(), 3);
  const bool h2 = got.substr(0, n) == kPreface.substr(0, n);
  if (h2 && n < 3) {
    keepPipelined(data, len, kMaxPipelined);
    return true;  // "P" or "PR": wait for more
  }
  sniffing_ = false;
  if (!h2) {
    if (!bytes.empty()) feed(data, len);
    return !bytes.empty();
  }
  h2_ = std::make_unique<H2Session>(*this);
  if (!h2_->start()) {
    ctx_.log->error("client={} cannot start an HTTP/2 session", peer());
    teardown();
    return true;
  }
  h2_->feed(data, len);
  return true;
}

void ClientConn::feed(const char* data, size_t len) {
  if (len == 0) return;
  if (h2_) {
    h2_->feed(data, len);
    return;
  }
  if (sniffing_ && sniffHttp2(data, len)) return;
  // The obs-fold check looks at the byte before a header value: inside this buffer, or the last
  // byte of the previous one.
  exec_begin_ = data;
  char last = data[len - 1];
  struct Remember {
    ClientConn* self;
    char last;
    ~Remember() { self->prev_last_byte_ = last; }
  } remember{this, last};
  while (len > 0 && !closing() && !lingering()) {
    if (req_ && req_->request_done_) {
      // Pipelined bytes: kept for after the response (RFC 9112 section 9.3.2), never a disconnect.
      keepPipelined(data, len, kMaxPipelined);
      return;
    }
    if (!req_ && !any_bytes_) {
      any_bytes_ = true;
      armTimer();  // keepalive_timeout gives way to client_header_timeout
    }
    llhttp_t& p = parser();
    ++executing_;
    llhttp_errno_t err = llhttp_execute(&p, data, len);
    --executing_;
    if (closing() || lingering()) return;
    if (err == HPE_OK) return;
    if (err == HPE_PAUSED) {
      const char* pos = llhttp_get_error_pos(parser_.get());
      llhttp_resume(parser_.get());
      size_t used = static_cast<size_t>(pos - data);
      data += used;
      len -= used;
      continue;
    }
    parseError(err);
    return;
  }
  if (executing_ == 0 && !req_ && !any_bytes_ && !hasPipelined()) parser_.reset();
}

void ClientConn::parseError(llhttp_errno_t err) {
  uint16_t status = req_ && req_->user_error_ != 0 ? req_->user_error_ : 400;
  if (err == HPE_PAUSED_UPGRADE) status = 501;  // no Upgrade/CONNECT through this proxy
  if (!req_) startRequest();  // bytes that never began a message
  if (req_->upstream_ != nullptr) {
    req_->upstream_->abort();
    req_->upstream_ = nullptr;
  }
  if (req_->response_started_) {
    teardown();
    return;
  }
  ctx_.log->debug("rid={} client={} bad request: {} ({})", req_->request_id_.empty() ? "-" : req_->request_id_,
                  peer(), llhttp_errno_name(err), parser_ && parser_->reason != nullptr ? parser_->reason : "");
  respondLocal(status, std::string(reasonPhrase(status)) + "\n", true);
}

Request& ClientConn::startRequest() {
  req_ = std::make_unique<Request>(*this);
  req_->track(true);  // listed in /requests
  armTimer();
  return *req_;
}

int ClientConn::cbMessageBegin(llhttp_t* p) {
  self(p)->startRequest();
  return 0;
}

// The callbacks after message begin find their request, unless a local answer ended it in the
// middle of the message (the connection then closes gracefully): -1 stops the parse.
int ClientConn::cbUrl(llhttp_t* p, const char* at, size_t len) {
  Request* r = self(p)->req_.get();
  if (r == nullptr) return -1;
  if (r->url_.size() + len > kMaxHeadBytes / 2) {
    r->user_error_ = 414;
    return -1;
  }
  r->url_.append(at, len);
  return 0;
}

// RFC 9110 section 5.6.2: a field name is a token. llhttp 8.1 lets a space through
// ("Bad Header: x"), which other servers may read differently, so we check ourselves.
static bool isToken(const char* at, size_t len) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  for (size_t i = 0; i < len; ++i) {
    unsigned char ch = static_cast<unsigned char>(at[i]);
    if (std::isalnum(ch) == 0 && kSpecials.find(static_cast<char>(ch)) == std::string_view::npos) return false;
  }
  return true;
}

int ClientConn::cbHeaderField(llhttp_t* p, const char* at, size_t len) {
  Request* r = self(p)->req_.get();
  if (r == nullptr || !isToken(at, len)) return -1;
  r->head_.field(at, len);
  if (r->head_.bytes() + r->url_.size() > kMaxHeadBytes || r->head_.count() > kMaxHeaders) {
    r->user_error_ = 431;
    return -1;
  }
  return 0;
}

int ClientConn::cbHeaderValue(llhttp_t* p, const char* at, size_t len) {
  ClientConn* c = self(p);
  Request* r = c->req_.get();
  if (r == nullptr) return -1;
  // obs-fold (RFC 9112 section 5.2) is refused with 400: llhttp 8.1 accepts it and hands the
  // continuation line over as a span that starts right after a line feed.
  char before = at > c->exec_begin_ ? at[-1] : c->prev_last_byte_;
  if (before == '\n' || !r->head_.value(at, len)) return -1;
  if (r->head_.bytes() + r->url_.size() > kMaxHeadBytes) {
    r->user_error_ = 431;
    return -1;
  }
  return 0;
}

int ClientConn::cbHeaderValueComplete(llhttp_t* p) {
  Request* r = self(p)->req_.get();
  if (r == nullptr) return -1;
  r->head_.valueComplete();
  return 0;
}

int ClientConn::cbHeadersComplete(llhttp_t* p) {
  ClientConn* c = self(p);
  if (c->req_ == nullptr) return -1;
  int r = c->headersComplete();
  return c->req_ == nullptr && r == 0 ? -1 : r;
}

int ClientConn::cbBody(llhttp_t* p, const char* at, size_t len) {
  ClientConn* c = self(p);
  return c->req_ == nullptr ? -1 : c->body(at, len);
}

int ClientConn::cbMessageComplete(llhttp_t* p) {
  ClientConn* c = self(p);
  return c->req_ == nullptr ? -1 : c->messageComplete();
}

// The head is complete: validate it (a status ends the parse with that answer), route it to a
// location (none or the admin listener: answered locally once the request is complete), forward
// it upstream.
int ClientConn::headersComplete() {
  Request& r = *req_;
  r.headers_done_ = true;
  r.method_ = llhttp_method_name(static_cast<llhttp_method_t>(parser_->method));
  r.http_minor_ = parser_->http_major == 1 ? parser_->http_minor : 0;
  r.keep_alive_ = llhttp_should_keep_alive(parser_.get()) != 0 && !ctx_.draining;
  r.request_chunked_ = (parser_->flags & F_CHUNKED) != 0;
  r.head_request_ = parser_->method == HTTP_HEAD;

  r.identify();
  if (uint16_t status = validate(); status != 0) {
    r.user_error_ = status;
    return -1;
  }
  if (!r.takeDeadline("request-timeout")) {
    r.user_error_ = 400;  // Request-Timeout: SECONDS, a decimal
    return -1;
  }
  armTimer();
  route();
  if (r.local_) return 0;
  return forward();
}

uint16_t ClientConn::validate() {
  Request& r = *req_;
  // Ambiguities that make request smuggling possible are refused (RFC 9112 section 6.3).
  size_t hosts = r.head_.countOf("host");
  if (hosts > 1 || (hosts == 0 && parser_->http_major == 1 && parser_->http_minor == 1)) return 400;
  if (parser_->method == HTTP_CONNECT) return 405;
  if ((parser_->flags & F_CONTENT_LENGTH) != 0 && parser_->content_length > settings_->client_max_body_size) {
    return 413;
  }
  std::string_view expect;
  if (r.head_.find("expect", expect) && !iequals(expect, "100-continue")) return 417;
  return 0;
}

void ClientConn::route() {
  Request& r = *req_;
  std::string_view path(r.url_);
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  r.loc_ = findLocation(*settings_, path);
  if (r.loc_ == nullptr) r.local_ = true;  // answered with 404 once the request is complete
}

int ClientConn::forward() {
  Request& r = *req_;
  std::string_view expect;
  if (r.head_.find("expect", expect)) {
    // We answer 100 ourselves, as nginx does: the body limit was checked, and the upstream
    // then sees a plain request (Expect is not forwarded).
    if (parser_->http_minor >= 1 && ((parser_->flags & F_CHUNKED) != 0 || parser_->content_length > 0)) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      if (write(kContinue) != 0) {
        disconnect(Cause::WriteError);
        return -1;
      }
    }
  }

  if (!r.bindUpstream()) {
    r.local_ = true;
    r.status_ = 502;
    return 0;
  }
  r.buildUpstreamHead();
  std::string& out = r.upstream_head_;  // kept for one retry on a fresh connection
  uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
  r.sendOrFail(&buf, 1);
  return 0;
}

int ClientConn::body(const char* at, size_t len) {
  req_->body_bytes_ += len;
  if (req_->body_bytes_ > settings_->client_max_body_size) {
    req_->user_error_ = 413;
    return -1;
  }
  armTimer();  // client_body_timeout counts from the last read
  if (req_->upstream_ == nullptr) return 0;  // local answer or upstream gone: the body is discarded
  if (req_->request_chunked_) {
    // Each piece llhttp hands over becomes one chunk: chunk boundaries carry no meaning.
    http::ChunkFrame chunk(at, len);
    req_->sendOrFail(chunk.bufs, 3);
  } else {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len));
    req_->sendOrFail(&buf, 1);
  }
  return closing() || req_ == nullptr ? -1 : 0;
}

int ClientConn::messageComplete() {
  req_->request_done_ = true;
  if (req_->local_) {
    if (req_->status_ == 502) {
      respondLocal(502, "Bad Gateway\n", false);
    } else {
      respondLocal(404, "Not Found\n", false);
    }
  } else if (req_->upstream_ != nullptr) {
    if (req_->request_chunked_) {
      static char kLast[] = "0\r\n\r\n";
      uv_buf_t buf = uv_buf_init(kLast, 5);
      req_->sendOrFail(&buf, 1);
    }
    if (req_ && req_->upstream_ != nullptr) req_->upstream_->requestSent();
  }
  if (closing()) return -1;
  armTimer();
  // Pause so that the next pipelined request waits for this one's response.
  return HPE_PAUSED;
}

// ---- the response --------------------------------------------------------------------------

void Request::onResponseHead(UpstreamConn& up) {
  upstream_head_ns_ = monotonicNs();
  response_started_ = true;
  status_ = up.status();
  const HeadBuffer& h = up.head();
  std::string_view connection;
  h.find("connection", connection);
  bool close_after = !keep_alive_ || conn_.halfClosed() || conn_.ctx_.draining;
  response_chunked_ = false;
  response_close_ = false;
  head_pending_ = false;
  if (!up.bodyless() && !up.hasContentLength()) {
    // Chunked or close-delimited upstream body: chunk it for HTTP/1.1, delimit by close for 1.0.
    if (http_minor_ >= 1) {
      response_chunked_ = true;
    } else {
      response_close_ = true;
      close_after = true;
    }
  }
  keep_alive_ = !close_after;
  out_.clear();
  http::appendStatusLine(out_, status_, up.reason());
  for (size_t i = 0; i < h.count(); ++i) {
    std::string_view name = h.name(i);
    if (isHopByHop(name, connection) || iequals(name, conn_.settings_->request_id_header)) continue;
    out_.append(name).append(": ").append(h.value(i)).append("\r\n");
  }
  out_.append(conn_.settings_->request_id_header).append(": ").append(request_id_).append("\r\n");
  if (response_chunked_) out_.append("Transfer-Encoding: chunked\r\n");
  http::appendConnectionHeader(out_, keep_alive_, http_minor_);
  out_.append("\r\n");
  // The head waits for the body bytes of the same upstream read (or that read's end, see
  // flushHead): one writev and one TCP segment for a small response instead of two.
  head_pending_ = true;
}

void Request::flushHead() {
  if (!head_pending_ || conn_.closing()) return;
  head_pending_ = false;
  if (conn_.write(out_) != 0) {
    conn_.disconnect(Cause::WriteError);
    return;
  }
  conn_.armTimer();
}

void Request::onResponseBody(const char* at, size_t len) {
  sent_body_bytes_ += len;
  uv_buf_t bufs[4];
  unsigned n = 0;
  if (head_pending_) {
    head_pending_ = false;
    bufs[n++] = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  }
  http::ChunkFrame chunk(at, len);
  if (response_chunked_) {
    for (auto& b : chunk.bufs) bufs[n++] = b;
  } else {
    bufs[n++] = chunk.bufs[1];
  }
  int r = conn_.write(bufs, n);
  if (r == 0) conn_.armTimer();
  if (r != 0) {
    conn_.disconnect(Cause::WriteError);
    return;
  }
  if (conn_.pending() > kHighWater && upstream_ != nullptr) {
    upstream_->pauseReading();  // backpressure: the client is slower than the upstream
    conn_.armTimer();
  }
}

void Request::onResponseComplete(bool reusable) {
  upstream_end_ns_ = monotonicNs();
  UpstreamConn* up = std::exchange(upstream_, nullptr);
  // The last chunk carries the upstream's trailers (grpc-status and the like), as received.
  std::string last = "0\r\n";
  if (response_chunked_ && up != nullptr) {
    const HeadBuffer& h = up->head();
    for (size_t i = up->trailerFrom(); i < h.count(); ++i) {
      if (UpstreamConn::passTrailer(h.name(i))) last.append(h.name(i)).append(": ").append(h.value(i)).append("\r\n");
    }
  }
  last.append("\r\n");
  if (up != nullptr && group_ != nullptr) {
    if (reusable && request_done_) {
      group_->release(up);
    } else {
      up->abort();
    }
  }
  if (response_chunked_) {
    if (head_pending_) {
      out_.append(last);
    } else if (conn_.write(last) != 0) {
      conn_.disconnect(Cause::WriteError);
      return;
    }
  }
  flushHead();
  if (conn_.closing()) return;
  conn_.finishExchange();
}

void Request::onUpstreamFailed(int status_code) {
  UpstreamConn* up = std::exchange(upstream_, nullptr);
  if (up != nullptr) up->abort();
  if (response_started_) {
    // The response is cut short: the client must see the truncation, so the connection goes.
    status_ = status_ == 0 ? 502 : status_;
    keep_alive_ = false;
    accessLog();
    conn_.teardown();
    return;
  }
  upstream_end_ns_ = monotonicNs();
  conn_.respondLocal(static_cast<uint16_t>(status_code), std::string(reasonPhrase(static_cast<uint16_t>(status_code))) + "\n",
               !request_done_);
}

void Request::onUpstreamDrained() {
  if (!conn_.reading() && !conn_.closing() && !conn_.halfClosed() && conn_.pipelinedBytes() <= kMaxPipelined) conn_.readStart();
}


void ClientConn::respondLocal(uint16_t status, std::string_view body, bool close,
                              std::string_view content_type) {
  req_->local_ = true;
  req_->status_ = status;
  if (close || !req_->request_done_ || ctx_.draining || halfClosed()) req_->keep_alive_ = false;
  req_->response_started_ = true;
  req_->out_.clear();
  http::appendStatusLine(req_->out_, status, reasonPhrase(status));
  req_->out_.append("Server: tether-proxy\r\nContent-Type: ");
  req_->out_.append(content_type).append("\r\nContent-Length: ");
  appendNumber(req_->out_, body.size());
  req_->out_.append("\r\n");
  if (!req_->request_id_.empty()) req_->out_.append(settings_->request_id_header).append(": ").append(req_->request_id_).append("\r\n");
  req_->out_.append(req_->keep_alive_ ? "" : "Connection: close\r\n").append("\r\n");
  if (req_->method_ != "HEAD") req_->out_.append(body);
  req_->sent_body_bytes_ = body.size();
  if (write(req_->out_) != 0) {
    teardown();
    return;
  }
  finishExchange();
}

// The response is complete (onResponseComplete, respondLocal): the request's line is logged and
// its object freed. The caller is a method of that request or runs on its behalf: it returns at
// once without touching it.
void ClientConn::finishExchange() {
  if (closing()) return;
  std::unique_ptr<Request> done = std::move(req_);
  done->accessLog();
  ++requests_served_;
  any_bytes_ = false;
  done->track(false);
  done->upstream_ = nullptr;  // released or aborted by the caller
  bool keep = done->keep_alive_ && done->request_done_ && !halfClosed();
  done.reset();
  if (!keep) {
    closeGracefully();
    return;
  }
  armTimer();
  nextRequest();
}

void ClientConn::nextRequest() {
  if (!hasPipelined()) {
    // Idle: the parser's state goes until the next request's first byte (unless a callback of
    // that parser is still on the stack: then feed() lets it go when llhttp returns).
    if (executing_ == 0) parser_.reset();
    if (!reading()) readStart();
    return;
  }
  std::string bytes = takePipelined();
  if (!reading() && !halfClosed()) readStart();
  feed(bytes.data(), bytes.size());
}

// ---- timers --------------------------------------------------------------------------------

void ClientConn::armTimer() {
  if (closing() || lingering()) return;  // the lingering close has its own timeout
  Millis t{0};
  Wait kind = Wait::Header;
  if (h2_) {
    // Streams have their own watches (upstream timeouts, deadlines); the connection's timer
    // governs an idle connection and a stalled write.
    if (pending() > 0) {
      t = settings_->send_timeout, kind = Wait::Send;
    } else if (h2_->openStreams() == 0) {
      t = settings_->keepalive_timeout, kind = Wait::KeepAlive;
    } else {
      stopWaiting();
      return;
    }
  } else if (!req_) {
    // A fresh connection must send its first request within client_header_timeout; between
    // requests keepalive_timeout applies until the next request's first byte.
    const bool header = any_bytes_ || requests_served_ == 0;
    t = header ? settings_->client_header_timeout : settings_->keepalive_timeout;
    kind = header ? Wait::Header : Wait::KeepAlive;
  } else if (!req_->headers_done_) {
    t = settings_->client_header_timeout;
  } else if (!req_->request_done_) {
    t = settings_->client_body_timeout, kind = Wait::Body;
  } else if (pending() > 0) {
    t = settings_->send_timeout, kind = Wait::Send;
  } else {
    stopWaiting();  // the upstream's read timeout governs
    return;
  }
  wait(kind, static_cast<uint64_t>(t.count()));
}

void ClientConn::onTimeout(Wait) {
  if (h2_) {
    if (h2_->openStreams() == 0) {
      h2_->drain();  // idle: GOAWAY(NO_ERROR), then the connection closes
      if (!closing() && !lingering()) teardown();
    } else {
      disconnect(Cause::Timeout);  // a write that made no progress within send_timeout
    }
    return;
  }
  switch (phase()) {
    case Phase::Idle:
      if (any_bytes_) {  // a request began but did not reach its first header callback
        startRequest();
        ctx_.disconnects->with({std::string(phaseName(Phase::RequestHeaders)), std::string(causeName(Cause::Timeout))}).inc();
        respondLocal(408, "Request Time-out\n", true);
        return;
      }
      teardown();
      return;
    case Phase::RequestHeaders:
      // Slowloris: 408, as nginx's client_header_timeout.
      ctx_.disconnects->with({std::string(phaseName(Phase::RequestHeaders)), std::string(causeName(Cause::Timeout))})
          .inc();
      respondLocal(408, "Request Time-out\n", true);
      return;
    default:
      disconnect(Cause::Timeout);
      return;
  }
}

// ---- writes --------------------------------------------------------------------------------

void ClientConn::onWriteProgress() { armTimer(); }

void ClientConn::onDrained() {
  ServerConnection::onDrained();  // a lingering close goes on
  if (lingering()) return;
  if (h2_) {
    h2_->onDrained();
    return;
  }
  if (req_ && req_->upstream_ != nullptr) req_->upstream_->resumeReading();
  armTimer();
}

void ClientConn::onWriteFailed(int status) {
  if (lingering() || !req_) {
    ServerConnection::onWriteFailed(status);
    teardown();
    return;
  }
  disconnect(Cause::WriteError);
}

// ---- disconnects ---------------------------------------------------------------------------

// Every way a client can leave ends here (EOF, reset, write error, client timeouts, keepalive
// failure; see onRead, onTimer, onWriteFailed and the write calls). Idempotent.
void ClientConn::disconnect(Cause cause) {
  if (closing()) return;
  if (h2_) {
    h2_->connectionLost(cause);
    teardown();
    return;
  }
  if (!req_) {
    teardown();
    return;
  }
  if (req_->disconnected_) return;
  Phase ph = phase();
  req_->disconnected_ = true;
  uint64_t event_ns = monotonicNs();
  ctx_.disconnects->with({std::string(phaseName(ph)), std::string(causeName(cause))}).inc();
  if (ph == Phase::RequestHeaders || req_->local_) {
    // No upstream saw this request: nothing to cancel (the access log line is still written).
    if (ph != Phase::RequestHeaders) {
      req_->status_ = 499;
      req_->disconnect_phase_ = ph;
      req_->disconnect_cause_ = cause;
      req_->accessLog();
    }
    teardown();
    return;
  }
  req_->disconnect_phase_ = ph;
  req_->disconnect_cause_ = cause;
  req_->status_ = 499;
  OnDisconnect action = req_->loc_ != nullptr ? req_->loc_->on_disconnect : OnDisconnect::Close;
  // The frame goes first, then the upstream is closed: the upstream's own connection watch
  // (solverd's) then usually finds the frame's grace already set, and defers to it when it does
  // not (DESIGN.md "Disconnect semantics": the location's kill_after governs).
  req_->sendCancel(ph, event_ns, agent::control::Reason::ClientDisconnect);
  if (UpstreamConn* up = std::exchange(req_->upstream_, nullptr)) {
    // on_disconnect none lets a fully sent request run to its end (its response is discarded);
    // every other case closes the upstream connection, never to be reused.
    up->detach(action == OnDisconnect::None && req_->request_done_);
  }
  ctx_.log->info("rid={} client={} disconnected in {} ({}), on_disconnect {}{}{}", req_->request_id_, peer(),
                 phaseName(ph), causeName(cause),
                 action == OnDisconnect::None ? "none"
                 : action == OnDisconnect::Close ? "close"
                 : action == OnDisconnect::Interrupt ? "interrupt" : "kill",
                 req_->trace_id_.empty() ? "" : " trace=", req_->trace_id_);
  req_->accessLog();
  teardown();
}

void ClientConn::drain() {
  if (closing()) return;
  if (h2_) {
    h2_->drain();
    return;
  }
  if (!req_ && requests_served_ > 0) {
    teardown();  // an idle keep-alive connection
    return;
  }
  // A fresh connection may carry a request already on its way (accepted just before we stopped
  // accepting, e.g. from a socket systemd hands to our successor): it gets its answer, with
  // Connection: close (headersComplete reads ctx_.draining), within client_header_timeout.
  if (req_) req_->keep_alive_ = false;  // the response in flight gets Connection: close
}

void ClientConn::forceClose() {
  if (closing()) return;
  if (h2_) {
    h2_->forceClose();
    teardown();
    return;
  }
  if (req_) {
    if (req_->upstream_ != nullptr) req_->sendCancel(phase(), monotonicNs(), agent::control::Reason::Shutdown);
    if (UpstreamConn* up = std::exchange(req_->upstream_, nullptr)) up->abort();
    // Logged as the request's abort, like a disconnect: 499, its phase, cause `shutdown`.
    req_->disconnect_phase_ = phase();
    req_->disconnect_cause_ = Cause::Shutdown;
    req_->status_ = 499;
    req_->accessLog();
  }
  teardown();
}

// Lingering close, as nginx's lingering_time but short: 1 s for the client's end of file.
void ClientConn::closeGracefully() { ServerConnection::closeGracefully(1000); }

// The one teardown: reached from disconnect(), parse errors after a response began, timers,
// accept failures and forceClose(); the core's own closes (the end of a lingering close) run
// onClosing() as well. Idempotent; frees nothing on the caller's stack (the memory goes in the
// stream's close callback, onClosed()).
void ClientConn::teardown() { closeNow(); }

void ClientConn::onClosing() {
  if (h2_) h2_->abortAll();
  if (req_) {
    if (UpstreamConn* up = std::exchange(req_->upstream_, nullptr)) up->abort();
    req_->track(false);
  }
  ctx_.conns.erase(pos_);
  ctx_.connectionClosed(this);
}

namespace {

const llhttp_settings_t& requestSettings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = ClientConn::cbMessageBegin;
    s.on_url = ClientConn::cbUrl;
    s.on_header_field = ClientConn::cbHeaderField;
    s.on_header_value = ClientConn::cbHeaderValue;
    s.on_header_value_complete = ClientConn::cbHeaderValueComplete;
    s.on_headers_complete = ClientConn::cbHeadersComplete;
    s.on_body = ClientConn::cbBody;
    s.on_message_complete = ClientConn::cbMessageComplete;
    return s;
  }();
  return kSettings;
}

}  // namespace

}  // namespace tether::proxy
