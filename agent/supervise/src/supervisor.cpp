#include "tether/agent/supervise/supervisor.hpp"

#include <cerrno>

#include "tether/common/clock.hpp"

namespace tether::agent::supervise {
namespace {
constexpr uint64_t kNsPerMs = 1'000'000;
}

Supervisor::Supervisor(uv_loop_t* loop, const CgroupTree* tree, SupervisorOptions options)
    : loop_(loop),
      tree_(tree),
      options_(std::move(options)),
      tombstones_(options_.tombstone_ttl_ms * kNsPerMs, options_.tombstone_capacity),
      finished_(options_.tombstone_ttl_ms * kNsPerMs, options_.tombstone_capacity) {}

Supervisor::~Supervisor() = default;  // ~Target kills whatever still runs

void Supervisor::reconfigure(SupervisorOptions options) {
  options_ = std::move(options);
  tombstones_.setTtl(options_.tombstone_ttl_ms * kNsPerMs);
  tombstones_.setCapacity(options_.tombstone_capacity);
  finished_.setTtl(options_.tombstone_ttl_ms * kNsPerMs);
  finished_.setCapacity(options_.tombstone_capacity);
}

Target::Options Supervisor::targetOptions(const std::string& id) {
  Target::Options o;
  o.id = id;
  o.max_grace_ms = options_.max_grace_ms;
  o.interrupt_signal = options_.interrupt_signal;
  o.interrupt = options_.interrupt;
  o.limits = options_.limits;
  o.on_done = [this](Target& target, const Outcome& outcome) { onTargetDone(target, outcome); };
  return o;
}

Error Supervisor::checkNew(const std::string& id) {
  if (!isValidTargetId(id)) return errnoError(EINVAL, "invalid id");
  if (targets_.count(id) != 0) return errnoError(EEXIST, "id " + id + " is already running");
  if (tombstones_.contains(id, monotonicNs())) return errnoError(ECANCELED, "id " + id + " was cancelled");
  return {};
}

Result<Target*> Supervisor::spawn(const std::string& id, const SpawnOptions& spawn) {
  if (auto err = checkNew(id)) return err;
  return insert(id, Target::spawn(loop_, tree_, targetOptions(id), spawn));
}

Result<Target*> Supervisor::adopt(const std::string& id, int pid) {
  if (auto err = checkNew(id)) return err;
  return insert(id, Target::adopt(loop_, tree_, targetOptions(id), pid));
}

Result<Target*> Supervisor::insert(const std::string& id, Result<std::unique_ptr<Target>> target) {
  if (!target) return target.error();
  Target* raw = target->get();
  targets_.emplace(id, std::move(*target));
  return raw;
}

bool Supervisor::release(const std::string& id) {
  auto it = targets_.find(id);
  if (it == targets_.end()) return false;
  return !it->second->release();
}

CancelState Supervisor::cancel(const std::string& id, CancelAction action, uint64_t grace_ms,
                               std::string_view reason) {
  auto it = targets_.find(id);
  uint64_t now = monotonicNs();
  if (it != targets_.end()) {
    it->second->cancel(action, grace_ms == 0 ? options_.default_grace_ms : grace_ms, reason);
    return CancelState::Running;
  }
  if (finished_.contains(id, now)) return CancelState::Finished;
  if (isValidTargetId(id)) tombstones_.add(id, now);
  return CancelState::Unknown;
}

void Supervisor::cancelAll(CancelAction action, uint64_t grace_ms, std::string_view reason) {
  // Target::cancel never finishes synchronously, so the table does not change under us.
  for (auto& [id, target] : targets_) {
    target->cancel(action, grace_ms == 0 ? options_.default_grace_ms : grace_ms, reason);
  }
}

Target* Supervisor::find(const std::string& id) {
  auto it = targets_.find(id);
  return it == targets_.end() ? nullptr : it->second.get();
}

std::vector<TargetInfo> Supervisor::list() const {
  std::vector<TargetInfo> out;
  out.reserve(targets_.size());
  for (const auto& [id, target] : targets_) {
    out.push_back(TargetInfo{id, target->pid(), target->cgroupPath(), target->state(),
                             target->adopted(), target->startedNs(), target->cancelRecord()});
  }
  return out;
}

bool Supervisor::tombstoned(const std::string& id) { return tombstones_.contains(id, monotonicNs()); }

void Supervisor::onTargetDone(Target& target, const Outcome& outcome) {
  finished_.add(outcome.id, monotonicNs());
  // Take ownership out of the table first: the Target is destroyed when this returns, after
  // the caller's callback saw the outcome (Target::finish touches nothing after calling us).
  std::unique_ptr<Target> done;
  auto it = targets_.find(target.id());
  if (it != targets_.end() && it->second.get() == &target) {
    done = std::move(it->second);
    targets_.erase(it);
  }
  if (on_done_) on_done_(outcome);
}

}  // namespace tether::agent::supervise
