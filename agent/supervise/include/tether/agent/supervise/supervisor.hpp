#pragma once
// Supervisor: the id -> Target table of a daemon with the tombstones, for tether-agent
// (`register`, `unregister`, `cancel`, `status`) and for any daemon that wants the whole ladder
// by id. solverd, which has its own job table and queue, may use Target and Tombstones directly.
//
// Cancels are idempotent (DESIGN.md): a cancel for a running target runs the ladder
// (Target::cancel), one for a target that finished within tombstone_ttl answers kFinished, one
// for an unknown id leaves a tombstone and answers kUnknown; a spawn/adopt for a tombstoned id is
// refused with ECANCELED and never starts.
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/error.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/agent/supervise/tombstones.hpp"

namespace tether::agent::supervise {

struct SupervisorOptions {
  uint64_t default_grace_ms = 5'000;     // `default_grace`: for cancels that carry no grace
  uint64_t max_grace_ms = 60'000;        // `max_grace`
  uint64_t tombstone_ttl_ms = 30'000;    // `tombstone_ttl`
  size_t tombstone_capacity = Tombstones::kDefaultCapacity;
  int interrupt_signal = SIGINT;         // `interrupt signal SIGINT;`
  Target::InterruptAction interrupt;     // e.g. `interrupt webhook URL;`; empty: the signal
  Limits limits;                         // for every target
};

// The `state` of a cancel_ack: the protocol's (queued is solverd's only).
using CancelState = control::CancelState;

// One row of `status`.
struct TargetInfo {
  std::string id;
  int pid = 0;
  std::string cgroup;  // empty in the fallback
  Target::State state = Target::State::kRunning;
  bool adopted = false;
  uint64_t started_ns = 0;
  std::optional<CancelRecord> cancel;
};

class Supervisor {
 public:
  // `tree` may be null or unavailable (fallback); it must outlive the Supervisor.
  Supervisor(uv_loop_t* loop, const CgroupTree* tree, SupervisorOptions options);
  // Kills what is still running (see ~Target).
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Called after every target is done and removed from the table (metrics, the outcome log
  // line). It must not destroy the Supervisor.
  using DoneCallback = std::function<void(const Outcome&)>;
  void setOnDone(DoneCallback callback) { on_done_ = std::move(callback); }

  // Errors: EINVAL bad id, EEXIST id already running, ECANCELED id tombstoned, else as
  // Target::spawn/adopt. The Target stays owned by the Supervisor; the pointer is valid until
  // on_done.
  Result<Target*> spawn(const std::string& id, const SpawnOptions& spawn);
  Result<Target*> adopt(const std::string& id, int pid);
  // `unregister`: hands an adopted process back (Target::release); false if unknown.
  bool release(const std::string& id);

  // `cancel`: grace_ms 0 takes default_grace; capped by max_grace.
  CancelState cancel(const std::string& id, CancelAction action, uint64_t grace_ms,
                     std::string_view reason);
  // Cancels everything running (SIGTERM: reason "shutdown").
  void cancelAll(CancelAction action, uint64_t grace_ms, std::string_view reason);

  Target* find(const std::string& id);
  size_t size() const { return targets_.size(); }  // tether_agent_targets
  std::vector<TargetInfo> list() const;
  bool tombstoned(const std::string& id);
  Tombstones& tombstones() { return tombstones_; }

  // SIGHUP: new graces, ttl, interrupt action, limits for targets started from now on.
  void reconfigure(SupervisorOptions options);

 private:
  Target::Options targetOptions(const std::string& id);
  void onTargetDone(Target& target, const Outcome& outcome);
  Error checkNew(const std::string& id);
  Result<Target*> insert(const std::string& id, Result<std::unique_ptr<Target>> target);

  uv_loop_t* loop_;
  const CgroupTree* tree_;
  SupervisorOptions options_;
  Tombstones tombstones_;
  Tombstones finished_;  // recently finished ids: a late cancel answers "finished"
  std::unordered_map<std::string, std::unique_ptr<Target>> targets_;
  DoneCallback on_done_;
};

}  // namespace tether::agent::supervise
