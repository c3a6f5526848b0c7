#pragma once
// COIN-OR pieces shared by the CBC and CLP backends: a message handler that hands every printed
// line to a function (the reader's error text, the solver's log frames), and the model as the
// COIN readers (CoinLpIO, CoinMpsIO) give it.
#include "tether/solverd/worker/protocol.hpp"

#include <CoinMessageHandler.hpp>
#include <CoinPackedMatrix.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::solverd::worker {

// Every message COIN prints goes to `sink`, one line at a time, instead of stdout.
class LineHandler : public CoinMessageHandler {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit LineHandler(Sink sink) : sink_(std::move(sink)) {}
  int print() override;
  CoinMessageHandler* clone() const override { return new LineHandler(*this); }

 private:
  Sink sink_;
};

// A linear model in the objective sense it was written in (CoinLpIO turns a maximization into
// a minimization on reading; readCoinProblem turns it back and says `maximize`).
struct CoinProblem {
  CoinPackedMatrix matrix;  // column-ordered
  std::vector<double> col_lower, col_upper, objective, row_lower, row_upper;
  std::vector<char> is_integer;
  std::vector<std::string> col_names;
  double objective_constant = 0;  // added to c'x to give the model's objective value
  bool maximize = false;

  int columns() const { return static_cast<int>(col_lower.size()); }
  int rows() const { return static_cast<int>(row_lower.size()); }
  int integers() const;
};

// Reads with CoinLpIO or CoinMpsIO. Returns false with the reader's own message.
bool readCoinProblem(std::string_view text, ModelFormat format, CoinProblem& out,
                     std::string& message);

}  // namespace tether::solverd::worker
