// The proxy's control client against a real server on the same loop: delivery, queueing while
// the server is down, the queue bound, reconnect after a restart, backoff.
#include "control_test_support.hpp"
#include "tether/agent/control/client.hpp"
#include "tether/common/clock.hpp"

#include <gtest/gtest.h>

namespace tether::agent::control {
namespace {

using namespace std::chrono_literals;
using test::RecordingHandler;
using test::runUntil;
using test::TempDir;
using test::TestLoop;

struct Recorder {
  std::vector<CancelAck> acks;
  std::vector<std::string> dropped;
  std::vector<std::pair<uint64_t, uint64_t>> sent;  // event_ns, written_ns
  int ups = 0;
  int downs = 0;
  bool up = false;

  ClientEvents events() {
    ClientEvents e;
    e.on_ack = [this](const CancelAck& ack, uint64_t) { acks.push_back(ack); };
    e.on_dropped = [this](const Cancel& c) { dropped.push_back(c.id); };
    e.on_sent = [this](const Cancel&, uint64_t event_ns, uint64_t written_ns) { sent.emplace_back(event_ns, written_ns); };
    e.on_connection = [this](bool connected, int) {
      up = connected;
      (connected ? ups : downs)++;
    };
    return e;
  }
};

ClientOptions fastOptions(const std::string& path) {
  ClientOptions o;
  o.path = path;
  o.backoff_initial = 5ms;
  o.backoff_max = 20ms;
  return o;
}

std::unique_ptr<Server> startServer(uv_loop_t* loop, Handler& handler, const std::string& path) {
  ServerOptions options;
  options.path = path;
  auto server = std::make_unique<Server>(loop, handler, options);
  std::string why;
  EXPECT_EQ(server->listen(&why), 0) << why;
  return server;
}

// Members are destroyed in reverse order: the loop goes last, after every handle is closed.
class ControlClient : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("c.sock"); }

  TestLoop loop_;
  TempDir dir_;
  RecordingHandler handler_;
  Recorder rec_;
};

TEST_F(ControlClient, CancelIsWrittenAfterHelloAndTheAckIsReported) {
  auto server = startServer(loop_.get(), handler_, path());
  Client client(loop_.get(), fastOptions(path()), rec_.events());
  client.start();
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.up; }));

  const uint64_t disconnect_ns = monotonicNs();
  EXPECT_TRUE(client.sendCancel(Cancel{"abc", Action::Interrupt, 5000, "client_disconnect", "awaiting_response"},
                                disconnect_ns));
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 1; }));
  EXPECT_EQ(rec_.acks[0].id, "abc");
  EXPECT_EQ(rec_.acks[0].state, CancelState::Running);
  ASSERT_EQ(rec_.sent.size(), 1u);
  EXPECT_EQ(rec_.sent[0].first, disconnect_ns);
  EXPECT_GE(rec_.sent[0].second, disconnect_ns);
  EXPECT_EQ(client.counters().sent, 1u);
  EXPECT_EQ(client.counters().acked, 1u);
  EXPECT_EQ(client.unacked(), 0u);
  ASSERT_EQ(handler_.cancels.size(), 1u);
  EXPECT_EQ(handler_.cancels[0].grace_ms, 5000u);
  EXPECT_EQ(handler_.cancels[0].phase, "awaiting_response");
  client.close();
  server->close();
}

TEST_F(ControlClient, CancelsQueuedWhileTheServerIsDownAreDeliveredWhenItComesUp) {
  Client client(loop_.get(), fastOptions(path()), rec_.events());
  client.start();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(client.sendCancel(test::cancelOf("q" + std::to_string(i))));
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return client.counters().connect_failures >= 2; }));
  EXPECT_EQ(client.queued(), 3u);
  EXPECT_EQ(client.counters().sent, 0u);

  auto server = startServer(loop_.get(), handler_, path());
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 3; }));
  ASSERT_EQ(handler_.cancels.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(handler_.cancels[static_cast<size_t>(i)].id, "q" + std::to_string(i));
  EXPECT_EQ(client.queued(), 0u);
  EXPECT_EQ(client.counters().dropped, 0u);
  client.close();
  server->close();
}

TEST_F(ControlClient, FullQueueDropsTheNewestAndCountsIt) {
  auto options = fastOptions(path());
  options.queue_limit = 3;
  Client client(loop_.get(), options, rec_.events());
  client.start();
  int accepted = 0;
  for (int i = 0; i < 5; ++i) accepted += client.sendCancel(test::cancelOf("d" + std::to_string(i))) ? 1 : 0;
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ(client.counters().dropped, 2u);
  EXPECT_EQ(rec_.dropped, (std::vector<std::string>{"d3", "d4"}));
  EXPECT_EQ(client.queued(), 3u);

  auto server = startServer(loop_.get(), handler_, path());
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 3; }));
  EXPECT_EQ(client.counters().acked, 3u);
  client.close();
  server->close();
}

TEST_F(ControlClient, ReconnectsAfterTheServerRestarts) {
  auto server = startServer(loop_.get(), handler_, path());
  Client client(loop_.get(), fastOptions(path()), rec_.events());
  client.start();
  ASSERT_TRUE(client.sendCancel(test::cancelOf("before")));
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 1; }));

  server->close();  // the daemon goes away: the client sees end of file
  server.reset();
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return !rec_.up && rec_.downs >= 1; }));
  ASSERT_TRUE(client.sendCancel(test::cancelOf("while_down")));  // waits in the queue

  RecordingHandler handler2;
  server = startServer(loop_.get(), handler2, path());
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 2; }));
  EXPECT_EQ(rec_.acks[1].id, "while_down");
  EXPECT_EQ(client.counters().reconnects, 1u);
  ASSERT_TRUE(client.sendCancel(test::cancelOf("after")));
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 3; }));
  EXPECT_EQ(handler2.cancels.size(), 2u);
  client.close();
  server->close();
}

TEST_F(ControlClient, BackoffDoublesUpToTheCapWhileNoServerListens) {
  ClientOptions options;
  options.path = path();
  options.backoff_initial = 10ms;
  options.backoff_max = 40ms;
  Client client(loop_.get(), options);
  client.start();
  const auto start = std::chrono::steady_clock::now();
  // Attempts at about 0, 10, 30, 70, 110, 150, 190 ms: the 7th failure comes after ~190 ms
  // (without backoff it would come within a millisecond).
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return client.counters().connect_failures >= 7; }, 3s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 150ms) << "attempts came faster than the backoff allows";
  client.close();
}

// Regression for bench/load_10k.sh: thousands of clients leave in one loop turn and the proxy
// sends all their cancels before the server has read one. With the default queue bound none is
// dropped, and every one is acknowledged over the one connection.
TEST_F(ControlClient, BurstOfTwentyThousandCancelsInOneLoopTurnIsAllAckedWithNoDrop) {
  constexpr size_t kCancels = 20000;
  auto server = startServer(loop_.get(), handler_, path());
  Client client(loop_.get(), fastOptions(path()), rec_.events());
  client.start();
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.up; }));
  for (size_t i = 0; i < kCancels; ++i) {
    ASSERT_TRUE(client.sendCancel(Cancel{"burst-" + std::to_string(i), Action::Interrupt, 5000, "client_disconnect",
                                         "awaiting_response"}))
        << "dropped cancel " << i;
  }
  // A bound on liveness, not on speed (the burst takes seconds under ASan on a busy CI machine).
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == kCancels; }, 90s))
      << rec_.acks.size() << " acks, " << client.queued() << " queued, " << client.unacked() << " unacked";
  EXPECT_EQ(client.counters().dropped, 0u);
  EXPECT_EQ(client.counters().sent, kCancels);
  EXPECT_EQ(client.counters().reconnects, 0u);
  EXPECT_EQ(client.unacked(), 0u);
  EXPECT_EQ(rec_.ups, 1);
  EXPECT_EQ(rec_.downs, 0);
  EXPECT_EQ(handler_.cancels.size(), kCancels);
  for (size_t i = 0; i < kCancels; i += 997) EXPECT_EQ(rec_.acks[i].id, "burst-" + std::to_string(i));
  client.close();
  server->close();
}

TEST_F(ControlClient, SendAfterCloseIsDropped) {
  Client client(loop_.get(), fastOptions(path()));
  client.start();
  client.close();
  EXPECT_FALSE(client.sendCancel(test::cancelOf("late")));
  EXPECT_EQ(client.counters().dropped, 1u);
}

}  // namespace
}  // namespace tether::agent::control

namespace tether::agent::control {
namespace {

// The daemon opens the listener itself (as for `listen systemd:control;`) and hands it over.
TEST_F(ControlClient, ServerAcceptsOnAListenerTheDaemonOpened) {
  config::Address address;
  address.kind = config::Address::Kind::Unix;
  address.path = path();
  std::string why;
  auto listener = Listener::open(loop_.get(), address, {}, &why);
  ASSERT_TRUE(listener) << why;
  Server server(loop_.get(), handler_, ServerOptions{});
  ASSERT_EQ(server.listen(std::move(listener)), 0);
  EXPECT_EQ(server.address(), "unix:" + path());
  Client client(loop_.get(), fastOptions(path()), rec_.events());
  client.start();
  ASSERT_TRUE(client.sendCancel(test::cancelOf("via-listener")));
  ASSERT_TRUE(runUntil(loop_.get(), [&] { return rec_.acks.size() == 1; }));
  EXPECT_EQ(handler_.cancels.at(0).id, "via-listener");
  client.close();
  server.close();
}

}  // namespace
}  // namespace tether::agent::control
