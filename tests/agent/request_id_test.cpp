// The one request-id rule of the protocol module (DESIGN.md "Request identity").
#include "tether/agent/control/request_id.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace tether::agent::control {
namespace {

TEST(RequestIdTest, GeneratedIdIsThirtyTwoLowercaseHexDigitsAndFollowsTheRule) {
  const std::string id = newRequestId();
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_TRUE(isValidRequestId(id)) << id;
}

TEST(RequestIdTest, TenThousandIdsNeverRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(newRequestId()).second);
}

TEST(RequestIdTest, IdsRealBalancersSendAreAccepted) {
  for (const char* id : {"f47ac10b-58cc-4372-a567-0e02b2c3d479",            // Envoy, Istio (UUID)
                         "0123456789ABCDEF0123456789abcdef",                // nginx $request_id, any case
                         "Root=1-67891233-abcdef012345678912345678",        // AWS load balancer
                         "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  // W3C traceparent
                         "a", "a/b%2F=c;d:e", "!#$%&()*+,-./:;<=>?@[]^_`{|}~"}) {
    EXPECT_TRUE(isValidRequestId(id)) << id;
  }
  EXPECT_TRUE(isValidRequestId(std::string(kMaxRequestIdLength, 'x')));
}

TEST(RequestIdTest, EmptyLongSpacesQuotesBackslashesAndControlBytesAreRefused) {
  for (std::string id : {std::string(), std::string(kMaxRequestIdLength + 1, 'x'), std::string("a b"),
                         std::string("a\"b"), std::string("a'b"), std::string("a\\b"), std::string("a\tb"),
                         std::string("a\r\nX-Evil: 1"), std::string("caf\xc3\xa9"), std::string("a\x7f"),
                         std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidRequestId(id)) << id;
  }
}

TEST(RequestIdTest, AcceptKeepsAValidIdAndReplacesAnInvalidOneSayingSo) {
  const std::string_view good = "Root=1-67891233-abcdef012345678912345678";
  auto kept = acceptRequestId(&good);
  EXPECT_EQ(kept.id, good);
  EXPECT_FALSE(kept.replaced);
  const std::string_view bad = "has space";
  auto replaced = acceptRequestId(&bad);
  EXPECT_NE(replaced.id, bad);
  EXPECT_EQ(replaced.id.size(), 32u);
  EXPECT_TRUE(replaced.replaced);
  auto none = acceptRequestId(nullptr);
  EXPECT_EQ(none.id.size(), 32u);
  EXPECT_FALSE(none.replaced) << "no id given is not a replacement";
}

TEST(RequestIdTest, PercentEncodingKeepsUnreservedBytesAndEncodesTheRest) {
  EXPECT_EQ(percentEncodeId("f47ac10b-58cc_4372.a567~"), "f47ac10b-58cc_4372.a567~");
  EXPECT_EQ(percentEncodeId("Root=1-abc/d%e"), "Root%3D1-abc%2Fd%25e");
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

TEST(JobRoute, ARoutedIdEndsInItsRouteAndKeepsTheRule) {
  EXPECT_EQ(routedId("f47ac10b", "node-a"), "f47ac10b.node-a");
  EXPECT_EQ(routeOf("f47ac10b.node-a"), "node-a");
  EXPECT_EQ(routeOf(routedId("a.b.c", "east_1")), "east_1");
  // An id that leaves no room for the route within 128 bytes is replaced by a fresh one.
  const std::string longest(kMaxRequestIdLength, 'x');
  std::string routed = routedId(longest, "b");
  EXPECT_TRUE(isValidRequestId(routed)) << routed;
  EXPECT_EQ(routeOf(routed), "b");
  EXPECT_EQ(routed.size(), 34U) << routed;
}

TEST(JobRoute, AnIdWithoutARouteHasNone) {
  for (std::string_view id : {"f47ac10b", "f47ac10b.", "a.b/c", "a.b=c", "x.route-that-is-longer-than-32-bytes"}) {
    EXPECT_EQ(routeOf(id), "") << id;
  }
  EXPECT_TRUE(isValidRoute("A-z_09"));
  for (std::string_view route : {"", "a.b", "a b", "\u00e9"}) EXPECT_FALSE(isValidRoute(route)) << route;
}

}  // namespace
}  // namespace tether::agent::control
