#pragma once
// The proxy's runtime settings: plain values read once from the configuration (config.hpp turns a
// config::Config into Settings). The runtime code sees only these structs, so it never touches
// the configuration language and a SIGHUP reload is "build new Settings, swap".
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tether/common/tcp_keepalive.hpp"
#include "tether/config/address.hpp"
#include "tether/proxy/log_format.hpp"

namespace tether::proxy {

using Millis = std::chrono::milliseconds;

enum class OnDisconnect { None, Close, Interrupt, Kill };
enum class HalfClose { Abort, Wait };
// trace_context (W3C Trace Context, https://www.w3.org/TR/trace-context/).
enum class TraceContext { Pass, Start, Off };

// One `access_log PATH [FORMAT];`.
struct AccessLogSettings {
  std::string path;  // FILE | stderr
  std::shared_ptr<const LogFormat> format;
};

struct UpstreamSettings {
  std::string name;
  std::vector<config::Address> servers;  // round robin, in file order
  // `server ADDRESS route=NAME;`: one per server, "" for none (DESIGN.md "Several hosts").
  std::vector<std::string> routes;
  uint32_t keepalive = 32;               // idle connections kept per upstream
  Millis keepalive_timeout{60000};       // how long one stays idle before we close it
  std::string control_path;              // unix socket for cancel frames; "" = none
};

struct LocationSettings {
  bool exact = false;  // `location = /path`
  std::string path;
  std::string upstream;  // the name in proxy_pass http://NAME or grpc_pass grpc://NAME
  bool grpc = false;     // grpc_pass: h2c to the upstream
  size_t upstream_index = 0;  // into Settings::upstreams, resolved at load time
  OnDisconnect on_disconnect = OnDisconnect::Close;
  Millis kill_after{5000};
  HalfClose half_close = HalfClose::Abort;
  Millis connect_timeout{60000};
  Millis read_timeout{60000};
  Millis send_timeout{60000};
};

using TcpKeepalive = ::tether::TcpKeepalive;  // `tcp_keepalive IDLE INTERVAL COUNT`, shared with solverd

// `http2 on;` and nginx's http2_* limits (tether's own: http2_max_header_list_size).
struct Http2Settings {
  bool enabled = false;
  uint32_t max_concurrent_streams = 128;
  uint32_t body_preread_size = 64 * 1024;     // each stream's initial receive window
  uint32_t recv_buffer_size = 256 * 1024;     // the connection's receive window
  uint32_t max_header_list_size = 32 * 1024;  // decoded, as SETTINGS_MAX_HEADER_LIST_SIZE counts
};

struct ServerSettings {
  std::vector<config::Address> listens;
  std::vector<AccessLogSettings> access_logs;  // empty: off
  TraceContext trace_context = TraceContext::Pass;
  std::string request_id_header = "X-Request-Id";
  bool trust_request_id = false;
  Millis client_header_timeout{10000};
  Millis client_body_timeout{60000};  // between two reads of a request body (nginx's name)
  Millis send_timeout{60000};         // a response write that makes no progress (nginx's name)
  uint64_t client_max_body_size = 64ull << 20;
  Millis keepalive_timeout{75000};
  TcpKeepalive tcp_keepalive;
  Http2Settings http2;
  std::vector<LocationSettings> locations;
};

struct Settings {
  std::string error_log = "stderr";
  std::string error_log_level = "info";
  Millis shutdown_timeout{30000};
  std::vector<config::Address> admin_listens;
  std::vector<UpstreamSettings> upstreams;
  std::vector<ServerSettings> servers;
};

// The location of `server` that serves `path`: an exact match wins, else the longest prefix;
// null if none matches (nginx's order, without regular expressions).
const LocationSettings* findLocation(const ServerSettings& server, std::string_view path);

}  // namespace tether::proxy
