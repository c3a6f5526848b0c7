// Ready-made value checkers: each returns the phrase nginx's setters would, for the argument at
// fault; the parser adds `in "NAME" directive` and the place.
#include "storage.hpp"

namespace tether::config {
namespace {

std::string invalidValue(std::string_view arg) {
  return "invalid value \"" + std::string(arg) + "\"";
}

// A checker that applies `valid` to every argument; `detail` explains the accepted form.
template <typename Valid>
Checker everyArgument(Valid valid, std::string detail) {
  return [valid, detail = std::move(detail)](std::span<const std::string_view> args)
             -> std::optional<Problem> {
    for (size_t i = 0; i < args.size(); ++i) {
      if (!valid(args[i])) return Problem{invalidValue(args[i]), detail, i};
    }
    return std::nullopt;
  };
}

}  // namespace

Checker sizeValue() {
  return everyArgument([](std::string_view arg) { return parseSize(arg).has_value(); },
                       "it must be a size such as 512, 64k, 8m or 1g");
}

Checker durationValue() {
  return everyArgument([](std::string_view arg) { return parseDuration(arg).has_value(); },
                       "it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s");
}

Checker flagValue() {
  return everyArgument([](std::string_view arg) { return parseFlag(arg).has_value(); },
                       "it must be \"on\" or \"off\"");
}

Checker integerValue(int64_t min, int64_t max) {
  return everyArgument(
      [min, max](std::string_view arg) {
        const auto value = parseInteger(arg);
        return value && *value >= min && *value <= max;
      },
      "it must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
}

Checker modeValue() {
  return everyArgument([](std::string_view arg) { return parseMode(arg).has_value(); },
                       "it must be an octal file mode such as 0660");
}

Checker addressValue() {
  return [](std::span<const std::string_view> args) -> std::optional<Problem> {
    for (size_t i = 0; i < args.size(); ++i) {
      std::string why;
      if (!parseAddress(args[i], &why)) return Problem{invalidValue(args[i]), why, i};
    }
    return std::nullopt;
  };
}

Checker oneOf(std::vector<std::string> allowed) {
  // nginx's enum wording: it must be "a", "b" or "c"
  std::string detail = "it must be ";
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (i > 0) detail += i + 1 == allowed.size() ? " or " : ", ";
    detail += "\"" + allowed[i] + "\"";
  }
  return everyArgument(
      [allowed = std::move(allowed)](std::string_view arg) {
        for (const std::string& one : allowed) {
          if (one == arg) return true;
        }
        return false;
      },
      std::move(detail));
}

Checker sequence(std::vector<Checker> per_argument) {
  return [per_argument = std::move(per_argument)](std::span<const std::string_view> args)
             -> std::optional<Problem> {
    for (size_t i = 0; i < args.size() && i < per_argument.size(); ++i) {
      if (!per_argument[i]) continue;
      if (auto problem = per_argument[i](args.subspan(i, 1))) {
        problem->arg = i;
        return problem;
      }
    }
    return std::nullopt;
  };
}

Checker tcpKeepaliveValue() {
  auto triple = sequence({durationValue(), durationValue(), integerValue(1, 127)});
  return [triple](std::span<const std::string_view> args) -> std::optional<Problem> {
    if (args.size() == 1 && args[0] == "off") return std::nullopt;
    if (args.size() != 3) {
      return Problem{"invalid value \"" + std::string(args[0]) + "\"", "it must be \"off\" or IDLE INTERVAL COUNT", 0};
    }
    return triple(args);
  };
}

}  // namespace tether::config
