#pragma once
// The backends, each reached through solve() (backend.cpp) once the model has been read.
#include "coin_support.hpp"
#include "glpk_support.hpp"
#include "tether/solverd/worker/backend.hpp"

#include <optional>

namespace tether::solverd::worker {

// CLP's simplex for an LP read by COIN. `reported_as` names the solver in the result: CBC
// hands LPs without integer variables to CLP, as its own C interface does.
SolveOutcome solveWithClp(const CoinProblem& problem, const SolveRequest& request,
                          const SolveHooks& hooks, SolverKind reported_as);

// CBC's branch and cut (CbcMain1: the cbc command line's preprocessing, cuts and heuristics)
// for a model with integer variables; LPs go to solveWithClp.
SolveOutcome solveWithCbc(const CoinProblem& problem, const SolveRequest& request,
                          const SolveHooks& hooks);

// GLPK's simplex (LP) or branch and cut (MILP).
SolveOutcome solveWithGlpk(GlpkProblem problem, const SolveRequest& request,
                           const SolveHooks& hooks);

// The solution by the model's names, nonzeros only; integer variables rounded (solvers return
// them within their integrality tolerance, 0.9999999 for 1).
void fillSolution(const double* values, const CoinProblem& problem, SolveResult& result);

// c'x + constant for the model as written.
double objectiveOf(const double* values, const CoinProblem& problem);

// The wall-clock deadline of a solve, from the time_limit option.
struct Deadline {
  std::optional<uint64_t> at_ns;
  static Deadline from(const SolveOptions& options, uint64_t start_ns);
  bool passed() const;
};

}  // namespace tether::solverd::worker
