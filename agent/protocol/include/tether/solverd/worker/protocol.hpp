#pragma once
// The worker protocol (DESIGN.md "Worker protocol"): what solverd asks of solverd-worker on its
// stdin and what the worker answers on its stdout, as typed values and their JSON form, with the
// status and exit codes and the frame bound. Part of the protocol module (agent/protocol), so
// that solverd and the worker read the one definition. The frames themselves are the control
// protocol's (tether/agent/control/frame.hpp), except that a worker frame may exceed the control
// protocol's 1 MiB: a model or a solution can be large.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tether::solverd::worker {

// Frames on the worker's pipes carry whole models (solverd accepts bodies of tens of MB), so
// both sides decode with this bound instead of the control protocol's 1 MiB.
inline constexpr uint32_t kMaxWorkerFrameLength = 1U << 30;

// Exit codes: 0 a result was written (including an interrupted solve), 1 invalid input (an
// error frame first: invalid_model with the reader's message, bad_message, unknown_solver,
// unknown_option, invalid_option), 2 solver error (an error frame solver_error), 3 the time
// limit was reached (the result frame, status time_limit, is written first, with the best
// incumbent). A crash shows as its signal.
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitInvalidInput = 1;
inline constexpr int kExitSolverError = 2;
inline constexpr int kExitTimeout = 3;

enum class ModelFormat { Lp, Mps };
enum class SolverKind { Cbc, Clp, Glpk };

std::string_view formatName(ModelFormat format);
std::string_view solverName(SolverKind solver);
bool parseModelFormat(std::string_view name, ModelFormat& out);
bool parseSolverKind(std::string_view name, SolverKind& out);

// Options of DESIGN.md; absent means the solver's default. Every solver accepts all three and
// ignores (with a log line) the ones it has no use for: CLP has no mip_gap, CLP and GLPK run on
// one thread.
struct SolveOptions {
  std::optional<double> time_limit;  // seconds of wall time, > 0
  std::optional<double> mip_gap;     // relative gap at which a MILP search stops, >= 0
  std::optional<int> threads;        // >= 1
};

// {"type":"solve","format":"lp"|"mps","model":"...","solver":"cbc"|"clp"|"glpk","options":{...}}
struct SolveRequest {
  ModelFormat format = ModelFormat::Lp;
  SolverKind solver = SolverKind::Cbc;
  std::string model;
  SolveOptions options;
  std::string id;  // optional "id" (solverd's job id): only for the worker's own log lines
};

// The `code` of an error frame. The first four refuse a request before any solving; solverd
// answers invalid_model with 400, the three unknown/invalid ones with 422, the rest with 500.
enum class ErrorCode { BadMessage, UnknownSolver, UnknownOption, InvalidOption, InvalidModel, SolverError };
std::string_view errorCodeName(ErrorCode code);
bool parseErrorCode(std::string_view name, ErrorCode& out);

// Why a request was refused before any solving: errorCodeName() of the error frame's code, and a
// message.
struct RequestError {
  std::string code;
  std::string message;
};

// Reads a solve frame. `format` defaults to lp and `solver` to cbc, as in the HTTP API. Never
// throws. On success the model string is moved out of `frame`.
bool parseSolveRequest(nlohmann::json& frame, SolveRequest& out, RequestError& error);

// Result statuses and their numeric codes (DESIGN.md).
enum class Status {
  Optimal = 0,
  Infeasible = 1,
  Unbounded = 2,
  IterationLimit = 3,
  TimeLimit = 4,
  NumericalError = 5,
  Unknown = 6,
  Interrupted = 7,
};

std::string_view statusName(Status status);
inline int statusCode(Status status) { return static_cast<int>(status); }

// {"type":"incumbent","objective":..,"bound":..,"gap":..,"elapsed_ms":..}
struct Incumbent {
  double objective = 0;
  std::optional<double> bound;
  std::optional<double> gap;
  uint64_t elapsed_ms = 0;
};

// {"type":"result","status":..,"status_code":N,"objective":..,"bound":..,"solution":{..},
//  "solver":"cbc","solve_time_ms":..,"solve_time_us":..,"nodes":..,"iterations":..}
// solve_time_ms is whole milliseconds (truncated); solve_time_us the same time in microseconds,
// for figures that a millisecond of rounding would blur (a tiny solve's overhead).
// `solution` lists the variables by the model's names, nonzeros only; objective and bound are
// absent (null) when the solver has none, e.g. for an infeasible model.
struct SolveResult {
  Status status = Status::Unknown;
  std::optional<double> objective;
  std::optional<double> bound;
  std::vector<std::pair<std::string, double>> solution;
  SolverKind solver = SolverKind::Cbc;
  uint64_t solve_time_ms = 0;
  uint64_t solve_time_us = 0;
  int64_t nodes = 0;
  int64_t iterations = 0;
};

// Relative gap between an objective and a bound, as CBC and GLPK print it:
// |objective - bound| / max(|objective|, 1e-10). Empty when either is not finite.
std::optional<double> relativeGap(double objective, double bound);

nlohmann::json toJson(const Incumbent& incumbent);
nlohmann::json toJson(const SolveResult& result);
nlohmann::json logFrame(std::string_view line);
// solverd's two frames: the solve (as the HTTP API admitted it: format, solver and options as
// given, checked again by parseSolveRequest in the worker) and the interrupt.
nlohmann::json solveFrame(std::string_view format, std::string_view solver, const std::string& model,
                          const nlohmann::json& options);
nlohmann::json interruptFrame();
bool isInterruptFrame(const nlohmann::json& frame);
nlohmann::json errorFrame(std::string_view code, std::string_view message);
nlohmann::json errorFrame(ErrorCode code, std::string_view message);

}  // namespace tether::solverd::worker
