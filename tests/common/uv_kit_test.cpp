// The libuv ownership kit: a handle initialised by its constructor, freed in its close callback,
// closed twice without harm; every test ends as libuv's own do, with no handle left on the loop
// and uv_loop_close() returning 0.
#include "tether/common/uv_kit.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>

namespace tether::uv {
namespace {

class UvKit : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);  // the close callbacks free the handles
    EXPECT_EQ(openHandles(&loop_), 0u);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_{};
};

TEST_F(UvKit, TimerIsReadyFromItsConstructorAndFiresOnce) {
  Handle<uv_timer_t> timer(&loop_);
  ASSERT_EQ(timer.status(), 0);
  ASSERT_TRUE(timer);
  EXPECT_EQ(openHandles(&loop_), 1u);
  int fired = 0;
  timer->data = &fired;
  uv_timer_start(timer.get(), [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 1, 0);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(fired, 1);
}

TEST_F(UvKit, CloseTwiceAndTheDestructorAfterItAreHarmless) {
  auto timer = std::make_unique<Handle<uv_timer_t>>(&loop_);
  uv_timer_start(timer->get(), [](uv_timer_t*) { FAIL() << "a closed timer fired"; }, 0, 0);
  timer->close();
  timer->close();
  EXPECT_FALSE(*timer);
  EXPECT_EQ(openHandles(&loop_), 1u);  // closing: its memory goes in the close callback
  timer.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(openHandles(&loop_), 0u);
}

TEST_F(UvKit, OwnerGoneWhileTheHandleIsActiveClosesIt) {
  {
    Handle<uv_pipe_t> pipe(&loop_, 0);
    ASSERT_EQ(pipe.status(), 0);
    Handle<uv_tcp_t> tcp(&loop_);
    ASSERT_EQ(tcp.status(), 0);
    Handle<uv_timer_t> timer(&loop_);
    uv_timer_start(timer.get(), [](uv_timer_t*) {}, 60000, 0);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns at once: nothing left to keep the loop alive
}

TEST_F(UvKit, FailedInitLeavesNothingOnTheLoop) {
  // epoll refuses a regular file: uv_poll_init fails, and the handle was never registered.
  char path[] = "/tmp/tuvkitXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  {
    Handle<uv_poll_t> poll(&loop_, fd);
    EXPECT_LT(poll.status(), 0);
    EXPECT_FALSE(poll);
    EXPECT_EQ(poll.get(), nullptr);
    EXPECT_EQ(openHandles(&loop_), 0u);
  }
  close(fd);
}

// A daemon or a test ends with closeLoop(); an owner destroyed after it still frees its handle
// (the handle was closed by closeLoop, which frees nothing). LSan reports the handle otherwise.
TEST(UvKitCloseLoop, OwnerDestroyedAfterCloseLoopFreesItsHandle) {
  uv_loop_t loop{};
  ASSERT_EQ(uv_loop_init(&loop), 0);
  auto timer = std::make_unique<Handle<uv_timer_t>>(&loop);
  uv_timer_start(timer->get(), [](uv_timer_t*) {}, 60000, 0);
  auto pipe = std::make_unique<Handle<uv_pipe_t>>(&loop, 0);
  EXPECT_EQ(closeLoop(&loop), 0);  // nothing left: the loop is closed
  timer.reset();
  pipe->close();
  pipe->close();
  pipe.reset();
}

}  // namespace
}  // namespace tether::uv
