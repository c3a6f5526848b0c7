// uv::Timeouts: many connection timeouts on one libuv timer per duration (common/timeouts.hpp).
#include "tether/common/timeouts.hpp"

#include <gtest/gtest.h>
#include <uv.h>

#include <vector>

#include "tether/common/uv_kit.hpp"

namespace tether::uv {
namespace {

struct Fired {
  std::vector<int> order;
};

struct Owner {
  Owner(int id, Fired* fired) : id(id), fired(fired) {}
  int id;
  Fired* fired;
  Timeout timeout{[](Timeout& t) {
                    auto* o = static_cast<Owner*>(t.data);
                    o->fired->order.push_back(o->id);
                  },
                  this};
};

class TimeoutsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(openHandles(&loop_), 0u);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_{};
};

TEST_F(TimeoutsTest, TimeoutsOfOneDurationFireInTheOrderTheyWereArmedOnOneTimer) {
  Fired fired;
  {
    Timeouts timeouts(&loop_);
    Owner a(1, &fired), b(2, &fired), c(3, &fired);
    timeouts.arm(a.timeout, 20);
    timeouts.arm(b.timeout, 20);
    timeouts.arm(c.timeout, 20);
    timeouts.arm(a.timeout, 20);  // re-armed: now last
    EXPECT_EQ(timeouts.lists(), 1u);
    EXPECT_EQ(openHandles(&loop_), 1u);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(fired.order, (std::vector<int>{2, 3, 1}));
    EXPECT_FALSE(a.timeout.armed());
  }
}

TEST_F(TimeoutsTest, ACancelledOrDestroyedTimeoutNeverFires) {
  Fired fired;
  Timeouts timeouts(&loop_);
  Owner a(1, &fired);
  auto b = std::make_unique<Owner>(2, &fired);
  Owner c(3, &fired);
  timeouts.arm(a.timeout, 10);
  timeouts.arm(b->timeout, 10);
  timeouts.arm(c.timeout, 30);
  a.timeout.cancel();
  b.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(fired.order, (std::vector<int>{3}));
}

TEST_F(TimeoutsTest, DurationsKeepTheirOwnDeadlinesAndATimeoutMovesBetweenThem) {
  Fired fired;
  Timeouts timeouts(&loop_);
  Owner slow(1, &fired), fast(2, &fired), moved(3, &fired);
  timeouts.arm(slow.timeout, 60);
  timeouts.arm(moved.timeout, 60);
  timeouts.arm(fast.timeout, 5);
  timeouts.arm(moved.timeout, 20);  // header_timeout to send_timeout, say
  EXPECT_EQ(timeouts.lists(), 3u);
  const uint64_t start = uv_now(&loop_);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(fired.order, (std::vector<int>{2, 3, 1}));
  EXPECT_GE(uv_now(&loop_) - start, 60u);
}

TEST_F(TimeoutsTest, ACallbackMayRearmItselfAndDestroyOthers) {
  Timeouts timeouts(&loop_);
  struct Rearming {
    explicit Rearming(Timeouts* t) : timeouts(t) {}
    Timeouts* timeouts;
    int runs = 0;
    std::unique_ptr<Owner> victim;
    Timeout timeout{[](Timeout& t) {
                      auto* self = static_cast<Rearming*>(t.data);
                      self->victim.reset();  // due in the same fire: must not run
                      if (++self->runs < 3) self->timeouts->arm(t, 1);
                    },
                    this};
  } r(&timeouts);
  Fired fired;
  r.victim = std::make_unique<Owner>(9, &fired);
  timeouts.arm(r.timeout, 1);
  timeouts.arm(r.victim->timeout, 1);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(r.runs, 3);
  EXPECT_TRUE(fired.order.empty());
}

}  // namespace
}  // namespace tether::uv
