// libFuzzer target: arbitrary bytes as a configuration for each test directive table. The parser
// must return a Config or an Error, never crash, leak or recurse without bound; a Config it
// returns must dump to text that loads again. Includes are off: no file system access.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "test_schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tether::config;
  // The first byte picks the directive table, so one input exercises one load (a load copies
  // its schema, which dominates the cost of small inputs under the sanitizers).
  const Schema* schemas[] = {&testing::proxySchema(), &testing::solverdSchema(), &testing::agentSchema()};
  const Schema& schema = *schemas[size == 0 ? 0 : data[0] % 3];
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadOptions options;
  options.allow_include = false;
  const LoadResult result = loadString(text, "fuzz.conf", schema, options);
  if (!result) {
    // Every error has a place: the text came from a "file".
    if (result.error().line == 0 || result.error().column == 0) std::abort();
    return 0;
  }
  // -T's dump of what loaded is a configuration that loads again.
  if (!loadString(dump(result.config()), "dump", schema, options)) std::abort();
  return 0;
}
