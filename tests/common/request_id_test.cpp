#include "tether/common/request_id.hpp"

#include <gtest/gtest.h>

#include <set>

namespace tether {
namespace {

TEST(RequestIdTest, IsThirtyTwoLowercaseHexDigits) {
  const std::string id = newRequestId();
  EXPECT_EQ(id.size(), 32u);
  EXPECT_TRUE(isValidRequestId(id)) << id;
}

TEST(RequestIdTest, TenThousandIdsNeverRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(newRequestId()).second);
}

TEST(RequestIdTest, RejectsUppercaseShortAndNonHex) {
  EXPECT_FALSE(isValidRequestId("0123456789ABCDEF0123456789abcdef"));
  EXPECT_FALSE(isValidRequestId("0123456789abcdef"));
  EXPECT_FALSE(isValidRequestId("0123456789abcdef0123456789abcdeg"));
  EXPECT_FALSE(isValidRequestId(""));
}

}  // namespace
}  // namespace tether
