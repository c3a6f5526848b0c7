// HTTP/2 through the real tether-proxy binary: each stream is a request, a reset stream is a
// disconnect of that stream only (499, one cancel frame), a GOAWAY with an error ends every open
// stream, grpc-timeout is a deadline, and abuse gets the right GOAWAY or RST_STREAM. The client
// is nghttp2's own client session over a blocking socket (a real HTTP/2 implementation; the
// python3-h2, curl and grpcio tests beside these drive the same paths from other stacks).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "harness.hpp"

namespace tether::proxy::test {
namespace {

struct Stream {
  std::map<std::string, std::string> headers;   // response head (":status" included)
  std::map<std::string, std::string> trailers;
  std::string body;
  bool closed = false;
  uint32_t error = 0;  // the RST_STREAM code that closed it, 0 for a clean end
  bool head_done = false;
};

// A blocking HTTP/2 client (prior knowledge) on nghttp2's client session.
class H2Client {
 public:
  explicit H2Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                uint8_t, void* u) {
          Stream& s = static_cast<H2Client*>(u)->streams_[f->hd.stream_id];
          (s.head_done ? s.trailers : s.headers)[std::string(reinterpret_cast<const char*>(n), nl)] =
              std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      auto* self = static_cast<H2Client*>(u);
      if (f->hd.type == NGHTTP2_HEADERS) self->streams_[f->hd.stream_id].head_done = true;
      if (f->hd.type == NGHTTP2_GOAWAY) {
        self->goaway_ = true;
        self->goaway_code_ = f->goaway.error_code;
      }
      return 0;
    });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
          static_cast<H2Client*>(u)->streams_[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t id, uint32_t e, void* u) {
      Stream& s = static_cast<H2Client*>(u)->streams_[id];
      s.closed = true;
      s.error = e;
      return 0;
    });
    nghttp2_session_client_new(&ng_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, nullptr, 0);
    flush();
  }
  ~H2Client() {
    nghttp2_session_del(ng_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  int32_t get(const std::string& path, std::vector<std::pair<std::string, std::string>> extra = {},
              const std::string& method = "GET") {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", method}, {":scheme", "http"}, {":authority", "test"}, {":path", path}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nv;
    for (auto& [n, v] : h) {
      nv.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    int32_t id = nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    streams_[id];
    flush();
    return id;
  }
  void reset(int32_t id, uint32_t code = NGHTTP2_CANCEL) {
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, code);
    flush();
  }
  void goaway(uint32_t code) {
    nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, 0, code, nullptr, 0);
    flush();
  }
  // Raw bytes after the session's own (a hand-made frame).
  void raw(const std::string& bytes) { ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())); }

  // Reads and answers until `done` holds, the peer closes or the timeout passes.
  bool pump(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5000ms) {
    auto end = Clock::now() + timeout;
    while (!done()) {
      if (eof_ || Clock::now() > end) return done();
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[16384];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      nghttp2_session_mem_recv(ng_, reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n));
      flush();
    }
    return true;
  }
  Stream& stream(int32_t id) { return streams_[id]; }
  bool goaway() const { return goaway_; }
  uint32_t goawayCode() const { return goaway_code_; }
  bool eof() const { return eof_; }

 private:
  void flush() {
    const uint8_t* d = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(ng_, &d)) > 0) {
      if (::send(fd_, d, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return;
    }
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  bool goaway_ = false;
  uint32_t goaway_code_ = 0;
  nghttp2_session* ng_ = nullptr;
  std::map<int32_t, Stream> streams_;
};

class ProxyHttp2 : public ::testing::Test {
 protected:
  void start(const std::string& on_disconnect = "interrupt", const std::string& server_extra = "") {
    control_ = std::make_unique<ControlListener>(dir_.file("c.sock"));
    dir_.write("p.conf", basicConfig(upstream_.port(), control_->path(), on_disconnect, "",
                                     "http2 on;\n" + server_extra));
    proxy_ = std::make_unique<ProxyProcess>(dir_.file("p.conf"));
    ASSERT_TRUE(proxy_->waitListening(1));
  }
  std::vector<std::string> accessLines(const std::string& needle) {
    std::vector<std::string> out;
    for (auto& l : proxy_->linesContaining(needle)) {
      if (l.find("HTTP/2.0\"") != std::string::npos) out.push_back(l);
    }
    return out;
  }
  TempDir dir_;
  TestUpstream upstream_;
  std::unique_ptr<ControlListener> control_;
  std::unique_ptr<ProxyProcess> proxy_;
};

TEST_F(ProxyHttp2, StreamsAndHttp11ShareTheListener) {
  start();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.connected());
  int32_t a = c.get("/fast"), b = c.get("/fast");
  ASSERT_TRUE(c.pump([&] { return c.stream(a).closed && c.stream(b).closed; }));
  EXPECT_EQ(c.stream(a).headers[":status"], "200");
  EXPECT_EQ(c.stream(a).body, "hello");
  EXPECT_NE(c.stream(a).headers["x-request-id"], c.stream(b).headers["x-request-id"]);
  EXPECT_EQ(c.stream(a).headers["x-request-id"].size(), 32u);
  Client h1(proxy_->port());
  ASSERT_TRUE(h1.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(statusOf(h1.readResponse()), 200);
  EXPECT_TRUE(waitUntil([&] { return accessLines("\"GET /fast HTTP/2.0\" 200").size() == 2; }));
  EXPECT_TRUE(proxy_->errorLines().empty());
}

TEST_F(ProxyHttp2, AResetStreamIsADisconnectAndItsNeighbourCompletes) {
  start();
  H2Client c(proxy_->port());
  int32_t held = c.get("/hold");
  int32_t slow = c.get("/slow/300");
  ASSERT_TRUE(upstream_.waitFor([](auto& r) { return r.size() == 2; }));
  std::string held_id;
  for (auto& r : upstream_.requests()) {
    if (r.path == "/hold") held_id = r.request_id;
  }
  c.reset(held);
  ASSERT_TRUE(control_->waitForCancels(1));
  auto cancel = control_->cancels()[0];
  EXPECT_EQ(cancel["id"], held_id);
  EXPECT_EQ(cancel["reason"], "client_disconnect");
  EXPECT_EQ(cancel["phase"], "awaiting_response");
  ASSERT_TRUE(c.pump([&] { return c.stream(slow).closed; }));
  EXPECT_EQ(c.stream(slow).headers[":status"], "200");
  EXPECT_EQ(c.stream(slow).error, 0u);
  EXPECT_TRUE(upstream_.waitFor([&](auto& rs) {
    for (auto& r : rs) {
      if (r.request_id == held_id) return r.peer_closed;
    }
    return false;
  }));
  EXPECT_TRUE(waitUntil([&] { return accessLines("\" 499 ").size() == 1; }));
  EXPECT_NE(accessLines("\" 499 ")[0].find("cause=reset"), std::string::npos);
  EXPECT_EQ(control_->cancels().size(), 1u);  // the neighbour sent none
}

TEST_F(ProxyHttp2, GoawayWithAnErrorEndsEveryOpenStreamAndNoErrorLetsThemFinish) {
  start();
  {
    H2Client c(proxy_->port());
    c.get("/hold");
    c.get("/hold");
    ASSERT_TRUE(upstream_.waitFor([](auto& r) { return r.size() == 2; }));
    c.goaway(NGHTTP2_INTERNAL_ERROR);
    ASSERT_TRUE(control_->waitForCancels(2));
  }
  H2Client c(proxy_->port());
  int32_t s = c.get("/slow/200");
  ASSERT_TRUE(upstream_.waitFor([](auto& r) { return r.size() == 3; }));
  c.goaway(NGHTTP2_NO_ERROR);
  ASSERT_TRUE(c.pump([&] { return c.stream(s).closed; }));
  EXPECT_EQ(c.stream(s).headers[":status"], "200");
  EXPECT_EQ(control_->cancels().size(), 2u);
}

TEST_F(ProxyHttp2, GrpcTimeoutIsTheDeadlineGrpcStatus4AndACancelWithReasonDeadline) {
  start();
  H2Client c(proxy_->port());
  int32_t s = c.get("/hold", {{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "300m"}},
                    "POST");
  ASSERT_TRUE(upstream_.waitFor([](auto& r) { return r.size() == 1; }));
  auto seen = upstream_.requests()[0];
  ASSERT_TRUE(seen.headers.count("request-timeout"));
  double budget = std::stod(seen.headers["request-timeout"]);
  EXPECT_GT(budget, 0.1);
  EXPECT_LE(budget, 0.3);
  ASSERT_TRUE(c.pump([&] { return c.stream(s).closed; }));
  EXPECT_EQ(c.stream(s).headers[":status"], "200");
  EXPECT_EQ(c.stream(s).headers["grpc-status"], "4");
  ASSERT_TRUE(control_->waitForCancels(1));
  EXPECT_EQ(control_->cancels()[0]["reason"], "deadline");
  EXPECT_TRUE(waitUntil([&] { return !accessLines("cause=deadline").empty(); }));
}

TEST_F(ProxyHttp2, RequestTimeoutOnHttp11Gives504AndADeadlineCancel) {
  start();
  Client h1(proxy_->port());
  ASSERT_TRUE(h1.send("GET /hold HTTP/1.1\r\nHost: t\r\nRequest-Timeout: 0.2\r\n\r\n"));
  EXPECT_EQ(statusOf(h1.readResponse()), 504);
  ASSERT_TRUE(control_->waitForCancels(1));
  EXPECT_EQ(control_->cancels()[0]["reason"], "deadline");
  Client bad(proxy_->port());
  ASSERT_TRUE(bad.send("GET /fast HTTP/1.1\r\nHost: t\r\nRequest-Timeout: soon\r\n\r\n"));
  EXPECT_EQ(statusOf(bad.readResponse()), 400);
}

TEST_F(ProxyHttp2, RapidResetGetsEnhanceYourCalmAndItsCancelsAreBounded) {
  start("interrupt", "http2_max_concurrent_streams 4;\n");
  H2Client other(proxy_->port());
  H2Client c(proxy_->port());
  for (int i = 0; i < 40; ++i) c.reset(c.get("/hold"));
  ASSERT_TRUE(c.pump([&] { return c.goaway(); }));
  EXPECT_EQ(c.goawayCode(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  // Cancels are bounded per connection: at most http2_max_concurrent_streams a second (plus the
  // streams the GOAWAY itself ended, which are disconnects too, within the same bound).
  std::this_thread::sleep_for(200ms);  // let stray frames arrive before counting (a bound, not a sync)
  EXPECT_LE(control_->cancels().size(), 4u);
  int32_t s = other.get("/fast");
  ASSERT_TRUE(other.pump([&] { return other.stream(s).closed; }));
  EXPECT_EQ(other.stream(s).headers[":status"], "200");
}

TEST_F(ProxyHttp2, OversizedHeaderListGets431OnItsStreamOnly) {
  start("interrupt", "http2_max_header_list_size 4k;\n");
  H2Client c(proxy_->port());
  int32_t big = c.get("/fast", {{"x-big", std::string(6000, 'v')}});
  int32_t ok = c.get("/fast");
  ASSERT_TRUE(c.pump([&] { return c.stream(big).closed && c.stream(ok).closed; }));
  EXPECT_EQ(c.stream(big).headers[":status"], "431");
  EXPECT_EQ(c.stream(ok).headers[":status"], "200");
}

TEST_F(ProxyHttp2, DrainSendsGoawayNoErrorAndTheOpenStreamFinishes) {
  start();
  H2Client c(proxy_->port());
  int32_t s = c.get("/slow/400");
  ASSERT_TRUE(upstream_.waitFor([](auto& r) { return r.size() == 1; }));
  ASSERT_EQ(::kill(proxy_->pid(), SIGTERM), 0);
  ASSERT_TRUE(c.pump([&] { return c.goaway(); }));
  EXPECT_EQ(c.goawayCode(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  ASSERT_TRUE(c.pump([&] { return c.stream(s).closed; }));
  EXPECT_EQ(c.stream(s).headers[":status"], "200");
  EXPECT_EQ(c.stream(s).error, 0u);
  EXPECT_EQ(proxy_->stop(), 0);  // the drain ended with the stream: a clean exit
  EXPECT_TRUE(control_->cancels().empty());
}

TEST_F(ProxyHttp2, AnInvalidPrefaceGetsGoawayProtocolError) {
  start();
  Client raw(proxy_->port());
  ASSERT_TRUE(raw.send("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
  std::string got = raw.readUntilClosed();
  // A GOAWAY frame: type 0x7 at byte 3 of a frame header, error code PROTOCOL_ERROR (1) last.
  ASSERT_GE(got.size(), 17u);
  bool found = false;
  for (size_t i = 0; i + 17 <= got.size(); ++i) {
    if (got[i + 3] == 0x07 && got[i + 16] == 0x01 && got[i + 2] == 8) found = true;
  }
  EXPECT_TRUE(found) << "no GOAWAY(PROTOCOL_ERROR) in " << got.size() << " bytes";
}

}  // namespace
}  // namespace tether::proxy::test
