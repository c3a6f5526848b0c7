#include "tether/solverd/worker_runner.hpp"

#include "tether/agent/control/frame.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/common/uv_stream.hpp"
#include "tether/solverd/worker/protocol.hpp"

#include <array>
#include <cerrno>
#include <cmath>
#include <optional>
#include <utility>

namespace tether::solverd {
namespace {

namespace sv = agent::supervise;
using agent::control::FrameDecoder;
using agent::control::ProtocolError;

constexpr size_t kMaxStderrLine = 4096;

// Worker error frames to HTTP: the model or the request was at fault, or the solver.
int httpStatusOf(const std::string& name) {
  worker::ErrorCode code = worker::ErrorCode::SolverError;
  if (!worker::parseErrorCode(name, code)) return 500;
  switch (code) {
    case worker::ErrorCode::InvalidModel: return 400;
    case worker::ErrorCode::UnknownSolver:
    case worker::ErrorCode::UnknownOption:
    case worker::ErrorCode::InvalidOption: return 422;
    default: return 500;
  }
}

}  // namespace

// The worker's stdin is written through uv::Stream (the one write path): a solve frame the pipe
// does not take at once is queued without a copy (writeOwned).
class WorkerRunner::Session final : private uv::StreamEvents {
 public:
  Session(WorkerRunner& runner, Job& job) : runner_(runner), job_(job), decoder_(worker::kMaxWorkerFrameLength) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string start();
  void cancel(const CancelOrder& order);

  Job& job() { return job_; }
  Outcome takeOutcome() { return std::move(outcome_); }
  bool crashed() const { return crashed_; }

 private:
  sv::Error writeFrame(const nlohmann::json& frame);
  void onStdout(ssize_t nread, const uv_buf_t* buf);
  void onStderr(ssize_t nread, const uv_buf_t* buf);
  void onFrame(nlohmann::json frame);
  void onTimeLimit();
  void onTargetDone(const sv::Outcome& outcome);
  void maybeFinish();
  Outcome buildOutcome(const sv::Outcome& exit);

  WorkerRunner& runner_;
  Job& job_;
  std::unique_ptr<WorkerProcess::Hooks> hooks_;  // before target_: the Target calls it
  std::unique_ptr<sv::Target> target_;
  // uv::StreamEvents of stdin: nothing is read from it, and a failed write means the worker is
  // gone, which its Target reports (on_done).
  void onRead(ssize_t, const char*) override {}
  void onWriteFailed(int) override {}

  std::unique_ptr<uv::Stream> stdin_;
  std::unique_ptr<uv::Handle<uv_pipe_t>> stdout_, stderr_;
  std::unique_ptr<uv::Handle<uv_timer_t>> time_limit_timer_;
  FrameDecoder decoder_;
  std::array<char, 64 * 1024> stdout_buf_{};
  std::array<char, 4 * 1024> stderr_buf_{};
  std::string stderr_line_;
  std::optional<nlohmann::json> result_;
  std::optional<nlohmann::json> error_;
  std::string protocol_error_;
  std::optional<sv::Outcome> exit_;
  bool stdout_done_ = false;
  bool finished_ = false;
  bool crashed_ = false;
  Outcome outcome_;
};

std::string WorkerRunner::Session::start() {
  const WorkerOptions& opts = runner_.options_;
  // A warm spare when one is ready (its own fresh cgroup, already waiting for the frame); else
  // a worker started for this job, as without spares.
  std::optional<WorkerProcess> process = runner_.spares_.take();
  job_.spare = process.has_value();
  if (!process) {
    auto spawned = spawnWorker(runner_.loop_, runner_.tree_, opts, job_.id);
    if (!spawned) return "cannot start " + opts.worker_path + ": " + spawned.error().message();
    process = std::move(spawned.value());
  }
  hooks_ = std::move(process->hooks);
  hooks_->interrupt = [this](sv::Target&) { return writeFrame(worker::interruptFrame()); };
  hooks_->on_done = [this](sv::Target&, const sv::Outcome& outcome) { onTargetDone(outcome); };
  target_ = std::move(process->target);
  stdin_ = target_->takeStdinStream(*this);
  stdout_ = std::move(process->stdout_pipe);
  stderr_ = std::move(process->stderr_pipe);
  job_.worker_pid = target_->pid();
  job_.cgroup = target_->cgroupPath();

  stdout_->get()->data = this;
  uv_read_start(
      stdout_->stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Session*>(h->data);
        *buf = uv_buf_init(self->stdout_buf_.data(), static_cast<unsigned>(self->stdout_buf_.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) { static_cast<Session*>(s->data)->onStdout(nread, buf); });
  stderr_->get()->data = this;
  uv_read_start(
      stderr_->stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Session*>(h->data);
        *buf = uv_buf_init(self->stderr_buf_.data(), static_cast<unsigned>(self->stderr_buf_.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) { static_cast<Session*>(s->data)->onStderr(nread, buf); });

  // The solve frame can be as large as the model (client_max_body_size), beyond the control
  // protocol's 1 MiB: the worker's decoder accepts it from its parent.
  const int rc = stdin_ ? stdin_->writeOwned(solveFrameBytes(job_.spec)) : UV_EPIPE;
  if (rc < 0) {
    // The worker is running; it sees no solve frame, so stop it and report through on_done.
    target_->cancel(sv::CancelAction::Kill, 0, "spawn_failed");
    protocol_error_ = std::string("cannot write the solve frame: ") + uv_strerror(rc);
  }

  // The worker keeps its own time limit; this is the backstop for one that does not stop.
  double limit_ms = job_.spec.timeLimitSeconds() * 1000.0 + static_cast<double>(opts.time_limit_grace.count());
  time_limit_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(runner_.loop_);
  time_limit_timer_->get()->data = this;
  uv_timer_start(
      time_limit_timer_->get(), [](uv_timer_t* t) { static_cast<Session*>(t->data)->onTimeLimit(); },
      static_cast<uint64_t>(std::llround(limit_ms)), 0);
  return {};
}

sv::Error WorkerRunner::Session::writeFrame(const nlohmann::json& frame) {
  if (!stdin_ || !*stdin_) return sv::errnoError(EPIPE, "write to the worker's stdin");
  if (int rc = stdin_->writeOwned(agent::control::encodeFrame(frame)); rc < 0) {
    return sv::errnoError(-rc, "write to the worker's stdin");
  }
  return {};
}

void WorkerRunner::Session::cancel(const CancelOrder& order) {
  if (!target_ || exit_) return;
  const auto grace_ms = static_cast<uint64_t>(order.grace.count());
  if (order.replace_grace) {
    target_->regrace(grace_ms);
  } else {
    target_->cancel(order.action, grace_ms, order.reason);
  }
}

void WorkerRunner::Session::onTimeLimit() {
  if (!target_ || exit_) return;
  if (!job_.cancel) {
    job_.cancel.emplace();
    job_.cancel->action = CancelAction::Kill;
    job_.cancel->reason = reasonName(Reason::TimeLimit);
    job_.cancel->received_ns = monotonicNs();
  }
  log::get("job")->warn("job={} worker pid={} still running {} ms past its time limit: killing it", job_.id,
                        job_.worker_pid, runner_.options_.time_limit_grace.count());
  target_->cancel(CancelAction::Kill, 0, reasonName(Reason::TimeLimit));
}

void WorkerRunner::Session::onStdout(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    uv_read_stop(stdout_->stream());
    stdout_done_ = true;
    maybeFinish();  // may destroy this session
    return;
  }
  decoder_.feed(std::string_view(buf->base, static_cast<size_t>(nread)));
  for (;;) {
    nlohmann::json frame;
    ProtocolError error;
    auto r = decoder_.next(frame, error);
    if (r == FrameDecoder::Result::NeedMore) return;
    if (r == FrameDecoder::Result::Error) {
      // A worker that breaks the protocol cannot be trusted to stop on a frame either.
      protocol_error_ = "bad frame from the worker: " + error.message;
      uv_read_stop(stdout_->stream());
      if (target_ && !exit_) target_->cancel(sv::CancelAction::Kill, 0, "protocol_error");
      stdout_done_ = true;
      maybeFinish();
      return;
    }
    onFrame(std::move(frame));
  }
}

void WorkerRunner::Session::onFrame(nlohmann::json frame) {
  std::string type = frame.value("type", std::string{});
  if (type == "result") {
    result_ = std::move(frame);
  } else if (type == "error") {
    error_ = std::move(frame);
  } else if (type == "log" || type == "incumbent") {
    runner_.table_->workerEvent(job_, frame);
  }
  // Unknown frame types are ignored, as the control protocol ignores unknown fields.
}

void WorkerRunner::Session::onStderr(ssize_t nread, const uv_buf_t* buf) {
  auto logger = log::get("worker");
  if (nread < 0) {
    uv_read_stop(stderr_->stream());
    if (!stderr_line_.empty()) logger->info("job={} pid={} stderr: {}", job_.id, job_.worker_pid, stderr_line_);
    stderr_line_.clear();
    return;
  }
  for (ssize_t i = 0; i < nread; ++i) {
    char c = buf->base[i];
    if (c == '\n' || stderr_line_.size() >= kMaxStderrLine) {
      logger->info("job={} pid={} stderr: {}", job_.id, job_.worker_pid, stderr_line_);
      stderr_line_.clear();
      if (c == '\n') continue;
    }
    stderr_line_ += c;
  }
}

void WorkerRunner::Session::onTargetDone(const sv::Outcome& outcome) {
  exit_ = outcome;
  if (time_limit_timer_) time_limit_timer_->close();
  maybeFinish();  // may destroy this session, and the Target with it (allowed in on_done)
}

void WorkerRunner::Session::maybeFinish() {
  // Both: the worker's last bytes are read (EOF on stdout) and its cgroup is empty. The order
  // varies: the pidfd often fires before the pipe's remaining bytes are read.
  if (finished_ || !exit_ || !stdout_done_) return;
  finished_ = true;
  outcome_ = buildOutcome(*exit_);
  runner_.sessionDone(*this);
}

Outcome WorkerRunner::Session::buildOutcome(const sv::Outcome& exit) {
  uint64_t now = monotonicNs();
  job_.cpu_us = exit.cpu_usec.value_or(0);
  if (exit.cancel) {
    if (!job_.cancel) job_.cancel = *exit.cancel;
    job_.cancel->signalled_ns = exit.cancel->signalled_ns;
    job_.cancel->killed_ns = exit.cancel->killed_ns;
    job_.cancel->exited_ns = exit.cancel->exited_ns != 0 ? exit.cancel->exited_ns : exit.done_ns;
  }
  double cpu_ms = static_cast<double>(job_.cpu_us) / 1000.0;

  if (result_) {
    nlohmann::json body = std::move(*result_);
    body.erase("type");
    body["cpu_ms"] = cpu_ms;
    if (!body.contains("solver")) body["solver"] = job_.spec.solver;
    return Outcome{200, std::move(body)};
  }
  if (error_) {
    std::string code = error_->value("code", std::string(worker::errorCodeName(worker::ErrorCode::SolverError)));
    return Outcome{httpStatusOf(code), {{"error", code}, {"message", error_->value("message", std::string{})}}};
  }
  if (!protocol_error_.empty()) {
    return Outcome{500, {{"error", "worker_failed"}, {"message", protocol_error_}}};
  }

  // No result: we stopped it by force, or it died on its own.
  bool killed_by_us = exit.cancel && exit.cancel->killed_ns != 0;
  const bool exited = exit.status.kind == sv::ExitStatus::Kind::kExited;
  bool timed_out = (job_.cancel && job_.cancel->reason == reasonName(Reason::TimeLimit)) ||
                   (exited && exit.status.code == worker::kExitTimeout);
  std::optional<worker::Status> status;  // none: crashed, which has no status code
  if (killed_by_us && timed_out) {
    status = worker::Status::TimeLimit;
  } else if (killed_by_us || (job_.cancel && exited && exit.status.code == worker::kExitSuccess)) {
    status = worker::Status::Interrupted;
  } else if (timed_out) {
    status = worker::Status::TimeLimit;
  } else {
    crashed_ = true;
  }
  nlohmann::json body{{"status", status ? worker::statusName(*status) : "crashed"},
                      {"status_code", status ? nlohmann::json(worker::statusCode(*status)) : nlohmann::json(nullptr)},
                      {"objective", nullptr},
                      {"bound", nullptr},
                      {"solution", nlohmann::json::object()},
                      {"solver", job_.spec.solver},
                      {"solve_time_ms", static_cast<double>(now - job_.started_ns) / 1e6},
                      {"solve_time_us", (now - job_.started_ns) / 1'000},
                      {"cpu_ms", cpu_ms},
                      {"nodes", 0},
                      {"iterations", 0},
                      {"exit", exit.status.describe()}};
  // The best we know: the last incumbent the worker streamed before it went.
  if (!job_.last_incumbent.is_null()) {
    body["objective"] = job_.last_incumbent.value("objective", nlohmann::json(nullptr));
    body["bound"] = job_.last_incumbent.value("bound", nlohmann::json(nullptr));
  }
  return Outcome{200, std::move(body)};
}

WorkerRunner::WorkerRunner(uv_loop_t* loop, const agent::supervise::CgroupTree* tree, WorkerOptions options)
    : loop_(loop), tree_(tree), options_(std::move(options)), spares_(loop, tree, options_) {}

void WorkerRunner::setOptions(WorkerOptions options) {
  options_ = std::move(options);
  spares_.setOptions(options_);
}

WorkerRunner::~WorkerRunner() = default;

std::string WorkerRunner::start(Job& job) {
  auto session = std::make_unique<Session>(*this, job);
  Session* s = session.get();
  sessions_[job.id] = std::move(session);
  std::string why = s->start();
  if (!why.empty()) sessions_.erase(job.id);
  return why;
}

void WorkerRunner::cancel(Job& job, const CancelOrder& order) {
  auto it = sessions_.find(job.id);
  if (it != sessions_.end()) it->second->cancel(order);
}

void WorkerRunner::sessionDone(Session& session) {
  Job& job = session.job();
  Outcome outcome = session.takeOutcome();
  if (session.crashed()) ++crashes_;
  spares_.jobEnded();
  // Destroys the session, its pipes and its Target (we are inside the Target's on_done or a
  // pipe's read callback; both allow it).
  sessions_.erase(job.id);
  table_->workerDone(job, std::move(outcome));
}

}  // namespace tether::solverd
