#include "tether/agent/control/vocabulary.hpp"

#include "name_table.hpp"

namespace tether::agent::control {
namespace {

using detail::Named;
using detail::nameOf;
using detail::valueOf;

// One table per enum: the wire names, in the enum's order.
constexpr std::array<Named<Action>, 2> kActions{{{Action::Interrupt, "interrupt"}, {Action::Kill, "kill"}}};
constexpr std::array<Named<CancelState>, 4> kStates{{{CancelState::Queued, "queued"},
                                                     {CancelState::Running, "running"},
                                                     {CancelState::Finished, "finished"},
                                                     {CancelState::Unknown, "unknown"}}};
constexpr std::array<Named<Reason>, 8> kReasons{{{Reason::ClientDisconnect, "client_disconnect"},
                                                 {Reason::UpstreamTimeout, "upstream_timeout"},
                                                 {Reason::Deadline, "deadline"},
                                                 {Reason::LeaseExpired, "lease_expired"},
                                                 {Reason::Shutdown, "shutdown"},
                                                 {Reason::Superseded, "superseded"},
                                                 {Reason::Api, "api"},
                                                 {Reason::TimeLimit, "time_limit"}}};
constexpr std::array<Named<Phase>, 5> kPhases{{{Phase::Idle, "idle"},
                                               {Phase::RequestHeaders, "request_headers"},
                                               {Phase::RequestBody, "request_body"},
                                               {Phase::AwaitingResponse, "awaiting_response"},
                                               {Phase::ResponseBody, "response_body"}}};
constexpr std::array<Named<Cause>, 8> kCauses{{{Cause::Eof, "eof"},
                                               {Cause::Reset, "reset"},
                                               {Cause::WriteError, "write_error"},
                                               {Cause::Timeout, "timeout"},
                                               {Cause::Keepalive, "keepalive"},
                                               {Cause::Shutdown, "shutdown"},
                                               {Cause::UpstreamTimeout, "upstream_timeout"},
                                               {Cause::Deadline, "deadline"}}};

}  // namespace

std::string_view actionName(Action action) { return nameOf(kActions, action, "interrupt"); }
bool parseAction(std::string_view name, Action& out) { return valueOf(kActions, name, out); }
std::string_view cancelStateName(CancelState state) { return nameOf(kStates, state, "unknown"); }
bool parseCancelState(std::string_view name, CancelState& out) { return valueOf(kStates, name, out); }
std::string_view reasonName(Reason reason) { return nameOf(kReasons, reason, "client_disconnect"); }
std::optional<Reason> knownReason(std::string_view name) {
  Reason r{};
  if (!valueOf(kReasons, name, r)) return std::nullopt;
  return r;
}
std::string_view reasonLabel(std::string_view reason) {
  auto known = knownReason(reason);
  return known ? reasonName(*known) : std::string_view("other");
}
std::string_view phaseName(Phase phase) { return nameOf(kPhases, phase, "idle"); }
std::string_view causeName(Cause cause) { return nameOf(kCauses, cause, "eof"); }

}  // namespace tether::agent::control
