#include "tether/common/trace_context.hpp"

#include "tether/agent/control/request_id.hpp"

namespace tether::trace {
namespace {

bool lowerHex(std::string_view s, size_t size) {
  if (s.size() != size) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool allZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// A random id that is not all zero (the recommendation forbids that value; the chance of
// drawing it is 2^-64 or less, but the check costs nothing).
std::string nonZeroHex(size_t nbytes) {
  for (;;) {
    std::string id = agent::control::randomHex(nbytes);
    if (!allZero(id)) return id;
  }
}

}  // namespace

std::optional<TraceParent> parse(std::string_view value) {
  // Section 3.2.2: version "-" trace-id "-" parent-id "-" trace-flags, 55 characters.
  if (value.size() < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  std::string_view version = value.substr(0, 2);
  if (!lowerHex(version, 2) || version == "ff") return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append fields after a dash.
  if (version == "00" ? value.size() != 55 : value.size() > 55 && value[55] != '-') return std::nullopt;
  TraceParent p{std::string(value.substr(3, 32)), std::string(value.substr(36, 16)),
                std::string(value.substr(53, 2))};
  if (!isTraceId(p.trace_id) || !lowerHex(p.parent_id, 16) || allZero(p.parent_id) ||
      !lowerHex(p.flags, 2)) {
    return std::nullopt;
  }
  return p;
}

std::string traceIdOf(const std::string* traceparent) {
  if (traceparent == nullptr) return {};
  auto parent = parse(*traceparent);
  return parent ? std::move(parent->trace_id) : std::string{};
}

std::string format(const TraceParent& parent) {
  return "00-" + parent.trace_id + "-" + parent.parent_id + "-" + parent.flags;
}

std::string newParentId() { return nonZeroHex(8); }
std::string newTraceId() { return nonZeroHex(16); }

bool isTraceId(std::string_view id) { return agent::control::isValidTraceId(id); }

}  // namespace tether::trace
