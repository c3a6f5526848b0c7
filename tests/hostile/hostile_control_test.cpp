// Bad input on the control sockets (issue 7): malformed, oversized, truncated and unknown frames,
// forged ids, and a flood of cancels for unknown ids, against solverd and tether-agent. Each bad
// frame gets an `error` reply (and a close where the stream cannot be resynchronized), the daemon
// keeps running, and the tombstones that unknown ids leave stay bounded in memory.
#include "support.hpp"

#include "tether/agent/control/frame.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

namespace tether::hostile {
namespace {

namespace control = tether::agent::control;

// A raw control connection: bytes out as a broken peer would send them, frames in.
class RawPeer {
 public:
  explicit RawPeer(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawPeer() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool send(const std::string& bytes) { return sendAll(fd_, bytes); }
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next frame, or nullopt on close, error or timeout (`closed` tells which).
  std::optional<nlohmann::json> next(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      nlohmann::json out;
      control::ProtocolError error;
      auto r = decoder_.next(out, error);
      if (r == control::FrameDecoder::Result::Frame) return out;
      if (r == control::FrameDecoder::Result::Error || closed_) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return std::nullopt;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        continue;  // frames already buffered are still returned
      }
      decoder_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  // True once the server has closed the connection (within `timeout`).
  bool closedWithin(std::chrono::milliseconds timeout) {
    while (!closed_ && next(timeout)) {
    }
    return closed_;
  }

 private:
  int fd_ = -1;
  control::FrameDecoder decoder_;
  bool closed_ = false;
};

std::string lengthPrefix(uint32_t n) {
  std::string b(4, '\0');
  for (int i = 0; i < 4; ++i) b[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return b;
}

// Every malformed frame against the control socket at `path`: error reply, close where needed.
void abuseFrames(const std::string& path) {
  struct Case {
    std::string name;
    std::string bytes;
    std::string code;   // the expected error code
    bool closes;        // the stream cannot continue after it
  };
  std::vector<Case> cases = {
      {"zero length", lengthPrefix(0), "bad_frame", true},
      {"length over 1 MiB", lengthPrefix(control::kMaxFrameLength + 1), "bad_frame", true},
      {"length 4 GiB - 1", lengthPrefix(0xffffffffu), "bad_frame", true},
      {"bad JSON", control::encodeRawFrame("{\"type\":"), "bad_frame", true},
      {"JSON array", control::encodeRawFrame("[1,2,3]"), "bad_frame", true},
      {"JSON string", control::encodeRawFrame("\"cancel\""), "bad_frame", true},
      {"invalid UTF-8", control::encodeRawFrame("{\"type\":\"cancel\",\"id\":\"\xff\xfe\"}"), "", true},
      {"NUL inside", control::encodeRawFrame(std::string("{\"type\":\"st\0tus\"}", 17)), "", true},
      {"unknown type", control::encodeFrame({{"type", "explode"}}), "unknown_type", false},
      {"no type", control::encodeFrame({{"id", "x"}}), "", false},
      {"cancel without id", control::encodeFrame({{"type", "cancel"}, {"action", "kill"}}), "bad_message", false},
      {"cancel with a numeric id", control::encodeFrame({{"type", "cancel"}, {"id", 42}, {"action", "kill"}}),
       "bad_message", false},
      {"cancel with an unknown action",
       control::encodeFrame({{"type", "cancel"}, {"id", tether::test::newId()}, {"action", "nuke"}}), "bad_message",
       false},
  };
  for (const auto& k : cases) {
    RawPeer p(path);
    ASSERT_TRUE(p.ok()) << path;
    ASSERT_TRUE(p.send(k.bytes)) << k.name;
    auto reply = p.next();
    ASSERT_TRUE(reply) << k.name << ": no reply";
    EXPECT_EQ(reply->value("type", std::string{}), "error") << k.name << ": " << reply->dump();
    if (!k.code.empty()) {
      EXPECT_EQ(reply->value("code", std::string{}), k.code) << k.name << ": " << reply->dump();
    }
    if (k.closes) {
      EXPECT_TRUE(p.closedWithin(5s)) << k.name << ": connection left open after a bad frame";
    }
  }

  // Forged ids (path traversal, huge, empty-ish): refused or acknowledged as unknown; never a crash.
  for (std::string id : {std::string("../../../../sys/fs/cgroup"), std::string(100000, 'f'), std::string(" "),
                         std::string("job-") + tether::test::newId()}) {
    RawPeer p(path);
    ASSERT_TRUE(p.send(control::encodeFrame(tether::test::cancelFrame(id, "kill"))));
    auto reply = p.next();
    ASSERT_TRUE(reply) << "forged id of " << id.size() << " bytes: no reply";
    std::string type = reply->value("type", std::string{});
    EXPECT_TRUE(type == "error" || (type == "cancel_ack" && reply->value("state", std::string{}) == "unknown"))
        << reply->dump().substr(0, 300);
  }

  // Truncated: a header promising 100 bytes, 10 of them, then the peer leaves; and a frame of
  // exactly the maximum length (valid framing, the payload is one long string).
  {
    RawPeer p(path);
    p.send(lengthPrefix(100) + std::string(10, '{'));
    p.shutdownWrite();
    EXPECT_TRUE(p.closedWithin(5s));
  }
  {
    std::string filler(control::kMaxFrameLength - 40, 'a');
    std::string payload = "{\"type\":\"status\",\"pad\":\"" + filler + "\"}";
    payload.resize(control::kMaxFrameLength - 2);
    payload += "\"}";
    RawPeer p(path);
    ASSERT_TRUE(p.send(control::encodeRawFrame(payload)));
    auto reply = p.next();
    ASSERT_TRUE(reply) << "no reply to a maximum-length frame";
  }
}

#if defined(__SANITIZE_ADDRESS__)
constexpr long kAsanQuarantineKb = 1024;
#else
constexpr long kAsanQuarantineKb = 0;
#endif

// Under AddressSanitizer, freed memory waits in a quarantine (256 MB by default) before it can be
// reused, so a daemon's RSS grows with everything it frees until the quarantine is full: the very
// growth the flood below looks for. The daemons this test starts get a 1 MB quarantine instead
// (their children inherit the environment), and the bound allows for it; without ASan this does
// nothing. The test binary's own options were read at its start and do not change.
class SmallAsanQuarantineForDaemons {
 public:
  SmallAsanQuarantineForDaemons() {
    if (kAsanQuarantineKb == 0) return;
    const char* old = std::getenv("ASAN_OPTIONS");
    if (old != nullptr) saved_ = old;
    std::string opts = saved_.value_or("");
    if (!opts.empty()) opts += ":";
    opts += "quarantine_size_mb=" + std::to_string(kAsanQuarantineKb / 1024) + ":thread_local_quarantine_size_kb=64";
    ::setenv("ASAN_OPTIONS", opts.c_str(), 1);
  }
  ~SmallAsanQuarantineForDaemons() {
    if (kAsanQuarantineKb == 0) return;
    if (saved_) {
      ::setenv("ASAN_OPTIONS", saved_->c_str(), 1);
    } else {
      ::unsetenv("ASAN_OPTIONS");
    }
  }
  SmallAsanQuarantineForDaemons(const SmallAsanQuarantineForDaemons&) = delete;
  SmallAsanQuarantineForDaemons& operator=(const SmallAsanQuarantineForDaemons&) = delete;

 private:
  std::optional<std::string> saved_;
};

// 100,000 cancels for unknown ids on one connection, twice: the second round must not grow the
// daemon, since the tombstones are bounded (the first round may fill them up).
void floodUnknownCancels(const std::string& path, pid_t pid, const char* who) {
  constexpr int kPerRound = 100000;
  long rss[3] = {vmRssKb(pid), 0, 0};
  for (int round = 1; round <= 2; ++round) {
    RawPeer p(path);
    ASSERT_TRUE(p.ok());
    // Batches of 1,000 with at most 2,000 acks outstanding: a fast peer that reads its replies
    // (the server closes one that lets more than 1 MiB of replies pile up).
    constexpr int kBatch = 1000;
    int acks = 0, sent = 0;
    std::string other;
    bool broken = false;
    while (acks < kPerRound && !broken) {
      if (sent < kPerRound && sent - acks <= kBatch) {
        std::string batch;
        for (int i = 0; i < kBatch; ++i) {
          batch += control::encodeFrame(tether::test::cancelFrame(tether::test::newId(), "interrupt"));
        }
        broken = !p.send(batch);
        sent += kBatch;
        continue;
      }
      auto f = p.next(20s);
      if (!f) break;
      if (f->value("type", std::string{}) == "cancel_ack") {
        ++acks;
      } else if (other.empty()) {
        other = f->dump();
      }
    }
    bool closed = p.closedWithin(0ms);
    EXPECT_EQ(acks, kPerRound) << who << " round " << round << (closed ? ": closed the connection" : ": stalled")
                               << (other.empty() ? "" : ", first other reply " + other);
    rss[round] = vmRssKb(pid);
  }
  std::printf("[ measure  ] %s VmRSS %ld kB -> %ld kB after 100k unknown-id cancels -> %ld kB after 100k more\n", who,
              rss[0], rss[1], rss[2]);
  EXPECT_LT(rss[2] - rss[1], 4096 + kAsanQuarantineKb)
      << who << " keeps growing with tombstones: " << rss[1] << " -> " << rss[2] << " kB";
}

class ControlAbuseTest : public HostileTest {};

TEST_F(ControlAbuseTest, SolverdAnswersEveryBadFrameWithAnErrorAndKeepsTombstonesBounded) {
  SmallAsanQuarantineForDaemons quarantine;
  SolverHost host(cgroup_root_, {});
  ASSERT_TRUE(host.startSolverd()) << host.solverd()->output();
  const pid_t pid = host.solverd()->pid();
  const int fds = fdCount(pid);
  abuseFrames(host.controlPath());
  floodUnknownCancels(host.controlPath(), pid, "solverd");
  EXPECT_TRUE(tether::test::waitFor([&] { return fdCount(pid) <= fds; }, 5s)) << fds << " -> " << fdCount(pid);
  auto health = host.solverdGet("/health");
  EXPECT_TRUE(health && health->status == 200);
  auto errors = host.errorLines();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST_F(ControlAbuseTest, AgentAnswersEveryBadFrameWithAnErrorAndKeepsTombstonesBounded) {
  if (!std::filesystem::exists(tether::test::binPath("tether-agent"))) GTEST_SKIP() << "tether-agent is not built";
  char tmpl[] = "/tmp/hag-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string sock = dir + "/agent.sock", conf = dir + "/agent.conf";
  SmallAsanQuarantineForDaemons quarantine;
  std::ofstream(conf) << "error_log stderr info;\ncontrol { listen unix:" << sock
                      << "; }\nadmin { listen 127.0.0.1:0; }\ncgroup_root " << cgroup_root_ << ";\n";
  {
    Process agent({tether::test::binPath("tether-agent"), "-c", conf});
    std::vector<std::string> m;
    ASSERT_TRUE(agent.waitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 10s, &m)) << agent.output();
    ASSERT_TRUE(agent.waitForLine("listening on unix:" + sock, 10s)) << agent.output();
    const int fds = fdCount(agent.pid());
    abuseFrames(sock);
    floodUnknownCancels(sock, agent.pid(), "tether-agent");
    EXPECT_TRUE(tether::test::waitFor([&] { return fdCount(agent.pid()) <= fds; }, 5s));
    auto health = tether::test::httpRequest(static_cast<uint16_t>(std::stoi(m[1])), "GET", "/health");
    EXPECT_TRUE(health && health->status == 200);
    for (auto& l : agent.lines()) EXPECT_EQ(l.find("[error]"), std::string::npos) << l;
    agent.signal(SIGTERM);
    EXPECT_TRUE(agent.wait(10s));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tether::hostile
