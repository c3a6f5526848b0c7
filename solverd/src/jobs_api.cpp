// Jobs that outlive a connection (DESIGN.md "Jobs that outlive a connection"): POST /v1/jobs
// admits a detached job held by a lease, GET /v1/jobs/ID/events attaches a watcher that holds it
// while connected. The holding rule itself lives in JobTable::release; the lease's clock in
// LeaseTimer.
#include "tether/agent/control/request_id.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"
#include "tether/common/trace_context.hpp"
#include "tether/config/units.hpp"
#include "tether/solverd/daemon.hpp"

#include "http_subscriber.hpp"
#include "lease_timer.hpp"
#include "webhooks.hpp"

#include <fmt/format.h>

#include <ctime>

namespace tether::solverd {
using namespace http_detail;

namespace {

// RFC 3339 in UTC with milliseconds: when a lease of `left` from now runs out, for clients.
std::string wallClockIn(std::chrono::nanoseconds left) {
  auto at = std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

}  // namespace

void Daemon::sendWebhooks(const Job& job) {
  nlohmann::json body = job.describe(monotonicNs());
  // The other requests sharing the job are none of this target's business: their ids are handles.
  body.erase("requests");
  body["event"] = "result";
  body["job"] = job.id;
  for (const auto& [rid, url] : job.callbacks) {
    body["id"] = rid;
    webhooks_->deliver(job.id, url, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
}

void Daemon::respondMissingJob(http::Exchange& ex, const std::string& id) {
  if (table_->gone(id)) {
    respondError(ex, 410, "gone", "this job's result was dropped after result_ttl");
    return;
  }
  respondError(ex, 404, "not_found", "no such job (jobs live in solverd's memory: after a restart, resubmit)");
}

void Daemon::handleSubmitJob(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  const std::string& rid = ex->requestId();
  std::chrono::milliseconds lease = settings_.job_lease;
  if (auto text = req.queryParam("lease")) {
    auto asked = config::parseDuration(*text);
    if (!asked || asked->count() <= 0 || *asked > settings_.max_lease) {
      respondError(*ex, 422, "invalid_lease",
                   fmt::format("lease must be a duration from 1ms to max_lease ({}ms), e.g. 30s or 5m",
                               settings_.max_lease.count()));
      return;
    }
    lease = *asked;
  }
  auto spec = readSolve(ex);
  if (!spec) return;
  if (!settings_.route.empty()) {
    // Several hosts (DESIGN.md "Several hosts"): the id names this server, so that tether-proxy
    // brings the job's polls, watchers and cancels back here. Only detached jobs are renamed: a
    // /v1/solve request keeps the id the proxy's cancel frame will name.
    std::string routed = agent::control::routedId(rid, settings_.route);
    if (const Job* other = table_->find(routed); other != nullptr && other->state != JobState::Finished) {
      routed = agent::control::routedId(agent::control::newRequestId(), settings_.route);
    }
    ex->replaceRequestId(std::move(routed));
  }
  const std::string* key_header = req.header("X-Solve-Key");
  std::string key = key_header != nullptr ? *key_header : std::string{};

  const std::string trace_id = trace::traceIdOf(req.header("traceparent"));  // as in handleSolve

  std::string callback = spec->callback;
  auto result = table_->submitDetached(rid, key, std::move(*spec), lease, trace_id);
  if (refused(*ex, result, callback)) return;
  const Job& job = *result.job;
  uint64_t now = monotonicNs();
  if (job.lease_expires_ns > now) lease_timer_->leaseChanged(job.lease_expires_ns);
  log::get("http")->debug("rid={} job={} detached: {} (queue position {}, lease {}ms){}{}", rid, job.id,
                          result.admission == JobTable::Admission::Shared ? "shared" : "new", result.queue_position,
                          job.lease.count(), trace_id.empty() ? "" : " trace=", trace_id);
  nlohmann::json body{{"id", rid},
                      {"job", job.id},
                      {"state", toString(job.state)},
                      {"queue_position", result.queue_position},
                      {"lease_ms", job.lease.count()}};
  if (job.lease_expires_ns > now) {
    body["lease_expires_at"] = wallClockIn(std::chrono::nanoseconds(job.lease_expires_ns - now));
  }
  if (result.admission == JobTable::Admission::Shared) body["shared"] = true;
  respondJson(*ex, 202, body, {{"Location", "/v1/jobs/" + rid}});
}

void Daemon::handleJobEvents(const std::shared_ptr<http::Exchange>& ex, const std::string& id) {
  const http::Request& req = ex->request();
  if (req.method != "GET") {
    respondError(*ex, 405, "method_not_allowed", "use GET", {{"Allow", "GET"}});
    return;
  }
  const Job* job = table_->find(id);
  if (job == nullptr) return respondMissingJob(*ex, id);
  // The events endpoint always streams: NDJSON unless the client asks for SSE.
  StreamFormat format = streamFormat(req);
  if (format == StreamFormat::None) format = StreamFormat::Ndjson;
  auto owned = std::make_unique<HttpSubscriber>(*this, ex, format);
  HttpSubscriber* sub = owned.get();
  subscribers_.emplace(sub, std::move(owned));
  if (job->state != JobState::Finished) {
    job = table_->watch(id, ex->requestId(), sub);
    sub->watch();
    log::get("http")->debug("rid={} job={} watcher attached ({} holder(s))", ex->requestId(), job->id,
                            job->holders(monotonicNs()));
  }
  sub->watching(*job, lastEventId(req));
}

}  // namespace tether::solverd
