#include "tether/common/service.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "loop_support.hpp"
#include "tether/common/signals.hpp"

namespace tether {
namespace {

using testing::pumpUntil;
using testing::TestLoop;

// A NOTIFY_SOCKET listener as systemd has one: an AF_UNIX datagram socket; every message the
// daemon sends is one datagram.
class NotifySocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/tmp/tether-notify-" + std::to_string(getpid()) + ".sock";
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.data(), path_.size());
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // Every datagram received so far.
  std::vector<std::string> drain() {
    std::vector<std::string> out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) out.emplace_back(buf, static_cast<size_t>(n));
    return out;
  }
  std::string path_;
  int fd_ = -1;
};

TEST_F(NotifySocketTest, ReadyStatusStoppingArriveInOrder) {
  TestLoop loop;
  ServiceNotifier notifier(loop.get());
  EXPECT_TRUE(notifier.enabled());
  EXPECT_EQ(notifier.watchdogUsec().count(), 0);
  EXPECT_GT(notifier.ready("listening on 127.0.0.1:7070"), 0);
  EXPECT_GT(notifier.status("2 jobs running, 5 queued"), 0);
  EXPECT_GT(notifier.stopping("draining 2 requests"), 0);
  EXPECT_GT(notifier.extendTimeout(std::chrono::seconds(5)), 0);
  const auto got = drain();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], "READY=1\nSTATUS=listening on 127.0.0.1:7070");
  EXPECT_EQ(got[1], "STATUS=2 jobs running, 5 queued");
  EXPECT_EQ(got[2], "STOPPING=1\nSTATUS=draining 2 requests");
  EXPECT_EQ(got[3], "EXTEND_TIMEOUT_USEC=5000000");
}

TEST_F(NotifySocketTest, ReloadingCarriesMonotonicUsecThenReady) {
  TestLoop loop;
  ServiceNotifier notifier(loop.get());
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t before = static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
  notifier.reloading();
  notifier.ready();
  const auto got = drain();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got[0].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << got[0];
  const uint64_t stamp = std::stoull(got[0].substr(got[0].find('=', 12) + 1));
  EXPECT_GE(stamp, before);
  EXPECT_EQ(got[1], "READY=1");
}

TEST_F(NotifySocketTest, WatchdogPingsAtHalfTheInterval) {
  ::setenv("WATCHDOG_USEC", "20000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  TestLoop loop;
  testing::KeepLoopAlive alive(loop.get());
  ServiceNotifier notifier(loop.get());
  EXPECT_EQ(notifier.watchdogUsec().count(), 20000);
  std::vector<std::string> got;
  ASSERT_TRUE(pumpUntil(loop.get(), [&] {
    for (auto& m : drain()) got.push_back(m);
    return got.size() >= 3;
  }, 2000, fd_));
  for (const auto& m : got) EXPECT_EQ(m, "WATCHDOG=1");
  notifier.stopWatchdog();
}

TEST_F(NotifySocketTest, PeriodicStatusCarriesTheCountsOfTheMoment) {
  TestLoop loop;
  testing::KeepLoopAlive alive(loop.get());
  ServiceNotifier notifier(loop.get());
  int calls = 0;
  notifier.statusEvery(std::chrono::milliseconds(10), [&] { return std::to_string(++calls) + " targets"; });
  std::vector<std::string> got;
  ASSERT_TRUE(pumpUntil(loop.get(), [&] {
    for (auto& m : drain()) got.push_back(m);
    return got.size() >= 2;
  }, 2000, fd_));
  EXPECT_EQ(got[0], "STATUS=1 targets");
  EXPECT_EQ(got[1], "STATUS=2 targets");
  notifier.stopWatchdog();
}

TEST_F(NotifySocketTest, WatchdogForAnotherPidIsNotOurs) {
  ::setenv("WATCHDOG_USEC", "20000", 1);
  ::setenv("WATCHDOG_PID", "1", 1);
  TestLoop loop;
  ServiceNotifier notifier(loop.get());
  EXPECT_EQ(notifier.watchdogUsec().count(), 0);
}

TEST(ServiceNotifierTest, WithoutNotifySocketEverythingIsANoOp) {
  ::unsetenv("NOTIFY_SOCKET");
  TestLoop loop;
  ServiceNotifier notifier(loop.get());
  EXPECT_FALSE(notifier.enabled());
  EXPECT_EQ(notifier.ready(), 0);
  EXPECT_EQ(notifier.stopping(), 0);
}

TEST(SignalWatcherTest, FirstTermIsGracefulSecondImmediateHupReloads) {
  TestLoop loop;
  std::vector<std::string> seen;
  SignalWatcher watcher(loop.get(), {
                                        .graceful = [&](int s) { seen.push_back("graceful " + std::to_string(s)); },
                                        .immediate = [&](int s) { seen.push_back("immediate " + std::to_string(s)); },
                                        .reload = [&] { seen.push_back("reload"); },
                                    });
  ASSERT_EQ(watcher.start(), 0);
  auto alive = std::make_unique<testing::KeepLoopAlive>(loop.get());
  ::kill(getpid(), SIGHUP);
  ASSERT_TRUE(pumpUntil(loop.get(), [&] { return seen.size() == 1; }));
  ::kill(getpid(), SIGTERM);
  ASSERT_TRUE(pumpUntil(loop.get(), [&] { return seen.size() == 2; }));
  ::kill(getpid(), SIGINT);
  ASSERT_TRUE(pumpUntil(loop.get(), [&] { return seen.size() == 3; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"reload", "graceful " + std::to_string(SIGTERM),
                                            "immediate " + std::to_string(SIGINT)}));
  EXPECT_EQ(watcher.terminations(), 2);
  // SIGPIPE is ignored: a write to a closed socket is an error, not the end of the process.
  struct sigaction current {};
  ::sigaction(SIGPIPE, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_IGN);
  watcher.close();
  alive.reset();
  EXPECT_EQ(loop.close(), 0);
}

TEST(SignalWatcherTest, SignalHandlesDoNotKeepTheLoopAlive) {
  TestLoop loop;
  SignalWatcher watcher(loop.get(), {});
  ASSERT_EQ(watcher.start(), 0);
  EXPECT_EQ(uv_run(loop.get(), UV_RUN_DEFAULT), 0) << "uv_run returned at once: nothing else is active";
}

}  // namespace
}  // namespace tether
