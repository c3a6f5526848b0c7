#pragma once
// The nginx-style configuration language (DESIGN.md "Configuration language"): directives
// `name arg ...;` and blocks `name args { ... }`, `#` comments, quotes with backslash escapes,
// `include GLOB;`, and a table of directives (DirectiveSpec) that one checker applies to every
// directive, as ngx_conf_handler does. Errors carry nginx's wording and FILE:LINE:COLUMN.
//
// Lifetime: a Config owns every file it read and a copy of its Schema; Directive and Block hold
// string_views into that storage, so they are valid while any copy of the Config lives. Copying a
// Config is cheap (shared, immutable), which suits a SIGHUP reload that swaps configurations.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tether/config/address.hpp"
#include "tether/config/units.hpp"

namespace tether::config {

// A place in a configuration file. Lines and columns are 1-based; a column counts bytes from the
// start of the line (after a UTF-8 BOM on the first line). `file` points into the Config.
struct Position {
  std::string_view file;
  uint32_t line = 0;
  uint32_t column = 0;
};

// A configuration error. `message` is nginx's wording without the place, e.g.
// `unknown directive "lisen"`; `line` 0 means the error has no place in a file (the top file
// cannot be opened). Self-contained: it owns its strings.
struct Error {
  std::string message;
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string directive;  // the directive concerned, "" if none

  // `tether-proxy: [emerg] unknown directive "lisen" in /etc/tether/proxy.conf:3:5`
  std::string format(std::string_view program) const;
  // `unknown directive "lisen" in /etc/tether/proxy.conf:3:5` (no program, no level)
  std::string text() const;
};

// What a value checker reports, like the phrase an nginx setter returns. The checker names the
// argument at fault (index into the directive's arguments) so the error points at its column.
// Rendered as `PHRASE in "NAME" directive[, DETAIL]`, e.g.
// `invalid value "maybe" in "trust_request_id" directive, it must be "on" or "off"`.
struct Problem {
  std::string phrase;  // `invalid value "maybe"`
  std::string detail;  // `it must be "on" or "off"`, may be empty
  size_t arg = 0;
};

// Checks a directive's arguments (already unquoted); nullopt when they are fine.
using Checker = std::function<std::optional<Problem>(std::span<const std::string_view> args)>;

// Ready-made checkers. Each checks every argument it is given.
Checker sizeValue();
Checker durationValue();
Checker flagValue();
Checker integerValue(int64_t min, int64_t max);
Checker modeValue();
Checker addressValue();
Checker oneOf(std::vector<std::string> allowed);
// Checker i applies to argument i alone (an absent optional argument is not checked); for
// directives like `tcp_keepalive 10s 5s 3;` = sequence({durationValue(), durationValue(), integerValue(1, 127)}).
Checker sequence(std::vector<Checker> per_argument);
// `off`, or exactly IDLE INTERVAL COUNT (durations, then 1..127): `tcp_keepalive` of the proxy
// and solverd.
Checker tcpKeepaliveValue();

inline constexpr uint32_t kAnyArgs = UINT32_MAX;
inline constexpr std::string_view kMain = "main";  // the context of the top level

// One row of the directive table (nginx's ngx_command_t, without the storage offset).
struct DirectiveSpec {
  std::string name;
  std::vector<std::string> contexts;  // block names where it may appear; "main" = top level
  uint32_t min_args = 1;
  uint32_t max_args = 1;  // kAnyArgs for no limit
  bool block = false;     // takes `{ ... }`; directives inside name this one as their context
  bool multiple = false;  // may appear more than once per block, else "is duplicate"
  Checker check;          // may be empty: any arguments are fine
  std::string default_value;  // the arguments used when absent, as written in a file; "" = none
  std::string help;           // one line for -h style listings and docs/directives.md
  std::string syntax;         // the arguments for the docs, e.g. "none | close | interrupt | kill"
};

// The directive table of one program. Several rows may share a name if their contexts differ
// (e.g. `listen` in main and in admin). `include` is built in and allowed everywhere.
class Config;

struct Schema {
  std::string program;  // "tether-proxy"
  std::vector<DirectiveSpec> directives;
  // Optional: the program's checks across directives (e.g. `proxy_pass` naming an upstream that
  // exists), run by load()/loadString() after the table's checks pass, so that -t, -T, start-up
  // and SIGHUP all report them the same way. Returns the first problem, placed with errorAt().
  std::function<std::optional<Error>(const Config&)> validate = nullptr;
};

class Block;
struct Storage;  // a Config's files, strings and schema (internal)

struct Directive {
  std::string_view name;
  std::vector<std::string_view> args;  // unquoted, unescaped
  Position pos;                        // of the name's first character
  std::vector<Position> arg_pos;       // one per argument
  std::unique_ptr<Block> block;        // set iff the directive takes a block
  const DirectiveSpec* spec = nullptr;
};

// A block's directives in file order. The typed accessors read argument `index` of the first
// occurrence of `name`, or of the schema default when the directive is absent; they were checked
// at load time, so asking for a directive the schema does not define here, or reading a value in
// a form its checker does not guarantee, is a programming error and throws std::logic_error.
class Block {
 public:
  std::string_view context() const { return context_; }  // "main", "server", ...
  const std::vector<Directive>& directives() const { return directives_; }

  const Directive* find(std::string_view name) const;                 // first occurrence or null
  std::vector<const Directive*> all(std::string_view name) const;     // every occurrence
  bool has(std::string_view name) const { return find(name) != nullptr; }

  // The arguments of the first occurrence, else of the default (split like a file); empty if
  // neither exists.
  std::vector<std::string_view> args(std::string_view name) const;
  std::string_view str(std::string_view name, size_t index = 0) const;
  uint64_t size(std::string_view name, size_t index = 0) const;
  std::chrono::milliseconds duration(std::string_view name, size_t index = 0) const;
  bool flag(std::string_view name, size_t index = 0) const;
  int64_t integer(std::string_view name, size_t index = 0) const;
  uint32_t mode(std::string_view name, size_t index = 0) const;
  Address address(std::string_view name, size_t index = 0) const;
  // The first argument of every occurrence as an address, or the default's if there is none
  // (e.g. every `listen`).
  std::vector<Address> addresses(std::string_view name) const;

 private:
  friend class Parser;
  friend struct Storage;
  std::string_view value(std::string_view name, size_t index) const;
  std::string_view context_;
  std::vector<Directive> directives_;
  const Storage* storage_ = nullptr;
};

class Config {
 public:
  const Block& root() const;
  const Schema& schema() const;
  // Every file read, in the order first read (the top file first, then includes).
  std::vector<std::string_view> files() const;

 private:
  friend class Parser;
  friend class LoadResult;
  explicit Config(std::shared_ptr<const Storage> storage) : storage_(std::move(storage)) {}
  std::shared_ptr<const Storage> storage_;
};

class LoadResult {
 public:
  LoadResult(Config config) : value_(std::move(config)) {}  // NOLINT: implicit by design
  LoadResult(Error error) : value_(std::move(error)) {}     // NOLINT
  bool ok() const { return value_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Config& config() const { return std::get<Config>(value_); }
  const Error& error() const { return std::get<Error>(value_); }

 private:
  std::variant<Config, Error> value_;
};

struct LoadOptions {
  bool allow_include = true;   // off for the fuzzer: no file system access
  uint32_t max_depth = 32;     // nesting of blocks and includes together
  uint32_t max_includes = 1024;  // files read by one load, so a glob cannot run away
};

// Reads and checks `path`. Relative includes resolve against the including file's directory.
LoadResult load(const std::string& path, const Schema& schema, const LoadOptions& options = {});
// Parses `text` as if it were the file `name` (used in errors and to resolve includes).
LoadResult loadString(std::string_view text, std::string_view name, const Schema& schema,
                      const LoadOptions& options = {});

// The effective configuration for -T: every directive as written, quoted where needed, plus each
// absent directive that has a default, marked `# default`.
std::string dump(const Config& config);

// The directive reference (docs/directives.md) for one program's schema.
std::string referenceMarkdown(const Schema& schema);
// The same reference as roff (one `.SS` section for the program), for tether.conf(5).
std::string referenceRoff(const Schema& schema);

// An Error placed at a directive (or at one of its arguments), for checks a daemon makes after
// loading (e.g. `proxy_pass` naming an upstream that does not exist).
Error errorAt(const Directive& directive, std::string message, std::optional<size_t> arg = {});

}  // namespace tether::config
