#pragma once
// A small HTTP/1.1 server on libuv + llhttp: solverd's API and every daemon's admin listener.
//
//   tether::http::Server server(loop, {}, [](std::shared_ptr<tether::http::Exchange> ex) {
//     const auto& req = ex->request();
//     if (req.path == "/health") { ex->respond(200, {{"Content-Type", "text/plain"}}, "ok\n"); return; }
//     ex->onDisconnect([id = ex->requestId()](tether::http::DisconnectCause) { cancel(id); });
//     startJob(ex);   // keeps `ex`, answers later with respond() or startStream()/write()/finish()
//   });
//   server.addListener(std::move(listener));
//   ...on SIGTERM: server.drain([] { /* every connection is gone */ });
//
// Connections: keep-alive; pipelined requests are handled one at a time, in order (the next
// handler runs once the previous response is complete). While a request is being answered the
// server keeps reading: pipelined bytes are kept (up to max_pending_bytes) and end-of-file, a reset
// or a read/write error before the response is complete is a disconnect, reported through
// Exchange::onDisconnect. Errors in a request (400, 408, 413, 417, 431, 505) are answered with
// `Connection: close` and the connection is closed after a short lingering read.
// Everything runs on the loop's thread; no callback throws.
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tether/agent/control/vocabulary.hpp"
#include "tether/common/http_parser.hpp"
#include "tether/common/http_request.hpp"
#include "tether/common/tcp_keepalive.hpp"
#include "tether/common/timeouts.hpp"
#include "tether/common/listener.hpp"

namespace tether::http {

// Why a client went away before its response was complete (DESIGN.md "Disconnect semantics"):
// the protocol's causes. This server reports Eof (FIN), Reset (ECONNRESET and other read
// errors), WriteError (EPIPE, ...), Timeout (a server timeout closed it) and Shutdown
// (Server::closeAll() or the server's destruction); toString() gives the wire name.
using DisconnectCause = agent::control::Cause;
using agent::control::toString;

class Connection;

// One request and its response. The handler gets a shared_ptr and may keep it to answer later;
// once the client is gone every answering call returns false and does nothing.
// If the last reference goes away without a response, the server answers 500 (or, mid-stream,
// closes the connection so the client sees a truncated body).
class Exchange {
 public:
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const Request& request() const { return request_; }
  // The request id (ServerOptions::request_id_header when trusted and valid by the protocol's
  // rule, else generated), computed once per exchange.
  const std::string& requestId();
  // True when a trusted header's value broke the rule and requestId() is a generated one.
  bool requestIdReplaced();
  // The daemon gives the request another id (a trusted id already in flight); responses carry it.
  void replaceRequestId(std::string id);
  // The header that carries the id, both ways (ServerOptions::request_id_header).
  const std::string& requestIdHeader() const { return id_header_; }

  // A complete response with Content-Length (no body for HEAD, 1xx, 204 and 304). The server
  // owns the Content-Length, Transfer-Encoding and Connection headers: given ones are dropped,
  // except `Connection: close`, which closes the connection after this response.
  // Returns false if the client is gone or a response was already started.
  bool respond(int status, const Headers& headers, std::string_view body);
  // A streamed response: Transfer-Encoding: chunked for HTTP/1.1; for HTTP/1.0 the body ends when
  // the connection closes. Then write() any number of times and finish().
  bool startStream(int status, const Headers& headers);
  // One chunk (an empty chunk is skipped: it would end the body). False if the client is gone.
  bool write(std::string_view chunk);
  bool finish();

  // Backpressure for streams: bytes queued in the kernel-bound write queue that libuv could not
  // write yet. Stop producing above a bound of your choice and wait for onWritable.
  size_t queuedBytes() const;
  // Runs once, when queuedBytes() drops to `low_water` or below (at once if it already is).
  void onWritable(std::function<void()> callback, size_t low_water = 0);

  // Runs once if the client goes away before the response is complete (see Connection notes
  // above). Not run for a completed response, nor for a disconnect after it.
  void onDisconnect(std::function<void(DisconnectCause)> callback);

  bool connected() const { return connection_ != nullptr; }
  bool started() const { return started_; }
  bool complete() const { return complete_; }

 private:
  friend class Connection;
  Exchange(Connection* connection, Request request);
  Connection* connection_;  // nulled when the connection is gone
  Request request_;
  std::string request_id_;
  std::string id_header_ = "X-Request-Id";
  bool trust_id_ = true;
  bool request_id_replaced_ = false;
  bool started_ = false;
  bool complete_ = false;
  bool chunked_ = false;
  bool head_only_ = false;  // HEAD: headers only
  std::function<void(DisconnectCause)> on_disconnect_;
  std::function<void()> on_writable_;
  size_t low_water_ = 0;
};

using Handler = std::function<void(std::shared_ptr<Exchange>)>;

struct ServerOptions {
  ParserLimits limits;                    // 431 / 413 bounds
  uint64_t header_timeout_ms = 10'000;    // a request head not complete in time: 408
  uint64_t body_timeout_ms = 60'000;      // no body bytes for this long: 408
  uint64_t keepalive_timeout_ms = 75'000; // an idle keep-alive connection is closed
  uint64_t linger_ms = 1'000;             // reading (and dropping) after an error response
  uint64_t send_timeout_ms = 60'000;      // response bytes queued with no progress for this long:
                                          // the client is gone (disconnect cause Timeout)
  TcpKeepalive tcp_keepalive;             // TCP clients: keepalive probes and TCP_USER_TIMEOUT
                                          // (off by default), to notice peers that vanished
                                          // without FIN or RST
  size_t max_pending_bytes = 64 * 1024;   // pipelined bytes kept while a response is pending;
                                          // beyond, reading pauses (and so EOF is seen late)
  std::string server_name;                // a Server: header when not empty
  // The request id (DESIGN.md "Request identity"): taken from this header when trusted and valid.
  std::string request_id_header = "X-Request-Id";
  bool trust_request_id = true;
  // Called for each error answer the server sends itself (a bad request, a timeout), so that the
  // daemon can log it once: status, a short reason ("HPE_INVALID_CHUNK_SIZE: Invalid character in
  // chunk size", "request header timeout") and the peer.
  std::function<void(int status, const std::string& reason, const std::string& peer)> on_error;
};

struct ServerStats {
  size_t connections = 0;  // open connections
  size_t in_flight = 0;    // requests handed to the handler and not yet answered completely
  uint64_t requests = 0;   // requests handed to the handler since the start
  uint64_t disconnects = 0;  // exchanges whose client went away before the response completed
  uint64_t errors = 0;       // error responses the server itself sent (400, 408, 413, 417, 431, 505)
};

class Server {
 public:
  Server(uv_loop_t* loop, ServerOptions options, Handler handler);
  // Closes every listener and connection at once (disconnect callbacks run with Shutdown).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on `listener` (the server owns it from now on). Returns 0 or a libuv error.
  int addListener(std::unique_ptr<Listener> listener);
  // Stops accepting on `listener` (one added above) and closes it; connections it accepted carry
  // on. For a reload that drops an address. An unknown pointer is ignored.
  void closeListener(const Listener* listener);

  // Graceful shutdown (SIGTERM): stops accepting (listeners closed), closes idle connections at
  // once, answers in-flight requests with `Connection: close` and closes each connection when its
  // response is done. `done` runs once, when no connection is left: possibly before drain()
  // returns. Calling drain() again only replaces `done`.
  void drain(std::function<void()> done);
  bool draining() const { return draining_; }
  // Immediate shutdown (second SIGTERM, or the drain timeout): closes listeners and every
  // connection now; in-flight exchanges see a Shutdown disconnect. Runs the drain callback.
  void closeAll();

  ServerStats stats() const;
  uv_loop_t* loop() const { return loop_; }
  const ServerOptions& options() const { return options_; }

 private:
  friend class Connection;
  void onConnection(Listener& listener, int status);
  void connectionClosed(Connection* connection);
  void checkDrained();

  uv_loop_t* loop_;
  uv::Timeouts timeouts_;  // every connection's timeout
  ServerOptions options_;
  Handler handler_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::shared_ptr<Connection>> connections_;
  bool draining_ = false;
  std::function<void()> drained_;
  ServerStats stats_;
  std::vector<char> read_buffer_;  // one for all connections: libuv hands it back at once
};

// Writes an error response's bytes for `status` with `Connection: close` (used by the server
// and by code that answers before the server is involved).
std::string errorResponse(int status, std::string_view reason = {});

}  // namespace tether::http
