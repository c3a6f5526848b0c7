#pragma once
// Request ids (DESIGN.md "Request identity"): the one rule that the proxy, solverd, tether-agent
// and tether-run apply to an id they are given, and the form of the ids they make.
//
// Accepted: 1 to 128 bytes, each visible ASCII (0x21 to 0x7E) except `"`, `'` and `\`. That
// takes what real balancers send (UUIDs from Envoy and Istio, nginx's 32-hex $request_id, an AWS
// load balancer's `Root=1-...`, W3C trace ids) and keeps out what would break a header, a log
// line or a JSON string. Such ids may hold `/`, `=`, `%` or `;`: nothing is named by the raw id
// (job cgroups are named by a hash, URLs percent-encode it).
//
// Made: 32 lowercase hex digits from 128 random bits of the kernel's CSPRNG (getrandom), since
// the id is the only handle on a job and must be unguessable.
#include <cstddef>
#include <string>
#include <string_view>

namespace tether::agent::control {

inline constexpr size_t kMaxRequestIdLength = 128;

// True when `id` follows the rule above.
bool isValidRequestId(std::string_view id);

// A fresh id. Crashes only if getrandom(2) itself fails, which after start-up "should never
// happen" (the kernel's pool is initialized before any daemon runs).
std::string newRequestId();

// 2 * nbytes lowercase hex digits from nbytes (at most 16) random bytes of the same pool as
// newRequestId: the proxy's W3C trace and parent ids (common/trace_context) are made per request
// too, so they share its one getrandom(2) call per 4 KiB.
std::string randomHex(size_t nbytes);

// The cancel and register frames' optional `trace_id` (issue 18): a W3C trace id, 32 lowercase
// hex digits, not all zero (Trace Context section 3.2.2.3). Daemons accept only this form from
// the wire and drop any other value rather than refuse the frame it came with.
bool isValidTraceId(std::string_view id);

// The id of a request: `given` when it is present and valid, else a fresh one. `replaced` is
// set when a value was given but broke the rule (callers log it: the access log says so).
struct RequestId {
  std::string id;
  bool replaced = false;
};
RequestId acceptRequestId(const std::string_view* given);

// Job routes (DESIGN.md "Several hosts"): solverd's `route NAME;` ends the id of every job it
// accepts with ".NAME", and tether-proxy's `server ADDRESS route=NAME;` sends /v1/jobs/ID to the
// server of the upstream whose route ends ID, never to another (which would answer 404). nginx's
// sticky route reads a route from the same place, the end of a session id after a dot.
// A route: 1 to 32 bytes of letters, digits, `-` and `_`.
inline constexpr size_t kMaxRouteLength = 32;
bool isValidRoute(std::string_view route);
// "ID.ROUTE"; a fresh id stands in for one too long to carry the route within the rule.
std::string routedId(std::string_view id, std::string_view route);
// The route that ends `id`, "" when none does (no dot, or not a route after the last one).
std::string_view routeOf(std::string_view id);

// `id` with every byte outside RFC 3986 "unreserved" percent-encoded, for a URL path segment
// or a Location header (section 2.1; `/`, `=`, `%` of a trusted id must not change the path).
std::string percentEncodeId(std::string_view id);

}  // namespace tether::agent::control
