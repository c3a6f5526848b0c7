#include "tether/common/log.hpp"

#include <gtest/gtest.h>

namespace tether {
namespace {

// `error_log journal` files each line under REQUEST_ID= taken from its `rid=` token; the
// end-to-end check (journalctl REQUEST_ID=... under a real journald) is in tests/systemd.
TEST(JournalFieldsTest, RequestIdComesFromTheRidTokenWhereverItStands) {
  EXPECT_EQ(log::requestIdField("rid=abc-1 client=1.2.3.4 disconnected"), "abc-1");
  EXPECT_EQ(log::requestIdField("cancel rid=4f2e action=interrupt grace_ms=5"), "4f2e");
  EXPECT_EQ(log::requestIdField("webhook rid=x.y:z"), "x.y:z");
}

TEST(JournalFieldsTest, PlaceholderAndLookalikeTokensGiveNoRequestId) {
  EXPECT_EQ(log::requestIdField("rid=- upstream closed"), "");
  EXPECT_EQ(log::requestIdField("rid= upstream closed"), "");
  EXPECT_EQ(log::requestIdField("grid=7 notarid=8 listening"), "");
  EXPECT_EQ(log::requestIdField("no id here"), "");
}

TEST(JournalFieldsTest, LookalikeBeforeTheRealTokenIsSkipped) {
  EXPECT_EQ(log::requestIdField("parent_rid=aa rid=bb"), "bb");
}

TEST(JournalFieldsTest, JobLinesGiveTheJobIdAndNoRequestId) {
  EXPECT_EQ(log::jobIdField("job=9f3a cancel interrupt (client_disconnect) while running"), "9f3a");
  EXPECT_EQ(log::requestIdField("job=9f3a cancel interrupt (client_disconnect) while running"), "");
  EXPECT_EQ(log::jobIdField("rid=9f3a client=1.2.3.4 disconnected"), "");
}

}  // namespace
}  // namespace tether
