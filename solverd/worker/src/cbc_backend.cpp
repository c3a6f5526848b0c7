// CBC: the MILP backend, through CbcMain1 so that a model gets the cbc command line's
// preprocessing, cut generators and heuristics, with our event handler for incumbents and
// interrupts (the pattern of CBC's own C interface, Cbc_C_Interface.cpp).
#include "backends.hpp"
#include "tether/common/clock.hpp"

#include <CbcEventHandler.hpp>
#include <CbcModel.hpp>
#include <CbcSolver.hpp>
#include <ClpEventHandler.hpp>
#include <ClpSimplex.hpp>
#include <OsiClpSolverInterface.hpp>

#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

namespace tether::solverd::worker {
namespace {

// What every clone of the event handler shares: CBC clones the handler into the model it
// really searches (CbcMain1 copies the caller's model) and, with threads, into each thread's
// model, so the state lives here and the handlers only point to it.
struct CbcRun {
  const SolveHooks* hooks = nullptr;
  const CoinProblem* problem = nullptr;
  Deadline deadline;
  std::mutex mutex;  // events come from CBC's threads when threads > 1
  double reported = std::numeric_limits<double>::infinity();  // minimization sense
  bool stopped_by_interrupt = false;
  bool stopped_by_deadline = false;
  // Set when an LP solved before the search (the root LP, those inside CglPreProcess) was cut
  // short by the interrupt: CBC then takes that LP for infeasible, so nothing it concludes
  // afterwards is proven and the status is interrupted whatever CBC says.
  bool lp_stopped_by_interrupt = false;
  // Set at CBC's first event (its first heuristics or branchAndBound): from then on CbcHooks
  // stops the search, and the LPs must run to their end, or CglPreProcess could not map the
  // incumbent back to the model as written (its postprocessing solves an LP).
  bool search_started = false;
};

// CBC's event handler is not called before its first heuristic, and the root LP of a large model
// (and the LPs inside preprocessing) take seconds. Every LP CBC solves runs in a copy of the
// ClpSimplex of the solver we hand it, and a copy clones its ClpEventHandler: this one, attached
// before CbcModel copies the solver, reaches all of them and, until the search starts, stops the
// simplex at the next iteration once the interrupt is set.
class CbcLpStop : public ClpEventHandler {
 public:
  explicit CbcLpStop(CbcRun* run) : run_(run) {}
  ClpEventHandler* clone() const override { return new CbcLpStop(*this); }

  int event(Event which) override {
    if (which != endOfIteration && which != endOfFactorization) return -1;
    if (!run_->hooks->interrupted()) return -1;
    std::lock_guard lock(run_->mutex);
    if (run_->search_started) return -1;
    run_->lp_stopped_by_interrupt = true;
    return 0;
  }

 private:
  CbcRun* run_;
};

class CbcHooks : public CbcEventHandler {
 public:
  explicit CbcHooks(CbcRun* run) : run_(run) {}
  CbcEventHandler* clone() const override { return new CbcHooks(*this); }

  CbcAction event(CbcEvent which) override {
    if (model_ == nullptr) return noAction;
    {
      std::lock_guard lock(run_->mutex);
      run_->search_started = true;
    }
    // Sub-models of heuristics (RINS, RENS, ... run a small branch and bound) have a parent;
    // their solutions reach the main model, which reports them.
    if (model_->parentModel() == nullptr) reportIncumbent();
    bool stop_now = false;
    if (run_->hooks->interrupted()) {
      std::lock_guard lock(run_->mutex);
      run_->stopped_by_interrupt = true;
      stop_now = true;
    } else if (run_->deadline.passed()) {
      std::lock_guard lock(run_->mutex);
      run_->stopped_by_deadline = true;
      stop_now = true;
    }
    if (!stop_now) return noAction;
    // The flag CBC's own Ctrl-C handler sets: honoured in the cut loop and the heuristics too,
    // not only where the return value is read. branchAndBound clears it when it starts, so it
    // is set again at every event until the search is over.
    model_->sayEventHappened();
    switch (which) {
      case node:
      case treeStatus:
      case solution:
      case heuristicSolution:
      case afterHeuristic:
      case heuristicPass:
      case endSearch:
        return stop;
      default:
        // For the other events `stop` (0) may mean something else, e.g. to the solution
        // checks; sayEventHappened() is enough there.
        return noAction;
    }
  }

 private:
  void reportIncumbent() {
    const double value = model_->getMinimizationObjValue();
    if (!(value < 1e49)) return;  // CBC's "no solution yet" is 1e50
    Incumbent found;
    {
      std::lock_guard lock(run_->mutex);
      if (!(value < run_->reported - 1e-9 * std::max(1.0, std::fabs(value)))) return;
      run_->reported = value;
    }
    // CbcMain1 searches a maximization as the minimization of the negated objective: the
    // searched model then says "minimize" while the model as written says "maximize".
    const double sign = run_->problem->maximize && model_->solver()->getObjSense() > 0 ? -1.0 : 1.0;
    found.objective = sign * model_->getObjValue() + run_->problem->objective_constant;
    double bound = model_->getBestPossibleObjValue();
    if (std::isfinite(bound) && std::fabs(bound) < 1e49) {
      found.bound = sign * bound + run_->problem->objective_constant;
      found.gap = relativeGap(found.objective, *found.bound);
    }
    found.elapsed_ms = run_->hooks->elapsedMs();
    run_->hooks->incumbent(found);
  }

  CbcRun* run_;
};

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Status statusOf(const CbcModel& model, const CbcRun& run, bool has_solution) {
  // A search that finished is reported as such even if an interrupt came in its last moments
  // (the handler may have seen the flag at endSearch).
  if (run.stopped_by_interrupt && model.status() != 0) return Status::Interrupted;
  if (run.lp_stopped_by_interrupt) return Status::Interrupted;
  switch (model.status()) {
    case 0:
      if (model.secondaryStatus() == 7) return Status::Unbounded;
      if (model.secondaryStatus() == 1 || !has_solution) return Status::Infeasible;
      return Status::Optimal;
    case 1:
      if (model.secondaryStatus() == 2) return Status::Optimal;  // within the requested mip_gap
      // CBC's own time check (secondary 4) and ours (the event handler) race to the deadline.
      if (model.secondaryStatus() == 4 || run.stopped_by_deadline) return Status::TimeLimit;
      if (model.secondaryStatus() == 3 || model.secondaryStatus() == 8) return Status::IterationLimit;
      return Status::Unknown;
    case 2: return Status::NumericalError;
    case 5:  // stopped by the event handler: ours stops only at an interrupt or the deadline
      return run.stopped_by_deadline ? Status::TimeLimit : Status::Unknown;
    default: return Status::Unknown;
  }
}

}  // namespace

SolveOutcome solveWithCbc(const CoinProblem& problem, const SolveRequest& request,
                          const SolveHooks& hooks) {
  if (problem.integers() == 0) return solveWithClp(problem, request, hooks, SolverKind::Cbc);

  const uint64_t begin = monotonicNs();
  SolveOutcome outcome;
  outcome.kind = SolveOutcome::Kind::Solved;
  SolveResult& result = outcome.result;
  result.solver = SolverKind::Cbc;

  LineHandler handler([&hooks](std::string_view line) { hooks.log(line); });
  handler.setLogLevel(1);

  OsiClpSolverInterface solver;
  solver.passInMessageHandler(&handler);
  solver.loadProblem(problem.matrix, problem.col_lower.data(), problem.col_upper.data(),
                     problem.objective.data(), problem.row_lower.data(),
                     problem.row_upper.data());
  solver.setObjSense(problem.maximize ? -1.0 : 1.0);
  for (int j = 0; j < problem.columns(); ++j) {
    if (problem.is_integer[static_cast<size_t>(j)] != 0) solver.setInteger(j);
  }

  CbcRun run;
  run.hooks = &hooks;
  run.problem = &problem;
  run.deadline = Deadline::from(request.options, hooks.start_ns);
  CbcLpStop lp_stop(&run);
  solver.getModelPtr()->passInEventHandler(&lp_stop);  // Clp keeps a clone, as do its copies

  CbcModel model(solver);
  model.passInMessageHandler(&handler);
  CbcSolverUsefulData data;
  data.useSignalHandler_ = false;  // SIGINT is not our channel (DESIGN.md)
  CbcMain0(model, data);
  CbcHooks events(&run);
  model.passInEventHandler(&events);  // CBC keeps a clone

  std::vector<std::string> args{"solverd-worker", "-log", "1"};
  if (request.options.time_limit) {
    args.insert(args.end(), {"-timeMode", "elapsed", "-seconds", number(*request.options.time_limit)});
  }
  if (request.options.mip_gap) args.insert(args.end(), {"-ratioGap", number(*request.options.mip_gap)});
  if (request.options.threads) {
    args.insert(args.end(), {"-threads", std::to_string(*request.options.threads)});
  }
  args.insert(args.end(), {"-solve", "-quit"});
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());

  if (hooks.interrupted()) {
    run.stopped_by_interrupt = true;
  } else {
    CbcMain1(static_cast<int>(argv.size()), argv.data(), model,
             [](CbcModel*, int) { return 0; }, data);
  }

  const double* best = model.bestSolution();
  result.status = statusOf(model, run, best != nullptr);
  if (best != nullptr) {
    result.objective = objectiveOf(best, problem);
    fillSolution(best, problem, result);
  }
  double bound = model.getBestPossibleObjValue();
  if (std::isfinite(bound) && std::fabs(bound) < 1e49) result.bound = bound + problem.objective_constant;
  if (result.status == Status::Optimal && result.objective && !request.options.mip_gap) {
    result.bound = result.objective;
  }
  result.nodes = model.getNodeCount();
  result.iterations = model.getIterationCount();
  result.solve_time_us = (monotonicNs() - begin) / 1'000;
  result.solve_time_ms = result.solve_time_us / 1'000;
  return outcome;
}

}  // namespace tether::solverd::worker
