// Block's typed accessors and the Storage they read defaults from.
#include <stdexcept>

#include "storage.hpp"

namespace tether::config {

Storage::Storage(const Schema& copy) : schema(copy) {
  for (const DirectiveSpec& spec : schema.directives) {
    by_name[spec.name].push_back(&spec);
    default_args[&spec] = splitWords(spec.default_value);
  }
  root.context_ = kMain;
  root.storage_ = this;
}

const DirectiveSpec* Storage::lookup(std::string_view context, std::string_view name,
                                     bool* any_context) const {
  const auto it = by_name.find(name);
  if (any_context != nullptr) *any_context = it != by_name.end();
  if (it == by_name.end()) return nullptr;
  for (const DirectiveSpec* spec : it->second) {
    for (const std::string& allowed : spec->contexts) {
      if (allowed == context) return spec;
    }
  }
  return nullptr;
}

const std::vector<std::string_view>& Storage::defaults(const DirectiveSpec* spec) const {
  return default_args.at(spec);
}

std::vector<std::string_view> splitWords(std::string_view text) {
  std::vector<std::string_view> words;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = text.find_first_not_of(" \t", pos);
    if (start == std::string_view::npos) break;
    const size_t end = std::min(text.find_first_of(" \t", start), text.size());
    words.push_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

const Directive* Block::find(std::string_view name) const {
  for (const Directive& directive : directives_) {
    if (directive.name == name) return &directive;
  }
  return nullptr;
}

std::vector<const Directive*> Block::all(std::string_view name) const {
  std::vector<const Directive*> found;
  for (const Directive& directive : directives_) {
    if (directive.name == name) found.push_back(&directive);
  }
  return found;
}

std::vector<std::string_view> Block::args(std::string_view name) const {
  if (const Directive* directive = find(name)) return directive->args;
  const DirectiveSpec* spec = storage_ == nullptr ? nullptr : storage_->lookup(context_, name);
  if (spec == nullptr) return {};
  return storage_->defaults(spec);
}

namespace {

[[noreturn]] void misuse(std::string_view context, std::string_view name, size_t index,
                         std::string_view what) {
  throw std::logic_error("configuration accessor misused: argument " + std::to_string(index) +
                         " of \"" + std::string(name) + "\" in " + std::string(context) + " " +
                         std::string(what));
}

template <typename T>
T must(const std::optional<T>& value, std::string_view context, std::string_view name,
       size_t index) {
  if (!value) misuse(context, name, index, "is not of the type asked for");
  return *value;
}

}  // namespace

std::string_view Block::value(std::string_view name, size_t index) const {
  const Directive* directive = find(name);
  if (directive != nullptr && index < directive->args.size()) return directive->args[index];
  // An absent directive, or an optional argument left out, takes the default's argument.
  const DirectiveSpec* spec = storage_ == nullptr ? nullptr : storage_->lookup(context_, name);
  if (spec == nullptr) {
    if (directive != nullptr) misuse(context_, name, index, "is absent and has no default");
    misuse(context_, name, index, "is not a directive of this block");
  }
  const auto& defaults = storage_->defaults(spec);
  if (index >= defaults.size()) misuse(context_, name, index, "is absent and has no default");
  return defaults[index];
}

std::string_view Block::str(std::string_view name, size_t index) const {
  const Directive* directive = find(name);
  if (directive != nullptr && index < directive->args.size()) return directive->args[index];
  const DirectiveSpec* spec = storage_ == nullptr ? nullptr : storage_->lookup(context_, name);
  if (spec == nullptr) return {};
  const auto& defaults = storage_->defaults(spec);
  return index < defaults.size() ? defaults[index] : std::string_view{};
}

uint64_t Block::size(std::string_view name, size_t index) const {
  return must(parseSize(value(name, index)), context_, name, index);
}

std::chrono::milliseconds Block::duration(std::string_view name, size_t index) const {
  return must(parseDuration(value(name, index)), context_, name, index);
}

bool Block::flag(std::string_view name, size_t index) const {
  return must(parseFlag(value(name, index)), context_, name, index);
}

int64_t Block::integer(std::string_view name, size_t index) const {
  return must(parseInteger(value(name, index)), context_, name, index);
}

uint32_t Block::mode(std::string_view name, size_t index) const {
  return must(parseMode(value(name, index)), context_, name, index);
}

Address Block::address(std::string_view name, size_t index) const {
  return must(parseAddress(value(name, index)), context_, name, index);
}

std::vector<Address> Block::addresses(std::string_view name) const {
  std::vector<Address> found;
  for (const Directive* directive : all(name)) {
    if (directive->args.empty()) misuse(context_, name, 0, "is missing");
    found.push_back(must(parseAddress(directive->args[0]), context_, name, 0));
  }
  if (found.empty() && !str(name).empty()) found.push_back(address(name));
  return found;
}

const Block& Config::root() const { return storage_->root; }

const Schema& Config::schema() const { return storage_->schema; }

std::vector<std::string_view> Config::files() const { return storage_->file_order; }

}  // namespace tether::config
