// What an HTTP/1.1 exchange and an HTTP/2 stream share (RequestBase): identity, deadline, the
// upstream binding and the request head it gets, the cancel frame, the trace context and the
// access-log line. How each writes its response lives with its protocol (client_conn.cpp,
// h2_session.cpp).
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>

#include "context.hpp"
#include "tether/agent/control/request_id.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/trace_context.hpp"

namespace tether::proxy {

// The reason phrase of a status the proxy answers itself (HTTP/1.1 status line, local bodies).
std::string_view reasonPhrase(uint16_t status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Time-out";
    case 413: return "Request Entity Too Large";
    case 417: return "Expectation Failed";
    case 414: return "Request-URI Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Time-out";
    default: return "Unknown";
  }
}

RequestBase::RequestBase(Context& ctx, const ServerRef& server, const std::string& peer_ip, uint8_t http_major)
    : ctx_(ctx), server_(server), peer_ip_(peer_ip), http_major_(http_major), start_ns_(monotonicNs()) {}

RequestBase::~RequestBase() {
  // Ended with its connection while an upstream was still bound (teardown aborts it first; this
  // is the last line of defence): that connection is never reused.
  if (UpstreamConn* up = std::exchange(upstream_, nullptr)) up->abort();
  track(false);
}

Phase RequestBase::phase() const {
  if (!headers_done_) return Phase::RequestHeaders;
  if (!request_done_) return Phase::RequestBody;
  if (!response_started_) return Phase::AwaitingResponse;
  return Phase::ResponseBody;
}

void RequestBase::track(bool active) {
  if (active == tracked_) return;
  tracked_ = active;
  if (active) {
    ctx_.active.push_front(this);
    active_pos_ = ctx_.active.begin();
  } else {
    ctx_.active.erase(active_pos_);
  }
}

// The request id (DESIGN.md "Request identity"): a client's own is kept only behind a trusted
// balancer, and only if it follows the protocol's rule; else a generated one, and the access log
// says that a given id was replaced.
void RequestBase::identify() {
  const ServerSettings& settings = *server_.settings;
  std::string_view given;
  const bool has_given = settings.trust_request_id && head_.find(settings.request_id_header, given);
  auto id = agent::control::acceptRequestId(has_given ? &given : nullptr);
  request_id_ = std::move(id.id);
  request_id_replaced_ = id.replaced;
}

namespace {

// Request-Timeout: SECONDS, a non-negative decimal ("30", "0.5"); nullopt if malformed.
std::optional<uint64_t> parseSeconds(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t whole = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
  if (i == 0 || whole > 10'000'000) return std::nullopt;
  uint64_t ns = whole * 1'000'000'000ull;
  if (i < text.size()) {
    if (text[i] != '.' || i + 1 == text.size()) return std::nullopt;
    uint64_t scale = 100'000'000;
    for (++i; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      ns += static_cast<uint64_t>(text[i] - '0') * scale;
      scale /= 10;
    }
  }
  return ns;
}

// grpc-timeout (gRPC over HTTP/2): at most 8 digits and a unit H M S m u n; nullopt if malformed.
std::optional<uint64_t> parseGrpcTimeout(std::string_view text) {
  if (text.size() < 2 || text.size() > 9) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  switch (text.back()) {
    case 'H': return v * 3600'000'000'000ull;
    case 'M': return v * 60'000'000'000ull;
    case 'S': return v * 1'000'000'000ull;
    case 'm': return v * 1'000'000ull;
    case 'u': return v * 1'000ull;
    case 'n': return v;
    default: return std::nullopt;
  }
}

}  // namespace

bool RequestBase::takeDeadline(std::string_view header) {
  std::string_view value;
  if (!head_.find(header, value)) return true;
  auto budget = iequals(header, "grpc-timeout") ? parseGrpcTimeout(value) : parseSeconds(value);
  if (!budget) return false;
  uint64_t deadline = start_ns_ + *budget;
  if (deadline_ns_ == 0 || deadline < deadline_ns_) deadline_ns_ = deadline;
  if (!deadline_timer_) {
    deadline_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(ctx_.loop);
    (*deadline_timer_)->data = this;
  }
  uint64_t now = monotonicNs();
  uint64_t left_ms = deadline_ns_ > now ? (deadline_ns_ - now + 999'999) / 1'000'000 : 0;
  uv_timer_start(deadline_timer_->get(), [](uv_timer_t* t) { static_cast<RequestBase*>(t->data)->deadlinePassed(); },
                 left_ms, 0);
  return true;
}

void RequestBase::deadlinePassed() {
  if (deadline_passed_ || downstreamGone()) return;
  deadline_passed_ = true;
  Phase ph = phase();
  disconnect_phase_ = ph;
  disconnect_cause_ = Cause::Deadline;
  ctx_.log->info("rid={} deadline passed in {}", request_id_, phaseName(ph));
  if (upstreamBound()) sendCancel(ph, monotonicNs(), agent::control::Reason::Deadline);
  onDeadline();
}

bool RequestBase::bindUpstream() {
  group_ = server_.gen->groups[loc_->upstream_index].get();
  upstream_ = group_->acquire(*loc_, jobRouteServer(*group_, url_));
  if (upstream_ == nullptr) return false;
  upstream_text_ = upstream_->serverText();
  upstream_start_ns_ = monotonicNs();
  upstream_->attach(this, *loc_, head_request_, server_.gen);
  return true;
}

// The request head for the upstream: HTTP/1.1, hop-by-hop headers removed (RFC 9110 section
// 7.6.1), the request id, X-Forwarded-For and -Proto added, Host passed through, the deadline's
// remaining budget as Request-Timeout.
void RequestBase::buildUpstreamHead() {
  const ServerSettings& settings = *server_.settings;
  std::string_view connection;
  head_.find("connection", connection);
  std::string_view xff;
  bool has_xff = head_.find("x-forwarded-for", xff);
  // trace_context pass|start: the client's traceparent is replaced by ours (same trace, a new
  // parent id); its tracestate passes unchanged with a trace it belongs to and is dropped with
  // one that is not the client's (W3C Trace Context section 3.3: tracestate goes with its
  // traceparent). off: both pass as any header.
  bool continued = false;
  const std::string traceparent = traceparentFor(continued);
  const bool own_trace = settings.trace_context != TraceContext::Off;
  std::string& out = upstream_head_;
  out.clear();
  out.append(method_).append(" ").append(url_).append(" HTTP/1.1\r\n");
  for (size_t i = 0; i < head_.count(); ++i) {
    std::string_view name = head_.name(i);
    if (isHopByHop(name, connection) || iequals(name, "expect") || iequals(name, "x-forwarded-for") ||
        iequals(name, "x-forwarded-proto") || iequals(name, settings.request_id_header) ||
        iequals(name, "request-timeout") ||
        (own_trace && (iequals(name, "traceparent") || (!continued && iequals(name, "tracestate"))))) {
      continue;
    }
    out.append(name).append(": ").append(head_.value(i)).append("\r\n");
  }
  if (head_.countOf("host") == 0) out.append("Host: ").append(group_->settings().name).append("\r\n");
  out.append(settings.request_id_header).append(": ").append(request_id_).append("\r\n");
  if (!traceparent.empty()) out.append("traceparent: ").append(traceparent).append("\r\n");
  if (deadline_ns_ != 0) {
    uint64_t now = monotonicNs();
    uint64_t left = deadline_ns_ > now ? deadline_ns_ - now : 0;
    char buf[32];
    int n = std::snprintf(buf, sizeof buf, "%llu.%03llu", static_cast<unsigned long long>(left / 1'000'000'000ull),
                          static_cast<unsigned long long>(left % 1'000'000'000ull / 1'000'000ull));
    out.append("Request-Timeout: ").append(buf, static_cast<size_t>(n)).append("\r\n");
  }
  out.append("X-Forwarded-For: ");
  if (has_xff) out.append(xff).append(", ");
  out.append(peer_ip_).append("\r\nX-Forwarded-Proto: http\r\n");
  if (request_chunked_) out.append("Transfer-Encoding: chunked\r\n");
  out.append("\r\n");
}

bool RequestBase::retryOnFreshUpstream() {
  // Only a request whose bytes we still have (its head; no body) and only once, as nginx's
  // proxy_next_upstream does for a connection that failed before any response byte.
  if (retried_ || response_started_ || !request_done_ || body_bytes_ > 0 || request_chunked_ ||
      group_ == nullptr || loc_ == nullptr || downstreamGone()) {
    return false;
  }
  retried_ = true;
  upstream_ = group_->connectFresh(*loc_, jobRouteServer(*group_, url_));
  if (upstream_ == nullptr) return false;
  upstream_text_ = upstream_->serverText();
  upstream_->attach(this, *loc_, head_request_, server_.gen);
  uv_buf_t buf = uv_buf_init(upstream_head_.data(), static_cast<unsigned>(upstream_head_.size()));
  sendOrFail(&buf, 1);
  if (upstream_ != nullptr) upstream_->requestSent();
  return upstream_ != nullptr || downstreamGone();
}

void RequestBase::sendOrFail(const uv_buf_t* bufs, unsigned count) {
  if (upstream_ == nullptr) return;
  if (upstream_->send(bufs, count) != 0) {
    onUpstreamFailed(502);
    return;
  }
  if (upstream_ != nullptr && upstream_->pending() > kHighWater) pauseDownstream();
}

void RequestBase::onUpstreamDeadline() {
  if (downstreamGone()) return;
  Phase ph = phase();
  upstream_timed_out_ = true;
  disconnect_phase_ = ph;
  disconnect_cause_ = Cause::UpstreamTimeout;
  sendCancel(ph, monotonicNs(), agent::control::Reason::UpstreamTimeout);
}

void RequestBase::sendCancel(Phase phase, uint64_t event_ns, agent::control::Reason reason) {
  if (cancel_sent_ || group_ == nullptr || loc_ == nullptr) return;
  if (loc_->on_disconnect != OnDisconnect::Interrupt && loc_->on_disconnect != OnDisconnect::Kill) return;
  // One frame per request: a client that leaves during an upstream timeout's grace, or a
  // shutdown after it, would only repeat the cancel under another reason.
  cancel_sent_ = true;
  cancel_action_ = loc_->on_disconnect == OnDisconnect::Kill ? "kill" : "interrupt";
  cancel_outcome_ = group_->sendCancel(request_id_, loc_->on_disconnect, loc_->kill_after, phase, event_ns, trace_id_,
                                       reason);
}

// trace_context (DESIGN.md "Trace context"): the traceparent to send upstream, or "" for none.
// `continued` tells whether it continues the client's trace (whose tracestate then passes).
std::string RequestBase::traceparentFor(bool& continued) {
  continued = false;
  const ServerSettings& settings = *server_.settings;
  if (settings.trace_context == TraceContext::Off) return {};
  std::string_view given;
  std::optional<trace::TraceParent> parent;
  // Two traceparent headers are as invalid as a malformed one (section 3.2: a single header).
  if (head_.countOf("traceparent") == 1 && head_.find("traceparent", given)) parent = trace::parse(given);
  if (parent) {
    continued = true;
  } else if (settings.trace_context == TraceContext::Start) {
    parent = trace::TraceParent{trace::newTraceId(), {}, "00"};  // not sampled: we record no spans
  } else {
    return {};
  }
  trace_id_ = parent->trace_id;
  parent->parent_id = trace::newParentId();  // this hop is the upstream request's parent
  return trace::format(*parent);
}

namespace {

bool findHeader(const void* head, std::string_view name, std::string_view& value) {
  return static_cast<const HeadBuffer*>(head)->find(name, value);
}

}  // namespace

void RequestBase::accessLog() {
  ctx_.countRequest(status_, http_major_);
  if (server_.access_logs.empty()) return;
  uint64_t end = monotonicNs();
  AccessRecord r;
  r.remote_addr = peer_ip_;
  r.method = method_;
  r.uri = url_;
  r.http_major = http_major_;
  r.http_minor = http_minor_;
  r.status = status_;
  r.body_bytes_sent = sent_body_bytes_;
  r.request_time = secondsBetween(start_ns_, end);
  if (upstream_start_ns_ != 0 && upstream_head_ns_ != 0) {
    r.upstream_response_time = secondsBetween(upstream_start_ns_, upstream_end_ns_ != 0 ? upstream_end_ns_ : end);
  }
  r.upstream_addr = upstream_text_;
  r.request_id = request_id_;
  // A trusted balancer's id that broke the rule: the generated id stands in for it.
  r.request_id_replaced = request_id_replaced_;
  r.trace_id = trace_id_;
  if (status_ == 499 || upstream_timed_out_ || deadline_passed_) {
    r.disconnect_phase = phaseName(disconnect_phase_);
    r.disconnect_cause = causeName(disconnect_cause_);
  }
  r.cancel_action = cancel_action_;
  r.cancel_outcome = cancel_outcome_;
  r.header = findHeader;
  r.header_source = &head_;
  r.now = time(nullptr);
  std::string& line = ctx_.log_line;
  for (const auto& log : server_.access_logs) {
    line.clear();
    log.format->append(line, r);
    // A blocking append, as nginx's access log: lines are short and the file is local.
    ssize_t n = ::write(log.fd, line.data(), line.size());
    (void)n;
  }
}

}  // namespace tether::proxy
