#pragma once
// The event streams of the API (DESIGN.md "Event streams"): /v1/solve and /v1/jobs/ID/events as
// NDJSON (Accept: application/x-ndjson) or Server-Sent Events (Accept: text/event-stream), their
// heartbeats, and the watch that finds a reader that stopped reading. Internal to the daemon.
#include "tether/common/http_server.hpp"
#include "tether/common/uv_kit.hpp"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace tether::solverd {

enum class StreamFormat { None, Ndjson, Sse };

// From the request's Accept header: text/event-stream wins over application/x-ndjson; neither is
// None (one JSON response).
StreamFormat streamFormat(const http::Request& request);
std::string_view contentType(StreamFormat format);

// One event as the format frames it. NDJSON: the object on one line. SSE (WHATWG HTML
// "Server-sent events"): `id: SEQ` (when seq is not 0), `event: NAME` (the object's "event"
// field) and the object as one `data:` line, then a blank line.
std::string formatEvent(StreamFormat format, const nlohmann::json& event, uint64_t seq);
// SSE: a comment line, which EventSource ignores; NDJSON: {"event":"heartbeat"}.
std::string heartbeat(StreamFormat format);
// The Last-Event-ID header as a sequence number (0 when absent or not a number).
uint64_t lastEventId(const http::Request& request);

// Heartbeats and the stalled-reader watch of one streamed response. A reader behind a buffering
// balancer that stopped reading leaves our writes pending: when one stays pending longer than
// twice the heartbeat interval, `stalled` runs (once) and the owner treats it as a disconnect.
// The owner calls wrote() after each of its own writes.
class StreamWatch {
 public:
  StreamWatch(uv_loop_t* loop, http::Exchange& exchange, StreamFormat format, std::chrono::milliseconds interval,
              std::function<void()> stalled);
  ~StreamWatch() = default;  // the timers close themselves (uv::Handle)
  StreamWatch(const StreamWatch&) = delete;
  StreamWatch& operator=(const StreamWatch&) = delete;

  void wrote();
  void stop();

 private:
  void beat();

  http::Exchange& exchange_;
  StreamFormat format_;
  uint64_t interval_ms_;
  std::function<void()> stalled_;
  bool pending_ = false;
  uv::Handle<uv_timer_t> heartbeat_;
  uv::Handle<uv_timer_t> stall_;
};

}  // namespace tether::solverd
