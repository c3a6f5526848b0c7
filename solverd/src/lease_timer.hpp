#pragma once
// The clock of detached jobs' leases: one timer, due at the earliest lease end, that hands the
// ends to JobTable::expireLeases (which decides; this only wakes it). Internal to the daemon.
#include "tether/common/uv_kit.hpp"
#include "tether/solverd/job_table.hpp"

#include <uv.h>

namespace tether::solverd {

class LeaseTimer {
 public:
  LeaseTimer(uv_loop_t* loop, JobTable& table);
  LeaseTimer(const LeaseTimer&) = delete;
  LeaseTimer& operator=(const LeaseTimer&) = delete;

  // A lease began or was renewed: makes sure the timer is due no later than its end. Leases only
  // grow, so a timer that is due early finds nothing and sets itself again.
  void leaseChanged(uint64_t end_ns);
  void close() { timer_.close(); }

 private:
  void fire();
  void arm(uint64_t end_ns, uint64_t now_ns);

  JobTable& table_;
  uv::Handle<uv_timer_t> timer_;
  uint64_t due_ns_ = 0;  // 0: not armed
};

}  // namespace tether::solverd
