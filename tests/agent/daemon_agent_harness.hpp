#pragma once
// A real tether-agent for one test: its own directory, control socket, admin port and cgroup root.
#include "control_test_support.hpp"
#include "daemon_test_support.hpp"
#include "tether/agent/control/blocking_client.hpp"

#include <fstream>

namespace tether::agent::test {

class AgentProcess {
 public:
  // `extra` is appended to the configuration (interrupt, graces, ...), `control_extra` to the
  // control block (allow rules).
  void start(const std::string& extra = {}, const std::string& control_extra = {}) {
    // Other users reach the socket in the tests that act as them; the socket's own mode and
    // SO_PEERCRED decide.
    chmod(dir_.path().c_str(), 0755);
    socket_ = dir_.file("a.sock");
    config_ = dir_.file("agent.conf");
    std::ofstream conf(config_);
    conf << "error_log stderr debug;\n"
         << "control { listen unix:" << socket_ << "; mode 0666; " << control_extra << " }\n"
         << "admin { listen 127.0.0.1:0; }\n";
    if (!cgroup_.path().empty()) conf << "cgroup_root " << cgroup_.path() << ";\n";
    conf << extra << "\n";
    conf.close();
    ASSERT_NO_FATAL_FAILURE(child_.start({binPath("tether-agent"), "-c", config_}));
    ASSERT_TRUE(child_.waitForLine("listening on unix:" + socket_)) << child_.text();
    admin_port_ = portOf(child_.waitForLine("admin: listening on 127.0.0.1:"));
    ASSERT_NE(admin_port_, 0) << child_.text();
  }

  // One request on a fresh connection.
  control::Message request(const control::Message& message) {
    control::BlockingConnection c;
    control::Message reply = control::Error{control::ErrorCode::BadFrame, "no reply", {}};
    EXPECT_EQ(c.connect(socket_, 2s), 0);
    EXPECT_EQ(c.request(message, reply, 2s), 0);
    return reply;
  }

  control::CancelAck cancel(const std::string& id, control::Action action, uint32_t grace_ms) {
    control::Cancel c;
    c.id = id;
    c.action = action;
    c.grace_ms = grace_ms;
    c.phase = "awaiting_response";
    auto reply = request(c);
    EXPECT_TRUE(std::holds_alternative<control::CancelAck>(reply)) << control::toJson(reply).dump();
    return std::holds_alternative<control::CancelAck>(reply) ? std::get<control::CancelAck>(reply) : control::CancelAck{};
  }

  // The ids of the targets the agent tracks.
  std::vector<std::string> targetIds() {
    auto reply = request(control::Status{});
    std::vector<std::string> ids;
    if (const auto* s = std::get_if<control::Status>(&reply); s != nullptr && s->targets) {
      for (const auto& t : *s->targets) ids.push_back(t["id"].get<std::string>());
    }
    return ids;
  }

  bool tracks(const std::string& id) {
    auto ids = targetIds();
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  }

  // Stops the agent and checks that it logged no error and left no cgroup behind.
  void stopAndCheck() {
    const int status = child_.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << child_.text();
    const std::string log = child_.text();
    EXPECT_EQ(log.find("[error]"), std::string::npos) << log;
    EXPECT_TRUE(cgroup_.leftovers().empty()) << "cgroups left: " << cgroup_.leftovers().size();
  }

  const std::string& socket() const { return socket_; }
  uint16_t adminPort() const { return admin_port_; }
  Child& child() { return child_; }
  const control::test::TempDir& dir() const { return dir_; }
  bool hasCgroups() const { return !cgroup_.path().empty(); }

 private:
  control::test::TempDir dir_;
  CgroupRoot cgroup_;
  Child child_;
  std::string socket_;
  std::string config_;
  uint16_t admin_port_ = 0;
};

}  // namespace tether::agent::test
