#include "tether/common/request_id.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>

namespace tether {
namespace {

TEST(RequestIdTest, IsThirtyTwoLowercaseHexDigits) {
  const std::string id = newRequestId();
  EXPECT_EQ(id.size(), 32u);
  EXPECT_TRUE(isValidRequestId(id)) << id;
}

TEST(RequestIdTest, TenThousandIdsNeverRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(newRequestId()).second);
}

// The ids come from a buffer of random bytes: a forked child must not hand out its parent's next
// ids (the buffer is MADV_WIPEONFORK, so the child refills it).
TEST(RequestIdTest, ForkedChildDoesNotRepeatItsParentsNextIds) {
  newRequestId();  // the parent's buffer is filled
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string id = newRequestId();
    ssize_t n = write(fds[1], id.data(), id.size());
    _exit(n == 32 ? 0 : 1);
  }
  close(fds[1]);
  char buf[32];
  ssize_t n = read(fds[0], buf, sizeof buf);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_EQ(n, 32);
  std::string child(buf, 32);
  EXPECT_TRUE(isValidRequestId(child)) << child;
  std::set<std::string> parent_next;
  for (int i = 0; i < 300; ++i) parent_next.insert(newRequestId());  // past the buffer's 255
  EXPECT_FALSE(parent_next.contains(child)) << child;
}

TEST(RequestIdTest, RejectsUppercaseShortAndNonHex) {
  EXPECT_FALSE(isValidRequestId("0123456789ABCDEF0123456789abcdef"));
  EXPECT_FALSE(isValidRequestId("0123456789abcdef"));
  EXPECT_FALSE(isValidRequestId("0123456789abcdef0123456789abcdeg"));
  EXPECT_FALSE(isValidRequestId(""));
}

}  // namespace
}  // namespace tether
