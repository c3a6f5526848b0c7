#pragma once
// One HTTP request waiting for its job, and the JSON response helpers of the API. Internal to
// the daemon (http_api.cpp, daemon.cpp).
#include "tether/common/http_server.hpp"
#include "tether/common/log.hpp"
#include "tether/solverd/daemon.hpp"

#include "event_stream.hpp"

#include <memory>
#include <optional>
#include <string>

namespace tether::solverd {

namespace http_detail {

constexpr std::string_view kJson = "application/json";
// A stream whose client reads slower than the worker logs drops log lines beyond this backlog;
// incumbents and the result are always written.
constexpr size_t kStreamBacklog = 4 << 20;

inline http::Headers jsonHeaders(http::Exchange& ex) {
  return {{"Content-Type", std::string(kJson)}, {ex.requestIdHeader(), ex.requestId()}};
}

inline bool respondJson(http::Exchange& ex, int status, const nlohmann::json& body, http::Headers extra = {}) {
  http::Headers headers = jsonHeaders(ex);
  for (auto& h : extra) headers.push_back(std::move(h));
  return ex.respond(status, headers, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

inline bool respondError(http::Exchange& ex, int status, std::string_view code, std::string_view message,
                  http::Headers extra = {}) {
  return respondJson(ex, status, {{"error", code}, {"message", message}, {"id", ex.requestId()}}, std::move(extra));
}

}  // namespace http_detail

// One request waiting for its job (POST /v1/solve), or one watcher of a job's events (GET
// /v1/jobs/ID/events). Owned by the Daemon (subscribers_); retired (destroyed on the next loop
// turn, never inside the Exchange's own callback) after its answer or its disconnect. Paths that
// end it: onJobDone, the disconnect callback, a stalled reader (StreamWatch), Daemon destruction.
class HttpSubscriber final : public Subscriber {
 public:
  HttpSubscriber(Daemon& daemon, std::shared_ptr<http::Exchange> exchange, StreamFormat format)
      : daemon_(daemon), exchange_(std::move(exchange)), format_(format), request_id_(exchange_->requestId()) {}

  // The exchange may outlive us (the server holds it while the connection lives): it must not
  // call back into a destroyed subscriber (the paths that destroy one early: Daemon destruction).
  ~HttpSubscriber() {
    watch_.reset();
    exchange_->onDisconnect(nullptr);
  }
  HttpSubscriber(const HttpSubscriber&) = delete;
  HttpSubscriber& operator=(const HttpSubscriber&) = delete;

  void watch() {
    exchange_->onDisconnect([this](http::DisconnectCause cause) { onDisconnect(cause); });
  }

  // After JobTable::submit admitted the request: the stream's first event, then a result that
  // arrived while submit() ran (a worker that could not start).
  void admitted(const JobTable::SubmitResult& admission) {
    submitting_ = false;
    if (format_ != StreamFormat::None && !done_) {
      nlohmann::json accepted{{"event", "accepted"},
                              {"id", request_id_},
                              {"job", admission.job->id},
                              {"queue_position", admission.queue_position}};
      if (admission.admission == JobTable::Admission::Shared) accepted["shared"] = true;
      startStream(accepted);
      // A request joining a running job hears the best incumbent found so far.
      if (admission.admission == JobTable::Admission::Shared && !admission.job->last_incumbent.is_null()) {
        // With its number when it is still among the kept events (a chatty log may have pushed
        // it out: then without one).
        uint64_t seq = 0;
        for (auto it = admission.job->events.rbegin(); it != admission.job->events.rend() && seq == 0; ++it) {
          if (it->event.value("event", std::string{}) == "incumbent") seq = it->seq;
        }
        send(admission.job->last_incumbent, seq);
      }
    }
    if (pending_) deliver(*pending_, pending_seq_);
  }

  // A watcher attached to `job` (JobTable::watch, or a finished job): the accepted event, the
  // job's kept events after `after_seq` (Last-Event-ID), and for a finished job its result.
  void watching(const Job& job, uint64_t after_seq) {
    submitting_ = false;
    watched_job_ = job.id;
    startStream({{"event", "accepted"}, {"id", job.id}, {"job", job.id}, {"state", toString(job.state)}});
    for (const auto& e : job.events) {
      if (e.seq > after_seq) send(e.event, e.seq);
    }
    if (job.outcome) {
      Outcome o = *job.outcome;
      o.body["id"] = job.id;
      o.body["job"] = job.id;
      deliver(o, job.last_seq);
    }
  }

  void onJobEvent(const nlohmann::json& event, uint64_t seq) override {
    if (format_ == StreamFormat::None || done_ || submitting_) return;
    if (event.value("event", std::string{}) == "log" && exchange_->queuedBytes() > http_detail::kStreamBacklog) return;
    send(event, seq);
  }

  void onJobDone(const Outcome& outcome, uint64_t seq) override {
    if (submitting_) {
      pending_ = outcome;
      pending_seq_ = seq;
      return;
    }
    deliver(outcome, seq);
  }

 private:
  void startStream(const nlohmann::json& first) {
    http::Headers headers{{"Content-Type", std::string(contentType(format_))}, {exchange_->requestIdHeader(), request_id_}};
    // SSE through caching or compressing intermediaries: no transformation, no store.
    if (format_ == StreamFormat::Sse) headers.push_back({"Cache-Control", "no-cache"});
    exchange_->startStream(200, headers);
    send(first, 0);
    watch_ = std::make_unique<StreamWatch>(daemon_.loop_, *exchange_, format_, daemon_.settings_.heartbeat_interval,
                                           [this] { onStalled(); });
  }

  void send(const nlohmann::json& event, uint64_t seq) {
    exchange_->write(formatEvent(format_, event, seq));
    if (watch_) watch_->wrote();
  }

  void deliver(const Outcome& outcome, uint64_t seq) {
    if (done_) return;
    done_ = true;
    if (watch_) watch_->stop();
    if (format_ == StreamFormat::None) {
      http::Headers extra;
      if (outcome.http_status == 503) extra.push_back({"Retry-After", "1"});
      http_detail::respondJson(*exchange_, outcome.http_status, outcome.body, std::move(extra));
    } else {
      nlohmann::json event = outcome.body;
      if (outcome.http_status == 200) {
        event["event"] = "result";
      } else {
        event["event"] = "error";
        event["status"] = outcome.http_status;
      }
      send(event, seq);
      exchange_->finish();
    }
    daemon_.retire(this);
  }

  void onStalled() {
    if (done_) return;
    log::get("http")->info("rid={} reader stalled: a write pending for more than twice heartbeat_interval ({}ms)",
                           request_id_, daemon_.settings_.heartbeat_interval.count());
    onDisconnect(http::DisconnectCause::Timeout);
  }

  void onDisconnect(http::DisconnectCause cause) {
    if (done_) return;
    done_ = true;
    if (watch_) watch_->stop();
    daemon_.disconnects_->inc();
    const Settings& s = daemon_.settings_;
    std::string_view phase =
        agent::control::phaseName(exchange_->started() ? agent::control::Phase::ResponseBody
                                                       : agent::control::Phase::AwaitingResponse);
    // The job's own lines (cancel, outcome) say the rest at info; a flood of leaving clients
    // must not cost three lines each.
    log::get("http")->debug("rid={} client gone ({}) in {}: {}", request_id_, http::toString(cause), phase,
                           s.on_disconnect ? toString(*s.on_disconnect) : "none (the job runs on)");
    if (!watched_job_.empty()) {
      // A watcher always lets go of its job: with `on_disconnect none` a departed watcher would
      // otherwise hold it for ever. The lease and any other holder may keep it going.
      CancelOrder order;
      order.action = s.on_disconnect.value_or(CancelAction::Interrupt);
      order.grace = s.graceFor(std::nullopt);
      order.phase = std::string(phase);
      order.source = CancelSource::Watch;
      daemon_.table_->unwatch(watched_job_, this, order);
    } else if (!s.on_disconnect) {
      daemon_.table_->detach(request_id_);
    } else {
      CancelOrder order;
      order.action = *s.on_disconnect;
      order.grace = s.graceFor(std::nullopt);
      order.phase = std::string(phase);
      order.source = CancelSource::Watch;
      daemon_.table_->cancelRequest(request_id_, order, true);
    }
    daemon_.retire(this);
  }

  Daemon& daemon_;
  std::shared_ptr<http::Exchange> exchange_;
  StreamFormat format_;
  std::string request_id_;
  std::string watched_job_;  // a watcher's job id; empty for a /v1/solve request
  std::unique_ptr<StreamWatch> watch_;
  bool submitting_ = true;
  bool done_ = false;
  std::optional<Outcome> pending_;
  uint64_t pending_seq_ = 0;
};

}  // namespace tether::solverd
