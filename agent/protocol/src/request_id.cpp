#include "tether/agent/control/request_id.hpp"

#include <sys/mman.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace tether::agent::control {

namespace {

// Random bytes from getrandom(2), read 4 KiB at a time: one system call per 256 ids instead of
// one per id (issue 11 measured getrandom at about 7 µs of a proxied request's 32). The bytes are
// the kernel's CSPRNG output itself, so ids stay unguessable; each is wiped once used, and the
// page is MADV_WIPEONFORK, so a forked child finds `left == 0` and refills instead of handing
// out its parent's next ids.
class RandomPool {
 public:
  void take(uint8_t* out, size_t n) {
    if (page_ == nullptr) {
      void* p = mmap(nullptr, sizeof(Page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) std::abort();
      // Without MADV_WIPEONFORK (kernels before 4.14) a fork could repeat ids: refuse to run.
      if (madvise(p, sizeof(Page), MADV_WIPEONFORK) != 0) std::abort();
      page_ = static_cast<Page*>(p);
    }
    if (page_->left < n) refill();
    uint8_t* from = page_->bytes + sizeof page_->bytes - page_->left;
    std::memcpy(out, from, n);
    explicit_bzero(from, n);
    page_->left -= n;
  }
  ~RandomPool() {
    if (page_ != nullptr) {
      explicit_bzero(page_, sizeof(Page));
      munmap(page_, sizeof(Page));
    }
  }

 private:
  struct Page {
    size_t left;  // unread bytes at the end of `bytes`; 0 in a fresh or forked page
    uint8_t bytes[4096 - sizeof(size_t)];
  };
  void refill() {
    size_t got = 0;
    while (got < sizeof page_->bytes) {
      ssize_t n = getrandom(page_->bytes + got, sizeof page_->bytes - got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::abort();
      }
      got += static_cast<size_t>(n);
    }
    page_->left = sizeof page_->bytes;
  }
  Page* page_ = nullptr;
};

}  // namespace


std::string randomHex(size_t nbytes) {
  static thread_local RandomPool pool;
  uint8_t bytes[16];
  if (nbytes > sizeof bytes) std::abort();  // a programming error: callers ask for 8 or 16
  pool.take(bytes, nbytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(2 * nbytes, '0');
  for (size_t i = 0; i < nbytes; ++i) {
    id[2 * i] = kHex[bytes[i] >> 4];
    id[2 * i + 1] = kHex[bytes[i] & 0x0f];
  }
  explicit_bzero(bytes, nbytes);
  return id;
}

std::string newRequestId() { return randomHex(16); }

bool isValidTraceId(std::string_view id) {
  if (id.size() != 32) return false;
  bool nonzero = false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    nonzero = nonzero || c != '0';
  }
  return nonzero;
}

bool isValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c >= 0x21 && c <= 0x7e && c != '"' && c != '\'' && c != '\\';
  });
}

RequestId acceptRequestId(const std::string_view* given) {
  if (given != nullptr && isValidRequestId(*given)) return {std::string(*given), false};
  return {newRequestId(), given != nullptr};
}

bool isValidRoute(std::string_view route) {
  if (route.empty() || route.size() > kMaxRouteLength) return false;
  return std::all_of(route.begin(), route.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::string routedId(std::string_view id, std::string_view route) {
  std::string out = id.size() + 1 + route.size() <= kMaxRequestIdLength ? std::string(id) : newRequestId();
  out.push_back('.');
  out.append(route);
  return out;
}

std::string_view routeOf(std::string_view id) {
  const size_t dot = id.rfind('.');
  if (dot == std::string_view::npos) return {};
  std::string_view route = id.substr(dot + 1);
  return isValidRoute(route) ? route : std::string_view{};
}

std::string percentEncodeId(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(id.size());
  for (unsigned char c : id) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace tether::agent::control
