#include "tether/solverd/spare_pool.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"
#include "tether/solverd/fork_server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace tether::solverd {
namespace {

namespace sv = agent::supervise;

// A spare that dies sooner than this after its start counts towards the back-off: the binary
// (or its libraries, or the machine) is broken, and starting it again at once would only fail
// again. One that lived longer was killed or crashed for its own reasons: replaced at once.
constexpr uint64_t kQuickDeathNs = 1'000'000'000;
constexpr std::chrono::milliseconds kBackoffFirst{100};
constexpr std::chrono::milliseconds kBackoffMax{10'000};
constexpr size_t kMaxStderrLine = 4096;
// Target::spawn blocks the event loop until the child has exec'd: about 1 ms on an idle machine,
// nearer 5 ms beside a running solve on 2 cores; and an exec'd spare then needs some ms of CPU
// to load its libraries before it is warm. While other spares are ready, a spare handed to a job
// is replaced when that job ends (jobEnded) or this long after it began, whichever comes first,
// so that a small solve does not wait behind the spawn of its replacement (a long one does not
// notice it). The last ready spare is replaced at once: the next job needs it warm.
constexpr std::chrono::milliseconds kRefillDelay{20};

}  // namespace

sv::Result<WorkerProcess> spawnWorker(uv_loop_t* loop, const sv::CgroupTree* tree, const WorkerOptions& options,
                                      const std::string& id, const std::string& cgroup_name, ForkServer* fork_server) {
  WorkerProcess process;
  process.hooks = std::make_unique<WorkerProcess::Hooks>();
  WorkerProcess::Hooks* hooks = process.hooks.get();

  sv::Target::Options target_options;
  target_options.id = id;
  target_options.cgroup_name = cgroup_name;
  target_options.max_grace_ms = static_cast<uint64_t>(options.max_grace.count());
  target_options.limits = options.limits;
  // The ladder's interrupt is a frame, never a signal: CBC and CLP install their own SIGINT
  // handlers (DESIGN.md "Worker protocol"). A spare has no job to interrupt: it is retired with
  // a kill.
  target_options.interrupt = [hooks](sv::Target& target) {
    return hooks->interrupt ? hooks->interrupt(target) : sv::errnoError(EINVAL, "interrupt a spare worker");
  };
  // Called once; the owner's callback may destroy the process (and these hooks) while it runs,
  // so it runs from a local.
  target_options.on_done = [hooks](sv::Target& target, const sv::Outcome& outcome) {
    auto done = std::move(hooks->on_done);
    if (done) done(target, outcome);
  };

  sv::SpawnOptions spawn;
  spawn.argv.push_back(options.worker_path);
  for (const auto& arg : options.extra_args) spawn.argv.push_back(arg);
  spawn.stdin_mode = sv::Stdio::kPipe;
  spawn.stdout_mode = sv::Stdio::kPipe;
  spawn.stderr_mode = sv::Stdio::kPipe;

  // Forked: the same cgroup, pipes and watch as exec'd (Target::start), the child made by the fork
  // server from the cgroup's directory and the pipes' child ends.
  auto spawned = fork_server != nullptr
                     ? sv::Target::start(loop, tree, std::move(target_options),
                                         {spawn.stdin_mode, spawn.stdout_mode, spawn.stderr_mode},
                                         [fork_server](int cgroup_fd, const std::array<int, 3>& stdio) {
                                           return fork_server->fork(cgroup_fd, stdio);
                                         })
                     : sv::Target::spawn(loop, tree, std::move(target_options), spawn);
  if (!spawned) return spawned.error();
  process.target = std::move(spawned.value());
  process.stdout_pipe = process.target->takeStdoutPipe();
  process.stderr_pipe = process.target->takeStderrPipe();
  if (!process.stdout_pipe || !process.stderr_pipe) {
    // The Target could not open a pipe on the loop: without them the worker is unusable (its
    // destructor kills it).
    return sv::errnoError(EPIPE, "open the worker's pipes");
  }
  process.started_ns = monotonicNs();
  return process;
}

void StderrLog::start(uv::Handle<uv_pipe_t>& pipe, std::string who, int pid) {
  who_ = std::move(who);
  pid_ = pid;
  pipe->data = this;
  uv_read_start(
      pipe.stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<StderrLog*>(h->data);
        *buf = uv_buf_init(self->buf_.data(), static_cast<unsigned>(self->buf_.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<StderrLog*>(s->data);
        if (nread < 0) {
          uv_read_stop(s);
          self->flush();
          return;
        }
        for (ssize_t i = 0; i < nread; ++i) {
          char c = buf->base[i];
          if (c == '\n' || self->line_.size() >= kMaxStderrLine) {
            self->flush();
            if (c == '\n') continue;
          }
          self->line_ += c;
        }
      });
}

void StderrLog::stop(uv::Handle<uv_pipe_t>& pipe) {
  if (pipe) uv_read_stop(pipe.stream());
  flush();
}

void StderrLog::flush() {
  if (line_.empty()) return;
  log::get("worker")->info("{} pid={} stderr: {}", who_, pid_, line_);
  line_.clear();
}

struct SparePool::Spare {
  WorkerProcess process;
  uint64_t number = 0;
  bool retiring = false;
  StderrLog stderr_log;

  std::string name() const { return "spare-" + std::to_string(number); }
};

SparePool::SparePool(uv_loop_t* loop, const sv::CgroupTree* tree, WorkerOptions options)
    : loop_(loop), tree_(tree), options_(std::move(options)) {
  refill_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  refill_timer_->get()->data = this;
  configureForkServer();
  schedule(std::chrono::milliseconds(0));
}

SparePool::~SparePool() = default;

size_t SparePool::alive() const {
  return ready_.size() + retiring_.size() + (fork_server_ ? fork_server_->alive() : 0);
}

void SparePool::configureForkServer() {
  // Only where spares run in cgroups: the fork server clones into a cgroup's directory.
  const bool wanted = options_.fork_spares && options_.spare_workers > 0 && tree_ != nullptr && tree_->available();
  if (fork_server_) {
    // A reload: a new server (the binary may have changed), or none (restart() starts none when
    // the options say so; the old one is killed either way).
    fork_server_->restart(options_);
  } else if (wanted) {
    fork_server_ = std::make_unique<ForkServer>(loop_, tree_, options_, [this] { schedule(std::chrono::milliseconds(0)); });
  }
}

void SparePool::schedule(std::chrono::milliseconds delay) {
  if (stopped_ || !*refill_timer_ || ready_.size() >= options_.spare_workers) return;
  // An earlier start stands, and so does a back-off in progress (failed() re-arms it itself).
  if (timer_armed_ && (failures_ > 1 || uv_timer_get_due_in(refill_timer_->get()) <= static_cast<uint64_t>(delay.count()))) {
    return;
  }
  timer_armed_ = true;
  uv_timer_start(
      refill_timer_->get(), [](uv_timer_t* t) { static_cast<SparePool*>(t->data)->onRefillTimer(); },
      static_cast<uint64_t>(delay.count()), 0);
}

void SparePool::onRefillTimer() {
  timer_armed_ = false;
  // The fork server's announcement (or its failure) reschedules us: no turn of the loop is spent
  // polling for it.
  if (fork_server_ && fork_server_->worthWaiting()) return;
  startOne();
  // One spawn per turn of the loop: `spare_workers 64` must not hold up requests for 64 spawns.
  if (!timer_armed_) schedule(std::chrono::milliseconds(0));
}

void SparePool::startOne() {
  if (stopped_ || ready_.size() >= options_.spare_workers) return;
  // A fork server that is starting is worth the wait (a few ms; its announcement reschedules us);
  // one that is down is not: exec.
  if (fork_server_ && fork_server_->worthWaiting()) return;
  auto spare = std::make_unique<Spare>();
  spare->number = next_number_++;
  uint64_t spawn_ns = monotonicNs();
  ForkServer* fork_server = fork_server_ && fork_server_->ready() ? fork_server_.get() : nullptr;
  auto spawned = spawnWorker(loop_, tree_, options_, spare->name(), "job-" + spare->name(), fork_server);
  if (!spawned && fork_server != nullptr) {
    // The fork server logged what it makes of the failure; this spare is exec'd.
    log::get("worker")->debug("{}: the fork server could not make it ({}); exec'd instead", spare->name(),
                              spawned.error().message());
    fork_server = nullptr;
    spawned = spawnWorker(loop_, tree_, options_, spare->name(), "job-" + spare->name());
  }
  if (!spawned) {
    ++stats_.died;
    failed(fmt::format("cannot start spare worker {}: {}", options_.worker_path, spawned.error().message()), 0);
    return;
  }
  spare->process = std::move(spawned.value());
  Spare* raw = spare.get();
  raw->process.hooks->on_done = [this, raw](sv::Target&, const sv::Outcome& outcome) { onSpareDone(raw, outcome); };
  raw->stderr_log.start(*raw->process.stderr_pipe, raw->name(), raw->process.target->pid());
  ++stats_.started;
  if (fork_server != nullptr) ++stats_.forked;
  log::get("worker")->debug("{} pid={} started in {} ({} {:.3f} ms)", raw->name(), raw->process.target->pid(),
                            raw->process.target->inCgroup() ? raw->process.target->cgroupPath() : "no cgroup",
                            fork_server != nullptr ? "fork" : "exec",
                            static_cast<double>(raw->process.started_ns - spawn_ns) / 1e6);
  ready_.push_back(std::move(spare));
  changed();
}

std::optional<WorkerProcess> SparePool::take() {
  if (stopped_ || ready_.empty()) return std::nullopt;
  std::unique_ptr<Spare> spare = std::move(ready_.front());
  ready_.pop_front();
  spare->stderr_log.stop(*spare->process.stderr_pipe);
  WorkerProcess process = std::move(spare->process);
  process.hooks->on_done = nullptr;  // the taker sets its own
  ++stats_.taken;
  failures_ = 0;
  schedule(ready_.empty() ? std::chrono::milliseconds(0) : kRefillDelay);
  return process;
}

void SparePool::jobEnded() {
  // Sooner than kRefillDelay, if a replacement is pending.
  if (timer_armed_) schedule(std::chrono::milliseconds(0));
}

void SparePool::retireAll(const char* why) {
  for (auto& spare : ready_) {
    spare->retiring = true;
    ++stats_.retired;
    log::get("worker")->debug("{} pid={} retired ({})", spare->name(), spare->process.target->pid(), why);
    // Nothing to lose in a spare: cgroup.kill, and the cgroup goes with its Target's end.
    spare->process.target->cancel(sv::CancelAction::Kill, 0, "retired");
  }
  retiring_.splice(retiring_.end(), ready_);
  changed();
}

void SparePool::setOptions(WorkerOptions options) {
  options_ = std::move(options);
  if (stopped_) return;
  retireAll("reload");
  configureForkServer();
  failures_ = 0;  // perhaps a new binary: give it a fresh start
  if (timer_armed_) {
    uv_timer_stop(refill_timer_->get());
    timer_armed_ = false;
  }
  schedule(std::chrono::milliseconds(0));
}

void SparePool::stop(std::function<void()> on_empty) {
  if (stopped_) return;
  stopped_ = true;
  on_empty_ = std::move(on_empty);
  retireAll("drain");
  refill_timer_->close();
  timer_armed_ = false;
  if (fork_server_) fork_server_->stop([this] { maybeEmpty(); });
  maybeEmpty();
}

void SparePool::maybeEmpty() {
  if (!stopped_ || alive() != 0 || !on_empty_) return;
  auto on_empty = std::move(on_empty_);
  on_empty_ = nullptr;
  on_empty();
}

void SparePool::failed(const std::string& what, uint64_t lived_ns) {
  failures_ = lived_ns < kQuickDeathNs ? failures_ + 1 : 1;
  std::chrono::milliseconds delay{0};
  if (failures_ > 1) {
    unsigned shift = std::min(failures_ - 2, 16U);
    delay = std::min<std::chrono::milliseconds>(kBackoffMax, kBackoffFirst * (int64_t{1} << shift));
  }
  auto logger = log::get("worker");
  if (delay.count() == 0) {
    logger->warn("{}; starting a replacement", what);
  } else {
    logger->warn("{}; {} failures in a row, next spare in {} ms", what, failures_, delay.count());
  }
  if (timer_armed_) {
    uv_timer_stop(refill_timer_->get());
    timer_armed_ = false;
  }
  schedule(delay);
}

void SparePool::onSpareDone(Spare* spare, const sv::Outcome& outcome) {
  // Looked up in both lists: retireAll() marks a spare before it moves it.
  auto same = [spare](const auto& s) { return s.get() == spare; };
  SpareList* list = &ready_;
  auto it = std::find_if(ready_.begin(), ready_.end(), same);
  if (it == ready_.end()) {
    list = &retiring_;
    it = std::find_if(retiring_.begin(), retiring_.end(), same);
    if (it == retiring_.end()) return;  // cannot happen: a spare is in one list until its end
  }
  std::unique_ptr<Spare> owned = std::move(*it);
  list->erase(it);
  // Its last words first, then the Target goes (allowed inside on_done).
  if (spare->process.stderr_pipe) spare->stderr_log.stop(*spare->process.stderr_pipe);
  if (!owned->retiring) {
    ++stats_.died;
    uint64_t lived_ns = outcome.done_ns > owned->process.started_ns ? outcome.done_ns - owned->process.started_ns : 0;
    failed(fmt::format("{} pid={} exited before it was given a job ({}) after {:.1f} ms", owned->name(), outcome.pid,
                       outcome.status.describe(), static_cast<double>(lived_ns) / 1e6),
           lived_ns);
    changed();
  }
  owned.reset();
  maybeEmpty();
}

}  // namespace tether::solverd
