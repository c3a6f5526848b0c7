#pragma once
// Tombstones (DESIGN.md "Control protocol"): an id cancelled while unknown stays refused for
// `tombstone_ttl`, so that a job or registration arriving after its cancel never starts.
// Memory is bounded: at most `capacity` ids, the oldest evicted first, so a flood of cancels for
// unknown ids costs at most capacity entries. Times are CLOCK_MONOTONIC ns passed in by the
// caller (tests drive them; daemons pass tether::monotonicNs()).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tether::agent::supervise {

class Tombstones {
 public:
  static constexpr uint64_t kDefaultTtlNs = 30'000'000'000ULL;  // tombstone_ttl 30s
  static constexpr size_t kDefaultCapacity = 100'000;

  explicit Tombstones(uint64_t ttl_ns = kDefaultTtlNs, size_t capacity = kDefaultCapacity);

  // Records `id` until now + ttl. Adding an id that is already present keeps its first expiry
  // (a repeated cancel does not extend the refusal). Returns true if it was new.
  bool add(std::string_view id, uint64_t now_ns);
  // True while `id` is tombstoned.
  bool contains(std::string_view id, uint64_t now_ns);
  // Forgets `id` (e.g. a daemon that consumed the tombstone); true if it was there.
  bool erase(std::string_view id);
  // Entries not yet expired or evicted (expired ones are dropped lazily on add/contains/size).
  size_t size(uint64_t now_ns);
  // Ids evicted before their expiry because the capacity was reached (a metric).
  uint64_t evicted() const { return evicted_; }

  void setTtl(uint64_t ttl_ns) { ttl_ns_ = ttl_ns; }  // SIGHUP; applies to new entries
  void setCapacity(size_t capacity);

 private:
  void expire(uint64_t now_ns);

  uint64_t ttl_ns_;
  size_t capacity_;
  uint64_t evicted_ = 0;
  // Insertion order == expiry order (one ttl at a time). The map holds each id's expiry; a queue
  // entry whose expiry differs from the map's is a leftover of an erase() and is skipped.
  std::deque<std::pair<uint64_t, std::string>> order_;
  std::unordered_map<std::string, uint64_t> expiry_;
};

}  // namespace tether::agent::supervise
