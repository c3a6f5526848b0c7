#include "tether/solverd/worker/worker.hpp"

#include "tether/agent/control/frame.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"
#include "tether/solverd/worker/backend.hpp"
#include "tether/solverd/worker/model_reader.hpp"
#include "tether/solverd/worker/protocol.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tether::solverd::worker {
namespace {

namespace control = tether::agent::control;

// Writes whole frames; the solving thread (log, incumbent, result) is its main user. A failed
// write means solverd no longer reads us: the solve is interrupted, nobody wants its answer.
class FrameWriter {
 public:
  FrameWriter(int fd, std::atomic<bool>* interrupt) : fd_(fd), interrupt_(interrupt) {}

  bool write(const nlohmann::json& frame) {
    // `replace`: a solver message or a variable name with invalid UTF-8 must not throw here.
    std::string bytes = control::encodeRawFrame(
        frame.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    std::lock_guard lock(mutex_);
    if (broken_) return false;
    const char* p = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        broken_ = true;
        error_ = n < 0 ? errno : EPIPE;
        interrupt_->store(true);
        return false;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return true;
  }

  // 0, or the errno of the write that failed.
  int error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  int fd_;
  std::atomic<bool>* interrupt_;
  std::mutex mutex_;
  bool broken_ = false;
  int error_ = 0;
};

// One owner for a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The worker's inputs: frames on stdin, SIGTERM on a signalfd, and a wake-up from the main
// thread when the solve is over (so that the reader thread can be joined).
class Input {
 public:
  enum class Event { Frame, EndOfInput, BadFrame, Terminate, Wake };

  Input(int in_fd, int signal_fd, int wake_fd)
      : in_fd_(in_fd), signal_fd_(signal_fd), wake_fd_(wake_fd), decoder_(kMaxWorkerFrameLength) {}

  // Waits for the next event. After EndOfInput or BadFrame stdin is not watched any more.
  Event next(nlohmann::json& frame, std::string& why) {
    for (;;) {
      if (in_open_) {
        control::ProtocolError error;
        switch (decoder_.next(frame, error)) {
          case control::FrameDecoder::Result::Frame: return Event::Frame;
          case control::FrameDecoder::Result::Error:
            in_open_ = false;
            why = error.message;
            return Event::BadFrame;
          case control::FrameDecoder::Result::NeedMore: break;
        }
      }
      pollfd fds[3] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {in_open_ ? in_fd_ : -1, POLLIN, 0}};
      int n = ::poll(fds, 3, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        why = std::string("poll: ") + std::strerror(errno);
        in_open_ = false;
        return Event::EndOfInput;
      }
      if (fds[0].revents != 0) {
        signalfd_siginfo info{};
        if (::read(signal_fd_, &info, sizeof info) > 0) return Event::Terminate;
      }
      if (fds[1].revents != 0) return Event::Wake;
      if (fds[2].revents != 0) {
        char buf[65536];
        ssize_t got = ::read(in_fd_, buf, sizeof buf);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) {
          in_open_ = false;
          why = got < 0 ? std::string("read: ") + std::strerror(errno) : "end of file";
          // Bytes of a frame that never completed are lost with the stream.
          return Event::EndOfInput;
        }
        decoder_.feed(std::string_view(buf, static_cast<size_t>(got)));
      }
    }
  }

 private:
  int in_fd_;
  int signal_fd_;
  int wake_fd_;
  bool in_open_ = true;
  control::FrameDecoder decoder_;
};

// The reader guard. The COIN-OR readers of Debian 12 crash on some malformed models (NULL
// dereferences in CoinMpsCardReader::nextField, out-of-bounds reads in CoinLpIO::fscanfLpIO,
// found by tests/solverd/worker_fuzz_readers.cpp; the clp and cbc programs crash on the same
// files). A model the reader cannot survive is an unreadable model: while the reader runs, a
// fatal signal writes a prepared invalid_model error frame and exits 1, so solverd answers 400
// instead of reporting a crashed worker. Outside the reader the signals keep their default
// action (a crash is a crash). Only async-signal-safe calls in the handler: write, _exit,
// signal, raise.
struct ReaderGuard {
  int fd = -1;
  std::string frame;  // complete frame bytes, prepared before arming
  volatile sig_atomic_t armed = 0;
};
ReaderGuard g_reader_guard;
constexpr int kGuardedSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

extern "C" void onFatalSignal(int sig) {
  if (g_reader_guard.armed != 0) {
    const char* p = g_reader_guard.frame.data();
    size_t left = g_reader_guard.frame.size();
    while (left > 0) {
      ssize_t n = ::write(g_reader_guard.fd, p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    static constexpr char kNote[] = "solverd-worker: the model reader crashed; reported as invalid_model\n";
    if (::write(STDERR_FILENO, kNote, sizeof kNote - 1) < 0) {
      // Nothing more to do about a lost diagnostic in a signal handler.
    }
    ::_exit(kExitInvalidInput);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Installs the handlers once, on an alternate stack (a reader that overflows its stack must
// still be reported).
void installReaderGuard(int out_fd, const SolveRequest& request) {
  std::string reader = readerFamily(request.solver) == ReaderFamily::Glpk
                           ? (request.format == ModelFormat::Lp ? "glp_read_lp" : "glp_read_mps")
                           : (request.format == ModelFormat::Lp ? "CoinLpIO" : "CoinMpsIO");
  g_reader_guard.fd = out_fd;
  g_reader_guard.frame = control::encodeRawFrame(
      errorFrame(ErrorCode::InvalidModel, "the model reader (" + reader + ") crashed on this model: it is not a valid " +
                                      (request.format == ModelFormat::Lp ? "CPLEX LP" : "MPS") + " file")
          .dump());
  static std::vector<char> alt_stack(std::max<size_t>(SIGSTKSZ, 64 * 1024));
  stack_t ss{};
  ss.ss_sp = alt_stack.data();
  ss.ss_size = alt_stack.size();
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa{};
  sa.sa_handler = onFatalSignal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kGuardedSignals) ::sigaction(sig, &sa, nullptr);
}

std::string jobTag(const SolveRequest& request) {
  return request.id.empty() ? std::string() : " job=" + request.id;
}

// The reader thread's loop: every way of saying "stop" sets the flag; only the main thread's
// wake-up ends it.
void watchInput(Input& input, std::atomic<bool>& interrupt, const std::string& tag) {
  auto logger = log::get("worker");
  nlohmann::json frame;
  std::string why;
  for (;;) {
    switch (input.next(frame, why)) {
      case Input::Event::Frame: {
        auto type = frame.find("type");
        if (isInterruptFrame(frame)) {
          if (!interrupt.exchange(true)) logger->info("interrupt frame received{}: stopping the solver", tag);
        } else {
          logger->warn("ignoring a frame of type {}{}", type != frame.end() ? type->dump() : "(none)", tag);
        }
        break;
      }
      case Input::Event::EndOfInput:
        if (!interrupt.exchange(true)) logger->info("stdin closed ({}){}: stopping the solver", why, tag);
        break;
      case Input::Event::BadFrame:
        if (!interrupt.exchange(true)) logger->warn("unreadable frame on stdin ({}){}: stopping the solver", why, tag);
        break;
      case Input::Event::Terminate:
        if (!interrupt.exchange(true)) logger->info("SIGTERM{}: stopping the solver", tag);
        break;
      case Input::Event::Wake: return;
    }
  }
}

int finish(FrameWriter& writer, const SolveOutcome& outcome, const std::string& tag) {
  auto logger = log::get("worker");
  switch (outcome.kind) {
    case SolveOutcome::Kind::Solved: {
      const SolveResult& r = outcome.result;
      writer.write(toJson(r));
      logger->info("result{} solver={} status={} objective={} solve_time_ms={} nodes={} iterations={}", tag,
                   solverName(r.solver), statusName(r.status),
                   r.objective ? std::to_string(*r.objective) : "none", r.solve_time_ms, r.nodes,
                   r.iterations);
      return r.status == Status::TimeLimit ? kExitTimeout : kExitSuccess;
    }
    case SolveOutcome::Kind::InvalidModel:
      writer.write(errorFrame(ErrorCode::InvalidModel, outcome.message));
      logger->info("invalid model{}: {}", tag, outcome.message);
      return kExitInvalidInput;
    case SolveOutcome::Kind::SolverError:
      writer.write(errorFrame(ErrorCode::SolverError, outcome.message));
      logger->error("solver error{}: {}", tag, outcome.message);
      return kExitSolverError;
  }
  return kExitSolverError;
}

}  // namespace

int runWorker(int in_fd, int out_fd) {
  auto logger = log::get("worker");
  std::atomic<bool> interrupt{false};
  FrameWriter writer(out_fd, &interrupt);

  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  Fd signal_fd(::signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (signal_fd.get() < 0 || wake_fd.get() < 0) {
    logger->error("cannot create a signalfd or an eventfd: {}", std::strerror(errno));
    writer.write(errorFrame(ErrorCode::SolverError, "the worker could not set up its inputs"));
    return kExitSolverError;
  }
  Input input(in_fd, signal_fd.get(), wake_fd.get());

  nlohmann::json frame;
  std::string why;
  switch (input.next(frame, why)) {
    case Input::Event::Frame: break;
    case Input::Event::BadFrame:
      writer.write(errorFrame(ErrorCode::BadMessage, why));
      logger->warn("unreadable first frame: {}", why);
      return kExitInvalidInput;
    case Input::Event::EndOfInput:
    case Input::Event::Terminate:
    case Input::Event::Wake:
      writer.write(errorFrame(ErrorCode::BadMessage, "no solve frame before the end of input or SIGTERM"));
      logger->info("stopped before a solve frame arrived");
      return kExitInvalidInput;
  }

  SolveRequest request;
  RequestError error;
  if (!parseSolveRequest(frame, request, error)) {
    writer.write(errorFrame(error.code, error.message));
    logger->info("refused the request: {} ({})", error.message, error.code);
    return kExitInvalidInput;
  }
  const std::string tag = jobTag(request);
  logger->info("solve{} solver={} format={} model_bytes={}", tag, solverName(request.solver),
               formatName(request.format), request.model.size());

  std::thread reader([&] { watchInput(input, interrupt, tag); });

  SolveHooks hooks;
  hooks.interrupt = &interrupt;
  hooks.start_ns = monotonicNs();
  hooks.on_log = [&writer](std::string_view line) { writer.write(logFrame(line)); };
  hooks.on_incumbent = [&writer](const Incumbent& found) { writer.write(toJson(found)); };
  installReaderGuard(out_fd, request);
  hooks.on_reading = [](bool now) { g_reader_guard.armed = now ? 1 : 0; };
  SolveOutcome outcome = solve(request, hooks);
  int code = finish(writer, outcome, tag);
  if (int err = writer.error(); err != 0) {
    logger->warn("stdout closed under us{} ({}): the result was not delivered", tag, std::strerror(err));
  }

  const uint64_t one = 1;
  if (::write(wake_fd.get(), &one, sizeof one) < 0) {
    // An eventfd write fails only on counter overflow, which one write cannot reach.
    logger->critical("cannot wake the reader thread: {}", std::strerror(errno));
    std::abort();
  }
  reader.join();
  return code;
}

int runWorkerOnStdio() {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  // Blocked before any thread exists, so that every thread (CBC's too) inherits the mask and
  // SIGTERM is only ever read from the signalfd.
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int in_fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
  int out_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (in_fd < 0 || out_fd < 0) {
    log::get("worker")->error("cannot duplicate stdin or stdout: {}", std::strerror(errno));
    return kExitSolverError;
  }
  Fd in(in_fd);
  Fd out(out_fd);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || ::dup2(devnull, STDIN_FILENO) < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    log::get("worker")->error("cannot move the protocol off stdin and stdout: {}", std::strerror(errno));
    return kExitSolverError;
  }
  if (devnull != STDIN_FILENO) ::close(devnull);
  return runWorker(in.get(), out.get());
}

}  // namespace tether::solverd::worker
