#pragma once
// The value forms of the configuration language (nginx's, see ngx_parse_size/ngx_parse_time):
// sizes `512`, `64k`, `8m`, `1g`; durations `250ms`, `10s`, `5m`, `1h`, `1d`, `1w` and sums in
// descending order like `1m30s` (a bare number is seconds); flags `on|off`; integers.
// Every parser detects overflow and returns nullopt for it, as for any malformed text.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::config {

// Bytes; suffixes k/K, m/M, g/G are powers of 1024. At most INT64_MAX bytes.
std::optional<uint64_t> parseSize(std::string_view text);

// Milliseconds; units ms, s, m, h, d, w (bare number = seconds). At most INT64_MAX ms.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

// `on` or `off`, lower case as nginx.
std::optional<bool> parseFlag(std::string_view text);

// A decimal integer with an optional leading '-', in int64 range.
std::optional<int64_t> parseInteger(std::string_view text);

// An octal file mode such as `0660` or `660`, at most 07777.
std::optional<uint32_t> parseMode(std::string_view text);

}  // namespace tether::config
