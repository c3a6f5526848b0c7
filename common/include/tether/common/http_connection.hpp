#pragma once
// The server side of one HTTP/1.1 connection, below any request (issue 11): the one core under
// tether-proxy's client connections and http::Server's (solverd's API, every admin listener).
//
// It keeps what belongs to the connection and outlives each request: the socket (uv::Stream, one
// write path), TCP_NODELAY, TCP keepalive and TCP_USER_TIMEOUT, the peer's address, the one
// timeout that runs (header, body, keep-alive, send, linger: uv::Timeouts, no libuv timer per
// connection), the bytes of pipelined requests while a response is pending, the lingering close,
// and what a read error means (the disconnect's cause). What belongs to a request (parsing into
// it, the phase, the answer) stays with the user, which derives from this class and is told:
//
//   onBytes(data, len)     request bytes to parse (not while lingering)
//   onPeerGone(cause)      end of file, a reset, a keepalive probe that got no answer
//   onTimeout(wait)        the timeout it armed ran out
//   onDrained() ...        the write side (uv::StreamEvents)
//   onClosed()             last: every callback has run; free the object here
//
// Memory: an idle keep-alive connection holds this object, its handle and nothing else. The
// pipelined-bytes buffer exists only while it holds bytes.
#include <uv.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tether/agent/control/vocabulary.hpp"
#include "tether/common/tcp_keepalive.hpp"
#include "tether/common/timeouts.hpp"
#include "tether/common/uv_stream.hpp"

namespace tether::http {

// The disconnect causes of the protocol (DESIGN.md "Disconnect semantics").
using Cause = agent::control::Cause;

class ServerConnection : protected uv::StreamEvents {
 public:
  // Which of the connection's timeouts runs (nginx's names in the comments).
  enum class Wait {
    None,
    Header,     // client_header_timeout: a request head in progress
    Body,       // client_body_timeout: between two reads of the body
    KeepAlive,  // keepalive_timeout: between requests
    Send,       // send_timeout: response bytes queued with no progress
    Linger,     // lingering close: waiting for the client's end of file
  };

  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // "127.0.0.1:5555", "[::1]:5555", or "unix:" for a unix socket client.
  const std::string& peer() const { return peer_; }
  // The address alone ("127.0.0.1", "unix:"), for X-Forwarded-For and access logs.
  const std::string& peerIp() const { return peer_ip_; }
  bool closing() const { return closing_; }
  bool lingering() const { return lingering_; }
  size_t pending() const { return stream_.pending(); }
  uv_stream_t* stream() const { return stream_.stream(); }

 protected:
  // `timeouts` and `read_buffer` are the loop's, shared by every connection.
  ServerConnection(uv_loop_t* loop, uv::Timeouts& timeouts, uv::StreamKind kind, char* read_buffer,
                   size_t read_buffer_size);
  virtual ~ServerConnection();

  // Takes the next connection of `listener`, sets the TCP options (`keepalive` when enabled),
  // notes the peer and starts reading. A failure closes this connection (onClosed() follows).
  int accept(uv_stream_t* listener, const TcpKeepalive& keepalive);

  // ---- the user's side ----
  virtual void onBytes(const char* data, size_t len) = 0;
  virtual void onPeerGone(Cause cause) = 0;
  virtual void onTimeout(Wait wait) = 0;

  // ---- reading ----
  void readStart();
  void readStop();
  bool reading() const { return stream_.reading(); }
  // The peer's half of the connection ended (EOF) but the answer may still go out (half close).
  bool halfClosed() const { return half_closed_; }
  void setHalfClosed() { half_closed_ = true; }

  // ---- pipelined requests: bytes after a complete request wait here for its response ----
  // Keeps `data`; reading pauses once more than `limit` bytes wait (RFC 9112 section 9.3.2).
  void keepPipelined(const char* data, size_t len, size_t limit);
  bool hasPipelined() const { return pipelined_ != nullptr && !pipelined_->empty(); }
  size_t pipelinedBytes() const { return pipelined_ != nullptr ? pipelined_->size() : 0; }
  // Moves the waiting bytes out (the buffer goes with them: an idle connection holds none).
  std::string takePipelined();

  // ---- the one timeout ----
  void wait(Wait kind, uint64_t ms);
  void stopWaiting();
  Wait waiting() const { return wait_; }

  // ---- writing (uv::Stream: uv_try_write first, the rest in one owned copy) ----
  int write(const uv_buf_t* bufs, unsigned count) { return stream_.write(bufs, count); }
  int write(std::string_view bytes) { return stream_.write(bytes); }

  // ---- closing ----
  // Lingering close (nginx's lingering_close): once every queued byte is written, our side is
  // shut down and the client's bytes are read and dropped until its end of file or `linger_ms`;
  // closing at once could turn unread request bytes into a reset that destroys our answer.
  void closeGracefully(uint64_t linger_ms);
  // Closes now: onClosing() at once, onClosed() once every callback of the stream has run.
  // Idempotent. The core closes by itself at the end of a lingering close.
  void closeNow();
  // The connection starts closing (closeNow(), from the user or the core): unhook it from
  // whatever lists it is in.
  virtual void onClosing() {}

  // uv::StreamEvents: the user overrides onDrained/onWriteProgress/onWriteFailed/onClosed and
  // calls these first (they run the lingering close).
  void onDrained() override;
  void onWriteFailed(int status) override;

  // What a read error means: a probe that timed out is the keepalive's verdict when probes run.
  Cause readErrorCause(ssize_t nread) const;

 private:
  void onRead(ssize_t nread, const char* data) final;
  void shutdownAfterDrain();

  uv::Timeouts& timeouts_;
  uv::Stream stream_;
  uv::Timeout timeout_;
  Wait wait_ = Wait::None;
  std::unique_ptr<std::string> pipelined_;
  std::string peer_;
  std::string peer_ip_;
  bool closing_ = false;
  bool lingering_ = false;
  bool half_closed_ = false;
  bool keepalive_probes_ = false;
};

// One chunk of a chunked body (RFC 9112 section 7.1) around bytes that stay where they are:
// bufs[0] the size line, bufs[1] the bytes, bufs[2] the CRLF; one writev.
struct ChunkFrame {
  ChunkFrame(const char* at, size_t len) {
    auto r = std::to_chars(size_line, size_line + 16, len, 16);
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    bufs[0] = uv_buf_init(size_line, static_cast<unsigned>(r.ptr - size_line));
    bufs[1] = uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len));
    bufs[2] = uv_buf_init(crlf, 2);
  }
  char size_line[20];
  char crlf[2] = {'\r', '\n'};
  uv_buf_t bufs[3];
};

// The response writer's pieces both servers use: "HTTP/1.1 200 OK\r\n", and the Connection
// header the framing needs (close, or keep-alive confirmed to an HTTP/1.0 client).
void appendStatusLine(std::string& out, int status, std::string_view reason);
void appendConnectionHeader(std::string& out, bool keep_alive, int http_minor);

}  // namespace tether::http
