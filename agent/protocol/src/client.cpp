#include "tether/agent/control/client.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/common/uv_stream.hpp"

#include <algorithm>
#include <array>
#include <deque>

namespace tether::agent::control {
namespace {

// Past this many bytes queued on the stream (uv::Stream::pending) the peer is not reading: further
// cancels wait in our bounded queue instead of growing the stream's unbounded one.
constexpr size_t kMaxWriteBacklog = 256 * 1024;

struct Pending {
  Cancel cancel;
  uint64_t event_ns = 0;
  std::string frame;
};

// A cancel written to the stream, not yet wholly taken by the kernel: it is, once the stream's
// written() count reaches `end` (the stream keeps the order of the bytes).
struct InFlight {
  uint64_t end = 0;
  std::shared_ptr<const Pending> pending;
};

}  // namespace

struct Client::Impl final : uv::StreamEvents {
  enum class State { Idle, Connecting, Connected, Waiting, Closed };

  uv_loop_t* loop;
  ClientOptions options;
  ClientEvents events;
  State state = State::Idle;
  // A fresh stream per connection attempt; destroyed when the connection goes down, so the
  // callbacks of the old one (writes cancelled by its close) reach nobody.
  std::unique_ptr<uv::Stream> pipe;
  uv::Handle<uv_timer_t> retry_timer;
  std::deque<std::shared_ptr<const Pending>> queue;    // not yet written
  std::deque<std::shared_ptr<const Pending>> unacked;  // written, waiting for cancel_ack
  std::deque<InFlight> in_flight;                      // written, not yet all in the kernel
  FrameDecoder decoder;
  std::chrono::milliseconds backoff;
  bool ever_connected = false;
  ClientCounters counters;
  std::array<char, 16 * 1024> read_buffer{};

  Impl(uv_loop_t* l, ClientOptions o, ClientEvents e)
      : loop(l),
        options(std::move(o)),
        events(std::move(e)),
        retry_timer(l),  // uv_timer_init cannot fail
        backoff(options.backoff_initial) {
    retry_timer->data = this;
  }

  void connect() {
    state = State::Connecting;
    decoder = FrameDecoder();
    pipe = std::make_unique<uv::Stream>(loop, uv::StreamKind::Pipe, *this);
    pipe->setReadBuffer(read_buffer.data(), read_buffer.size());
    // Every outcome, a synchronous failure included, arrives in onConnect().
    if (int rc = pipe->connect(options.path.c_str()); rc != 0) connectFailed(rc);
  }

  void onConnect(int status) override {
    if (status < 0) {
      connectFailed(status);
    } else {
      connected();
    }
  }

  void onRead(ssize_t n, const char* data) override {
    if (n < 0) {
      lost(static_cast<int>(n));
      return;
    }
    onBytes(std::string_view(data, static_cast<size_t>(n)));
  }

  void onWriteFailed(int status) override { lost(status); }
  void onDrained() override { wrote(); }
  void onWriteProgress() override { wrote(); }

  // Queued bytes reached the kernel: report the cancels now wholly written, then write more.
  void wrote() {
    reportSent();
    flush();
  }

  void reportSent() {
    const uint64_t written = pipe->written();
    while (!in_flight.empty() && in_flight.front().end <= written) {
      auto pending = std::move(in_flight.front().pending);
      in_flight.pop_front();
      ++counters.sent;
      if (events.on_sent) events.on_sent(pending->cancel, pending->event_ns, monotonicNs());
    }
  }

  void connectFailed(int uv_error) {
    ++counters.connect_failures;
    teardownPipe();
    scheduleRetry();
    if (events.on_connection) events.on_connection(false, uv_error);
  }

  void connected() {
    state = State::Connected;
    if (ever_connected) ++counters.reconnects;
    ever_connected = true;
    if (int rc = pipe->readStart(); rc != 0) {
      lost(rc);
      return;
    }
    if (!writeBytes(encodeMessage(Hello{kProtocolVersion, options.role, {}}), nullptr)) return;
    // Cancels written on the previous connection and never acknowledged go first: the peer may
    // have restarted before reading them. Cancels are idempotent, so a duplicate is harmless.
    while (!unacked.empty()) {
      queue.push_front(std::move(unacked.back()));
      unacked.pop_back();
    }
    flush();
    if (events.on_connection && state == State::Connected) events.on_connection(true, 0);
  }

  // The connection went down (end of file, read or write error, a bad frame from the peer).
  void lost(int uv_error) {
    teardownPipe();
    scheduleRetry();
    if (events.on_connection) events.on_connection(false, uv_error);
  }

  // Cancels in flight stay in `unacked`, for the resend after the reconnect.
  void teardownPipe() {
    pipe.reset();
    in_flight.clear();
    if (state != State::Closed) state = State::Waiting;
  }

  void scheduleRetry() {
    if (state == State::Closed) return;
    const auto delay = backoff;
    backoff = std::min(backoff * 2, options.backoff_max);
    uv_timer_start(
        retry_timer.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<Impl*>(t->data);
          if (self->state == State::Waiting) self->connect();
        },
        static_cast<uint64_t>(delay.count()), 0);
  }

  void onBytes(std::string_view bytes) {
    decoder.feed(bytes);
    nlohmann::json object;
    ProtocolError error;
    while (state == State::Connected) {
      auto result = decoder.next(object, error);
      if (result == FrameDecoder::Result::NeedMore) return;
      if (result == FrameDecoder::Result::Error) {
        lost(UV_EPROTO);
        return;
      }
      Message message;
      if (!parseMessage(object, message, error)) continue;  // a newer server's message: ignore
      if (const auto* ack = std::get_if<CancelAck>(&message)) {
        onAck(*ack);
      } else if (std::holds_alternative<Hello>(message)) {
        // The peer speaks our protocol: only now is the connection known good, so only now
        // does the backoff start over (a peer that accepts and closes at once keeps backing off).
        backoff = options.backoff_initial;
      } else if (const auto* err = std::get_if<Error>(&message)) {
        ++counters.errors;
        if (events.on_error) events.on_error(*err);
      }
    }
  }

  void onAck(const CancelAck& ack) {
    ++counters.acked;
    uint64_t event_ns = 0;
    auto it = std::find_if(unacked.begin(), unacked.end(),
                           [&](const auto& p) { return p->cancel.id == ack.id; });
    if (it != unacked.end()) {
      event_ns = (*it)->event_ns;
      unacked.erase(it);
    }
    if (events.on_ack) events.on_ack(ack, event_ns);
  }

  bool writable() const {
    return state == State::Connected && pipe->pending() <= kMaxWriteBacklog;
  }

  void flush() {
    while (!queue.empty() && writable()) {
      auto pending = std::move(queue.front());
      queue.pop_front();
      // Written but unacknowledged cancels are kept for a resend, up to queue_limit; past it the
      // oldest is forgotten (it did reach the kernel once).
      unacked.push_back(pending);
      if (unacked.size() > options.queue_limit) unacked.pop_front();
      if (!writeBytes(pending->frame, pending)) return;
    }
  }

  // Returns false if the connection was lost. A cancel the kernel took at once is reported
  // sent at once; one queued behind a slow peer when the stream has written it (wrote()).
  bool writeBytes(std::string_view bytes, std::shared_ptr<const Pending> pending) {
    if (int rc = pipe->write(bytes); rc < 0) {
      lost(rc);
      return false;
    }
    if (pending) {
      in_flight.push_back(InFlight{pipe->written() + pipe->pending(), std::move(pending)});
      reportSent();
    }
    return true;
  }

  bool send(const Cancel& cancel, uint64_t event_ns) {
    auto pending = std::make_shared<Pending>();
    pending->cancel = cancel;
    pending->event_ns = event_ns != 0 ? event_ns : monotonicNs();
    pending->frame = encodeMessage(cancel);
    if (state == State::Closed || pending->frame.empty() || queue.size() >= options.queue_limit) {
      ++counters.dropped;
      if (events.on_dropped) events.on_dropped(cancel);
      return false;
    }
    queue.push_back(std::move(pending));
    flush();
    return true;
  }

  void close() {
    if (state == State::Closed) return;
    state = State::Closed;
    teardownPipe();
    retry_timer.close();
    queue.clear();
    unacked.clear();
  }
};

Client::Client(uv_loop_t* loop, ClientOptions options, ClientEvents events)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(events))) {}

Client::~Client() { impl_->close(); }

void Client::start() {
  if (impl_->state == Impl::State::Idle) impl_->connect();
}

bool Client::sendCancel(const Cancel& cancel, uint64_t event_ns) { return impl_->send(cancel, event_ns); }
void Client::close() { impl_->close(); }
bool Client::connected() const { return impl_->state == Impl::State::Connected; }
size_t Client::queued() const { return impl_->queue.size(); }
size_t Client::unacked() const { return impl_->unacked.size(); }
const ClientCounters& Client::counters() const { return impl_->counters; }
std::string Client::address() const { return "unix:" + impl_->options.path; }

}  // namespace tether::agent::control
