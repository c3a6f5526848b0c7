// libFuzzer target: random bytes into the HTTP server's request path (RequestParser, the code
// that sees every byte a client sends before any handler does), split into pieces at
// fuzzer-chosen points as reads would split them, with pipelined requests parsed one by one.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tether/common/http_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the read size, so the fuzzer explores splits too.
  const size_t piece = 1 + data[0] % 64;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  tether::http::ParserLimits limits;
  limits.max_header_size = 2048;
  limits.max_body_size = 4096;
  tether::http::RequestParser parser(limits);
  std::string pending;
  while (!rest.empty()) {
    const size_t n = rest.size() < piece ? rest.size() : piece;
    pending.append(rest.substr(0, n));
    rest.remove_prefix(n);
    while (!pending.empty()) {
      const auto result = parser.feed(pending);
      if (result.consumed > pending.size()) __builtin_trap();
      pending.erase(0, result.consumed);
      if (result.status == tether::http::RequestParser::Status::Error) {
        const int status = parser.errorStatus();
        if (status < 400 || status > 599) __builtin_trap();
        return 0;
      }
      if (result.status != tether::http::RequestParser::Status::Complete) break;
      const tether::http::Request request = parser.takeRequest();
      if (request.body.size() > limits.max_body_size) __builtin_trap();
      parser.reset();
    }
  }
  parser.finish();
  return 0;
}
