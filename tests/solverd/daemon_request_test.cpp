// Reading POST /v1/solve: media types, the JSON form, query parameters, the time limit cap; the
// solve frame written to the worker.
#include "tether/solverd/solve_spec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tether::solverd {
namespace {

std::optional<SolveSpec> parse(std::string_view type, std::string_view query, std::string body, RequestError& error) {
  SolveRequestInput input{type, query, std::move(body), std::chrono::milliseconds(60'000)};
  return parseSolveRequest(input, error);
}

TEST(SolveRequest, LpBodyWithSolverAndTimeLimitInTheQuery) {
  RequestError error;
  auto spec = parse("text/x-lp; charset=utf-8", "solver=glpk&time_limit=2.5", "max: x;", error);
  ASSERT_TRUE(spec) << error.message;
  EXPECT_EQ(spec->format, "lp");
  EXPECT_EQ(spec->solver, "glpk");
  EXPECT_EQ(spec->model, "max: x;");
  EXPECT_DOUBLE_EQ(spec->timeLimitSeconds(), 2.5);
}

TEST(SolveRequest, TimeLimitIsCappedByTheDefaultAndAlwaysPresent) {
  RequestError error;
  auto spec = parse("text/x-mps", "time_limit=3600", "NAME x", error);
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->format, "mps");
  EXPECT_DOUBLE_EQ(spec->timeLimitSeconds(), 60);
  spec = parse("text/x-mps", "", "NAME x", error);
  ASSERT_TRUE(spec);
  EXPECT_DOUBLE_EQ(spec->timeLimitSeconds(), 60);
}

TEST(SolveRequest, JsonBodyCarriesModelFormatSolverAndOptions) {
  RequestError error;
  auto spec = parse("application/json", "",
                    R"({"model":"NAME x","format":"mps","solver":"clp","options":{"mip_gap":0.01,"threads":2}})", error);
  ASSERT_TRUE(spec) << error.message;
  EXPECT_EQ(spec->format, "mps");
  EXPECT_EQ(spec->solver, "clp");
  EXPECT_DOUBLE_EQ(spec->options["mip_gap"].get<double>(), 0.01);
  EXPECT_EQ(spec->options["threads"], 2);
}

TEST(SolveRequest, ErrorsMapToTheStatusesOfTheDesign) {
  RequestError error;
  EXPECT_FALSE(parse("text/plain", "", "x", error));
  EXPECT_EQ(error.status, 415);
  EXPECT_FALSE(parse("text/x-lp", "solver=cplex", "x", error));
  EXPECT_EQ(error.status, 422);
  EXPECT_FALSE(parse("text/x-lp", "time_limit=soon", "x", error));
  EXPECT_EQ(error.status, 422);
  EXPECT_FALSE(parse("application/json", "", R"({"model":"x","options":{"presolve":true}})", error));
  EXPECT_EQ(error.status, 422);
  EXPECT_FALSE(parse("application/json", "", "[1,2]", error));
  EXPECT_EQ(error.status, 400);
  EXPECT_FALSE(parse("text/x-lp", "", "", error));
  EXPECT_EQ(error.status, 400);
}

TEST(SolveRequest, QueryParametersArePercentDecoded) {
  EXPECT_EQ(queryParam("a=1&solver=gl%70k", "solver"), "glpk");
  EXPECT_EQ(queryParam("flag&x=1", "flag"), "");
  EXPECT_FALSE(queryParam("x=1", "solver"));
}

// The frame built in one pass must be the frame the json library builds: every escape, and the
// fallback for bytes beyond ASCII (valid UTF-8 kept, invalid replaced as the dump does).
TEST(SolveFrameBytes, DecodesToTheSameFrameAsTheJsonBuiltOneForEveryKindOfModelText) {
  std::string every_control;
  for (int c = 0; c < 0x20; ++c) every_control += static_cast<char>(c);
  const std::vector<std::string> models = {
      "",
      "Maximize\n obj: 3 x + 2 y\r\nSubject To\n c1: x + y <= 4\nEnd\n",
      "\\ a comment with \"quotes\" and a \\ backslash\tand a tab\n",
      every_control + "\x7f",
      "\\ caf\xc3\xa9 \xe2\x82\xac valid UTF-8\n",
      "\\ Latin-1 \xe9 is not UTF-8\n",
  };
  for (const auto& model : models) {
    SolveSpec spec;
    spec.solver = "glpk";
    spec.model = model;
    spec.options = {{"time_limit", 2.5}, {"mip_gap", 0.01}};
    std::string bytes = solveFrameBytes(spec);
    ASSERT_GE(bytes.size(), 4U);
    uint32_t length = 0;
    for (int i = 3; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
    ASSERT_EQ(length, bytes.size() - 4) << model;
    auto got = nlohmann::json::parse(bytes.substr(4), nullptr, false);
    ASSERT_FALSE(got.is_discarded()) << bytes.substr(4);
    auto want = nlohmann::json::parse(solveFrame(spec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    EXPECT_EQ(got, want) << model;
  }
}

}  // namespace
}  // namespace tether::solverd
