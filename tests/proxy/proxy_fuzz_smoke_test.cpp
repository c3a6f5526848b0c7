// The fuzz harness run without libFuzzer (gcc builds): the seed corpus plus pseudo-random
// mutations of it through the in-process request path; the long-lived connection must keep
// getting answers and nothing may crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "fuzz_request_path.hpp"

namespace tether::proxy::test {
namespace {

std::vector<std::string> seeds(const char* corpus = "fuzz-corpus") {
  std::vector<std::string> out;
  std::string dir = std::string(TETHER_SOURCE_DIR) + "/tests/proxy/" + corpus;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

void seedsAndMutations(const char* corpus_dir, int (*path)(const uint8_t*, size_t)) {
  auto corpus = seeds(corpus_dir);
  ASSERT_FALSE(corpus.empty());
  std::mt19937 rng(7);
  for (auto& s : corpus) path(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  for (int i = 0; i < 300; ++i) {
    std::string s = corpus[rng() % corpus.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[pos] = static_cast<char>(rng()); break;
        case 1: s.erase(pos, 1 + rng() % 4); break;
        default: s.insert(pos, std::string(1 + rng() % 3, static_cast<char>(rng()))); break;
      }
    }
    path(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
}

TEST(ProxyFuzzSmoke, SeedCorpusAndMutationsKeepOtherConnectionsWorking) {
  seedsAndMutations("fuzz-corpus", fuzzRequestPath);
}

TEST(ProxyFuzzSmoke, Http2SeedsAndMutationsKeepOtherConnectionsWorking) {
  seedsAndMutations("fuzz-corpus-h2", fuzzHttp2Path);
}

}  // namespace
}  // namespace tether::proxy::test
