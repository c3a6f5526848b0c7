// The good and bad configuration corpus: every file in bad/ fails with the message its first line
// states (file names relative to bad/), every file in good/ loads and survives a dump round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_schema.hpp"

namespace tether::config {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(TETHER_SOURCE_DIR) / "tests" / "config";

std::vector<std::string> corpusFiles(const char* kind) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kCorpus / kind)) {
    if (entry.is_regular_file() && entry.path().extension() == ".conf") {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> firstLines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (lines.size() < 3 && std::getline(in, line)) {
    if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

const Schema& schemaOf(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    if (line.starts_with("# schema: ")) {
      const Schema* schema = testing::schemaNamed(line.substr(10));
      if (schema != nullptr) return *schema;
    }
  }
  return testing::proxySchema();
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string testName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(0, info.param.size() - 5);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class BadConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(BadConfig, FailsWithTheExpectedMessageAndPlace) {
  const fs::path file = kCorpus / "bad" / GetParam();
  const auto lines = firstLines(file);
  ASSERT_FALSE(lines.empty());
  ASSERT_TRUE(lines[0].starts_with("# error: ")) << "first line must state the expected error";
  const std::string expected = lines[0].substr(9);

  const LoadResult result = load(file.string(), schemaOf(lines));
  ASSERT_FALSE(result.ok()) << "loaded without error, expected: " << expected;
  const std::string dir = (kCorpus / "bad").string() + "/";
  EXPECT_EQ(replaceAll(result.error().text(), dir, ""), expected);
  EXPECT_GT(result.error().line, 0U);
  EXPECT_GT(result.error().column, 0U);
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadConfig, ::testing::ValuesIn(corpusFiles("bad")), testName);

TEST(BadConfigCorpus, HasAtLeastFortyCases) { EXPECT_GE(corpusFiles("bad").size(), 40U); }

class GoodConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(GoodConfig, LoadsAndItsDumpLoadsToTheSameDump) {
  const fs::path file = kCorpus / "good" / GetParam();
  const Schema& schema = schemaOf(firstLines(file));
  const LoadResult result = load(file.string(), schema);
  ASSERT_TRUE(result.ok()) << result.error().format(schema.program);

  // -T's output is itself a valid configuration that means the same.
  // Defaults are marked in the first dump only: once written out they are ordinary directives.
  const std::string dumped = replaceAll(dump(result.config()), ";  # default", ";");
  const LoadResult again = loadString(dumped, "dump", schema);
  ASSERT_TRUE(again.ok()) << again.error().text() << "\n" << dumped;
  const std::string dumped_again = dump(again.config());
  EXPECT_EQ(dumped.substr(dumped.find('\n')), dumped_again.substr(dumped_again.find('\n')));
}

INSTANTIATE_TEST_SUITE_P(Corpus, GoodConfig, ::testing::ValuesIn(corpusFiles("good")), testName);

}  // namespace
}  // namespace tether::config
