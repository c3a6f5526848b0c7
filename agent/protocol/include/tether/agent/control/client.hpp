#pragma once
// The control CLIENT for tether-proxy: a non-blocking, reconnecting connection to a daemon's
// control socket (solverd or tether-agent). It sends `hello` on every connect, then cancel
// frames. It never blocks the loop: while the socket is down, cancels wait in a bounded queue
// (the newest is dropped and counted when it is full), and the connection is retried with
// exponential backoff (50 ms doubling to 5 s by default) until the peer is back.
//
// Delivery is at least once: a cancel written but not acknowledged when the connection drops is
// sent again after the reconnect (cancels are idempotent on the server side).
#include "tether/agent/control/message.hpp"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace tether::agent::control {

struct ClientOptions {
  std::string path;  // unix socket path (without the "unix:" prefix)
  std::string role = "proxy";
  // Cancels waiting while the socket is down (or the peer does not read). Cancels written but
  // not yet acknowledged are kept too, up to the same number, for the resend after a reconnect.
  // Sized for a burst: when 10,000 clients leave at once, their cancels are all sent in one
  // loop turn, long before the peer has read the first of them (a bound of 1,024 dropped 6,510
  // of 9,744 in bench/load_10k.sh). A queued cancel costs about 300 bytes: at most about 20 MB.
  size_t queue_limit = 65536;
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{5000};
};

struct ClientCounters {
  uint64_t sent = 0;        // cancel frames written to the socket (a resend counts again)
  uint64_t acked = 0;       // cancel_ack frames received
  uint64_t dropped = 0;     // cancels dropped because the queue was full
  uint64_t reconnects = 0;  // connections established after the first one
  uint64_t connect_failures = 0;
  uint64_t errors = 0;      // `error` frames received
};

// Callbacks, all on the loop thread. None may destroy the Client from inside.
struct ClientEvents {
  // A cancel frame reached the kernel: `event_ns` is the caller's timestamp given to sendCancel()
  // (or the time of that call), `written_ns` when the write completed (CLOCK_MONOTONIC ns).
  // Runs inside sendCancel() when the kernel takes the frame at once (the usual case).
  std::function<void(const Cancel&, uint64_t event_ns, uint64_t written_ns)> on_sent;
  // The peer acknowledged a cancel. `event_ns` as given to sendCancel().
  std::function<void(const CancelAck&, uint64_t event_ns)> on_ack;
  // A cancel was dropped (queue full).
  std::function<void(const Cancel&)> on_dropped;
  // The peer sent an `error` frame (e.g. forbidden); the connection is then usually closed.
  std::function<void(const Error&)> on_error;
  // Connection state changes: true after connect + hello sent, false when it went down.
  // `uv_error` is the libuv error that ended the connection or failed the connect (0 if none).
  std::function<void(bool connected, int uv_error)> on_connection;
};

class Client {
 public:
  Client(uv_loop_t* loop, ClientOptions options, ClientEvents events = {});
  ~Client();  // closes the socket and timers; queued cancels are discarded
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting. Call once.
  void start();

  // Writes the cancel now if connected, else queues it. `event_ns` is the caller's timestamp of
  // the event that caused it (the client's disconnect), passed back in the callbacks; 0 means
  // "now". Returns false if the cancel was dropped because the queue is full.
  bool sendCancel(const Cancel& cancel, uint64_t event_ns = 0);

  // Closes everything; later sendCancel() calls are dropped. Idempotent.
  void close();

  bool connected() const;
  size_t queued() const;    // waiting to be written
  size_t unacked() const;   // written, not yet acknowledged
  const ClientCounters& counters() const;
  std::string address() const;  // "unix:PATH"

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::agent::control
