#include "event_stream.hpp"

#include <charconv>

namespace tether::solverd {
namespace {

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

StreamFormat streamFormat(const http::Request& request) {
  const std::string* accept = request.header("Accept");
  if (accept == nullptr) return StreamFormat::None;
  if (accept->find("text/event-stream") != std::string::npos) return StreamFormat::Sse;
  if (accept->find("application/x-ndjson") != std::string::npos) return StreamFormat::Ndjson;
  return StreamFormat::None;
}

std::string_view contentType(StreamFormat format) {
  switch (format) {
    case StreamFormat::Sse: return "text/event-stream";
    case StreamFormat::Ndjson: return "application/x-ndjson";
    case StreamFormat::None: break;
  }
  return "application/json";
}

std::string formatEvent(StreamFormat format, const nlohmann::json& event, uint64_t seq) {
  if (format != StreamFormat::Sse) return dump(event) + "\n";
  std::string out;
  if (seq != 0) out += "id: " + std::to_string(seq) + "\n";
  // The JSON dump has no raw newline (strings escape it), so one data line holds it.
  out += "event: " + event.value("event", std::string("message")) + "\n";
  out += "data: " + dump(event) + "\n\n";
  return out;
}

std::string heartbeat(StreamFormat format) {
  return format == StreamFormat::Sse ? ": heartbeat\n\n" : "{\"event\":\"heartbeat\"}\n";
}

uint64_t lastEventId(const http::Request& request) {
  const std::string* h = request.header("Last-Event-ID");
  if (h == nullptr) return 0;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(h->data(), h->data() + h->size(), v);
  return ec == std::errc() && end == h->data() + h->size() ? v : 0;
}

StreamWatch::StreamWatch(uv_loop_t* loop, http::Exchange& exchange, StreamFormat format,
                         std::chrono::milliseconds interval, std::function<void()> stalled)
    : exchange_(exchange),
      format_(format),
      interval_ms_(static_cast<uint64_t>(std::max<int64_t>(interval.count(), 1))),
      stalled_(std::move(stalled)),
      heartbeat_(loop),
      stall_(loop) {
  for (uv::Handle<uv_timer_t>* t : {&heartbeat_, &stall_}) {
    if (*t) t->get()->data = this;
  }
  if (heartbeat_) {
    uv_timer_start(
        heartbeat_.get(), [](uv_timer_t* t) { static_cast<StreamWatch*>(t->data)->beat(); }, interval_ms_,
        interval_ms_);
  }
}

void StreamWatch::beat() {
  exchange_.write(heartbeat(format_));
  wrote();
}

void StreamWatch::wrote() {
  if (pending_ || !stall_ || exchange_.queuedBytes() == 0) return;
  // The kernel did not take everything: the clock runs until the queue drains.
  pending_ = true;
  uv_timer_start(
      stall_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<StreamWatch*>(t->data);
        self->stop();
        if (self->stalled_) self->stalled_();  // may destroy the owner on a later turn, not now
      },
      2 * interval_ms_, 0);
  exchange_.onWritable([this] {
    pending_ = false;
    if (stall_) uv_timer_stop(stall_.get());
  });
}

void StreamWatch::stop() {
  if (heartbeat_) uv_timer_stop(heartbeat_.get());
  if (stall_) uv_timer_stop(stall_.get());
  exchange_.onWritable(nullptr);
}

}  // namespace tether::solverd
