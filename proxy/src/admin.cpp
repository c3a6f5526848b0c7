#include "admin.hpp"

#include <algorithm>

#include "context.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/listener.hpp"

namespace tether::proxy {

namespace {

http::ServerOptions adminOptions() {
  http::ServerOptions o;
  o.header_timeout_ms = 10'000;
  o.keepalive_timeout_ms = 10'000;
  o.limits.max_body_size = 0;  // an admin request has no body
  return o;
}

constexpr std::string_view kBody = R"HTML(<p><span id="active">0</span> requests in flight on
<span id="connections">0</span> connections; <span id="total">0</span> answered.</p>
<h2>In flight</h2>
<table id="requests"><thead><tr><th>id</th><th>phase</th><th>age</th><th>upstream</th><th>protocol</th>
<th>client</th></tr></thead><tbody></tbody></table>
<h2>Cancels by reason</h2><table id="cancels"><tbody></tbody></table>
<h2>Disconnects by phase</h2><table id="disconnects"><tbody></tbody></table>
<h2>Disconnect to cancel frame written</h2><table id="latency"><tbody></tbody></table>)HTML";

constexpr std::string_view kRender = R"JS(
function counts(id, prefix, byName) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const [name, n] of Object.entries(byName)) {
    const row = body.insertRow(); row.id = prefix + name; cell(row, name); cell(row, n, "num");
  }
}
function render(s) {
  document.getElementById("active").textContent = s.requests.length;
  document.getElementById("connections").textContent = s.connections;
  document.getElementById("total").textContent = s.requests_total;
  const body = document.querySelector("#requests tbody");
  body.replaceChildren();
  for (const r of s.requests) {
    const row = body.insertRow(); row.id = "request-" + r.id; row.dataset.phase = r.phase;
    cell(row, r.id.slice(0, 12)); cell(row, r.phase); cell(row, r.age.toFixed(1) + " s", "num");
    cell(row, r.upstream); cell(row, r.protocol); cell(row, r.client);
  }
  counts("cancels", "cancel-", s.cancels_by_reason);
  counts("disconnects", "disconnect-", s.disconnects_by_phase);
  histogram(document.querySelector("#latency tbody"), s.disconnect_to_cancel);
}
)JS";

const std::string& pageHtml() {
  static const std::string page = http::statusPage("tether-proxy", kBody, kRender, "/status");
  return page;
}

// Sums a family's series by the value of one label.
nlohmann::json sumBy(const metrics::Family<metrics::Counter>& family, size_t label,
                     std::string_view only_label = {}, size_t only_index = 0) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [values, counter] : family.series()) {
    if (!only_label.empty() && values[only_index] != only_label) continue;
    nlohmann::json& n = out[values[label]];
    n = (n.is_null() ? 0.0 : n.get<double>()) + counter->value();
  }
  return out;
}

}  // namespace

nlohmann::json requestsInFlight(const Context& ctx) {
  nlohmann::json list = nlohmann::json::array();
  uint64_t now = monotonicNs();
  for (const RequestBase* r : ctx.active) {
    list.push_back({{"id", r->requestId()},
                    {"phase", std::string(phaseName(r->phase()))},
                    {"age", secondsBetween(r->startNs(), now)},
                    {"client", r->peer()},
                    {"upstream", r->upstreamText()},
                    {"protocol", r->protocol()}});
  }
  return list;
}

Admin::Admin(Context& ctx)
    : ctx_(ctx),
      server_(ctx.loop, adminOptions(), [this](std::shared_ptr<http::Exchange> ex) { handle(ex); }),
      streams_(ctx.loop, [this] { return snapshot(); }, [this] { return version(); }) {}

Admin::~Admin() { close(); }

std::string Admin::open(const std::vector<config::Address>& addresses) {
  abandon();
  for (const auto& a : addresses) {
    auto same = std::find_if(running_.begin(), running_.end(), [&](const Listener* l) {
      return l->configured() == a && std::find(keep_.begin(), keep_.end(), l) == keep_.end();
    });
    if (same != running_.end()) {
      keep_.push_back(*same);
      continue;
    }
    std::string why;
    auto l = Listener::open(ctx_.loop, a, {}, &why);
    if (!l) {
      abandon();
      return "cannot listen on " + a.text() + ": " + why;
    }
    opened_.push_back(std::move(l));
  }
  return {};
}

void Admin::commit() {
  for (const Listener* l : running_) {
    if (std::find(keep_.begin(), keep_.end(), l) == keep_.end()) server_.closeListener(l);
  }
  running_ = std::move(keep_);
  keep_.clear();
  for (auto& l : opened_) {
    const Listener* raw = l.get();
    if (int r = server_.addListener(std::move(l)); r != 0) {
      // The address is bound: start() can fail only for want of memory or file descriptors.
      ctx_.log->error("admin listener {} cannot accept: {}", raw->address(), uv_strerror(r));
      continue;
    }
    ctx_.log->info("listening on {}", raw->address());
    running_.push_back(raw);
  }
  opened_.clear();
}

void Admin::abandon() {
  opened_.clear();  // closes them
  keep_.clear();
}

void Admin::close() {
  abandon();
  streams_.closeAll();
  server_.closeAll();
  running_.clear();
}

std::vector<std::string> Admin::listening() const {
  std::vector<std::string> out;
  for (const Listener* l : running_) out.push_back(l->address());
  return out;
}

void Admin::handle(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  const http::Headers text{{"Content-Type", "text/plain"}};
  if (req.method != "GET" && req.method != "HEAD") {
    ex->respond(405, {{"Content-Type", "text/plain"}, {"Allow", "GET, HEAD"}}, "Method Not Allowed\n");
  } else if (req.path == "/metrics") {
    ex->respond(200, {{"Content-Type", std::string(metrics::kContentType)}}, ctx_.registry.render());
  } else if (req.path == "/health") {
    ex->respond(200, text, ctx_.draining ? "draining\n" : "ok\n");
  } else if (req.path == "/requests") {
    ex->respond(200, {{"Content-Type", "application/json"}}, requestsInFlight(ctx_).dump() + "\n");
  } else if (req.path == "/") {
    http::respondStatusPage(*ex, pageHtml(), snapshot());
  } else if (req.path == "/status") {
    const std::string* accept = req.header("Accept");
    if (accept != nullptr && accept->find("text/event-stream") != std::string::npos && !ctx_.draining) {
      streams_.add(ex);
    } else {
      ex->respond(200, {{"Content-Type", "application/json"}}, snapshot().dump() + "\n");
    }
  } else {
    ex->respond(404, text, "Not Found\n");
  }
}

nlohmann::json Admin::snapshot() const {
  const metrics::Histogram& latency = *ctx_.disconnect_to_cancel;
  double answered = 0;
  for (const auto& [values, counter] : ctx_.requests->series()) answered += counter->value();
  return {{"requests", requestsInFlight(ctx_)},
          {"connections", ctx_.conns.size()},
          {"requests_total", static_cast<uint64_t>(answered)},
          // Frames written to the control socket; those dropped with a full queue apart.
          {"cancels_by_reason", sumBy(*ctx_.cancels, 1, "sent", 2)},
          {"cancels_dropped_by_reason", sumBy(*ctx_.cancels, 1, "dropped", 2)},
          {"disconnects_by_phase", sumBy(*ctx_.disconnects, 0)},
          {"disconnect_to_cancel", {{"bounds", latency.bounds()}, {"counts", latency.bucketCounts()}}},
          {"status_streams", streams_.size()}};
}

// What makes a snapshot worth sending before its second is up: a request that came or went, a
// disconnect, a cancel. Ages alone change every second anyway.
uint64_t Admin::version() const {
  uint64_t v = ctx_.active.size();
  for (const auto* family : {ctx_.requests, ctx_.disconnects, ctx_.cancels}) {
    for (const auto& [values, counter] : family->series()) v = v * 31 + static_cast<uint64_t>(counter->value());
  }
  if (!ctx_.active.empty()) v = v * 31 + std::hash<std::string>{}(ctx_.active.back()->requestId());
  return v;
}

}  // namespace tether::proxy
