#pragma once
// The control server's handler for solverd (control_handler.cpp); internal to the daemon.
#include "tether/agent/control/server.hpp"
#include "tether/solverd/daemon.hpp"

namespace tether::solverd {

class Daemon::ControlHandler final : public agent::control::Handler {
 public:
  explicit ControlHandler(Daemon& daemon) : daemon_(daemon) {}
  agent::control::CancelAck onCancel(const agent::control::PeerCredentials& peer,
                                     const agent::control::Cancel& cancel) override;
  nlohmann::json statusTargets() override;

 private:
  Daemon& daemon_;
};

}  // namespace tether::solverd
