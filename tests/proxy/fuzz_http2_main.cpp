// libFuzzer entry: random HTTP/2 frames into tether-proxy's HTTP/2 session, after the connection
// preface (see fuzz_request_path.hpp).
#include "fuzz_request_path.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tether::proxy::test::fuzzHttp2Path(data, size);
}
