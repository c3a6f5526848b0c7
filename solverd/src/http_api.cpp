// The HTTP API of DESIGN.md "solverd HTTP API": POST /v1/solve (JSON or an NDJSON stream),
// /v1/jobs, /health, /metrics. Each waiting request is an HttpSubscriber of its job; its
// connection closing early is solverd's own watch: the request is cancelled as a control
// frame would cancel it.
#include "tether/agent/control/request_id.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"
#include "tether/common/trace_context.hpp"
#include "tether/solverd/daemon.hpp"
#include "http_subscriber.hpp"
#include "lease_timer.hpp"
#include "webhooks.hpp"

#include <string>

namespace tether::solverd {
using namespace http_detail;

void Daemon::retire(HttpSubscriber* subscriber) {
  auto it = subscribers_.find(subscriber);
  if (it == subscribers_.end()) return;
  retired_.push_back(std::move(it->second));
  subscribers_.erase(it);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(reap_timer_->get()))) {
    uv_timer_start(reap_timer_->get(), [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->reapRetired(); }, 0, 0);
  }
}

void Daemon::reapRetired() {
  retired_.clear();
  maybeStopped();
}

void Daemon::onRequest(std::shared_ptr<http::Exchange> ex, bool admin) {
  const http::Request& req = ex->request();
  if (req.path == "/health") return handleHealth(ex);
  if (req.path == "/metrics") {
    if (req.method != "GET" && req.method != "HEAD") {
      respondError(*ex, 405, "method_not_allowed", "use GET", {{"Allow", "GET, HEAD"}});
      return;
    }
    ex->respond(200, {{"Content-Type", std::string(metrics::kContentType)}}, registry_.render());
    return;
  }
  if (admin && (req.path == "/" || req.path == "/status")) return handleStatus(ex);
  if (admin) {
    respondError(*ex, 404, "not_found", "the admin listener serves /, /status, /metrics and /health");
    return;
  }
  if (req.path == "/v1/solve") {
    if (req.method != "POST") {
      respondError(*ex, 405, "method_not_allowed", "use POST", {{"Allow", "POST"}});
      return;
    }
    return handleSolve(ex);
  }
  if (req.path == "/v1/jobs" || req.path.starts_with("/v1/jobs/")) return handleJobs(ex);
  respondError(*ex, 404, "not_found", "no such resource");
}

void Daemon::handleHealth(const std::shared_ptr<http::Exchange>& ex) {
  nlohmann::json body{{"status", stopping_ ? "draining" : "ok"},
                      {"running", table_->running()},
                      {"queued", table_->queued()},
                      {"workers", settings_.workers}};
  respondJson(*ex, stopping_ ? 503 : 200, body);
}

void Daemon::settleRequestId(http::Exchange& ex) {
  const std::string given = ex.requestId();
  if (ex.requestIdReplaced()) {
    log::get("http")->info("rid={} given {} broke the request id rule: replaced", given, ex.requestIdHeader());
  }
  const Job* job = table_->find(given);
  if (job == nullptr || job->state == JobState::Finished) return;
  ex.replaceRequestId(agent::control::newRequestId());
  log::get("http")->info("rid={} given id {} is already in flight (job={}): the request gets this generated id",
                         ex.requestId(), given, job->id);
}

std::optional<SolveSpec> Daemon::readSolve(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  settleRequestId(*ex);
  const std::string& rid = ex->requestId();
  if (stopping_) {
    respondError(*ex, 503, "shutting_down", "solverd is shutting down", {{"Retry-After", "1"}});
    return std::nullopt;
  }
  if (tombstones_.contains(rid, monotonicNs())) {
    tombstoned_requests_->inc();
    log::get("http")->info("rid={} refused: a cancel for this id arrived before the request", rid);
    respondError(*ex, 409, "cancelled", "this request id was cancelled before the request arrived");
    return std::nullopt;
  }
  const std::string* content_type = req.header("Content-Type");
  SolveRequestInput input{content_type != nullptr ? std::string_view(*content_type) : std::string_view{}, req.query,
                          req.body, settings_.default_time_limit, req.header("Request-Timeout"),
                          settings_.kill_after, settings_.deadline_reserve};
  RequestError error;
  auto spec = parseSolveRequest(input, error);
  if (spec && !spec->callback.empty()) {
    if (auto refusal = webhooks_->policy().check(spec->callback)) {
      error = RequestError{422, refusal->code, refusal->message};
      spec.reset();
    }
  }
  if (!spec) {
    log::get("http")->info("rid={} rejected {}: {}", rid, error.status, error.message);
    respondError(*ex, error.status, error.code, error.message);
  }
  return spec;
}

bool Daemon::refused(http::Exchange& ex, const JobTable::SubmitResult& result, const std::string& callback) {
  if (result.job != nullptr && !callback.empty()) {
    result.job->callbacks.emplace_back(ex.requestId(), callback);
    // A job that ended inside submit() (its worker could not start) had its end already.
    if (result.job->state == JobState::Finished) sendWebhooks(*result.job);
  }
  switch (result.admission) {
    case JobTable::Admission::QueueFull:
      respondError(ex, 503, "queue_full", "every worker is busy and the queue is full", {{"Retry-After", "1"}});
      return true;
    case JobTable::Admission::DuplicateId:
      respondError(ex, 409, "duplicate_id", "a job with this request id is already running");
      return true;
    case JobTable::Admission::Draining:
      respondError(ex, 503, "shutting_down", "solverd is shutting down", {{"Retry-After", "1"}});
      return true;
    case JobTable::Admission::Started:
    case JobTable::Admission::Queued:
    case JobTable::Admission::Shared:
      break;
  }
  return false;
}

void Daemon::handleSolve(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  const std::string& rid = ex->requestId();
  auto spec = readSolve(ex);
  if (!spec) return;
  const std::string* key_header = req.header("X-Solve-Key");
  std::string key = key_header != nullptr ? *key_header : std::string{};
  // W3C Trace Context: the trace this request belongs to (tether-proxy sends it with a parent
  // id of its own), logged with the job and kept in its record. A malformed one is ignored.
  const std::string trace_id = trace::traceIdOf(req.header("traceparent"));

  auto owned = std::make_unique<HttpSubscriber>(*this, ex, streamFormat(req));
  HttpSubscriber* sub = owned.get();
  subscribers_.emplace(sub, std::move(owned));
  std::string callback = spec->callback;
  auto result = table_->submit(rid, key, std::move(*spec), sub, trace_id);
  if (refused(*ex, result, callback)) {
    retire(sub);
    return;
  }
  log::get("http")->debug("rid={} job={} admitted: {} (queue position {}){}{}", rid, result.job->id,
                          result.admission == JobTable::Admission::Shared ? "shared" : "new", result.queue_position,
                          trace_id.empty() ? "" : " trace=", trace_id);
  sub->watch();
  sub->admitted(result);
}

void Daemon::handleJobs(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  uint64_t now = monotonicNs();
  table_->sweep(now);
  if (req.path == "/v1/jobs") {
    if (req.method == "POST") return handleSubmitJob(ex);
    if (req.method != "GET") {
      respondError(*ex, 405, "method_not_allowed", "use GET or POST", {{"Allow", "GET, POST"}});
      return;
    }
    auto jobs = nlohmann::json::array();
    for (const Job* job : table_->list()) {
      nlohmann::json j = job->describe(now);
      if (j.contains("result")) j["result"].erase("solution");  // the list stays small
      jobs.push_back(std::move(j));
    }
    respondJson(*ex, 200, {{"jobs", std::move(jobs)}, {"running", table_->running()}, {"queued", table_->queued()}});
    return;
  }
  // A trusted id may hold `/`, `%` or `=`: clients percent-encode it in the path (DESIGN.md
  // "Request identity"), and it is matched decoded. "/events" is split off first: an id's own
  // `/` arrives as %2F.
  std::string raw = req.path.substr(std::string_view("/v1/jobs/").size());
  const bool events = raw.ends_with("/events");
  if (events) raw.resize(raw.size() - std::string_view("/events").size());
  auto decoded = http::percentDecode(raw, false);
  if (!decoded) {
    respondError(*ex, 400, "bad_request", "malformed percent-encoding in the job id");
    return;
  }
  const std::string id = std::move(*decoded);
  if (events) return handleJobEvents(ex, id);
  if (req.method == "GET") {
    const Job* job = table_->find(id);
    if (job == nullptr) return respondMissingJob(*ex, id);
    // Asking about a detached job is wanting it: its lease runs again.
    if (table_->renewLease(id)) lease_timer_->leaseChanged(job->lease_expires_ns);
    respondJson(*ex, 200, job->describe(now));
    return;
  }
  if (req.method != "DELETE") {
    respondError(*ex, 405, "method_not_allowed", "use GET or DELETE", {{"Allow", "GET, DELETE"}});
    return;
  }
  CancelAction action = CancelAction::Interrupt;
  if (auto given = req.queryParam("action"); given && !agent::control::parseAction(*given, action)) {
    respondError(*ex, 422, "invalid_action", "action must be interrupt or kill");
    return;
  }
  std::optional<uint32_t> grace_ms;
  if (auto g = req.queryParam("grace_ms")) grace_ms = static_cast<uint32_t>(std::strtoul(g->c_str(), nullptr, 10));
  const Job* job = table_->find(id);
  if (job == nullptr) return respondMissingJob(*ex, id);
  std::string job_id = job->id;
  CancelOrder order;
  order.action = action;
  order.grace = settings_.graceFor(grace_ms);
  order.reason = reasonName(Reason::Api);
  bool cancelled = table_->cancelJob(job_id, order);
  const Job* after = table_->find(job_id);
  respondJson(*ex, cancelled ? 202 : 200,
              {{"id", job_id},
               {"action", toString(action)},
               {"state", after != nullptr ? toString(after->state) : "finished"}});
}

}  // namespace tether::solverd
