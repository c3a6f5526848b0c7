#pragma once
// A job: one solve, shared by every request that coalesced onto it (DESIGN.md "solverd HTTP API").
// Its id is the request id of the request that created it; every request keeps its own id too,
// and a cancel names a request, never a job, so that one client can only give up its own share.
#include "tether/agent/control/vocabulary.hpp"
#include "tether/agent/supervise/target.hpp"
#include "tether/solverd/solve_spec.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::solverd {

// The protocol's vocabulary: a job's state is a cancel_ack's state (never Unknown), a cancel's
// action is the frame's.
using JobState = agent::control::CancelState;
using CancelAction = agent::control::Action;
using agent::control::Reason;
using agent::control::reasonName;
enum class CoalesceMode { Share, Supersede, Off };

std::string_view toString(CoalesceMode mode);
std::optional<CoalesceMode> parseCoalesceMode(std::string_view text);

// Who asked for a cancel. solverd's own connection watch defers to the proxy's frame for the
// same job: the frame's grace (the location's kill_after) governs, from the first interrupt
// (DESIGN.md "The cancel ladder").
enum class CancelSource { Frame, Watch, Daemon };

// What to do to a job: the cancel frame's fields, or solverd's own reasons (client_disconnect
// from its own watch, superseded, shutdown, api for DELETE, time_limit, lease_expired for a
// detached job nothing holds any more).
struct CancelOrder {
  CancelAction action = CancelAction::Interrupt;
  std::chrono::milliseconds grace{5000};
  std::string reason{reasonName(Reason::ClientDisconnect)};  // a frame's may be one we do not know
  std::string phase;  // the proxy's disconnect phase, when the frame carried one
  CancelSource source = CancelSource::Daemon;
  // Set by the job table for the runner: the grace is to end `grace` after the first interrupt,
  // later or sooner (a frame after the watch), instead of only ever shortening it.
  bool replace_grace = false;
  std::string trace_id = {};  // the W3C trace id the frame carried, "" without one (issue 18)
};

// The cancel ladder's record, the supervision library's (CLOCK_MONOTONIC ns, 0: has not
// happened): kept for queued jobs too, which never get a worker.
using agent::supervise::CancelRecord;

// The answer every request of a job gets: an HTTP status and a JSON body (the result object of
// DESIGN.md for 200, {"error":..,"message":..} otherwise).
struct Outcome {
  int http_status = 200;
  nlohmann::json body = nlohmann::json::object();
};

// One waiting HTTP request or watcher. The job table calls it on the event loop; onJobDone is the
// last call and may destroy the subscriber. `seq` numbers the job's events from 1 (the SSE `id:`).
class Subscriber {
 public:
  virtual void onJobEvent(const nlohmann::json& event, uint64_t seq) = 0;  // log and incumbent events
  virtual void onJobDone(const Outcome& outcome, uint64_t seq) = 0;

 protected:
  ~Subscriber() = default;
};

// Who is attached to a job. A waiting /v1/solve request and a watcher of /v1/jobs/ID/events are
// holders while `live`; the request that submitted a detached job (POST /v1/jobs) is not: the
// job's lease holds it instead (Job::holders).
struct Attachment {
  enum class Kind { Request, Watcher, Submitter };
  std::string request_id;
  Subscriber* subscriber = nullptr;  // null once the request's connection is gone or answered
  bool live = true;                  // false once cancelled: it no longer keeps the job going
  Kind kind = Kind::Request;
  std::string trace_id = {};  // the request's W3C trace id (traceparent), "" without one
};

// One event of a job kept for watchers that attach late or resume (Last-Event-ID).
struct KeptEvent {
  uint64_t seq = 0;
  nlohmann::json event;
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
  CancelSource cancel_source = CancelSource::Daemon;  // of the order that set cancel's grace
  // The trace id of the cancel frame that cancelled the job, "" without one: the supervision
  // library's CancelRecord has no trace, so it is kept beside it.
  std::string cancel_trace_id;
  nlohmann::json last_incumbent;  // null until the worker reports one
  uint64_t incumbents = 0;
  uint64_t cpu_us = 0;
  std::optional<Outcome> outcome;  // set when finished
  std::list<Job*>::iterator queue_it;
  bool in_queue = false;
  // Worker details for GET /v1/jobs/ID, filled by the runner.
  int worker_pid = 0;
  std::string cgroup;
  bool spare = false;  // the worker was a warm spare (spare_pool.hpp), not started for this job

  // Detached jobs (POST /v1/jobs): the lease's length and its end (CLOCK_MONOTONIC; 0: no lease).
  std::chrono::milliseconds lease{0};
  uint64_t lease_expires_ns = 0;
  // Log and incumbent events, numbered from 1, the oldest dropped beyond a bound (job_table.cpp);
  // the result takes the number after the last event.
  std::deque<KeptEvent> events;
  uint64_t last_seq = 0;
  // Webhooks: (request id, URL) of each submission that gave a callback.
  std::vector<std::pair<std::string, std::string>> callbacks;

  size_t liveRequests() const;
  // What keeps the job going (DESIGN.md "Holders"): live waiting requests and watchers, plus one
  // for a lease not yet run out. The job is cancelled when this reaches 0 (JobTable::release).
  size_t holders(uint64_t now_ns) const;
  bool detached() const { return lease.count() > 0; }
  // The status word of the outcome ("optimal", ..., "crashed"), or the state while unfinished.
  std::string status() const;
  // The job as GET /v1/jobs/ID shows it, with the cancel timestamps relative to `received`.
  nlohmann::json describe(uint64_t now_ns) const;
};

}  // namespace tether::solverd
