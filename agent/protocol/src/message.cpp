#include "tether/agent/control/message.hpp"

#include "tether/agent/control/request_id.hpp"

#include <limits>
#include <type_traits>

namespace tether::agent::control {
namespace {

// Field readers: each returns false and fills `error` when the field is present but ill-typed,
// or absent while required.
class Fields {
 public:
  Fields(const nlohmann::json& object, ProtocolError& error) : object_(object), error_(error) {}

  bool str(const char* name, std::string& out, bool required) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return !required || missing(name);
    if (!it->is_string()) return wrongType(name, "a string");
    out = it->get<std::string>();
    if (required && out.empty()) return wrongType(name, "a non-empty string");
    return true;
  }

  template <typename Int>
  bool integer(const char* name, std::optional<Int>& out, int64_t min, int64_t max) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return true;
    if (!it->is_number_integer()) return wrongType(name, "an integer");
    // Unsigned JSON numbers above INT64_MAX read as out of range rather than wrapping.
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(max)) {
      return wrongType(name, "in range");
    }
    const auto v = it->get<int64_t>();
    if (v < min || v > max) return wrongType(name, "in range");
    out = static_cast<Int>(v);
    return true;
  }

  bool missing(const char* name) {
    error_ = {ErrorCode::BadMessage, std::string("missing field \"") + name + "\""};
    return false;
  }

  bool wrongType(const char* name, const char* what) {
    error_ = {ErrorCode::BadMessage, std::string("field \"") + name + "\" must be " + what};
    return false;
  }

 private:
  const nlohmann::json& object_;
  ProtocolError& error_;
};

}  // namespace

std::string_view typeName(const Message& message) {
  return std::visit(
      [](const auto& m) -> std::string_view {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) return "hello";
        if constexpr (std::is_same_v<T, Cancel>) return "cancel";
        if constexpr (std::is_same_v<T, CancelAck>) return "cancel_ack";
        if constexpr (std::is_same_v<T, Register>) return "register";
        if constexpr (std::is_same_v<T, Registered>) return "registered";
        if constexpr (std::is_same_v<T, Unregister>) return "unregister";
        if constexpr (std::is_same_v<T, Unregistered>) return "unregistered";
        if constexpr (std::is_same_v<T, Status>) return "status";
        if constexpr (std::is_same_v<T, Error>) return "error";
      },
      message);
}

nlohmann::json toJson(const Message& message) {
  nlohmann::json j = nlohmann::json::object();
  j["type"] = typeName(message);
  std::visit(
      [&j](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) {
          j["version"] = m.version;
          if (!m.role.empty()) j["role"] = m.role;
          if (!m.server.empty()) j["server"] = m.server;
        } else if constexpr (std::is_same_v<T, Cancel>) {
          j["id"] = m.id;
          j["action"] = actionName(m.action);
          if (m.grace_ms) j["grace_ms"] = *m.grace_ms;
          if (!m.reason.empty()) j["reason"] = m.reason;
          if (!m.phase.empty()) j["phase"] = m.phase;
          if (!m.trace_id.empty()) j["trace_id"] = m.trace_id;
        } else if constexpr (std::is_same_v<T, CancelAck>) {
          j["id"] = m.id;
          j["state"] = cancelStateName(m.state);
        } else if constexpr (std::is_same_v<T, Register>) {
          j["id"] = m.id;
          if (m.pid) j["pid"] = *m.pid;
          if (!m.trace_id.empty()) j["trace_id"] = m.trace_id;
        } else if constexpr (std::is_same_v<T, Registered>) {
          j["id"] = m.id;
          j["cgroup"] = m.cgroup ? nlohmann::json(*m.cgroup) : nlohmann::json(nullptr);
        } else if constexpr (std::is_same_v<T, Unregister>) {
          j["id"] = m.id;
        } else if constexpr (std::is_same_v<T, Unregistered>) {
          j["id"] = m.id;
          j["found"] = m.found;
        } else if constexpr (std::is_same_v<T, Status>) {
          if (m.targets) j["targets"] = *m.targets;
        } else if constexpr (std::is_same_v<T, Error>) {
          j["code"] = errorCodeName(m.code);
          j["message"] = m.message;
          if (!m.id.empty()) j["id"] = m.id;
        }
      },
      message);
  return j;
}

std::string encodeMessage(const Message& message) { return encodeFrame(toJson(message)); }

bool parseMessage(const nlohmann::json& object, Message& out, ProtocolError& error) {
  if (!object.is_object()) {
    error = {ErrorCode::BadFrame, "frame is not a JSON object"};
    return false;
  }
  auto type_it = object.find("type");
  if (type_it == object.end() || !type_it->is_string()) {
    error = {ErrorCode::BadMessage, "missing string field \"type\""};
    return false;
  }
  const auto& type = type_it->get_ref<const std::string&>();
  Fields f(object, error);
  constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
  constexpr int64_t kMaxPid = std::numeric_limits<int32_t>::max();

  if (type == "hello") {
    Hello m;
    std::optional<int> version;
    if (!f.integer("version", version, 0, std::numeric_limits<int32_t>::max()) ||
        !f.str("role", m.role, false) || !f.str("server", m.server, false)) {
      return false;
    }
    if (version) m.version = *version;
    out = std::move(m);
  } else if (type == "cancel") {
    Cancel m;
    std::string action;
    if (!f.str("id", m.id, true) || !f.str("action", action, false) ||
        !f.integer("grace_ms", m.grace_ms, 0, kMaxU32) || !f.str("reason", m.reason, false) ||
        !f.str("phase", m.phase, false) || !f.str("trace_id", m.trace_id, false)) {
      return false;
    }
    // A trace id is only ever logged and echoed: one that is not the W3C form is dropped
    // rather than refusing the cancel it came with.
    if (!m.trace_id.empty() && !isValidTraceId(m.trace_id)) m.trace_id.clear();
    if (!action.empty() && !parseAction(action, m.action)) {
      error = {ErrorCode::BadMessage, "unknown action \"" + action + "\""};
      return false;
    }
    out = std::move(m);
  } else if (type == "cancel_ack") {
    CancelAck m;
    std::string state;
    if (!f.str("id", m.id, true) || !f.str("state", state, true)) return false;
    if (!parseCancelState(state, m.state)) m.state = CancelState::Unknown;
    out = std::move(m);
  } else if (type == "register") {
    Register m;
    if (!f.str("id", m.id, true) || !f.integer("pid", m.pid, 1, kMaxPid) || !f.str("trace_id", m.trace_id, false)) {
      return false;
    }
    if (!m.trace_id.empty() && !isValidTraceId(m.trace_id)) m.trace_id.clear();  // as in a cancel
    out = std::move(m);
  } else if (type == "registered") {
    Registered m;
    std::string cgroup;
    if (!f.str("id", m.id, true) || !f.str("cgroup", cgroup, false)) return false;
    if (!cgroup.empty()) m.cgroup = std::move(cgroup);
    out = std::move(m);
  } else if (type == "unregister") {
    Unregister m;
    if (!f.str("id", m.id, true)) return false;
    out = std::move(m);
  } else if (type == "unregistered") {
    Unregistered m;
    if (!f.str("id", m.id, true)) return false;
    auto it = object.find("found");
    m.found = it != object.end() && it->is_boolean() && it->get<bool>();
    out = std::move(m);
  } else if (type == "status") {
    Status m;
    auto it = object.find("targets");
    if (it != object.end() && !it->is_null()) {
      if (!it->is_array()) return f.wrongType("targets", "an array");
      m.targets = *it;
    }
    out = std::move(m);
  } else if (type == "error") {
    Error m;
    std::string code;
    if (!f.str("code", code, true) || !f.str("message", m.message, false) || !f.str("id", m.id, false)) {
      return false;
    }
    if (!parseErrorCode(code, m.code)) m.code = ErrorCode::BadMessage;
    out = std::move(m);
  } else {
    error = {ErrorCode::UnknownType, "unknown message type \"" + type + "\""};
    return false;
  }
  return true;
}

}  // namespace tether::agent::control
