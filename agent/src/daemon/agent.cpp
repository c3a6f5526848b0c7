#include "agent.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/listener.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace tether::agent::daemon {
namespace {

using control::CancelState;
using control::ErrorCode;

// The real uid of a live process, from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
// Reading procfs does not block.
std::optional<uid_t> processUid(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    uid_t uid = 0;
    if (fields >> uid) return uid;
  }
  return std::nullopt;
}

double msBetween(uint64_t from_ns, uint64_t to_ns) { return secondsBetween(from_ns, to_ns) * 1000.0; }

}  // namespace

Agent::Agent(uv_loop_t* loop, Settings settings)
    : loop_(loop), settings_(std::move(settings)), log_(log::get("agent")) {
  registry_.callbackGauge("tether_agent_targets", "Processes registered and not yet exited.",
                          [this] { return static_cast<double>(targets()); });
  cancels_ = &registry_.counter("tether_agent_cancels_total",
                                "Cancel frames handled, by action, reason and the state answered.",
                                {"action", "reason", "result"});
  cancel_to_exit_ = &registry_.histogram("tether_agent_cancel_to_exit_seconds",
                                         "Time from a cancel's arrival to the target's exit.");
}

Agent::~Agent() { closeNow(); }

supervise::SupervisorOptions Agent::supervisorOptions() {
  supervise::SupervisorOptions o = settings_.supervisorOptions();
  if (webhook_) {
    o.interrupt = [this](supervise::Target& target) -> supervise::Error {
      const std::string id = target.id();
      const int rc = webhook_->fire(id, [this, id](int status, int tries) {
        const char* plural = tries == 1 ? "y" : "ies";
        if (status >= 200 && status < 300) {
          log_->info("webhook rid={} answered {} (tr{} {})", id, status, plural, tries);
        } else if (status > 0) {
          log_->warn("webhook rid={} given up after {} tr{}: answered {}; the kill after the grace still stops the target",
                     id, tries, plural, status);
        } else {
          log_->warn("webhook rid={} given up after {} tr{}: {}; the kill after the grace still stops the target", id,
                     tries, plural, uv_strerror(status));
        }
      });
      if (rc != 0) return supervise::errnoError(-rc, "webhook " + webhook_->urlFor(id));
      return {};
    };
  }
  return o;
}

void Agent::start() {
  supervise::CgroupOptions cg;
  cg.root = settings_.cgroup_root;
  cg.daemon = "agent";
  tree_ = supervise::CgroupTree::open(cg);
  if (tree_.available()) {
    log_->info("targets go into cgroups under {}", tree_.parent());
    for (const auto& note : tree_.notes()) log_->info("{}", note);
  } else {
    // Said once: every registration then runs in the fallback.
    log_->warn("no writable cgroup v2 ({}): targets are watched by pidfd only, best effort (a process that "
               "forks after registering may escape the kill)",
               tree_.unavailableReason());
  }
  if (!settings_.interrupt_webhook.empty()) {
    try {
      webhook_ = std::make_unique<Webhook>(loop_, settings_.interrupt_webhook);
    } catch (const std::runtime_error& e) {
      throw StartupError(e.what());
    }
  }
  supervisor_ = std::make_unique<supervise::Supervisor>(loop_, &tree_, supervisorOptions());
  supervisor_->setOnDone([this](const supervise::Outcome& outcome) { onTargetDone(outcome); });

  control_ = std::make_unique<control::Server>(loop_, *this, settings_.control.server);
  std::string why;
  if (control::listenControl(loop_, *control_, settings_.control, &why) != 0) throw StartupError(why);
  log::get("control")->info("listening on {}", control_->address());
  startAdmin();
}

void Agent::startAdmin() {
  if (settings_.admin.empty()) return;
  admin_ = std::make_unique<http::Server>(loop_, http::ServerOptions{}, [this](std::shared_ptr<http::Exchange> ex) {
    const auto& path = ex->request().path;
    if (path == "/metrics") {
      ex->respond(200, {{"Content-Type", std::string(metrics::kContentType)}}, registry_.render());
    } else if (path == "/health") {
      ex->respond(200, {{"Content-Type", "text/plain"}}, "ok\n");
    } else {
      ex->respond(404, {{"Content-Type", "text/plain"}}, "not found\n");
    }
  });
  for (const auto& address : settings_.admin) {
    std::string why;
    auto listener = Listener::open(loop_, address, {}, &why);
    if (!listener) throw StartupError("cannot listen on " + address.text() + ": " + why);
    const std::string bound = listener->address();
    if (int rc = admin_->addListener(std::move(listener)); rc != 0) {
      throw StartupError("cannot listen on " + address.text() + ": " + uv_strerror(rc));
    }
    log::get("admin")->info("listening on {}", bound);
  }
}

void Agent::reload(Settings settings) {
  if (!(settings.control.listen == settings_.control.listen) || settings.admin != settings_.admin) {
    log_->warn("listen addresses changed: they take effect on restart, not on reload");
  }
  settings.control.listen = settings_.control.listen;
  settings.admin = settings_.admin;
  settings_ = std::move(settings);
  if (!settings_.interrupt_webhook.empty()) {
    try {
      webhook_ = std::make_unique<Webhook>(loop_, settings_.interrupt_webhook);
    } catch (const std::runtime_error& e) {
      log_->error("reload: {}; interrupts use signal {} instead", e.what(), settings_.interrupt_signal);
      webhook_.reset();
    }
  } else {
    webhook_.reset();
  }
  if (supervisor_) supervisor_->reconfigure(supervisorOptions());
}

control::CancelAck Agent::onCancel(const control::PeerCredentials& peer, const control::Cancel& cancel) {
  // The reason is kept as sent, known to this version or not (a newer proxy's), as is the phase;
  // the metric's label is "other" for a reason this version does not know.
  const auto state = supervisor_->cancel(cancel.id, cancel.action, cancel.grace_ms.value_or(0), cancel.reason);
  cancels_->with({std::string(control::actionName(cancel.action)), std::string(control::reasonLabel(cancel.reason)),
                  std::string(control::cancelStateName(state))}).inc();
  if (state == control::CancelState::Running && !cancel.trace_id.empty()) traces_.try_emplace(cancel.id, cancel.trace_id);
  log_->info("cancel rid={} action={} grace_ms={} reason={} phase={} peer_pid={} peer_uid={}: {}{}{}", cancel.id,
             control::actionName(cancel.action), cancel.grace_ms ? std::to_string(*cancel.grace_ms) : "default",
             cancel.reason, cancel.phase.empty() ? "-" : cancel.phase, peer.pid, peer.uid,
             control::cancelStateName(state), cancel.trace_id.empty() ? "" : " trace=", cancel.trace_id);
  return control::CancelAck{cancel.id, state};
}

control::Message Agent::onRegister(const control::PeerCredentials& peer, const control::Register& request) {
  auto refuse = [&](ErrorCode code, std::string message) -> control::Message {
    log_->info("register rid={} from pid={} uid={} refused: {}", request.id, peer.pid, peer.uid, message);
    return control::Error{code, std::move(message), request.id};
  };
  if (!supervise::isValidTargetId(request.id)) return refuse(ErrorCode::BadMessage, "invalid id");
  const int pid = static_cast<int>(request.pid.value_or(peer.pid));
  // DESIGN.md: a peer may register only processes it owns (same uid, or root).
  const auto owner = processUid(pid);
  if (!owner) return refuse(ErrorCode::BadMessage, "no process " + std::to_string(pid));
  if (peer.uid != 0 && *owner != peer.uid) {
    return refuse(ErrorCode::Forbidden, "process " + std::to_string(pid) + " is not the peer's");
  }
  auto adopted = supervisor_->adopt(request.id, pid);
  if (!adopted) {
    const auto& error = adopted.error();
    if (error.code == ECANCELED) return refuse(ErrorCode::Cancelled, "id was cancelled");
    if (error.code == EEXIST) return refuse(ErrorCode::Conflict, "id is already registered");
    if (error.code == ESRCH) return refuse(ErrorCode::BadMessage, "no process " + std::to_string(pid));
    log_->error("register rid={} pid={}: {}", request.id, pid, error.message());
    return control::Error{ErrorCode::BadMessage, error.message(), request.id};
  }
  supervise::Target* target = *adopted;
  control::Registered reply{request.id, std::nullopt};
  if (target->inCgroup()) reply.cgroup = target->cgroupPath();
  if (!request.trace_id.empty()) traces_[request.id] = request.trace_id;
  log_->info("registered rid={} pid={} cgroup={}{}{}", request.id, pid, reply.cgroup.value_or("none"),
             request.trace_id.empty() ? "" : " trace=", request.trace_id);
  return reply;
}

control::Unregistered Agent::onUnregister(const control::PeerCredentials& peer, const control::Unregister& request) {
  supervise::Target* target = supervisor_->find(request.id);
  if (target != nullptr && peer.uid != 0) {
    const auto owner = processUid(target->pid());
    if (owner && *owner != peer.uid) {
      log_->info("unregister rid={} from uid={} refused: not the peer's process", request.id, peer.uid);
      return control::Unregistered{request.id, false};
    }
  }
  const bool found = target != nullptr && supervisor_->release(request.id);
  log_->info("unregister rid={}: {}", request.id, found ? "released" : "unknown");
  return control::Unregistered{request.id, found};
}

nlohmann::json Agent::statusTargets() {
  nlohmann::json targets = nlohmann::json::array();
  const uint64_t now = monotonicNs();
  for (const auto& info : supervisor_->list()) {
    nlohmann::json t{{"id", info.id},
                     {"pid", info.pid},
                     {"cgroup", info.cgroup.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.cgroup)},
                     {"state", supervise::toString(info.state)},
                     {"adopted", info.adopted},
                     {"age_ms", msBetween(info.started_ns, now)}};
    if (auto it = traces_.find(info.id); it != traces_.end()) t["trace_id"] = it->second;
    if (info.cancel) {
      t["cancel"] = {{"action", control::actionName(info.cancel->action)},
                     {"reason", info.cancel->reason},
                     {"received_ms_ago", msBetween(info.cancel->received_ns, now)}};
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

void Agent::onTargetDone(const supervise::Outcome& outcome) {
  std::string how = outcome.released ? "released" : outcome.status.describe();
  std::string trace;
  if (auto it = traces_.find(outcome.id); it != traces_.end()) {
    trace = " trace=" + it->second;
    traces_.erase(it);
  }
  if (outcome.cancel && outcome.cancel->received_ns != 0 && outcome.cancel->exited_ns != 0) {
    const auto& c = *outcome.cancel;
    cancel_to_exit_->get().observe(secondsBetween(c.received_ns, c.exited_ns));
    log_->info("target rid={} pid={} done ({}) after cancel action={} reason={}: signalled +{:.3f} ms, "
               "exited +{:.3f} ms{}{}",
               outcome.id, outcome.pid, how, control::actionName(c.action), c.reason,
               c.signalled_ns ? msBetween(c.received_ns, c.signalled_ns) : 0.0,
               msBetween(c.received_ns, c.exited_ns), c.killed_ns ? " (killed)" : "", trace);
    if (c.interrupt_error) log_->warn("target rid={} interrupt failed: {}", outcome.id, c.interrupt_error.message());
  } else {
    log_->info("target rid={} pid={} done ({})", outcome.id, outcome.pid, how);
  }
  if (outcome.cleanup_error) log_->error("target rid={} cleanup: {}", outcome.id, outcome.cleanup_error.message());
  maybeShutdownDone();
}

void Agent::releaseAll() {
  if (!supervisor_) return;
  for (const auto& info : supervisor_->list()) {
    if (info.adopted) supervisor_->release(info.id);
  }
}

void Agent::maybeShutdownDone() {
  if (!shutdown_done_ || (supervisor_ && supervisor_->size() > 0)) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  done();
}

void Agent::shutdown(std::function<void()> done) {
  log_->info("shutting down: {} target(s) handed back", targets());
  if (control_) control_->close();
  if (admin_) admin_->closeAll();
  shutdown_done_ = std::move(done);
  releaseAll();
  maybeShutdownDone();
}

void Agent::closeNow() {
  if (control_) control_->close();
  if (admin_) admin_->closeAll();
  releaseAll();
  admin_.reset();
  control_.reset();
  webhook_.reset();
  supervisor_.reset();
}

}  // namespace tether::agent::daemon
