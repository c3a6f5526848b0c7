#pragma once
// Private to the protocol module: each wire enum's names are one table of rows, read both ways
// by these two lookups (vocabulary.cpp, frame.cpp, worker_protocol.cpp).
#include <array>
#include <cstddef>
#include <string_view>

namespace tether::agent::control::detail {

template <typename E>
struct Named {
  E value;
  std::string_view name;
};

// The name of `value`; `fallback` for a value the table lacks (a table is written complete).
template <typename E, size_t N>
constexpr std::string_view nameOf(const std::array<Named<E>, N>& table, E value, std::string_view fallback) {
  for (const auto& row : table) {
    if (row.value == value) return row.name;
  }
  return fallback;
}

template <typename E, size_t N>
constexpr bool valueOf(const std::array<Named<E>, N>& table, std::string_view name, E& out) {
  for (const auto& row : table) {
    if (row.name == name) {
      out = row.value;
      return true;
    }
  }
  return false;
}

}  // namespace tether::agent::control::detail
