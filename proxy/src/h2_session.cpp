// HTTP/2 on a client connection (h2c, prior knowledge), with nghttp2: each stream is a request
// (RequestBase), and a stream the client resets is a disconnect of that stream only: 499 in the
// access log, its upstream request ended, one cancel frame (DESIGN.md "HTTP/2"). nghttp2 does the
// framing, HPACK, flow control and the protocol's own checks; this file decides what the streams
// mean. The frames of one loop turn are gathered and written with one write (flushSoon()).
#include "h2_session.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "context.hpp"
#include "tether/common/clock.hpp"

namespace tether::proxy {
namespace {

using Headers = H2Headers;

std::string statusText(uint16_t status) {
  char buf[8];
  auto r = std::to_chars(buf, buf + sizeof buf, status);
  return std::string(buf, r.ptr);
}

ssize_t readResponseBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                         nghttp2_data_source* source, void*) {
  return static_cast<H2Stream*>(source->ptr)->readBody(buf, length, flags);
}

constexpr uint64_t kSecondNs = 1'000'000'000ull;

}  // namespace

std::string lowerCase(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::vector<nghttp2_nv> toNv(const H2Headers& headers) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                  NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// ---- the session ---------------------------------------------------------------------------

H2Session::H2Session(ClientConn& conn) : conn_(conn), soon_(conn.ctx_.loop) { soon_->data = this; }

H2Session::~H2Session() {
  // The streams go after the session: nghttp2 holds pointers to them until it is deleted.
  if (ng_ != nullptr) nghttp2_session_del(ng_);
  ng_ = nullptr;
  streams_.clear();
  dead_.clear();
}

Context& H2Session::ctx() { return conn_.ctx_; }
const ServerSettings& H2Session::settings() const { return *conn_.settings_; }

bool H2Session::start() {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, onFrameSend);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, onInvalidFrame);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Request DATA is given back to the client's window only once the upstream took it
  // (consume()): a client cannot make us buffer more than the windows allow.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 1000);  // a SETTINGS or PING flood ends the connection
  int rv = nghttp2_session_server_new2(&ng_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const Http2Settings& h = settings().http2;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h.body_preread_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h.max_header_list_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) return false;
  if (h.recv_buffer_size > 65535) {
    nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(h.recv_buffer_size));
  }
  return true;
}

void H2Session::feed(const char* data, size_t len) {
  ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(data), len);
  if (rv < 0 && !conn_.closing()) {
    // A connection error nghttp2 could not answer itself (it sends GOAWAY for protocol errors
    // and returns the bytes it read): we say why and close.
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      goAway(NGHTTP2_PROTOCOL_ERROR, "invalid connection preface");
    } else if (rv == NGHTTP2_ERR_FLOODED) {
      goAway(NGHTTP2_ENHANCE_YOUR_CALM, "frame flood");
    } else {
      goAway(NGHTTP2_PROTOCOL_ERROR, nghttp2_strerror(static_cast<int>(rv)));
    }
  }
  flushSoon();
}

void H2Session::goAway(uint32_t error_code, std::string_view why) {
  if (lost_) return;
  ctx().log->info("client={} HTTP/2 connection ended: GOAWAY {} ({})", conn_.peer(),
                  nghttp2_http2_strerror(error_code), why);
  nghttp2_session_terminate_session(ng_, error_code);
  // Every open stream ends with the connection: each is a disconnect (499 and its cancel frame).
  connectionLost(Cause::Reset);
}

bool H2Session::over() const {
  return nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0;
}

void H2Session::flush() {
  if (flushing_ || conn_.closing() || ng_ == nullptr) return;
  flushing_ = true;
  out_.clear();
  while (conn_.pending() + out_.size() < kHighWater) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(ng_, &data);
    if (n < 0) {
      ctx().log->warn("client={} HTTP/2 send failed: {}", conn_.peer(), nghttp2_strerror(static_cast<int>(n)));
      flushing_ = false;
      conn_.disconnect(Cause::WriteError);
      return;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  flushing_ = false;
  if (!out_.empty() && conn_.write(out_) != 0) {
    conn_.disconnect(Cause::WriteError);
    return;
  }
  if (conn_.closing()) return;
  if (over()) {
    connectionLost(Cause::Eof);  // nothing is open any more; a no-op unless streams remain
    conn_.closeGracefully();
    return;
  }
  conn_.armTimer();
}

void H2Session::onDrained() { flush(); }

void H2Session::connectionLost(Cause cause) {
  lost_ = true;
  std::vector<H2Stream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (H2Stream* s : open) s->disconnect(cause, agent::control::Reason::ClientDisconnect);
}

void H2Session::drain() {
  if (ng_ == nullptr || conn_.closing()) return;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
}

void H2Session::forceClose() {
  std::vector<H2Stream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (H2Stream* s : open) s->disconnect(Cause::Shutdown, agent::control::Reason::Shutdown);
}

void H2Session::abortAll() {
  for (auto& s : streams_) {
    if (UpstreamConn* up = std::exchange(s->upstream_, nullptr)) up->abort();
    if (GrpcUpstream* g = std::exchange(s->grpc_up_, nullptr)) g->cancel(*s);
    s->finished_ = true;
    s->track(false);
  }
}

void H2Session::retire(H2Stream* s) {
  if (ng_ != nullptr) nghttp2_session_set_stream_user_data(ng_, s->id_, nullptr);
  dead_.push_back(std::move(*s->pos_));
  streams_.erase(s->pos_);
  flushSoon();  // frees it too, outside every call of its own
}

void H2Session::flushSoon() {
  if (soon_queued_ || !soon_) return;
  soon_queued_ = true;
  uv_idle_start(soon_.get(), [](uv_idle_t* h) {
    auto* self = static_cast<H2Session*>(h->data);
    uv_idle_stop(h);
    self->soon_queued_ = false;
    self->reap();
    self->flush();
  });
}

void H2Session::reap() { dead_.clear(); }

bool H2Session::allowCancel() {
  uint64_t now = monotonicNs();
  if (now - window_start_ns_ > kSecondNs) {
    window_start_ns_ = now;
    resets_in_window_ = 0;
    cancels_in_window_ = 0;
  }
  if (cancels_in_window_ >= settings().http2.max_concurrent_streams) {
    if (!cancel_bound_logged_) {
      cancel_bound_logged_ = true;
      ctx().log->warn("client={} HTTP/2 resets past {} cancel frames a second: their upstream requests are "
                      "closed without a frame", conn_.peer(), settings().http2.max_concurrent_streams);
    }
    return false;
  }
  ++cancels_in_window_;
  return true;
}

void H2Session::consume(int32_t stream, size_t n) {
  if (n > 0 && ng_ != nullptr) nghttp2_session_consume(ng_, stream, n);
}

int H2Session::onBeginHeaders(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto stream = std::make_unique<H2Stream>(*self, frame->hd.stream_id);
  H2Stream* s = stream.get();
  self->streams_.push_front(std::move(stream));
  s->pos_ = self->streams_.begin();
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s);
  return 0;
}

int H2Session::onHeader(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                        const uint8_t* value, size_t valuelen, uint8_t, void*) {
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id));
  if (s == nullptr || s->headers_done_) return 0;  // trailers of a request: not forwarded
  s->header({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}

int H2Session::onFrameRecv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Session*>(user);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id));
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (s == nullptr) break;
      if (!s->headers_done_) {
        s->headersComplete(end_stream);
      } else if (end_stream) {
        s->requestComplete();
      }
      break;
    case NGHTTP2_DATA:
      if (s != nullptr && end_stream) s->requestComplete();
      break;
    case NGHTTP2_RST_STREAM: {
      // Rapid reset (CVE-2023-44487): streams opened and reset at once cost the server work
      // the client never waits for; past twice the concurrency a second the client is cut off.
      uint64_t now = monotonicNs();
      if (now - self->window_start_ns_ > kSecondNs) {
        self->window_start_ns_ = now;
        self->resets_in_window_ = 0;
        self->cancels_in_window_ = 0;
      }
      if (++self->resets_in_window_ > 2 * self->settings().http2.max_concurrent_streams) {
        self->goAway(NGHTTP2_ENHANCE_YOUR_CALM, "rapid reset: too many streams reset in a second");
      }
      break;
    }
    case NGHTTP2_GOAWAY:
      // NO_ERROR only stops new streams (RFC 9113 section 6.8); an error ends the open ones.
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        self->ctx().log->info("client={} sent GOAWAY {}", self->conn_.peer(),
                              nghttp2_http2_strerror(frame->goaway.error_code));
        self->connectionLost(Cause::Reset);
      }
      break;
    default:
      break;
  }
  return 0;
}

int H2Session::onFrameSend(nghttp2_session* ng, const nghttp2_frame* frame, void*) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id));
  if (s == nullptr) return 0;
  s->end_sent_ = true;
  // The answer is complete while the client still sends a body we no longer need: tell it to
  // stop (RFC 9113 section 8.1).
  if (!s->request_done_) nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_NO_ERROR);
  return 0;
}

int H2Session::onDataChunk(nghttp2_session* ng, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* user) {
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, stream_id));
  if (s == nullptr) {
    static_cast<H2Session*>(user)->consume(stream_id, len);
    return 0;
  }
  s->data(data, len);
  return 0;
}

int H2Session::onStreamClose(nghttp2_session* ng, int32_t stream_id, uint32_t error_code, void* user) {
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, stream_id));
  if (s == nullptr) return 0;
  s->closed(error_code);
  static_cast<H2Session*>(user)->retire(s);
  return 0;
}

int H2Session::onInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int error, void* user) {
  auto* self = static_cast<H2Session*>(user);
  self->ctx().log->debug("client={} invalid HTTP/2 frame (type {}, stream {}): {}", self->conn_.peer(),
                         frame->hd.type, frame->hd.stream_id, nghttp2_strerror(error));
  return 0;
}

// ---- a stream ------------------------------------------------------------------------------

H2Stream::H2Stream(H2Session& session, int32_t id)
    : RequestBase(session.ctx(), *session.conn().server_, session.conn().peerIp(), 2), session_(session), id_(id) {
  http_minor_ = 0;
}

H2Stream::~H2Stream() {
  if (GrpcUpstream* g = std::exchange(grpc_up_, nullptr)) g->cancel(*this);
}

std::string_view H2Stream::peer() const { return session_.conn().peer(); }
bool H2Stream::downstreamGone() const { return finished_ || session_.conn().closing(); }

void H2Stream::header(std::string_view name, std::string_view value) {
  // SETTINGS_MAX_HEADER_LIST_SIZE counts 32 bytes per field besides its name and value.
  header_bytes_ += name.size() + value.size() + 32;
  if (header_bytes_ > session_.settings().http2.max_header_list_size || head_.count() >= kMaxHeaders) {
    too_large_ = true;
    return;
  }
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      method_ = value;
    } else if (name == ":path") {
      url_ = value;
    } else if (name == ":authority") {
      authority_ = value;
    }
    return;  // :scheme says nothing the upstream needs (X-Forwarded-Proto does)
  }
  head_.field(name.data(), name.size());
  head_.value(value.data(), value.size());
  head_.valueComplete();
}

void H2Stream::headersComplete(bool end_stream) {
  headers_done_ = true;
  request_done_ = end_stream;
  identify();
  const ServerSettings& settings = session_.settings();
  if (too_large_) return respondLocal(431);
  if (method_ == "CONNECT") return respondLocal(405);
  head_request_ = method_ == "HEAD";
  if (!authority_.empty() && head_.countOf("host") == 0) {
    head_.field("host", 4);
    head_.value(authority_.data(), authority_.size());
    head_.valueComplete();
  }
  std::string_view length, content_type;
  has_length_ = head_.find("content-length", length);
  if (has_length_) {
    uint64_t n = 0;
    auto r = std::from_chars(length.data(), length.data() + length.size(), n);
    if (r.ec != std::errc() || r.ptr != length.data() + length.size()) return respondLocal(400);
    if (n > settings.client_max_body_size) return respondLocal(413);
  }
  grpc_client_ = head_.find("content-type", content_type) && content_type.starts_with("application/grpc");
  if (!takeDeadline(grpc_client_ ? "grpc-timeout" : "request-timeout")) return respondLocal(400);
  std::string_view path(url_);
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  loc_ = findLocation(settings, path);
  if (loc_ == nullptr) return respondLocal(404);
  track(true);
  if (loc_->grpc) return startGrpc();
  request_chunked_ = !request_done_ && !has_length_;
  if (!bindUpstream()) return respondLocal(502);
  buildUpstreamHead();
  uv_buf_t buf = uv_buf_init(upstream_head_.data(), static_cast<unsigned>(upstream_head_.size()));
  sendOrFail(&buf, 1);
  if (request_done_ && upstream_ != nullptr) upstream_->requestSent();
}

void H2Stream::data(const uint8_t* at, size_t len) {
  body_bytes_ += len;
  if (finished_ || local_ || end_sent_) {
    session_.consume(id_, len);  // answered already: the body is discarded
    return;
  }
  if (body_bytes_ > session_.settings().client_max_body_size) {
    if (!submitted_) {
      releaseUpstream(false);
      respondLocal(413);
    }
    session_.consume(id_, len);
    return;
  }
  if (grpc_) {
    req_body_.append(reinterpret_cast<const char*>(at), len);
    if (grpc_up_ != nullptr) grpc_up_->resume(grpc_stream_);
    return;  // consumed as the upstream stream takes it (readRequestBody)
  }
  if (upstream_ == nullptr) {
    session_.consume(id_, len);
    return;
  }
  const char* bytes = reinterpret_cast<const char*>(at);
  if (request_chunked_) {
    // Each DATA frame becomes one chunk: chunk boundaries carry no meaning.
    char size_line[20];
    auto r = std::to_chars(size_line, size_line + 16, len, 16);
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    static char crlf[] = "\r\n";
    uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(r.ptr - size_line)),
                        uv_buf_init(const_cast<char*>(bytes), static_cast<unsigned>(len)), uv_buf_init(crlf, 2)};
    sendOrFail(bufs, 3);
  } else {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes), static_cast<unsigned>(len));
    sendOrFail(&buf, 1);
  }
  if (upstream_ != nullptr && upstream_->pending() > kHighWater) {
    unconsumed_ += len;  // the window opens again when the upstream drains (onUpstreamDrained)
  } else {
    session_.consume(id_, len);
  }
}

void H2Stream::requestComplete() {
  if (request_done_) return;
  request_done_ = true;
  if (grpc_) {
    if (grpc_up_ != nullptr) grpc_up_->resume(grpc_stream_);
    return;
  }
  if (upstream_ == nullptr) return;
  if (request_chunked_) {
    static char kLast[] = "0\r\n\r\n";
    uv_buf_t buf = uv_buf_init(kLast, 5);
    sendOrFail(&buf, 1);
  }
  if (upstream_ != nullptr) upstream_->requestSent();
}

void H2Stream::onUpstreamDrained() {
  session_.consume(id_, std::exchange(unconsumed_, 0));
  session_.flushSoon();
}

// ---- the response --------------------------------------------------------------------------

void H2Stream::submitHead(const Headers& headers, bool end_stream) { submitNv(toNv(headers), end_stream); }

void H2Stream::submitNv(const std::vector<nghttp2_nv>& nv, bool end_stream) {
  submitted_ = true;
  response_started_ = true;
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = readResponseBody;
  if (end_stream) eof_ = true;
  nghttp2_submit_response(session_.ng(), id_, nv.data(), nv.size(), end_stream ? nullptr : &provider);
}

// A local answer: the status's reason phrase as a text/plain body, as HTTP/1.1's local answers.
void H2Stream::respondLocal(uint16_t status) {
  const std::string body = std::string(reasonPhrase(status)).append("\n");
  local_ = true;
  status_ = status;
  releaseUpstream(false);
  const ServerSettings& settings = session_.settings();
  Headers h{{":status", statusText(status)},
            {"server", "tether-proxy"},
            {"content-type", "text/plain"},
            {"content-length", std::to_string(head_request_ ? 0 : body.size())}};
  if (!request_id_.empty()) h.emplace_back(lowerCase(settings.request_id_header), request_id_);
  if (!head_request_) body_.assign(body);
  eof_ = true;
  submitHead(h, body_.empty());
  session_.flushSoon();
}

void H2Stream::onResponseHead(UpstreamConn& up) {
  upstream_head_ns_ = monotonicNs();
  status_ = up.status();
  const HeadBuffer& h = up.head();
  std::string_view connection;
  h.find("connection", connection);
  const std::string& rid_header = session_.settings().request_id_header;
  // The fields as nghttp2 views of the upstream's head: values as they are, names lower-cased
  // into one scratch buffer (reserved first, so the views into it stay put); nghttp2 copies both.
  std::string& names = session_.scratch_;
  names.clear();
  names.reserve(h.bytes() + rid_header.size());
  std::vector<nghttp2_nv>& nv = session_.nv_;
  nv.clear();
  char status[8];
  auto r = std::to_chars(status, status + sizeof status, status_);
  auto view = [](const char* p) { return reinterpret_cast<uint8_t*>(const_cast<char*>(p)); };
  nv.push_back({view(":status"), view(status), 7, static_cast<size_t>(r.ptr - status), NGHTTP2_NV_FLAG_NONE});
  auto add = [&](std::string_view name, std::string_view value) {
    size_t at = names.size();
    for (char c : name) names.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    nv.push_back({view(names.data() + at), view(value.data()), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
  };
  for (size_t i = 0; i < h.count(); ++i) {
    std::string_view name = h.name(i);
    if (isHopByHop(name, connection) || iequals(name, rid_header)) continue;
    add(name, h.value(i));
  }
  add(rid_header, request_id_);
  submitNv(nv, up.bodyless() || head_request_);
}

void H2Stream::onResponseBody(const char* at, size_t len) {
  if (eof_) return;  // HEAD, or a body after a local answer
  body_.append(at, len);
  resume();
  if (body_.size() - body_off_ > kHighWater && upstream_ != nullptr) upstream_->pauseReading();
}

void H2Stream::flushHead() { session_.flushSoon(); }

void H2Stream::resume() {
  if (submitted_ && !end_sent_) nghttp2_session_resume_data(session_.ng(), id_);
}

ssize_t H2Stream::readBody(uint8_t* buf, size_t length, uint32_t* flags) {
  size_t avail = body_.size() - body_off_;
  if (avail == 0 && !eof_) return NGHTTP2_ERR_DEFERRED;
  size_t n = std::min(avail, length);
  std::memcpy(buf, body_.data() + body_off_, n);
  body_off_ += n;
  sent_body_bytes_ += n;
  if (body_off_ == body_.size()) {
    body_.clear();
    body_off_ = 0;
    if (upstream_ != nullptr) upstream_->resumeReading();
  }
  if (eof_ && body_.empty()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      // Trailers (grpc-status, grpc-message) end the stream instead of the last DATA frame.
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nv = toNv(trailers_);
      nghttp2_submit_trailer(session_.ng(), id_, nv.data(), nv.size());
    }
  }
  return static_cast<ssize_t>(n);
}

void H2Stream::releaseUpstream(bool reusable) {
  UpstreamConn* up = std::exchange(upstream_, nullptr);
  if (up == nullptr) return;
  if (reusable && request_done_ && group_ != nullptr) {
    group_->release(up);
  } else {
    up->abort();
  }
}

void H2Stream::onResponseComplete(bool reusable) {
  upstream_end_ns_ = monotonicNs();
  if (upstream_ != nullptr && !eof_) {
    const HeadBuffer& h = upstream_->head();
    for (size_t i = upstream_->trailerFrom(); i < h.count(); ++i) {
      if (UpstreamConn::passTrailer(h.name(i))) trailers_.emplace_back(lowerCase(h.name(i)), h.value(i));
    }
  }
  releaseUpstream(reusable);
  eof_ = true;
  resume();
  session_.flushSoon();
}

void H2Stream::onUpstreamFailed(int status_code) {
  releaseUpstream(false);
  if (!submitted_) {
    upstream_end_ns_ = monotonicNs();
    respondLocal(static_cast<uint16_t>(status_code));
    return;
  }
  // The response is cut short: the client must see it, so the stream is reset.
  finish();
  nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  session_.flushSoon();
}

void H2Stream::onDeadline() {
  deadline_answered_ = true;  // what the upstream still sends is not passed on
  releaseUpstream(false);
  if (GrpcUpstream* g = std::exchange(grpc_up_, nullptr)) g->cancel(*this);
  if (grpc_client_) {
    // gRPC's DEADLINE_EXCEEDED: a trailers-only response, or trailers after what was sent.
    Headers status{{"grpc-status", "4"}, {"grpc-message", "Deadline Exceeded"}};
    if (!submitted_) {
      status_ = 200;
      Headers h{{":status", "200"}, {"content-type", "application/grpc"}};
      h.insert(h.end(), status.begin(), status.end());
      h.emplace_back(lowerCase(session_.settings().request_id_header), request_id_);
      submitHead(h, true);
    } else {
      trailers_ = std::move(status);
      eof_ = true;
      resume();
    }
  } else if (!submitted_) {
    respondLocal(504);
    return;
  } else {
    finish();
    nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  }
  session_.flushSoon();
}

// ---- the end of a stream -------------------------------------------------------------------

void H2Stream::finish() {
  if (finished_) return;
  finished_ = true;
  if (headers_done_) accessLog();
  track(false);
}

void H2Stream::closed(uint32_t error_code) {
  if (finished_) return;
  if (end_sent_) {
    finish();  // the response went out whole (a later RST_STREAM from the client changes nothing)
    return;
  }
  (void)error_code;
  // A gRPC client resets its stream when its own deadline passes, which races our timer for the
  // same deadline: a reset within 100 ms of it is the deadline, not a client that left early.
  if (deadline_ns_ != 0 && monotonicNs() + 100'000'000ull >= deadline_ns_) {
    deadline_passed_ = true;
    disconnect(Cause::Deadline, agent::control::Reason::Deadline);
    return;
  }
  disconnect(Cause::Reset, agent::control::Reason::ClientDisconnect);
}

// A stream's disconnect: as ClientConn::disconnect for one exchange (DESIGN.md "Disconnect
// semantics"): the frame goes first, then the upstream request is ended.
void H2Stream::disconnect(Cause cause, agent::control::Reason reason) {
  if (finished_) return;
  Phase ph = phase();
  disconnected_ = true;
  uint64_t event_ns = monotonicNs();
  if (cause != Cause::Shutdown) {
    ctx_.disconnects->with({std::string(phaseName(ph)), std::string(causeName(cause))}).inc();
  }
  if (!headers_done_) {  // no request yet: nothing to log or cancel
    finished_ = true;
    track(false);
    return;
  }
  status_ = 499;
  disconnect_phase_ = ph;
  disconnect_cause_ = cause;
  if (!local_) {
    OnDisconnect action = loc_ != nullptr ? loc_->on_disconnect : OnDisconnect::Close;
    // Past the per-connection bound (a reset flood) the upstream request is only closed; the
    // upstream's own watch (solverd's) still sees that.
    const bool cancels = action == OnDisconnect::Interrupt || action == OnDisconnect::Kill;
    if (cancels && (reason != agent::control::Reason::ClientDisconnect || session_.allowCancel())) {
      sendCancel(ph, event_ns, reason);
    }
    if (UpstreamConn* up = std::exchange(upstream_, nullptr)) {
      up->detach(action == OnDisconnect::None && request_done_);
    }
    if (GrpcUpstream* g = std::exchange(grpc_up_, nullptr)) g->cancel(*this);
    ctx_.log->info("rid={} client={} stream {} disconnected in {} ({}), on_disconnect {}{}{}", request_id_, peer(), id_,
                   phaseName(ph), causeName(cause),
                   action == OnDisconnect::None ? "none"
                   : action == OnDisconnect::Close ? "close"
                   : action == OnDisconnect::Interrupt ? "interrupt" : "kill",
                   trace_id_.empty() ? "" : " trace=", trace_id_);
  }
  finish();
}

// ---- grpc_pass -----------------------------------------------------------------------------

void H2Stream::startGrpc() {
  grpc_ = true;
  group_ = server_.gen->groups[loc_->upstream_index].get();
  grpc_up_ = GrpcUpstream::acquire(ctx_, *group_, *loc_);
  if (grpc_up_ == nullptr) return respondLocal(502);
  upstream_text_ = grpc_up_->serverText();
  upstream_start_ns_ = monotonicNs();
  if (!grpc_up_->submit(*this)) {
    grpc_up_ = nullptr;
    respondLocal(502);
  }
}

ssize_t H2Stream::readRequestBody(uint8_t* buf, size_t length, uint32_t* flags) {
  size_t avail = req_body_.size() - req_body_off_;
  if (avail == 0) {
    if (!request_done_) return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  size_t n = std::min(avail, length);
  std::memcpy(buf, req_body_.data() + req_body_off_, n);
  req_body_off_ += n;
  if (req_body_off_ == req_body_.size()) {
    req_body_.clear();
    req_body_off_ = 0;
    if (request_done_) *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  session_.consume(id_, n);  // the client may send more: flushed with the session's next write
  return static_cast<ssize_t>(n);
}

void H2Stream::grpcHeader(std::string_view name, std::string_view value, bool trailers) {
  if (trailers) {
    trailers_.emplace_back(name, value);
    return;
  }
  if (name == ":status") {
    uint16_t code = 0;
    std::from_chars(value.data(), value.data() + value.size(), code);
    status_ = code;
  }
  if (iequals(name, session_.settings().request_id_header)) return;
  grpc_head_.emplace_back(name, value);
}

void H2Stream::grpcHeadersDone(bool trailers, bool end_stream) {
  if (finished_ || deadline_answered_) return;
  // The upstream gave up at the deadline we passed it (grpc-status 4, DEADLINE_EXCEEDED) before
  // our own timer did: its answer passes as it is, and the work behind it still gets its cancel.
  if (deadline_ns_ != 0 && (trailers || end_stream) && monotonicNs() + 100'000'000ull >= deadline_ns_) {
    for (const auto& [name, value] : trailers ? trailers_ : grpc_head_) {
      if (name == "grpc-status" && value == "4") {
        deadline_passed_ = true;
        disconnect_phase_ = phase();
        disconnect_cause_ = Cause::Deadline;
        ctx_.log->info("rid={} deadline passed upstream first (grpc-status 4)", request_id_);
        sendCancel(disconnect_phase_, monotonicNs(), agent::control::Reason::Deadline);
        break;
      }
    }
  }
  if (!trailers) {
    if (status_ >= 100 && status_ < 200) {  // an interim response: not forwarded
      grpc_head_.clear();
      return;
    }
    upstream_head_ns_ = monotonicNs();
    grpc_head_.emplace_back(lowerCase(session_.settings().request_id_header), request_id_);
    // A trailers-only response (grpc-status in the head) ends the stream with its HEADERS.
    submitHead(grpc_head_, end_stream);
    grpc_head_.clear();
  } else {
    eof_ = true;
    resume();
  }
  session_.flushSoon();
}

void H2Stream::grpcData(const uint8_t* at, size_t len) {
  if (finished_ || eof_) return;
  body_.append(reinterpret_cast<const char*>(at), len);
  resume();
  session_.flushSoon();
}

void H2Stream::grpcClosed(uint32_t error_code) {
  grpc_up_ = nullptr;
  if (finished_ || deadline_answered_) return;
  upstream_end_ns_ = monotonicNs();
  if (submitted_ && error_code == NGHTTP2_NO_ERROR) {
    eof_ = true;
    resume();
  } else if (!submitted_) {
    respondLocal(502);
    return;
  } else {
    finish();
    nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  }
  session_.flushSoon();
}

}  // namespace tether::proxy
