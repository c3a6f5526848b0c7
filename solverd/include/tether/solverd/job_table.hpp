#pragma once
// The job table: every queued, running and recently finished job, the FIFO queue in front of
// `workers` parallel solves, and coalescing by X-Solve-Key. It decides; the JobRunner acts (a
// worker process per job, see worker_runner.hpp). Single-threaded: everything runs on the loop.
#include "tether/solverd/job.hpp"

#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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
  size_t finished_kept = 1000;  // finished jobs kept for GET /v1/jobs/ID and cancel acks
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

  // Cancels one request: by a control frame (the subscriber stays attached and still gets the
  // outcome if its connection lives) or because its connection closed (`subscriber_gone`: never
  // called again). The job itself is cancelled when no live request is left: a queued one is
  // dropped without a worker. Returns the state for cancel_ack: queued, running, finished or
  // unknown.
  std::string_view cancelRequest(std::string_view request_id, const CancelOrder& order, bool subscriber_gone);

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
};

}  // namespace tether::solverd
