#include "tether/solverd/job_table.hpp"

#include "tether/common/clock.hpp"
#include "tether/solverd/worker/protocol.hpp"

#include <algorithm>
#include <utility>

namespace tether::solverd {
namespace {

// Events kept per job for late watchers and Last-Event-ID: the newest of a running job, and of
// a finished job only its last incumbents (its log lines are dropped with its model).
constexpr size_t kKeptEvents = 256;
constexpr size_t kKeptEventsFinished = 64;
// Ids answering 410 after their result was dropped; beyond, the oldest answer 404 early.
constexpr size_t kGoneKept = 50'000;

uint64_t toNs(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * 1'000'000ULL; }

Outcome droppedOutcome(const Job& job, const CancelOrder& order) {
  return Outcome{200, nlohmann::json{{"status", worker::statusName(worker::Status::Interrupted)},
                                     {"status_code", worker::statusCode(worker::Status::Interrupted)},
                                     {"objective", nullptr},
                                     {"bound", nullptr},
                                     {"solution", nlohmann::json::object()},
                                     {"solver", job.spec.solver},
                                     {"solve_time_ms", 0},
                                     {"solve_time_us", 0},
                                     {"cpu_ms", 0},
                                     {"nodes", 0},
                                     {"iterations", 0},
                                     {"reason", order.reason},
                                     {"started", false}}};
}

}  // namespace

JobTable::JobTable(JobLimits limits, JobRunner& runner, JobHooks hooks)
    : limits_(limits), runner_(runner), hooks_(std::move(hooks)) {
  limits_.finished_kept = std::max<size_t>(limits_.finished_kept, 1);
}

JobTable::~JobTable() = default;

void JobTable::setLimits(const JobLimits& limits) {
  limits_ = limits;
  limits_.finished_kept = std::max<size_t>(limits_.finished_kept, 1);
  pump();  // more workers may start queued jobs now
}

Job* JobTable::activeByRequest(std::string_view request_id) const {
  auto it = by_request_.find(std::string(request_id));
  return it == by_request_.end() ? nullptr : it->second;
}

size_t JobTable::queuePosition(const Job& job) const {
  if (!job.in_queue) return 0;
  size_t pos = 1;
  for (auto it = queue_.begin(); it != job.queue_it; ++it) ++pos;
  return pos;
}

JobTable::SubmitResult JobTable::submit(const std::string& request_id, const std::string& key, SolveSpec spec,
                                        Subscriber* subscriber, const std::string& trace_id) {
  if (!admitting_) return {Admission::Draining};
  if (activeByRequest(request_id) != nullptr) return {Admission::DuplicateId};

  if (!key.empty() && limits_.coalesce == CoalesceMode::Share) {
    auto [first, last] = by_key_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      Job* job = it->second;
      // A job being cancelled is on its way out: a new request must not revive it.
      if (job->cancel || !(job->spec == spec)) continue;
      job->requests.push_back(Attachment{request_id, subscriber, true, Attachment::Kind::Request, trace_id});
      by_request_[request_id] = job;
      return {Admission::Shared, job, queuePosition(*job)};
    }
  } else if (!key.empty() && limits_.coalesce == CoalesceMode::Supersede) {
    supersede(key);
  }

  bool starts_now = running_ < limits_.workers && queue_.empty();
  if (!starts_now && queue_.size() >= limits_.queue_size) return {Admission::QueueFull};

  auto owned = std::make_unique<Job>();
  Job* job = owned.get();
  job->id = request_id;
  job->key = key;
  job->trace_id = trace_id;
  job->spec = std::move(spec);
  job->created_ns = monotonicNs();
  job->requests.push_back(Attachment{request_id, subscriber, true, Attachment::Kind::Request, trace_id});
  active_.emplace(request_id, std::move(owned));
  by_request_[request_id] = job;
  if (!key.empty()) by_key_.emplace(key, job);
  job->queue_it = queue_.insert(queue_.end(), job);
  job->in_queue = true;
  size_t position = queue_.size();
  pump();
  // pump() may have finished the job already (its worker could not start): the subscriber has
  // had its answer then, and Started tells the caller nothing more is to come from the queue.
  if (job->state != JobState::Queued) return {Admission::Started, job, 0};
  return {Admission::Queued, job, position};
}

void JobTable::supersede(const std::string& key) {
  std::vector<Job*> older;
  auto [first, last] = by_key_.equal_range(key);
  for (auto it = first; it != last; ++it) older.push_back(it->second);
  Outcome superseded{409, {{"error", reasonName(Reason::Superseded)},
                           {"message", "a newer request with the same X-Solve-Key replaced this one"}}};
  for (Job* job : older) {
    if (job->state == JobState::Finished) continue;
    std::vector<std::pair<std::string, Subscriber*>> waiting;
    for (auto& r : job->requests) {
      if (r.subscriber != nullptr) waiting.emplace_back(r.request_id, std::exchange(r.subscriber, nullptr));
      r.live = false;
    }
    for (auto& [rid, sub] : waiting) {
      Outcome o = superseded;
      o.body["id"] = rid;
      o.body["job"] = job->id;
      sub->onJobDone(o, 0);  // not one of the job's numbered events
    }
    CancelOrder order;
    order.grace = limits_.supersede_grace;
    order.reason = reasonName(Reason::Superseded);
    cancelWholeJob(*job, order);
  }
}

JobTable::SubmitResult JobTable::submitDetached(const std::string& request_id, const std::string& key,
                                                SolveSpec spec, std::chrono::milliseconds lease,
                                                const std::string& trace_id) {
  SubmitResult result = submit(request_id, key, std::move(spec), nullptr, trace_id);
  if (result.job == nullptr) return result;
  Job& job = *result.job;
  for (auto& r : job.requests) {
    if (r.request_id != request_id) continue;
    // The submitter's answer is the 202: from now on the lease stands for it.
    r.kind = Attachment::Kind::Submitter;
    r.live = false;
  }
  if (job.state != JobState::Finished) {
    job.lease = std::max(job.lease, lease);
    job.lease_expires_ns = std::max(job.lease_expires_ns, monotonicNs() + toNs(lease));
  }
  return result;
}

bool JobTable::renewLease(std::string_view id) {
  Job* job = activeByRequest(id);
  if (job == nullptr || !job->detached() || job->cancel) return false;
  job->lease_expires_ns = std::max(job->lease_expires_ns, monotonicNs() + toNs(job->lease));
  return true;
}

uint64_t JobTable::expireLeases(uint64_t now_ns) {
  std::vector<Job*> due;
  uint64_t next = 0;
  for (const auto& [id, job] : active_) {
    uint64_t end = job->lease_expires_ns;
    if (end == 0 || end <= leases_checked_ns_) continue;  // no lease, or its end was handled
    if (end <= now_ns) {
      due.push_back(job.get());
    } else if (next == 0 || end < next) {
      next = end;
    }
  }
  leases_checked_ns_ = now_ns;
  // Collected first: a queued job's cancel finishes it and changes active_.
  for (Job* job : due) {
    if (job->state != JobState::Finished) {
      release(*job, CancelOrder{CancelAction::Interrupt, limits_.lease_grace, std::string(reasonName(Reason::LeaseExpired)), {}}, now_ns);
    }
  }
  return next;
}

const Job* JobTable::watch(std::string_view id, const std::string& watcher_id, Subscriber* subscriber) {
  Job* job = activeByRequest(id);
  if (job == nullptr) return nullptr;
  job->requests.push_back(Attachment{watcher_id, subscriber, true, Attachment::Kind::Watcher});
  return job;
}

void JobTable::unwatch(std::string_view job_id, Subscriber* subscriber, const CancelOrder& order) {
  auto it = active_.find(std::string(job_id));
  if (it == active_.end()) return;
  Job& job = *it->second;
  size_t before = job.requests.size();
  std::erase_if(job.requests, [subscriber](const Attachment& r) {
    return r.kind == Attachment::Kind::Watcher && r.subscriber == subscriber;
  });
  // A job already being cancelled goes its way; a watcher leaving does not cancel it again.
  if (job.requests.size() != before && !job.cancel) release(job, order, monotonicNs());
}

bool JobTable::release(Job& job, CancelOrder order, uint64_t now_ns) {
  if (job.holders(now_ns) != 0) return false;
  // A detached job lives by its lease: when the lease has run out, that is why it stops, whichever
  // holder (a watcher, a waiting request) happened to go last.
  if (job.detached() && job.lease_expires_ns <= now_ns) order.reason = reasonName(Reason::LeaseExpired);
  cancelWholeJob(job, order);
  return true;
}

void JobTable::sweep(uint64_t now_ns) {
  while (!finished_.empty() && finished_.front()->finished_ns + toNs(limits_.result_ttl) <= now_ns) {
    forget(*finished_.front(), now_ns);
    finished_.pop_front();
  }
  while (!gone_.empty() && gone_.front().second <= now_ns) {
    gone_ids_.erase(gone_.front().first);
    gone_.pop_front();
  }
}

void JobTable::forget(Job& job, uint64_t now_ns) {
  auto remember = [&](const std::string& id) {
    if (gone_ids_.insert(id).second) gone_.emplace_back(id, now_ns + toNs(limits_.gone_ttl));
  };
  remember(job.id);
  for (const auto& r : job.requests) {
    auto it = finished_by_request_.find(r.request_id);
    if (it != finished_by_request_.end() && it->second == &job) finished_by_request_.erase(it);
    remember(r.request_id);
  }
  while (gone_.size() > kGoneKept) {
    gone_ids_.erase(gone_.front().first);
    gone_.pop_front();
  }
}

agent::control::CancelState JobTable::cancelRequest(std::string_view request_id, const CancelOrder& order,
                                                    bool subscriber_gone) {
  Job* job = activeByRequest(request_id);
  if (job == nullptr) {
    return finished_by_request_.contains(std::string(request_id)) ? JobState::Finished
                                                                  : agent::control::CancelState::Unknown;
  }
  const JobState state = job->state;
  bool was_live = false;
  for (auto& r : job->requests) {
    if (r.request_id != request_id) continue;
    was_live = was_live || r.live;
    r.live = false;
    if (subscriber_gone) r.subscriber = nullptr;
  }
  if (release(*job, order, monotonicNs())) {
    // cancelled: nothing holds the job any more
  } else if (was_live && hooks_.cancelled) {
    // Only the first cancel of a shared request counts: the proxy's frame and solverd's own
    // watch usually both report the same disconnect.
    hooks_.cancelled(*job, order, "shared");
  }
  return state;
}

void JobTable::detach(std::string_view request_id) {
  Job* job = activeByRequest(request_id);
  if (job == nullptr) return;
  for (auto& r : job->requests) {
    if (r.request_id == request_id) r.subscriber = nullptr;
  }
}

bool JobTable::cancelJob(std::string_view id, const CancelOrder& order) {
  Job* job = activeByRequest(id);
  if (job == nullptr) return false;
  for (auto& r : job->requests) r.live = false;
  cancelWholeJob(*job, order);
  return true;
}

void JobTable::cancelAll(const CancelOrder& order) {
  // Queued jobs go first, so that no running job's end starts one of them.
  std::vector<Job*> queued(queue_.begin(), queue_.end());
  for (Job* job : queued) cancelJob(job->id, order);
  std::vector<std::string> running;
  for (auto& [id, job] : active_) running.push_back(id);
  for (auto& id : running) cancelJob(id, order);
}

void JobTable::cancelWholeJob(Job& job, const CancelOrder& order) {
  if (job.state == JobState::Finished) return;
  uint64_t now = monotonicNs();
  if (job.cancel && order.source == CancelSource::Frame && job.cancel_source != CancelSource::Frame) {
    // The frame says why (upstream_timeout, shutdown, ...): solverd's own watch only saw the
    // connection close, often a few µs earlier, so the frame's reason and phase are kept, whatever
    // the action (the grace is settled below for a second interrupt).
    job.cancel->reason = order.reason;
    job.cancel->phase = order.phase;
    if (!order.trace_id.empty()) job.cancel_trace_id = order.trace_id;  // and its trace
  }
  if (!job.cancel) {
    job.cancel.emplace();
    job.cancel->action = order.action;
    job.cancel->reason = order.reason;
    job.cancel->phase = order.phase;
    job.cancel->received_ns = now;
    job.cancel_source = order.source;
    job.cancel_trace_id = order.trace_id;
  } else if (order.action == CancelAction::Kill && job.cancel->action != CancelAction::Kill) {
    job.cancel->action = CancelAction::Kill;  // kill after interrupt shortens the grace
  } else if (order.action == CancelAction::Interrupt && job.state == JobState::Running &&
             job.cancel->action == CancelAction::Interrupt) {
    // The same cancel again; not a new cancel, so no hook and no count. The proxy writes its
    // frame before it closes the upstream connection, but solverd may read the connection's end
    // first. Either way the frame governs (DESIGN.md "The cancel ladder"):
    //   - the watch after a frame changes nothing;
    //   - a frame after the watch sets the kill at the first interrupt plus the frame's grace,
    //     later or sooner than the watch's kill_after, and the job takes the frame's reason;
    //   - a frame after a frame (a resend, or a shorter grace) may only shorten it; the worker's
    //     Target keeps whichever deadline is sooner and never interrupts twice.
    if (order.source == CancelSource::Watch) return;
    CancelOrder again = order;
    if (order.source == CancelSource::Frame && job.cancel_source != CancelSource::Frame) {
      again.replace_grace = true;
      job.cancel->reason = order.reason;
      job.cancel->phase = order.phase;
      job.cancel_source = CancelSource::Frame;
    }
    runner_.cancel(job, again);
    return;
  } else {
    return;  // cancels are idempotent
  }
  if (hooks_.cancelled) hooks_.cancelled(job, order, toString(job.state));
  if (job.state == JobState::Queued) {
    // Dropped without a worker: nothing was signalled, nothing had to exit.
    job.cancel->signalled_ns = now;
    job.cancel->exited_ns = now;
    finish(job, droppedOutcome(job, order));
    return;
  }
  runner_.cancel(job, order);
}

void JobTable::pump() {
  if (pumping_) return;  // finish() -> pump() from inside a start failure below
  pumping_ = true;
  while (running_ < limits_.workers && !queue_.empty()) {
    Job* job = queue_.front();
    queue_.pop_front();
    job->in_queue = false;
    job->state = JobState::Running;
    job->started_ns = monotonicNs();
    ++running_;
    if (hooks_.started) hooks_.started(*job);
    std::string why = runner_.start(*job);
    if (!why.empty()) {
      finish(*job, Outcome{500, {{"error", "worker_failed"}, {"message", why}}});
    }
  }
  pumping_ = false;
}

void JobTable::workerEvent(Job& job, const nlohmann::json& frame) {
  auto type = frame.value("type", std::string{});
  nlohmann::json event;
  if (type == "incumbent") {
    event = frame;
    event.erase("type");
    event["event"] = "incumbent";
    job.last_incumbent = event;
    ++job.incumbents;
  } else if (type == "log") {
    event = {{"event", "log"}, {"line", frame.value("line", std::string{})}};
  } else {
    return;
  }
  uint64_t seq = ++job.last_seq;
  job.events.push_back(KeptEvent{seq, event});
  if (job.events.size() > kKeptEvents) job.events.pop_front();
  // Collected first: a subscriber's write may fail and cancel its request while we iterate.
  std::vector<Subscriber*> subs;
  for (auto& r : job.requests) {
    if (r.subscriber != nullptr) subs.push_back(r.subscriber);
  }
  for (Subscriber* s : subs) s->onJobEvent(event, seq);
}

void JobTable::workerDone(Job& job, Outcome outcome) { finish(job, std::move(outcome)); }

void JobTable::finish(Job& job, Outcome outcome) {
  if (job.state == JobState::Finished) return;
  if (job.in_queue) {
    queue_.erase(job.queue_it);
    job.in_queue = false;
  }
  if (job.state == JobState::Running) --running_;
  job.state = JobState::Finished;
  job.finished_ns = monotonicNs();
  job.outcome = std::move(outcome);
  // A finished job is kept for GET /v1/jobs/ID and late cancels only: its model (up to
  // client_max_body_size) is not, or a thousand kept jobs could hold gigabytes.
  std::string().swap(job.spec.model);

  uint64_t result_seq = ++job.last_seq;
  std::erase_if(job.events, [](const KeptEvent& e) { return e.event.value("event", std::string{}) == "log"; });
  while (job.events.size() > kKeptEventsFinished) job.events.pop_front();
  for (const auto& r : job.requests) {
    if (r.kind == Attachment::Kind::Watcher) continue;  // never in by_request_
    auto it = by_request_.find(r.request_id);
    if (it != by_request_.end() && it->second == &job) by_request_.erase(it);
    finished_by_request_[r.request_id] = &job;
  }
  if (!job.key.empty()) {
    auto [first, last] = by_key_.equal_range(job.key);
    for (auto it = first; it != last; ++it) {
      if (it->second == &job) {
        by_key_.erase(it);
        break;
      }
    }
  }
  auto owned = active_.find(job.id);
  finished_.push_back(std::move(owned->second));
  active_.erase(owned);

  if (hooks_.finished) hooks_.finished(job);

  std::vector<std::pair<std::string, Subscriber*>> waiting;
  for (auto& r : job.requests) {
    // A watcher's result names the job: the watcher's own request id is nobody's handle.
    const std::string& id = r.kind == Attachment::Kind::Watcher ? job.id : r.request_id;
    if (r.subscriber != nullptr) waiting.emplace_back(id, std::exchange(r.subscriber, nullptr));
  }
  // Watchers leave with the result: a finished job keeps only its requests.
  std::erase_if(job.requests, [](const Attachment& r) { return r.kind == Attachment::Kind::Watcher; });
  for (auto& [rid, sub] : waiting) {
    Outcome o = *job.outcome;
    o.body["id"] = rid;
    o.body["job"] = job.id;
    sub->onJobDone(o, result_seq);
  }

  uint64_t now = monotonicNs();
  while (finished_.size() > limits_.finished_kept) {
    forget(*finished_.front(), now);
    finished_.pop_front();
  }
  sweep(now);
  pump();
}

const Job* JobTable::find(std::string_view id) const {
  if (Job* job = activeByRequest(id)) return job;
  auto it = finished_by_request_.find(std::string(id));
  return it == finished_by_request_.end() ? nullptr : it->second;
}

std::vector<const Job*> JobTable::list() const {
  std::vector<const Job*> out;
  for (const auto& [id, job] : active_) {
    if (job->state == JobState::Running) out.push_back(job.get());
  }
  std::sort(out.begin(), out.end(), [](const Job* a, const Job* b) { return a->started_ns < b->started_ns; });
  for (const Job* job : queue_) out.push_back(job);
  for (auto it = finished_.rbegin(); it != finished_.rend(); ++it) out.push_back(it->get());
  return out;
}

}  // namespace tether::solverd
