#pragma once
// The HTTP/1.1 request parser of the HTTP server: llhttp 8.1 with every lenient flag off, plus the
// checks llhttp leaves to its user (header size and count, body size, HTTP version, obs-fold).
// Separate from the server so the fuzz target and the unit tests drive it without sockets.
//
// Feed bytes as they arrive; feed() stops right after one complete request and reports how many
// bytes it consumed, so pipelined bytes stay with the caller until the response is done.
#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "tether/common/http_request.hpp"

namespace tether::http {

struct ParserLimits {
  size_t max_header_size = 16 * 1024;  // request line + header lines; beyond: 431
  size_t max_headers = 100;            // header count; beyond: 431
  size_t max_body_size = 1024 * 1024;  // Content-Length or de-chunked bytes; beyond: 413
};

class RequestParser {
 public:
  enum class Status {
    NeedMore,  // everything consumed, the request is not complete yet
    Complete,  // a request is complete: take it with takeRequest(), then reset()
    Error,     // malformed or over a limit: answer errorStatus() and close the connection
  };
  struct Result {
    Status status = Status::NeedMore;
    size_t consumed = 0;  // bytes of `data` used; the rest belongs to the next request
  };

  explicit RequestParser(ParserLimits limits = {});
  ~RequestParser() = default;
  // llhttp keeps a pointer to our settings and `data`: the parser stays where it was made.
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  Result feed(std::string_view data);
  // The peer closed its side: completes a request whose body ends at EOF (never the case for
  // requests, RFC 9112 section 6.3) or reports an error for a partial one. Returns Error when bytes
  // of an incomplete request were seen, else NeedMore.
  Status finish();

  // After Complete: moves the request out.
  Request takeRequest();
  // Ready for the next request on the same connection.
  void reset();

  // After Error: the status to answer (400, 413, 417, 431, 505) and a short reason for the log.
  int errorStatus() const { return error_status_; }
  const std::string& errorReason() const { return error_reason_; }

  // True from a request's first byte until it is complete (for 408 versus a silent close).
  bool started() const { return started_; }
  // True once the head is complete (the request is in its body).
  bool headComplete() const { return head_complete_; }
  // True once after the head of a request carrying `Expect: 100-continue` whose body is within
  // the limit: the caller sends `100 Continue` (RFC 9110 section 10.1.1).
  bool takeContinueWanted();
  // True when the request asked to switch protocols (Upgrade) or was CONNECT: the bytes after it
  // are not HTTP/1.1 and the connection closes after the response.
  bool upgrade() const { return upgrade_; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  int fail(int status, std::string reason);
  bool scanHead(std::string_view data);
  bool addHeadBytes(size_t n);

  ParserLimits limits_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  Request request_;
  bool in_field_ = false;  // inside a header name (it may arrive in pieces)
  size_t head_bytes_ = 0;
  bool started_ = false;
  bool head_complete_ = false;
  bool complete_ = false;
  bool continue_wanted_ = false;
  bool upgrade_ = false;
  enum class Scan { BeforeRequest, InLine, LineStart, LineStartCr, Done };
  Scan scan_ = Scan::BeforeRequest;  // where scanHead() is in the head's lines
  int error_status_ = 0;
  std::string error_reason_;
};

}  // namespace tether::http
