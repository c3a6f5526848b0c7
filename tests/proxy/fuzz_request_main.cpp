// libFuzzer entry: random bytes into tether-proxy's request path (see fuzz_request_path.hpp).
#include "fuzz_request_path.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tether::proxy::test::fuzzRequestPath(data, size);
}
