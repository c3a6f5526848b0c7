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
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  tether::config::LoadOptions options;
  options.allow_include = false;
  for (const Schema* schema : {&testing::proxySchema(), &testing::solverdSchema(), &testing::agentSchema()}) {
    const LoadResult result = loadString(text, "fuzz.conf", *schema, options);
    if (!result) {
      if (result.error().line == 0 || result.error().column == 0) std::abort();
      continue;
    }
    const LoadResult again = loadString(dump(result.config()), "dump", *schema, options);
    if (!again) std::abort();
  }
  return 0;
}
