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

StreamConn::StreamConn(Context& ctx, bool unix_socket)
    : ctx_(ctx), stream_(ctx.loop, unix_socket ? uv::StreamKind::Pipe : uv::StreamKind::Tcp, *this) {
  stream_.setReadBuffer(ctx.read_buf, sizeof ctx.read_buf);
}

StreamConn::~StreamConn() = default;

int StreamConn::connectTo(const config::Address& address, const sockaddr_storage& addr) {
  if (address.kind == config::Address::Kind::Unix) return stream_.connect(address.path.c_str());
  return stream_.connect(reinterpret_cast<const sockaddr*>(&addr));
}

void StreamConn::closeStream() {
  if (closing_) return;
  closing_ = true;
  stream_.close();  // onClosed() frees this, after every callback of the stream
}

void StreamConn::readStart() {
  if (!closing_) stream_.readStart();
}

}  // namespace tether::proxy
