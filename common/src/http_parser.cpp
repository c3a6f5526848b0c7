#include "tether/common/http_parser.hpp"

#include "tether/common/clock.hpp"

namespace tether::http {
namespace {

RequestParser& self(llhttp_t* p) { return *static_cast<RequestParser*>(p->data); }

// Request line and header line overhead beyond the bytes the callbacks see: "GET  HTTP/1.1\r\n"
// and ": \r\n" per header. Approximate, which is all a size limit needs.
constexpr size_t kRequestLineOverhead = 16;
constexpr size_t kHeaderLineOverhead = 4;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

RequestParser::RequestParser(ParserLimits limits) : limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &RequestParser::onMessageBegin;
  settings_.on_url = &RequestParser::onUrl;
  settings_.on_header_field = &RequestParser::onHeaderField;
  settings_.on_header_field_complete = &RequestParser::onHeaderFieldComplete;
  settings_.on_header_value = &RequestParser::onHeaderValue;
  settings_.on_header_value_complete = &RequestParser::onHeaderValueComplete;
  settings_.on_headers_complete = &RequestParser::onHeadersComplete;
  settings_.on_body = &RequestParser::onBody;
  settings_.on_message_complete = &RequestParser::onMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
  // Strict parsing is what keeps request smuggling out (RFC 9112 section 6.3, 11.2): llhttp's
  // defaults are strict already; say so explicitly so that a later default cannot loosen us.
  llhttp_set_lenient_headers(&parser_, 0);
  llhttp_set_lenient_chunked_length(&parser_, 0);
  llhttp_set_lenient_keep_alive(&parser_, 0);
  llhttp_set_lenient_transfer_encoding(&parser_, 0);
}

RequestParser::Result RequestParser::feed(std::string_view data) {
  Result result;
  if (error_status_ != 0) {
    result.status = Status::Error;
    return result;
  }
  if (complete_) {
    result.status = Status::Complete;
    return result;
  }
  if (!scanHead(data)) {
    result.status = Status::Error;
    return result;
  }
  const llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) {
    result.consumed = data.size();
    return result;
  }
  if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && complete_) {
    const char* pos = llhttp_get_error_pos(&parser_);
    result.consumed = pos != nullptr ? static_cast<size_t>(pos - data.data()) : data.size();
    result.status = Status::Complete;
    return result;
  }
  if (error_status_ == 0) {
    // llhttp's own refusal: a malformed request line, header or chunk, CL with TE, a repeated
    // Content-Length, a bad character (NUL, bare CR, obs-fold).
    error_status_ = 400;
    error_reason_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
  }
  result.status = Status::Error;
  return result;
}

RequestParser::Status RequestParser::finish() {
  if (error_status_ != 0) return Status::Error;
  if (complete_) return Status::Complete;
  if (started_) {
    fail(400, "connection closed in the middle of a request");
    return Status::Error;
  }
  return Status::NeedMore;
}

Request RequestParser::takeRequest() { return std::move(request_); }

void RequestParser::reset() {
  llhttp_reset(&parser_);
  request_ = Request{};
  in_field_ = false;
  head_bytes_ = 0;
  started_ = head_complete_ = complete_ = continue_wanted_ = upgrade_ = false;
  error_status_ = 0;
  error_reason_.clear();
  scan_ = Scan::BeforeRequest;
}

// llhttp 8.1 accepts obs-fold (a header line starting with SP or HT) even with every lenient
// flag off, joining it into the value. RFC 9112 section 5.2 lets a server reject it with 400, and
// in front of other parsers that is the only safe reading, so the head's line starts are checked
// here before llhttp sees the bytes. Stops at the empty line that ends the head.
bool RequestParser::scanHead(std::string_view data) {
  for (char c : data) {
    switch (scan_) {
      case Scan::BeforeRequest:
        if (c != '\r' && c != '\n') scan_ = Scan::InLine;
        break;
      case Scan::InLine:
        if (c == '\n') scan_ = Scan::LineStart;
        break;
      case Scan::LineStart:
        if (c == ' ' || c == '\t') {
          fail(400, "obsolete line folding in a header field");
          return false;
        }
        scan_ = c == '\r' ? Scan::LineStartCr : c == '\n' ? Scan::Done : Scan::InLine;
        break;
      case Scan::LineStartCr:
        scan_ = c == '\n' ? Scan::Done : Scan::InLine;
        break;
      case Scan::Done:
        return true;
    }
  }
  return true;
}

bool RequestParser::takeContinueWanted() {
  const bool wanted = continue_wanted_;
  continue_wanted_ = false;
  return wanted;
}

int RequestParser::fail(int status, std::string reason) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = std::move(reason);
  }
  return -1;
}

bool RequestParser::addHeadBytes(size_t n) {
  head_bytes_ += n;
  return head_bytes_ <= limits_.max_header_size;
}

int RequestParser::onMessageBegin(llhttp_t* p) {
  RequestParser& s = self(p);
  s.started_ = true;
  s.request_.received_ns = monotonicNs();
  s.head_bytes_ = kRequestLineOverhead;
  return 0;
}

int RequestParser::onUrl(llhttp_t* p, const char* at, size_t len) {
  RequestParser& s = self(p);
  if (!s.addHeadBytes(len)) return s.fail(431, "request line too long");
  s.request_.target.append(at, len);
  return 0;
}

int RequestParser::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  RequestParser& s = self(p);
  if (!s.addHeadBytes(len)) return s.fail(431, "request header fields too large");
  if (s.head_complete_) return 0;  // trailer fields of a chunked body: not kept
  auto& headers = s.request_.headers;
  if (!s.in_field_) {
    if (headers.size() >= s.limits_.max_headers) return s.fail(431, "too many header fields");
    headers.emplace_back();
    s.head_bytes_ += kHeaderLineOverhead;
    s.in_field_ = true;
  }
  headers.back().name.append(at, len);
  return 0;
}

int RequestParser::onHeaderFieldComplete(llhttp_t* p) {
  // Field names may arrive in pieces across reads; the next field callback starts a new header.
  self(p).in_field_ = false;
  return 0;
}

int RequestParser::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  RequestParser& s = self(p);
  if (!s.addHeadBytes(len)) return s.fail(431, "request header fields too large");
  if (s.head_complete_ || s.request_.headers.empty()) return 0;
  s.request_.headers.back().value.append(at, len);
  return 0;
}

int RequestParser::onHeaderValueComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  if (s.head_complete_ || s.request_.headers.empty()) return 0;
  std::string& value = s.request_.headers.back().value;
  const std::string_view trimmed = trim(value);
  if (trimmed.size() != value.size()) value = std::string(trimmed);
  return 0;
}

int RequestParser::onHeadersComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  r.version_major = llhttp_get_http_major(p);
  r.version_minor = llhttp_get_http_minor(p);
  if (r.version_major != 1 || r.version_minor > 1) {
    return s.fail(505, "HTTP version not supported");
  }
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  const size_t q = r.target.find('?');
  r.path = r.target.substr(0, q);
  r.query = q == std::string::npos ? std::string() : r.target.substr(q + 1);
  if (r.version_minor == 1 && r.header("Host") == nullptr) {
    // RFC 9112 section 3.2: a server MUST respond 400 to an HTTP/1.1 request without Host.
    return s.fail(400, "missing Host header");
  }
  if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > s.limits_.max_body_size) {
    return s.fail(413, "request body too large");
  }
  s.head_complete_ = true;
  s.upgrade_ = p->upgrade != 0 || r.method == "CONNECT";
  if (const std::string* expect = r.header("Expect"); expect != nullptr) {
    if (!iequals(*expect, "100-continue")) return s.fail(417, "unsupported expectation");
    s.continue_wanted_ = true;
  }
  return 0;
}

int RequestParser::onBody(llhttp_t* p, const char* at, size_t len) {
  RequestParser& s = self(p);
  if (s.request_.body.size() + len > s.limits_.max_body_size) {
    return s.fail(413, "request body too large");
  }
  s.request_.body.append(at, len);
  return 0;
}

int RequestParser::onMessageComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  s.request_.keep_alive = llhttp_should_keep_alive(p) != 0 && !s.upgrade_;
  s.complete_ = true;
  s.continue_wanted_ = false;
  // Stop right after this request: the caller answers it before the next one is parsed, so that
  // pipelined requests are answered in order and their bytes wait in the caller's buffer.
  return HPE_PAUSED;
}

}  // namespace tether::http
