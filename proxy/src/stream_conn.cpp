// The write path shared by client and upstream connections, and the header helpers.
#include <cstring>

#include "context.hpp"

namespace tether::proxy {

// ---- headers -------------------------------------------------------------------------------

void HeadBuffer::clear() {
  bytes_.clear();
  headers_.clear();
  state_ = State::None;
}

void HeadBuffer::field(const char* at, size_t len) {
  if (state_ != State::Field) {
    Header h;
    h.name_off = static_cast<uint32_t>(bytes_.size());
    headers_.push_back(h);
    state_ = State::Field;
  }
  bytes_.append(at, len);
  headers_.back().name_len += static_cast<uint32_t>(len);
}

bool HeadBuffer::value(const char* at, size_t len) {
  if (state_ == State::ValueDone || headers_.empty()) return false;  // obs-fold
  if (state_ != State::Value) {
    headers_.back().value_off = static_cast<uint32_t>(bytes_.size());
    state_ = State::Value;
  }
  bytes_.append(at, len);
  headers_.back().value_len += static_cast<uint32_t>(len);
  return true;
}

bool HeadBuffer::find(std::string_view name, std::string_view& out) const {
  for (size_t i = 0; i < headers_.size(); ++i) {
    if (iequals(this->name(i), name)) {
      out = value(i);
      return true;
    }
  }
  return false;
}

size_t HeadBuffer::countOf(std::string_view name) const {
  size_t n = 0;
  for (size_t i = 0; i < headers_.size(); ++i) n += iequals(this->name(i), name) ? 1 : 0;
  return n;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool isHopByHop(std::string_view name, std::string_view connection) {
  static constexpr std::string_view kHop[] = {"connection", "keep-alive", "proxy-connection",
                                               "te", "trailer", "transfer-encoding", "upgrade",
                                               "proxy-authenticate", "proxy-authorization"};
  for (auto h : kHop) {
    if (iequals(name, h)) return true;
  }
  // Connection may list more hop-by-hop names, comma-separated (RFC 9110 section 7.6.1).
  while (!connection.empty()) {
    size_t comma = connection.find(',');
    std::string_view token = connection.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty() && iequals(token, name)) return true;
    if (comma == std::string_view::npos) break;
    connection.remove_prefix(comma + 1);
  }
  return false;
}

// ---- StreamConn ----------------------------------------------------------------------------

struct StreamConn::WriteReq {
  uv_write_t req;
  StreamConn* owner;
  std::string data;
};

StreamConn::StreamConn(Context& ctx, bool unix_socket) : ctx_(ctx), handle_(new uv_any_handle{}) {
  if (unix_socket) {
    uv_pipe_init(ctx.loop, &handle_->pipe, 0);
  } else {
    uv_tcp_init(ctx.loop, &handle_->tcp);
  }
  handle_->handle.data = this;
}

StreamConn::~StreamConn() = default;

void StreamConn::closeStream() {
  if (closing_) return;
  closing_ = true;
  uv_close(&handle_->handle, [](uv_handle_t* h) {
    // libuv has run every write and connect callback of this stream by now.
    delete static_cast<StreamConn*>(h->data);
    delete reinterpret_cast<uv_any_handle*>(h);
  });
}

void StreamConn::readStart() {
  if (closing_ || reading_) return;
  int r = uv_read_start(
      stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* c = static_cast<StreamConn*>(h->data);
        *buf = uv_buf_init(c->ctx_.read_buf, sizeof c->ctx_.read_buf);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* c = static_cast<StreamConn*>(s->data);
        if (nread == 0 || c->closing_) return;
        c->onRead(nread, buf->base);
      });
  reading_ = r == 0;
}

void StreamConn::readStop() {
  if (closing_ || !reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

int StreamConn::write(std::string_view bytes) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  return write(&buf, 1);
}

int StreamConn::write(const uv_buf_t* bufs, unsigned count) {
  if (closing_) return UV_ECANCELED;
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (total == 0) return 0;
  size_t written = 0;
  if (pending_ == 0) {
    int r = uv_try_write(stream(), bufs, count);
    if (r >= 0) {
      written = static_cast<size_t>(r);
      if (written == total) return 0;
    } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
      return r;
    }
  }
  // The peer is slow (or still connecting): keep what is left in one owned buffer.
  auto* req = new WriteReq;
  req->req.data = req;
  req->owner = this;
  req->data.reserve(total - written);
  size_t skip = written;
  for (unsigned i = 0; i < count; ++i) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    req->data.append(bufs[i].base + skip, bufs[i].len - skip);
    skip = 0;
  }
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  int r = uv_write(&req->req, stream(), &buf, 1, onWritten);
  if (r != 0) {
    delete req;
    return r;
  }
  pending_ += buf.len;
  return 0;
}

void StreamConn::onWritten(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  StreamConn* owner = w->owner;
  size_t len = w->data.size();
  delete w;
  owner->pending_ -= len;
  if (owner->closing_) return;
  if (status < 0) {
    owner->onWriteFailed(status);
    return;
  }
  if (owner->pending_ == 0) {
    owner->onDrained();
  } else {
    owner->onWriteProgress();
  }
}

}  // namespace tether::proxy
