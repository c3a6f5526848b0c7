#pragma once
// The model readers, on their own: a backend reads the model with its solver's own reader
// (CoinLpIO / CoinMpsIO for CBC and CLP, glp_read_lp / glp_read_mps for GLPK), so that a model
// the solver cannot read is refused with the solver's own words. The fuzz target and the tests
// call these directly.
#include "tether/solverd/worker/protocol.hpp"

#include <string>
#include <string_view>

namespace tether::solverd::worker {

// Which reader family: CBC and CLP share COIN-OR's readers, GLPK has its own.
enum class ReaderFamily { Coin, Glpk };

ReaderFamily readerFamily(SolverKind solver);

struct ModelSummary {
  int rows = 0;
  int columns = 0;
  int integers = 0;
  bool maximize = false;
};

// Reads `text` as `format` with the readers of `family`. Returns false with the reader's own
// message (its printed lines, the temporary file's name replaced by "model") if it refuses the
// model. Never throws; safe to call any number of times in one process.
bool readModel(std::string_view text, ModelFormat format, ReaderFamily family, ModelSummary& out,
               std::string& message);

}  // namespace tether::solverd::worker
