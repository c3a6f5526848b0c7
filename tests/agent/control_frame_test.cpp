// Frame codec and message edge cases (DESIGN.md "Control protocol, version 1").
#include "tether/agent/control/frame.hpp"
#include "tether/agent/control/message.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tether::agent::control {
namespace {

using nlohmann::json;

std::vector<json> decodeAll(FrameDecoder& d, ProtocolError* error = nullptr, bool* failed = nullptr) {
  std::vector<json> out;
  json j;
  ProtocolError e;
  for (;;) {
    auto r = d.next(j, e);
    if (r == FrameDecoder::Result::Frame) {
      out.push_back(j);
      continue;
    }
    if (failed) *failed = r == FrameDecoder::Result::Error;
    if (error) *error = e;
    return out;
  }
}

std::string header(uint32_t n) {
  std::string h(4, '\0');
  for (int i = 0; i < 4; ++i) h[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return h;
}

TEST(ControlFrame, EncodesLittleEndianLengthThenJson) {
  std::string f = encodeFrame(json{{"type", "hello"}});
  ASSERT_EQ(f.size(), 4 + std::string(R"({"type":"hello"})").size());
  EXPECT_EQ(f.substr(0, 4), header(16));
  EXPECT_EQ(f.substr(4), R"({"type":"hello"})");
}

TEST(ControlFrame, FrameSplitAtEveryByteDecodesOnce) {
  const std::string stream = encodeMessage(Cancel{"0123456789abcdef0123456789abcdef", Action::Kill, 250,
                                                  "client_disconnect", "awaiting_response"}) +
                             encodeMessage(Hello{1, "proxy", {}});
  for (size_t split = 0; split <= stream.size(); ++split) {
    FrameDecoder d;
    d.feed(std::string_view(stream).substr(0, split));
    auto first = decodeAll(d);
    d.feed(std::string_view(stream).substr(split));
    auto second = decodeAll(d);
    first.insert(first.end(), second.begin(), second.end());
    ASSERT_EQ(first.size(), 2u) << "split at " << split;
    EXPECT_EQ(first[0]["type"], "cancel");
    EXPECT_EQ(first[1]["type"], "hello");
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(ControlFrame, OneByteAtATimeDecodes) {
  const std::string stream = encodeMessage(Status{});
  FrameDecoder d;
  std::vector<json> got;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    auto more = decodeAll(d);
    got.insert(got.end(), more.begin(), more.end());
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["type"], "status");
}

TEST(ControlFrame, ManyFramesInOneReadDecodeInOrder) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) stream += encodeFrame(json{{"type", "cancel"}, {"id", std::to_string(i)}});
  FrameDecoder d;
  d.feed(stream);
  auto got = decodeAll(d);
  ASSERT_EQ(got.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(got[static_cast<size_t>(i)]["id"], std::to_string(i));
}

TEST(ControlFrame, ZeroLengthIsBadFrame) {
  FrameDecoder d;
  d.feed(header(0));
  ProtocolError e;
  bool failed = false;
  decodeAll(d, &e, &failed);
  EXPECT_TRUE(failed);
  EXPECT_EQ(e.code, ErrorCode::BadFrame);
}

TEST(ControlFrame, LengthOneMebibytePlusOneIsBadFrameBeforeTheBodyArrives) {
  FrameDecoder d;
  d.feed(header(kMaxFrameLength + 1));  // no body at all: the header alone is enough to refuse
  ProtocolError e;
  bool failed = false;
  decodeAll(d, &e, &failed);
  EXPECT_TRUE(failed);
  EXPECT_EQ(e.code, ErrorCode::BadFrame);
  EXPECT_NE(e.message.find("1048577"), std::string::npos) << e.message;
}

TEST(ControlFrame, LengthExactlyOneMebibyteIsAccepted) {
  // {"type":"status","pad":"xxx..."} padded to exactly kMaxFrameLength bytes.
  const std::string head = R"({"type":"status","pad":")";
  const std::string tail = R"("})";
  std::string body = head + std::string(kMaxFrameLength - head.size() - tail.size(), 'x') + tail;
  ASSERT_EQ(body.size(), kMaxFrameLength);
  FrameDecoder d;
  d.feed(encodeRawFrame(body));
  bool failed = false;
  auto got = decodeAll(d, nullptr, &failed);
  EXPECT_FALSE(failed);
  ASSERT_EQ(got.size(), 1u);
  // The encoder refuses to build a frame past the limit.
  EXPECT_TRUE(encodeFrame(json{{"pad", std::string(kMaxFrameLength, 'x')}}).empty());
}

TEST(ControlFrame, BadJsonIsBadFrameAndStaysFailed) {
  FrameDecoder d;
  d.feed(encodeRawFrame("{\"type\":") + encodeMessage(Status{}));
  ProtocolError e;
  bool failed = false;
  auto got = decodeAll(d, &e, &failed);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(failed);
  EXPECT_EQ(e.code, ErrorCode::BadFrame);
  d.feed(encodeMessage(Status{}));  // cannot resynchronize: still failed
  json j;
  EXPECT_EQ(d.next(j, e), FrameDecoder::Result::Error);
}

TEST(ControlFrame, TrailingGarbageAfterTheObjectIsBadFrame) {
  FrameDecoder d;
  d.feed(encodeRawFrame(R"({"type":"status"} x)"));
  bool failed = false;
  decodeAll(d, nullptr, &failed);
  EXPECT_TRUE(failed);
}

TEST(ControlFrame, NonObjectJsonIsBadFrame) {
  for (const char* body : {"[1,2]", "\"cancel\"", "42", "null", "true"}) {
    FrameDecoder d;
    d.feed(encodeRawFrame(body));
    ProtocolError e;
    bool failed = false;
    decodeAll(d, &e, &failed);
    EXPECT_TRUE(failed) << body;
    EXPECT_EQ(e.code, ErrorCode::BadFrame) << body;
  }
}

TEST(ControlFrame, InvalidUtf8IsBadFrame) {
  FrameDecoder d;
  d.feed(encodeRawFrame("{\"type\":\"cancel\",\"id\":\"\xff\xfe\"}"));
  bool failed = false;
  decodeAll(d, nullptr, &failed);
  EXPECT_TRUE(failed);
}

TEST(ControlFrame, EncoderReplacesInvalidUtf8InsteadOfThrowing) {
  std::string f = encodeMessage(Cancel{"bad\xff", Action::Interrupt, {}, "client_disconnect", {}});
  ASSERT_FALSE(f.empty());
  FrameDecoder d;
  d.feed(f);
  auto got = decodeAll(d);
  ASSERT_EQ(got.size(), 1u);
}

TEST(ControlMessage, UnknownFieldsAreIgnored) {
  Message m;
  ProtocolError e;
  ASSERT_TRUE(parseMessage(json::parse(R"({"type":"cancel","id":"x","action":"kill","future":{"a":1}})"), m, e));
  const auto& c = std::get<Cancel>(m);
  EXPECT_EQ(c.id, "x");
  EXPECT_EQ(c.action, Action::Kill);
  EXPECT_FALSE(c.grace_ms.has_value());
}

TEST(ControlMessage, UnknownTypeIsUnknownType) {
  Message m;
  ProtocolError e;
  EXPECT_FALSE(parseMessage(json::parse(R"({"type":"frobnicate"})"), m, e));
  EXPECT_EQ(e.code, ErrorCode::UnknownType);
}

TEST(ControlMessage, MissingOrIllTypedFieldsAreBadMessage) {
  for (const char* text : {R"({"id":"x"})", R"({"type":7})", R"({"type":"cancel"})",
                           R"({"type":"cancel","id":""})", R"({"type":"cancel","id":5})",
                           R"({"type":"cancel","id":"x","action":"explode"})",
                           R"({"type":"cancel","id":"x","grace_ms":-1})",
                           R"({"type":"cancel","id":"x","grace_ms":1.5})",
                           R"({"type":"cancel","id":"x","grace_ms":99999999999})",
                           R"({"type":"register","id":"x","pid":0})",
                           R"({"type":"register","id":"x","pid":18446744073709551615})",
                           R"({"type":"status","targets":{}})"}) {
    Message m;
    ProtocolError e;
    EXPECT_FALSE(parseMessage(json::parse(text), m, e)) << text;
    EXPECT_EQ(e.code, ErrorCode::BadMessage) << text;
  }
}

TEST(ControlMessage, EveryMessageRoundTrips) {
  const std::vector<Message> messages = {
      Hello{1, "proxy", {}},
      Hello{1, {}, "solverd"},
      Cancel{"id1", Action::Kill, 5000, "client_disconnect", "awaiting_response"},
      CancelAck{"id1", CancelState::Finished},
      Register{"id2", 1234},
      Register{"id2", std::nullopt},
      Registered{"id2", std::string("/sys/fs/cgroup/job-id2")},
      Registered{"id2", std::nullopt},
      Unregister{"id2"},
      Unregistered{"id2", true},
      Status{},
      Status{json::array({{{"id", "a"}}})},
      Error{ErrorCode::Forbidden, "nope", {}},
      Error{ErrorCode::Cancelled, "tombstoned", "id3"},
  };
  for (const auto& original : messages) {
    FrameDecoder d;
    d.feed(encodeMessage(original));
    auto got = decodeAll(d);
    ASSERT_EQ(got.size(), 1u);
    Message back;
    ProtocolError e;
    ASSERT_TRUE(parseMessage(got[0], back, e)) << got[0].dump() << ": " << e.message;
    EXPECT_EQ(toJson(back), toJson(original));
  }
}

TEST(ControlMessage, WireFormOfCancelMatchesDesign) {
  EXPECT_EQ(toJson(Cancel{"abc", Action::Interrupt, 5000, "client_disconnect", "awaiting_response"}),
            json::parse(R"({"type":"cancel","id":"abc","action":"interrupt","grace_ms":5000,
                            "reason":"client_disconnect","phase":"awaiting_response"})"));
  EXPECT_EQ(toJson(Registered{"abc", std::nullopt}), json::parse(R"({"type":"registered","id":"abc","cgroup":null})"));
}

// The trace id is optional both ways: a frame without it is what older peers send, and one with
// a value that is not a W3C trace id still cancels (the id is only logged, so it is dropped).
TEST(ControlMessage, CancelCarriesAnOptionalTraceIdAndDropsOneOfTheWrongForm) {
  Cancel traced{"abc", Action::Interrupt, 5000, "client_disconnect", "awaiting_response",
                "4bf92f3577b34da6a3ce929d0e0e4736"};
  EXPECT_EQ(toJson(traced), json::parse(R"({"type":"cancel","id":"abc","action":"interrupt","grace_ms":5000,
      "reason":"client_disconnect","phase":"awaiting_response","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"})"));
  Message m;
  ProtocolError e;
  ASSERT_TRUE(parseMessage(toJson(traced), m, e)) << e.message;
  EXPECT_EQ(std::get<Cancel>(m).trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  for (const char* bad : {R"("4BF92F3577B34DA6A3CE929D0E0E4736")", R"("00000000000000000000000000000000")",
                          R"("not-a-trace")", R"("")"}) {
    ASSERT_TRUE(parseMessage(json::parse(std::string(R"({"type":"cancel","id":"x","trace_id":)") + bad + "}"), m, e))
        << bad << ": " << e.message;
    EXPECT_EQ(std::get<Cancel>(m).trace_id, "") << bad;
  }
  EXPECT_FALSE(parseMessage(json::parse(R"({"type":"cancel","id":"x","trace_id":7})"), m, e));
  // tether-run's register carries the trace of $TRACEPARENT the same way.
  Register reg{"abc", std::nullopt, "4bf92f3577b34da6a3ce929d0e0e4736"};
  EXPECT_EQ(toJson(reg), json::parse(R"({"type":"register","id":"abc","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"})"));
  ASSERT_TRUE(parseMessage(toJson(reg), m, e)) << e.message;
  EXPECT_EQ(std::get<Register>(m).trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  ASSERT_TRUE(parseMessage(json::parse(R"({"type":"register","id":"abc","trace_id":"nope"})"), m, e));
  EXPECT_EQ(std::get<Register>(m).trace_id, "");
}

}  // namespace
}  // namespace tether::agent::control
