// From a checked config::Config to Settings. The table already checked every value's form, so
// the typed accessors cannot fail here; what is left are checks across directives.
#include <algorithm>
#include <map>

#include "tether/proxy/config.hpp"

namespace tether::proxy {
namespace {

using config::Block;
using config::Directive;

std::vector<config::Address> addresses(const Block& block, std::string_view name) {
  std::vector<config::Address> out;
  for (const Directive* d : block.all(name)) {
    if (auto a = config::parseAddress(d->args[0])) out.push_back(*a);
  }
  return out;
}

OnDisconnect onDisconnectFrom(std::string_view v) {
  if (v == "none") return OnDisconnect::None;
  if (v == "interrupt") return OnDisconnect::Interrupt;
  if (v == "kill") return OnDisconnect::Kill;
  return OnDisconnect::Close;
}

using LogFormats = std::map<std::string, std::shared_ptr<const LogFormat>, std::less<>>;

// Every `log_format NAME [escape=...] STRING ...;` of the main context, compiled once, with the
// predefined `tether` and `combined`.
std::optional<config::Error> logFormats(const Block& root, LogFormats& out) {
  out.emplace("tether", std::make_shared<const LogFormat>(LogFormat::tether()));
  out.emplace("combined", std::make_shared<const LogFormat>(LogFormat::combined()));
  for (const Directive* d : root.all("log_format")) {
    std::string name(d->args[0]);
    if (out.contains(name)) return config::errorAt(*d, "duplicate log_format name \"" + name + "\"", 0);
    size_t first = 1;
    LogEscape escape = LogEscape::Default;
    if (d->args[1].starts_with("escape=")) {
      if (!parseLogEscape(d->args[1], escape)) {
        return config::errorAt(*d, "unknown log format escaping \"" + std::string(d->args[1].substr(7)) +
                                       "\", it must be default, json or none", 1);
      }
      first = 2;
    }
    if (first >= d->args.size()) return config::errorAt(*d, "log_format \"" + name + "\" has no format string");
    std::string text;
    for (size_t i = first; i < d->args.size(); ++i) text += d->args[i];
    std::string why;
    auto format = LogFormat::compile(text, escape, why);
    if (!format) return config::errorAt(*d, why, first);
    out.emplace(std::move(name), std::make_shared<const LogFormat>(std::move(*format)));
  }
  return std::nullopt;
}

// The `access_log` lines of one server; none is `access_log stderr;` in the `tether` format.
std::optional<config::Error> accessLogs(const Block& server, const LogFormats& formats,
                                        std::vector<AccessLogSettings>& out) {
  std::vector<const Directive*> lines = server.all("access_log");
  if (lines.empty()) {
    out.push_back({"stderr", formats.at("tether")});
    return std::nullopt;
  }
  for (const Directive* d : lines) {
    if (d->args[0] == "off") {
      if (d->args.size() > 1 || lines.size() > 1) {
        return config::errorAt(*d, "\"access_log off\" takes no format and stands alone", 0);
      }
      return std::nullopt;
    }
    std::string_view format_name = d->args.size() > 1 ? d->args[1] : std::string_view("tether");
    auto it = formats.find(format_name);
    if (it == formats.end()) {
      return config::errorAt(*d, "unknown log format \"" + std::string(format_name) + "\"", 1);
    }
    out.push_back({std::string(d->args[0]), it->second});
  }
  return std::nullopt;
}

}  // namespace

const LocationSettings* findLocation(const ServerSettings& server, std::string_view path) {
  const LocationSettings* best = nullptr;
  for (const auto& loc : server.locations) {
    if (loc.exact) {
      if (path == loc.path) return &loc;
      continue;
    }
    if (path.starts_with(loc.path) && (best == nullptr || loc.path.size() > best->path.size())) {
      best = &loc;
    }
  }
  return best;
}

std::optional<config::Error> toSettings(const config::Config& config, Settings& out) {
  const Block& root = config.root();
  Settings s;
  auto log_args = root.args("error_log");
  if (!log_args.empty()) s.error_log = std::string(log_args[0]);
  if (log_args.size() > 1) s.error_log_level = std::string(log_args[1]);
  s.shutdown_timeout = root.duration("shutdown_timeout");
  if (const Directive* admin = root.find("admin"); admin != nullptr && admin->block) {
    s.admin_listens = addresses(*admin->block, "listen");
  }

  LogFormats formats;
  if (auto why = logFormats(root, formats)) return why;

  for (const Directive* up : root.all("upstream")) {
    UpstreamSettings u;
    u.name = std::string(up->args[0]);
    for (const auto& other : s.upstreams) {
      if (other.name == u.name) return config::errorAt(*up, "duplicate upstream \"" + u.name + "\"", 0);
    }
    const Block& b = *up->block;
    u.servers = addresses(b, "server");
    if (u.servers.empty()) return config::errorAt(*up, "no servers in upstream \"" + u.name + "\"");
    for (const Directive* srv : b.all("server")) {
      auto a = config::parseAddress(srv->args[0]);
      if (a && a->kind == config::Address::Kind::Systemd) {
        return config::errorAt(*srv, "an upstream server cannot be a systemd socket", 0);
      }
      std::string route = srv->args.size() > 1 ? std::string(srv->args[1].substr(6)) : std::string();  // "route="
      if (!route.empty() && std::find(u.routes.begin(), u.routes.end(), route) != u.routes.end()) {
        return config::errorAt(*srv, "duplicate route \"" + route + "\" in upstream \"" + u.name + "\"", 1);
      }
      u.routes.push_back(std::move(route));
    }
    u.keepalive = static_cast<uint32_t>(b.integer("keepalive"));
    u.keepalive_timeout = b.duration("keepalive_timeout");
    if (const Directive* c = b.find("control")) {
      auto a = config::parseAddress(c->args[0]);
      if (!a || a->kind != config::Address::Kind::Unix) {
        return config::errorAt(*c, "invalid value \"" + std::string(c->args[0]) +
                                       "\" in \"control\" directive, it must be unix:PATH", 0);
      }
      u.control_path = a->path;
    }
    s.upstreams.push_back(std::move(u));
  }

  for (const Directive* sd : root.all("server")) {
    const Block& b = *sd->block;
    ServerSettings srv;
    srv.listens = addresses(b, "listen");
    if (srv.listens.empty()) return config::errorAt(*sd, "no \"listen\" in server");
    if (auto why = accessLogs(b, formats, srv.access_logs)) return why;
    std::string_view trace = b.str("trace_context");
    srv.trace_context = trace == "start" ? TraceContext::Start
                        : trace == "off" ? TraceContext::Off
                                         : TraceContext::Pass;
    srv.request_id_header = std::string(b.str("request_id_header"));
    srv.trust_request_id = b.flag("trust_request_id");
    srv.client_header_timeout = b.duration("client_header_timeout");
    srv.client_body_timeout = b.duration("client_body_timeout");
    srv.send_timeout = b.duration("send_timeout");
    srv.client_max_body_size = b.size("client_max_body_size");
    srv.keepalive_timeout = b.duration("keepalive_timeout");
    if (auto ka = b.args("tcp_keepalive"); ka.size() == 3) {
      srv.tcp_keepalive.enabled = true;
      srv.tcp_keepalive.idle = b.duration("tcp_keepalive", 0);
      srv.tcp_keepalive.interval = b.duration("tcp_keepalive", 1);
      srv.tcp_keepalive.count = static_cast<uint32_t>(b.integer("tcp_keepalive", 2));
    }
    srv.http2.enabled = b.flag("http2");
    srv.http2.max_concurrent_streams = static_cast<uint32_t>(b.integer("http2_max_concurrent_streams"));
    const std::pair<const char*, uint32_t*> http2_sizes[] = {
        {"http2_body_preread_size", &srv.http2.body_preread_size},
        {"http2_recv_buffer_size", &srv.http2.recv_buffer_size},
        {"http2_max_header_list_size", &srv.http2.max_header_list_size}};
    for (auto [name, field] : http2_sizes) {
      uint64_t v = b.size(name);
      // HTTP/2 windows and SETTINGS values are 31-bit (RFC 9113 section 6.9.1).
      if (v > 0x7fffffffull) return config::errorAt(*b.find(name), std::string("\"") + name + "\" is too large (at most 2g - 1)", 0);
      *field = static_cast<uint32_t>(v);
    }
    for (const Directive* ld : b.all("location")) {
      LocationSettings loc;
      if (ld->args.size() == 2) {
        if (ld->args[0] != "=") {
          return config::errorAt(*ld, "invalid location modifier \"" + std::string(ld->args[0]) + "\"", 0);
        }
        loc.exact = true;
      }
      loc.path = std::string(ld->args.back());
      const Block& lb = *ld->block;
      const Directive* pass = lb.find("proxy_pass");
      const Directive* grpc = lb.find("grpc_pass");
      if (pass != nullptr && grpc != nullptr) {
        return config::errorAt(*grpc, "\"grpc_pass\" and \"proxy_pass\" in one location", 0);
      }
      if (pass == nullptr && grpc == nullptr) {
        return config::errorAt(*ld, "no \"proxy_pass\" or \"grpc_pass\" in location \"" + loc.path + "\"");
      }
      loc.grpc = grpc != nullptr;
      if (grpc != nullptr) pass = grpc;
      std::string_view target = pass->args[0];
      std::string_view scheme = loc.grpc ? "grpc://" : "http://";
      if (!target.starts_with(scheme)) {
        return config::errorAt(*pass, "invalid URL prefix in \"" + std::string(target) + "\"", 0);
      }
      loc.upstream = std::string(target.substr(scheme.size()));
      while (!loc.upstream.empty() && loc.upstream.back() == '/') loc.upstream.pop_back();
      auto it = std::find_if(s.upstreams.begin(), s.upstreams.end(),
                             [&](const UpstreamSettings& u) { return u.name == loc.upstream; });
      if (it == s.upstreams.end()) {
        return config::errorAt(*pass, "host not found in upstream \"" + loc.upstream + "\"", 0);
      }
      loc.upstream_index = static_cast<size_t>(it - s.upstreams.begin());
      loc.on_disconnect = onDisconnectFrom(lb.str("on_disconnect"));
      if ((loc.on_disconnect == OnDisconnect::Interrupt || loc.on_disconnect == OnDisconnect::Kill) &&
          it->control_path.empty()) {
        return config::errorAt(*lb.find("on_disconnect"),
                               "\"on_disconnect " + std::string(lb.str("on_disconnect")) +
                                   "\" needs a \"control\" socket in upstream \"" + it->name + "\"", 0);
      }
      loc.kill_after = lb.duration("kill_after");
      loc.half_close = lb.str("half_close") == "wait" ? HalfClose::Wait : HalfClose::Abort;
      loc.connect_timeout = lb.duration("proxy_connect_timeout");
      loc.read_timeout = lb.duration("proxy_read_timeout");
      loc.send_timeout = lb.duration("proxy_send_timeout");
      for (const auto& other : srv.locations) {
        if (other.exact == loc.exact && other.path == loc.path) {
          return config::errorAt(*ld, "duplicate location \"" + loc.path + "\"", 0);
        }
      }
      srv.locations.push_back(std::move(loc));
    }
    s.servers.push_back(std::move(srv));
  }
  if (s.servers.empty()) {
    config::Error e;
    e.message = "no \"server\" block";
    return e;
  }
  out = std::move(s);
  return std::nullopt;
}

}  // namespace tether::proxy
