#pragma once
// The control SERVER for daemons (solverd and tether-agent): a unix stream socket speaking
// control protocol v1. It checks each peer with SO_PEERCRED against the `allow` rules (the
// daemon's own uid is always allowed), answers `hello`, and hands `cancel`, `register`,
// `unregister` and `status` to a Handler that the daemon implements. A bad frame gets an
// `error` reply and that connection is closed; every other connection carries on. A peer that
// reads its replies slowly is not closed: the server stops reading from it until they drain.
//
// Runs on the caller's libuv loop; never blocks it, never throws after start-up.
#include "tether/agent/control/message.hpp"
#include "tether/common/listener.hpp"

#include <uv.h>

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tether::agent::control {

// What SO_PEERCRED says about a peer, taken once when the connection is accepted.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// One `allow` rule of the `control` block: `allow uid N;` or `allow group NAME|GID;`
// (group names are resolved to gids when the rules are built, at start-up).
struct AllowRule {
  enum class Kind { Uid, Gid };
  Kind kind = Kind::Uid;
  uint32_t value = 0;
};

// Parses the arguments of one `allow` directive ("uid", "0") or ("group", "tether"|"1001").
// Returns std::nullopt and a phrase in `why` (nginx style: `invalid value "x"`) on failure.
std::optional<AllowRule> parseAllowRule(const std::string& kind, const std::string& value,
                                        std::string* why = nullptr);

// True if `peer` may talk to a daemon running as `own_uid` under `rules`. Only the daemon's own
// uid is implicit; root must be allowed explicitly
// (`allow uid 0;`), as DESIGN.md writes it. A group rule matches the peer's primary gid or any
// of its supplementary groups (read from /proc/PID/status).
bool peerAllowed(const PeerCredentials& peer, const std::vector<AllowRule>& rules, uid_t own_uid);

struct ServerOptions {
  std::string path;                  // unix socket path (without the "unix:" prefix)
  std::optional<mode_t> mode;        // `mode 0660;` chmod after bind
  std::optional<gid_t> group;        // `group tether;` chown after bind (gid resolved)
  std::vector<AllowRule> allow;      // `allow ...;` rules
  std::string server_name = "tether-agent";  // sent in the hello reply
  size_t max_connections = 1024;     // further peers are accepted and closed at once
};

// What the daemon does with requests. Replies are immediate: each call returns the message
// to send back. Called on the loop thread; a handler must not destroy the Server from inside.
class Handler {
 public:
  virtual ~Handler() = default;
  // Cancels are idempotent; reply with the target's state (unknown ids leave a tombstone).
  virtual CancelAck onCancel(const PeerCredentials& peer, const Cancel& cancel) = 0;
  // Reply Registered, or Error (Forbidden: not the peer's process; Cancelled: tombstoned id;
  // Conflict: id in use). The default refuses: solverd does not take registrations.
  virtual Message onRegister(const PeerCredentials& peer, const Register& request);
  virtual Unregistered onUnregister(const PeerCredentials& peer, const Unregister& request);
  // The `targets` array of the status reply.
  virtual nlohmann::json statusTargets() = 0;
};

struct ServerCounters {
  uint64_t accepted = 0;
  uint64_t forbidden = 0;
  uint64_t bad_frames = 0;   // connections closed for a bad frame
  uint64_t bad_messages = 0; // bad_message or unknown_type replies (connection kept)
  uint64_t messages = 0;     // valid messages handled
  uint64_t read_pauses = 0;  // reads stopped because a peer's unread replies passed 1 MiB
};

class Server {
 public:
  Server(uv_loop_t* loop, Handler& handler, ServerOptions options);
  ~Server();  // closes the listener and every connection
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (a stale socket file at `path` is removed first), applies mode and group, listens.
  // Returns 0 or a negative errno / libuv error code; `why` gets a phrase for the log.
  int listen(std::string* why = nullptr);

  // Accepts on a listener the daemon opened itself (tether::Listener::open, e.g. for
  // `listen systemd:control;` under socket activation); the server owns it from now on. `path`,
  // `mode` and `group` of the options are then unused. Peers of a non-unix listener are refused
  // (SO_PEERCRED fails on them). Returns 0 or a libuv error.
  int listen(std::unique_ptr<Listener> listener);

  // "unix:/run/tether/agent.sock" (the listener's bound address), for the `listening on` line.
  std::string address() const;

  // Stops accepting and closes every connection (the socket file is removed). Idempotent.
  void close();

  size_t connectionCount() const;
  const ServerCounters& counters() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::agent::control
