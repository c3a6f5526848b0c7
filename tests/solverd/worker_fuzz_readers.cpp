// libFuzzer target for the model readers that solverd-worker feeds untrusted bodies to:
// CoinLpIO, CoinMpsIO, glp_read_lp and glp_read_mps, through readModel() and its checks. The
// first byte picks the format (bit 0) and the reader family (bit 1); the rest is the model text.
//
// The COIN-OR readers of Debian 12 (CoinUtils 2.11.4) crash on malformed files within minutes
// of fuzzing: NULL dereferences in CoinMpsCardReader::nextField, out-of-bounds reads in
// CoinLpIO::fscanfLpIO, a division by zero in CoinLpIO::insertHash for an empty objective.
// readModel() refuses the cheap-to-spot cases before COIN sees them and the worker contains the
// rest with its reader guard (worker.cpp; tests/solverd/models/coin_*_reader_crash.*). So that
// this target keeps finding problems elsewhere, the COIN readers are fuzzed only with
// TETHER_FUZZ_COIN=1 in the environment; otherwise every input goes to GLPK's readers.
#include "tether/solverd/worker/model_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tether::solverd::worker;
  static const bool coin = std::getenv("TETHER_FUZZ_COIN") != nullptr;
  if (size < 1) return 0;
  const auto format = (data[0] & 1) != 0 ? ModelFormat::Mps : ModelFormat::Lp;
  auto family = (data[0] & 2) != 0 ? ReaderFamily::Glpk : ReaderFamily::Coin;
  if (!coin) family = ReaderFamily::Glpk;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  ModelSummary summary;
  std::string message;
  readModel(text, format, family, summary, message);
  return 0;
}
