#include "tether/common/http_connection.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include "tether/common/listener.hpp"

namespace tether::http {

ServerConnection::ServerConnection(uv_loop_t* loop, uv::Timeouts& timeouts, uv::StreamKind kind,
                                   char* read_buffer, size_t read_buffer_size)
    : timeouts_(timeouts),
      stream_(loop, kind, *this),
      timeout_([](uv::Timeout& t) {
                 auto* self = static_cast<ServerConnection*>(t.data);
                 const Wait which = std::exchange(self->wait_, Wait::None);
                 if (self->closing_) return;
                 if (which == Wait::Linger) {
                   self->closeNow();  // the client never sent its end of file
                   return;
                 }
                 self->onTimeout(which);
               },
               this) {
  stream_.setReadBuffer(read_buffer, read_buffer_size);
}

ServerConnection::~ServerConnection() = default;

int ServerConnection::accept(uv_stream_t* listener, const TcpKeepalive& keepalive) {
  int rc = stream_.status();
  if (rc == 0) rc = uv_accept(listener, stream_.stream());
  if (rc != 0) {
    closeNow();
    return rc;
  }
  if (uv_tcp_t* tcp = stream_.tcp(); tcp != nullptr) {
    // Small responses and stream events go out at once rather than waiting for Nagle.
    uv_tcp_nodelay(tcp, 1);
    // A failure leaves the connection without probes; it still works, and the timeouts still apply.
    keepalive_probes_ = keepalive.enabled && applyTcpKeepalive(tcp, keepalive) == 0;
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      peer_ = formatSockaddr(reinterpret_cast<sockaddr*>(&ss), static_cast<socklen_t>(len));
    }
    // Built, then moved: GCC 12 at -O3 misreads assigning a literal here as an overlapping
    // memcpy (-Wrestrict, the false positive listener.cpp's formatSockaddr notes too).
    if (peer_.empty()) peer_ = std::string(1, '-');
    // The address without its port: "127.0.0.1:5555" and "[::1]:5555" end in ":PORT".
    const size_t colon = peer_.rfind(':');
    peer_ip_ = colon == std::string::npos ? peer_ : peer_.substr(0, colon);
    if (peer_ip_.size() > 2 && peer_ip_.front() == '[') peer_ip_ = peer_ip_.substr(1, peer_ip_.size() - 2);
  } else {
    peer_ = std::string("unix:");
    peer_ip_ = peer_;
  }
  readStart();
  return 0;
}

void ServerConnection::readStart() {
  if (closing_) return;
  stream_.readStart();
}

void ServerConnection::readStop() { stream_.readStop(); }

void ServerConnection::onRead(ssize_t nread, const char* data) {
  if (closing_) return;
  if (lingering_) {
    // Lingering close: the client's bytes are dropped; its end (or an error) is all we wait for.
    if (nread < 0) closeNow();
    return;
  }
  if (nread > 0) {
    onBytes(data, static_cast<size_t>(nread));
    return;
  }
  onPeerGone(readErrorCause(nread));
}

Cause ServerConnection::readErrorCause(ssize_t nread) const {
  if (nread == UV_EOF) return Cause::Eof;
  if (nread == UV_ETIMEDOUT) return keepalive_probes_ ? Cause::Keepalive : Cause::Timeout;
  return Cause::Reset;
}

void ServerConnection::keepPipelined(const char* data, size_t len, size_t limit) {
  if (!pipelined_) pipelined_ = std::make_unique<std::string>();
  pipelined_->append(data, len);
  if (pipelined_->size() > limit) readStop();
}

std::string ServerConnection::takePipelined() {
  if (!pipelined_) return {};
  std::string bytes = std::move(*pipelined_);
  pipelined_.reset();
  return bytes;
}

void ServerConnection::wait(Wait kind, uint64_t ms) {
  if (closing_) return;
  wait_ = kind;
  timeouts_.arm(timeout_, ms);
}

void ServerConnection::stopWaiting() {
  wait_ = Wait::None;
  timeout_.cancel();
}

void ServerConnection::closeGracefully(uint64_t linger_ms) {
  if (closing_ || lingering_) return;
  lingering_ = true;
  pipelined_.reset();
  if (!half_closed_) readStart();  // to see the client's end of file
  wait(Wait::Linger, linger_ms);
  if (stream_.pending() == 0) shutdownAfterDrain();
}

void ServerConnection::onDrained() {
  if (lingering_ && !closing_) shutdownAfterDrain();
}

void ServerConnection::onWriteFailed(int) {
  if (lingering_) closeNow();
}

// Everything is written: close our side and wait briefly for the client's end of file.
void ServerConnection::shutdownAfterDrain() {
  auto* req = new uv_shutdown_t;
  req->data = this;
  const int r = uv_shutdown(req, stream_.stream(), [](uv_shutdown_t* sr, int status) {
    auto* self = static_cast<ServerConnection*>(sr->data);
    delete sr;
    // A cancelled shutdown means the stream is closing: `self` must not be touched. A client that
    // already sent its end of file (half close) has nothing more to say.
    if (status != UV_ECANCELED && !self->closing_ && self->half_closed_) self->closeNow();
  });
  if (r != 0) {
    delete req;
    closeNow();
  }
}

void ServerConnection::closeNow() {
  if (closing_) return;
  closing_ = true;
  wait_ = Wait::None;
  timeout_.cancel();
  pipelined_.reset();
  onClosing();
  stream_.close();  // onClosed() from the close callback, after every other callback
}

void appendStatusLine(std::string& out, int status, std::string_view reason) {
  char num[8];
  auto r = std::to_chars(num, num + sizeof num, status);
  out.append("HTTP/1.1 ").append(num, r.ptr).append(" ").append(reason).append("\r\n");
}

void appendConnectionHeader(std::string& out, bool keep_alive, int http_minor) {
  if (!keep_alive) {
    out.append("Connection: close\r\n");
  } else if (http_minor == 0) {
    out.append("Connection: keep-alive\r\n");  // HTTP/1.0 keep-alive must be confirmed
  }
}

}  // namespace tether::http
