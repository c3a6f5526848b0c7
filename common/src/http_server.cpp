#include "tether/common/http_server.hpp"

#include "tether/common/http_connection.hpp"

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
  std::string out;
  appendStatusLine(out, status, statusReason(status));
  out += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  appendConnectionHeader(out, /*keep_alive=*/false, 1);
  out += "\r\n";
  out += body;
  return out;
}

// One client connection, on the HTTP/1.1 connection core (http_connection.hpp: the socket, TCP
// options, the one timeout, pipelined bytes, lingering close). Owned by the Server (shared_ptr, so
// that a callback running on it can keep it alive while it closes itself) until its stream's close
// callback (onClosed), which libuv runs after every other callback of the connection.
class Connection final : public ServerConnection, public std::enable_shared_from_this<Connection> {
 public:
  enum class State { Reading, Answering };

  Connection(Server* server, bool unix_socket)
      : ServerConnection(server->loop_, server->timeouts_, unix_socket ? uv::StreamKind::Pipe : uv::StreamKind::Tcp,
                         server->read_buffer_.data(), server->read_buffer_.size()),
        server_(server) {}
  ~Connection() override {
    if (exchange_ != nullptr) exchange_->connection_ = nullptr;
  }

  // Takes the listener's next connection and waits for a request. A failure closes it.
  int start(Listener& listener) {
    const int rc = accept(listener.stream(), server_->options_.tcp_keepalive);
    if (rc == 0) wait(Wait::Header, server_->options_.header_timeout_ms);
    return rc;
  }

  // Server::drain(): an idle connection goes at once; a request in progress gets its answer
  // with Connection: close.
  void drain() {
    close_after_response_ = true;
    if (state_ == State::Reading && !requestStarted() && !hasPipelined()) close(DisconnectCause::Shutdown);
  }

  // Every path that ends a connection while a request may be unanswered comes here (read EOF or
  // error, write error, a timer, Server::closeAll, Exchange abandonment). Idempotent. The
  // current exchange's disconnect callback runs when its response is not complete.
  void close(DisconnectCause cause) {
    if (closing()) return;
    auto keep = shared_from_this();
    cause_ = cause;
    closeNow();  // onClosing() below
  }

  // ---- called by Exchange ----

  bool closeAfterResponse() const { return close_after_response_; }
  const std::string& serverName() const { return server_->options_.server_name; }
  void requestClose() { close_after_response_ = true; }

  bool send(std::string_view data) {
    if (closing()) return false;
    if (write(data) < 0) {
      close(DisconnectCause::WriteError);
      return false;
    }
    watchSend();
    return true;
  }

  size_t queuedBytes() const { return closing() ? 0 : pending(); }

  // The exchange's response is complete (respond(), finish(), or abandoned).
  void responseComplete(Exchange* ex) {
    if (ex != exchange_) return;
    exchange_ = nullptr;
    ex->connection_ = nullptr;
    --server_->stats_.in_flight;
    if (close_after_response_ || !ex->request_.keep_alive) {
      closeGracefully(server_->options_.linger_ms);
      return;
    }
    state_ = State::Reading;
    parser_.reset();  // an idle connection keeps no parser: the next request's first byte makes one
    readStart();      // reading may have paused on max_pending_bytes
    if (hasPipelined()) {
      wait(Wait::Header, server_->options_.header_timeout_ms);
    } else {
      wait(Wait::KeepAlive, server_->options_.keepalive_timeout_ms);
    }
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
    close(DisconnectCause::Shutdown);
  }

  // send_timeout (nginx's): while a response has bytes the kernel would not take, each write
  // completion is progress and restarts the clock; none for send_timeout_ms means the client is
  // stuck or gone. Only while answering: other states have their own timeout.
  void watchSend() {
    if (state_ != State::Answering || lingering() || closing()) return;
    if (pending() == 0) {
      if (waiting() == Wait::Send) stopWaiting();
    } else {
      wait(Wait::Send, server_->options_.send_timeout_ms);
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
  bool requestStarted() const { return parser_ != nullptr && parser_->started(); }
  RequestParser& parser() {
    if (!parser_) parser_ = std::make_unique<RequestParser>(server_->options_.limits);
    return *parser_;
  }

  // ---- the core's events ----

  void onBytes(const char* data, size_t len) override {
    auto keep = shared_from_this();
    if (state_ == State::Answering) {
      // Pipelined bytes wait for the response; past max_pending_bytes reading pauses.
      keepPipelined(data, len, server_->options_.max_pending_bytes);
      return;
    }
    keepPipelined(data, len, SIZE_MAX);  // parsed at once below
    if (requestStarted() && parser_->headComplete()) wait(Wait::Body, server_->options_.body_timeout_ms);
    process();
  }

  // After a complete request we keep reading only to notice the client leaving: end of file or
  // an error while the response is pending is a disconnect (DESIGN.md), and so is a client that
  // stops halfway through a request.
  void onPeerGone(DisconnectCause cause) override { close(cause); }

  void onTimeout(Wait which) override {
    auto keep = shared_from_this();
    switch (which) {
      case Wait::Header:
      case Wait::Body:
        // 408 only to a client that began a request; a connection that never sent a byte is
        // closed silently, as nginx does.
        if (state_ == State::Reading && requestStarted()) {
          answerError(408, which == Wait::Header ? "request header timeout" : "request body timeout");
        } else {
          close(DisconnectCause::Timeout);
        }
        return;
      default:
        close(DisconnectCause::Timeout);
        return;
    }
  }

  void onDrained() override {
    auto keep = shared_from_this();
    ServerConnection::onDrained();
    if (lingering() || closing()) return;
    watchSend();
    checkWritable();
  }
  void onWriteProgress() override {
    auto keep = shared_from_this();
    watchSend();
    checkWritable();
  }
  void onWriteFailed(int status) override {
    auto keep = shared_from_this();
    ServerConnection::onWriteFailed(status);
    close(DisconnectCause::WriteError);
  }

  void onClosing() override {
    if (Exchange* ex = std::exchange(exchange_, nullptr); ex != nullptr) {
      ex->connection_ = nullptr;
      --server_->stats_.in_flight;
      ++server_->stats_.disconnects;
      if (auto callback = std::move(ex->on_disconnect_)) callback(cause_);
    }
  }
  // Last: libuv has run every callback of the connection. The server lets it go (maybe freeing it).
  void onClosed() override { server_->connectionClosed(this); }

  // Parses the waiting bytes and runs the handler for each complete request, one at a time. A
  // handler that answers at once re-enters through responseComplete(); the `processing_` guard
  // turns that into another turn of this loop instead of recursion (pipelined requests).
  void process() {
    if (processing_) return;
    processing_ = true;
    auto keep = shared_from_this();
    while (state_ == State::Reading && !closing() && !lingering() && hasPipelined()) {
      std::string bytes = takePipelined();
      RequestParser& p = parser();
      const bool was_started = p.started();
      const auto result = p.feed(bytes);
      if (result.consumed < bytes.size()) {
        keepPipelined(bytes.data() + result.consumed, bytes.size() - result.consumed, SIZE_MAX);
      }
      if (result.status == RequestParser::Status::NeedMore) {
        if (p.takeContinueWanted()) send("HTTP/1.1 100 Continue\r\n\r\n");
        if (p.headComplete()) {
          wait(Wait::Body, server_->options_.body_timeout_ms);
        } else if (!was_started && p.started()) {
          // client_header_timeout counts from the request's first byte, not per read, so a
          // slowloris client dribbling a byte at a time still runs out of time.
          wait(Wait::Header, server_->options_.header_timeout_ms);
        }
        break;
      }
      if (result.status == RequestParser::Status::Error) {
        answerError(p.errorStatus(), p.errorReason());
        break;
      }
      dispatch();
    }
    processing_ = false;
  }

  void dispatch() {
    Request request = parser_->takeRequest();
    request.peer = peer();
    if (parser_->upgrade()) close_after_response_ = true;
    state_ = State::Answering;
    stopWaiting();
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
    if (server_->options_.on_error) server_->options_.on_error(status, reason, peer());
    state_ = State::Answering;  // so that no more bytes are parsed
    if (write(errorResponse(status)) < 0) {
      close(DisconnectCause::WriteError);
      return;
    }
    closeGracefully(server_->options_.linger_ms);
  }

  Server* server_;
  std::unique_ptr<RequestParser> parser_;  // while a request is parsed or answered
  Exchange* exchange_ = nullptr;
  State state_ = State::Reading;
  DisconnectCause cause_ = DisconnectCause::Shutdown;
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
  std::string head;
  appendStatusLine(head, status, statusReason(status));
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
  appendConnectionHeader(head, !close && request.keep_alive, request.version_minor);
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
    : loop_(loop), timeouts_(loop), options_(std::move(options)), handler_(std::move(handler)), read_buffer_(64 * 1024) {}

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
  auto connection = std::make_shared<Connection>(this, listener.isUnix());
  connections_.push_back(connection);
  ++stats_.connections;
  // A failed accept closes the connection: its close callback removes it (connectionClosed).
  connection->start(listener);
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
  for (const auto& c : connections) c->close(DisconnectCause::Shutdown);
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
