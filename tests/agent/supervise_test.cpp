// The supervision library with real processes in real cgroups (skipped with the reason where no
// cgroup v2 is writable). Every test ends with: no process of its targets left, no cgroup left
// under the test's own cgroup root, and a loop that closes with no handle open.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "spawn.hpp"
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/fork_server.hpp"
#include "tether/agent/supervise/supervisor.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/agent/supervise/tombstones.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/uv_kit.hpp"  // the target's pipes (Target::takeStdoutPipe)
#include "tether/common/uv_kit.hpp"

extern char** environ;

namespace tether::agent::supervise {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kMs = 1'000'000;
const std::string kFixture = std::string(TETHER_BIN_DIR) + "/supervise_fixture";

// ---- pure parsing and bookkeeping ------------------------------------------------------------

TEST(CgroupDiscovery, V2LineOfProcSelfCgroupOnHybridLayout) {
  EXPECT_EQ(parseV2CgroupPath("9:name=systemd:/\n4:memory:/x\n0::/\n"), "/");
  EXPECT_EQ(parseV2CgroupPath("0::/system.slice/solverd.service\n"), "/system.slice/solverd.service");
  EXPECT_FALSE(parseV2CgroupPath("4:memory:/x\n1:cpu:/\n").has_value());
}

TEST(CgroupDiscovery, Cgroup2MountInMountinfoPureAndHybrid) {
  auto hybrid = parseCgroup2Mount(
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(hybrid);
  EXPECT_EQ(hybrid->mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(hybrid->root, "/");
  auto pure = parseCgroup2Mount(
      "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");
  ASSERT_TRUE(pure);
  EXPECT_EQ(pure->mount_point, "/sys/fs/cgroup");
  auto escaped = parseCgroup2Mount("50 1 0:40 /ns /mnt/my\\040cg rw - cgroup2 none rw\n");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->mount_point, "/mnt/my cg");
  EXPECT_EQ(escaped->root, "/ns");
  EXPECT_FALSE(parseCgroup2Mount("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n"));
}

TEST(TargetIds, BalancerIdsQualifyAndNeverNameTheCgroupThemselves) {
  EXPECT_TRUE(isValidTargetId("0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(isValidTargetId("job_1.a:b-c"));
  EXPECT_TRUE(isValidTargetId("Root=1-67891233-abcdef012345678912345678"));
  EXPECT_TRUE(isValidTargetId("../a/b"));
  EXPECT_FALSE(isValidTargetId(""));
  EXPECT_FALSE(isValidTargetId("a b"));
  EXPECT_FALSE(isValidTargetId(std::string(129, 'a')));
  // Whatever the id holds, its cgroup is one plain directory name of our making.
  for (const char* id : {"..", "../a/b", "Root=1-67891233-abcdef012345678912345678", "a%2Fb"}) {
    const std::string name = jobCgroupName(id);
    EXPECT_EQ(name.size(), 20U) << id;
    EXPECT_EQ(name.find_first_not_of("job-0123456789abcdef"), std::string::npos) << name;
  }
  EXPECT_NE(jobCgroupName("a"), jobCgroupName("b"));
}

TEST(Tombstones, CancelledIdIsRefusedUntilTheTtlThenForgotten) {
  Tombstones t(30'000 * kMs, 10);
  EXPECT_TRUE(t.add("a", 0));
  EXPECT_TRUE(t.contains("a", 29'999 * kMs));
  EXPECT_FALSE(t.contains("a", 30'000 * kMs));
  EXPECT_EQ(t.size(30'000 * kMs), 0u);
}

TEST(Tombstones, RepeatedCancelDoesNotExtendTheRefusal) {
  Tombstones t(1000 * kMs, 10);
  EXPECT_TRUE(t.add("a", 0));
  EXPECT_FALSE(t.add("a", 900 * kMs));
  EXPECT_FALSE(t.contains("a", 1000 * kMs));
}

TEST(Tombstones, FloodOfUnknownIdsStaysBoundedOldestEvictedFirst) {
  Tombstones t(30'000 * kMs, 1000);
  for (int i = 0; i < 200'000; ++i) t.add("id" + std::to_string(i), static_cast<uint64_t>(i));
  EXPECT_EQ(t.size(200'000), 1000u);
  EXPECT_EQ(t.evicted(), 199'000u);
  EXPECT_FALSE(t.contains("id0", 200'000));
  EXPECT_TRUE(t.contains("id199999", 200'000));
  EXPECT_TRUE(t.contains("id199000", 200'000));
  EXPECT_FALSE(t.contains("id198999", 200'000));
}

TEST(Tombstones, EraseForgetsAndAddEraseCyclesStayBounded) {
  Tombstones t(30'000 * kMs, 10);
  for (int i = 0; i < 10'000; ++i) {
    t.add("x", static_cast<uint64_t>(i));
    EXPECT_TRUE(t.erase("x"));
  }
  EXPECT_FALSE(t.contains("x", 10'000));
  EXPECT_EQ(t.size(10'000), 0u);
}

// ---- real processes ---------------------------------------------------------------------------

bool processGone(int pid) {
  // A zombie (reparented to init, not yet reaped) runs no code: count it as gone.
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return true;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) return line.find('Z') != std::string::npos ||
                                             line.find('X') != std::string::npos;
  }
  return true;
}

std::vector<int> parseReady(const std::string& out) {
  std::vector<int> pids;
  auto pos = out.find("ready ");
  if (pos == std::string::npos) return pids;
  std::istringstream in(out.substr(pos + 6, out.find('\n', pos) - pos - 6));
  int pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// Reads a pipe of a target into a string until EOF.
struct Capture {
  std::unique_ptr<uv::Handle<uv_pipe_t>> pipe;
  std::string text;
  bool eof = false;

  void start(std::unique_ptr<uv::Handle<uv_pipe_t>> p) {
    pipe = std::move(p);
    (*pipe)->data = this;
    uv_read_start(
        pipe->stream(),
        [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
          buf->base = new char[suggested];
          buf->len = suggested;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* self = static_cast<Capture*>(s->data);
          if (n > 0) self->text.append(buf->base, static_cast<size_t>(n));
          if (n < 0) {
            self->eof = true;
            uv_read_stop(s);
          }
          delete[] buf->base;
        });
  }
};

// A test binary that crashed leaves its (empty) test roots: remove those whose pid is gone, so
// one crash does not look like a leak to every later run.
void removeRootsOfDeadRuns(const std::string& own) {
  const std::string prefix = "tether-supervise-test-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(own, ec)) {
    std::string name = entry.path().filename();
    if (name.rfind(prefix, 0) != 0) continue;
    int pid = std::atoi(name.c_str() + prefix.size());
    if (pid <= 0 || pid == getpid() || ::kill(pid, 0) == 0) continue;
    std::vector<fs::path> dirs;
    for (const auto& sub : fs::recursive_directory_iterator(entry.path(), ec)) {
      if (sub.is_directory()) dirs.push_back(sub.path());
    }
    std::sort(dirs.rbegin(), dirs.rend());  // children before parents
    for (const auto& d : dirs) ::rmdir(d.c_str());
    ::rmdir(entry.path().c_str());
  }
}

class SuperviseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    auto own = discoverOwnCgroup();
    if (own) {
      removeRootsOfDeadRuns(*own);
      static std::atomic<int> counter{0};
      root_ = *own + "/tether-supervise-test-" + std::to_string(getpid()) + "-" +
              std::to_string(counter++);
      tree_ = CgroupTree::open(CgroupOptions{root_, "test", {}, false});
      if (!tree_.available()) skip_reason_ = tree_.unavailableReason();
    } else {
      skip_reason_ = own.error().message();
    }
  }

  void TearDown() override {
    for (auto& t : targets_) t.reset();
    // The captured pipes are closed by their owners before closeLoop() runs, which then finds
    // nothing of theirs left (a pipe closed by closeLoop would still be freed by its owner).
    captures_.clear();
    for (int pid : pids_) EXPECT_TRUE(processGone(pid)) << "pid " << pid << " survived";
    if (!root_.empty() && fs::exists(root_)) {
      for (const auto& entry : fs::directory_iterator(root_)) {
        EXPECT_FALSE(entry.is_directory()) << "cgroup left behind: " << entry.path();
      }
      ::rmdir(root_.c_str());
    }
    EXPECT_EQ(closeLoop(&loop_), 0) << "a handle was left open";
  }

  bool needCgroup() {
    if (!tree_.available()) return false;
    return true;
  }

  // Runs the loop until pred() or the deadline; no sleeping: the loop waits for events.
  bool runUntil(const std::function<bool()>& pred, uint64_t timeout_ms) {
    uv::Handle<uv_timer_t> timer(&loop_);
    bool expired = false;
    timer->data = &expired;
    uv_timer_start(timer.get(), [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
                   timeout_ms, 0);
    while (!pred() && !expired) uv_run(&loop_, UV_RUN_ONCE);
    return pred();
  }

  void runFor(uint64_t ms) {
    bool never = false;
    runUntil([&] { return never; }, ms);
  }

  Target::Options options(const std::string& id) {
    Target::Options o;
    o.id = id;
    o.on_done = [this](Target&, const Outcome& outcome) {
      outcome_ = outcome;
      done_ = true;
    };
    return o;
  }

  // Spawns the fixture with stdout captured and waits for its "ready" line.
  Target* spawnFixture(const std::string& id, std::vector<std::string> args, const CgroupTree* tree,
                       Target::Options* custom = nullptr) {
    SpawnOptions spawn;
    spawn.argv = {kFixture};
    spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
    spawn.stdout_mode = Stdio::kPipe;
    auto target = Target::spawn(&loop_, tree, custom ? *custom : options(id), spawn);
    EXPECT_TRUE(target.ok()) << target.error().message();
    if (!target) return nullptr;
    targets_.push_back(std::move(*target));
    Target* t = targets_.back().get();
    auto capture = std::make_unique<Capture>();
    capture->start(t->takeStdoutPipe());
    Capture* c = capture.get();
    captures_.push_back(std::move(capture));
    EXPECT_TRUE(runUntil([&] { return c->text.find('\n') != std::string::npos || c->eof; }, 10'000));
    auto pids = parseReady(c->text);
    EXPECT_FALSE(pids.empty()) << "fixture not ready: " << c->text;
    pids_.insert(pids_.end(), pids.begin(), pids.end());
    return t;
  }

  bool waitDone(uint64_t timeout_ms = 10'000) { return runUntil([&] { return done_; }, timeout_ms); }

  uv_loop_t loop_{};
  std::string root_;
  CgroupTree tree_;
  std::string skip_reason_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<std::unique_ptr<Capture>> captures_;
  std::vector<int> pids_;
  bool done_ = false;
  Outcome outcome_;
};

#define REQUIRE_CGROUP()                                                        \
  do {                                                                          \
    if (!needCgroup()) GTEST_SKIP() << "no writable cgroup v2: " << skip_reason_; \
  } while (0)

TEST_F(SuperviseTest, DiscoveredTreeLivesUnderOurOwnCgroup) {
  REQUIRE_CGROUP();
  std::string daemon = "supervise-test-" + std::to_string(getpid());
  CgroupTree tree = CgroupTree::open(CgroupOptions{"", daemon, {}, false});
  ASSERT_TRUE(tree.available()) << tree.unavailableReason();
  auto own = discoverOwnCgroup();
  ASSERT_TRUE(own);
  EXPECT_EQ(tree.parent(), *own + "/tether-" + daemon);
  auto job = tree.createJobCgroup("abc", {});
  ASSERT_TRUE(job) << job.error().message();
  EXPECT_EQ(*job, tree.parent() + "/" + jobCgroupName("abc"));
  auto again = tree.createJobCgroup("abc", {});
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, tree.parent() + "/" + jobCgroupName("abc") + "-2") << "an existing cgroup is never reused";
  EXPECT_EQ(::rmdir(again->c_str()), 0);
  EXPECT_EQ(::rmdir(job->c_str()), 0);
  EXPECT_EQ(::rmdir(tree.parent().c_str()), 0);
}

TEST_F(SuperviseTest, CgroupRootOutsideCgroup2IsRefused) {
  CgroupTree tree = CgroupTree::open(CgroupOptions{"/tmp/tether-not-a-cgroup/x", "t", {}, false});
  EXPECT_FALSE(tree.available());
  EXPECT_NE(tree.unavailableReason().find("not on a cgroup2"), std::string::npos)
      << tree.unavailableReason();
  EXPECT_FALSE(fs::exists("/tmp/tether-not-a-cgroup"));
}

TEST_F(SuperviseTest, KillStopsTreeWithGrandchildrenAndRemovesItsCgroup) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("kill-tree", {"tree", "3"}, &tree_);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(pids_.size(), 7u);
  std::string cg = t->cgroupPath();
  ASSERT_TRUE(fs::exists(cg));
  auto procs = readCgroupProcs(cg);
  ASSERT_TRUE(procs);
  EXPECT_EQ(procs->size(), 7u) << "every process of the tree is in the job cgroup";
  uint64_t before = monotonicNs();
  EXPECT_EQ(t->cancel(CancelAction::Kill, 0, "test"), Target::State::kKilling);
  ASSERT_TRUE(waitDone());
  std::printf("kill: cancel to empty cgroup %.3f ms\n", secondsBetween(before, outcome_.done_ns) * 1e3);
  EXPECT_EQ(outcome_.status.describe(), "signal SIGKILL");
  ASSERT_TRUE(outcome_.cancel);
  EXPECT_GT(outcome_.cancel->killed_ns, 0u);
  EXPECT_GE(outcome_.cancel->exited_ns, outcome_.cancel->killed_ns);
  EXPECT_FALSE(outcome_.cleanup_error) << outcome_.cleanup_error.message();
  EXPECT_TRUE(outcome_.cpu_usec.has_value());
  EXPECT_FALSE(fs::exists(cg)) << "the job cgroup is removed once empty";
  for (int pid : pids_) EXPECT_TRUE(processGone(pid)) << pid;
}

TEST_F(SuperviseTest, InterruptReachesEveryGrandchildNotJustTheLeader) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("int-tree", {"tree", "2"}, &tree_);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 5000, "client_disconnect");
  ASSERT_TRUE(waitDone(3000));
  EXPECT_EQ(outcome_.status.describe(), "signal SIGINT");
  ASSERT_TRUE(outcome_.cancel);
  EXPECT_EQ(outcome_.cancel->killed_ns, 0u) << "SIGINT alone stopped the whole tree";
  EXPECT_EQ(outcome_.cancel->reason, "client_disconnect");
  EXPECT_LE(outcome_.cancel->received_ns, outcome_.cancel->signalled_ns);
  EXPECT_LE(outcome_.cancel->signalled_ns, outcome_.cancel->exited_ns);
  std::printf("interrupt: signalled to exited %.3f ms\n",
              secondsBetween(outcome_.cancel->signalled_ns, outcome_.cancel->exited_ns) * 1e3);
}

TEST_F(SuperviseTest, SetsidChildIsStillSignalledThroughTheCgroup) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("setsid", {"setsid"}, &tree_);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(pids_.size(), 2u);
  EXPECT_NE(getsid(pids_[1]), getsid(pids_[0])) << "the child left the session";
  t->cancel(CancelAction::Interrupt, 5000, "test");
  ASSERT_TRUE(waitDone(3000));
  EXPECT_EQ(outcome_.cancel->killed_ns, 0u);
  EXPECT_TRUE(processGone(pids_[1]));
}

TEST_F(SuperviseTest, SigintIgnoringTreeIsKilledWhenTheGraceRunsOut) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("ignore", {"ignore-int", "2"}, &tree_);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 300, "test");
  EXPECT_EQ(t->state(), Target::State::kInterrupting);
  ASSERT_TRUE(waitDone(5000));
  ASSERT_TRUE(outcome_.cancel);
  EXPECT_GT(outcome_.cancel->killed_ns, 0u);
  double grace = secondsBetween(outcome_.cancel->signalled_ns, outcome_.cancel->killed_ns);
  EXPECT_GE(grace, 0.299);
  EXPECT_LT(grace, 2.0);
  EXPECT_EQ(outcome_.status.describe(), "signal SIGKILL");
  std::printf("grace 300 ms: killed after %.1f ms, empty %.3f ms after the kill\n", grace * 1e3,
              secondsBetween(outcome_.cancel->killed_ns, outcome_.cancel->exited_ns) * 1e3);
}

TEST_F(SuperviseTest, MaxGraceCapsTheGraceOfACancel) {
  REQUIRE_CGROUP();
  auto o = options("capped");
  o.max_grace_ms = 100;
  Target* t = spawnFixture("capped", {"ignore-int", "1"}, &tree_, &o);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 60'000, "test");
  ASSERT_TRUE(waitDone(3000)) << "a 60 s grace capped at 100 ms";
  EXPECT_GT(outcome_.cancel->killed_ns, 0u);
}

TEST_F(SuperviseTest, SecondInterruptDoesNotRestartTheGraceAndKillCutsItShort) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("twice", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 400, "first");
  uint64_t first_signalled = t->cancelRecord()->signalled_ns;
  runFor(350);
  const uint64_t second_ns = monotonicNs();
  t->cancel(CancelAction::Interrupt, 400, "second");
  EXPECT_EQ(t->cancelRecord()->signalled_ns, first_signalled) << "the interrupt ran once";
  EXPECT_EQ(t->cancelRecord()->reason, "first");
  ASSERT_TRUE(waitDone(5000));
  // The order, not a tight figure: the kill came before a restarted grace (the second cancel's
  // time + 400 ms, 350 ms after the first deadline) would have ended.
  EXPECT_LT(outcome_.cancel->killed_ns, second_ns + 400'000'000ULL) << "the second cancel restarted the grace";

  // kill after interrupt: at once.
  done_ = false;
  Target* u = spawnFixture("twice-kill", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(u, nullptr);
  u->cancel(CancelAction::Interrupt, 10'000, "first");
  u->cancel(CancelAction::Kill, 0, "second");
  ASSERT_TRUE(waitDone(2000));
  EXPECT_EQ(outcome_.cancel->action, CancelAction::Kill);
  EXPECT_LT(secondsBetween(outcome_.cancel->received_ns, outcome_.cancel->exited_ns), 1.0);
}

TEST_F(SuperviseTest, RegraceMovesTheKillToTheFirstInterruptPlusTheNewGraceLaterOrSooner) {
  REQUIRE_CGROUP();
  // Later: solverd's own watch interrupted with its 200 ms; the proxy's frame then says 1 s.
  Target* t = spawnFixture("regrace-longer", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 200, "client_disconnect");
  runFor(100);
  EXPECT_EQ(t->regrace(1000), Target::State::kInterrupting);
  ASSERT_TRUE(waitDone(5000));
  EXPECT_GE(secondsBetween(outcome_.cancel->signalled_ns, outcome_.cancel->killed_ns), 1.0)
      << "the kill came at the watch's 200 ms, not the frame's 1 s";

  // Counted from the first interrupt: 700 ms given 500 ms after it ends 700 ms after it, not
  // 1.2 s (which a grace counted from the regrace would give).
  done_ = false;
  Target* w = spawnFixture("regrace-from-first", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(w, nullptr);
  w->cancel(CancelAction::Interrupt, 10'000, "client_disconnect");
  runFor(500);
  EXPECT_EQ(w->regrace(700), Target::State::kInterrupting);
  ASSERT_TRUE(waitDone(5000));
  const double grace = secondsBetween(outcome_.cancel->signalled_ns, outcome_.cancel->killed_ns);
  EXPECT_GE(grace, 0.7);
  EXPECT_LT(grace, 1.15) << "the grace was counted from the regrace, not from the first interrupt";

  // Sooner: a grace already past kills at once.
  done_ = false;
  Target* u = spawnFixture("regrace-sooner", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(u, nullptr);
  u->cancel(CancelAction::Interrupt, 10'000, "client_disconnect");
  runFor(50);
  EXPECT_EQ(u->regrace(0), Target::State::kKilling);
  ASSERT_TRUE(waitDone(2000));
  EXPECT_NE(outcome_.cancel->killed_ns, 0U);

  // Not interrupting: nothing to move.
  done_ = false;
  Target* v = spawnFixture("regrace-running", {"ignore-int", "1"}, &tree_);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->regrace(0), Target::State::kRunning);
  v->cancel(CancelAction::Kill, 0, "test");
  ASSERT_TRUE(waitDone(2000));
}

TEST_F(SuperviseTest, CommandThatExitsAtOnceReportsItsExitCode) {
  REQUIRE_CGROUP();
  SpawnOptions spawn;
  spawn.argv = {kFixture, "exit", "7"};
  auto t = Target::spawn(&loop_, &tree_, options("exit7"), spawn);
  ASSERT_TRUE(t) << t.error().message();
  std::string cg = (*t)->cgroupPath();
  targets_.push_back(std::move(*t));
  ASSERT_TRUE(waitDone());
  EXPECT_EQ(outcome_.status.kind, ExitStatus::Kind::kExited);
  EXPECT_EQ(outcome_.status.code, 7);
  EXPECT_FALSE(outcome_.cancel);
  EXPECT_TRUE(outcome_.cpu_usec.has_value());
  EXPECT_FALSE(fs::exists(cg));
  // A cancel after the end changes nothing.
  EXPECT_EQ(targets_.back()->cancel(CancelAction::Kill, 0, "late"), Target::State::kDone);
}

// The fixture's fork server, with clone3 and with clone(2) (where clone3 is filtered, as under
// systemd's RestrictNamespaces=).
class ForkServerTest : public SuperviseTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void TearDown() override {
    if (sock_ >= 0) ::close(sock_);
    SuperviseTest::TearDown();
  }

  // The server: a Target of its own, its end of the socket on fd 3 (SpawnOptions::fd3); true
  // once it has announced itself.
  bool startServer() {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return false;
    sock_ = pair[0];
    SpawnOptions spawn;
    spawn.argv = {kFixture, GetParam()};
    spawn.fd3 = pair[1];
    Target::Options server_options;
    server_options.id = "fork-server";
    server_options.on_done = [this](Target&, const Outcome& o) {
      server_outcome_ = o;
      server_done_ = true;
    };
    auto server = Target::spawn(&loop_, &tree_, server_options, spawn);
    ::close(pair[1]);
    EXPECT_TRUE(server) << server.error().message();
    if (!server) return false;
    server_pid_ = (*server)->pid();
    targets_.push_back(std::move(*server));
    auto announced = fork_server::awaitReady(sock_, 10'000);
    EXPECT_TRUE(announced) << announced.error().message();
    if (!announced) return false;
    EXPECT_EQ(*announced, server_pid_);
    return true;
  }

  int sock_ = -1;
  int server_pid_ = 0;
  bool server_done_ = false;
  Outcome server_outcome_;
};
INSTANTIATE_TEST_SUITE_P(Clone, ForkServerTest, ::testing::Values("fork-server", "fork-server-clone2"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param == "fork-server" ? "Clone3" : "Clone2"; });

TEST_P(ForkServerTest, ChildStartsInTheTargetsCgroupAsOurOwnChild) {
  REQUIRE_CGROUP();
  ASSERT_TRUE(startServer());
  // A child of the server, made by Target::start with the server as its Starter.
  auto child = Target::start(&loop_, &tree_, options("forked"), {Stdio::kNull, Stdio::kPipe, Stdio::kNull},
                             [&](int cgroup_fd, const std::array<int, 3>& stdio) {
                               return fork_server::request(sock_, cgroup_fd, stdio, 5'000);
                             });
  ASSERT_TRUE(child) << child.error().message();
  const std::string cg = (*child)->cgroupPath();
  auto capture = std::make_unique<Capture>();
  capture->start((*child)->takeStdoutPipe());
  Capture* out = capture.get();
  captures_.push_back(std::move(capture));
  targets_.push_back(std::move(*child));
  ASSERT_TRUE(waitDone());
  ASSERT_TRUE(runUntil([&] { return out->eof; }, 5'000));
  // Reaped by us through its pidfd, with its exit status: our child, not the server's.
  EXPECT_EQ(outcome_.status.describe(), "exit 9");
  EXPECT_TRUE(outcome_.in_cgroup);
  std::istringstream words(out->text);
  std::string tag, cgroup;
  int pid = 0, ppid = 0;
  words >> tag >> pid >> ppid >> cgroup;
  EXPECT_EQ(tag, "forked") << out->text;
  EXPECT_EQ(pid, outcome_.pid);
  EXPECT_NE(pid, server_pid_);
  EXPECT_EQ(ppid, ::getpid()) << out->text;
  // In its own cgroup before it ran any code of its own, removed at its end.
  EXPECT_FALSE(cgroup.empty());
  EXPECT_TRUE(cg.ends_with(cgroup)) << cg << " vs " << cgroup;
  EXPECT_FALSE(fs::exists(cg));

  // Every fd is required; the request is refused before it reaches the server.
  auto refused = fork_server::request(sock_, -1, {-1, -1, -1}, 1'000);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, EBADF);
  // The client's end closed: the server leaves on its own, exit 0.
  ::close(std::exchange(sock_, -1));
  ASSERT_TRUE(runUntil([&] { return server_done_; }, 5'000));
  EXPECT_EQ(server_outcome_.status.describe(), "exit 0");
}

TEST_P(ForkServerTest, AStarterThatFailsAfterItsChildExistedLeavesNoChildOrCgroup) {
  REQUIRE_CGROUP();
  ASSERT_TRUE(startServer());
  // As if the server had died between its clone and its answer: a child in the fresh cgroup
  // that the caller has no pidfd for.
  int orphan = 0;
  std::string orphan_cgroup;
  auto child = Target::start(&loop_, &tree_, options("orphan"), {Stdio::kPipe, Stdio::kNull, Stdio::kNull},
                             [&](int cgroup_fd, const std::array<int, 3>& stdio) -> Result<ChildProcess> {
                               auto made = fork_server::request(sock_, cgroup_fd, stdio, 5'000);
                               if (!made) return made;
                               orphan = made->pid;
                               auto where = cgroupOfPid(orphan);
                               if (where) orphan_cgroup = *where;
                               ::close(made->pidfd);
                               return errnoError(EPIPE, "the answer was lost");
                             });
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, EPIPE);
  ASSERT_GT(orphan, 0);
  EXPECT_FALSE(orphan_cgroup.empty());
  // Killed and reaped (not even a zombie is left), and its cgroup removed.
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(orphan))) << "orphan " << orphan << " not reaped";
  EXPECT_FALSE(fs::exists(orphan_cgroup)) << orphan_cgroup;
}

TEST_F(SuperviseTest, TreeExitingWhileBeingSignalledFinishesCleanly) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("die", {"die-together", "30"}, &tree_);
  ASSERT_NE(t, nullptr);
  t->cancel(CancelAction::Interrupt, 5000, "test");
  ASSERT_TRUE(waitDone(3000));
  EXPECT_EQ(outcome_.cancel->killed_ns, 0u);
  EXPECT_EQ(outcome_.status.describe(), "signal SIGKILL") << "the group killed itself";
  EXPECT_FALSE(outcome_.cleanup_error);
}

TEST_F(SuperviseTest, LeaderExitLeavingChildrenKillsTheStragglers) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("straggle", {"tree", "1"}, &tree_);
  ASSERT_NE(t, nullptr);
  ::kill(t->pid(), SIGTERM);  // only the leader
  ASSERT_TRUE(waitDone());
  EXPECT_EQ(outcome_.status.describe(), "signal SIGTERM");
  for (int pid : pids_) EXPECT_TRUE(processGone(pid));
}

TEST_F(SuperviseTest, PipesCarryStdinToTheCommandAndItsStdoutBack) {
  REQUIRE_CGROUP();
  SpawnOptions spawn;
  spawn.argv = {"cat"};
  spawn.stdin_mode = Stdio::kPipe;
  spawn.stdout_mode = Stdio::kPipe;
  auto t = Target::spawn(&loop_, &tree_, options("cat"), spawn);
  ASSERT_TRUE(t) << t.error().message();
  Capture out;
  out.start((*t)->takeStdoutPipe());
  struct Quiet final : uv::StreamEvents {
    void onRead(ssize_t, const char*) override {}
    void onWriteFailed(int status) override { ADD_FAILURE() << uv_strerror(status); }
  } events;
  auto in = (*t)->takeStdinStream(events);
  ASSERT_TRUE(in);
  targets_.push_back(std::move(*t));
  ASSERT_EQ(in->write("frame\n"), 0);
  EXPECT_EQ(in->pending(), 0u);  // a pipe with room takes it whole: no copy, no request
  in->close();  // EOF on the command's stdin
  ASSERT_TRUE(runUntil([&] { return done_ && out.eof; }, 5000));
  EXPECT_EQ(out.text, "frame\n");
  EXPECT_EQ(outcome_.status.describe(), "exit 0");
}

TEST_F(SuperviseTest, ExecFailureIsReportedAndLeavesNoCgroup) {
  REQUIRE_CGROUP();
  SpawnOptions spawn;
  spawn.argv = {"/nonexistent/solver"};
  auto t = Target::spawn(&loop_, &tree_, options("noexec"), spawn);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ENOENT) << t.error().message();
  spawn.argv = {"tether-no-such-command"};
  auto u = Target::spawn(&loop_, &tree_, options("nopath"), spawn);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, ENOENT);
  spawn.argv = {"/bin/true"};
  spawn.cwd = "/nonexistent-dir";
  auto w = Target::spawn(&loop_, &tree_, options("nocwd"), spawn);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ENOENT);
  EXPECT_NE(w.error().what.find("chdir"), std::string::npos) << w.error().what;
}

TEST_F(SuperviseTest, ForkFallbackAlsoStartsTheChildInsideItsCgroup) {
  REQUIRE_CGROUP();
  spawn::forceForkForTesting(true);
  Target* t = spawnFixture("forked", {"tree", "1"}, &tree_);
  spawn::forceForkForTesting(false);
  ASSERT_NE(t, nullptr);
  auto procs = readCgroupProcs(t->cgroupPath());
  ASSERT_TRUE(procs);
  EXPECT_EQ(procs->size(), 3u);
  t->cancel(CancelAction::Kill, 0, "test");
  ASSERT_TRUE(waitDone());
}

TEST_F(SuperviseTest, DestroyingARunningTargetKillsItsTreeAndRemovesItsCgroup) {
  REQUIRE_CGROUP();
  Target* t = spawnFixture("destroy", {"tree", "2"}, &tree_);
  ASSERT_NE(t, nullptr);
  std::string cg = t->cgroupPath();
  targets_.clear();
  EXPECT_FALSE(fs::exists(cg));
  for (int pid : pids_) EXPECT_TRUE(processGone(pid)) << pid;
}

TEST_F(SuperviseTest, WithoutCgroupTheProcessGroupIsKilledThroughTheLeader) {
  Target* t = spawnFixture("fallback", {"tree", "2"}, nullptr);
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->inCgroup());
  t->cancel(CancelAction::Kill, 0, "test");
  ASSERT_TRUE(waitDone());
  EXPECT_EQ(outcome_.status.describe(), "signal SIGKILL");
  EXPECT_FALSE(outcome_.in_cgroup);
  EXPECT_TRUE(outcome_.cpu_usec.has_value()) << "rusage of the leader";
  // The grandchildren were in the leader's group: killed with it (init reaps them).
  EXPECT_TRUE(runUntil([&] {
    for (int pid : pids_) if (!processGone(pid)) return false;
    return true;
  }, 2000));
}

// A child of the test started with posix_spawn (not by the library), as tether-run would be.
int startPlain(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Its "ready" line would only clutter the test's output.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

TEST_F(SuperviseTest, AdoptedProcessMovesIntoAFreshCgroupAndIsKilled) {
  REQUIRE_CGROUP();
  int pid = startPlain({kFixture, "pause"});
  ASSERT_GT(pid, 0);
  pids_.push_back(pid);
  auto t = Target::adopt(&loop_, &tree_, options("adopted"), pid);
  ASSERT_TRUE(t) << t.error().message();
  auto procs = readCgroupProcs((*t)->cgroupPath());
  ASSERT_TRUE(procs);
  EXPECT_EQ(*procs, std::vector<int>{pid});
  (*t)->cancel(CancelAction::Kill, 0, "test");
  targets_.push_back(std::move(*t));
  ASSERT_TRUE(waitDone());
  EXPECT_EQ(outcome_.status.kind, ExitStatus::Kind::kUnknown) << "not our child";
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_F(SuperviseTest, ReleaseHandsAnAdoptedProcessBackAlive) {
  REQUIRE_CGROUP();
  int pid = startPlain({kFixture, "pause"});
  ASSERT_GT(pid, 0);
  auto origin = cgroupOfPid(pid);
  ASSERT_TRUE(origin);
  auto t = Target::adopt(&loop_, &tree_, options("released"), pid);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_FALSE((*t)->release());
  targets_.push_back(std::move(*t));
  ASSERT_TRUE(waitDone());
  EXPECT_TRUE(outcome_.released);
  EXPECT_FALSE(processGone(pid));
  auto now = cgroupOfPid(pid);
  ASSERT_TRUE(now);
  EXPECT_EQ(*now, *origin);
  ::kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// Makes the next fork get `pid` through ns_last_pid (root only); -1 if someone else took it.
int forkWithPid(int wanted) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    std::string last = std::to_string(wanted - 1);
    bool ok = ::write(fd, last.data(), last.size()) == static_cast<ssize_t>(last.size());
    ::close(fd);
    if (!ok) return -1;
    int pid = startPlain({kFixture, "pause"});
    if (pid == wanted) return pid;
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  return -1;
}

// The leader exits and is reaped by its parent, and its number goes to a new process before the
// Target has seen the exit: a cancel then must not touch the newcomer.
void checkReusedPidIsNeverSignalled(SuperviseTest* test, const CgroupTree* tree, uv_loop_t* loop,
                                    Target::Options options, bool& done) {
  int pid = startPlain({kFixture, "pause"});
  ASSERT_GT(pid, 0);
  auto t = Target::adopt(loop, tree, std::move(options), pid);
  ASSERT_TRUE(t) << t.error().message();
  ::kill(pid, SIGKILL);
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);  // the number is free now; the loop has not run
  int newcomer = forkWithPid(pid);
  if (newcomer < 0) GTEST_SKIP() << "could not make the kernel reuse pid " << pid;
  EXPECT_FALSE((*t)->signalAll(SIGTERM).code == 0) << "nothing of the target is left to signal";
  (*t)->cancel(CancelAction::Interrupt, 50, "test");
  (*t)->cancel(CancelAction::Kill, 0, "test");
  (void)test;
  uv_run(loop, UV_RUN_NOWAIT);
  // Wait for the Target to notice its leader's exit.
  for (uint64_t deadline = monotonicNs() + 2000 * kMs; !done && monotonicNs() < deadline;) {
    uv_run(loop, UV_RUN_ONCE);
  }
  EXPECT_TRUE(done);
  int status = 0;
  EXPECT_EQ(waitpid(newcomer, &status, WNOHANG), 0) << "the newcomer with the reused pid was signalled";
  ::kill(newcomer, SIGKILL);
  waitpid(newcomer, nullptr, 0);
}

TEST_F(SuperviseTest, ReusedPidIsNeverSignalledWithCgroup) {
  REQUIRE_CGROUP();
  checkReusedPidIsNeverSignalled(this, &tree_, &loop_, options("reuse-cg"), done_);
}

TEST_F(SuperviseTest, ReusedPidIsNeverSignalledWithoutCgroup) {
  checkReusedPidIsNeverSignalled(this, nullptr, &loop_, options("reuse-pg"), done_);
}

TEST_F(SuperviseTest, LimitsAreAppliedWhereDelegatedElseReportedUnavailable) {
  REQUIRE_CGROUP();
  Limits limits;
  limits.memory_max = 256ull << 20;
  limits.pids_max = 64;
  limits.cpu_max = 0.5;
  std::string root = root_ + "-limits";
  CgroupTree tree = CgroupTree::open(CgroupOptions{root, "test", limits, false});
  ASSERT_TRUE(tree.available()) << tree.unavailableReason();
  auto missing = tree.unavailableLimits(limits);
  EXPECT_EQ(missing.size() + tree.delegated().size(), 3u);
  for (const auto& m : missing) std::printf("unavailable: %s\n", m.c_str());
  auto o = options("limited");
  o.limits = limits;
  SpawnOptions spawn;
  spawn.argv = {kFixture, "exit", "0"};
  auto t = Target::spawn(&loop_, &tree, o, spawn);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ((*t)->unavailableLimits(), missing);
  if (!tree.delegated().empty()) {
    std::ifstream pids_max((*t)->cgroupPath() + "/pids.max");
    std::string value;
    pids_max >> value;
    if (std::find(tree.delegated().begin(), tree.delegated().end(), "pids") != tree.delegated().end()) {
      EXPECT_EQ(value, "64");
    }
  }
  targets_.push_back(std::move(*t));
  ASSERT_TRUE(waitDone());
  ::rmdir(root.c_str());
  if (tree.delegated().empty()) {
    GTEST_SKIP() << "memory/pids/cpu are not delegated to cgroup v2 here (hybrid layout): "
                 << "limits reported unavailable, as checked above";
  }
}

TEST_F(SuperviseTest, SupervisorTombstonesUnknownCancelsAndRefusesThemLater) {
  Supervisor sup(&loop_, needCgroup() ? &tree_ : nullptr, SupervisorOptions{});
  std::vector<Outcome> outcomes;
  sup.setOnDone([&](const Outcome& o) { outcomes.push_back(o); });
  EXPECT_EQ(sup.cancel("early", CancelAction::Interrupt, 0, "client_disconnect"), CancelState::Unknown);
  SpawnOptions spawn;
  spawn.argv = {kFixture, "exit", "0"};
  auto refused = sup.spawn("early", spawn);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ECANCELED);
  int pid = startPlain({kFixture, "pause"});
  auto refused_adopt = sup.adopt("early", pid);
  ASSERT_FALSE(refused_adopt);
  EXPECT_EQ(refused_adopt.error().code, ECANCELED);
  ::kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);

  spawn.argv = {kFixture, "pause"};
  auto running = sup.spawn("job1", spawn);
  ASSERT_TRUE(running) << running.error().message();
  auto duplicate = sup.spawn("job1", spawn);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code, EEXIST);
  EXPECT_EQ(sup.size(), 1u);
  EXPECT_EQ(sup.list().at(0).id, "job1");
  EXPECT_EQ(sup.cancel("job1", CancelAction::Kill, 0, "client_disconnect"), CancelState::Running);
  ASSERT_TRUE(runUntil([&] { return sup.size() == 0; }, 5000));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].id, "job1");
  EXPECT_EQ(sup.cancel("job1", CancelAction::Kill, 0, "late"), CancelState::Finished);
}

// ---- cbc ----------------------------------------------------------------------------------------

// Cornuéjols and Dawande's market split, as an optimization: m rows of n = 10(m-1) binaries with
// coefficients uniform in 0..99, rhs = floor(sum/2), and slacks whose total is minimised. Easy to
// find incumbents for, hard to prove (m=4: about 10 s in cbc here).
std::string marketSplitLp(int m, unsigned seed) {
  int n = 10 * (m - 1);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> coefficient(0, 99);
  std::ostringstream lp;
  lp << "Minimize\n obj:";
  for (int i = 0; i < m; ++i) lp << (i ? " +" : "") << " sp" << i << " + sm" << i;
  lp << "\nSubject To\n";
  for (int i = 0; i < m; ++i) {
    int sum = 0;
    lp << " c" << i << ":";
    for (int j = 0; j < n; ++j) {
      int a = coefficient(rng);
      sum += a;
      lp << (j ? " + " : " ") << a << " x" << j;
    }
    lp << " + sp" << i << " - sm" << i << " = " << sum / 2 << "\n";
  }
  lp << "Binaries\n";
  for (int j = 0; j < n; ++j) lp << " x" << j;
  lp << "\nEnd\n";
  return lp.str();
}

TEST_F(SuperviseTest, InterruptMakesCbcOnAHardInstanceReportItsBestSolutionAndExit) {
  REQUIRE_CGROUP();
  if (::access("/usr/bin/cbc", X_OK) != 0) GTEST_SKIP() << "cbc is not installed";
  std::string dir = "/tmp/tether-sv-" + std::to_string(getpid());
  fs::create_directories(dir);
  std::string model = dir + "/market-split-4.lp";
  {
    std::ofstream out(model);
    out << marketSplitLp(4, 12345);
  }
  SpawnOptions spawn;
  spawn.argv = {"cbc", model, "solve", "solu", "/dev/stdout"};
  spawn.stdout_mode = Stdio::kPipe;
  auto t = Target::spawn(&loop_, &tree_, options("cbc"), spawn);
  ASSERT_TRUE(t) << t.error().message();
  Capture out;
  out.start((*t)->takeStdoutPipe());
  targets_.push_back(std::move(*t));
  runFor(1500);
  ASSERT_FALSE(done_) << "cbc finished before the interrupt: the instance is too easy\n" << out.text;
  targets_.back()->cancel(CancelAction::Interrupt, 5000, "client_disconnect");
  ASSERT_TRUE(runUntil([&] { return done_ && out.eof; }, 10'000));
  fs::remove_all(dir);
  ASSERT_TRUE(outcome_.cancel);
  double to_exit = secondsBetween(outcome_.cancel->signalled_ns, outcome_.cancel->exited_ns);
  std::printf("cbc: interrupt to exit %.1f ms, status %s, cpu %.2f s\n", to_exit * 1e3,
              outcome_.status.describe().c_str(),
              outcome_.cpu_usec ? static_cast<double>(*outcome_.cpu_usec) / 1e6 : -1.0);
  EXPECT_EQ(outcome_.cancel->killed_ns, 0u) << "cbc stopped on SIGINT, no kill needed";
  EXPECT_EQ(outcome_.status.describe(), "exit 0");
  EXPECT_LT(to_exit, 1.0);
  EXPECT_NE(out.text.find("ctrl-c"), std::string::npos) << out.text;
  auto pos = out.text.find("Objective value:");
  ASSERT_NE(pos, std::string::npos) << out.text;
  std::string line = out.text.substr(pos, out.text.find('\n', pos) - pos);
  std::printf("cbc: %s\n", line.c_str());
  double objective = std::stod(line.substr(line.find(':') + 1));
  EXPECT_GE(objective, 0.0);
}

}  // namespace
}  // namespace tether::agent::supervise
