// Every unit form of DESIGN.md and its overflow.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "tether/config/units.hpp"

namespace tether::config {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

TEST(ParseSize, AcceptsBytesAndBinarySuffixesInEitherCase) {
  EXPECT_EQ(parseSize("0"), 0U);
  EXPECT_EQ(parseSize("512"), 512U);
  EXPECT_EQ(parseSize("64k"), 64U * 1024);
  EXPECT_EQ(parseSize("64K"), 64U * 1024);
  EXPECT_EQ(parseSize("8m"), 8U << 20);
  EXPECT_EQ(parseSize("8M"), 8U << 20);
  EXPECT_EQ(parseSize("1g"), 1U << 30);
  EXPECT_EQ(parseSize("1G"), 1U << 30);
}

TEST(ParseSize, DetectsOverflowAtInt64Max) {
  EXPECT_EQ(parseSize("9223372036854775807"), kInt64Max);
  EXPECT_EQ(parseSize("9223372036854775808"), std::nullopt);
  EXPECT_EQ(parseSize("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(parseSize("9007199254740991k"), 9007199254740991ULL * 1024);
  EXPECT_EQ(parseSize("9007199254740992k"), std::nullopt);
  EXPECT_EQ(parseSize("8796093022207m"), 8796093022207ULL << 20);
  EXPECT_EQ(parseSize("8796093022208m"), std::nullopt);
  EXPECT_EQ(parseSize("8589934591g"), 8589934591ULL << 30);
  EXPECT_EQ(parseSize("8589934592g"), std::nullopt);
}

TEST(ParseSize, RejectsMalformedText) {
  for (const char* bad : {"", "k", "-1", "1.5m", "1t", "1kb", " 1", "1 ", "0x10", "1kk"}) {
    EXPECT_EQ(parseSize(bad), std::nullopt) << bad;
  }
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(parseDuration("10s"), milliseconds(10'000));
  EXPECT_EQ(parseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(parseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parseDuration("1d"), milliseconds(86'400'000));
  EXPECT_EQ(parseDuration("1w"), milliseconds(604'800'000));
  EXPECT_EQ(parseDuration("0"), milliseconds(0));
}

TEST(ParseDuration, BareNumberIsSeconds) {
  EXPECT_EQ(parseDuration("30"), milliseconds(30'000));
  EXPECT_EQ(parseDuration("1m30"), milliseconds(90'000));
}

TEST(ParseDuration, AcceptsSumsInDescendingOrder) {
  EXPECT_EQ(parseDuration("1m30s"), milliseconds(90'000));
  EXPECT_EQ(parseDuration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(parseDuration("1s500ms"), milliseconds(1'500));
  EXPECT_EQ(parseDuration("1w2d3h4m5s6ms"),
            milliseconds(((((7 + 2) * 24 + 3) * 60 + 4) * 60 + 5) * 1000LL + 6));
}

TEST(ParseDuration, RejectsWrongOrderRepeatsAndMalformedText) {
  for (const char* bad : {"", "ms", "s", "30s1m", "1m1m", "1ms1s", "1s30", "5x", "1.5s", "-1s",
                          "1 s", "1mss", "1M", "10sec"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << bad;
  }
}

TEST(ParseDuration, DetectsOverflowOfTermsAndOfTheSum) {
  EXPECT_EQ(parseDuration("9223372036854775807ms"), milliseconds(std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(parseDuration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(parseDuration("106751991167d"), milliseconds(106751991167LL * 86'400'000));
  EXPECT_EQ(parseDuration("106751991168d"), std::nullopt);
  EXPECT_EQ(parseDuration("106751991167d1d"), std::nullopt);
  EXPECT_EQ(parseDuration("9223372036854776s"), std::nullopt);
  EXPECT_EQ(parseDuration("15250284452w"), milliseconds(15250284452LL * 604'800'000));
  EXPECT_EQ(parseDuration("15250284453w"), std::nullopt);
}

TEST(ParseFlag, AcceptsOnlyLowerCaseOnAndOff) {
  EXPECT_EQ(parseFlag("on"), true);
  EXPECT_EQ(parseFlag("off"), false);
  for (const char* bad : {"", "On", "OFF", "yes", "1", "true", "on "}) {
    EXPECT_EQ(parseFlag(bad), std::nullopt) << bad;
  }
}

TEST(ParseInteger, AcceptsSignedDecimalsAndDetectsOverflow) {
  EXPECT_EQ(parseInteger("0"), 0);
  EXPECT_EQ(parseInteger("42"), 42);
  EXPECT_EQ(parseInteger("-7"), -7);
  EXPECT_EQ(parseInteger("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parseInteger("-9223372036854775807"), -std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parseInteger("9223372036854775808"), std::nullopt);
  for (const char* bad : {"", "-", "+1", "1x", "0x1", " 1", "1e3"}) {
    EXPECT_EQ(parseInteger(bad), std::nullopt) << bad;
  }
}

TEST(ParseMode, AcceptsOctalUpTo07777) {
  EXPECT_EQ(parseMode("0660"), 0660U);
  EXPECT_EQ(parseMode("660"), 0660U);
  EXPECT_EQ(parseMode("07777"), 07777U);
  for (const char* bad : {"", "0990", "8", "17777", "000000", "-1", "rw"}) {
    EXPECT_EQ(parseMode(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace tether::config
