#pragma once
// The messages of control protocol v1 (DESIGN.md), as typed values, and their JSON form.
// Unknown fields are ignored on input. parseMessage() never throws.
#include "tether/agent/control/frame.hpp"
#include "tether/agent/control/vocabulary.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace tether::agent::control {

inline constexpr int kProtocolVersion = 1;

// {"type":"hello","version":1,"role":"proxy"} from a client;
// {"type":"hello","version":1,"server":"solverd"} in reply.
struct Hello {
  int version = kProtocolVersion;
  std::string role;    // set by clients ("proxy", "tether-run", ...)
  std::string server;  // set in the server's reply ("solverd", "tether-agent")
};

// {"type":"cancel","id":ID,"action":"interrupt"|"kill","grace_ms":5000,
//  "reason":"client_disconnect","phase":"awaiting_response"}
// `reason` stays a string: a reason this version does not know (knownReason() says nullopt) is
// still a cancel, acted on and recorded as sent. `phase` likewise.
struct Cancel {
  std::string id;
  Action action = Action::Interrupt;
  std::optional<uint32_t> grace_ms;  // absent: the daemon's default grace
  std::string reason{reasonName(Reason::ClientDisconnect)};
  std::string phase;  // empty: not sent
  // The request's W3C trace id (32 lowercase hex), so the daemon logs the cancel in the client's
  // trace. Optional: empty is not sent, and a peer that predates it ignores it (unknown fields
  // are ignored).
  std::string trace_id = {};
};

// {"type":"cancel_ack","id":ID,"state":"queued"|"running"|"finished"|"unknown"}
struct CancelAck {
  std::string id;
  CancelState state = CancelState::Unknown;
};

// {"type":"register","id":ID,"pid":N}; pid absent means the peer's own pid.
struct Register {
  std::string id;
  std::optional<int64_t> pid;
  // The W3C trace id of the request the command serves (tether-run reads it from $TRACEPARENT),
  // optional as in Cancel: the agent logs it with the target and keeps it in its record.
  std::string trace_id = {};
};

// {"type":"registered","id":ID,"cgroup":PATH|null}
struct Registered {
  std::string id;
  std::optional<std::string> cgroup;  // null where no cgroup v2 is writable (process-group fallback)
};

// {"type":"unregister","id":ID}
struct Unregister {
  std::string id;
};

// Our extension: the reply to unregister, {"type":"unregistered","id":ID,"found":true}.
struct Unregistered {
  std::string id;
  bool found = false;
};

// {"type":"status"} asks; {"type":"status","targets":[...]} answers (targets present).
struct Status {
  std::optional<nlohmann::json> targets;
};

// {"type":"error","code":"bad_frame"|...,"message":"...","id":ID?}
// `id` is set when the error refers to one request (a refused register).
struct Error {
  ErrorCode code = ErrorCode::BadMessage;
  std::string message;
  std::string id;
};

using Message =
    std::variant<Hello, Cancel, CancelAck, Register, Registered, Unregister, Unregistered, Status, Error>;

// The "type" string of a message ("hello", "cancel_ack", ...).
std::string_view typeName(const Message& message);

nlohmann::json toJson(const Message& message);

// Frames a message: encodeFrame(toJson(message)).
std::string encodeMessage(const Message& message);

// Reads a decoded JSON object as a message. On failure returns false and sets `error`:
// UnknownType for a type we do not know, BadMessage for a missing or ill-typed field.
bool parseMessage(const nlohmann::json& object, Message& out, ProtocolError& error);

}  // namespace tether::agent::control
