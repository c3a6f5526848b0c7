#pragma once
// Internal to tether_proxy: what every connection of one Proxy shares.
#include "tether/common/timeouts.hpp"
#include <spdlog/spdlog.h>
#include <uv.h>

#include <array>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime.hpp"
#include "tether/common/metrics.hpp"
#include "tether/proxy/settings.hpp"

namespace tether::proxy {

// One loaded configuration with its upstream groups (pools, control clients). A SIGHUP reload
// makes a new one; connections keep the one they started with until they end, so the old one
// goes away (its idle upstream connections and control clients with it) after its last request.
struct Generation {
  ~Generation();
  Settings settings;
  std::vector<std::unique_ptr<UpstreamGroup>> groups;
};

struct ServerRef {
  std::shared_ptr<Generation> gen;
  const ServerSettings* settings = nullptr;
  // One per `access_log` line of the server: the open file (stderr is 2) and its format.
  struct AccessLog {
    int fd;
    const LogFormat* format;  // owned by settings
  };
  std::vector<AccessLog> access_logs;  // empty: off
};

// Access log files by path, opened once (O_APPEND | O_CLOEXEC); stderr is fd 2.
class AccessLogs {
 public:
  ~AccessLogs();
  // -1 for "off"; throws std::runtime_error at start-up if a file cannot be opened.
  int open(const std::string& where);
  void reopenAll();

 private:
  std::map<std::string, int> fds_;
};

struct Context {
  explicit Context(uv_loop_t* l);
  uv_loop_t* loop;
  uv::Timeouts timeouts;  // every connection's timeout, one libuv timer per duration
  std::shared_ptr<Generation> current;
  std::list<ClientConn*> conns;   // every open client connection
  std::list<RequestBase*> active;  // requests in flight (HTTP/1.1 exchanges, HTTP/2 streams)
  AccessLogs access_logs;
  std::shared_ptr<spdlog::logger> log;
  bool draining = false;
  uint64_t last_accept_error_ns = 0;
  std::function<void()> on_idle;  // drain: called when the last connection closed

  metrics::Registry registry;
  metrics::Family<metrics::Counter>* requests = nullptr;
  std::array<metrics::Counter*, 2> by_protocol{};  // tether_proxy_protocol_requests_total: 1.x, 2
  metrics::Family<metrics::Counter>* disconnects = nullptr;
  metrics::Family<metrics::Counter>* cancels = nullptr;
  metrics::Histogram* disconnect_to_cancel = nullptr;
  std::array<metrics::Counter*, 600> by_status{};  // tether_proxy_requests_total series by code
  std::function<std::string()> requests_json;

  // One read buffer for every stream: each read is consumed (parsed, forwarded, or copied when
  // the peer is slow) before the callback returns, so no connection needs its own.
  char read_buf[64 * 1024];
  std::string log_line;  // one access log line at a time: its capacity is reused

  void countRequest(uint16_t status, uint8_t http_major);
  void connectionClosed(ClientConn* conn);
};

}  // namespace tether::proxy
