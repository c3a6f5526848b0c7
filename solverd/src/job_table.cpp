#include "tether/solverd/job_table.hpp"

#include "tether/common/clock.hpp"

#include <algorithm>
#include <utility>

namespace tether::solverd {
namespace {

Outcome droppedOutcome(const Job& job, const CancelOrder& order) {
  return Outcome{200, nlohmann::json{{"status", "interrupted"},
                                     {"status_code", 7},
                                     {"objective", nullptr},
                                     {"bound", nullptr},
                                     {"solution", nlohmann::json::object()},
                                     {"solver", job.spec.solver},
                                     {"solve_time_ms", 0},
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
      job->requests.push_back(Attachment{request_id, subscriber, true, trace_id});
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
  job->requests.push_back(Attachment{request_id, subscriber, true, trace_id});
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
  Outcome superseded{409, {{"error", "superseded"},
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
      sub->onJobDone(o);
    }
    cancelWholeJob(*job, CancelOrder{CancelAction::Interrupt, limits_.supersede_grace, "superseded", {}});
  }
}

std::string_view JobTable::cancelRequest(std::string_view request_id, const CancelOrder& order,
                                         bool subscriber_gone) {
  Job* job = activeByRequest(request_id);
  if (job == nullptr) {
    return finished_by_request_.contains(std::string(request_id)) ? "finished" : "unknown";
  }
  std::string_view state = toString(job->state);
  bool was_live = false;
  for (auto& r : job->requests) {
    if (r.request_id != request_id) continue;
    was_live = was_live || r.live;
    r.live = false;
    if (subscriber_gone) r.subscriber = nullptr;
  }
  if (job->liveRequests() == 0) {
    cancelWholeJob(*job, order);
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
  if (!job.cancel) {
    job.cancel = CancelRecord{order.action, order.reason, order.phase, now, 0, 0, 0, order.trace_id};
  } else if (order.action == CancelAction::Kill && job.cancel->action != CancelAction::Kill) {
    job.cancel->action = CancelAction::Kill;  // kill after interrupt shortens the grace
  } else if (order.action == CancelAction::Interrupt && job.state == JobState::Running &&
             job.cancel->action == CancelAction::Interrupt) {
    // The same cancel again, perhaps with a shorter grace: solverd's own connection watch (grace
    // kill_after) often beats the proxy's frame (the location's kill_after) by a few µs, and the
    // frame's grace must still hold. The worker's Target keeps whichever deadline is sooner and
    // does not interrupt twice; it is not a new cancel, so no hook and no count.
    runner_.cancel(job, order);
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
  // Collected first: a subscriber's write may fail and cancel its request while we iterate.
  std::vector<Subscriber*> subs;
  for (auto& r : job.requests) {
    if (r.subscriber != nullptr) subs.push_back(r.subscriber);
  }
  for (Subscriber* s : subs) s->onJobEvent(event);
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

  for (const auto& r : job.requests) {
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
    if (r.subscriber != nullptr) waiting.emplace_back(r.request_id, std::exchange(r.subscriber, nullptr));
  }
  for (auto& [rid, sub] : waiting) {
    Outcome o = *job.outcome;
    o.body["id"] = rid;
    o.body["job"] = job.id;
    sub->onJobDone(o);
  }

  while (finished_.size() > limits_.finished_kept) {
    Job* old = finished_.front().get();
    for (const auto& r : old->requests) {
      auto it = finished_by_request_.find(r.request_id);
      if (it != finished_by_request_.end() && it->second == old) finished_by_request_.erase(it);
    }
    finished_.pop_front();
  }
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
