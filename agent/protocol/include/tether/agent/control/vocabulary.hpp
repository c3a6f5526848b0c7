#pragma once
// The cancel vocabulary of every tether wire (DESIGN.md "Control protocol, version 1" and
// "Disconnect semantics"): the one definition of each enum and its names. The proxy produces
// phases and causes, the control frames carry action, grace, reason and phase, the daemons answer
// with a state, and supervision runs the action. Nothing else defines these; a ctest
// (tests/contract) fails if an enum or name of them appears outside agent/protocol/.
//
// Reasons are an open set on the wire: a peer accepts a reason it does not know (a newer peer
// during a rolling upgrade) and keeps the string; Reason lists the ones this version produces.
#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::agent::control {

// The `action` of a cancel frame, and the ladder's step (DESIGN.md "The cancel ladder").
enum class Action { Interrupt, Kill };

// The `state` of a cancel_ack, and a job's state in solverd (never Unknown for a job).
enum class CancelState { Queued, Running, Finished, Unknown };

// Why a cancel was sent: the closed list this version sends.
enum class Reason {
  ClientDisconnect,  // the client left (the proxy's frame, or solverd's own connection watch)
  UpstreamTimeout,   // the proxy gave up waiting for the upstream (proxy_read_timeout)
  Deadline,          // the request's deadline passed (grpc-timeout)
  LeaseExpired,      // a detached job's lease was not renewed
  Shutdown,          // the daemon or the proxy is stopping
  Superseded,        // a newer request with the same X-Solve-Key replaced it
  Api,               // DELETE /v1/jobs/ID
  TimeLimit,         // the solve ran past its time limit and the worker did not stop
};

// Where a request was when its client left. Idle (between requests) is never sent.
enum class Phase { Idle, RequestHeaders, RequestBody, AwaitingResponse, ResponseBody };

// How the client left. Shutdown: cut by the server's shutdown; UpstreamTimeout: an upstream
// timeout turned into a cancel while the client waited (both access log only: not a client leaving).
// Deadline: the request's own deadline (grpc-timeout, Request-Timeout) passed (access log only).
enum class Cause { Eof, Reset, WriteError, Timeout, Keepalive, Shutdown, UpstreamTimeout, Deadline };

std::string_view actionName(Action action);
bool parseAction(std::string_view name, Action& out);
std::string_view cancelStateName(CancelState state);
bool parseCancelState(std::string_view name, CancelState& out);
std::string_view reasonName(Reason reason);
// The Reason of a name this version knows; nullopt for any other (still a valid reason).
std::optional<Reason> knownReason(std::string_view name);
// A reason as a metric label: the name of a known reason, anything else "other", so that a
// peer's free text cannot grow a daemon's metric series without bound.
std::string_view reasonLabel(std::string_view reason);
std::string_view phaseName(Phase phase);
std::string_view causeName(Cause cause);

// The same names as toString(), so that code in any namespace can log them with one spelling.
inline std::string_view toString(Action action) { return actionName(action); }
inline std::string_view toString(CancelState state) { return cancelStateName(state); }
inline std::string_view toString(Phase phase) { return phaseName(phase); }
inline std::string_view toString(Cause cause) { return causeName(cause); }

}  // namespace tether::agent::control
