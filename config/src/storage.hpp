#pragma once
// What a Config owns: its schema, every file's text, the unescaped arguments and the tree.
// Internal to tether_config.
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tether/config/config.hpp"

namespace tether::config {

struct Storage {
  explicit Storage(const Schema& copy);
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // The row for `name` in `context`, or null; `any_context` says whether `name` exists at all.
  const DirectiveSpec* lookup(std::string_view context, std::string_view name,
                              bool* any_context = nullptr) const;
  const std::vector<std::string_view>& defaults(const DirectiveSpec* spec) const;

  Schema schema;
  std::unordered_map<std::string_view, std::vector<const DirectiveSpec*>> by_name;
  std::unordered_map<const DirectiveSpec*, std::vector<std::string_view>> default_args;
  // deques: elements never move, so string_views into them stay valid as they grow.
  std::deque<std::string> file_names;
  std::deque<std::string> texts;
  std::deque<std::string> strings;
  std::vector<std::string_view> file_order;
  Block root;
};

// Splits a default value into words at blanks (defaults are written without quotes).
std::vector<std::string_view> splitWords(std::string_view text);

// Whether an argument must be quoted to be read back as one word, and its quoted form.
bool needsQuotes(std::string_view arg);
std::string quote(std::string_view arg);

}  // namespace tether::config
