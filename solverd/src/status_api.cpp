// The admin listener's live status page (DESIGN.md "Status page"): what HAProxy's stats page and
// nginx's status page cannot show, the work behind each request: jobs with their holders and
// incumbents over time, cancels by reason, the CPU spent on work whose client left, and how fast
// cancelled work stopped.
#include "tether/common/clock.hpp"
#include "tether/solverd/daemon.hpp"
#include "tether/solverd/fork_server.hpp"

#include "http_subscriber.hpp"
#include "status_page.hpp"
#include "tether/common/status_page.hpp"

namespace tether::solverd {
using namespace http_detail;

namespace {
constexpr size_t kJobsShown = 50;
}

void Daemon::handleStatus(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  if (req.method != "GET" && req.method != "HEAD") {
    respondError(*ex, 405, "method_not_allowed", "use GET", {{"Allow", "GET, HEAD"}});
    return;
  }
  if (req.path == "/") {
    http::respondStatusPage(*ex, statusPageHtml(), statusSnapshot());
    return;
  }
  if (streamFormat(req) == StreamFormat::Sse && !stopping_) {
    status_streams_->add(ex);
    return;
  }
  respondJson(*ex, 200, statusSnapshot());
}

nlohmann::json Daemon::statusSnapshot() const {
  uint64_t now = monotonicNs();
  auto jobs = nlohmann::json::array();
  for (const Job* job : table_->list()) {
    if (jobs.size() >= kJobsShown) break;
    auto history = nlohmann::json::array();
    for (const auto& e : job->events) {
      const auto& ev = e.event;
      if (ev.value("event", std::string{}) != "incumbent" || !ev.contains("objective") || !ev["objective"].is_number()) {
        continue;
      }
      history.push_back({ev.value("elapsed_ms", 0.0), ev["objective"]});
    }
    const nlohmann::json& inc = job->last_incumbent;
    jobs.push_back({{"id", job->id},
                    {"state", toString(job->state)},
                    {"status", job->status()},
                    {"age_ms", static_cast<double>(now - job->created_ns) / 1e6},
                    {"solver", job->spec.solver},
                    {"holders", job->state == JobState::Finished ? 0 : job->holders(now)},
                    {"incumbent", inc.is_object() && inc.contains("objective") ? inc["objective"] : nlohmann::json()},
                    {"gap", inc.is_object() && inc.contains("gap") ? inc["gap"] : nlohmann::json()},
                    {"history", std::move(history)},
                    {"cancel_reason", job->cancel ? nlohmann::json(job->cancel->reason) : nlohmann::json()}});
  }
  const metrics::Histogram& latency = cancel_to_exit_->get();
  // Warm workers (DESIGN.md "Warm workers"): the same counts as STATUS= and /metrics.
  nlohmann::json spares = nullptr;
  if (runner_) {
    const SparePool& pool = runner_->spares();
    const ForkServer* server = pool.forkServer();
    spares = {{"configured", settings_.spare_workers},
              {"ready", pool.ready()},
              {"started", pool.stats().started},
              {"taken", pool.stats().taken},
              {"died", pool.stats().died},
              {"retired", pool.stats().retired},
              {"forked", pool.stats().forked},
              {"start", settings_.fork_spares ? "fork" : "exec"},
              {"fork_server_up", server != nullptr && server->ready()}};
  }
  return {{"jobs", std::move(jobs)},
          {"workers", settings_.workers},
          {"spares", std::move(spares)},
          {"running", table_->running()},
          {"queued", table_->queued()},
          {"cancels_by_reason", cancels_by_reason_},
          {"status_streams", status_streams_ ? status_streams_->size() : 0},
          {"abandoned_cpu_seconds", abandoned_cpu_seconds_},
          {"unspent_time_limit_seconds", unspent_time_limit_seconds_},
          {"cancel_to_stop", {{"bounds", latency.bounds()}, {"counts", latency.bucketCounts()}}}};
}

}  // namespace tether::solverd
