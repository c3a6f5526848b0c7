#include "tether/common/uv_stream.hpp"

#include "tether/common/uv_kit.hpp"

#include <memory>
#include <string>
#include <utility>

namespace tether::uv {

// Everything libuv's callbacks touch lives here, not in the Stream: a callback may run after the
// owner destroyed its Stream (writes cancelled by the close), and finds the Core alive until the
// close callback, which libuv runs last.
struct Stream::Core {
  // First: the handle's address is the Core's. Only the two stream types, not uv_any_handle
  // (312 bytes on x86-64 against 264): an idle connection is mostly this allocation.
  union Handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle{};
  Stream* stream = nullptr;         // the owner's Stream, null once destroyed
  StreamEvents* events = nullptr;   // null once the Stream was destroyed
  char* read_data = nullptr;
  size_t read_size = 0;
  size_t pending = 0;
  uint64_t written = 0;
  bool reading = false;
  bool closing = false;

  uv_stream_t* uvStream() { return &handle.stream; }
  // Whether a callback should reach the owner: not after close() or the Stream's destruction.
  bool live() const { return !closing && events != nullptr; }
};

namespace {

// The one write-request type: what uv_try_write left of one write() call, in one copy.
struct WriteReq {
  uv_write_t req{};
  Stream::Core* core = nullptr;
  std::string data;
  size_t offset = 0;  // writeOwned(): the bytes uv_try_write took, left in place
  size_t size() const { return data.size() - offset; }
};

}  // namespace

Stream::Stream(uv_loop_t* loop, StreamKind kind, StreamEvents& events) : kind_(kind), core_(new Core) {
  status_ = kind == StreamKind::Tcp ? uv_tcp_init(loop, &core_->handle.tcp)
                                    : uv_pipe_init(loop, &core_->handle.pipe, 0);
  if (status_ != 0) {
    // Never registered with the loop: no close callback will come.
    delete std::exchange(core_, nullptr);
    return;
  }
  core_->handle.handle.data = core_;
  core_->stream = this;
  core_->events = &events;
}

Stream::~Stream() {
  if (core_ == nullptr) return;
  core_->events = nullptr;
  core_->stream = nullptr;
  close();
  core_ = nullptr;
}

bool Stream::closing() const { return core_ == nullptr || core_->closing; }

uv_stream_t* Stream::stream() const { return core_ != nullptr ? core_->uvStream() : nullptr; }
uv_tcp_t* Stream::tcp() const { return core_ != nullptr && kind_ == StreamKind::Tcp ? &core_->handle.tcp : nullptr; }
uv_pipe_t* Stream::pipe() const {
  return core_ != nullptr && kind_ == StreamKind::Pipe ? &core_->handle.pipe : nullptr;
}

void Stream::onHandleClosed(uv_handle_t* h) {
  // libuv has run every write and connect callback of this stream by now.
  auto* core = static_cast<Core*>(h->data);
  StreamEvents* events = core->events;
  if (core->stream != nullptr) core->stream->core_ = nullptr;
  delete core;
  if (events != nullptr) events->onClosed();  // may free the owner, and the Stream with it
}

void Stream::close() {
  if (core_ == nullptr || core_->closing) return;
  core_->closing = true;
  core_->reading = false;
  // closeLoop() may have closed the handle already (an owner that outlived the loop's run): then
  // the close callback runs when that close completes, or now if it has.
  detail::closeOwned(&core_->handle.handle, &Stream::onHandleClosed);
}

namespace {

void onConnected(uv_connect_t* req, int status) {
  auto* core = static_cast<Stream::Core*>(req->handle->data);
  delete req;
  if (core->live()) core->events->onConnect(status);
}

}  // namespace

int Stream::open(uv_os_fd_t fd) {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  return kind_ == StreamKind::Tcp ? uv_tcp_open(&core_->handle.tcp, fd) : uv_pipe_open(&core_->handle.pipe, fd);
}

int Stream::connect(const sockaddr* addr) {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  if (kind_ != StreamKind::Tcp) return UV_EINVAL;
  auto* req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, &core_->handle.tcp, addr, onConnected);
  if (rc != 0) delete req;
  return rc;
}

int Stream::connect(const char* path) {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  if (kind_ != StreamKind::Pipe) return UV_EINVAL;
  // uv_pipe_connect reports every outcome, a synchronous failure included, via the callback, on
  // a later loop turn.
  uv_pipe_connect(new uv_connect_t{}, &core_->handle.pipe, path, onConnected);
  return 0;
}

void Stream::setReadBuffer(char* data, size_t size) {
  if (core_ == nullptr) return;
  core_->read_data = data;
  core_->read_size = size;
}

int Stream::readStart() {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  if (core_->reading) return 0;
  if (core_->read_data == nullptr || core_->read_size == 0) return UV_EINVAL;
  int rc = uv_read_start(
      core_->uvStream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* core = static_cast<Core*>(h->data);
        *buf = uv_buf_init(core->read_data, static_cast<unsigned>(core->read_size));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* core = static_cast<Core*>(s->data);
        if (nread == 0 || !core->live()) return;
        if (nread < 0) {
          // libuv stops reading after end of file and most errors; say so for every error, so
          // that a later readStart() starts again.
          uv_read_stop(s);
          core->reading = false;
        }
        core->events->onRead(nread, buf->base);
      });
  core_->reading = rc == 0;
  return rc;
}

void Stream::readStop() {
  if (core_ == nullptr || core_->closing || !core_->reading) return;
  uv_read_stop(core_->uvStream());
  core_->reading = false;
}

bool Stream::reading() const { return core_ != nullptr && core_->reading; }

int Stream::write(std::string_view bytes) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  return write(&buf, 1);
}

namespace {

void onWritten(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));
  Stream::Core* core = w->core;
  const size_t len = w->size();
  w.reset();
  core->pending -= len;
  if (status == 0) core->written += len;
  if (!core->live()) return;  // cancelled by close() or the Stream's destruction
  if (status < 0) {
    core->events->onWriteFailed(status);
  } else if (core->pending == 0) {
    core->events->onDrained();
  } else {
    core->events->onWriteProgress();
  }
}

// uv_try_write, only with nothing queued (bytes written now would overtake the queue). Sets
// `done` to the bytes the kernel took; returns 0, or a libuv error for a write that failed.
int tryFirst(Stream::Core* core, const uv_buf_t* bufs, unsigned count, size_t& done) {
  done = 0;
  if (core->pending != 0) return 0;
  int r = uv_try_write(core->uvStream(), bufs, count);
  if (r >= 0) {
    done = static_cast<size_t>(r);
    core->written += done;
    return 0;
  }
  // UV_EAGAIN: the socket buffer is full, or a connect is in progress.
  return r == UV_EAGAIN || r == UV_ENOSYS ? 0 : r;
}

// Queues what is left (req->data from req->offset) in one uv_write; libuv owns it until onWritten.
int enqueue(Stream::Core* core, std::unique_ptr<WriteReq> req) {
  req->req.data = req.get();
  req->core = core;
  uv_buf_t buf = uv_buf_init(req->data.data() + req->offset, static_cast<unsigned>(req->size()));
  int r = uv_write(&req->req, core->uvStream(), &buf, 1, onWritten);
  if (r != 0) return r;
  core->pending += buf.len;
  req.release();
  return 0;
}

}  // namespace

int Stream::write(const uv_buf_t* bufs, unsigned count) {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (total == 0) return 0;
  size_t done = 0;
  if (int r = tryFirst(core_, bufs, count, done); r != 0 || done == total) return r;
  // The peer is slow (or still connecting): keep what is left in one owned buffer.
  auto req = std::make_unique<WriteReq>();
  req->data.reserve(total - done);
  size_t skip = done;
  for (unsigned i = 0; i < count; ++i) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    req->data.append(bufs[i].base + skip, bufs[i].len - skip);
    skip = 0;
  }
  return enqueue(core_, std::move(req));
}

int Stream::writeOwned(std::string bytes) {
  if (core_ == nullptr || core_->closing) return status_ != 0 ? status_ : UV_ECANCELED;
  if (bytes.empty()) return 0;
  uv_buf_t all = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
  size_t done = 0;
  if (int r = tryFirst(core_, &all, 1, done); r != 0 || done == bytes.size()) return r;
  // The rest stays in the caller's buffer, moved into the request: no copy at any size.
  auto req = std::make_unique<WriteReq>();
  req->data = std::move(bytes);
  req->offset = done;
  return enqueue(core_, std::move(req));
}

size_t Stream::pending() const { return core_ != nullptr ? core_->pending : 0; }
uint64_t Stream::written() const { return core_ != nullptr ? core_->written : 0; }

}  // namespace tether::uv
