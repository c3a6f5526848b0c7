// solve(): reads the model with the chosen solver's reader, then runs the backend.
#include "backends.hpp"
#include "tether/common/clock.hpp"
#include "tether/solverd/worker/model_reader.hpp"

#include <CoinError.hpp>

#include <cmath>
#include <exception>

namespace tether::solverd::worker {

uint64_t SolveHooks::elapsedMs() const { return (monotonicNs() - start_ns) / 1'000'000; }

Deadline Deadline::from(const SolveOptions& options, uint64_t start_ns) {
  Deadline d;
  if (options.time_limit) {
    d.at_ns = start_ns + static_cast<uint64_t>(*options.time_limit * 1e9);
  }
  return d;
}

bool Deadline::passed() const { return at_ns && monotonicNs() >= *at_ns; }

void fillSolution(const double* values, const CoinProblem& problem, SolveResult& result) {
  result.solution.clear();
  if (values == nullptr) return;
  for (int j = 0; j < problem.columns(); ++j) {
    double v = values[j];
    if (problem.is_integer[static_cast<size_t>(j)] != 0) v = std::round(v);
    if (std::fabs(v) < 1e-9) continue;
    result.solution.emplace_back(problem.col_names[static_cast<size_t>(j)], v);
  }
}

double objectiveOf(const double* values, const CoinProblem& problem) {
  double sum = problem.objective_constant;
  for (int j = 0; j < problem.columns(); ++j) sum += problem.objective[static_cast<size_t>(j)] * values[j];
  return sum;
}

ReaderFamily readerFamily(SolverKind solver) {
  return solver == SolverKind::Glpk ? ReaderFamily::Glpk : ReaderFamily::Coin;
}

bool readModel(std::string_view text, ModelFormat format, ReaderFamily family, ModelSummary& out,
               std::string& message) {
  if (family == ReaderFamily::Coin) {
    CoinProblem problem;
    if (!readCoinProblem(text, format, problem, message)) return false;
    out = ModelSummary{problem.rows(), problem.columns(), problem.integers(), problem.maximize};
    return true;
  }
  GlpkProblem problem;
  if (!readGlpkProblem(text, format, problem, message)) return false;
  glp_prob* p = problem.get();
  out = ModelSummary{glp_get_num_rows(p), glp_get_num_cols(p), glp_get_num_int(p),
                     glp_get_obj_dir(p) == GLP_MAX};
  return true;
}

namespace {

// What every backend's result gets before it leaves: solvers mark "no value" with their own
// infinities (GLPK's -DBL_MAX bound, CBC's 1e50), and an infeasible or unbounded model has no
// objective, bound or solution worth showing, whatever the solver left behind.
void normalize(SolveResult& result) {
  auto clean = [](std::optional<double>& v) {
    if (v && (!std::isfinite(*v) || std::fabs(*v) >= 1e30)) v.reset();
  };
  clean(result.objective);
  clean(result.bound);
  if (result.status == Status::Infeasible || result.status == Status::Unbounded) {
    result.objective.reset();
    result.bound.reset();
    result.solution.clear();
  }
}

SolveOutcome solveModel(const SolveRequest& request, const SolveHooks& hooks) {
  SolveOutcome outcome;
  // COIN-OR reports some failures by throwing (CoinError, std::bad_alloc): they end here as a
  // solver error instead of ending the process.
  try {
    if (readerFamily(request.solver) == ReaderFamily::Glpk) {
      GlpkProblem problem;
      hooks.reading(true);
      const bool read = readGlpkProblem(request.model, request.format, problem, outcome.message);
      hooks.reading(false);
      if (!read) {
        outcome.kind = SolveOutcome::Kind::InvalidModel;
        return outcome;
      }
      return solveWithGlpk(std::move(problem), request, hooks);
    }
    CoinProblem problem;
    hooks.reading(true);
    const bool read = readCoinProblem(request.model, request.format, problem, outcome.message);
    hooks.reading(false);
    if (!read) {
      outcome.kind = SolveOutcome::Kind::InvalidModel;
      return outcome;
    }
    if (request.solver == SolverKind::Clp) {
      if (problem.integers() > 0) {
        hooks.log("clp: the model has " + std::to_string(problem.integers()) +
                  " integer variables; clp solves its LP relaxation");
      }
      return solveWithClp(problem, request, hooks, SolverKind::Clp);
    }
    return solveWithCbc(problem, request, hooks);
  } catch (const CoinError& e) {
    outcome.kind = SolveOutcome::Kind::SolverError;
    outcome.message = e.className() + "::" + e.methodName() + ": " + e.message();
  } catch (const std::exception& e) {
    outcome.kind = SolveOutcome::Kind::SolverError;
    outcome.message = e.what();
  }
  return outcome;
}

}  // namespace

SolveOutcome solve(const SolveRequest& request, const SolveHooks& hooks) {
  SolveOutcome outcome = solveModel(request, hooks);
  if (outcome.kind == SolveOutcome::Kind::Solved) normalize(outcome.result);
  return outcome;
}

}  // namespace tether::solverd::worker
