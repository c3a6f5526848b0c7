// libFuzzer target for the model readers that solverd-worker feeds untrusted bodies to:
// CoinLpIO, CoinMpsIO, glp_read_lp and glp_read_mps, through readModel() and its checks. The
// first byte picks the format (bit 0) and the reader family (bit 1); the rest is the model text.
//
// CoinMpsIO 2.11 (Debian 12) crashes on malformed files within minutes of fuzzing (NULL
// dereferences in CoinMpsCardReader::nextField that no cheap check can rule out; the worker
// contains them with its reader guard, see worker.cpp). So that this target keeps finding
// problems elsewhere, CoinMpsIO is fuzzed only with TETHER_FUZZ_COIN_MPS=1 in the environment;
// otherwise those inputs go to GLPK's MPS reader.
#include "tether/solverd/worker/model_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tether::solverd::worker;
  static const bool coin_mps = std::getenv("TETHER_FUZZ_COIN_MPS") != nullptr;
  if (size < 1) return 0;
  const auto format = (data[0] & 1) != 0 ? ModelFormat::Mps : ModelFormat::Lp;
  auto family = (data[0] & 2) != 0 ? ReaderFamily::Glpk : ReaderFamily::Coin;
  if (format == ModelFormat::Mps && !coin_mps) family = ReaderFamily::Glpk;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  ModelSummary summary;
  std::string message;
  readModel(text, format, family, summary, message);
  return 0;
}
