// GLPK: simplex for LPs, branch and cut (glp_intopt) for MILPs.
//
// GLPK has no hook inside glp_simplex, so the simplex runs in slices: each call gets a time limit
// of kSliceMs and resumes from the basis the previous one left in the problem object (GLPK's
// warm start), and the interrupt flag is read between slices. An interrupt is thus seen within
// one slice plus one simplex iteration. A MILP's root LP goes through the same slices (and then
// glp_intopt runs without its presolver, which would solve the root LP again, unstoppably);
// the search itself stops through glp_ios_terminate in the callback. What is left unstoppable:
// one node LP or one cut generator call inside glp_intopt (docs/cancel-latency.md).
#include "backends.hpp"
#include "tether/common/clock.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <optional>

namespace tether::solverd::worker {
namespace {

struct GlpkRun {
  const SolveHooks* hooks = nullptr;
  bool stopped_by_interrupt = false;
  int64_t nodes = 0;
  std::optional<double> bound;
};

// glp_intopt's callback: called at every step of the search. It reports each better integer
// solution (GLP_IBINGO) and ends the search on an interrupt (glp_ios_terminate); GLPK then
// returns GLP_ESTOP with the incumbent kept.
void onSearchEvent(glp_tree* tree, void* info) {
  auto* run = static_cast<GlpkRun*>(info);
  int active = 0;
  int total = 0;
  glp_ios_tree_size(tree, &active, nullptr, &total);
  run->nodes = total;
  if (int best = glp_ios_best_node(tree); best != 0) run->bound = glp_ios_node_bound(tree, best);

  if (glp_ios_reason(tree) == GLP_IBINGO) {
    // The problem the search works on (the original one: the MIP presolver is off).
    glp_prob* searched = glp_ios_get_prob(tree);
    Incumbent found;
    found.objective = glp_mip_obj_val(searched);
    if (run->bound) {
      found.bound = *run->bound;
      found.gap = relativeGap(found.objective, *run->bound);
    }
    found.elapsed_ms = run->hooks->elapsedMs();
    run->hooks->incumbent(found);
  }
  if (run->hooks->interrupted() && !run->stopped_by_interrupt) {
    run->stopped_by_interrupt = true;
    glp_ios_terminate(tree);
  }
}

// Short enough that an interrupt waits a few milliseconds; long enough that the work each call
// redoes (GLPK rebuilds its internal LP and refactorizes the basis) stays small beside it.
constexpr int kSliceMs = 5;

int msToGlpk(double seconds) {
  double ms = std::ceil(seconds * 1000.0);
  return ms >= static_cast<double>(std::numeric_limits<int>::max()) ? std::numeric_limits<int>::max()
                                                                    : static_cast<int>(ms);
}

Status lpStatus(int rc, glp_prob* p) {
  switch (rc) {
    case 0: break;
    case GLP_ETMLIM: return Status::TimeLimit;
    case GLP_EITLIM: return Status::IterationLimit;
    case GLP_ENOPFS: return Status::Infeasible;
    case GLP_ENODFS: return Status::Unbounded;
    default: return Status::NumericalError;  // GLP_ESING, GLP_ECOND, GLP_EFAIL, GLP_EOBJLL, ...
  }
  switch (glp_get_status(p)) {
    case GLP_OPT: return Status::Optimal;
    case GLP_NOFEAS: return Status::Infeasible;
    case GLP_UNBND: return Status::Unbounded;
    default: return Status::Unknown;
  }
}

Status mipStatus(int rc, glp_prob* p, const GlpkRun& run) {
  switch (rc) {
    case 0: break;
    case GLP_ESTOP: return run.stopped_by_interrupt ? Status::Interrupted : Status::Unknown;
    case GLP_ETMLIM: return Status::TimeLimit;
    case GLP_EMIPGAP: return Status::Optimal;  // within the requested mip_gap
    case GLP_ENOPFS: return Status::Infeasible;
    // The LP relaxation is unbounded: so is the MILP unless it is infeasible, which GLPK does
    // not go on to find out.
    case GLP_ENODFS: return Status::Unbounded;
    default: return Status::NumericalError;
  }
  switch (glp_mip_status(p)) {
    case GLP_OPT: return Status::Optimal;
    case GLP_NOFEAS: return Status::Infeasible;
    default: return Status::Unknown;
  }
}

// glp_simplex in slices of kSliceMs from the problem's current basis, until it ends by itself,
// the interrupt comes (returns GLP_ESTOP: GLPK's own code for "stopped by the application") or
// `total_ms` is used up (GLP_ETMLIM, as one call would have said). Only the first slice prints
// GLPK's banner and progress; later ones only errors, or every slice would repeat the banner.
int slicedSimplex(glp_prob* p, glp_smcp smcp, std::optional<int> total_ms, const SolveHooks& hooks,
                  int& slices) {
  const uint64_t begin = monotonicNs();
  for (;;) {
    int slice = kSliceMs;
    if (total_ms) {
      const auto used = static_cast<int64_t>((monotonicNs() - begin) / 1'000'000);
      if (used >= *total_ms) return GLP_ETMLIM;
      slice = static_cast<int>(std::min<int64_t>(slice, *total_ms - used));
    }
    smcp.tm_lim = slice;
    const int rc = glp_simplex(p, &smcp);
    ++slices;
    smcp.msg_lev = GLP_MSG_ERR;
    if (rc != GLP_ETMLIM) return rc;
    if (hooks.interrupted()) return GLP_ESTOP;
  }
}

// The point an interrupted simplex stopped at, when it is primal feasible: a feasible answer,
// which is what an incumbent is to an LP.
bool feasiblePoint(glp_prob* p) { return glp_get_prim_stat(p) == GLP_FEAS; }

}  // namespace

SolveOutcome solveWithGlpk(GlpkProblem problem, const SolveRequest& request,
                           const SolveHooks& hooks) {
  const uint64_t begin = monotonicNs();
  SolveOutcome outcome;
  outcome.kind = SolveOutcome::Kind::Solved;
  SolveResult& result = outcome.result;
  result.solver = SolverKind::Glpk;
  glp_prob* p = problem.get();
  const bool mip = glp_get_num_int(p) > 0;

  if (request.options.threads && *request.options.threads > 1) {
    hooks.log("glpk: runs on one thread; option threads ignored");
  }
  if (request.options.mip_gap && !mip) {
    hooks.log("glpk: option mip_gap does not apply to an LP; ignored");
  }

  GlpkTermCapture capture([&hooks](std::string_view line) { hooks.log(line); });
  GlpkRun run;
  run.hooks = &hooks;

  if (hooks.interrupted()) {
    result.status = Status::Interrupted;
  } else {
    std::optional<int> total_ms;
    if (request.options.time_limit) total_ms = msToGlpk(*request.options.time_limit);
    glp_smcp smcp;
    glp_init_smcp(&smcp);
    smcp.msg_lev = GLP_MSG_ON;
    // No presolve: without it GLPK tells an infeasible LP from an unbounded one; and the
    // presolver would throw away the basis each slice resumes from.
    smcp.presolve = GLP_OFF;
    int slices = 0;
    const int lp_rc = slicedSimplex(p, smcp, total_ms, hooks, slices);
    if (slices > 1) hooks.log("glpk: simplex ran in " + std::to_string(slices) + " slices");
    if (!mip) {
      if (lp_rc == GLP_ESTOP) {
        result.status = Status::Interrupted;
        if (feasiblePoint(p)) result.objective = glp_get_obj_val(p);
      } else {
        result.status = lpStatus(lp_rc, p);
        if (result.status == Status::Optimal) {
          result.objective = glp_get_obj_val(p);
          result.bound = result.objective;
        }
      }
    } else if (lp_rc == GLP_ESTOP) {
      // Interrupted in the root LP: no integer point yet.
      result.status = Status::Interrupted;
    } else if (lp_rc != 0 || glp_get_status(p) != GLP_OPT) {
      // The root LP did not end optimal: its status is the MILP's (an unbounded relaxation
      // means an unbounded MILP unless it is infeasible, which GLPK does not go on to find out).
      result.status = lpStatus(lp_rc, p);
    } else {
      glp_iocp iocp;
      glp_init_iocp(&iocp);
      iocp.msg_lev = GLP_MSG_ON;
      iocp.presolve = GLP_OFF;  // the root LP is solved: the search starts from its basis
      iocp.cb_func = onSearchEvent;
      iocp.cb_info = &run;
      if (total_ms) {
        const auto used = static_cast<int64_t>((monotonicNs() - begin) / 1'000'000);
        iocp.tm_lim = static_cast<int>(std::max<int64_t>(1, *total_ms - used));
      }
      if (request.options.mip_gap) iocp.mip_gap = *request.options.mip_gap;
      const int rc = glp_intopt(p, &iocp);
      result.status = mipStatus(rc, p, run);
      const int mip_status = glp_mip_status(p);
      if (mip_status == GLP_OPT || mip_status == GLP_FEAS) result.objective = glp_mip_obj_val(p);
      if (result.status == Status::Optimal && result.objective && !request.options.mip_gap) {
        result.bound = result.objective;
      } else {
        result.bound = run.bound;
      }
      result.nodes = run.nodes;
    }
  }
  result.iterations = glp_get_it_cnt(p);

  if (result.objective) {
    const int n = glp_get_num_cols(p);
    for (int j = 1; j <= n; ++j) {
      const bool integer = glp_get_col_kind(p, j) != GLP_CV;
      double v = mip ? glp_mip_col_val(p, j) : glp_get_col_prim(p, j);
      if (integer) v = std::round(v);
      if (std::fabs(v) < 1e-9) continue;
      const char* name = glp_get_col_name(p, j);
      result.solution.emplace_back(name != nullptr ? std::string(name) : std::string("C").append(std::to_string(j)), v);
    }
  }
  result.solve_time_us = (monotonicNs() - begin) / 1'000;
  result.solve_time_ms = result.solve_time_us / 1'000;
  return outcome;
}

}  // namespace tether::solverd::worker
