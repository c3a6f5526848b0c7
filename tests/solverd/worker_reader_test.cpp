// The model readers in-process (readModel): what each family makes of the corpus, the solver's
// own words for a model it refuses, and no file descriptor left behind by a read.
#include "tether/solverd/worker/model_reader.hpp"
#include "worker_harness.hpp"

#include <dirent.h>
#include <gtest/gtest.h>

#include <string>

namespace tether::solverd::worker::test {
namespace {

int openFds() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

struct Refusal {
  std::string file;
  ModelFormat format;
  ReaderFamily family;
  std::string expected;  // a piece of the reader's own message
};

TEST(WorkerReader, MalformedModelsAreRefusedInTheReadersOwnWords) {
  const Refusal cases[] = {
      {"malformed.lp", ModelFormat::Lp, ReaderFamily::Coin, "duplicates in objective and matrix"},
      {"malformed.lp", ModelFormat::Lp, ReaderFamily::Glpk, "model:6: missing variable name"},
      {"malformed.mps", ModelFormat::Mps, ReaderFamily::Coin, "Bad image at line 6"},
      {"malformed.mps", ModelFormat::Mps, ReaderFamily::Glpk, "model:6: cannot convert 'notanumber'"},
  };
  for (const auto& c : cases) {
    ModelSummary summary;
    std::string message;
    EXPECT_FALSE(readModel(modelText(c.file), c.format, c.family, summary, message)) << c.file;
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.file << ": " << message;
    EXPECT_EQ(message.find("/proc/self/fd"), std::string::npos) << message;
  }
}

TEST(WorkerReader, EmptyAndGarbageInputsAreRefusedByEveryReader) {
  for (const std::string& text : {std::string(), std::string("garbage\n"), std::string("\0\xff\x01", 3)}) {
    for (auto format : {ModelFormat::Lp, ModelFormat::Mps}) {
      for (auto family : {ReaderFamily::Coin, ReaderFamily::Glpk}) {
        ModelSummary summary;
        std::string message;
        EXPECT_FALSE(readModel(text, format, family, summary, message));
        EXPECT_FALSE(message.empty());
      }
    }
  }
}

TEST(WorkerReader, InputsTheCoinReadersCannotSurviveAreRefusedBeforeThem) {
  struct Case {
    std::string text;
    ModelFormat format;
    std::string expected;
  };
  const Case cases[] = {
      // CoinLpIO reads out of bounds after a 0xFF byte.
      {"Minimize\n obj: x\nSubject To\n c: x >= \xff" "1\nEnd\n", ModelFormat::Lp, "line 4: byte 0xFF"},
      {std::string("Minimize\n obj: x\0\nEnd\n", 22), ModelFormat::Lp, "byte 0x00"},
      // ... and while it looks for an objective that is not there.
      {"ant2:00008\nBoudn- End", ModelFormat::Lp, "'minimize' or 'maximize' keyword missing"},
      // CoinMpsIO dereferences NULL on a file that does not open with NAME or ROWS.
      {"RHSRENAMA\n\nATA\nOBFREEATA\n\n", ModelFormat::Mps, "starts with a NAME or ROWS card"},
  };
  for (const auto& c : cases) {
    ModelSummary summary;
    std::string message;
    EXPECT_FALSE(readModel(c.text, c.format, ReaderFamily::Coin, summary, message));
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

TEST(WorkerReader, LpWithoutEndIsReadByBothFamilies) {
  // CoinLpIO loops forever at the end of a file that stops inside Generals; GLPK warns and reads
  // on. The missing End is supplied, so both read it (and this test ends).
  const std::string lp = "Minimize\n obj: x + y\nSubject To\n c: x + y >= 1\nGenerals\n x y\n";
  for (auto family : {ReaderFamily::Coin, ReaderFamily::Glpk}) {
    ModelSummary summary;
    std::string message;
    ASSERT_TRUE(readModel(lp, ModelFormat::Lp, family, summary, message)) << message;
    EXPECT_EQ(summary.columns, 2);
    EXPECT_EQ(summary.integers, 2);
  }
}

TEST(WorkerReader, BothFamiliesReadTheCorpusAlike) {
  const auto index = modelIndex();  // a named copy: a range-for over a temporary's member dangles
  for (const auto& e : index["models"]) {
    if (e["role"] == "malformed") continue;
    const std::string file = e["file"];
    const auto format = e["format"] == "lp" ? ModelFormat::Lp : ModelFormat::Mps;
    ModelSummary coin;
    ModelSummary glpk;
    std::string message;
    ASSERT_TRUE(readModel(modelText(file), format, ReaderFamily::Coin, coin, message)) << file << ": " << message;
    ASSERT_TRUE(readModel(modelText(file), format, ReaderFamily::Glpk, glpk, message)) << file << ": " << message;
    EXPECT_EQ(coin.columns, glpk.columns) << file;
    EXPECT_EQ(coin.rows, glpk.rows) << file;
    EXPECT_EQ(coin.integers, glpk.integers) << file;
    EXPECT_EQ(coin.integers > 0, e["kind"] == "milp") << file;
    EXPECT_EQ(coin.maximize, e["sense"] == "max") << file;
    EXPECT_EQ(glpk.maximize, e["sense"] == "max") << file;
  }
}

TEST(WorkerReader, ReadingLeavesNoFileDescriptorBehind) {
  const std::string good = modelText("knapsack.lp");
  const std::string bad = modelText("malformed.mps");
  const int before = openFds();
  for (int i = 0; i < 50; ++i) {
    for (auto family : {ReaderFamily::Coin, ReaderFamily::Glpk}) {
      ModelSummary summary;
      std::string message;
      readModel(good, ModelFormat::Lp, family, summary, message);
      readModel(bad, ModelFormat::Mps, family, summary, message);
    }
  }
  EXPECT_EQ(openFds(), before);
}

}  // namespace
}  // namespace tether::solverd::worker::test
