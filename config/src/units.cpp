#include "tether/config/units.hpp"

#include <limits>

namespace tether::config {
namespace {

constexpr uint64_t kMaxValue = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads the leading decimal digits of `text` into `value`, advancing `pos`. False when there are
// none or the number exceeds kMaxValue.
bool readDigits(std::string_view text, size_t& pos, uint64_t& value) {
  const size_t start = pos;
  value = 0;
  while (pos < text.size() && isDigit(text[pos])) {
    const auto digit = static_cast<uint64_t>(text[pos] - '0');
    if (value > (kMaxValue - digit) / 10) return false;
    value = value * 10 + digit;
    ++pos;
  }
  return pos > start;
}

bool multiply(uint64_t value, uint64_t factor, uint64_t& out) {
  if (factor != 0 && value > kMaxValue / factor) return false;
  out = value * factor;
  return true;
}

}  // namespace

std::optional<uint64_t> parseSize(std::string_view text) {
  size_t pos = 0;
  uint64_t value = 0;
  if (!readDigits(text, pos, value)) return std::nullopt;
  uint64_t factor = 1;
  if (pos + 1 == text.size()) {
    switch (text[pos]) {
      case 'k': case 'K': factor = uint64_t{1} << 10; break;
      case 'm': case 'M': factor = uint64_t{1} << 20; break;
      case 'g': case 'G': factor = uint64_t{1} << 30; break;
      default: return std::nullopt;
    }
  } else if (pos != text.size()) {
    return std::nullopt;
  }
  uint64_t bytes = 0;
  if (!multiply(value, factor, bytes)) return std::nullopt;
  return bytes;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  // Units from largest to smallest; a sum must use them in this order, each at most once, as
  // ngx_parse_time demands ("1m30s" yes, "30s1m" no).
  struct Unit { std::string_view suffix; uint64_t ms; };
  static constexpr Unit kUnits[] = {
      {"w", 7ULL * 24 * 3600 * 1000}, {"d", 24ULL * 3600 * 1000}, {"h", 3600ULL * 1000},
      {"m", 60ULL * 1000},            {"s", 1000},                {"ms", 1}};
  constexpr size_t kUnitCount = sizeof(kUnits) / sizeof(kUnits[0]);
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  size_t next_unit = 0;  // the smallest index still allowed
  uint64_t total = 0;
  while (pos < text.size()) {
    uint64_t value = 0;
    if (!readDigits(text, pos, value)) return std::nullopt;
    uint64_t factor = 0;
    if (pos == text.size()) {
      // A bare number is seconds, and only as the last term ("1m30" = 1m30s, as nginx).
      if (next_unit > 4) return std::nullopt;
      factor = 1000;
      next_unit = kUnitCount;
    } else {
      size_t unit = kUnitCount;
      // "ms" must be tried before "m".
      if (text.substr(pos, 2) == "ms") {
        unit = 5;
      } else {
        for (size_t i = 0; i < 5; ++i) {
          if (text[pos] == kUnits[i].suffix[0]) unit = i;
        }
      }
      if (unit == kUnitCount || unit < next_unit) return std::nullopt;
      pos += kUnits[unit].suffix.size();
      factor = kUnits[unit].ms;
      next_unit = unit + 1;
    }
    uint64_t part = 0;
    if (!multiply(value, factor, part) || part > kMaxValue - total) return std::nullopt;
    total += part;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

std::optional<bool> parseFlag(std::string_view text) {
  if (text == "on") return true;
  if (text == "off") return false;
  return std::nullopt;
}

std::optional<int64_t> parseInteger(std::string_view text) {
  const bool negative = !text.empty() && text[0] == '-';
  size_t pos = negative ? 1 : 0;
  uint64_t value = 0;
  if (!readDigits(text, pos, value) || pos != text.size()) {
    // INT64_MIN has no positive counterpart; nothing in a configuration needs it.
    return std::nullopt;
  }
  const auto signed_value = static_cast<int64_t>(value);
  return negative ? -signed_value : signed_value;
}

std::optional<uint32_t> parseMode(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
  }
  if (mode > 07777) return std::nullopt;
  return mode;
}

}  // namespace tether::config
