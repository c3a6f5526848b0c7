#pragma once
// A job: one solve, shared by every request that coalesced onto it (DESIGN.md "solverd HTTP API").
// Its id is the request id of the request that created it; every request keeps its own id too,
// and a cancel names a request, never a job, so that one client can only give up its own share.
#include "tether/solverd/solve_spec.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::solverd {

enum class JobState { Queued, Running, Finished };
enum class CancelAction { Interrupt, Kill };
enum class CoalesceMode { Share, Supersede, Off };

std::string_view toString(JobState state);
std::string_view toString(CancelAction action);
std::string_view toString(CoalesceMode mode);
std::optional<CancelAction> parseCancelAction(std::string_view text);
std::optional<CoalesceMode> parseCoalesceMode(std::string_view text);

// What to do to a job: the cancel frame's fields, or solverd's own reasons
// (client_disconnect from its own watch, superseded, shutdown, api for DELETE, time_limit).
struct CancelOrder {
  CancelAction action = CancelAction::Interrupt;
  std::chrono::milliseconds grace{5000};
  std::string reason = "client_disconnect";
  std::string phase;  // the proxy's disconnect phase, when the frame carried one
  std::string trace_id = {};  // the W3C trace id the frame carried, "" without one
};

// The cancel ladder's record, CLOCK_MONOTONIC nanoseconds (0: has not happened). `signalled` is
// the interrupt frame written (or cgroup.kill for a kill), `killed` cgroup.kill after the grace,
// `exited` the cgroup empty and the worker reaped.
struct CancelRecord {
  CancelAction action = CancelAction::Interrupt;
  std::string reason;
  std::string phase;
  uint64_t received_ns = 0;
  uint64_t signalled_ns = 0;
  uint64_t killed_ns = 0;
  uint64_t exited_ns = 0;
  std::string trace_id = {};  // the trace id the cancel frame carried ("" without one)
};

// The answer every request of a job gets: an HTTP status and a JSON body (the result object of
// DESIGN.md for 200, {"error":..,"message":..} otherwise).
struct Outcome {
  int http_status = 200;
  nlohmann::json body = nlohmann::json::object();
};

// One waiting HTTP request. The job table calls it on the event loop; onJobDone is the last call
// and may destroy the subscriber.
class Subscriber {
 public:
  virtual void onJobEvent(const nlohmann::json& event) = 0;  // log and incumbent events
  virtual void onJobDone(const Outcome& outcome) = 0;

 protected:
  ~Subscriber() = default;
};

struct Attachment {
  std::string request_id;
  Subscriber* subscriber = nullptr;  // null once the request's connection is gone or answered
  bool live = true;                  // false once cancelled: it no longer keeps the job going
  std::string trace_id = {};         // the request's W3C trace id (traceparent), "" without one
};

struct Job {
  std::string id;
  std::string key;  // X-Solve-Key, empty when none
  std::string trace_id;  // the W3C trace id of the request that created the job, "" without one
  SolveSpec spec;
  JobState state = JobState::Queued;
  uint64_t created_ns = 0;
  uint64_t started_ns = 0;
  uint64_t finished_ns = 0;
  std::vector<Attachment> requests;
  std::optional<CancelRecord> cancel;
  nlohmann::json last_incumbent;  // null until the worker reports one
  uint64_t incumbents = 0;
  uint64_t cpu_us = 0;
  std::optional<Outcome> outcome;  // set when finished
  std::list<Job*>::iterator queue_it;
  bool in_queue = false;
  // Worker details for GET /v1/jobs/ID, filled by the runner.
  int worker_pid = 0;
  std::string cgroup;

  size_t liveRequests() const;
  // The status word of the outcome ("optimal", ..., "crashed"), or the state while unfinished.
  std::string status() const;
  // The job as GET /v1/jobs/ID shows it, with the cancel timestamps relative to `received`.
  nlohmann::json describe(uint64_t now_ns) const;
};

}  // namespace tether::solverd
