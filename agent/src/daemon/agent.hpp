#pragma once
// tether-agent's runtime: the control server's handler on top of the supervision library.
// `register` adopts the peer's process into a fresh cgroup, `cancel` runs the ladder,
// `unregister` hands the process back, `status` lists the targets; /metrics and /health on the
// admin listener.
#include "settings.hpp"
#include "webhook.hpp"

#include "tether/agent/control/server.hpp"
#include "tether/agent/supervise/supervisor.hpp"
#include "tether/common/http_server.hpp"
#include "tether/common/metrics.hpp"

#include <uv.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace tether::agent::daemon {

// A start-up failure: main prints it as `tether-agent: [emerg] ...` and exits 1.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Agent : public control::Handler {
 public:
  Agent(uv_loop_t* loop, Settings settings);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens the cgroup tree, the control socket and the admin listeners, logging
  // `listening on <address>` for each. Throws StartupError.
  void start();

  // SIGHUP: graces, tombstone ttl, interrupt action and log level take effect for what comes
  // next. Listener addresses are not re-opened (a restart changes those); a change is logged.
  void reload(Settings settings);

  // SIGTERM: stop accepting, hand every adopted process back to where it came from (they belong
  // to the service that started them, not to us), close the admin listener. `done` runs when no
  // target is left.
  void shutdown(std::function<void()> done);
  // Second SIGTERM: close everything now (targets still tracked are released, not killed).
  void closeNow();

  // control::Handler
  control::CancelAck onCancel(const control::PeerCredentials& peer, const control::Cancel& cancel) override;
  control::Message onRegister(const control::PeerCredentials& peer, const control::Register& request) override;
  control::Unregistered onUnregister(const control::PeerCredentials& peer, const control::Unregister& request) override;
  nlohmann::json statusTargets() override;

  metrics::Registry& metrics() { return registry_; }
  size_t targets() const { return supervisor_ ? supervisor_->size() : 0; }

 private:
  void startAdmin();
  void onTargetDone(const supervise::Outcome& outcome);
  supervise::SupervisorOptions supervisorOptions();
  void releaseAll();
  void maybeShutdownDone();

  uv_loop_t* loop_;
  Settings settings_;
  std::shared_ptr<spdlog::logger> log_;
  supervise::CgroupTree tree_;
  std::unique_ptr<supervise::Supervisor> supervisor_;
  std::unique_ptr<Webhook> webhook_;
  std::unique_ptr<control::Server> control_;
  std::unique_ptr<http::Server> admin_;
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>* cancels_ = nullptr;
  metrics::Family<metrics::Histogram>* cancel_to_exit_ = nullptr;
  std::function<void()> shutdown_done_;
  // The W3C trace id of a target, by request id, from its register or its cancel frame: shown in
  // the status record and the target's last line, dropped when the target is done (so bounded
  // by the targets).
  std::unordered_map<std::string, std::string> traces_;
};

}  // namespace tether::agent::daemon
