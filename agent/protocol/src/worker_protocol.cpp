#include "tether/solverd/worker/protocol.hpp"

#include "name_table.hpp"

#include <array>
#include <cmath>

namespace tether::solverd::worker {
namespace {

constexpr std::array<agent::control::detail::Named<ModelFormat>, 2> kFormats{{
    {ModelFormat::Lp, "lp"},
    {ModelFormat::Mps, "mps"},
}};

constexpr std::array<agent::control::detail::Named<SolverKind>, 3> kSolvers{{
    {SolverKind::Cbc, "cbc"},
    {SolverKind::Clp, "clp"},
    {SolverKind::Glpk, "glpk"},
}};

constexpr std::array<agent::control::detail::Named<Status>, 8> kStatusNames{{
    {Status::Optimal, "optimal"},
    {Status::Infeasible, "infeasible"},
    {Status::Unbounded, "unbounded"},
    {Status::IterationLimit, "iteration_limit"},
    {Status::TimeLimit, "time_limit"},
    {Status::NumericalError, "numerical_error"},
    {Status::Unknown, "unknown"},
    {Status::Interrupted, "interrupted"},
}};

constexpr std::array<agent::control::detail::Named<ErrorCode>, 6> kErrorCodes{{
    {ErrorCode::BadMessage, "bad_message"},
    {ErrorCode::UnknownSolver, "unknown_solver"},
    {ErrorCode::UnknownOption, "unknown_option"},
    {ErrorCode::InvalidOption, "invalid_option"},
    {ErrorCode::InvalidModel, "invalid_model"},
    {ErrorCode::SolverError, "solver_error"},
}};

bool fail(RequestError& error, ErrorCode code, std::string message) {
  error = RequestError{std::string(errorCodeName(code)), std::move(message)};
  return false;
}

// A JSON number that is finite and >= 0 (solverd checks the same before queueing, this is the
// worker's own guard for anyone else who speaks to it).
bool nonNegativeNumber(const nlohmann::json& value, double& out) {
  if (!value.is_number()) return false;
  out = value.get<double>();
  return std::isfinite(out) && out >= 0;
}

bool parseOptions(const nlohmann::json& options, SolveOptions& out, RequestError& error) {
  if (!options.is_object()) return fail(error, ErrorCode::UnknownOption, "options must be an object");
  for (const auto& [name, value] : options.items()) {
    double number = 0;
    if (name != "time_limit" && name != "mip_gap" && name != "threads") {
      return fail(error, ErrorCode::UnknownOption,
                  "unknown option \"" + name + "\" (time_limit, mip_gap, threads)");
    }
    if (!nonNegativeNumber(value, number)) {
      return fail(error, ErrorCode::InvalidOption, "option \"" + name + "\" must be a non-negative number");
    }
    if (name == "time_limit") {
      // 0 reads as "no limit": solverd always sends one, and a zero-second solve is useless.
      if (number > 0) out.time_limit = number;
    } else if (name == "mip_gap") {
      out.mip_gap = number;
    } else {
      if (number != std::floor(number) || number > 1024) {
        return fail(error, ErrorCode::InvalidOption, "option \"threads\" must be an integer from 0 to 1024");
      }
      if (number >= 1) out.threads = static_cast<int>(number);
    }
  }
  return true;
}

nlohmann::json finiteOrNull(const std::optional<double>& value) {
  if (!value || !std::isfinite(*value)) return nullptr;
  return *value;
}

}  // namespace

std::string_view formatName(ModelFormat format) { return agent::control::detail::nameOf(kFormats, format, "lp"); }
bool parseModelFormat(std::string_view name, ModelFormat& out) {
  return agent::control::detail::valueOf(kFormats, name, out);
}

std::string_view solverName(SolverKind solver) { return agent::control::detail::nameOf(kSolvers, solver, "cbc"); }
bool parseSolverKind(std::string_view name, SolverKind& out) {
  return agent::control::detail::valueOf(kSolvers, name, out);
}

std::string_view statusName(Status status) { return agent::control::detail::nameOf(kStatusNames, status, "unknown"); }

bool parseSolveRequest(nlohmann::json& frame, SolveRequest& out, RequestError& error) {
  auto type = frame.find("type");
  if (type == frame.end() || !type->is_string() || type->get<std::string>() != "solve") {
    return fail(error, ErrorCode::BadMessage, "the first frame must be {\"type\":\"solve\",...}");
  }
  auto model = frame.find("model");
  if (model == frame.end() || !model->is_string()) {
    return fail(error, ErrorCode::BadMessage, "\"model\" (a string) is missing");
  }
  SolveRequest request;
  if (auto format = frame.find("format"); format != frame.end()) {
    if (!format->is_string() || !parseModelFormat(format->get_ref<const std::string&>(), request.format)) {
      return fail(error, ErrorCode::BadMessage, "\"format\" must be \"lp\" or \"mps\"");
    }
  }
  if (auto solver = frame.find("solver"); solver != frame.end()) {
    if (!solver->is_string() || !parseSolverKind(solver->get_ref<const std::string&>(), request.solver)) {
      std::string shown = solver->is_string() ? solver->get<std::string>() : solver->dump();
      return fail(error, ErrorCode::UnknownSolver, "unknown solver \"" + shown + "\" (cbc, clp or glpk)");
    }
  }
  if (auto options = frame.find("options"); options != frame.end() && !options->is_null()) {
    if (!parseOptions(*options, request.options, error)) return false;
  }
  if (auto id = frame.find("id"); id != frame.end() && id->is_string()) {
    request.id = id->get<std::string>();
  }
  request.model = std::move(model->get_ref<std::string&>());
  out = std::move(request);
  return true;
}

std::optional<double> relativeGap(double objective, double bound) {
  if (!std::isfinite(objective) || !std::isfinite(bound)) return std::nullopt;
  return std::fabs(objective - bound) / std::max(std::fabs(objective), 1e-10);
}

nlohmann::json toJson(const Incumbent& incumbent) {
  return {{"type", "incumbent"},
          {"objective", finiteOrNull(incumbent.objective)},
          {"bound", finiteOrNull(incumbent.bound)},
          {"gap", finiteOrNull(incumbent.gap)},
          {"elapsed_ms", incumbent.elapsed_ms}};
}

nlohmann::json toJson(const SolveResult& result) {
  nlohmann::json solution = nlohmann::json::object();
  for (const auto& [name, value] : result.solution) solution[name] = value;
  return {{"type", "result"},
          {"status", statusName(result.status)},
          {"status_code", static_cast<int>(result.status)},
          {"objective", finiteOrNull(result.objective)},
          {"bound", finiteOrNull(result.bound)},
          {"solution", std::move(solution)},
          {"solver", solverName(result.solver)},
          {"solve_time_ms", result.solve_time_ms},
          {"solve_time_us", result.solve_time_us},
          {"nodes", result.nodes},
          {"iterations", result.iterations}};
}

nlohmann::json logFrame(std::string_view line) { return {{"type", "log"}, {"line", line}}; }

nlohmann::json solveFrame(std::string_view format, std::string_view solver, const std::string& model,
                          const nlohmann::json& options) {
  return {{"type", "solve"}, {"format", format}, {"model", model}, {"solver", solver}, {"options", options}};
}

nlohmann::json interruptFrame() { return {{"type", "interrupt"}}; }

bool isInterruptFrame(const nlohmann::json& frame) {
  auto type = frame.find("type");
  return type != frame.end() && type->is_string() && *type == "interrupt";
}

nlohmann::json errorFrame(std::string_view code, std::string_view message) {
  return {{"type", "error"}, {"code", code}, {"message", message}};
}

nlohmann::json errorFrame(ErrorCode code, std::string_view message) { return errorFrame(errorCodeName(code), message); }

std::string_view errorCodeName(ErrorCode code) { return agent::control::detail::nameOf(kErrorCodes, code, "solver_error"); }

bool parseErrorCode(std::string_view name, ErrorCode& out) { return agent::control::detail::valueOf(kErrorCodes, name, out); }

}  // namespace tether::solverd::worker
