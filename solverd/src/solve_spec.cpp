#include "tether/solverd/solve_spec.hpp"

#include "tether/agent/control/frame.hpp"
#include "tether/solverd/worker/protocol.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace tether::solverd {
namespace {

constexpr std::array<std::string_view, 3> kOptions = {"time_limit", "mip_gap", "threads"};

bool contains(const auto& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The media type without parameters ("text/x-lp; charset=utf-8" -> "text/x-lp"), lower case.
std::string mediaType(std::string_view content_type) {
  auto semi = content_type.find(';');
  std::string_view type = content_type.substr(0, semi);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return lower(type);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool fail(RequestError& error, int status, std::string code, std::string message) {
  error = RequestError{status, std::move(code), std::move(message)};
  return false;
}

bool checkSolver(const std::string& solver, RequestError& error) {
  if (worker::SolverKind kind{}; worker::parseSolverKind(solver, kind)) return true;
  return fail(error, 422, "unknown_solver", "unknown solver \"" + solver + "\" (cbc, clp or glpk)");
}

bool checkOptions(const nlohmann::json& options, RequestError& error) {
  if (!options.is_object()) return fail(error, 422, "unknown_option", "options must be an object");
  for (const auto& [name, value] : options.items()) {
    if (!contains(kOptions, name)) {
      return fail(error, 422, "unknown_option", "unknown option \"" + name + "\" (time_limit, mip_gap, threads)");
    }
    if (!value.is_number() || value.get<double>() < 0 || !std::isfinite(value.get<double>())) {
      return fail(error, 422, "invalid_option", "option \"" + name + "\" must be a non-negative number");
    }
  }
  return true;
}

// Reads the application/json form: {"model":"...","format":"lp","solver":"cbc","options":{...}}.
bool readJsonBody(std::string& body, SolveSpec& spec, RequestError& error) {
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail(error, 400, "bad_json", "the body is not a JSON object");
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_string()) return fail(error, 400, "bad_json", "\"model\" (a string) is missing");
  spec.model = model->get<std::string>();
  if (auto format = doc.find("format"); format != doc.end()) {
    if (!format->is_string()) return fail(error, 400, "bad_json", "\"format\" must be a string");
    spec.format = lower(format->get<std::string>());
    if (worker::ModelFormat format_kind{}; !worker::parseModelFormat(spec.format, format_kind)) {
      return fail(error, 415, "unsupported_format", "unknown model format \"" + spec.format + "\" (lp or mps)");
    }
  }
  if (auto solver = doc.find("solver"); solver != doc.end()) {
    if (!solver->is_string()) return fail(error, 422, "unknown_solver", "\"solver\" must be a string");
    spec.solver = lower(solver->get<std::string>());
  }
  if (auto options = doc.find("options"); options != doc.end()) spec.options = *options;
  if (auto callback = doc.find("callback"); callback != doc.end()) {
    if (!callback->is_string()) return fail(error, 422, "invalid_callback", "\"callback\" must be a URL string");
    spec.callback = callback->get<std::string>();
  }
  body.clear();
  return true;
}

}  // namespace

std::optional<double> parseRequestTimeout(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  // RFC 9110 section 5.5: optional whitespace around a field value is not part of it. Digits,
  // then an optional '.' with digits: what the proxy writes (`0.950`) and what people type.
  size_t digits = 0;
  size_t dots = 0;
  for (char c : value) {
    if (c >= '0' && c <= '9') {
      ++digits;
    } else if (c == '.' && dots == 0) {
      ++dots;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0 || value.front() == '.' || value.back() == '.' || value.size() > 20) return std::nullopt;
  return std::strtod(std::string(value).c_str(), nullptr);
}

double requestTimeoutCap(double budget_seconds, std::chrono::milliseconds kill_after,
                         std::chrono::milliseconds least_reserve) {
  double reserve = std::min(static_cast<double>(kill_after.count()) / 1000.0,
                            std::max(budget_seconds / 10.0, static_cast<double>(least_reserve.count()) / 1000.0));
  return std::max(kMinDeadlineLimitSeconds, budget_seconds - reserve);
}

double SolveSpec::timeLimitSeconds() const {
  auto it = options.find("time_limit");
  if (it == options.end() || !it->is_number()) return 0;
  return it->get<double>();
}

std::optional<std::string> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (percentDecode(key) != name) continue;
    return eq == std::string_view::npos ? std::string{} : percentDecode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<SolveSpec> parseSolveRequest(SolveRequestInput& input, RequestError& error) {
  SolveSpec spec;
  std::string type = mediaType(input.content_type);
  if (type == "text/x-lp" || type == "application/x-lp") {
    spec.format = worker::formatName(worker::ModelFormat::Lp);
    spec.model = std::move(input.body);
  } else if (type == "text/x-mps" || type == "application/x-mps") {
    spec.format = worker::formatName(worker::ModelFormat::Mps);
    spec.model = std::move(input.body);
  } else if (type == "application/json") {
    if (!readJsonBody(input.body, spec, error)) return std::nullopt;
  } else {
    fail(error, 415, "unsupported_media_type",
         "Content-Type must be text/x-lp, text/x-mps or application/json, not \"" + type + "\"");
    return std::nullopt;
  }
  if (auto solver = queryParam(input.query, "solver")) spec.solver = lower(*solver);
  if (auto callback = queryParam(input.query, "callback")) spec.callback = *callback;
  if (auto limit = queryParam(input.query, "time_limit")) {
    char* end = nullptr;
    double seconds = std::strtod(limit->c_str(), &end);
    if (limit->empty() || *end != '\0' || !std::isfinite(seconds) || seconds < 0) {
      fail(error, 422, "invalid_option", "time_limit must be a non-negative number of seconds");
      return std::nullopt;
    }
    spec.options["time_limit"] = seconds;
  }
  if (!checkSolver(spec.solver, error) || !checkOptions(spec.options, error)) return std::nullopt;
  if (spec.model.empty()) {
    fail(error, 400, "empty_model", "the model is empty");
    return std::nullopt;
  }
  // Every job has a time limit: the request's, never above the configured default, nor above
  // what the caller's deadline leaves (Request-Timeout, sent by tether-proxy for grpc-timeout).
  double cap = static_cast<double>(input.default_time_limit.count()) / 1000.0;
  if (input.request_timeout != nullptr) {
    auto budget = parseRequestTimeout(*input.request_timeout);
    if (!budget) {
      fail(error, 400, "bad_request_timeout",
           "Request-Timeout must be a decimal number of seconds such as 2 or 0.950, not \"" +
               std::string(*input.request_timeout).substr(0, 40) + "\"");
      return std::nullopt;
    }
    cap = std::min(cap, requestTimeoutCap(*budget, input.kill_after, input.deadline_reserve));
  }
  double limit = spec.timeLimitSeconds();
  spec.options["time_limit"] = (limit <= 0 || limit > cap) ? cap : limit;
  return spec;
}

nlohmann::json solveFrame(const SolveSpec& spec) {
  return worker::solveFrame(spec.format, spec.solver, spec.model, spec.options);
}

std::string solveFrameBytes(const SolveSpec& spec) {
  const auto replace = nlohmann::json::error_handler_t::replace;
  auto viaJson = [&spec, replace] {
    return agent::control::encodeRawFrame(solveFrame(spec).dump(-1, ' ', false, replace));
  };
  nlohmann::json head{{"type", "solve"}, {"format", spec.format}, {"solver", spec.solver}, {"options", spec.options}};
  std::string head_text = head.dump(-1, ' ', false, replace);
  std::string out;
  // A model's escapes are mostly its newlines, one byte more each, and its lines are rarely
  // shorter than 16 bytes: a 1/16 margin avoids most regrowths.
  out.reserve(4 + head_text.size() + 16 + spec.model.size() + spec.model.size() / 16);
  out.append(4, '\0');
  out.append(head_text, 0, head_text.size() - 1);  // without its closing brace
  out += ",\"model\":\"";
  static constexpr char kHex[] = "0123456789abcdef";
  const char* p = spec.model.data();
  const char* end = p + spec.model.size();
  while (p < end) {
    // The run of bytes that need no escape goes in with one append (memcpy, not byte by byte).
    const char* run = p;
    while (p < end && static_cast<unsigned char>(*p) >= 0x20 && static_cast<unsigned char>(*p) < 0x80 && *p != '"' &&
           *p != '\\') {
      ++p;
    }
    out.append(run, static_cast<size_t>(p - run));
    if (p == end) break;
    auto u = static_cast<unsigned char>(*p);
    if (u >= 0x80) return viaJson();  // UTF-8 to check: the json dump does it
    switch (*p) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 0xf];
    }
    ++p;
  }
  out += "\"}";
  auto length = static_cast<uint32_t>(out.size() - 4);
  for (int i = 0; i < 4; ++i) out[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out;
}

}  // namespace tether::solverd
