#include "lease_timer.hpp"

#include "tether/common/clock.hpp"

namespace tether::solverd {

LeaseTimer::LeaseTimer(uv_loop_t* loop, JobTable& table) : table_(table), timer_(loop) {
  if (timer_) {
    timer_->data = this;
    // A lease alone does not keep the loop running: shutdown ends it by closing the handles.
    uv_unref(timer_.raw());
  }
}

void LeaseTimer::leaseChanged(uint64_t end_ns) {
  if (due_ns_ != 0 && due_ns_ <= end_ns) return;
  arm(end_ns, monotonicNs());
}

void LeaseTimer::arm(uint64_t end_ns, uint64_t now_ns) {
  if (!timer_) return;
  due_ns_ = end_ns;
  // Rounded up to the next millisecond, so that the lease has really run out when it fires.
  uint64_t ms = end_ns > now_ns ? (end_ns - now_ns + 999'999) / 1'000'000 : 0;
  uv_timer_start(timer_.get(), [](uv_timer_t* t) { static_cast<LeaseTimer*>(t->data)->fire(); }, ms, 0);
}

void LeaseTimer::fire() {
  due_ns_ = 0;
  uint64_t now = monotonicNs();
  uint64_t next = table_.expireLeases(now);
  if (next != 0) arm(next, now);
}

}  // namespace tether::solverd
