#pragma once
// cgroup v2 for supervised targets (DESIGN.md "The cancel ladder"): where our cgroups live, which
// controllers are delegated to them, and one fresh `job-<id>` cgroup per target.
//
// Discovery: our own v2 cgroup is the `0::PATH` line of /proc/self/cgroup; the v2 mount is the
// `cgroup2` line of /proc/self/mountinfo (pure v2 at /sys/fs/cgroup, hybrid at
// /sys/fs/cgroup/unified). The parent of the job cgroups is then `<our cgroup>/tether-<daemon>`,
// or the configured `cgroup_root PATH;` as given (created if missing).
//
// Controllers (memory, pids, cpu) are enabled only when a limit asks for them and the parent
// offers them (cgroup.controllers). The "no internal processes" rule (kernel
// Documentation/admin-guide/cgroup-v2.rst, "No Internal Process Constraint") forbids enabling
// controllers in the subtree_control of a non-root cgroup that holds processes; when our own
// cgroup holds processes we move them into a leaf `<our cgroup>/tether-<daemon>-main`, as
// systemd's Delegate= documentation (docs/CGROUP_DELEGATION.md) tells delegated services to do.
// Where that fails, limits are reported unavailable and targets still run, unlimited.
#include "tether/agent/control/request_id.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/agent/supervise/error.hpp"

namespace tether::agent::supervise {

// Job limits (DESIGN.md `job_memory_max`, `job_pids_max`, `job_cpu_max`); unset = no limit.
struct Limits {
  std::optional<uint64_t> memory_max;  // bytes -> memory.max
  std::optional<uint64_t> pids_max;    // -> pids.max
  std::optional<double> cpu_max;       // cores (1.5 = 150000 per 100000 us) -> cpu.max
  bool empty() const { return !memory_max && !pids_max && !cpu_max; }
};

struct CgroupOptions {
  std::string root;                 // `cgroup_root`; empty: discover from /proc/self
  std::string daemon = "tether";    // names the discovered parent: <our cgroup>/tether-<daemon>
  Limits limits;                    // which controllers to try to enable
  bool move_self_to_leaf = true;    // allowed to move our processes into a leaf (see above)
};

// The v2 mount and our place in it, as parsed from /proc/self (exposed for tests).
struct Cgroup2Mount {
  std::string mount_point;  // "/sys/fs/cgroup/unified"
  std::string root;         // the mount's root inside the hierarchy, usually "/"
};
// The `0::/a/b` line of a /proc/PID/cgroup text; nullopt without one (a pure v1 system).
std::optional<std::string> parseV2CgroupPath(std::string_view proc_cgroup);
// The first cgroup2 mount of a /proc/PID/mountinfo text.
std::optional<Cgroup2Mount> parseCgroup2Mount(std::string_view mountinfo);
// Our v2 cgroup directory, e.g. "/sys/fs/cgroup/unified/" or
// "/sys/fs/cgroup/system.slice/solverd.service"; an Error when there is no v2 hierarchy.
Result<std::string> discoverOwnCgroup();
// The v2 cgroup directory of another process (used to put a released process back).
Result<std::string> cgroupOfPid(int pid);

// Where the targets' cgroups are made. Built once at start-up; read-only afterwards, so it can be
// shared by every Target (pass a pointer; nullptr or !available() means the fallback: a new
// process group plus pidfd, best effort: the caller says so once in its log).
class CgroupTree {
 public:
  // Never throws. On failure available() is false and unavailableReason() says why.
  static CgroupTree open(const CgroupOptions& options);

  bool available() const { return available_; }
  const std::string& unavailableReason() const { return reason_; }
  // Directory that holds the job-* cgroups.
  const std::string& parent() const { return parent_; }
  // Controllers enabled for the job cgroups ("memory", "pids", "cpu" subset).
  const std::vector<std::string>& delegated() const { return delegated_; }
  // The limits of `limits` that cannot be applied here, as directive-like names
  // ("memory.max", "pids.max", "cpu.max") with the reason, e.g.
  // "memory.max (controller memory not delegated to /sys/fs/cgroup/unified/tether-solverd)".
  std::vector<std::string> unavailableLimits(const Limits& limits) const;
  // What open() changed, for the start-up log ("moved 1 process into ...-main").
  const std::vector<std::string>& notes() const { return notes_; }

  // Makes a fresh `parent/job-<hash of id>` (jobCgroupName; with a suffix `-2`, `-3`... if that
  // name exists: a cgroup is never reused, since one that had cgroup.kill written kills every
  // later CLONE_INTO_CGROUP child) and writes the limits that can be applied. Returns its path.
  // `id` must satisfy isValidTargetId().
  Result<std::string> createJobCgroup(std::string_view id, const Limits& limits) const;
  // The same under a name the caller chose (it must be a plain file name: no `/`, not `.`/`..`).
  Result<std::string> createNamedCgroup(std::string_view name, const Limits& limits) const;

 private:
  bool available_ = false;
  std::string reason_;
  std::string parent_;
  std::vector<std::string> delegated_;
  std::vector<std::string> notes_;
};

// Target ids are request ids, under the protocol's one rule (tether/agent/control/request_id.hpp).
inline bool isValidTargetId(std::string_view id) { return control::isValidRequestId(id); }

// The directory name of a target's cgroup: "job-" and 16 hex digits of a hash of the id. A
// trusted id may hold `/`, `.` or `%`: it never names a file itself (DESIGN.md "Request identity").
std::string jobCgroupName(std::string_view id);

// Small cgroup file helpers (exposed for tests and for callers that inspect a target).
// The pids of `cgroup/cgroup.procs`.
Result<std::vector<int>> readCgroupProcs(const std::string& cgroup);
// `populated` of cgroup.events.
Result<bool> readPopulated(const std::string& cgroup);
// usage_usec of cpu.stat.
Result<uint64_t> readCpuUsageUsec(const std::string& cgroup);

}  // namespace tether::agent::supervise
