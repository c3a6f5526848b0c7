// solverd's side of control protocol v1: a cancel names a request id; the job table cancels that
// request (and its job once no live request is left); an unknown id leaves a tombstone so that
// the request, arriving later, is refused (DESIGN.md "Control protocol, version 1").
#include "tether/solverd/control_handler.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"

namespace tether::solverd {

namespace control = agent::control;

control::CancelAck Daemon::ControlHandler::onCancel(const control::PeerCredentials& peer,
                                                    const control::Cancel& cancel) {
  Daemon& d = daemon_;
  // The reason and phase are kept as sent, known to this version or not (a newer proxy's).
  CancelOrder order;
  order.action = cancel.action;
  order.grace = d.settings_.graceFor(cancel.grace_ms);
  order.reason = cancel.reason;
  order.phase = cancel.phase;
  order.source = CancelSource::Frame;
  order.trace_id = cancel.trace_id;
  const control::CancelAck ack{cancel.id, d.table_->cancelRequest(cancel.id, order, false)};
  if (ack.state == control::CancelState::Unknown || ack.state == control::CancelState::Finished) {
    if (ack.state == control::CancelState::Unknown) d.tombstones_.add(cancel.id, monotonicNs());
    d.countCancel(order, toString(ack.state));
    log::get("control")->info("rid={} cancel {} from pid={} uid={} ({}{}): {}{}{}", cancel.id, toString(order.action),
                              peer.pid, peer.uid, cancel.reason, cancel.phase.empty() ? "" : ", " + cancel.phase,
                              ack.state == control::CancelState::Unknown ? "unknown id, tombstone left"
                                                                         : "already finished",
                              cancel.trace_id.empty() ? "" : " trace=", cancel.trace_id);
  }
  return ack;
}

nlohmann::json Daemon::ControlHandler::statusTargets() {
  auto targets = nlohmann::json::array();
  uint64_t now = monotonicNs();
  for (const Job* job : daemon_.table_->list()) {
    if (job->state == JobState::Finished) break;  // list(): active jobs come first
    nlohmann::json j = job->describe(now);
    j.erase("result");
    targets.push_back(std::move(j));
  }
  return targets;
}

}  // namespace tether::solverd
