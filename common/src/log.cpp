#include "tether/common/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/uio.h>
#include <syslog.h>
// CODE_FILE= and friends would name this sink, never the line's origin.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include <array>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tether::log {
namespace {

struct State {
  std::mutex mutex;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string pattern = "%Y/%m/%d %H:%M:%S.%e [%l] %n: %v";
  std::unordered_map<std::string, std::shared_ptr<spdlog::logger>> loggers;
};

// The value of the `key=` token in a log line: the token starts the line or follows a space, and
// its value runs to the next space. Ids in our lines follow the request-id rule, so a value never
// holds a space.
std::string_view tokenValue(std::string_view message, std::string_view key) {
  for (size_t at = message.find(key); at != std::string_view::npos; at = message.find(key, at + 1)) {
    if (at != 0 && message[at - 1] != ' ') continue;
    std::string_view value = message.substr(at + key.size());
    value = value.substr(0, value.find(' '));
    if (value.empty() || value == "-") return {};
    return value;
  }
  return {};
}

// Token of our log lines -> journal field (journal fields: uppercase, digits, underscore), and
// the reader of the token's value ("" when the line has none): ids by the request-id rule, a
// trace id only in its W3C form (traceIdOf).
struct FieldRow {
  std::string_view field;
  std::string_view (*value)(std::string_view message);
};
constexpr FieldRow kJournalFields[] = {
    {"REQUEST_ID=", requestIdField},  // rid=
    {"JOB_ID=", jobIdField},          // job=
    {"TRACE_ID=", traceIdOf},         // trace= (DESIGN.md "Trace context")
};

// `error_log journal`: one sd_journal_sendv() per line with the line's ids as fields of their
// own. spdlog's systemd_sink sends the bare payload and no fields; this one sends the component
// ("job: ...") as the other targets do, and the fields of kJournalFields.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string_view program) : identifier_("SYSLOG_IDENTIFIER=") {
    identifier_.append(program);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string_view text(formatted.data(), formatted.size());
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    std::string message = "MESSAGE=";
    message.append(text);
    std::string priority = "PRIORITY=" + std::to_string(syslogPriority(msg.level));
    std::string_view payload(msg.payload.data(), msg.payload.size());

    std::array<std::string, std::size(kJournalFields)> fields;
    std::array<iovec, 3 + std::size(kJournalFields)> iov{};
    size_t n = 0;
    auto add = [&](const std::string& s) {
      iov[n].iov_base = const_cast<char*>(s.data());
      iov[n].iov_len = s.size();
      ++n;
    };
    add(message);
    add(priority);
    add(identifier_);
    for (size_t i = 0; i < std::size(kJournalFields); ++i) {
      std::string_view value = kJournalFields[i].value(payload);
      if (value.empty()) continue;
      fields[i].assign(kJournalFields[i].field).append(value);
      add(fields[i]);
    }
    // A journal that cannot take the line loses it; there is nowhere better to report that.
    (void)sd_journal_sendv(iov.data(), static_cast<int>(n));
  }
  void flush_() override {}

 private:
  static int syslogPriority(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
      case spdlog::level::debug: return LOG_DEBUG;
      case spdlog::level::warn: return LOG_WARNING;
      case spdlog::level::err: return LOG_ERR;
      case spdlog::level::critical: return LOG_CRIT;
      default: return LOG_INFO;
    }
  }

  std::string identifier_;
};

State& state() {
  static State s;
  return s;
}

void applyLocked(State& s, const std::shared_ptr<spdlog::logger>& logger) {
  logger->sinks() = s.sinks;
  logger->set_level(s.level);
  logger->set_pattern(s.pattern);
  // Warnings and errors reach the file at once; a crash must not swallow them.
  logger->flush_on(spdlog::level::warn);
}

}  // namespace

std::string_view traceIdOf(std::string_view line) {
  for (size_t at = line.find("trace="); at != std::string_view::npos; at = line.find("trace=", at + 1)) {
    if (at != 0 && line[at - 1] != ' ') continue;  // a word of its own, not "xtrace="
    std::string_view id = line.substr(at + 6, 32);
    size_t end = at + 6 + id.size();
    if (id.size() == 32 && (end == line.size() || line[end] == ' ') &&
        id.find_first_not_of("0123456789abcdef") == std::string_view::npos) {
      return id;
    }
  }
  return {};
}

bool parseLevel(std::string_view name, spdlog::level::level_enum& out) {
  struct Row {
    std::string_view name;
    spdlog::level::level_enum level;
  };
  static constexpr Row kRows[] = {
      {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"notice", spdlog::level::info}, {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"crit", spdlog::level::critical},
      {"alert", spdlog::level::critical}, {"emerg", spdlog::level::critical},
  };
  for (const auto& row : kRows) {
    if (row.name == name) {
      out = row.level;
      return true;
    }
  }
  return false;
}

std::string configure(std::string_view program, const Target& target) {
  std::vector<spdlog::sink_ptr> sinks;
  std::string pattern;
  try {
    if (target.where == "stderr") {
      sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
      pattern = std::string(program) + ": %Y/%m/%d %H:%M:%S.%e [%l] %n: %v";
    } else if (target.where == "journal") {
      // The journal stamps time and identifier itself.
      sinks.push_back(std::make_shared<JournalSink>(program));
      pattern = "%n: %v";
    } else {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(target.where, false));
      pattern = "%Y/%m/%d %H:%M:%S.%e [%l] %n: %v";
    }
  } catch (const spdlog::spdlog_ex& e) {
    return e.what();
  }
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.sinks = std::move(sinks);
  s.level = target.level;
  s.pattern = std::move(pattern);
  for (auto& [name, logger] : s.loggers) applyLocked(s, logger);
  return {};
}

std::string_view requestIdField(std::string_view message) { return tokenValue(message, "rid="); }
std::string_view jobIdField(std::string_view message) { return tokenValue(message, "job="); }

std::shared_ptr<spdlog::logger> get(std::string_view component) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  auto it = s.loggers.find(std::string(component));
  if (it != s.loggers.end()) return it->second;
  if (s.sinks.empty()) s.sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>(std::string(component));
  applyLocked(s, logger);
  s.loggers.emplace(std::string(component), logger);
  return logger;
}

}  // namespace tether::log
