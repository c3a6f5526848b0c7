#include "tether/common/status_page.hpp"

#include "tether/common/clock.hpp"

#include <algorithm>

namespace tether::http {

namespace {

constexpr uint64_t kEveryNs = 1'000'000'000ULL;  // a snapshot a second at least
constexpr uint64_t kCheckMs = 200;                // how often `version` is looked at
constexpr std::string_view kPlaceholder = "/*SNAPSHOT*/null";

std::string dump(const nlohmann::json& snapshot) {
  return snapshot.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

constexpr std::string_view kStyle = R"CSS(
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.5em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}
svg.plot{width:160px;height:40px;background:#f6f6f6}svg.plot polyline{fill:none;stroke:#1769aa;stroke-width:1.5}
.bar{display:inline-block;background:#1769aa;height:.8em}
small{color:#666}
)CSS";

constexpr std::string_view kHelpers = R"JS(
"use strict";
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function plot(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "plot"); svg.setAttribute("viewBox", "0 0 160 40");
  if (points.length > 0) {
    const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-9);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.map(p =>
      (4 + 152 * (p[0] - x0) / (x1 - x0)).toFixed(1) + "," + (36 - 32 * (p[1] - y0) / (y1 - y0)).toFixed(1)).join(" "));
    line.dataset.count = points.length;
    svg.appendChild(line);
  }
  return svg;
}
function histogram(body, h) {
  body.replaceChildren();
  const max = Math.max(1, ...h.counts);
  h.counts.forEach((n, i) => {
    if (n === 0) return;
    const row = body.insertRow();
    cell(row, i < h.bounds.length ? "\u2264 " + (h.bounds[i] * 1000) + " ms" : "more");
    cell(row, n, "num");
    const bar = row.insertCell().appendChild(document.createElement("span"));
    bar.className = "bar"; bar.style.width = (200 * n / max) + "px";
  });
}
)JS";

}  // namespace

std::string statusPage(std::string_view title, std::string_view body, std::string_view render,
                       std::string_view events_path) {
  std::string page;
  page.append("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
      .append(title)
      .append("</title>\n<style>")
      .append(kStyle)
      .append("</style></head><body>\n<h1>")
      .append(title)
      .append(" <small id=\"updated\">connecting...</small></h1>\n")
      .append(body)
      .append("\n<script>")
      .append(kHelpers)
      .append(render)
      .append(R"JS(
function shown(s) { document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString(); render(s); }
// The snapshot of the moment the page was served: it shows at once, before the first event.
const initial = )JS")
      .append(kPlaceholder)
      .append(";\nif (initial) shown(initial);\nconst source = new EventSource(\"")
      .append(events_path)
      .append(R"JS(");
source.onmessage = e => shown(JSON.parse(e.data));
source.onerror = () => { document.getElementById("updated").textContent = "reconnecting..."; };
</script></body></html>
)JS");
  return page;
}

void respondStatusPage(Exchange& exchange, const std::string& page, const nlohmann::json& snapshot) {
  const std::string data = dump(snapshot);
  // Inside <script>: "</" could end the element early (HTML, "script data state").
  // Built by appending: GCC 12 reads an insert() here as an overlapping memcpy (-Wrestrict).
  std::string safe;
  safe.reserve(data.size() + 16);
  for (size_t i = 0; i < data.size(); ++i) {
    safe.push_back(data[i]);
    if (data[i] == '<' && i + 1 < data.size() && data[i + 1] == '/') safe.push_back('\\');
  }
  std::string out = page;
  if (auto at = out.find(kPlaceholder); at != std::string::npos) out.replace(at, kPlaceholder.size(), safe);
  // Self-contained: inline style and script, nothing fetched from elsewhere.
  exchange.respond(200,
                   {{"Content-Type", "text/html; charset=utf-8"},
                    {"Content-Security-Policy",
                     "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"}},
                   out);
}

StatusStreams::StatusStreams(uv_loop_t* loop, std::function<nlohmann::json()> snapshot,
                             std::function<uint64_t()> version)
    : snapshot_(std::move(snapshot)), version_(std::move(version)), timer_(loop) {
  if (timer_) {
    timer_->data = this;
    uv_unref(timer_.raw());  // the streams' connections keep the loop running, not this timer
  }
}

std::string StatusStreams::event() const { return "data: " + dump(snapshot_()) + "\n\n"; }

void StatusStreams::add(std::shared_ptr<Exchange> exchange) {
  exchange->startStream(200, {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
  exchange->write(event());
  streams_.push_back(std::move(exchange));
  if (timer_ && !uv_is_active(timer_.raw())) {
    if (version_) last_version_ = version_();
    last_sent_ns_ = monotonicNs();
    const uint64_t every = version_ ? kCheckMs : kEveryNs / 1'000'000ULL;
    uv_timer_start(timer_.get(), [](uv_timer_t* t) { static_cast<StatusStreams*>(t->data)->tick(); }, every, every);
  }
}

void StatusStreams::tick() {
  // Streams whose client left are dropped here: a status page needs no disconnect callback.
  std::erase_if(streams_, [](const auto& ex) { return !ex->connected(); });
  if (streams_.empty()) {
    uv_timer_stop(timer_.get());
    return;
  }
  const uint64_t now = monotonicNs();
  bool due = now - last_sent_ns_ >= kEveryNs - kCheckMs * 1'000'000ULL / 2;  // timer jitter
  if (version_) {
    const uint64_t v = version_();
    due = due || v != last_version_;
    last_version_ = v;
  }
  if (!due) return;
  last_sent_ns_ = now;
  const std::string data = event();
  for (const auto& ex : streams_) ex->write(data);
}

void StatusStreams::closeAll() {
  for (const auto& ex : streams_) ex->finish();
  streams_.clear();
  if (timer_) uv_timer_stop(timer_.get());
}

}  // namespace tether::http
