// Reading POST /v1/solve: media types, the JSON form, query parameters, the time limit cap.
#include "tether/solverd/solve_spec.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace tether::solverd
