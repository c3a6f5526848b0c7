#include "tether/agent/supervise/cgroup.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>

#include "sys.hpp"

namespace tether::agent::supervise {
namespace {

constexpr std::string_view kControllers[] = {"memory", "pids", "cpu"};

std::vector<std::string> splitWords(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\t')) ++pos;
    size_t end = pos;
    while (end < text.size() && text[end] != ' ' && text[end] != '\n' && text[end] != '\t') ++end;
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

std::vector<std::string> readWords(const std::string& path) {
  auto text = sys::readFile(path);
  return text ? splitWords(*text) : std::vector<std::string>{};
}

// mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
std::string unescapeMountField(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      auto [ptr, ec] = std::from_chars(field.data() + i + 1, field.data() + i + 4, value, 8);
      if (ec == std::errc{} && ptr == field.data() + i + 4) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

bool isCgroup2(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

Error makeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return {};
  return errnoError(errno, "mkdir " + path);
}

// mkdir -p inside a cgroup2 mount: the deepest existing ancestor must be on cgroup2, or we would
// silently make a plain directory on the tmpfs of a hybrid /sys/fs/cgroup.
Error makeCgroupDirs(const std::string& path) {
  std::string existing = path;
  std::vector<std::string> missing;
  struct stat st {};
  while (::stat(existing.c_str(), &st) != 0) {
    if (errno != ENOENT) return errnoError(errno, "stat " + existing);
    size_t slash = existing.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return errnoError(ENOENT, "no parent of " + path);
    missing.push_back(existing);
    existing.resize(slash);
  }
  if (!isCgroup2(existing)) return errnoError(ENOTSUP, existing + " is not on a cgroup2 filesystem");
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (auto err = makeDir(*it)) return err;
  }
  return {};
}

std::string joinCgroup(const std::string& dir, std::string_view name) {
  if (!dir.empty() && dir.back() == '/') return dir + std::string(name);
  return dir + "/" + std::string(name);
}

// Enables `wanted` controllers (those offered) in cg/cgroup.subtree_control. For a non-root
// cgroup that holds processes the kernel refuses (EBUSY, no internal processes), so with
// `leaf` set, they are first moved into cg/<leaf> (systemd's advice for delegated services).
void enableControllers(const std::string& cg, const std::vector<std::string>& wanted,
                       const std::string& leaf, bool is_root, std::vector<std::string>& notes) {
  auto offered = readWords(joinCgroup(cg, "cgroup.controllers"));
  auto enabled = readWords(joinCgroup(cg, "cgroup.subtree_control"));
  std::vector<std::string> missing;
  for (const auto& c : wanted) {
    if (contains(offered, c) && !contains(enabled, c)) missing.push_back(c);
  }
  if (missing.empty()) return;
  if (!is_root && !leaf.empty()) {
    auto procs = readCgroupProcs(cg);
    if (procs && !procs->empty()) {
      std::string leaf_path = joinCgroup(cg, leaf);
      if (makeDir(leaf_path)) return;
      size_t moved = 0;
      for (int pid : *procs) {
        if (!sys::writeFile(joinCgroup(leaf_path, "cgroup.procs"), std::to_string(pid))) ++moved;
      }
      notes.push_back("moved " + std::to_string(moved) + " process(es) into " + leaf_path +
                      " to delegate controllers");
    }
  }
  for (const auto& c : missing) {
    if (auto err = sys::writeFile(joinCgroup(cg, "cgroup.subtree_control"), "+" + c)) {
      notes.push_back("could not enable " + c + " in " + cg + ": " + err.message());
    }
  }
}

std::vector<std::string> wantedControllers(const Limits& limits) {
  std::vector<std::string> out;
  if (limits.memory_max) out.emplace_back("memory");
  if (limits.pids_max) out.emplace_back("pids");
  if (limits.cpu_max) out.emplace_back("cpu");
  return out;
}

Error writeLimits(const std::string& cg, const Limits& limits,
                  const std::vector<std::string>& delegated) {
  if (limits.memory_max && contains(delegated, "memory")) {
    if (auto err = sys::writeFile(joinCgroup(cg, "memory.max"), std::to_string(*limits.memory_max)))
      return err;
  }
  if (limits.pids_max && contains(delegated, "pids")) {
    if (auto err = sys::writeFile(joinCgroup(cg, "pids.max"), std::to_string(*limits.pids_max)))
      return err;
  }
  if (limits.cpu_max && contains(delegated, "cpu")) {
    constexpr long kPeriodUs = 100'000;
    long quota = std::max(1000L, std::lround(*limits.cpu_max * kPeriodUs));
    if (auto err = sys::writeFile(joinCgroup(cg, "cpu.max"),
                                  std::to_string(quota) + " " + std::to_string(kPeriodUs)))
      return err;
  }
  return {};
}

}  // namespace

std::optional<std::string> parseV2CgroupPath(std::string_view proc_cgroup) {
  size_t pos = 0;
  while (pos < proc_cgroup.size()) {
    size_t end = proc_cgroup.find('\n', pos);
    if (end == std::string_view::npos) end = proc_cgroup.size();
    std::string_view line = proc_cgroup.substr(pos, end - pos);
    if (line.substr(0, 3) == "0::") return std::string(line.substr(3));
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<Cgroup2Mount> parseCgroup2Mount(std::string_view mountinfo) {
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t end = mountinfo.find('\n', pos);
    if (end == std::string_view::npos) end = mountinfo.size();
    std::string_view line = mountinfo.substr(pos, end - pos);
    pos = end + 1;
    // "36 35 98:0 /root /mnt rw,noatime master:1 - cgroup2 cgroup2 rw": optional fields end at " - ".
    size_t sep = line.find(" - ");
    if (sep == std::string_view::npos) continue;
    auto after = splitWords(line.substr(sep + 3));
    if (after.empty() || after[0] != "cgroup2") continue;
    auto before = splitWords(line.substr(0, sep));
    if (before.size() < 5) continue;
    return Cgroup2Mount{unescapeMountField(before[4]), unescapeMountField(before[3])};
  }
  return std::nullopt;
}

namespace {
Result<std::string> resolveV2Path(const std::string& proc_cgroup_file) {
  auto cgroup_text = sys::readFile(proc_cgroup_file);
  if (!cgroup_text) return cgroup_text.error();
  auto path = parseV2CgroupPath(*cgroup_text);
  if (!path) return errnoError(ENOENT, "no cgroup v2 line in " + proc_cgroup_file);
  auto mountinfo = sys::readFile("/proc/self/mountinfo");
  if (!mountinfo) return mountinfo.error();
  auto mount = parseCgroup2Mount(*mountinfo);
  if (!mount) return errnoError(ENOENT, "no cgroup2 mount in /proc/self/mountinfo");
  std::string rel = *path;
  // In a cgroup namespace or a bind mount the mount's root is a prefix of our path.
  if (mount->root != "/" && rel.compare(0, mount->root.size(), mount->root) == 0) {
    rel = rel.substr(mount->root.size());
  }
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  return mount->mount_point + rel;
}
}  // namespace

Result<std::string> discoverOwnCgroup() { return resolveV2Path("/proc/self/cgroup"); }

Result<std::string> cgroupOfPid(int pid) {
  return resolveV2Path("/proc/" + std::to_string(pid) + "/cgroup");
}

CgroupTree CgroupTree::open(const CgroupOptions& options) {
  CgroupTree tree;
  auto wanted = wantedControllers(options.limits);
  if (!options.root.empty()) {
    if (auto err = makeCgroupDirs(options.root)) {
      tree.reason_ = "cgroup_root " + err.message();
      return tree;
    }
    tree.parent_ = options.root;
    while (tree.parent_.size() > 1 && tree.parent_.back() == '/') tree.parent_.pop_back();
  } else {
    auto own = discoverOwnCgroup();
    if (!own) {
      tree.reason_ = own.error().message();
      return tree;
    }
    if (!isCgroup2(*own)) {
      tree.reason_ = *own + " is not on a cgroup2 filesystem";
      return tree;
    }
    auto mountinfo = sys::readFile("/proc/self/mountinfo");
    auto mount = mountinfo ? parseCgroup2Mount(*mountinfo) : std::nullopt;
    bool own_is_root = mount && (*own == mount->mount_point);
    std::string daemon = options.daemon.empty() ? "tether" : options.daemon;
    if (!wanted.empty()) {
      enableControllers(*own, wanted, options.move_self_to_leaf ? "tether-" + daemon + "-main" : "",
                        own_is_root, tree.notes_);
    }
    tree.parent_ = joinCgroup(*own, "tether-" + daemon);
    if (auto err = makeDir(tree.parent_)) {
      tree.reason_ = err.message();
      return tree;
    }
  }
  if (::access(joinCgroup(tree.parent_, "cgroup.procs").c_str(), W_OK) != 0) {
    tree.reason_ = tree.parent_ + "/cgroup.procs is not writable";
    return tree;
  }
  if (!wanted.empty()) {
    // The parent is ours and holds no processes, so enabling is allowed wherever offered.
    enableControllers(tree.parent_, wanted, "", false, tree.notes_);
  }
  auto enabled = readWords(joinCgroup(tree.parent_, "cgroup.subtree_control"));
  for (auto c : kControllers) {
    if (contains(enabled, c)) tree.delegated_.emplace_back(c);
  }
  tree.available_ = true;
  return tree;
}

std::vector<std::string> CgroupTree::unavailableLimits(const Limits& limits) const {
  std::vector<std::string> out;
  auto check = [&](bool wanted, std::string_view controller, std::string_view file) {
    if (!wanted || contains(delegated_, controller)) return;
    std::string why = available_ ? "controller " + std::string(controller) +
                                       " not delegated to " + parent_
                                 : "no cgroup v2: " + reason_;
    out.push_back(std::string(file) + " (" + why + ")");
  };
  check(limits.memory_max.has_value(), "memory", "memory.max");
  check(limits.pids_max.has_value(), "pids", "pids.max");
  check(limits.cpu_max.has_value(), "cpu", "cpu.max");
  return out;
}

Result<std::string> CgroupTree::createJobCgroup(std::string_view id, const Limits& limits) const {
  if (!isValidTargetId(id)) return errnoError(EINVAL, "invalid target id");
  return createNamedCgroup(jobCgroupName(id), limits);
}

Result<std::string> CgroupTree::createNamedCgroup(std::string_view name, const Limits& limits) const {
  if (!available_) return errnoError(ENOTSUP, "no cgroup v2: " + reason_);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return errnoError(EINVAL, "invalid cgroup name");
  }
  std::string base = joinCgroup(parent_, std::string(name));
  constexpr int kMaxSuffix = 100;
  for (int n = 1; n <= kMaxSuffix; ++n) {
    std::string path = n == 1 ? base : base + "-" + std::to_string(n);
    if (::mkdir(path.c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;
      return errnoError(errno, "mkdir " + path);
    }
    if (auto err = writeLimits(path, limits, delegated_)) {
      ::rmdir(path.c_str());
      return err;
    }
    return path;
  }
  return errnoError(EEXIST, "mkdir " + base + " (and " + std::to_string(kMaxSuffix) + " suffixes)");
}

std::string jobCgroupName(std::string_view id) {
  // FNV-1a, 64 bits: a name, not a secret. Two ids that collide get the `-2` suffix.
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "job-";
  for (int shift = 60; shift >= 0; shift -= 4) name.push_back(kHex[(h >> shift) & 0xf]);
  return name;
}

Result<std::vector<int>> readCgroupProcs(const std::string& cgroup) {
  auto text = sys::readFile(joinCgroup(cgroup, "cgroup.procs"));
  if (!text) return text.error();
  std::vector<int> pids;
  for (const auto& word : splitWords(*text)) {
    int pid = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), pid);
    if (ec == std::errc{} && pid > 0) pids.push_back(pid);
  }
  return pids;
}

namespace {
// One "key value" line of a cgroup interface file (cgroup.events, cpu.stat).
Result<uint64_t> readKey(const std::string& cgroup, std::string_view file, std::string_view key) {
  std::string path = joinCgroup(cgroup, file);
  auto text = sys::readFile(path);
  if (!text) return text.error();
  uint64_t value = 0;
  if (!sys::findKeyValue(*text, key, value)) return errnoError(EPROTO, "parse " + path);
  return value;
}
}  // namespace

Result<bool> readPopulated(const std::string& cgroup) {
  auto value = readKey(cgroup, "cgroup.events", "populated");
  if (!value) return value.error();
  return *value != 0;
}

Result<uint64_t> readCpuUsageUsec(const std::string& cgroup) {
  return readKey(cgroup, "cpu.stat", "usage_usec");
}

}  // namespace tether::agent::supervise
