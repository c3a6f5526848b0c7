#include "tether/agent/control/client.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/uv_handle.hpp"

#include <algorithm>
#include <array>
#include <deque>

namespace tether::agent::control {
namespace {

// Past this many bytes waiting in libuv's write queue the peer is not reading: further cancels
// wait in our bounded queue instead of growing libuv's unbounded one.
constexpr size_t kMaxWriteBacklog = 256 * 1024;

struct Pending {
  Cancel cancel;
  uint64_t event_ns = 0;
  std::string frame;
};

struct WriteReq {
  uv_write_t req{};
  std::string bytes;
  std::shared_ptr<const Pending> pending;  // null for hello
};

}  // namespace

struct Client::Impl {
  enum class State { Idle, Connecting, Connected, Waiting, Closed };

  uv_loop_t* loop;
  ClientOptions options;
  ClientEvents events;
  State state = State::Idle;
  std::unique_ptr<UvHandle<uv_pipe_t>> pipe;  // a fresh handle per connection attempt
  UvHandle<uv_timer_t> retry_timer;
  std::deque<std::shared_ptr<const Pending>> queue;    // not yet written
  std::deque<std::shared_ptr<const Pending>> unacked;  // written, waiting for cancel_ack
  FrameDecoder decoder;
  std::chrono::milliseconds backoff;
  bool ever_connected = false;
  ClientCounters counters;
  std::array<char, 16 * 1024> read_buffer{};

  Impl(uv_loop_t* l, ClientOptions o, ClientEvents e)
      : loop(l), options(std::move(o)), events(std::move(e)), backoff(options.backoff_initial) {
    uv_timer_init(loop, retry_timer.get());
    retry_timer.markInitialized();
    retry_timer->data = this;
  }

  void connect() {
    state = State::Connecting;
    decoder = FrameDecoder();
    pipe = std::make_unique<UvHandle<uv_pipe_t>>();
    if (int rc = uv_pipe_init(loop, pipe->get(), 0); rc != 0) {
      connectFailed(rc);
      return;
    }
    pipe->markInitialized();
    pipe->get()->data = this;
    // uv_pipe_connect reports every outcome, including a synchronous failure, via the callback.
    auto* req = new uv_connect_t{};
    uv_pipe_connect(req, pipe->get(), options.path.c_str(), [](uv_connect_t* r, int status) {
      // data is null when the attempt was abandoned (close()): the handle is closing.
      auto* self = static_cast<Impl*>(r->handle->data);
      delete r;
      if (self == nullptr) return;
      if (status < 0) {
        self->connectFailed(status);
      } else {
        self->connected();
      }
    });
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
    uv_read_start(
        pipe->stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Impl*>(h->data);
          *buf = uv_buf_init(self->read_buffer.data(), static_cast<unsigned>(self->read_buffer.size()));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* self = static_cast<Impl*>(s->data);
          if (self == nullptr) return;
          if (n < 0) {
            self->lost(static_cast<int>(n));
            return;
          }
          if (n > 0) self->onBytes(std::string_view(buf->base, static_cast<size_t>(n)));
        });
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

  void teardownPipe() {
    if (pipe) {
      pipe->get()->data = nullptr;
      pipe.reset();
    }
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
    return state == State::Connected && uv_stream_get_write_queue_size(pipe->stream()) <= kMaxWriteBacklog;
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

  // Returns false if the connection was lost.
  bool writeBytes(std::string bytes, std::shared_ptr<const Pending> pending) {
    auto* req = new WriteReq;
    req->bytes = std::move(bytes);
    req->pending = std::move(pending);
    uv_buf_t buf = uv_buf_init(req->bytes.data(), static_cast<unsigned>(req->bytes.size()));
    int rc = uv_write(&req->req, pipe->stream(), &buf, 1, [](uv_write_t* w, int status) {
      std::unique_ptr<WriteReq> r(reinterpret_cast<WriteReq*>(w));
      auto* self = static_cast<Impl*>(w->handle->data);
      if (self == nullptr) return;  // cancelled by teardown; the cancel stays in `unacked`
      if (status < 0) {
        self->lost(status);
        return;
      }
      if (r->pending) {
        ++self->counters.sent;
        if (self->events.on_sent) self->events.on_sent(r->pending->cancel, r->pending->event_ns, monotonicNs());
      }
      self->flush();
    });
    if (rc < 0) {
      delete req;
      lost(rc);
      return false;
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
