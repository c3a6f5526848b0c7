// tether-proxy's directive table (DESIGN.md "Proxy"), nginx's names where nginx has the directive.
// Runtime code never reads this file's types: config_settings.cpp turns a Config into Settings.
#include "tether/proxy/config.hpp"

#include "tether/agent/control/config.hpp"

namespace tether::proxy {
namespace {

using config::DirectiveSpec;
using config::kAnyArgs;

std::vector<std::string> ctx(std::initializer_list<const char*> names) {
  return {names.begin(), names.end()};
}

config::Schema makeSchema() {
  using namespace config;
  config::Schema s;
  s.program = std::string(kProgram);
  auto& d = s.directives;
  // Top level.
  d.push_back({"error_log", ctx({"main"}), 1, 2, false, false, {}, "stderr info",
               "where the error log goes and its level", "stderr | journal | FILE [level]"});
  d.push_back({"shutdown_timeout", ctx({"main"}), 1, 1, false, false, durationValue(), "30s",
               "drain time for in-flight requests on SIGTERM", "TIME"});
  d.push_back({"log_format", ctx({"main"}), 2, kAnyArgs, false, true, {}, "",
               "an access log format: literal text and $variables (nginx's, plus tether's), "
               "its strings joined; `tether` and `combined` are predefined",
               "NAME [escape=default|json|none] STRING ..."});
  d.push_back({"admin", ctx({"main"}), 0, 0, true, false, {}, "",
               "the admin listener: GET /metrics /health /requests, the live status page / and its data /status", ""});
  d.push_back({"listen", ctx({"admin"}), 1, 1, false, true, addressValue(), "",
               "an admin listen address", "ADDRESS"});
  d.push_back({"upstream", ctx({"main"}), 1, 1, true, true, {}, "",
               "a group of upstream servers", "NAME"});
  d.push_back({"server", ctx({"upstream"}), 1, 2, false, true,
               sequence({addressValue(), agent::control::routeValue("route=")}), "",
               "an upstream server (round robin over several); route=NAME: /v1/jobs/ID with an ID "
               "ending in .NAME (solverd's `route NAME`) goes to this server only",
               "host:port | unix:PATH [route=NAME]"});
  d.push_back({"keepalive", ctx({"upstream"}), 1, 1, false, false, integerValue(0, 1000000), "32",
               "idle keep-alive connections kept per upstream", "N"});
  d.push_back({"keepalive_timeout", ctx({"upstream"}), 1, 1, false, false, durationValue(), "60s",
               "how long an idle upstream connection stays in the pool", "TIME"});
  d.push_back({"control", ctx({"upstream"}), 1, 1, false, false, addressValue(), "",
               "the control socket that receives this upstream's cancel frames", "unix:PATH"});
  d.push_back({"server", ctx({"main"}), 0, 0, true, true, {}, "", "a virtual server", ""});
  // server { }
  d.push_back({"listen", ctx({"server"}), 1, 1, false, true, addressValue(), "",
               "a listen address", "port | host:port | [v6]:port | unix:PATH | systemd:NAME"});
  d.push_back({"access_log", ctx({"server"}), 1, 2, false, true, {}, "stderr",
               "one line per request to FILE in FORMAT (a log_format, default `tether`: "
               "combined plus id, times, disconnect); several allowed",
               "FILE | stderr | off [FORMAT]"});
  d.push_back({"trace_context", ctx({"server"}), 1, 1, false, false,
               oneOf({"pass", "start", "off"}), "pass",
               "W3C traceparent: pass a valid one upstream with a new parent id, also start a "
               "trace when none comes, or leave the headers alone",
               "pass | start | off"});
  d.push_back({"request_id_header", ctx({"server"}), 1, 1, false, false, {}, "X-Request-Id",
               "the header that carries the request id both ways", "NAME"});
  d.push_back({"trust_request_id", ctx({"server"}), 1, 1, false, false, flagValue(), "off",
               "keep a client-supplied request id (a trusted balancer in front)", "on | off"});
  d.push_back({"client_header_timeout", ctx({"server"}), 1, 1, false, false, durationValue(),
               "10s", "time to receive the request headers (408)", "TIME"});
  d.push_back({"client_body_timeout", ctx({"server"}), 1, 1, false, false, durationValue(), "60s",
               "longest pause between two reads of a request body (a client timeout)", "TIME"});
  d.push_back({"send_timeout", ctx({"server"}), 1, 1, false, false, durationValue(), "60s",
               "longest pause of a response write to the client (a client timeout)", "TIME"});
  d.push_back({"client_max_body_size", ctx({"server"}), 1, 1, false, false, sizeValue(), "64m",
               "largest request body (413)", "SIZE"});
  d.push_back({"keepalive_timeout", ctx({"server"}), 1, 1, false, false, durationValue(), "75s",
               "idle time of a keep-alive client connection", "TIME"});
  d.push_back({"tcp_keepalive", ctx({"server"}), 1, 3, false, false,
               config::tcpKeepaliveValue(), "off",
               "TCP keepalive probes: finds clients that vanished without FIN or RST",
               "off | IDLE INTERVAL COUNT"});
  d.push_back({"http2", ctx({"server"}), 1, 1, false, false, flagValue(), "off",
               "HTTP/2 without TLS (h2c, prior knowledge, as gRPC uses) beside HTTP/1.1 on the "
               "server's listeners: the connection preface tells them apart",
               "on | off"});
  d.push_back({"http2_max_concurrent_streams", ctx({"server"}), 1, 1, false, false, integerValue(1, 65535),
               "128", "streams open at once on one HTTP/2 connection", "N"});
  d.push_back({"http2_body_preread_size", ctx({"server"}), 1, 1, false, false, sizeValue(), "64k",
               "request body buffered per stream before the upstream takes it (the stream's window)",
               "SIZE"});
  d.push_back({"http2_recv_buffer_size", ctx({"server"}), 1, 1, false, false, sizeValue(), "256k",
               "request body buffered per HTTP/2 connection (the connection's window)", "SIZE"});
  d.push_back({"http2_max_header_list_size", ctx({"server"}), 1, 1, false, false, sizeValue(), "32k",
               "largest decoded header list of a stream (431 past it)", "SIZE"});
  d.push_back({"location", ctx({"server"}), 1, 2, true, true, {}, "",
               "requests by path: `=` exact, else the longest prefix", "[=] PATH"});
  // location { }
  d.push_back({"proxy_pass", ctx({"location"}), 1, 1, false, false, {}, "",
               "the upstream of this location", "http://UPSTREAM"});
  d.push_back({"grpc_pass", ctx({"location"}), 1, 1, false, false, {}, "",
               "the gRPC upstream of this location, spoken to over h2c (HTTP/2 clients only)",
               "grpc://UPSTREAM"});
  d.push_back({"on_disconnect", ctx({"location"}), 1, 1, false, false,
               oneOf({"none", "close", "interrupt", "kill"}), "close",
               "what a client's disconnect does to the upstream request",
               "none | close | interrupt | kill"});
  d.push_back({"kill_after", ctx({"location"}), 1, 1, false, false, durationValue(), "5s",
               "grace between interrupt and kill (grace_ms of the cancel frame)", "TIME"});
  d.push_back({"half_close", ctx({"location"}), 1, 1, false, false, oneOf({"abort", "wait"}),
               "abort", "a client's end of file after its request: abort (as nginx) or wait",
               "abort | wait"});
  d.push_back({"proxy_connect_timeout", ctx({"location"}), 1, 1, false, false, durationValue(),
               "60s", "upstream connect timeout (504)", "TIME"});
  d.push_back({"proxy_read_timeout", ctx({"location"}), 1, 1, false, false, durationValue(),
               "60s", "longest pause between two upstream reads (504; first a cancel with reason "
               "upstream_timeout and kill_after to answer where on_disconnect interrupts or kills)", "TIME"});
  d.push_back({"proxy_send_timeout", ctx({"location"}), 1, 1, false, false, durationValue(),
               "60s", "longest pause of a write to the upstream (as proxy_read_timeout)", "TIME"});
  // The checks across directives (proxy_pass naming a known upstream, ...) run at every load, so
  // -t, -T, start-up and SIGHUP report them alike.
  s.validate = [](const config::Config& config) {
    Settings unused;
    return toSettings(config, unused);
  };
  return s;
}

}  // namespace

const config::Schema& schema() {
  static const config::Schema kSchema = makeSchema();
  return kSchema;
}

std::string_view defaultConfigText() {
  return R"(# tether-proxy built-in default: one machine, loopback only.
error_log stderr info;
admin { listen 127.0.0.1:9901; }
upstream solverd {
    server 127.0.0.1:7070;
    keepalive 64;
    control unix:${RUNTIME_DIR}/control.sock;
}
server {
    listen 127.0.0.1:8080;
    location /v1/solve {
        proxy_pass http://solverd;
        on_disconnect interrupt;
        kill_after 5s;
        # A plain JSON solve says nothing until its result: above solverd's default_time_limit
        # 1h plus time_limit_grace and its queue, so a client who waits keeps its solve.
        proxy_read_timeout 2h;
    }
    location / {
        proxy_pass http://solverd;
        on_disconnect close;
    }
}
)";
}

}  // namespace tether::proxy
