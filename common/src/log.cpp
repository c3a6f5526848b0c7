#include "tether/common/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>

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

}  // namespace

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
      sinks.push_back(std::make_shared<spdlog::sinks::systemd_sink_mt>(std::string(program)));
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
