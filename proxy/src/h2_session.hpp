#pragma once
// Internal to tether_proxy: HTTP/2 (h2c, prior knowledge) on a client connection, with nghttp2.
// The connection (ClientConn) keeps the socket, its timer and lingering close; an H2Session owns
// the nghttp2 session and the streams, and each stream (H2Stream) is a request: its own id,
// phase, location, access-log line and cancel decision. A stream reset by the client is a
// disconnect of that stream only (DESIGN.md "HTTP/2").
//
// grpc_pass locations speak h2c upstream too (GrpcUpstream): one pooled connection carries many
// streams, and a client's RST_STREAM becomes an upstream RST_STREAM(CANCEL) plus the cancel frame.
#include <nghttp2/nghttp2.h>

#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime.hpp"

namespace tether::proxy {

class H2Session;
class GrpcUpstream;

using H2Headers = std::vector<std::pair<std::string, std::string>>;
// nghttp2 name/value pairs viewing `headers` (nghttp2 copies them on submit).
std::vector<nghttp2_nv> toNv(const H2Headers& headers);
// HTTP/2 field names are lower case (RFC 9113 section 8.2.1).
std::string lowerCase(std::string_view name);

// One HTTP/2 stream of a client connection, from its HEADERS frame to its close.
class H2Stream final : public RequestBase {
 public:
  H2Stream(H2Session& session, int32_t id);
  ~H2Stream() override;

  // Exchange: an HTTP/1.1 upstream's response.
  void onResponseHead(UpstreamConn& up) override;
  void onResponseBody(const char* at, size_t len) override;
  void flushHead() override;
  void onResponseComplete(bool reusable) override;
  void onUpstreamFailed(int status_code) override;
  void onUpstreamDrained() override;
  std::string_view peer() const override;
  std::string_view protocol() const override { return "HTTP/2.0"; }
  bool downstreamGone() const override;
  void pauseDownstream() override {}  // flow control holds the client back (see consume)
  void onDeadline() override;
  bool upstreamBound() const override { return upstream_ != nullptr || grpc_up_ != nullptr; }

  // The request, as nghttp2 hands it over.
  void header(std::string_view name, std::string_view value);
  void headersComplete(bool end_stream);
  void data(const uint8_t* at, size_t len);
  void requestComplete();
  // The stream closed (nghttp2's on_stream_close): a disconnect unless the response was sent.
  void closed(uint32_t error_code);
  // The connection is going (lost, GOAWAY with an error, shutdown): this stream ends with it.
  void disconnect(Cause cause, agent::control::Reason reason);

  // grpc_pass: what the h2c upstream stream hands back.
  void grpcHeader(std::string_view name, std::string_view value, bool trailers);
  void grpcHeadersDone(bool trailers, bool end_stream);
  void grpcData(const uint8_t* at, size_t len);
  void grpcClosed(uint32_t error_code);
  // Request body bytes for the upstream stream's data provider.
  ssize_t readRequestBody(uint8_t* buf, size_t length, uint32_t* flags);

  // The response body for nghttp2's data provider.
  ssize_t readBody(uint8_t* buf, size_t length, uint32_t* flags);

  H2Session& session_;
  const int32_t id_;
  bool grpc_ = false;         // the location is a grpc_pass
  bool grpc_client_ = false;  // content-type application/grpc: answers are gRPC statuses
  bool too_large_ = false;    // the header list passed http2_max_header_list_size: 431
  bool submitted_ = false;    // response HEADERS submitted
  bool eof_ = false;          // the response body is complete
  bool end_sent_ = false;     // our END_STREAM went out (or a local answer's)
  bool finished_ = false;     // logged and untracked: nothing more happens to it
  bool has_length_ = false;   // content-length given: the body goes upstream as is
  bool deadline_answered_ = false;  // our deadline's answer went out (onDeadline)
  size_t header_bytes_ = 0;
  std::string authority_;
  std::string body_;  // response bytes not yet taken by nghttp2
  size_t body_off_ = 0;
  size_t unconsumed_ = 0;  // request DATA not yet given back as window (the upstream is slow)
  std::vector<std::pair<std::string, std::string>> trailers_;  // sent after the body
  std::vector<std::pair<std::string, std::string>> grpc_head_;  // upstream response headers
  // grpc_pass: the upstream stream and the request body waiting for it.
  GrpcUpstream* grpc_up_ = nullptr;
  int32_t grpc_stream_ = -1;
  std::string req_body_;
  size_t req_body_off_ = 0;
  std::list<std::unique_ptr<H2Stream>>::iterator pos_;

 private:
  void respondLocal(uint16_t status);
  void submitHead(const std::vector<std::pair<std::string, std::string>>& headers, bool end_stream);
  void submitNv(const std::vector<nghttp2_nv>& nv, bool end_stream);
  void resume();
  void finish();
  void startGrpc();
  void releaseUpstream(bool reusable);
};

class H2Session {
 public:
  explicit H2Session(ClientConn& conn);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Sends our SETTINGS; false if nghttp2 could not start (the connection closes).
  bool start();
  void feed(const char* data, size_t len);
  // Writes what nghttp2 has queued (up to the high-water mark); closes the connection when the
  // session is over (GOAWAY sent and nothing left).
  void flush();
  // flush() before the loop next waits for events: the frames of every stream that advanced in
  // one loop turn (many upstream responses, say) go out in one write.
  void flushSoon();
  void onDrained();  // the socket took everything: more frames, and paused upstreams resume
  void connectionLost(Cause cause);
  void drain();       // GOAWAY(NO_ERROR): open streams finish, no new ones
  void forceClose();  // shutdown_timeout: every stream cancelled with reason shutdown
  void abortAll();    // teardown: upstreams closed, streams untracked (freed with the session)
  size_t openStreams() const { return streams_.size(); }
  bool over() const;

  nghttp2_session* ng() { return ng_; }
  ClientConn& conn() { return conn_; }
  Context& ctx();
  const ServerSettings& settings() const;
  // The stream ended (logged): freed on the next loop turn, never under its own call.
  void retire(H2Stream* s);
  // A reset's cancel frame, within the per-connection bound (false: past it, close only).
  bool allowCancel();
  // Gives request DATA back to the client's window (the upstream took it).
  void consume(int32_t stream, size_t n);

 private:
  friend class H2Stream;
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t, const uint8_t*, size_t,
                      uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static int onInvalidFrame(nghttp2_session*, const nghttp2_frame*, int, void*);
  void goAway(uint32_t error_code, std::string_view why);
  void reap();

  ClientConn& conn_;
  nghttp2_session* ng_ = nullptr;
  std::list<std::unique_ptr<H2Stream>> streams_;
  std::vector<std::unique_ptr<H2Stream>> dead_;
  uv::Handle<uv_idle_t> soon_;  // the deferred flush, and freeing retired streams
  bool soon_queued_ = false;
  std::string out_;  // frames of one flush, written at once
  std::string scratch_;           // a response head's lower-cased names (onResponseHead)
  std::vector<nghttp2_nv> nv_;    // its fields
  bool flushing_ = false;
  bool lost_ = false;
  // Rapid reset (CVE-2023-44487) and the cancel frames resets may cause, per one-second window.
  uint64_t window_start_ns_ = 0;
  uint32_t resets_in_window_ = 0;
  uint32_t cancels_in_window_ = 0;
  bool cancel_bound_logged_ = false;
};

// One h2c connection to a grpc_pass upstream server, shared by many client streams.
class GrpcUpstream final : public StreamConn {
 public:
  // A connection of the group with room for one more stream, or a new one; null on failure.
  static GrpcUpstream* acquire(Context& ctx, UpstreamGroup& group, const LocationSettings& loc);
  // Starts the client stream's upstream stream (queued until connected); false on failure.
  bool submit(H2Stream& s);
  // More request body (or its end) for the stream: the data provider resumes.
  void resume(int32_t stream);
  // The client stream is gone: RST_STREAM(CANCEL) upstream, and it is forgotten.
  void cancel(H2Stream& s);
  void closeIfIdle();
  const std::string& serverText() const { return server_text_; }

 private:
  friend class UpstreamGroup;
  GrpcUpstream(Context& ctx, UpstreamGroup& group, size_t server);
  ~GrpcUpstream() override;
  void onConnect(int status) override;
  void onRead(ssize_t nread, const char* data) override;
  void onDrained() override;
  void onWriteFailed(int status) override;
  void flush();
  void fail(std::string_view why);
  void teardown();
  bool start(H2Stream& s);
  void forget(H2Stream& s);  // no longer bound here
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t, const uint8_t*, size_t,
                      uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);

  UpstreamGroup& group_;
  size_t server_;
  std::string server_text_;
  nghttp2_session* ng_ = nullptr;
  bool connected_ = false;
  bool goaway_ = false;
  std::vector<H2Stream*> bound_;  // streams on this connection (not started while connecting)
  std::string out_;
  uv::Handle<uv_timer_t> timer_;  // connect timeout
  std::list<GrpcUpstream*>::iterator pos_;
};

}  // namespace tether::proxy
