// CLP: the LP backend (and CBC's, for models without integer variables).
#include "backends.hpp"
#include "tether/common/clock.hpp"

#include <ClpEventHandler.hpp>
#include <ClpSimplex.hpp>
#include <ClpSolve.hpp>

namespace tether::solverd::worker {
namespace {

// Polled by CLP at every iteration (and by the presolved copy, which clones it): stops the
// simplex on an interrupt or at the deadline. CLP's own maximumSeconds counts CPU time; the
// deadline here is wall time, as time_limit means.
class StopHandler : public ClpEventHandler {
 public:
  StopHandler(const SolveHooks* hooks, const Deadline* deadline, bool* timed_out)
      : hooks_(hooks), deadline_(deadline), timed_out_(timed_out) {}
  ClpEventHandler* clone() const override { return new StopHandler(*this); }

  int event(Event which) override {
    if (which != endOfIteration && which != endOfFactorization) return -1;
    if (hooks_->interrupted()) return 0;
    if (deadline_->passed()) {
      *timed_out_ = true;
      return 0;
    }
    return -1;
  }

 private:
  const SolveHooks* hooks_;
  const Deadline* deadline_;
  bool* timed_out_;
};

Status statusOf(const ClpSimplex& model, bool timed_out, bool interrupted) {
  switch (model.status()) {
    case 0: return Status::Optimal;
    case 1: return Status::Infeasible;
    case 2: return Status::Unbounded;
    case 3: return timed_out || model.secondaryStatus() == 9 ? Status::TimeLimit : Status::IterationLimit;
    case 4: return Status::NumericalError;
    case 5:
      if (interrupted) return Status::Interrupted;
      return timed_out ? Status::TimeLimit : Status::Unknown;
    default: return Status::Unknown;
  }
}

}  // namespace

SolveOutcome solveWithClp(const CoinProblem& problem, const SolveRequest& request,
                          const SolveHooks& hooks, SolverKind reported_as) {
  const uint64_t begin = monotonicNs();
  SolveOutcome outcome;
  outcome.kind = SolveOutcome::Kind::Solved;
  SolveResult& result = outcome.result;
  result.solver = reported_as;

  if (request.options.mip_gap && reported_as == SolverKind::Clp) {
    hooks.log("clp: option mip_gap does not apply to an LP solver; ignored");
  }
  if (request.options.threads && *request.options.threads > 1) {
    hooks.log("clp: the simplex runs on one thread; option threads ignored");
  }

  LineHandler handler([&hooks](std::string_view line) { hooks.log(line); });
  handler.setLogLevel(1);
  ClpSimplex model;
  model.passInMessageHandler(&handler);
  model.loadProblem(problem.matrix, problem.col_lower.data(), problem.col_upper.data(),
                    problem.objective.data(), problem.row_lower.data(), problem.row_upper.data());
  model.setOptimizationDirection(problem.maximize ? -1 : 1);

  Deadline deadline = Deadline::from(request.options, hooks.start_ns);
  bool timed_out = false;
  StopHandler stop(&hooks, &deadline, &timed_out);
  model.passInEventHandler(&stop);  // CLP keeps a clone
  if (request.options.time_limit) model.setMaximumWallSeconds(*request.options.time_limit);

  if (hooks.interrupted()) {
    result.status = Status::Interrupted;
  } else {
    ClpSolve options;
    options.setPresolveType(ClpSolve::presolveOn);
    // The dual simplex from the all-slack basis, not initialSolve's automatic choice: that one
    // may run the Idiot crash (or Sprint) first, and neither calls the event handler, so an
    // interrupt waited for them to end (seconds on a large LP). The dual simplex reads the
    // handler at every iteration (docs/cancel-latency.md).
    options.setSolveType(ClpSolve::useDual);
    model.initialSolve(options);
    // The clone that CLP polled said whether the deadline passed; ask the clock again.
    timed_out = timed_out || deadline.passed();
    result.status = statusOf(model, timed_out, hooks.interrupted());
  }
  result.iterations = model.numberIterations();
  if (result.status == Status::Optimal) {
    const double* x = model.primalColumnSolution();
    result.objective = objectiveOf(x, problem);
    result.bound = result.objective;
    fillSolution(x, problem, result);
  }
  result.solve_time_us = (monotonicNs() - begin) / 1'000;
  result.solve_time_ms = result.solve_time_us / 1'000;
  return outcome;
}

}  // namespace tether::solverd::worker
