// The worker protocol on the real solverd-worker binary: every way of being told to stop
// (interrupt frame, end of stdin, SIGTERM) returns the best incumbent with status interrupted,
// time limits, options, and every refusal with its error frame and exit code.
#include "worker_harness.hpp"
#include "../support/transportation_lp.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>

namespace tether::solverd::worker::test {
namespace {

using Clock = std::chrono::steady_clock;

class WorkerInterrupt : public NoWorkerLeftBehind {};
class WorkerOptions : public NoWorkerLeftBehind {};
class WorkerOutput : public NoWorkerLeftBehind {};
class WorkerRefusal : public NoWorkerLeftBehind {};

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

const std::string& hardModel() {
  static const std::string text = modelText("market_split_hard.lp");
  return text;
}

// Starts a solve of the hard market-split instance, waits for its first incumbent and a little
// more (so that there is a "best so far" to lose), stops it with `stop`, and checks that the
// result is the interrupted best incumbent, quickly.
void expectStoppedWithBestIncumbent(const std::string& solver, const std::string& how,
                                    const std::function<void(WorkerProcess&)>& stop) {
  WorkerProcess worker;
  const auto start = Clock::now();
  ASSERT_TRUE(worker.send(solveFrame(hardModel(), "lp", solver)));
  auto first = worker.nextOfType("incumbent", 10s);
  ASSERT_TRUE(first) << "no incumbent; stderr: " << worker.stderrText();
  const double first_ms = msSince(start);
  std::printf("[ %s ] first incumbent %.0f after %.1f ms (worker says elapsed_ms=%s)\n", solver.c_str(),
              (*first)["objective"].get<double>(), first_ms, (*first)["elapsed_ms"].dump().c_str());
  EXPECT_LT(first_ms, 2000) << "the daemon's tests count on an incumbent within about a second";

  // More incumbents may come; the result must carry the last one.
  while (worker.next(300ms)) {
  }
  const auto stop_at = Clock::now();
  stop(worker);
  auto result = worker.nextOfType("result", 10s);
  const double stop_ms = msSince(stop_at);
  ASSERT_TRUE(result) << "no result after " << how << "; stderr: " << worker.stderrText();
  std::printf("[ %s ] %s -> result in %.1f ms\n", solver.c_str(), how.c_str(), stop_ms);
  // A guard against a hang that a loaded 2-core CI machine under ASan holds (2.3 s seen there);
  // the latency itself is bench/cancel_latency.sh's.
  EXPECT_LT(stop_ms, 10000) << "DESIGN.md wants ~100 ms; this bound only guards against a hang";

  EXPECT_EQ((*result)["status"], "interrupted") << result->dump();
  EXPECT_EQ((*result)["status_code"], 7);
  std::optional<double> last_incumbent;
  for (const auto& f : worker.frames()) {
    if (f["type"] == "incumbent") last_incumbent = f["objective"].get<double>();
  }
  ASSERT_TRUE(last_incumbent);
  ASSERT_TRUE((*result)["objective"].is_number()) << result->dump();
  EXPECT_NEAR((*result)["objective"].get<double>(), *last_incumbent, 1e-6) << result->dump();
  EXPECT_FALSE((*result)["solution"].empty());

  auto code = worker.finish(10s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << "an interrupted solve with a result is a success";
}

TEST_F(WorkerInterrupt, InterruptFrameStopsCbcWithBestIncumbent) {
  expectStoppedWithBestIncumbent("cbc", "interrupt frame", [](WorkerProcess& w) { w.send({{"type", "interrupt"}}); });
}

TEST_F(WorkerInterrupt, InterruptFrameStopsGlpkWithBestIncumbent) {
  expectStoppedWithBestIncumbent("glpk", "interrupt frame", [](WorkerProcess& w) { w.send({{"type", "interrupt"}}); });
}

TEST_F(WorkerInterrupt, StdinEndOfFileActsAsInterrupt) {
  expectStoppedWithBestIncumbent("cbc", "stdin closed", [](WorkerProcess& w) { w.closeStdin(); });
}

TEST_F(WorkerInterrupt, SigtermActsAsInterrupt) {
  expectStoppedWithBestIncumbent("cbc", "SIGTERM", [](WorkerProcess& w) { w.signal(SIGTERM); });
}

TEST_F(WorkerInterrupt, SigtermStopsGlpkToo) {
  expectStoppedWithBestIncumbent("glpk", "SIGTERM", [](WorkerProcess& w) { w.signal(SIGTERM); });
}

TEST_F(WorkerInterrupt, RepeatedInterruptFramesAreHarmless) {
  expectStoppedWithBestIncumbent("cbc", "three interrupt frames", [](WorkerProcess& w) {
    for (int i = 0; i < 3; ++i) w.send({{"type", "interrupt"}});
  });
}

// GLPK's simplex has no hook of its own; it runs in slices of a few milliseconds, resumed from the
// basis the last one left, and the interrupt is read between slices. A transportation LP whose
// simplex takes seconds, interrupted once GLPK reports progress ("N: obj = ..."), must end
// within a fraction of that: before slicing it ran to its end (or to the kill after the grace).
void expectGlpkSimplexInterrupted(const std::string& lp, const std::string& what) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.send(solveFrame(lp, "lp", "glpk")));
  const auto start = Clock::now();
  bool in_simplex = false;
  while (!in_simplex) {
    auto f = worker.next(60s);
    ASSERT_TRUE(f) << "no progress from GLPK; stderr: " << worker.stderrText();
    ASSERT_NE((*f)["type"], "result") << what << " ended before the interrupt: make the model bigger\n" << f->dump();
    in_simplex = (*f)["type"] == "log" && (*f)["line"].get<std::string>().find("obj =") != std::string::npos;
  }
  const double before_ms = msSince(start);
  const auto stop_at = Clock::now();
  ASSERT_TRUE(worker.send({{"type", "interrupt"}}));
  auto result = worker.nextOfType("result", 30s);
  const double stop_ms = msSince(stop_at);
  ASSERT_TRUE(result) << worker.stderrText();
  std::printf("[ glpk ] %s: interrupt %.0f ms into the simplex -> result in %.1f ms\n", what.c_str(), before_ms,
              stop_ms);
  EXPECT_EQ((*result)["status"], "interrupted") << result->dump().substr(0, 300);
  // A sanitizer build on a loaded machine: far above the slice, far below the solve's seconds.
  EXPECT_LT(stop_ms, 500) << "GLPK did not see the interrupt between slices";
  auto code = worker.finish(10s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << "an interrupted solve with a result is a success";
}

TEST_F(WorkerInterrupt, InterruptFrameStopsGlpkSimplexOfAnLpWithinASlice) {
  expectGlpkSimplexInterrupted(::tether::test::transportationLp(300, 99), "LP");
}

TEST_F(WorkerInterrupt, InterruptFrameStopsGlpkInTheRootLpOfAMilp) {
  // The same LP with its variables integer: the root LP is where GLPK spends its seconds, and
  // glp_intopt's own presolver would have solved it without any callback.
  std::string milp = ::tether::test::transportationLp(300, 99);
  std::string general = "General\n";
  for (int i = 0; i < 300; ++i) general += " x" + std::to_string(i) + "_0";
  milp.insert(milp.rfind("End\n"), general + "\n");
  expectGlpkSimplexInterrupted(milp, "MILP root LP");
}

// The time limit ends the search with the best incumbent, status time_limit and exit code 3.
void expectTimeLimit(const std::string& solver) {
  WorkerProcess worker;
  const auto start = Clock::now();
  ASSERT_TRUE(worker.send(solveFrame(hardModel(), "lp", solver, {{"time_limit", 0.5}})));
  auto result = worker.nextOfType("result", 20s);
  ASSERT_TRUE(result) << worker.stderrText();
  std::printf("[ %s ] time_limit 0.5 s -> result after %.0f ms\n", solver.c_str(), msSince(start));
  EXPECT_EQ((*result)["status"], "time_limit") << result->dump();
  EXPECT_EQ((*result)["status_code"], 4);
  EXPECT_TRUE((*result)["objective"].is_number()) << "the incumbent is kept: " << result->dump();
  EXPECT_LT(msSince(start), 5000);
  auto code = worker.finish(10s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 3);
}

TEST_F(WorkerOptions, TimeLimitStopsCbcWithIncumbentAndExitCode3) { expectTimeLimit("cbc"); }
TEST_F(WorkerOptions, TimeLimitStopsGlpkWithIncumbentAndExitCode3) { expectTimeLimit("glpk"); }

// A transportation LP of several MB: larger than a control-protocol frame (1 MiB), and big
// enough that CLP's event handler, not the solve's end, meets the deadline first.
std::string bigTransportationLp(int n) { return ::tether::test::transportationLp(n, 90); }

TEST_F(WorkerOptions, ModelLargerThanAControlFrameIsSolvedByEveryLpBackend) {
  const std::string lp = bigTransportationLp(200);
  ASSERT_GT(lp.size(), 1u << 20);
  std::optional<double> objective;
  for (const std::string solver : {"clp", "cbc", "glpk"}) {
    int exit_code = -1;
    auto frames = runToEnd(solveFrame(lp, "lp", solver), exit_code);
    ASSERT_FALSE(frames.empty()) << solver;
    EXPECT_EQ(exit_code, 0) << solver;
    EXPECT_EQ(frames.back()["status"], "optimal") << solver << ": " << frames.back().dump().substr(0, 300);
    if (!frames.back()["objective"].is_number()) continue;
    double value = frames.back()["objective"].get<double>();
    if (objective) {
      EXPECT_NEAR(value, *objective, 1e-6 * std::fabs(*objective)) << solver;
    }
    objective = value;
  }
}

TEST_F(WorkerOptions, LpTimeLimitStopsTheSimplexOfEveryLpBackend) {
  const std::string lp = bigTransportationLp(200);
  for (const std::string solver : {"clp", "cbc", "glpk"}) {
    // Reading alone takes longer than this limit: the solver must stop at its first check.
    int exit_code = -1;
    auto frames = runToEnd(solveFrame(lp, "lp", solver, {{"time_limit", 0.001}}), exit_code);
    ASSERT_FALSE(frames.empty()) << solver;
    EXPECT_EQ(frames.back()["status"], "time_limit") << solver << ": " << frames.back().dump().substr(0, 300);
    EXPECT_EQ(exit_code, 3) << solver;
  }
}

TEST_F(WorkerOptions, MipGapEndsTheSearchOnceTheGapIsMet) {
  for (const std::string solver : {"cbc", "glpk"}) {
    // The hard instance's bound stays 0 for seconds, so only a gap above 100% is met early
    // (CBC stops when objective - bound < mip_gap * |objective|, strictly).
    const auto start = Clock::now();
    int exit_code = -1;
    auto frames = runToEnd(solveFrame(hardModel(), "lp", solver, {{"mip_gap", 2.0}}), exit_code, 30s);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(exit_code, 0) << solver;
    EXPECT_EQ(frames.back()["status"], "optimal") << solver << ": " << frames.back().dump().substr(0, 300);
    EXPECT_TRUE(frames.back()["objective"].is_number());
    EXPECT_LT(msSince(start), 5000) << solver;
  }
}

TEST_F(WorkerOptions, CbcWithTwoThreadsFindsTheSameOptimum) {
  int exit_code = -1;
  auto frames = runToEnd(solveFrame(modelText("market_split_medium.lp"), "lp", "cbc", {{"threads", 2}}), exit_code);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(exit_code, 0);
  EXPECT_EQ(frames.back()["status"], "optimal");
  double expected = 0;
  const auto index = modelIndex();  // a named copy: a range-for over a temporary's member dangles
  for (const auto& e : index["models"]) {
    if (e["file"] == "market_split_medium.lp") expected = e["objective"].get<double>();
  }
  EXPECT_NEAR(frames.back()["objective"].get<double>(), expected, 1e-6);
}

TEST_F(WorkerOptions, ObjectiveConstantOfAnMpsModelIsCounted) {
  // min 2x + 3y + 5 (the RHS of the objective row is the constant with its sign changed),
  // x + y >= 4, x <= 3: optimum x = 3, y = 1, objective 6 + 3 + 5 = 14.
  const std::string mps =
      "NAME          CONST\nROWS\n N  OBJ\n G  C1\nCOLUMNS\n    X         OBJ                2   C1                 1\n"
      "    Y         OBJ                3   C1                 1\nRHS\n    RHS       OBJ               -5   C1                 4\n"
      "BOUNDS\n UP BND       X                  3\nENDATA\n";
  for (const std::string solver : {"cbc", "clp", "glpk"}) {
    int exit_code = -1;
    auto frames = runToEnd(solveFrame(mps, "mps", solver), exit_code);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(exit_code, 0) << solver;
    ASSERT_TRUE(frames.back()["objective"].is_number()) << solver << ": " << frames.back().dump();
    EXPECT_NEAR(frames.back()["objective"].get<double>(), 14.0, 1e-9) << solver;
  }
}

TEST_F(WorkerOutput, SolverOutputArrivesAsLogFramesAndNeverCorruptsStdout) {
  int exit_code = -1;
  auto frames = runToEnd(solveFrame(modelText("knapsack.lp"), "lp", "cbc"), exit_code);
  EXPECT_EQ(exit_code, 0);
  int logs = 0;
  for (const auto& f : frames) {
    if (f["type"] == "log") {
      ++logs;
      EXPECT_TRUE(f["line"].is_string());
    }
  }
  EXPECT_GT(logs, 0);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back()["type"], "result");
  // Nonzeros only, by the model's names: the knapsack's optimum packs items 0, 1, 2, 3 and 5.
  EXPECT_EQ(frames.back()["solution"], nlohmann::json({{"x0", 1.0}, {"x1", 1.0}, {"x2", 1.0}, {"x3", 1.0}, {"x5", 1.0}}));
}

// Refusals: an error frame with the code solverd maps to an HTTP status, then exit code 1.
void expectRefused(const std::function<void(WorkerProcess&)>& send, const std::string& code) {
  WorkerProcess worker;
  send(worker);
  auto exit_code = worker.finish(20s);
  ASSERT_TRUE(exit_code);
  EXPECT_EQ(*exit_code, 1);
  ASSERT_FALSE(worker.frames().empty()) << worker.stderrText();
  const auto& last = worker.frames().back();
  EXPECT_EQ(last["type"], "error") << last.dump();
  EXPECT_EQ(last["code"], code) << last.dump();
  EXPECT_FALSE(last["message"].get<std::string>().empty());
  EXPECT_FALSE(worker.badFrame());
}

TEST_F(WorkerRefusal, UnknownSolverIsRefused) {
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("knapsack.lp"), "lp", "gurobi")); }, "unknown_solver");
}

TEST_F(WorkerRefusal, UnknownOptionIsRefused) {
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("knapsack.lp"), "lp", "cbc", {{"presolve", 1}})); },
                "unknown_option");
}

TEST_F(WorkerRefusal, OptionWithABadValueIsRefused) {
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("knapsack.lp"), "lp", "cbc", {{"threads", 1.5}})); },
                "invalid_option");
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("knapsack.lp"), "lp", "glpk", {{"time_limit", "10s"}})); },
                "invalid_option");
}

TEST_F(WorkerRefusal, MalformedModelGivesTheSolversOwnMessage) {
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("malformed.lp"), "lp", "cbc")); }, "invalid_model");
  expectRefused([](WorkerProcess& w) { w.send(solveFrame(modelText("malformed.mps"), "mps", "glpk")); }, "invalid_model");
}

TEST_F(WorkerRefusal, ModelsThatCrashTheCoinReadersAreRefusedAsInvalid) {
  // Found by worker_fuzz_readers: 42 bytes on which CoinMpsIO 2.11 dereferences NULL, and an LP
  // with an empty objective on which CoinLpIO divides by zero. The worker's reader guard turns
  // the crash into an invalid_model error and exit code 1; GLPK refuses both in words.
  for (const auto& [file, format] : {std::pair{"coin_mps_reader_crash.mps", "mps"}, std::pair{"coin_lp_reader_crash.lp", "lp"}}) {
    const std::string text = modelText(file);
    // A copy, not the binding: clang before 16 cannot capture structured bindings in a lambda.
    const std::string model_format = format;
    for (const std::string solver : {"cbc", "clp", "glpk"}) {
      expectRefused([&](WorkerProcess& w) { w.send(solveFrame(text, model_format, solver)); }, "invalid_model");
    }
  }
}

TEST_F(WorkerRefusal, GarbageInsteadOfAFrameIsRefused) {
  expectRefused([](WorkerProcess& w) { w.sendRaw(std::string("\x05\x00\x00\x00hello", 9)); }, "bad_message");
}

TEST_F(WorkerRefusal, FirstFrameThatIsNotASolveIsRefused) {
  expectRefused([](WorkerProcess& w) { w.send({{"type", "interrupt"}}); }, "bad_message");
  expectRefused([](WorkerProcess& w) { w.send({{"type", "solve"}, {"format", "lp"}}); }, "bad_message");
  expectRefused([](WorkerProcess& w) { w.send({{"type", "solve"}, {"format", "xml"}, {"model", "x"}}); }, "bad_message");
}

TEST_F(WorkerRefusal, EndOfInputBeforeASolveFrameIsRefused) {
  expectRefused([](WorkerProcess& w) { w.closeStdin(); }, "bad_message");
}

}  // namespace
}  // namespace tether::solverd::worker::test
