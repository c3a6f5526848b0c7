#pragma once
// Internal to tether_proxy: the objects of the data path. One ClientConn per client connection
// (one Request at a time; pipelined bytes wait in `pipelined_`), one UpstreamConn per upstream
// connection (busy with one exchange or idle in its group's pool), one UpstreamGroup per
// `upstream` block. Everything runs on one libuv loop.
//
// Lifetime: a StreamConn is freed in its stream handle's close callback, which libuv runs after
// every write callback of that stream, so a write callback always finds its owner alive (it
// checks closing_ and does nothing more). Timers are closed at teardown, so their callbacks never
// run on a closing connection. Teardown never frees memory on the caller's stack.
#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tether/agent/control/vocabulary.hpp"
#include "tether/common/http_connection.hpp"
#include "tether/common/timeouts.hpp"
#include "tether/common/uv_stream.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/proxy/settings.hpp"

namespace tether::agent::control {
class Client;
}

namespace tether::proxy {

struct Context;
struct Generation;
class ClientConn;
class Exchange;
class UpstreamConn;
class GrpcUpstream;

// The protocol's phases and causes (Shutdown: requests cut by shutdown_timeout, access log only).
using Phase = agent::control::Phase;
using Cause = agent::control::Cause;
using agent::control::causeName;
using agent::control::phaseName;

// UpstreamGroup::acquire without a server of its own choosing: round robin.
inline constexpr size_t kAnyServer = SIZE_MAX;

// Above this many bytes queued towards a peer we stop reading the side that feeds it.
inline constexpr size_t kHighWater = 256 * 1024;
inline constexpr size_t kMaxHeadBytes = 16 * 1024;  // request line + headers (431 past it)
inline constexpr size_t kMaxHeaders = 128;
inline constexpr size_t kMaxPipelined = 64 * 1024;  // pipelined bytes kept while busy

// The header lines of one message as offsets into one buffer: no allocation per header.
class HeadBuffer {
 public:
  struct Header {
    uint32_t name_off = 0, name_len = 0, value_off = 0, value_len = 0;
  };
  void clear();
  // Appends a piece of a field name or value as llhttp hands it over (possibly split).
  // Returns false on obs-fold (a value continued after it was complete).
  void field(const char* at, size_t len);
  bool value(const char* at, size_t len);
  void valueComplete() { state_ = State::ValueDone; }
  size_t bytes() const { return bytes_.size(); }
  size_t count() const { return headers_.size(); }
  std::string_view name(size_t i) const { return {bytes_.data() + headers_[i].name_off, headers_[i].name_len}; }
  std::string_view value(size_t i) const { return {bytes_.data() + headers_[i].value_off, headers_[i].value_len}; }
  // First header of that name (case-insensitive), or nullopt-like empty + false.
  bool find(std::string_view name, std::string_view& out) const;
  size_t countOf(std::string_view name) const;

 private:
  enum class State { None, Field, Value, ValueDone };
  std::string bytes_;
  std::vector<Header> headers_;
  State state_ = State::None;
};

bool iequals(std::string_view a, std::string_view b);
// "Bad Gateway" for 502, ...: the statuses the proxy answers itself (request.cpp).
std::string_view reasonPhrase(uint16_t status);
// True for hop-by-hop headers (RFC 9110 section 7.6.1) and for names listed in `connection`.
bool isHopByHop(std::string_view name, std::string_view connection);

// An upstream connection's stream (TCP or unix) on uv::Stream, the one write path (uv_try_write
// first, the remainder in one owned copy under backpressure). `this` is freed in the stream's
// close callback (onClosed), after every other callback of the stream.
class StreamConn : protected uv::StreamEvents {
 public:
  StreamConn(const StreamConn&) = delete;
  StreamConn& operator=(const StreamConn&) = delete;

  uv_stream_t* stream() const { return stream_.stream(); }
  size_t pending() const { return stream_.pending(); }
  bool closing() const { return closing_; }

 protected:
  StreamConn(Context& ctx, bool unix_socket);
  virtual ~StreamConn();
  // Connects to `address` (`addr` for TCP, resolved at start-up); the outcome arrives in
  // onConnect(), never for a connection closed meanwhile. 0 or a libuv error.
  int connectTo(const config::Address& address, const sockaddr_storage& addr);
  // 0 or a libuv error; an asynchronous failure arrives in onWriteFailed().
  int write(const uv_buf_t* bufs, unsigned count) { return stream_.write(bufs, count); }
  int write(std::string_view bytes) { return stream_.write(bytes); }
  // Closes the stream; `this` is freed in the close callback, after every callback of the stream.
  void closeStream();
  void readStart();
  void readStop() { stream_.readStop(); }
  bool reading() const { return stream_.reading(); }
  void onClosed() override { delete this; }

  Context& ctx_;
  uv::Stream stream_;
  bool closing_ = false;
};

class UpstreamGroup;

class UpstreamConn final : public StreamConn {
 public:
  // llhttp callbacks (public for the settings tables).
  static int cbStatus(llhttp_t*, const char*, size_t);
  static int cbHeaderField(llhttp_t*, const char*, size_t);
  static int cbHeaderValue(llhttp_t*, const char*, size_t);
  static int cbHeaderValueComplete(llhttp_t*);
  static int cbHeadersComplete(llhttp_t*);
  static int cbBody(llhttp_t*, const char*, size_t);
  static int cbMessageComplete(llhttp_t*);
  static int cbMessageBegin(llhttp_t*);
  // Starts connecting to `server` of the group, by default to its next one (round robin).
  static UpstreamConn* connect(Context& ctx, UpstreamGroup& group, const LocationSettings& loc,
                               size_t server = kAnyServer);

  // `gen` is kept while the connection is busy: a detached request (on_disconnect none) may
  // outlive its client and must keep its group alive.
  void attach(Exchange* client, const LocationSettings& loc, bool head_request,
              std::shared_ptr<Generation> gen);
  // The client left; with `keep_going` the request runs to its end and its response is
  // discarded (on_disconnect none), otherwise the connection is closed and never reused.
  void detach(bool keep_going);
  // The request has been sent completely (arms the read timeout).
  void requestSent();
  int send(const uv_buf_t* bufs, unsigned count) { return write(bufs, count); }
  void pauseReading() { readStop(); }
  void resumeReading() { if (!closing_) readStart(); }
  void abort();  // close, never reused
  const std::string& serverText() const { return server_text_; }
  UpstreamGroup& group() { return group_; }

  // Response head, valid from onResponseHead() until the response completes.
  const HeadBuffer& head() const { return head_; }
  uint16_t status() const { return status_; }
  std::string_view reason() const { return reason_; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  bool hasContentLength() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  bool bodyless() const { return bodyless_; }
  // A chunked response's trailer fields: head() from this index on, once the response is complete.
  size_t trailerFrom() const { return trailer_from_; }
  // Whether a trailer field may pass to the client (not framing, routing or hop-by-hop).
  static bool passTrailer(std::string_view name);

 private:
  friend class UpstreamGroup;
  UpstreamConn(Context& ctx, UpstreamGroup& group, size_t server);
  ~UpstreamConn() override;
  void onRead(ssize_t nread, const char* data) override;
  void onDrained() override;
  void onWriteFailed(int status) override;
  void onWriteProgress() override { armTimer(); }
  void onConnect(int status) override;
  void armTimer();
  void onTimer();
  void fail(int status, bool timeout);
  void finishResponse(bool clean);
  void teardown();
  void idleStart();


  enum class State { Connecting, Busy, Idle };
  UpstreamGroup& group_;
  std::shared_ptr<Generation> gen_;  // while busy; released when idle (the pool does not own gens)
  size_t server_;
  std::string server_text_;
  State state_ = State::Connecting;
  Exchange* client_ = nullptr;
  const LocationSettings* loc_ = nullptr;
  bool head_request_ = false;
  bool request_sent_ = false;
  bool response_started_ = false;
  bool response_done_ = false;
  bool discard_ = false;
  bool bodyless_ = false;
  bool interim_ = false;  // a 1xx response being skipped
  bool reused_ = false;   // taken from the keep-alive pool for this exchange
  bool got_bytes_ = false;  // the upstream sent something in this exchange
  bool deadline_ = false;   // a timeout became a cancel: the timer now runs kill_after, once
  uint16_t status_ = 0;
  size_t trailer_from_ = 0;
  std::string reason_;
  HeadBuffer head_;
  llhttp_t parser_{};
  uv::Timeout timer_{[](uv::Timeout& t) { static_cast<UpstreamConn*>(t.data)->onTimer(); }, this};
  std::list<UpstreamConn*>::iterator idle_pos_;
};

class UpstreamGroup {
 public:
  UpstreamGroup(Context& ctx, UpstreamSettings settings);
  ~UpstreamGroup();
  // Reuses an idle connection or starts a new one: to `server` (an index into the group's
  // servers), or to any by round robin.
  UpstreamConn* acquire(const LocationSettings& loc, size_t server = kAnyServer);
  UpstreamConn* connectFresh(const LocationSettings& loc, size_t server = kAnyServer);
  // Returns a connection whose exchange ended cleanly; closes it if the pool is full.
  void release(UpstreamConn* conn);
  void forget(UpstreamConn* conn);  // an idle connection closed
  void closeIdle();
  // One cancel frame to this upstream's control socket, with the request's trace id when it
  // has one. Returns its outcome for the access log ($cancel_outcome): "sent", "queued" (the
  // control socket is reconnecting), "dropped" (the queue is full), or "" without a socket.
  std::string_view sendCancel(const std::string& id, OnDisconnect action, Millis grace, Phase phase,
                              uint64_t event_ns, std::string_view trace_id,
                              agent::control::Reason reason = agent::control::Reason::ClientDisconnect);
  const UpstreamSettings& settings() const { return settings_; }
  const agent::control::Client* control() const { return control_.get(); }
  std::string resolve();  // start-up: resolves TCP server names; "" or why not
  void startControl();

 private:
  friend class UpstreamConn;
  friend class GrpcUpstream;
  Context& ctx_;
  UpstreamSettings settings_;
  std::vector<sockaddr_storage> addrs_;
  size_t next_ = 0;
  std::list<UpstreamConn*> idle_;
  std::list<GrpcUpstream*> grpc_;  // grpc_pass: h2c connections, each shared by many streams
  std::unique_ptr<agent::control::Client> control_;
};

struct ServerRef;  // a listener's server: its settings and access logs

// What the upstream side sees of a request (h2o's generator, Envoy's ActiveStream): the response
// is handed over through these calls only, so that another kind of request (an HTTP/2 stream)
// can be served by the same UpstreamConn. Any of them may end the exchange; the caller touches
// nothing of the request afterwards (UpstreamConn forgets it first, see finishResponse and fail).
class Exchange {
 public:
  virtual const std::string& requestId() const = 0;
  virtual void onResponseHead(UpstreamConn& up) = 0;
  virtual void onResponseBody(const char* at, size_t len) = 0;
  // Writes a response head still waiting for body bytes (end of an upstream read).
  virtual void flushHead() = 0;
  virtual void onResponseComplete(bool reusable) = 0;
  virtual void onUpstreamFailed(int status_code) = 0;  // 502/504 before the response, else cut
  // A kept-alive upstream connection closed before answering (the upstream timed it out as we
  // reused it): resend a bodiless request once on a fresh connection. False if it cannot be.
  virtual bool retryOnFreshUpstream() = 0;
  virtual void onUpstreamDrained() = 0;  // the upstream took everything queued
  // proxy_read_timeout or proxy_send_timeout ran out on an interrupt|kill location: the cancel
  // frame goes out with reason upstream_timeout and the upstream gets kill_after to answer.
  virtual void onUpstreamDeadline() = 0;

 protected:
  ~Exchange() = default;
};

class ClientConn;
class H2Session;

// Several hosts (DESIGN.md "Several hosts", job_route.cpp): the server of `group` that a request
// for `url` must reach, the one whose `route=` ends the job id of /v1/jobs/ID[/...], or
// kAnyServer. The request goes there and nowhere else, its one retry included.
size_t jobRouteServer(const UpstreamGroup& group, std::string_view url);

// What every kind of request shares, an HTTP/1.1 exchange (Request) or an HTTP/2 stream
// (H2Stream): id, phase, location, upstream binding, retry head, deadline, timings, access-log
// fields and the cancel decision. A new request is a new object (nothing is reset by hand).
// Each kind writes its response its own way (the Exchange calls).
class RequestBase : public Exchange {
 public:
  RequestBase(Context& ctx, const ServerRef& server, const std::string& peer_ip, uint8_t http_major);
  virtual ~RequestBase();  // an upstream still bound is closed, never reused
  RequestBase(const RequestBase&) = delete;
  RequestBase& operator=(const RequestBase&) = delete;

  const std::string& requestId() const override { return request_id_; }
  bool retryOnFreshUpstream() override;
  void onUpstreamDeadline() override;
  virtual Phase phase() const;
  virtual std::string_view peer() const = 0;
  virtual std::string_view protocol() const = 0;  // "HTTP/1.1", "HTTP/2.0"
  uint64_t startNs() const { return start_ns_; }
  const std::string& upstreamText() const { return upstream_text_; }

 protected:
  friend class ClientConn;
  friend class H2Session;
  friend class GrpcUpstream;
  // The client side cannot be written any more (its connection is closing).
  virtual bool downstreamGone() const = 0;
  // Backpressure: stop reading the client while the upstream has too much queued.
  virtual void pauseDownstream() = 0;
  // The request's deadline passed (grpc-timeout, Request-Timeout): answer 504 / grpc-status 4.
  virtual void onDeadline() = 0;
  // An upstream request is in flight (an HTTP/1.1 upstream connection, or an h2c stream).
  virtual bool upstreamBound() const { return upstream_ != nullptr; }

  // The request id (DESIGN.md "Request identity") from the head, if a trusted balancer's.
  void identify();
  // Request-Timeout (or grpc-timeout, in milliseconds) becomes the deadline: 0 without one,
  // false for a malformed value.
  bool takeDeadline(std::string_view header);
  // Binds an upstream connection of the location's group; false: none (a 502).
  bool bindUpstream();
  // The HTTP/1.1 request head for the upstream in upstream_head_ (kept for one retry).
  void buildUpstreamHead();
  // Writes to the upstream; a synchronous failure ends the exchange as a 502.
  void sendOrFail(const uv_buf_t* bufs, unsigned count);
  // The request's one cancel frame, on interrupt|kill locations with an upstream bound; its
  // action and outcome are kept for the access log.
  void sendCancel(Phase phase, uint64_t event_ns, agent::control::Reason reason);
  // The deadline's timer ran out: the cancel frame (reason deadline), then the kind's answer.
  void deadlinePassed();
  void accessLog();
  // trace_context: the traceparent line for the upstream ("" for none); sets trace_id_.
  std::string traceparentFor(bool& continued);
  void track(bool active);  // listed in /requests while proxied

 public:
  Context& ctx_;
  const ServerRef& server_;
  const std::string& peer_ip_;
  uint8_t http_major_ = 1;
  uint8_t http_minor_ = 1;
  bool headers_done_ = false;
  bool request_done_ = false;
  bool response_started_ = false;
  bool local_ = false;             // answered by the proxy itself (errors)
  bool head_request_ = false;
  bool request_chunked_ = false;   // the body goes upstream chunked
  bool retried_ = false;
  bool disconnected_ = false;
  bool cancel_sent_ = false;         // this request's cancel frame went out (one per request)
  bool upstream_timed_out_ = false;  // onUpstreamDeadline() ran: the access log says so
  bool deadline_passed_ = false;
  bool tracked_ = false;
  uint16_t status_ = 0;
  Phase disconnect_phase_ = Phase::Idle;
  Cause disconnect_cause_ = Cause::Eof;
  uint64_t body_bytes_ = 0;
  uint64_t sent_body_bytes_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t deadline_ns_ = 0;  // monotonic; 0: none
  uint64_t upstream_start_ns_ = 0;
  uint64_t upstream_head_ns_ = 0;
  uint64_t upstream_end_ns_ = 0;
  std::string method_;
  std::string url_;
  HeadBuffer head_;
  std::string request_id_;
  bool request_id_replaced_ = false;  // a trusted id broke the rule (access log)
  std::string trace_id_;               // W3C trace id of this request, "" without one
  std::string_view cancel_action_;     // for the access log: the cancel frame sent, if any
  std::string_view cancel_outcome_;    // "sent", "queued", "dropped" (static strings)
  const LocationSettings* loc_ = nullptr;
  UpstreamGroup* group_ = nullptr;
  UpstreamConn* upstream_ = nullptr;
  std::string upstream_text_;
  std::string upstream_head_;  // the request head sent upstream, for one retry
  std::unique_ptr<uv::Handle<uv_timer_t>> deadline_timer_;
  std::list<RequestBase*>::iterator active_pos_;
};

// One HTTP/1.1 exchange on a client connection, from its first parsed byte to the end of its
// response. ClientConn creates it (startRequest) and ends it (finishExchange), or frees it with
// itself when the connection goes.
class Request final : public RequestBase {
 public:
  explicit Request(ClientConn& conn);

  void onResponseHead(UpstreamConn& up) override;
  void onResponseBody(const char* at, size_t len) override;
  void flushHead() override;
  void onResponseComplete(bool reusable) override;
  void onUpstreamFailed(int status_code) override;
  void onUpstreamDrained() override;
  std::string_view peer() const override;
  std::string_view protocol() const override { return http_minor_ >= 1 ? "HTTP/1.1" : "HTTP/1.0"; }

  bool downstreamGone() const override;
  void pauseDownstream() override;
  void onDeadline() override;

  ClientConn& conn_;
  bool keep_alive_ = true;
  bool response_chunked_ = false;  // we chunk the response to the client
  bool response_close_ = false;    // response delimited by closing the connection
  bool head_pending_ = false;      // response head built in out_, not yet written
  uint16_t user_error_ = 0;  // status set by a callback before failing the parse
  std::string out_;  // the response head being built
};

// One client connection on the shared HTTP/1.1 connection core (http::ServerConnection: the
// socket, TCP options, the one timeout, pipelined bytes, lingering close, read errors' causes):
// here the parser (llhttp, allocated when a request starts and freed when the connection is idle),
// pipelining order and the HTTP/2 hand-over. Its current exchange, if any, is `req_`.
class ClientConn final : public http::ServerConnection {
 public:
  // llhttp callbacks (public for the settings tables).
  static int cbMessageBegin(llhttp_t*);
  static int cbUrl(llhttp_t*, const char*, size_t);
  static int cbHeaderField(llhttp_t*, const char*, size_t);
  static int cbHeaderValue(llhttp_t*, const char*, size_t);
  static int cbHeaderValueComplete(llhttp_t*);
  static int cbHeadersComplete(llhttp_t*);
  static int cbBody(llhttp_t*, const char*, size_t);
  static int cbMessageComplete(llhttp_t*);
  static void accept(Context& ctx, uv_stream_t* listener, std::shared_ptr<const ServerRef> server,
                     bool unix_socket);

  Phase phase() const { return req_ ? req_->phase() : Phase::Idle; }
  bool busy() const { return req_ != nullptr || h2_ != nullptr; }
  // Drain: close when idle, answer the current request with Connection: close.
  void drain();
  // shutdown_timeout ran out: cancel what is left (reason "shutdown").
  void forceClose();

 private:
  friend class Request;
  friend class RequestBase;
  friend class H2Session;
  friend class H2Stream;
  ClientConn(Context& ctx, std::shared_ptr<const ServerRef> server, bool unix_socket);
  ~ClientConn() override;
  void onBytes(const char* data, size_t len) override;
  void onPeerGone(Cause cause) override;
  void onTimeout(Wait wait) override;
  void onDrained() override;
  void onWriteFailed(int status) override;
  void onWriteProgress() override;
  void onClosing() override;
  void onClosed() override { delete this; }
  void feed(const char* data, size_t len);
  llhttp_t& parser();
  Request& startRequest();
  // headersComplete: validate, then route, then forward (each may answer locally).
  int headersComplete();
  uint16_t validate();
  void route();
  int forward();
  int body(const char* at, size_t len);
  int messageComplete();
  void parseError(llhttp_errno_t err);
  void respondLocal(uint16_t status, std::string_view body, bool close,
                    std::string_view content_type = "text/plain");
  void finishExchange();
  void nextRequest();
  void disconnect(Cause cause);
  void closeGracefully();
  void teardown();
  void armTimer();
  // The first bytes of a connection on an `http2 on` server: an HTTP/2 connection preface hands
  // the connection to an H2Session (true), anything else is HTTP/1.1 (false).
  bool sniffHttp2(const char* data, size_t len);

  Context& ctx_;
  std::shared_ptr<const ServerRef> server_;
  const ServerSettings* settings_;
  std::unique_ptr<llhttp_t> parser_;  // from a request's first byte until the connection is idle
  std::unique_ptr<Request> req_;  // the exchange in progress; none while idle
  std::unique_ptr<H2Session> h2_;  // an HTTP/2 connection: its streams are the requests
  bool sniffing_ = false;  // `http2 on`: the first bytes decide the protocol
  int executing_ = 0;  // llhttp_execute() calls on the stack (the parser stays while > 0)
  bool any_bytes_ = false;   // bytes of the next request seen before its first callback
  uint64_t requests_served_ = 0;
  const char* exec_begin_ = nullptr;  // the buffer llhttp_execute() is parsing (obs-fold check)
  char prev_last_byte_ = 0;           // last byte of the previous buffer
  std::list<ClientConn*>::iterator pos_;
};

}  // namespace tether::proxy
