#pragma once
// The solver backends behind one function: read the model with the chosen solver's reader,
// solve it, stream log lines and incumbents, and return the result.
//
// Interruption follows DESIGN.md: another thread sets `interrupt`, and the solver's own callback
// polls it (CBC: CbcEventHandler; CLP: ClpEventHandler; GLPK: between the slices its simplex
// runs in, and glp_ios_terminate from the MIP callback). An interrupted solve still returns a
// result, with status interrupted and the best incumbent (or feasible LP point) found so far.
#include "tether/solverd/worker/protocol.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace tether::solverd::worker {

struct SolveHooks {
  const std::atomic<bool>* interrupt = nullptr;  // may be null: never interrupted
  // Called on the solving thread; may be empty.
  std::function<void(std::string_view line)> on_log;
  std::function<void(const Incumbent&)> on_incumbent;
  // Called with true just before the model reader runs and with false after it: the worker
  // guards that stretch against reader crashes (worker.cpp).
  std::function<void(bool reading)> on_reading;
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC; incumbents' elapsed_ms count from here

  bool interrupted() const { return interrupt != nullptr && interrupt->load(std::memory_order_relaxed); }
  uint64_t elapsedMs() const;
  void log(std::string_view line) const {
    if (on_log) on_log(line);
  }
  void incumbent(const Incumbent& found) const {
    if (on_incumbent) on_incumbent(found);
  }
  void reading(bool now) const {
    if (on_reading) on_reading(now);
  }
};

struct SolveOutcome {
  enum class Kind {
    Solved,        // `result` holds the answer (including interrupted, time_limit, ...)
    InvalidModel,  // the reader refused the model: `message` is the reader's own text
    SolverError,   // the solver failed in a way that is not the model's fault: `message`
  };
  Kind kind = Kind::SolverError;
  SolveResult result;
  std::string message;
};

// Runs the whole solve on the calling thread. Never throws.
SolveOutcome solve(const SolveRequest& request, const SolveHooks& hooks);

}  // namespace tether::solverd::worker
