// libFuzzer target for the model readers that solverd-worker feeds untrusted bodies to:
// CoinLpIO, CoinMpsIO, glp_read_lp and glp_read_mps, through readModel(). The first byte picks
// the format (bit 0) and the reader family (bit 1); the rest is the model text.
#include "tether/solverd/worker/model_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tether::solverd::worker;
  if (size < 1) return 0;
  const auto format = (data[0] & 1) != 0 ? ModelFormat::Mps : ModelFormat::Lp;
  const auto family = (data[0] & 2) != 0 ? ReaderFamily::Glpk : ReaderFamily::Coin;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  ModelSummary summary;
  std::string message;
  readModel(text, format, family, summary, message);
  return 0;
}
