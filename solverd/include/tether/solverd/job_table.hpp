#pragma once
// The job table: every queued, running and recently finished job, the FIFO queue in front of
// `workers` parallel solves, and coalescing by X-Solve-Key. It decides; the JobRunner acts (a
// worker process per job, see worker_runner.hpp). Single-threaded: everything runs on the loop.
#include "tether/solverd/job.hpp"

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace tether::solverd {

// Runs the jobs the table starts. Implementations report back through JobTable::workerEvent and
// JobTable::workerDone, never from inside start() or cancel().
class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // Starts `job`'s worker. Returns an empty string, or why it could not (the job then finishes
  // with 500 at once).
  virtual std::string start(Job& job) = 0;
  // Runs the cancel ladder on a running job. Repeated orders follow the ladder's rules: a second
  // interrupt changes nothing, a kill after an interrupt kills at once.
  virtual void cancel(Job& job, const CancelOrder& order) = 0;
};

struct JobLimits {
  size_t workers = 2;
  size_t queue_size = 1000;
  CoalesceMode coalesce = CoalesceMode::Share;
  // The superseding request's predecessor is interrupted with this grace.
  std::chrono::milliseconds supersede_grace{5000};
  // A detached job whose lease ran out is interrupted with this grace.
  std::chrono::milliseconds lease_grace{5000};
  size_t finished_kept = 1000;  // max_results: finished jobs kept for GET /v1/jobs/ID and cancel acks
  // result_ttl: a finished job is kept this long; then its ids answer 410 for gone_ttl, then 404.
  std::chrono::milliseconds result_ttl{600'000};
  std::chrono::milliseconds gone_ttl{3'600'000};
};

// Life-cycle events for logs and metrics; the table itself neither logs nor counts.
struct JobHooks {
  std::function<void(const Job&, const CancelOrder&, std::string_view state)> cancelled;
  std::function<void(const Job&)> started;
  std::function<void(const Job&)> finished;
};

class JobTable {
 public:
  enum class Admission { Started, Queued, Shared, QueueFull, DuplicateId, Draining };
  struct SubmitResult {
    Admission admission;
    Job* job = nullptr;
    size_t queue_position = 0;  // 1-based place in the queue; 0 when running
  };

  JobTable(JobLimits limits, JobRunner& runner, JobHooks hooks);
  ~JobTable();
  JobTable(const JobTable&) = delete;
  JobTable& operator=(const JobTable&) = delete;

  // Admits one request. On Started/Queued/Shared the subscriber is attached and hears of the job
  // until onJobDone; otherwise it is not kept. Supersede mode answers the key's older requests
  // with 409 before this returns. `trace_id` is the request's W3C trace id ("" without one).
  SubmitResult submit(const std::string& request_id, const std::string& key, SolveSpec spec,
                      Subscriber* subscriber, const std::string& trace_id = {});

  // POST /v1/jobs: admits a detached job, held by a lease of `lease` from now (and by watchers,
  // and by waiting requests that share it through its X-Solve-Key). A keyed job already running
  // is shared as submit() shares it and gains the lease (the later of the two ends).
  SubmitResult submitDetached(const std::string& request_id, const std::string& key, SolveSpec spec,
                              std::chrono::milliseconds lease, const std::string& trace_id = {});
  // GET /v1/jobs/ID: a detached job's lease runs again for its length from now. False when the
  // job is unknown, finished, not detached or already cancelled.
  bool renewLease(std::string_view id);
  // Cancels, with reason lease_expired, the detached jobs whose lease ran out since the last call
  // and that nothing else holds. Returns the next lease end to call again at (0: none).
  uint64_t expireLeases(uint64_t now_ns);

  // GET /v1/jobs/ID/events: attaches a watcher to an active job, which holds the job while it is
  // attached. Returns the job, or nullptr when it is not active (the caller replays a finished
  // job's kept events and result itself).
  const Job* watch(std::string_view id, const std::string& watcher_id, Subscriber* subscriber);
  // The watcher's connection went away: it no longer holds the job, which is cancelled with
  // `order` if nothing else holds it. Unknown watchers and finished jobs are ignored.
  void unwatch(std::string_view job_id, Subscriber* subscriber, const CancelOrder& order);

  // Drops finished jobs older than result_ttl (their ids then answer gone) and forgets gone ids
  // older than gone_ttl. Called before lookups and by the lease timer.
  void sweep(uint64_t now_ns);
  // True for the id of a job (or of one of its requests) whose result was dropped recently.
  bool gone(std::string_view id) const { return gone_ids_.contains(std::string(id)); }

  // Cancels one request: by a control frame (the subscriber stays attached and still gets the
  // outcome if its connection lives) or because its connection closed (`subscriber_gone`: never
  // called again). The job itself is cancelled when no live request is left: a queued one is
  // dropped without a worker. Returns the state for cancel_ack: queued, running, finished or
  // unknown.
  agent::control::CancelState cancelRequest(std::string_view request_id, const CancelOrder& order,
                                            bool subscriber_gone);

  // Forgets a request's subscriber (its connection is gone) but keeps the request live, so the
  // job runs on to its end (`on_disconnect none`).
  void detach(std::string_view request_id);

  // DELETE /v1/jobs/ID: cancels the whole job, whoever is waiting for it. False when unknown
  // or already finished.
  bool cancelJob(std::string_view id, const CancelOrder& order);

  // Cancels every queued and running job (shutdown).
  void cancelAll(const CancelOrder& order);
  // Refuses new jobs with Draining from now on.
  void stopAdmitting() { admitting_ = false; }

  // From the runner: a log or incumbent frame of a running job, and its end.
  void workerEvent(Job& job, const nlohmann::json& event);
  void workerDone(Job& job, Outcome outcome);

  // A queued, running or recently finished job by its id or by one of its requests' ids.
  const Job* find(std::string_view id) const;
  // Active jobs first (running, then queued in order), then finished, newest first.
  std::vector<const Job*> list() const;

  size_t running() const { return running_; }
  size_t queued() const { return queue_.size(); }
  size_t active() const { return active_.size(); }
  const JobLimits& limits() const { return limits_; }
  void setLimits(const JobLimits& limits);

 private:
  void pump();
  void cancelWholeJob(Job& job, const CancelOrder& order);
  // The one rule of DESIGN.md "Holders": a job nothing holds any more is cancelled. Every path
  // that takes a holder away ends here: cancelRequest, unwatch, expireLeases.
  // Returns true when the job is no longer held (and so was cancelled).
  bool release(Job& job, CancelOrder order, uint64_t now_ns);
  void forget(Job& job, uint64_t now_ns);
  void finish(Job& job, Outcome outcome);
  void supersede(const std::string& key);
  Job* activeByRequest(std::string_view request_id) const;
  size_t queuePosition(const Job& job) const;

  JobLimits limits_;
  JobRunner& runner_;
  JobHooks hooks_;
  bool admitting_ = true;
  bool pumping_ = false;
  size_t running_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Job>> active_;  // by job id
  std::unordered_map<std::string, Job*> by_request_;               // active jobs by request id
  std::unordered_multimap<std::string, Job*> by_key_;              // active jobs by solve key
  std::list<Job*> queue_;
  std::deque<std::unique_ptr<Job>> finished_;                      // newest at the back
  std::unordered_map<std::string, Job*> finished_by_request_;
  uint64_t leases_checked_ns_ = 0;  // expireLeases() has handled lease ends up to here
  // Ids of dropped results, oldest first, until when they answer 410 (bounded: kGoneKept).
  std::deque<std::pair<std::string, uint64_t>> gone_;
  std::unordered_set<std::string> gone_ids_;
};

}  // namespace tether::solverd
