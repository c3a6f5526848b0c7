#pragma once
// Request ids: 32 lowercase hex digits from 128 random bits (DESIGN.md "Request identity").
// The id is the only handle on a job, so it comes from the kernel's CSPRNG (getrandom), never
// from a seeded PRNG.
#include <string>
#include <string_view>

namespace tether {

// Returns a fresh id. Crashes only if getrandom(2) itself fails, which after start-up
// "should never happen" (the kernel's pool is initialized before any daemon runs).
std::string newRequestId();

// 2 * nbytes lowercase hex digits from nbytes (at most 64) random bytes of getrandom(2).
std::string randomHex(size_t nbytes);

// True for exactly 32 lowercase hex digits.
bool isValidRequestId(std::string_view id);

}  // namespace tether
