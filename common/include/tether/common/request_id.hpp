#pragma once
// Request ids: 32 lowercase hex digits from 128 random bits (DESIGN.md "Request identity").
// The id is the only handle on a job, so its bits are the kernel's CSPRNG output (getrandom,
// read a page at a time), never a seeded PRNG's.
#include <string>
#include <string_view>

namespace tether {

// Returns a fresh id. Crashes only if getrandom(2) itself fails, which after start-up
// "should never happen" (the kernel's pool is initialized before any daemon runs).
std::string newRequestId();

// True for exactly 32 lowercase hex digits.
bool isValidRequestId(std::string_view id);

}  // namespace tether
