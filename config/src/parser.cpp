// The lexer and parser: one pass over each file's text, tokens as string_views into it (only an
// argument with backslash escapes is copied), and one checker for every directive, as nginx's
// ngx_conf_parse / ngx_conf_read_token / ngx_conf_handler (src/core/ngx_conf_file.c).
#include <cctype>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "storage.hpp"

namespace tether::config {
namespace {

enum class TokenKind { Word, Semicolon, BlockStart, BlockEnd, End };

struct Token {
  TokenKind kind = TokenKind::End;
  std::string_view text;  // raw: without the quotes, escapes not yet resolved
  uint32_t line = 0;
  uint32_t column = 0;
  bool escaped = false;  // contains a backslash
};

// Characters that end an unquoted word.
constexpr std::array<bool, 256> kWordEnd = [] {
  std::array<bool, 256> table{};
  for (unsigned char c : std::string_view(" \t\r\n;{}")) table[c] = true;
  return table;
}();

bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {
    // A UTF-8 byte order mark is not part of the first line's columns.
    if (text_.starts_with("\xEF\xBB\xBF")) pos_ = line_start_ = 3;
  }

  // Reads the next token into `token`. On a lexical error returns false with `error` set to the
  // message and `token` to its place.
  bool next(Token& token, std::string& error) {
    skipBlanksAndComments();
    token.line = line_;
    token.column = column(pos_);
    token.escaped = false;
    if (pos_ >= text_.size()) {
      token.kind = TokenKind::End;
      token.text = {};
      return true;
    }
    const char c = text_[pos_];
    switch (c) {
      case ';': return single(token, TokenKind::Semicolon);
      case '{': return single(token, TokenKind::BlockStart);
      case '}': return single(token, TokenKind::BlockEnd);
      case '"':
      case '\'': return quoted(token, error);
      default: return word(token);
    }
  }

  Position endPosition() const { return {{}, line_, column(pos_)}; }

 private:
  uint32_t column(size_t pos) const { return static_cast<uint32_t>(pos - line_start_ + 1); }

  void newline(size_t pos_of_newline) {
    ++line_;
    line_start_ = pos_of_newline + 1;
  }

  void skipBlanksAndComments() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '\n') {
        newline(pos_);
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        const size_t end = text_.find('\n', pos_);
        pos_ = end == std::string_view::npos ? text_.size() : end;
      } else {
        return;
      }
    }
  }

  bool single(Token& token, TokenKind kind) {
    token.kind = kind;
    token.text = text_.substr(pos_, 1);
    ++pos_;
    return true;
  }

  bool word(Token& token) {
    const size_t start = pos_;
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '{' && placeholderAt(pos_)) {
        pos_ = text_.find('}', pos_) + 1;
        continue;
      }
      if (kWordEnd[c]) break;
      if (c == '\\') {
        token.escaped = true;
        // The escaped character never ends the word (`a\ b` is one word), except a newline,
        // which would make line numbers lie.
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] != '\n') ++pos_;
      }
      ++pos_;
    }
    token.kind = TokenKind::Word;
    token.text = text_.substr(start, pos_ - start);
    return true;
  }

  // `{name}` inside a word is a placeholder, not a block: DESIGN.md writes the agent's webhook as
  // `interrupt webhook http://127.0.0.1:8000/cancel/{id};` unquoted. nginx would end the word at
  // the `{` and then fail with a confusing "unexpected {"; a `{` that opens a block always follows
  // a blank or starts a token, so only `{` + identifier + `}` glued to a word is taken this way.
  bool placeholderAt(size_t open) const {
    size_t i = open + 1;
    while (i < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[i])) || text_[i] == '_')) ++i;
    return i > open + 1 && i < text_.size() && text_[i] == '}';
  }

  bool quoted(Token& token, std::string& error) {
    const char quote_char = text_[pos_];
    const size_t start = ++pos_;
    while (pos_ < text_.size() && text_[pos_] != quote_char) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) {
        token.escaped = true;
        ++pos_;
      }
      if (text_[pos_] == '\n') newline(pos_);
      ++pos_;
    }
    if (pos_ >= text_.size()) {
      error = std::string("unexpected end of file, expecting closing ") + quote_char;
      return false;
    }
    token.kind = TokenKind::Word;
    token.text = text_.substr(start, pos_ - start);
    ++pos_;
    // As nginx: a quoted argument must be followed by a blank, ';', '{' or '}'.
    if (pos_ < text_.size()) {
      const char after = text_[pos_];
      if (!isBlank(after) && after != ';' && after != '{' && after != '}') {
        token.line = line_;
        token.column = column(pos_);
        error = std::string("unexpected \"") + after + "\"";
        return false;
      }
    }
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t line_start_ = 0;
  uint32_t line_ = 1;
};

// nginx's escapes: \" \' \\ \t \r \n; any other backslash is kept with its character.
std::string unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 == raw.size()) {
      out += raw[i];
      continue;
    }
    const char next = raw[i + 1];
    switch (next) {
      case '"': case '\'': case '\\': out += next; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      default: out += '\\'; out += next; break;
    }
    ++i;
  }
  return out;
}

std::string errnoPhrase(int error) {
  // Appended piecewise: gcc 12's -Wrestrict misfires on `"(" + std::to_string(...)` at -O3.
  std::string phrase = "(";
  phrase += std::to_string(error);
  phrase += ": ";
  phrase += std::strerror(error);
  phrase += ")";
  return phrase;
}

// Reads a whole file. On failure returns false with nginx's phrase in `error`.
bool readFile(const std::string& path, std::string& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "open() \"" + path + "\" failed " + errnoPhrase(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  std::array<char, 65536> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "read() \"" + path + "\" failed " + errnoPhrase(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buffer.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// `"name"`, appended piecewise: gcc 12's -Wrestrict misfires on `"\"" + std::string(...)` at -O3.
std::string quotedName(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  out += name;
  out += '"';
  return out;
}

bool hasGlobChars(std::string_view pattern) {
  return pattern.find_first_of("*?[") != std::string_view::npos;
}

}  // namespace

class Parser {
 public:
  Parser(const Schema& schema, const LoadOptions& options)
      : storage_(std::make_shared<Storage>(schema)), options_(options) {}

  LoadResult run(std::string_view text, std::string_view name, bool read_from_disk) {
    if (auto bad = checkDefaults()) return std::move(*bad);
    std::string_view file = storage_->file_names.emplace_back(name);
    // The tree's string_views point into texts the Config owns, so a string is copied too.
    std::string& contents = storage_->texts.emplace_back();
    if (read_from_disk) {
      std::string why;
      if (!readFile(std::string(name), contents, why)) return Error{why, {}, 0, 0, {}};
      canonical_stack_.push_back(canonical(file));
    } else {
      contents = text;
    }
    text = contents;
    storage_->file_order.push_back(file);
    if (!parseFile(text, file, storage_->root, 0)) return std::move(error_);
    Config config(std::move(storage_));
    if (config.schema().validate) {
      if (auto problem = config.schema().validate(config)) return std::move(*problem);
    }
    return config;
  }

 private:
  // A schema whose default does not pass its own checker is a bug in the daemon; say so on the
  // first load instead of when an accessor is called.
  std::optional<Error> checkDefaults() {
    for (const DirectiveSpec& spec : storage_->schema.directives) {
      const auto& args = storage_->defaults(&spec);
      if (args.empty() || !spec.check) continue;
      if (auto problem = spec.check(args)) {
        return Error{"the default \"" + spec.default_value + "\" of \"" + spec.name +
                         "\" directive fails its check: " + problem->phrase,
                     {}, 0, 0, spec.name};
      }
    }
    return std::nullopt;
  }

  static std::string canonical(std::string_view path) {
    std::error_code ec;
    auto resolved = std::filesystem::weakly_canonical(std::filesystem::path(path), ec);
    return ec ? std::string(path) : resolved.string();
  }

  bool fail(std::string message, std::string_view file, uint32_t line, uint32_t column,
            std::string_view directive = {}) {
    error_ = Error{std::move(message), std::string(file), line, column, std::string(directive)};
    return false;
  }

  bool failAt(std::string message, const Position& pos, std::string_view directive) {
    return fail(std::move(message), pos.file, pos.line, pos.column, directive);
  }

  bool parseFile(std::string_view text, std::string_view file, Block& block, uint32_t depth) {
    Lexer lexer(text);
    return parseBlock(lexer, file, block, depth, nullptr);
  }

  // Parses directives into `block` until its closing '}' (`opener` is the directive that opened
  // it) or, for a file's top level (`opener` null), until the end of the file.
  bool parseBlock(Lexer& lexer, std::string_view file, Block& block, uint32_t depth,
                  const Directive* opener) {
    Token token;
    std::string lex_error;
    std::vector<Token> words;
    for (;;) {
      if (!lexer.next(token, lex_error)) return fail(lex_error, file, token.line, token.column);
      switch (token.kind) {
        case TokenKind::Word:
          words.push_back(token);
          continue;
        case TokenKind::Semicolon:
        case TokenKind::BlockStart:
          if (words.empty()) {
            return fail(std::string("unexpected \"") + token.text[0] + "\"", file, token.line,
                        token.column);
          }
          if (!directive(lexer, file, block, depth, words, token.kind == TokenKind::BlockStart)) {
            return false;
          }
          words.clear();
          continue;
        case TokenKind::BlockEnd:
          if (!words.empty() || opener == nullptr) {
            return fail("unexpected \"}\"", file, token.line, token.column,
                        words.empty() ? std::string_view{} : words[0].text);
          }
          return true;
        case TokenKind::End:
          if (!words.empty()) {
            return fail("unexpected end of file, expecting \";\" or \"}\"", file, token.line,
                        token.column, words[0].text);
          }
          if (opener != nullptr) {
            return fail("unexpected end of file, expecting \"}\"", file, token.line, token.column,
                        opener->name);
          }
          return true;
      }
    }
  }

  std::string_view argText(const Token& token) {
    if (!token.escaped) return token.text;
    return storage_->strings.emplace_back(unescape(token.text));
  }

  // A directive whose arguments run onto a later line where a known directive name starts was
  // most likely meant to end with ';' before it: say so instead of "invalid number of arguments".
  bool looksUnterminated(const std::vector<Token>& words) const {
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i].line > words[i - 1].line && !words[i].escaped &&
          (words[i].text == "include" || storage_->by_name.contains(words[i].text))) {
        return true;
      }
    }
    return false;
  }

  // The one checker for every directive (nginx's ngx_conf_handler): known, allowed here, block
  // or not, argument count, duplicate, value; then `include` or a nested block.
  bool directive(Lexer& lexer, std::string_view file, Block& block, uint32_t depth,
                 const std::vector<Token>& words, bool opens_block) {
    const Token& head = words[0];
    const std::string_view name = argText(head);
    const Position pos{file, head.line, head.column};
    const size_t arg_count = words.size() - 1;

    if (name == "include") {
      if (opens_block) return failAt("directive \"include\" is not terminated by \";\"", pos, name);
      if (arg_count != 1) {
        if (looksUnterminated(words)) {
          return failAt("directive \"include\" is not terminated by \";\"", pos, name);
        }
        return failAt("invalid number of arguments in \"include\" directive", pos, name);
      }
      const Position arg_pos{file, words[1].line, words[1].column};
      return include(argText(words[1]), file, arg_pos, block, depth);
    }

    bool known = false;
    const DirectiveSpec* spec = storage_->lookup(block.context_, name, &known);
    if (!known) return failAt("unknown directive \"" + std::string(name) + "\"", pos, name);
    if (spec == nullptr) {
      return failAt("\"" + std::string(name) + "\" directive is not allowed here", pos, name);
    }
    // Built only on the error paths: a directive that is fine allocates nothing for messages.
    const auto quoted = [name] { return quotedName(name); };
    if (spec->block && !opens_block) {
      return failAt("directive " + quoted() + " has no opening \"{\"", pos, name);
    }
    if (!spec->block && opens_block) {
      return failAt("directive " + quoted() + " is not terminated by \";\"", pos, name);
    }
    if (arg_count < spec->min_args || arg_count > spec->max_args) {
      if (looksUnterminated(words)) {
        return failAt("directive " + quoted() + " is not terminated by \";\"", pos, name);
      }
      return failAt("invalid number of arguments in " + quoted() + " directive", pos, name);
    }
    if (!spec->multiple && block.find(name) != nullptr) {
      return failAt(quoted() + " directive is duplicate", pos, name);
    }

    Directive& added = block.directives_.emplace_back();
    added.name = name;
    added.pos = pos;
    added.spec = spec;
    added.args.reserve(arg_count);
    added.arg_pos.reserve(arg_count);
    for (size_t i = 1; i < words.size(); ++i) {
      added.args.push_back(argText(words[i]));
      added.arg_pos.push_back({file, words[i].line, words[i].column});
    }
    if (spec->check) {
      if (auto problem = spec->check(added.args)) {
        const size_t at = std::min(problem->arg, arg_count == 0 ? 0 : arg_count - 1);
        std::string message = problem->phrase + " in " + quoted() + " directive";
        if (!problem->detail.empty()) message += ", " + problem->detail;
        return failAt(std::move(message), arg_count == 0 ? pos : added.arg_pos[at], name);
      }
    }
    if (!spec->block) return true;

    if (depth + 1 > options_.max_depth) {
      return failAt("too deep nesting of blocks and includes (at most " +
                        std::to_string(options_.max_depth) + ")",
                    pos, name);
    }
    added.block = std::make_unique<Block>();
    added.block->context_ = spec->name;
    added.block->storage_ = storage_.get();
    // `added` stays valid: nothing else is appended to `block` while its child is parsed.
    return parseBlock(lexer, file, *added.block, depth + 1, &added);
  }

  bool include(std::string_view pattern, std::string_view file, const Position& pos, Block& block,
               uint32_t depth) {
    if (!options_.allow_include) return failAt("\"include\" directive is not allowed here", pos, "include");
    std::filesystem::path full(pattern);
    if (full.is_relative()) full = std::filesystem::path(file).parent_path() / full;
    const std::string full_text = full.string();

    std::vector<std::string> paths;
    if (hasGlobChars(pattern)) {
      glob_t matches{};
      // No GLOB_ERR, as nginx: a pattern whose directory is missing or unreadable matches
      // nothing, like a pattern that matches no file.
      const int rc = ::glob(full_text.c_str(), 0, nullptr, &matches);
      if (rc != 0 && rc != GLOB_NOMATCH) {
        globfree(&matches);
        return failAt("glob() \"" + full_text + "\" failed", pos, "include");
      }
      for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
      globfree(&matches);  // glob(3) sorts its matches unless told GLOB_NOSORT
    } else {
      paths.push_back(full_text);
    }

    if (depth + 1 > options_.max_depth) {
      return failAt("too deep nesting of blocks and includes (at most " +
                        std::to_string(options_.max_depth) + ")",
                    pos, "include");
    }
    for (const std::string& path : paths) {
      std::string canonical_path = canonical(path);
      for (const std::string& open : canonical_stack_) {
        if (open == canonical_path) {
          return failAt("include cycle: \"" + path + "\" is already being read", pos, "include");
        }
      }
      if (storage_->file_order.size() >= options_.max_includes) {
        return failAt("too many included files (at most " +
                          std::to_string(options_.max_includes) + ")",
                      pos, "include");
      }
      std::string& contents = storage_->texts.emplace_back();
      std::string why;
      if (!readFile(path, contents, why)) return failAt(why, pos, "include");
      std::string_view name = storage_->file_names.emplace_back(path);
      storage_->file_order.push_back(name);
      canonical_stack_.push_back(std::move(canonical_path));
      if (!parseFile(contents, name, block, depth + 1)) return false;
      canonical_stack_.pop_back();
    }
    return true;
  }

  std::shared_ptr<Storage> storage_;
  LoadOptions options_;
  Error error_;
  std::vector<std::string> canonical_stack_;  // the files being read, outermost first
};

LoadResult load(const std::string& path, const Schema& schema, const LoadOptions& options) {
  Parser parser(schema, options);
  return parser.run({}, path, true);
}

LoadResult loadString(std::string_view text, std::string_view name, const Schema& schema,
                      const LoadOptions& options) {
  Parser parser(schema, options);
  return parser.run(text, name, false);
}

std::string Error::text() const {
  if (line == 0) return message;
  return message + " in " + file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Error::format(std::string_view program) const {
  return std::string(program) + ": [emerg] " + text();
}

Error errorAt(const Directive& directive, std::string message, std::optional<size_t> arg) {
  const Position& pos =
      arg && *arg < directive.arg_pos.size() ? directive.arg_pos[*arg] : directive.pos;
  return Error{std::move(message), std::string(pos.file), pos.line, pos.column,
               std::string(directive.name)};
}

}  // namespace tether::config
