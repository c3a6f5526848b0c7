// libFuzzer target: random bytes into the frame decoder and the message parser, fed in two
// pieces (the first byte picks the split) so that the incremental path is exercised too.
#include "tether/agent/control/frame.hpp"
#include "tether/agent/control/message.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tether::agent::control;
  if (size == 0) return 0;
  const size_t split = data[0] % size;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameDecoder decoder(64 * 1024);
  nlohmann::json object;
  ProtocolError error;
  for (std::string_view piece : {bytes.substr(0, split), bytes.substr(std::min(split, bytes.size()))}) {
    decoder.feed(piece);
    while (decoder.next(object, error) == FrameDecoder::Result::Frame) {
      Message message;
      if (parseMessage(object, message, error)) {
        // Whatever parses must encode again without throwing.
        (void)encodeMessage(message);
      }
    }
  }
  return 0;
}
