#pragma once
// The access log's formats (`log_format NAME [escape=default|json|none] STRING;`, nginx's
// directive): a format is compiled once at load into literal pieces and variable getters, so
// writing a line is appends only, no parsing per request. The proxy fills an AccessRecord from
// its request and a format turns it into one line.
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::proxy {

enum class LogEscape {
  Default,  // nginx's: `"`, `\` and bytes outside 0x20..0x7e as \xXX
  Json,     // a JSON string's content: \" \\ \n ..., other control bytes and bytes that are not
            // UTF-8 as \u00XX, so that every line of a JSON format parses as JSON
  None,     // as received
};

// The facts of one finished request a format can show. Views into the request's own memory,
// valid during LogFormat::append() only. An empty view is an unset variable: `-` in the default
// and none escapes (as nginx), an empty string in json.
struct AccessRecord {
  std::string_view remote_addr;
  std::string_view method;  // empty: the request line never arrived
  std::string_view uri;
  uint8_t http_major = 1;  // 2: HTTP/2.0
  uint8_t http_minor = 1;
  uint16_t status = 0;
  uint64_t body_bytes_sent = 0;
  double request_time = 0;                      // seconds
  std::optional<double> upstream_response_time;  // seconds; unset when no upstream answered
  std::string_view upstream_addr;
  std::string_view request_id;
  bool request_id_replaced = false;  // a trusted id broke the rule: request_id was generated
  std::string_view trace_id;  // W3C trace-id (32 hex) or empty
  std::string_view disconnect_phase, disconnect_cause;  // set for a 499
  std::string_view cancel_action, cancel_outcome;       // set when a cancel frame was sent
  // $http_NAME: the first request header of that name (case-insensitive); false if absent.
  bool (*header)(const void* source, std::string_view name, std::string_view& value) = nullptr;
  const void* header_source = nullptr;
  time_t now = 0;
};

class LogFormat {
 public:
  // Compiles `text`; on error returns nullopt and sets `why` to nginx's phrase
  // ("unknown \"foo\" variable").
  static std::optional<LogFormat> compile(std::string_view text, LogEscape escape, std::string& why);
  // The built-in `tether` format: nginx's combined line plus rid=, rt=, urt= and, when they
  // apply, rid_replaced=invalid (after rid=), upstream=, phase= cause= and trace=.
  static const LogFormat& tether();
  // nginx's `combined`, predefined there too.
  static const LogFormat& combined();

  // Appends one line (with its newline) to `out`.
  void append(std::string& out, const AccessRecord& record) const;
  LogEscape escape() const { return escape_; }

  enum class Var : uint8_t;

 private:
  struct Piece {
    std::string literal;  // when var is unset
    std::optional<Var> var;
    std::string header;  // for $http_NAME: NAME with `_` as `-`
  };
  std::vector<Piece> pieces_;
  LogEscape escape_ = LogEscape::Default;
};

// Parses the escape= argument of log_format ("escape=json"); false if unknown.
bool parseLogEscape(std::string_view arg, LogEscape& out);

}  // namespace tether::proxy
