// Every model of the corpus (tests/solverd/models/models.json) with every backend that can
// solve it, through the real solverd-worker binary: the known status and objective, incumbents
// that only improve and end at the result, and the reader's own message for malformed models.
#include "worker_harness.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace tether::solverd::worker::test {
namespace {

struct Case {
  std::string file;
  std::string format;
  std::string solver;
  std::string kind;
  std::string sense;
  std::string status;
  std::optional<double> objective;
  std::string role;
};

std::vector<Case> corpusCases() {
  std::vector<Case> cases;
  const auto index = modelIndex();  // a named copy: a range-for over a temporary's member dangles
  for (const auto& e : index["models"]) {
    const std::string role = e["role"];
    if (role == "hard") continue;  // the interrupt tests use it
    for (const auto& solver : e["solvers"]) {
      Case c{e["file"], e["format"], solver, e["kind"], e["sense"], e["status"], std::nullopt, role};
      if (e["objective"].is_number()) c.objective = e["objective"].get<double>();
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

std::string caseName(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.file + "_" + info.param.solver;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

bool near(double a, double b) { return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

class WorkerCorpus : public NoWorkerLeftBehind, public testing::WithParamInterface<Case> {};

TEST_P(WorkerCorpus, SolvesToTheKnownStatusAndObjective) {
  const Case& c = GetParam();
  int exit_code = -1;
  auto frames = runToEnd(solveFrame(modelText(c.file), c.format, c.solver), exit_code);
  ASSERT_FALSE(frames.empty());
  const auto& last = frames.back();

  if (c.role == "malformed") {
    EXPECT_EQ(exit_code, 1);
    EXPECT_EQ(last["type"], "error") << last.dump();
    EXPECT_EQ(last["code"], "invalid_model");
    EXPECT_FALSE(last["message"].get<std::string>().empty());
    EXPECT_EQ(last["message"].get<std::string>().find("/proc/self/fd"), std::string::npos)
        << "the message should name the model, not our memory file: " << last["message"];
    return;
  }

  EXPECT_EQ(exit_code, 0);
  ASSERT_EQ(last["type"], "result") << last.dump();
  EXPECT_EQ(last["status"], c.status) << last.dump();
  EXPECT_EQ(last["solver"], c.solver);
  EXPECT_TRUE(last["solve_time_ms"].is_number_unsigned());
  EXPECT_TRUE(last["nodes"].is_number_integer());
  EXPECT_TRUE(last["iterations"].is_number_integer());
  if (c.objective) {
    ASSERT_TRUE(last["objective"].is_number()) << last.dump();
    EXPECT_TRUE(near(last["objective"].get<double>(), *c.objective))
        << "objective " << last["objective"] << ", expected " << *c.objective;
    ASSERT_TRUE(last["bound"].is_number()) << last.dump();
    EXPECT_TRUE(near(last["bound"].get<double>(), *c.objective)) << "bound " << last["bound"];
    // Nonzeros only, by the model's names.
    for (const auto& [name, value] : last["solution"].items()) {
      EXPECT_FALSE(name.empty());
      EXPECT_NE(value.get<double>(), 0.0) << name;
    }
  } else {
    EXPECT_TRUE(last["objective"].is_null()) << last.dump();
    EXPECT_TRUE(last["solution"].empty()) << last.dump();
  }

  // Incumbents: each better than the one before, the last one the answer.
  std::optional<double> previous;
  for (const auto& f : frames) {
    const std::string type = f["type"];
    EXPECT_TRUE(type == "log" || type == "incumbent" || type == "result") << f.dump();
    if (type != "incumbent") continue;
    double value = f["objective"].get<double>();
    if (previous) {
      if (c.sense == "max") {
        EXPECT_GT(value, *previous) << f.dump();
      } else {
        EXPECT_LT(value, *previous) << f.dump();
      }
    }
    EXPECT_TRUE(f["elapsed_ms"].is_number_unsigned());
    previous = value;
  }
  if (previous && c.objective) {
    EXPECT_TRUE(near(*previous, *c.objective)) << "last incumbent " << *previous;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, WorkerCorpus, testing::ValuesIn(corpusCases()), caseName);

}  // namespace
}  // namespace tether::solverd::worker::test
