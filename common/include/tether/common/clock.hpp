#pragma once
// CLOCK_MONOTONIC timestamps: every latency tether reports is measured from the events themselves.
#include <cstdint>
#include <ctime>

namespace tether {

inline uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

inline double secondsBetween(uint64_t from_ns, uint64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e9;
}

}  // namespace tether
