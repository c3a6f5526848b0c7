#pragma once
// One HTTP request waiting for its job, and the JSON response helpers of the API. Internal to
// the daemon (http_api.cpp, daemon.cpp).
#include "tether/common/http_server.hpp"
#include "tether/solverd/daemon.hpp"

#include <memory>
#include <optional>
#include <string>

namespace tether::solverd {

namespace http_detail {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kNdjson = "application/x-ndjson";
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

inline bool wantsStream(const http::Request& request) {
  const std::string* accept = request.header("Accept");
  return accept != nullptr && accept->find(kNdjson) != std::string::npos;
}

inline std::string line(const nlohmann::json& event) {
  return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace http_detail

// One request waiting for its job. Owned by the Daemon (subscribers_); retired (destroyed on
// the next loop turn, never inside the Exchange's own callback) after its answer or its
// disconnect. Paths that end it: onJobDone, the disconnect callback, Daemon destruction.
class HttpSubscriber final : public Subscriber {
 public:

  HttpSubscriber(Daemon& daemon, std::shared_ptr<http::Exchange> exchange, bool stream)
      : daemon_(daemon), exchange_(std::move(exchange)), stream_(stream), request_id_(exchange_->requestId()) {}

  // The exchange may outlive us (the server holds it while the connection lives): it must not
  // call back into a destroyed subscriber (the paths that destroy one early: Daemon destruction).
  ~HttpSubscriber() { exchange_->onDisconnect(nullptr); }
  HttpSubscriber(const HttpSubscriber&) = delete;
  HttpSubscriber& operator=(const HttpSubscriber&) = delete;

  void watch() {
    exchange_->onDisconnect([this](http::DisconnectCause cause) { onDisconnect(cause); });
  }

  // After JobTable::submit admitted the request: the stream's first event, then a result that
  // arrived while submit() ran (a worker that could not start).
  void admitted(const JobTable::SubmitResult& admission) {
    submitting_ = false;
    if (stream_ && !done_) {
      exchange_->startStream(200, {{"Content-Type", std::string(http_detail::kNdjson)}, {exchange_->requestIdHeader(), request_id_}});
      nlohmann::json accepted{{"event", "accepted"},
                              {"id", request_id_},
                              {"job", admission.job->id},
                              {"queue_position", admission.queue_position}};
      if (admission.admission == JobTable::Admission::Shared) accepted["shared"] = true;
      exchange_->write(http_detail::line(accepted));
      // A request joining a running job hears the best incumbent found so far.
      if (admission.admission == JobTable::Admission::Shared && !admission.job->last_incumbent.is_null()) {
        exchange_->write(http_detail::line(admission.job->last_incumbent));
      }
    }
    if (pending_) deliver(*pending_);
  }

  void onJobEvent(const nlohmann::json& event) override {
    if (!stream_ || done_) return;
    if (event.value("event", std::string{}) == "log" && exchange_->queuedBytes() > http_detail::kStreamBacklog) return;
    exchange_->write(http_detail::line(event));
  }

  void onJobDone(const Outcome& outcome) override {
    if (submitting_) {
      pending_ = outcome;
      return;
    }
    deliver(outcome);
  }

 private:
  void deliver(const Outcome& outcome) {
    if (done_) return;
    done_ = true;
    if (!stream_) {
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
      exchange_->write(http_detail::line(event));
      exchange_->finish();
    }
    daemon_.retire(this);
  }

  void onDisconnect(http::DisconnectCause cause) {
    if (done_) return;
    done_ = true;
    daemon_.disconnects_->inc();
    const Settings& s = daemon_.settings_;
    std::string_view phase =
        agent::control::phaseName(exchange_->started() ? agent::control::Phase::ResponseBody
                                                       : agent::control::Phase::AwaitingResponse);
    // The job's own lines (cancel, outcome) say the rest at info; a flood of leaving clients
    // must not cost three lines each.
    log::get("http")->debug("rid={} client gone ({}) in {}: {}", request_id_, http::toString(cause), phase,
                           s.on_disconnect ? toString(*s.on_disconnect) : "none (the job runs on)");
    if (!s.on_disconnect) {
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
  bool stream_;
  std::string request_id_;
  bool submitting_ = true;
  bool done_ = false;
  std::optional<Outcome> pending_;
};

}  // namespace tether::solverd
