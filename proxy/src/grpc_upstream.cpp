// grpc_pass: h2c to the upstream with nghttp2's client session. One connection carries many
// client streams (up to the server's SETTINGS_MAX_CONCURRENT_STREAMS), so a client's
// RST_STREAM is answered in kind: RST_STREAM(CANCEL) on its upstream stream, the connection and
// its other streams untouched, and the cancel frame to the control socket (h2_session.cpp).
#include <algorithm>
#include <cstdio>

#include "context.hpp"
#include "h2_session.hpp"
#include "tether/common/clock.hpp"

namespace tether::proxy {
namespace {

ssize_t readRequestBodyCb(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
  return static_cast<H2Stream*>(source->ptr)->readRequestBody(buf, length, flags);
}

}  // namespace

GrpcUpstream* GrpcUpstream::acquire(Context& ctx, UpstreamGroup& group, const LocationSettings& loc) {
  for (GrpcUpstream* c : group.grpc_) {
    if (c->closing() || c->goaway_) continue;
    uint32_t limit = c->connected_ ? nghttp2_session_get_remote_settings(c->ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                                   : 100;  // RFC 9113's recommended minimum until the server says
    if (c->bound_.size() < limit) return c;
  }
  size_t server = group.next_++ % group.settings_.servers.size();
  auto* c = new GrpcUpstream(ctx, group, server);
  if (c->ng_ == nullptr) {
    c->teardown();
    return nullptr;
  }
  const int r = c->connectTo(group.settings_.servers[server], group.addrs_[server]);
  if (r != 0) {
    ctx.log->error("connect to grpc upstream {} ({}) failed: {}", group.settings_.name, c->server_text_, uv_strerror(r));
    c->teardown();
    return nullptr;
  }
  uv_timer_start(c->timer_.get(), [](uv_timer_t* t) {
    static_cast<GrpcUpstream*>(t->data)->fail("connect timed out");
  }, static_cast<uint64_t>(loc.connect_timeout.count()), 0);
  return c;
}

GrpcUpstream::GrpcUpstream(Context& ctx, UpstreamGroup& group, size_t server)
    : StreamConn(ctx, group.settings_.servers[server].kind == config::Address::Kind::Unix),
      group_(group), server_(server), server_text_(group.settings_.servers[server].text()), timer_(ctx.loop) {
  timer_->data = this;
  group_.grpc_.push_front(this);
  pos_ = group_.grpc_.begin();
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return;
  nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
  if (nghttp2_session_client_new(&ng_, cbs, this) != 0) ng_ = nullptr;
  nghttp2_session_callbacks_del(cbs);
  if (ng_ == nullptr) return;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, 1);
}

GrpcUpstream::~GrpcUpstream() {
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

void GrpcUpstream::onConnect(int status) {
  if (closing_) return;
  if (status != 0) {
    fail(uv_strerror(status));
    return;
  }
  uv_timer_stop(timer_.get());
  if (group_.settings_.servers[server_].kind == config::Address::Kind::Tcp) uv_tcp_nodelay(stream_.tcp(), 1);
  connected_ = true;
  readStart();
  std::vector<H2Stream*> waiting;
  for (H2Stream* s : bound_) {
    if (s->grpc_stream_ <= 0) waiting.push_back(s);
  }
  for (H2Stream* s : waiting) {
    if (!start(*s)) {
      forget(*s);
      s->grpcClosed(NGHTTP2_REFUSED_STREAM);
    }
  }
  flush();
}

bool GrpcUpstream::submit(H2Stream& s) {
  bound_.push_back(&s);
  if (!connected_) return true;  // started in onConnected
  if (!start(s)) {
    forget(s);
    return false;
  }
  flush();
  return true;
}

void GrpcUpstream::forget(H2Stream& s) {
  auto it = std::find(bound_.begin(), bound_.end(), &s);
  if (it != bound_.end()) bound_.erase(it);
  s.grpc_up_ = nullptr;
}

// The upstream request: the client's headers less hop-by-hop ones (te: trailers stays, gRPC
// needs it), the request id, the trace context, and the deadline's remaining budget both as
// grpc-timeout (milliseconds) and as Request-Timeout (seconds, decimal).
bool GrpcUpstream::start(H2Stream& s) {
  const ServerSettings& settings = *s.server_.settings;
  H2Headers h;
  h.reserve(s.head_.count() + 8);
  h.emplace_back(":method", s.method_);
  h.emplace_back(":scheme", "http");
  h.emplace_back(":authority", s.authority_.empty() ? group_.settings_.name : s.authority_);
  h.emplace_back(":path", s.url_);
  bool continued = false;
  const std::string traceparent = s.traceparentFor(continued);
  const bool own_trace = settings.trace_context != TraceContext::Off;
  std::string_view connection;
  s.head_.find("connection", connection);
  for (size_t i = 0; i < s.head_.count(); ++i) {
    std::string_view name = s.head_.name(i);
    if (iequals(name, "te")) {
      h.emplace_back("te", "trailers");
      continue;
    }
    if (isHopByHop(name, connection) || iequals(name, "host") || iequals(name, settings.request_id_header) ||
        iequals(name, "grpc-timeout") || iequals(name, "request-timeout") ||
        (own_trace && (iequals(name, "traceparent") || (!continued && iequals(name, "tracestate"))))) {
      continue;
    }
    h.emplace_back(std::string(name), std::string(s.head_.value(i)));
  }
  h.emplace_back(lowerCase(settings.request_id_header), s.request_id_);
  if (!traceparent.empty()) h.emplace_back("traceparent", traceparent);
  if (s.deadline_ns_ != 0) {
    uint64_t now = monotonicNs();
    uint64_t left = s.deadline_ns_ > now ? s.deadline_ns_ - now : 0;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llum", static_cast<unsigned long long>(left / 1'000'000ull));
    h.emplace_back("grpc-timeout", buf);
    std::snprintf(buf, sizeof buf, "%llu.%03llu", static_cast<unsigned long long>(left / 1'000'000'000ull),
                  static_cast<unsigned long long>(left % 1'000'000'000ull / 1'000'000ull));
    h.emplace_back("request-timeout", buf);
  }
  std::vector<nghttp2_nv> nv = toNv(h);
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = readRequestBodyCb;
  int32_t id = nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(), &provider, &s);
  if (id < 0) {
    ctx_.log->error("rid={} grpc upstream {} ({}) refused a stream: {}", s.request_id_, group_.settings_.name,
                    server_text_, nghttp2_strerror(id));
    return false;
  }
  s.grpc_stream_ = id;
  return true;
}

void GrpcUpstream::resume(int32_t stream) {
  if (stream <= 0 || ng_ == nullptr || closing_) return;
  nghttp2_session_resume_data(ng_, stream);
  flush();
}

void GrpcUpstream::cancel(H2Stream& s) {
  forget(s);
  if (s.grpc_stream_ <= 0 || closing_ || ng_ == nullptr) return;
  // The stream is forgotten at once; its close callback only counts it.
  nghttp2_session_set_stream_user_data(ng_, s.grpc_stream_, nullptr);
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, s.grpc_stream_, NGHTTP2_CANCEL);
  s.grpc_stream_ = -1;
  flush();
}

void GrpcUpstream::closeIfIdle() {
  if (bound_.empty()) teardown();
}

void GrpcUpstream::onRead(ssize_t nread, const char* data) {
  if (nread < 0) {
    fail(nread == UV_EOF ? "closed the connection" : uv_strerror(static_cast<int>(nread)));
    return;
  }
  ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(nread));
  if (closing_) return;
  if (rv < 0) {
    fail(nghttp2_strerror(static_cast<int>(rv)));
    return;
  }
  flush();
}

void GrpcUpstream::flush() {
  if (closing_ || ng_ == nullptr || !connected_) return;
  out_.clear();
  while (pending() + out_.size() < kHighWater) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(ng_, &data);
    if (n < 0) {
      fail(nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (!out_.empty() && write(out_) != 0) {
    fail("write failed");
    return;
  }
  if (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0) fail("session ended");
}

void GrpcUpstream::onDrained() { flush(); }

void GrpcUpstream::onWriteFailed(int status) { fail(uv_strerror(status)); }

// The connection is lost: every stream on it ends (502 before a response, else a reset).
void GrpcUpstream::fail(std::string_view why) {
  if (closing_) return;
  ctx_.log->error("grpc upstream {} ({}): {}", group_.settings_.name, server_text_, why);
  teardown();
}

void GrpcUpstream::teardown() {
  if (closing_) return;
  group_.grpc_.erase(pos_);
  timer_.close();
  // nghttp2 runs no callback as its session is deleted: the streams still bound hear it here.
  if (ng_ != nullptr) nghttp2_session_del(std::exchange(ng_, nullptr));
  std::vector<H2Stream*> bound = std::move(bound_);
  bound_.clear();
  closeStream();
  for (H2Stream* s : bound) {
    s->grpc_up_ = nullptr;
    s->grpc_stream_ = -1;
    s->grpcClosed(NGHTTP2_INTERNAL_ERROR);
  }
}

int GrpcUpstream::onHeader(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                           const uint8_t* value, size_t valuelen, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id));
  if (s == nullptr) return 0;
  s->grpcHeader({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen},
                frame->headers.cat == NGHTTP2_HCAT_HEADERS && s->submitted_);
  return 0;
}

int GrpcUpstream::onFrameRecv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<GrpcUpstream*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;  // no new streams here; the open ones finish
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id));
  if (s == nullptr) return 0;
  s->grpcHeadersDone(frame->headers.cat == NGHTTP2_HCAT_HEADERS && s->submitted_,
                     (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
  return 0;
}

int GrpcUpstream::onDataChunk(nghttp2_session* ng, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                              void*) {
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, stream_id));
  if (s != nullptr) s->grpcData(data, len);
  return 0;
}

int GrpcUpstream::onStreamClose(nghttp2_session* ng, int32_t stream_id, uint32_t error_code, void* user) {
  auto* self = static_cast<GrpcUpstream*>(user);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(ng, stream_id));
  if (s == nullptr) return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, nullptr);
  self->forget(*s);
  s->grpc_stream_ = -1;
  s->grpcClosed(error_code);
  return 0;
}

}  // namespace tether::proxy
