#include "tether/common/http_parser.hpp"

#include <gtest/gtest.h>

namespace tether::http {
namespace {

using Status = RequestParser::Status;

TEST(HttpParserTest, StopsAfterOneRequestAndLeavesPipelinedBytes) {
  RequestParser p;
  const std::string two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  auto r = p.feed(two);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.consumed, two.size() / 2);
  EXPECT_EQ(p.takeRequest().path, "/a");
  p.reset();
  r = p.feed(std::string_view(two).substr(two.size() / 2));
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(p.takeRequest().path, "/b");
}

TEST(HttpParserTest, ByteByByteEqualsAllAtOnce) {
  const std::string req =
      "POST /v1/solve?solver=cbc HTTP/1.1\r\nHost: h\r\nContent-Type: text/x-lp\r\n"
      "Transfer-Encoding: chunked\r\n\r\n4\r\nmax:\r\n3\r\n x;\r\n0\r\n\r\n";
  RequestParser p;
  size_t i = 0;
  for (; i < req.size(); ++i) {
    const auto r = p.feed(std::string_view(req).substr(i, 1));
    ASSERT_NE(r.status, Status::Error) << p.errorReason();
    if (r.status == Status::Complete) break;
  }
  EXPECT_EQ(i, req.size() - 1);
  const Request q = p.takeRequest();
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(q.query, "solver=cbc");
  EXPECT_EQ(q.body, "max: x;");
  ASSERT_NE(q.header("content-type"), nullptr);
  EXPECT_EQ(*q.header("content-type"), "text/x-lp");
}

TEST(HttpParserTest, HeaderSplitAcrossFeedsIsOneHeader) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHo").status, Status::NeedMore);
  ASSERT_EQ(p.feed("st: h\r\nX-Lo").status, Status::NeedMore);
  ASSERT_EQ(p.feed("ng: va").status, Status::NeedMore);
  ASSERT_EQ(p.feed("lue\r\n\r\n").status, Status::Complete);
  const Request q = p.takeRequest();
  ASSERT_EQ(q.headers.size(), 2u);
  EXPECT_EQ(q.headers[1].name, "X-Long");
  EXPECT_EQ(q.headers[1].value, "value");
}

TEST(HttpParserTest, EmptyHeaderValueDoesNotMergeNames) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Next: 1\r\n\r\n").status, Status::Complete);
  const Request q = p.takeRequest();
  ASSERT_EQ(q.headers.size(), 3u);
  EXPECT_EQ(q.headers[1].name, "X-Empty");
  EXPECT_EQ(q.headers[1].value, "");
  EXPECT_EQ(q.headers[2].name, "X-Next");
}

TEST(HttpParserTest, ObsFoldIsRejectedEvenWhenSplit) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n").status, Status::NeedMore);
  ASSERT_EQ(p.feed("\tb\r\n\r\n").status, Status::Error);
  EXPECT_EQ(p.errorStatus(), 400);
}

TEST(HttpParserTest, BodyBytesThatLookLikeFoldingAreFine) {
  RequestParser p;
  ASSERT_EQ(p.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n\r\n x").status, Status::Complete);
  EXPECT_EQ(p.takeRequest().body, "\r\n x");
}

TEST(HttpParserTest, EofMidRequestIsAnError) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HT").status, Status::NeedMore);
  EXPECT_EQ(p.finish(), Status::Error);
  RequestParser idle;
  EXPECT_EQ(idle.finish(), Status::NeedMore);
}

TEST(HttpParserTest, ExpectContinueIsReportedOnce) {
  RequestParser p;
  ASSERT_EQ(p.feed("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n").status,
            Status::NeedMore);
  EXPECT_TRUE(p.takeContinueWanted());
  EXPECT_FALSE(p.takeContinueWanted());
  EXPECT_EQ(p.feed("ok").status, Status::Complete);
}

TEST(HttpParserTest, UnknownExpectationGets417) {
  RequestParser p;
  ASSERT_EQ(p.feed("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: magic\r\n\r\n").status, Status::Error);
  EXPECT_EQ(p.errorStatus(), 417);
}

TEST(HttpParserTest, Http10WithoutKeepAliveIsNotKeptAlive) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.0\r\n\r\n").status, Status::Complete);
  EXPECT_FALSE(p.takeRequest().keep_alive);
}

}  // namespace
}  // namespace tether::http
