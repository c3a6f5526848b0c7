#pragma once
// Runs each job as one solverd-worker process in a fresh cgroup (the supervise library's Target),
// speaking the worker protocol of DESIGN.md over its stdin and stdout: the solve frame, later an
// interrupt frame (the ladder's interrupt action), log/incumbent/result frames back. The cancel
// ladder, cgroup.kill, cpu.stat and the cgroup's removal are the Target's; this file turns the
// worker's frames and its end into the job's Outcome. The process is a warm spare of the
// SparePool when one is ready (spare_pool.hpp), otherwise started for the job.
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/solverd/job_table.hpp"
#include "tether/solverd/spare_pool.hpp"

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace tether::solverd {

class WorkerRunner : public JobRunner {
 public:
  // `tree` may be null or unavailable: workers then run in the process-group fallback.
  WorkerRunner(uv_loop_t* loop, const agent::supervise::CgroupTree* tree, WorkerOptions options);
  ~WorkerRunner() override;
  WorkerRunner(const WorkerRunner&) = delete;
  WorkerRunner& operator=(const WorkerRunner&) = delete;

  // The table to report to; set once, before the first start().
  void setTable(JobTable* table) { table_ = table; }
  // SIGHUP: applies to workers started from now on; the spares started before are retired.
  void setOptions(WorkerOptions options);
  // Drain: no spare is handed a job from now on (jobs still queued start cold); `on_empty` runs
  // once no spare process is left.
  void stopSpares(std::function<void()> on_empty) { spares_.stop(std::move(on_empty)); }
  const SparePool& spares() const { return spares_; }
  void setSparesChanged(std::function<void()> on_change) { spares_.setOnChange(std::move(on_change)); }

  std::string start(Job& job) override;
  void cancel(Job& job, const CancelOrder& order) override;

  size_t sessions() const { return sessions_.size(); }
  uint64_t crashes() const { return crashes_; }

  class Session;

 private:
  friend class Session;
  void sessionDone(Session& session);

  uv_loop_t* loop_;
  const agent::supervise::CgroupTree* tree_;
  WorkerOptions options_;
  JobTable* table_ = nullptr;
  SparePool spares_;
  std::unordered_map<std::string, std::unique_ptr<Session>> sessions_;  // by job id
  uint64_t crashes_ = 0;
};

}  // namespace tether::solverd
