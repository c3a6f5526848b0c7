#include "tether/common/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

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

// `error_log journal`: one journal entry per line, with the structured fields an operator
// filters on (`journalctl TRACE_ID=...`) beside MESSAGE, PRIORITY and SYSLOG_IDENTIFIER.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string identifier) : identifier_("SYSLOG_IDENTIFIER=" + std::move(identifier)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string message = "MESSAGE=" + std::string(formatted.data(), formatted.size());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    std::string priority = "PRIORITY=" + std::to_string(priorityOf(msg.level));
    std::string trace;
    if (auto id = traceIdOf({msg.payload.data(), msg.payload.size()}); !id.empty()) trace = "TRACE_ID=" + std::string(id);
    iovec fields[4];
    size_t n = 0;
    for (std::string* f : {&message, &priority, &identifier_, &trace}) {
      if (!f->empty()) fields[n++] = {f->data(), f->size()};
    }
    // A journal that is gone cannot be told so: the line is lost, as with syslog(3).
    (void)sd_journal_sendv(fields, static_cast<int>(n));
  }
  void flush_() override {}

 private:
  static int priorityOf(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
      case spdlog::level::debug: return LOG_DEBUG;
      case spdlog::level::info: return LOG_INFO;
      case spdlog::level::warn: return LOG_WARNING;
      case spdlog::level::err: return LOG_ERR;
      default: return LOG_CRIT;
    }
  }
  std::string identifier_;
};

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
      sinks.push_back(std::make_shared<JournalSink>(std::string(program)));
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
