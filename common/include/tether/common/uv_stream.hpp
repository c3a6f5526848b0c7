#pragma once
// A connected TCP or unix stream with its write queue (issue 11), the one write path of every
// stream in tether: uv_try_write first, so a write the kernel takes whole costs no copy and no
// request; only the remainder (the unwritten tail of the writev pieces) is copied into one owned
// uv_write request, under backpressure. pending() counts those bytes; the owner hears when they
// drain, when a queued write completes with more still queued, and when one fails.
//
// Ownership follows uv::Handle (uv_kit.hpp): the constructor initialises the handle, and the
// handle and the write state are freed in the close callback, which libuv runs after every write
// and connect callback of the stream. So a callback never finds its owner freed:
//   - close() keeps the owner registered: it hears onClosed() from the close callback, after every
//     other callback, and may free itself there (the proxy's connections do);
//   - destroying the Stream (or its owner) detaches the owner: callbacks still owed by libuv
//     (cancelled writes) go nowhere.
// Writes after close() return UV_ECANCELED; callbacks of writes cancelled by the close are not
// reported (the owner asked for the close).
//
//   class Conn : public uv::StreamEvents { ... uv::Stream stream_{loop, uv::StreamKind::Tcp, *this}; };
//   stream_.setReadBuffer(ctx.read_buf, sizeof ctx.read_buf);  // e.g. one buffer per loop
//   stream_.readStart();
//   if (int rc = stream_.write(bufs, n); rc < 0) { ... }        // or later: onWriteFailed()
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::uv {

enum class StreamKind { Tcp, Pipe };

// What a Stream reports to its owner, always from a libuv callback (never from inside a call the
// owner made). Each callback may close the stream or destroy it (and its owner).
class StreamEvents {
 public:
  // connect() finished: 0, or a libuv error (UV_ECANCELED never arrives: see the class comment).
  virtual void onConnect(int status) { (void)status; }
  // `nread` > 0 bytes at `data` (the buffer given to setReadBuffer, valid during the call), or a
  // libuv error: UV_EOF, UV_ECONNRESET, ... Reads continue until readStop() or close().
  virtual void onRead(ssize_t nread, const char* data) = 0;
  // pending() went back to 0.
  virtual void onDrained() {}
  // A queued write completed and more is still queued (pending() > 0).
  virtual void onWriteProgress() {}
  // A queued write failed (UV_EPIPE, UV_ECONNRESET, ...); the stream is not closed by it.
  virtual void onWriteFailed(int status) = 0;
  // After close(): every callback of the stream has run; the owner may free itself here.
  virtual void onClosed() {}

 protected:
  ~StreamEvents() = default;
};

class Stream {
 public:
  // Initialises a uv_tcp_t or a uv_pipe_t (not for IPC) on `loop`; status() tells the result.
  // On failure nothing is left on the loop and every call returns the init's error.
  Stream(uv_loop_t* loop, StreamKind kind, StreamEvents& events);
  ~Stream();  // detaches the owner and closes
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&&) = delete;
  Stream& operator=(Stream&&) = delete;

  int status() const { return status_; }  // 0, or the init's libuv error
  StreamKind kind() const { return kind_; }
  // True from a successful init until close().
  explicit operator bool() const { return core_ != nullptr && !closing(); }
  bool closing() const;
  // The libuv handle, for what this class does not wrap (uv_accept, keepalive, getpeername);
  // null once closed. Its `data` belongs to this class.
  uv_stream_t* stream() const;
  uv_handle_t* raw() const { return reinterpret_cast<uv_handle_t*>(stream()); }
  uv_tcp_t* tcp() const;    // null for a pipe
  uv_pipe_t* pipe() const;  // null for TCP

  // Takes an open socket (uv_tcp_open / uv_pipe_open): the stream owns it from now on.
  int open(uv_os_fd_t fd);
  // Connects (a TCP stream to `addr`, a pipe to `path`); the outcome arrives in onConnect().
  // Writes may be issued before it completes: libuv queues them. Returns 0 or a libuv error.
  int connect(const sockaddr* addr);
  int connect(const char* path);

  // The buffer every read lands in (a per-loop buffer shared by many streams: each read is
  // consumed by onRead before the loop reads again). Set before readStart().
  void setReadBuffer(char* data, size_t size);
  // Both idempotent. readStart returns 0 or a libuv error (UV_EINVAL with no read buffer).
  int readStart();
  void readStop();
  bool reading() const;

  // Sends `bufs` in order after everything queued before. Returns 0 (written, or queued in one
  // owned copy) or a libuv error for a synchronous failure; asynchronous failures arrive in
  // onWriteFailed().
  int write(const uv_buf_t* bufs, unsigned count);
  int write(std::string_view bytes);
  // The same for a buffer the caller gives away (a solve frame as large as its model): what the
  // kernel does not take at once is queued without a copy.
  int writeOwned(std::string bytes);
  size_t pending() const;  // bytes queued, not yet written
  // Bytes the kernel has taken, in total: a write of N bytes has reached the kernel once this
  // passes the value it had before the write plus N (the control client's on_sent uses it).
  uint64_t written() const;

  // Closes; onClosed() follows from the close callback. Idempotent. (After closeLoop() has run,
  // the handle is closed already and onClosed() comes at once.)
  void close();

  struct Core;

 private:
  static void onHandleClosed(uv_handle_t* h);

  StreamKind kind_;
  int status_ = 0;
  Core* core_ = nullptr;  // freed in the close callback; null after it ran (or a failed init)
};

}  // namespace tether::uv
