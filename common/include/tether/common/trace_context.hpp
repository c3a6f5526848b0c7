#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header
// "00-<trace-id 32 hex>-<parent-id 16 hex>-<flags 2 hex>". tether takes part in a trace as a
// hop: the proxy passes the trace on with a parent id of its own, and every daemon logs the
// trace id beside the request id, so one trace id follows a request to the worker's exit.
#include <optional>
#include <string>
#include <string_view>

namespace tether::trace {

struct TraceParent {
  std::string trace_id;   // 32 lowercase hex, not all zero
  std::string parent_id;  // 16 lowercase hex, not all zero
  std::string flags;      // 2 lowercase hex
};

// Parses a traceparent value as section 4.3 of the recommendation asks: version 00 exactly as
// specified; a higher version (not ff) by its first four fields, ignoring what follows a dash
// after them; anything else, including upper-case hex and all-zero ids, is invalid.
std::optional<TraceParent> parse(std::string_view value);

// The trace id of a request's `traceparent` header (null: absent), "" when absent or malformed:
// a daemon that is a hop of the trace logs it and keeps it in the job's record.
std::string traceIdOf(const std::string* traceparent);

// "00-TRACE-PARENT-FLAGS".
std::string format(const TraceParent& parent);

// A fresh parent (span) id and a fresh trace id, from getrandom(2).
std::string newParentId();
std::string newTraceId();

// True for a trace id as the proxy logs it and sends it in cancel frames: 32 lowercase hex,
// not all zero. Daemons accept only this form from the wire.
bool isTraceId(std::string_view id);

}  // namespace tether::trace
