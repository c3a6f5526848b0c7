// The protocol's cancel vocabulary: each name read back to its value, the closed list of reasons,
// and a peer's tolerance of what a newer version sends (DESIGN.md "Control protocol, version 1").
#include "tether/agent/control/message.hpp"
#include "tether/agent/control/vocabulary.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace tether::agent::control {
namespace {

TEST(Vocabulary, EveryActionAndStateNameReadsBackToItsValue) {
  for (Action a : {Action::Interrupt, Action::Kill}) {
    Action back{};
    ASSERT_TRUE(parseAction(actionName(a), back)) << actionName(a);
    EXPECT_EQ(back, a);
  }
  for (CancelState s : {CancelState::Queued, CancelState::Running, CancelState::Finished, CancelState::Unknown}) {
    CancelState back{};
    ASSERT_TRUE(parseCancelState(cancelStateName(s), back)) << cancelStateName(s);
    EXPECT_EQ(back, s);
  }
  Action unused{};
  EXPECT_FALSE(parseAction("terminate", unused));
}

TEST(Vocabulary, TheClosedListOfReasonsIsTheIssuesEightDistinctNames) {
  std::set<std::string> names;
  for (Reason r : {Reason::ClientDisconnect, Reason::UpstreamTimeout, Reason::Deadline, Reason::LeaseExpired,
                   Reason::Shutdown, Reason::Superseded, Reason::Api, Reason::TimeLimit}) {
    names.insert(std::string(reasonName(r)));
    EXPECT_EQ(knownReason(reasonName(r)), r);
  }
  EXPECT_EQ(names, (std::set<std::string>{"client_disconnect", "upstream_timeout", "deadline", "lease_expired",
                                          "shutdown", "superseded", "api", "time_limit"}));
  EXPECT_FALSE(knownReason("quota_exceeded").has_value());
}

TEST(Vocabulary, PhasesAndCausesHaveTheirWireNames) {
  EXPECT_EQ(phaseName(Phase::RequestHeaders), "request_headers");
  EXPECT_EQ(phaseName(Phase::RequestBody), "request_body");
  EXPECT_EQ(phaseName(Phase::AwaitingResponse), "awaiting_response");
  EXPECT_EQ(phaseName(Phase::ResponseBody), "response_body");
  EXPECT_EQ(causeName(Cause::Eof), "eof");
  EXPECT_EQ(causeName(Cause::Reset), "reset");
  EXPECT_EQ(causeName(Cause::WriteError), "write_error");
  EXPECT_EQ(causeName(Cause::Timeout), "timeout");
  EXPECT_EQ(causeName(Cause::Keepalive), "keepalive");
  EXPECT_EQ(causeName(Cause::Shutdown), "shutdown");
}

TEST(Vocabulary, CancelFromANewerPeerWithAnUnknownReasonPhaseAndFieldIsReadAsSent) {
  const nlohmann::json frame{{"type", "cancel"},      {"id", "Root=1-67891233-abcdef012345678912345678"},
                             {"action", "interrupt"}, {"grace_ms", 4000},
                             {"reason", "quota_exceeded"}, {"phase", "trailers"},
                             {"deadline_ms", 120}};
  Message m;
  ProtocolError error;
  ASSERT_TRUE(parseMessage(frame, m, error)) << error.message;
  ASSERT_TRUE(std::holds_alternative<Cancel>(m));
  const auto& c = std::get<Cancel>(m);
  EXPECT_EQ(c.reason, "quota_exceeded");
  EXPECT_EQ(c.phase, "trailers");
  EXPECT_EQ(c.grace_ms, 4000U);
  // A frame without a reason is a client's disconnect, as version 1 always said.
  ASSERT_TRUE(parseMessage(nlohmann::json{{"type", "cancel"}, {"id", "a"}}, m, error));
  EXPECT_EQ(std::get<Cancel>(m).reason, "client_disconnect");
}

}  // namespace
}  // namespace tether::agent::control
