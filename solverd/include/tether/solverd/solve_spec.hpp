#pragma once
// What one POST /v1/solve asks for, read from its body, Content-Type and query (DESIGN.md
// "solverd HTTP API"), checked before anything is queued so that a bad request never costs a
// worker. The model itself is checked by the worker (400 with the solver's message).
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tether::solverd {

struct SolveSpec {
  std::string format = "lp";  // "lp" | "mps"
  std::string solver = "cbc";  // "cbc" | "clp" | "glpk"
  std::string model;
  // Options passed to the worker as given (time_limit, mip_gap, threads); time_limit is always
  // present after parsing: the request's, capped by default_time_limit, or that default.
  nlohmann::json options = nlohmann::json::object();

  // callback=URL (query) or "callback" (JSON body): where the result is POSTed (webhooks). Not
  // part of the work: requests with different callbacks still share a job.
  std::string callback;

  double timeLimitSeconds() const;
  // Coalescing compares the work: the same key shares a job only for the same model and options.
  bool operator==(const SolveSpec& other) const {
    return format == other.format && solver == other.solver && model == other.model && options == other.options;
  }
};

// An HTTP error chosen while reading a request: 400, 413, 415 or 422, with a short machine code
// ("unsupported_media_type", "unknown_solver", ...) and a message for people.
struct RequestError {
  int status = 400;
  std::string code;
  std::string message;
};

struct SolveRequestInput {
  std::string_view content_type;  // the header's value, parameters allowed
  std::string_view query;         // without the '?'
  std::string body;               // moved into the spec's model for text bodies
  std::chrono::milliseconds default_time_limit{3'600'000};
  // The `Request-Timeout: SECONDS` header's value (nullptr: absent) and what solverd keeps back
  // from that budget (`kill_after`, `deadline_reserve`): see requestTimeoutCap().
  const std::string* request_timeout = nullptr;
  std::chrono::milliseconds kill_after{5'000};
  std::chrono::milliseconds deadline_reserve{500};
};

// The solver time limit a `Request-Timeout` budget allows (DESIGN.md "solverd HTTP API",
// deadlines): the budget minus a reserve, never below kMinDeadlineLimitSeconds. The reserve is the
// time the worker needs to start, the solver to notice its limit, the worker to exit (the job ends
// at its exit) and the answer to travel back before the caller's deadline passes: a tenth of the
// budget, at least `deadline_reserve`, at most `kill_after` (the operator's word for how long a
// graceful stop takes). Measured: some 50 ms of CBC past its limit; a sanitized worker's exit
// (LeakSanitizer's check) takes 300 to 450 ms more.
inline constexpr double kMinDeadlineLimitSeconds = 0.1;
double requestTimeoutCap(double budget_seconds, std::chrono::milliseconds kill_after,
                         std::chrono::milliseconds least_reserve);
// Reads a Request-Timeout value: decimal seconds ("2", "0.950"), digits with at most one '.',
// no sign, no exponent. nullopt when malformed.
std::optional<double> parseRequestTimeout(std::string_view value);

// Returns the spec, or the error to answer with. `input.body` is consumed.
std::optional<SolveSpec> parseSolveRequest(SolveRequestInput& input, RequestError& error);

// One query parameter's value (percent-decoded), or nullopt when absent.
std::optional<std::string> queryParam(std::string_view query, std::string_view name);

// The frame solverd writes to the worker's stdin for this spec.
nlohmann::json solveFrame(const SolveSpec& spec);
// The same frame as bytes on the wire (the 4-byte length, then the JSON). A model of plain ASCII
// (LP and MPS files nearly always are) is escaped straight into the one buffer, instead of being
// copied into a json value, dumped into a string and copied again behind the length; others go
// through solveFrame(), whose dump replaces invalid UTF-8.
std::string solveFrameBytes(const SolveSpec& spec);

}  // namespace tether::solverd
