#include "tether/solverd/spare_pool.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"

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
                                      const std::string& id, const std::string& cgroup_name) {
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

  auto spawned = sv::Target::spawn(loop, tree, std::move(target_options), spawn);
  if (!spawned) return spawned.error();
  process.target = std::move(spawned.value());
  process.stdin_pipe = process.target->takeStdinPipe();
  process.stdout_pipe = process.target->takeStdoutPipe();
  process.stderr_pipe = process.target->takeStderrPipe();
  if (!process.stdin_pipe || !process.stdout_pipe || !process.stderr_pipe) {
    // The Target could not open a pipe on the loop: without them the worker is unusable (its
    // destructor kills it).
    return sv::errnoError(EPIPE, "open the worker's pipes");
  }
  process.started_ns = monotonicNs();
  return process;
}

struct SparePool::Spare {
  WorkerProcess process;
  uint64_t number = 0;
  bool retiring = false;
  std::array<char, 4096> stderr_buf{};
  std::string stderr_line;

  std::string name() const { return "spare-" + std::to_string(number); }
  void flushStderr() {
    if (stderr_line.empty()) return;
    log::get("worker")->info("{} pid={} stderr: {}", name(), process.target->pid(), stderr_line);
    stderr_line.clear();
  }
};

SparePool::SparePool(uv_loop_t* loop, const sv::CgroupTree* tree, WorkerOptions options)
    : loop_(loop), tree_(tree), options_(std::move(options)) {
  refill_timer_ = std::make_unique<UvHandle<uv_timer_t>>();
  uv_timer_init(loop_, refill_timer_->get());
  refill_timer_->markInitialized();
  refill_timer_->get()->data = this;
  schedule(std::chrono::milliseconds(0));
}

SparePool::~SparePool() = default;

void SparePool::schedule(std::chrono::milliseconds delay) {
  if (stopped_ || !refill_timer_->active() || ready_.size() >= options_.spare_workers) return;
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
  startOne();
  // One spawn per turn of the loop: `spare_workers 64` must not hold up requests for 64 spawns.
  if (!timer_armed_) schedule(std::chrono::milliseconds(0));
}

void SparePool::startOne() {
  if (stopped_ || ready_.size() >= options_.spare_workers) return;
  auto spare = std::make_unique<Spare>();
  spare->number = next_number_++;
  uint64_t spawn_ns = monotonicNs();
  auto spawned = spawnWorker(loop_, tree_, options_, spare->name(), "job-" + spare->name());
  if (!spawned) {
    ++stats_.died;
    failed(fmt::format("cannot start spare worker {}: {}", options_.worker_path, spawned.error().message()), 0);
    return;
  }
  spare->process = std::move(spawned.value());
  Spare* raw = spare.get();
  raw->process.hooks->on_done = [this, raw](sv::Target&, const sv::Outcome& outcome) { onSpareDone(raw, outcome); };
  // Read while it waits: what a failing binary says (the dynamic linker, a sanitizer) is the
  // reason of its death.
  uv_pipe_t* err = raw->process.stderr_pipe->get();
  err->data = raw;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(err),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* s = static_cast<Spare*>(h->data);
        *buf = uv_buf_init(s->stderr_buf.data(), static_cast<unsigned>(s->stderr_buf.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* waiting = static_cast<Spare*>(s->data);
        if (nread < 0) {
          uv_read_stop(s);
          waiting->flushStderr();
          return;
        }
        for (ssize_t i = 0; i < nread; ++i) {
          char c = buf->base[i];
          if (c == '\n' || waiting->stderr_line.size() >= kMaxStderrLine) {
            waiting->flushStderr();
            if (c == '\n') continue;
          }
          waiting->stderr_line += c;
        }
      });
  ++stats_.started;
  log::get("worker")->debug("{} pid={} started in {} (spawn {:.3f} ms)", raw->name(), raw->process.target->pid(),
                            raw->process.target->inCgroup() ? raw->process.target->cgroupPath() : "no cgroup",
                            static_cast<double>(raw->process.started_ns - spawn_ns) / 1e6);
  ready_.push_back(std::move(spare));
  changed();
}

std::optional<WorkerProcess> SparePool::take() {
  if (stopped_ || ready_.empty()) return std::nullopt;
  std::unique_ptr<Spare> spare = std::move(ready_.front());
  ready_.pop_front();
  uv_read_stop(spare->process.stderr_pipe->stream());
  spare->flushStderr();
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
  if (spare->process.stderr_pipe && spare->process.stderr_pipe->active()) {
    uv_read_stop(spare->process.stderr_pipe->stream());
  }
  spare->flushStderr();
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
