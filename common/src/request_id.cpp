#include "tether/common/request_id.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace tether {

std::string randomHex(size_t nbytes) {
  uint8_t bytes[64];
  if (nbytes > sizeof bytes) std::abort();  // a programming error: callers ask for 8 or 16
  size_t got = 0;
  while (got < nbytes) {
    ssize_t n = getrandom(bytes + got, nbytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(2 * nbytes, '0');
  for (size_t i = 0; i < nbytes; ++i) {
    id[2 * i] = kHex[bytes[i] >> 4];
    id[2 * i + 1] = kHex[bytes[i] & 0x0f];
  }
  return id;
}

std::string newRequestId() { return randomHex(16); }

bool isValidRequestId(std::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace tether
