// The access log format engine (log_format.hpp). Variables and escapes follow nginx's
// ngx_http_log_module: an unset variable is `-` (an empty string with escape=json), and the
// request's own bytes are escaped so that a client cannot forge or break a line.
#include "tether/proxy/log_format.hpp"

#include <array>
#include <charconv>
#include <cstdio>

namespace tether::proxy {

enum class LogFormat::Var : uint8_t {
  RemoteAddr, RemoteUser, TimeLocal, TimeIso8601, Msec, Request, RequestMethod, RequestUri,
  ServerProtocol, Status, BodyBytesSent, RequestTime, UpstreamResponseTime, UpstreamAddr,
  RequestId, TraceId, HttpHeader, DisconnectPhase, DisconnectCause, CancelAction, CancelOutcome,
  // The optional tails of the `tether` format: " rid_replaced=invalid", " upstream=ADDR",
  // " phase=P cause=C", " trace=ID", or nothing at all (never `-`), so that its line stays
  // what it was before log_format existed.
  TetherRidReplaced, TetherUpstream, TetherDisconnect, TetherTrace,
};

namespace {

using Var = LogFormat::Var;

std::string_view protocolName(const AccessRecord& r) {
  if (r.http_major == 2) return "HTTP/2.0";
  return r.http_minor >= 1 ? "HTTP/1.1" : "HTTP/1.0";
}

struct VarRow {
  std::string_view name;
  Var var;
};

constexpr std::array kVars = {
    VarRow{"remote_addr", Var::RemoteAddr},
    VarRow{"remote_user", Var::RemoteUser},
    VarRow{"time_local", Var::TimeLocal},
    VarRow{"time_iso8601", Var::TimeIso8601},
    VarRow{"msec", Var::Msec},
    VarRow{"request", Var::Request},
    VarRow{"request_method", Var::RequestMethod},
    VarRow{"request_uri", Var::RequestUri},
    VarRow{"server_protocol", Var::ServerProtocol},
    VarRow{"status", Var::Status},
    VarRow{"body_bytes_sent", Var::BodyBytesSent},
    VarRow{"request_time", Var::RequestTime},
    VarRow{"upstream_response_time", Var::UpstreamResponseTime},
    VarRow{"upstream_addr", Var::UpstreamAddr},
    VarRow{"request_id", Var::RequestId},
    VarRow{"trace_id", Var::TraceId},
    VarRow{"disconnect_phase", Var::DisconnectPhase},
    VarRow{"disconnect_cause", Var::DisconnectCause},
    VarRow{"cancel_action", Var::CancelAction},
    VarRow{"cancel_outcome", Var::CancelOutcome},
    VarRow{"tether_rid_replaced", Var::TetherRidReplaced},
    VarRow{"tether_upstream", Var::TetherUpstream},
    VarRow{"tether_disconnect", Var::TetherDisconnect},
    VarRow{"tether_trace", Var::TetherTrace},
};

constexpr std::string_view kTetherText =
    "$remote_addr - - [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" "
    "\"$http_user_agent\" rid=$request_id$tether_rid_replaced rt=$request_time urt=$upstream_response_time"
    "$tether_upstream$tether_disconnect$tether_trace";
constexpr std::string_view kCombinedText =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
    "\"$http_referer\" \"$http_user_agent\"";

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

constexpr char kHex[] = "0123456789abcdef";
constexpr char kUpperHex[] = "0123456789ABCDEF";  // nginx's \xXX in the default escape

// The length of the UTF-8 sequence starting at s[i] (RFC 3629 section 4: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 if it is not one.
size_t utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
  unsigned char c = byte(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && byte(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && byte(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && byte(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && byte(i + 1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

void appendEscaped(std::string& out, std::string_view value, LogEscape escape) {
  switch (escape) {
    case LogEscape::None:
      out.append(value);
      return;
    case LogEscape::Default:
      for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e) {
          out.append("\\x").push_back(kUpperHex[c >> 4]);
          out.push_back(kUpperHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
      }
      return;
    case LogEscape::Json:
      for (size_t i = 0; i < value.size(); ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        switch (c) {
          case '"': out.append("\\\""); continue;
          case '\\': out.append("\\\\"); continue;
          case '\n': out.append("\\n"); continue;
          case '\r': out.append("\\r"); continue;
          case '\t': out.append("\\t"); continue;
          case '\b': out.append("\\b"); continue;
          case '\f': out.append("\\f"); continue;
          default: break;
        }
        if (c >= 0x80) {
          if (size_t n = utf8Length(value, i); n != 0) {
            out.append(value.substr(i, n));
            i += n - 1;
            continue;
          }
        }
        if (c < 0x20 || c >= 0x80) {
          // RFC 8259 section 7: a control character must be escaped; a byte that is not UTF-8
          // cannot appear in JSON text at all, so it is kept as the code point of its value.
          out.append("\\u00").push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
      }
      return;
  }
}

void appendUnsigned(std::string& out, uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

void appendSeconds(std::string& out, double seconds) {
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%.3f", seconds);
  out.append(buf, static_cast<size_t>(len));
}

// strftime once per second per format shape: a busy proxy logs thousands of lines a second.
struct TimeCache {
  time_t at = -1;
  char text[64] = {};
  size_t len = 0;
};

// $time_local (nginx's "%d/%b/%Y:%H:%M:%S %z") or $time_iso8601.
std::string_view formatTime(TimeCache& cache, time_t now, bool iso8601) {
  if (cache.at != now) {
    tm t{};
    localtime_r(&now, &t);
    cache.len = iso8601 ? strftime(cache.text, sizeof cache.text, "%Y-%m-%dT%H:%M:%S%z", &t)
                        : strftime(cache.text, sizeof cache.text, "%d/%b/%Y:%H:%M:%S %z", &t);
    if (iso8601 && cache.len >= 5 && cache.len + 1 < sizeof cache.text) {
      // ISO 8601 wants +hh:mm where strftime's %z gives +hhmm.
      cache.text[cache.len + 1] = '\0';
      cache.text[cache.len] = cache.text[cache.len - 1];
      cache.text[cache.len - 1] = cache.text[cache.len - 2];
      cache.text[cache.len - 2] = ':';
      ++cache.len;
    }
    cache.at = now;
  }
  return {cache.text, cache.len};
}

const LogFormat& builtIn(std::string_view text) {
  std::string why;
  // The built-in texts name known variables only, so this cannot fail after start-up.
  static const LogFormat kTether = *LogFormat::compile(kTetherText, LogEscape::Default, why);
  static const LogFormat kCombined = *LogFormat::compile(kCombinedText, LogEscape::Default, why);
  return text == kTetherText ? kTether : kCombined;
}

}  // namespace

bool parseLogEscape(std::string_view arg, LogEscape& out) {
  if (arg == "escape=default") {
    out = LogEscape::Default;
  } else if (arg == "escape=json") {
    out = LogEscape::Json;
  } else if (arg == "escape=none") {
    out = LogEscape::None;
  } else {
    return false;
  }
  return true;
}

std::optional<LogFormat> LogFormat::compile(std::string_view text, LogEscape escape, std::string& why) {
  LogFormat format;
  format.escape_ = escape;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    format.pieces_.push_back({std::move(literal), std::nullopt, {}});
    literal.clear();
  };
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '$') {
      literal.push_back(text[i++]);
      continue;
    }
    // `$name` or `${name}` (nginx's forms; braces let a name run into a letter: `${status}x`).
    size_t start = i + 1;
    bool braced = start < text.size() && text[start] == '{';
    if (braced) ++start;
    size_t end = start;
    while (end < text.size() && isNameChar(text[end])) ++end;
    if (end == start || (braced && (end >= text.size() || text[end] != '}'))) {
      why = "invalid variable name in \"" + std::string(text.substr(i, 16)) + "\"";
      return std::nullopt;
    }
    std::string_view name = text.substr(start, end - start);
    i = braced ? end + 1 : end;
    Piece piece;
    if (name.starts_with("http_") && name.size() > 5) {
      piece.var = Var::HttpHeader;
      for (char c : name.substr(5)) piece.header.push_back(c == '_' ? '-' : c);
    } else {
      for (const VarRow& row : kVars) {
        if (row.name == name) piece.var = row.var;
      }
      if (!piece.var) {
        why = "unknown \"" + std::string(name) + "\" variable";
        return std::nullopt;
      }
    }
    flush();
    format.pieces_.push_back(std::move(piece));
  }
  flush();
  return format;
}

const LogFormat& LogFormat::tether() { return builtIn(kTetherText); }
const LogFormat& LogFormat::combined() { return builtIn(kCombinedText); }

void LogFormat::append(std::string& out, const AccessRecord& r) const {
  static thread_local TimeCache local_cache, iso_cache;
  const std::string_view unset = escape_ == LogEscape::Json ? "" : "-";
  auto text = [&](std::string_view v) {
    if (v.empty()) {
      out.append(unset);
    } else {
      appendEscaped(out, v, escape_);
    }
  };
  for (const Piece& p : pieces_) {
    if (!p.var) {
      out.append(p.literal);
      continue;
    }
    switch (*p.var) {
      case Var::RemoteAddr: text(r.remote_addr); break;
      case Var::RemoteUser: text({}); break;
      case Var::TimeLocal: out.append(formatTime(local_cache, r.now, false)); break;
      case Var::TimeIso8601: out.append(formatTime(iso_cache, r.now, true)); break;
      case Var::Msec: {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%lld.%03ld", static_cast<long long>(ts.tv_sec), ts.tv_nsec / 1000000);
        out.append(buf, static_cast<size_t>(len));
        break;
      }
      case Var::Request:
        if (r.method.empty()) {
          text({});
        } else {
          appendEscaped(out, r.method, escape_);
          out.push_back(' ');
          appendEscaped(out, r.uri, escape_);
          out.push_back(' ');
          out.append(protocolName(r));
        }
        break;
      case Var::RequestMethod: text(r.method); break;
      case Var::RequestUri: text(r.uri); break;
      case Var::ServerProtocol:
        text(r.method.empty() ? std::string_view{} : protocolName(r));
        break;
      case Var::Status: {
        // nginx's three digits ("000" before any status), except in JSON, where a number may not
        // start with 0 and `"status":$status` must stay a number.
        char buf[8];
        int len = escape_ == LogEscape::Json ? snprintf(buf, sizeof buf, "%u", static_cast<unsigned>(r.status))
                                              : snprintf(buf, sizeof buf, "%03u", static_cast<unsigned>(r.status));
        out.append(buf, static_cast<size_t>(len));
        break;
      }
      case Var::BodyBytesSent: appendUnsigned(out, r.body_bytes_sent); break;
      case Var::RequestTime: appendSeconds(out, r.request_time); break;
      case Var::UpstreamResponseTime:
        if (r.upstream_response_time) {
          appendSeconds(out, *r.upstream_response_time);
        } else {
          text({});
        }
        break;
      case Var::UpstreamAddr: text(r.upstream_addr); break;
      case Var::RequestId: text(r.request_id); break;
      case Var::TraceId: text(r.trace_id); break;
      case Var::HttpHeader: {
        std::string_view value;
        if (r.header != nullptr && r.header(r.header_source, p.header, value)) {
          // A header present but empty is logged as empty (nginx does the same).
          appendEscaped(out, value, escape_);
        } else {
          text({});
        }
        break;
      }
      case Var::DisconnectPhase: text(r.disconnect_phase); break;
      case Var::DisconnectCause: text(r.disconnect_cause); break;
      case Var::CancelAction: text(r.cancel_action); break;
      case Var::CancelOutcome: text(r.cancel_outcome); break;
      case Var::TetherRidReplaced:
        if (r.request_id_replaced) out.append(" rid_replaced=invalid");
        break;
      case Var::TetherUpstream:
        if (!r.upstream_addr.empty()) {
          out.append(" upstream=");
          appendEscaped(out, r.upstream_addr, escape_);
        }
        break;
      case Var::TetherDisconnect:
        if (!r.disconnect_phase.empty()) {
          out.append(" phase=").append(r.disconnect_phase);
          out.append(" cause=").append(r.disconnect_cause);
        }
        break;
      case Var::TetherTrace:
        if (!r.trace_id.empty()) out.append(" trace=").append(r.trace_id);
        break;
    }
  }
  out.push_back('\n');
}

}  // namespace tether::proxy
