#pragma once
// A generated transportation LP in CPLEX LP format: n sources (capacity 100) by n sinks (demand
// `demand`), costs from a fixed-seed LCG in 1..1000. Its text grows as n² (n = 200 is over the
// control protocol's 1 MiB frame) and its simplex takes seconds for n in the hundreds, which is
// what the tests that use it need: a big model, or a long simplex to interrupt.
#include <string>

namespace tether::test {

inline std::string transportationLp(int n, int demand) {
  std::string lp = "Minimize\n obj:";
  lp.reserve(static_cast<size_t>(n) * static_cast<size_t>(n) * 40);
  unsigned state = 12345;
  auto next = [&state] {
    state = state * 1103515245U + 12345U;
    return (state >> 8) % 1000 + 1;
  };
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) lp += " + " + std::to_string(next()) + " x" + std::to_string(i) + "_" + std::to_string(j);
    lp += "\n";
  }
  lp += "Subject To\n";
  for (int i = 0; i < n; ++i) {
    lp += " s" + std::to_string(i) + ":";
    for (int j = 0; j < n; ++j) lp += " + x" + std::to_string(i) + "_" + std::to_string(j);
    lp += " <= 100\n";
  }
  for (int j = 0; j < n; ++j) {
    lp += " d" + std::to_string(j) + ":";
    for (int i = 0; i < n; ++i) lp += " + x" + std::to_string(i) + "_" + std::to_string(j);
    lp += " >= " + std::to_string(demand) + "\n";
  }
  return lp + "End\n";
}

}  // namespace tether::test
