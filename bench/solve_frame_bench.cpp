// The model's trip into the worker (issue 15): the time to build the solve frame for a large
// model, through a json value as solverd did (copy into the json, dump, copy behind the length)
// and in one pass (solveFrameBytes), plus the worker's parse of the same frame for scale.
//   solve_frame_bench [MB]     (default 50; run from a Release build)
#include "tether/agent/control/frame.hpp"
#include "tether/solverd/solve_spec.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace {

// The best of three runs, in ms.
double bestMs(const std::function<size_t()>& run, size_t* bytes) {
  double best = 1e300;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    *bytes = run();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mb = argc > 1 ? static_cast<size_t>(std::atoi(argv[1])) : 50;
  tether::solverd::SolveSpec spec;
  spec.model = "Minimize\n obj: x0 + x1\nSubject To\n";
  for (size_t row = 0; spec.model.size() < mb << 20; ++row) {
    spec.model += " c" + std::to_string(row) + ": 3 x" + std::to_string(row) + " + 4 x" + std::to_string(row + 1) +
                  " - 2.5 y" + std::to_string(row % 977) + " <= 17\n";
  }
  spec.model += "End\n";
  spec.options = {{"time_limit", 60}};
  double size_mb = static_cast<double>(spec.model.size()) / (1 << 20);

  size_t before_bytes = 0, after_bytes = 0, parsed = 0;
  double before = bestMs(
      [&] {
        std::string payload = tether::solverd::solveFrame(spec).dump(-1, ' ', false,
                                                                     nlohmann::json::error_handler_t::replace);
        return tether::agent::control::encodeRawFrame(payload).size();
      },
      &before_bytes);
  std::string frame;
  double after = bestMs(
      [&] {
        frame = tether::solverd::solveFrameBytes(spec);
        return frame.size();
      },
      &after_bytes);
  double parse = bestMs([&] { return nlohmann::json::parse(frame.begin() + 4, frame.end()).size(); }, &parsed);
  std::printf("model %.1f MB: solve frame via json value %.1f ms (%zu bytes), one pass %.1f ms (%zu bytes), "
              "%.1fx; the worker's json parse of it %.1f ms\n",
              size_mb, before, before_bytes, after, after_bytes, before / after, parse);
  return before_bytes == after_bytes ? 0 : 1;
}
