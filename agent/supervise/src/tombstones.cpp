#include "tether/agent/supervise/tombstones.hpp"

namespace tether::agent::supervise {

Tombstones::Tombstones(uint64_t ttl_ns, size_t capacity)
    : ttl_ns_(ttl_ns), capacity_(capacity == 0 ? 1 : capacity) {}

void Tombstones::expire(uint64_t now_ns) {
  while (!order_.empty() && order_.front().first <= now_ns) {
    auto it = expiry_.find(order_.front().second);
    if (it != expiry_.end() && it->second == order_.front().first) expiry_.erase(it);
    order_.pop_front();
  }
}

bool Tombstones::add(std::string_view id, uint64_t now_ns) {
  expire(now_ns);
  std::string key(id);
  if (expiry_.count(key) != 0) return false;
  // Evict the oldest live entries; leftovers of erase() in the queue are dropped on the way.
  while (expiry_.size() >= capacity_ && !order_.empty()) {
    auto it = expiry_.find(order_.front().second);
    if (it != expiry_.end() && it->second == order_.front().first) {
      expiry_.erase(it);
      ++evicted_;
    }
    order_.pop_front();
  }
  uint64_t expiry = now_ns + ttl_ns_;
  // A shorter ttl after a reload could put this entry before older ones; clamp so the queue
  // stays in expiry order (it may then live a little longer than the new ttl, never shorter).
  if (!order_.empty() && order_.back().first > expiry) expiry = order_.back().first;
  expiry_.emplace(key, expiry);
  order_.emplace_back(expiry, std::move(key));
  return true;
}

bool Tombstones::contains(std::string_view id, uint64_t now_ns) {
  expire(now_ns);
  return expiry_.count(std::string(id)) != 0;
}

bool Tombstones::erase(std::string_view id) {
  // The queue entry stays until it expires or is evicted; its expiry no longer matches.
  bool erased = expiry_.erase(std::string(id)) != 0;
  // Bound the leftovers too: a pattern of add+erase must not grow the queue without limit.
  if (order_.size() > 2 * capacity_) {
    std::deque<std::pair<uint64_t, std::string>> live;
    for (auto& entry : order_) {
      auto it = expiry_.find(entry.second);
      if (it != expiry_.end() && it->second == entry.first) live.push_back(std::move(entry));
    }
    order_.swap(live);
  }
  return erased;
}

size_t Tombstones::size(uint64_t now_ns) {
  expire(now_ns);
  return expiry_.size();
}

void Tombstones::setCapacity(size_t capacity) { capacity_ = capacity == 0 ? 1 : capacity; }

}  // namespace tether::agent::supervise
