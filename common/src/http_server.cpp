#include "tether/common/http_server.hpp"

#include <algorithm>
#include <cstdio>

namespace tether::http {

std::string errorResponse(int status, std::string_view reason) {
  std::string body = std::to_string(status) + " " + std::string(statusReason(status));
  if (!reason.empty()) {
    body += ": ";
    body += reason;
  }
  body += '\n';
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(statusReason(status)) +
                    "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

// One client connection. Owned by the Server (shared_ptr, so that a callback running on it can
// keep it alive while it closes itself); libuv callbacks reach it through the handle's data
// pointer, and write/shutdown requests through a weak_ptr because they complete after uv_close.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { Reading, Answering, Lingering, Closed };

  explicit Connection(Server* server) : server_(server), parser_(server->options_.limits) {}
  ~Connection() {
    if (exchange_ != nullptr) exchange_->connection_ = nullptr;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  StreamHandle& handle() { return handle_; }

  void start() {
    peer_ = peerAddress(handle_);
    handle_->handle.data = this;
    if (handle_->handle.type == UV_TCP) {
      // Small responses and stream events go out at once rather than waiting for Nagle.
      uv_tcp_nodelay(&handle_->tcp, 1);
      // A failure leaves the connection without probes; it still works, and the owner's
      // client timeouts still apply.
      (void)applyTcpKeepalive(&handle_->tcp, server_->options_.tcp_keepalive);
    }
    if (uv_timer_init(server_->loop_, timer_.get()) == 0) {
      timer_.markInitialized();
      timer_->data = this;
    }
    startReading();
    armTimer(Timer::Header);
  }

  // Server::drain(): an idle connection goes at once; a request in progress gets its answer
  // with Connection: close.
  void drain() {
    close_after_response_ = true;
    if (state_ == State::Reading && !parser_.started() && pending_.empty()) {
      closeNow(DisconnectCause::Shutdown);
    }
  }

  // The one teardown: every path that ends a connection comes here (read EOF or error, write
  // error, a timer, the end of a lingering close, Server::closeAll, Exchange abandonment).
  // Idempotent. Fires the current exchange's disconnect callback when its response is not
  // complete. May destroy `this` when it returns (the Server drops its reference).
  void closeNow(DisconnectCause cause) {
    if (state_ == State::Closed) return;
    auto keep = shared_from_this();
    state_ = State::Closed;
    timer_.close();
    handle_.close();
    if (Exchange* ex = std::exchange(exchange_, nullptr); ex != nullptr) {
      ex->connection_ = nullptr;
      --server_->stats_.in_flight;
      ++server_->stats_.disconnects;
      if (auto callback = std::move(ex->on_disconnect_)) callback(cause);
    }
    server_->connectionClosed(this);
  }

  bool closing() const { return state_ == State::Closed; }

  // ---- called by Exchange ----

  bool closeAfterResponse() const { return close_after_response_; }
  const std::string& serverName() const { return server_->options_.server_name; }
  void requestClose() { close_after_response_ = true; }

  bool send(std::string data) {
    if (state_ == State::Closed) return false;
    const int rc = write(std::move(data));
    if (rc < 0) {
      closeNow(DisconnectCause::WriteError);
      return false;
    }
    watchSend();
    return true;
  }

  size_t queuedBytes() const {
    if (state_ == State::Closed) return 0;
    return uv_stream_get_write_queue_size(handle_.stream());
  }

  // The exchange's response is complete (respond(), finish(), or abandoned).
  void responseComplete(Exchange* ex) {
    if (ex != exchange_) return;
    exchange_ = nullptr;
    ex->connection_ = nullptr;
    --server_->stats_.in_flight;
    if (close_after_response_ || !ex->request_.keep_alive) {
      linger();
      return;
    }
    state_ = State::Reading;
    parser_.reset();
    startReading();  // reading may have paused on max_pending_bytes
    armTimer(pending_.empty() ? Timer::Idle : Timer::Header);
    process();
  }

  // The handler dropped the exchange without completing the response.
  void exchangeAbandoned(Exchange* ex) {
    if (ex != exchange_) return;
    if (!ex->started_) {
      ex->respond(500, {}, "500 Internal Server Error\n");
      return;
    }
    // Mid-stream: the client must see a truncated body, not a clean end.
    ex->on_disconnect_ = nullptr;
    closeNow(DisconnectCause::Shutdown);
  }

  // send_timeout (nginx's): while a response has bytes the kernel would not take, each write
  // completion is progress and restarts the clock; none for send_timeout_ms means the client is
  // stuck or gone. Only while answering: other states have their own timer.
  void watchSend() {
    if (state_ != State::Answering) return;
    if (queuedBytes() == 0) {
      if (timer_kind_ == Timer::Send) armTimer(Timer::None);
    } else {
      armTimer(Timer::Send);
    }
  }

  void checkWritable() {
    if (exchange_ == nullptr || !exchange_->on_writable_) return;
    if (queuedBytes() > exchange_->low_water_) return;
    auto callback = std::move(exchange_->on_writable_);
    exchange_->on_writable_ = nullptr;
    callback();
  }

 private:
  enum class Timer { None, Header, Body, Idle, Linger, Send };

  struct WriteReq {
    uv_write_t req{};
    std::string data;
    std::weak_ptr<Connection> connection;
  };
  struct ShutdownReq {
    uv_shutdown_t req{};
    std::weak_ptr<Connection> connection;
  };

  int write(std::string data) {
    auto* req = new WriteReq{{}, std::move(data), weak_from_this()};
    uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
    const int rc = uv_write(&req->req, handle_.stream(), &buf, 1, [](uv_write_t* w, int status) {
      std::unique_ptr<WriteReq> owned(reinterpret_cast<WriteReq*>(w));
      auto conn = owned->connection.lock();
      if (!conn || conn->closing()) return;
      if (status < 0) {
        conn->closeNow(DisconnectCause::WriteError);
        return;
      }
      conn->watchSend();
      conn->checkWritable();
    });
    if (rc < 0) delete req;
    return rc;
  }

  void startReading() {
    if (reading_ || state_ == State::Closed) return;
    const int rc = uv_read_start(
        handle_.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Connection*>(h->data);
          auto& b = self->server_->read_buffer_;
          *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          static_cast<Connection*>(s->data)->onRead(nread, buf);
        });
    reading_ = rc == 0;
  }

  void stopReading() {
    if (!reading_) return;
    uv_read_stop(handle_.stream());
    reading_ = false;
  }

  void onRead(ssize_t nread, const uv_buf_t* buf) {
    if (nread == 0) return;  // EAGAIN
    auto keep = shared_from_this();
    if (nread < 0) {
      // After a complete request we keep reading only to notice the client leaving: end of file
      // or an error while the response is pending is a disconnect (DESIGN.md), and so is a
      // client that stops halfway through a request.
      closeNow(nread == UV_EOF ? DisconnectCause::Eof : DisconnectCause::Reset);
      return;
    }
    const std::string_view data(buf->base, static_cast<size_t>(nread));
    switch (state_) {
      case State::Lingering:
        return;  // dropped: we only wait for the client to read our answer and close
      case State::Answering:
        pending_.append(data);
        if (pending_.size() > server_->options_.max_pending_bytes) stopReading();
        return;
      case State::Reading:
        pending_.append(data);
        if (parser_.headComplete()) armTimer(Timer::Body);  // body_timeout is between reads
        process();
        return;
      case State::Closed:
        return;
    }
  }

  // Parses pending bytes and runs the handler for each complete request, one at a time. A
  // handler that answers at once re-enters through responseComplete(); the `processing_` guard
  // turns that into another turn of this loop instead of recursion (pipelined requests).
  void process() {
    if (processing_) return;
    processing_ = true;
    auto keep = shared_from_this();
    while (state_ == State::Reading && !pending_.empty()) {
      const bool was_started = parser_.started();
      const auto result = parser_.feed(pending_);
      pending_.erase(0, result.consumed);
      if (result.status == RequestParser::Status::NeedMore) {
        if (parser_.takeContinueWanted()) send("HTTP/1.1 100 Continue\r\n\r\n");
        if (parser_.headComplete()) {
          armTimer(Timer::Body);
        } else if (!was_started && parser_.started()) {
          // client_header_timeout counts from the request's first byte, not per read, so a
          // slowloris client dribbling a byte at a time still runs out of time.
          armTimer(Timer::Header);
        }
        break;
      }
      if (result.status == RequestParser::Status::Error) {
        answerError(parser_.errorStatus(), parser_.errorReason());
        break;
      }
      dispatch();
    }
    processing_ = false;
  }

  void dispatch() {
    Request request = parser_.takeRequest();
    request.peer = peer_;
    if (parser_.upgrade()) close_after_response_ = true;
    state_ = State::Answering;
    armTimer(Timer::None);
    std::shared_ptr<Exchange> ex(new Exchange(this, std::move(request)));
    ex->id_header_ = server_->options_.request_id_header;
    ex->trust_id_ = server_->options_.trust_request_id;
    exchange_ = ex.get();
    ++server_->stats_.in_flight;
    ++server_->stats_.requests;
    server_->handler_(std::move(ex));
  }

  void answerError(int status, const std::string& reason) {
    ++server_->stats_.errors;
    if (server_->options_.on_error) server_->options_.on_error(status, reason, peer_);
    state_ = State::Answering;  // so that no more bytes are parsed
    if (write(errorResponse(status)) < 0) {
      closeNow(DisconnectCause::WriteError);
      return;
    }
    linger();
  }

  // A lingering close (nginx's lingering_close): after an answer that ends the connection we
  // send FIN and keep reading, dropping what arrives, until the client closes or linger_ms
  // passes. Closing at once could make the kernel send RST while unread request bytes (a large
  // body we refused) are queued, and an RST can destroy our answer before the client reads it.
  void linger() {
    state_ = State::Lingering;
    pending_.clear();
    armTimer(Timer::Linger);
    startReading();
    auto* req = new ShutdownReq{{}, weak_from_this()};
    if (uv_shutdown(&req->req, handle_.stream(), [](uv_shutdown_t* s, int) {
          delete reinterpret_cast<ShutdownReq*>(s);
        }) < 0) {
      delete req;
      closeNow(DisconnectCause::WriteError);
    }
  }

  void armTimer(Timer which) {
    if (!timer_.active()) return;
    uv_timer_stop(timer_.get());
    timer_kind_ = which;
    const auto& o = server_->options_;
    uint64_t ms = 0;
    switch (which) {
      case Timer::None: return;
      case Timer::Header: ms = o.header_timeout_ms; break;
      case Timer::Body: ms = o.body_timeout_ms; break;
      case Timer::Idle: ms = o.keepalive_timeout_ms; break;
      case Timer::Linger: ms = o.linger_ms; break;
      case Timer::Send: ms = o.send_timeout_ms; break;
    }
    uv_timer_start(timer_.get(), [](uv_timer_t* t) { static_cast<Connection*>(t->data)->onTimer(); },
                   ms, 0);
  }

  void onTimer() {
    auto keep = shared_from_this();
    switch (timer_kind_) {
      case Timer::Header:
      case Timer::Body:
        // 408 only to a client that began a request; a connection that never sent a byte is
        // closed silently, as nginx does.
        if (state_ == State::Reading && parser_.started()) {
          answerError(408, timer_kind_ == Timer::Header ? "request header timeout" : "request body timeout");
        } else {
          closeNow(DisconnectCause::Timeout);
        }
        return;
      case Timer::Idle:
      case Timer::Linger:
      case Timer::Send:
        closeNow(DisconnectCause::Timeout);
        return;
      case Timer::None:
        return;
    }
  }

  Server* server_;
  StreamHandle handle_;
  UvHandle<uv_timer_t> timer_;
  Timer timer_kind_ = Timer::None;
  RequestParser parser_;
  std::string peer_;
  std::string pending_;  // received, not yet parsed (pipelined requests wait here)
  Exchange* exchange_ = nullptr;
  State state_ = State::Reading;
  bool reading_ = false;
  bool processing_ = false;
  bool close_after_response_ = false;
};

// ---- Exchange ----

Exchange::Exchange(Connection* connection, Request request)
    : connection_(connection), request_(std::move(request)) {
  head_only_ = request_.method == "HEAD";
}

Exchange::~Exchange() {
  if (connection_ != nullptr && !complete_) connection_->exchangeAbandoned(this);
}

const std::string& Exchange::requestId() {
  if (request_id_.empty()) {
    auto id = request_.requestId(id_header_, trust_id_);
    request_id_ = std::move(id.id);
    request_id_replaced_ = id.replaced;
  }
  return request_id_;
}

bool Exchange::requestIdReplaced() {
  requestId();
  return request_id_replaced_;
}

void Exchange::replaceRequestId(std::string id) {
  requestId();
  request_id_ = std::move(id);
}

namespace {

bool bodyForbidden(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

// The status line and headers; the server owns framing and connection management headers.
std::string responseHead(int status, const Headers& headers, bool& close, const Request& request,
                         const std::string& server_name) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(statusReason(status)) + "\r\n";
  for (const auto& h : headers) {
    if (iequals(h.name, "Content-Length") || iequals(h.name, "Transfer-Encoding")) continue;
    if (iequals(h.name, "Connection")) {
      if (headerHasToken(h.value, "close")) close = true;
      continue;
    }
    head += h.name;
    head += ": ";
    head += h.value;
    head += "\r\n";
  }
  if (!server_name.empty()) head += "Server: " + server_name + "\r\n";
  if (close || !request.keep_alive) {
    head += "Connection: close\r\n";
  } else if (request.version_minor == 0) {
    head += "Connection: keep-alive\r\n";  // HTTP/1.0 keep-alive must be confirmed
  }
  return head;
}

}  // namespace

bool Exchange::respond(int status, const Headers& headers, std::string_view body) {
  if (connection_ == nullptr || started_) return false;
  started_ = true;
  bool close = connection_->closeAfterResponse();
  std::string out = responseHead(status, headers, close, request_, connection_->serverName());
  if (!bodyForbidden(status)) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "\r\n";
  if (!head_only_ && !bodyForbidden(status)) out.append(body);
  if (close) connection_->requestClose();
  Connection* conn = connection_;
  if (!conn->send(std::move(out))) return false;
  complete_ = true;
  conn->responseComplete(this);
  return true;
}

bool Exchange::startStream(int status, const Headers& headers) {
  if (connection_ == nullptr || started_) return false;
  started_ = true;
  bool close = connection_->closeAfterResponse();
  // HTTP/1.0 has no chunked coding: the body ends with the connection (RFC 9112 section 6.3).
  chunked_ = request_.version_minor >= 1;
  if (!chunked_) close = true;
  std::string out = responseHead(status, headers, close, request_, connection_->serverName());
  if (chunked_ && !head_only_) out += "Transfer-Encoding: chunked\r\n";
  out += "\r\n";
  if (close) connection_->requestClose();
  return connection_->send(std::move(out));
}

bool Exchange::write(std::string_view chunk) {
  if (connection_ == nullptr || !started_ || complete_) return false;
  if (chunk.empty() || head_only_) return true;
  std::string out;
  if (chunked_) {
    char size[20];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    out.reserve(chunk.size() + static_cast<size_t>(n) + 2);
    out.append(size, static_cast<size_t>(n));
    out.append(chunk);
    out += "\r\n";
  } else {
    out.assign(chunk);
  }
  return connection_->send(std::move(out));
}

bool Exchange::finish() {
  if (connection_ == nullptr || !started_ || complete_) return false;
  Connection* conn = connection_;
  if (chunked_ && !head_only_ && !conn->send("0\r\n\r\n")) return false;
  complete_ = true;
  conn->responseComplete(this);
  return true;
}

size_t Exchange::queuedBytes() const { return connection_ != nullptr ? connection_->queuedBytes() : 0; }

void Exchange::onWritable(std::function<void()> callback, size_t low_water) {
  on_writable_ = std::move(callback);
  low_water_ = low_water;
  if (connection_ != nullptr) connection_->checkWritable();
}

void Exchange::onDisconnect(std::function<void(DisconnectCause)> callback) {
  on_disconnect_ = std::move(callback);
}

// ---- Server ----

Server::Server(uv_loop_t* loop, ServerOptions options, Handler handler)
    : loop_(loop), options_(std::move(options)), handler_(std::move(handler)), read_buffer_(64 * 1024) {}

Server::~Server() {
  drained_ = nullptr;
  closeAll();
}

int Server::addListener(std::unique_ptr<Listener> listener) {
  if (draining_) return UV_ECANCELED;
  Listener* l = listener.get();
  const int rc = l->start([this, l](int status) { onConnection(*l, status); });
  if (rc < 0) return rc;
  listeners_.push_back(std::move(listener));
  return 0;
}

void Server::closeListener(const Listener* listener) {
  auto it = std::find_if(listeners_.begin(), listeners_.end(), [listener](const auto& l) { return l.get() == listener; });
  if (it == listeners_.end()) return;
  (*it)->close();
  listeners_.erase(it);
}

void Server::onConnection(Listener& listener, int status) {
  // A failed accept (EMFILE, ...) leaves the connection in the backlog; libuv retries.
  if (status < 0) return;
  auto connection = std::make_shared<Connection>(this);
  if (listener.accept(connection->handle()) < 0) return;
  connections_.push_back(connection);
  ++stats_.connections;
  connection->start();
}

void Server::connectionClosed(Connection* connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [connection](const auto& c) { return c.get() == connection; });
  if (it == connections_.end()) return;
  std::swap(*it, connections_.back());
  connections_.pop_back();
  --stats_.connections;
  checkDrained();
}

void Server::drain(std::function<void()> done) {
  drained_ = std::move(done);
  if (!draining_) {
    draining_ = true;
    for (auto& l : listeners_) l->close();
    listeners_.clear();
    const auto connections = connections_;  // drain() may close and remove them
    for (const auto& c : connections) c->drain();
  }
  checkDrained();
}

void Server::closeAll() {
  draining_ = true;
  for (auto& l : listeners_) l->close();
  listeners_.clear();
  const auto connections = connections_;
  for (const auto& c : connections) c->closeNow(DisconnectCause::Shutdown);
  checkDrained();
}

void Server::checkDrained() {
  if (!draining_ || !connections_.empty() || !drained_) return;
  auto done = std::move(drained_);
  drained_ = nullptr;
  done();
}

ServerStats Server::stats() const { return stats_; }

}  // namespace tether::http
