#pragma once
// HTTP/1.1 request and header types shared by the HTTP server, its parser and their users.
#include "tether/agent/control/request_id.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::http {

struct Header {
  std::string name;   // as the client sent it; compare with iequals()
  std::string value;  // leading and trailing whitespace removed
};
using Headers = std::vector<Header>;

// ASCII case-insensitive comparison (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

// The first value of header `name` in `headers`, or nullptr.
const std::string* findHeader(const Headers& headers, std::string_view name);

// True if the comma-separated header value list contains `token` (case-insensitive), e.g.
// Connection: keep-alive, Upgrade.
bool headerHasToken(std::string_view value, std::string_view token);

// The reason phrase of a status code ("Not Found"); "Unknown" for codes we do not know.
std::string_view statusReason(int status);

// Decodes %XX and '+' (as a space) of an application/x-www-form-urlencoded query component.
// Returns nullopt for a malformed escape.
std::optional<std::string> percentDecode(std::string_view text, bool plus_is_space = true);

struct Request {
  std::string method;  // "GET", "POST", ... as llhttp names them
  std::string target;  // the raw request-target: "/v1/solve?solver=cbc"
  std::string path;    // the target up to '?', not decoded: "/v1/solve"
  std::string query;   // after '?', not decoded: "solver=cbc" ("" when absent)
  int version_major = 1;
  int version_minor = 1;
  Headers headers;
  std::string body;          // the whole body (Content-Length or de-chunked)
  std::string peer;          // the client: "127.0.0.1:51234", "[::1]:51234", "unix:" (as nginx's $remote_addr)
  bool keep_alive = true;    // false: HTTP/1.0 without keep-alive, or Connection: close
  uint64_t received_ns = 0;  // CLOCK_MONOTONIC (tether::monotonicNs) at the request's first byte

  const std::string* header(std::string_view name) const { return findHeader(headers, name); }
  // The decoded value of query parameter `name` (first occurrence), or nullopt.
  std::optional<std::string> queryParam(std::string_view name) const;
  // The request id (DESIGN.md "Request identity"): the value of header `header_name` when `trust`
  // is set and it follows the protocol's rule, else a fresh one (`replaced` when a trusted value
  // broke the rule). Each call without a valid header makes a new id: keep the result
  // (Exchange::requestId does).
  agent::control::RequestId requestId(std::string_view header_name = "X-Request-Id", bool trust = true) const;
};

}  // namespace tether::http
