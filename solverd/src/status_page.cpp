#include "status_page.hpp"

#include <algorithm>

namespace tether::solverd {

StatusStreams::StatusStreams(uv_loop_t* loop, std::function<nlohmann::json()> snapshot)
    : snapshot_(std::move(snapshot)) {
  if (uv_timer_init(loop, timer_.get()) == 0) {
    timer_.markInitialized();
    timer_->data = this;
    uv_unref(timer_.raw());  // the streams' connections keep the loop running, not this timer
  }
}

void StatusStreams::add(std::shared_ptr<http::Exchange> exchange) {
  exchange->startStream(200, {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
  exchange->write("data: " + snapshot_().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n");
  streams_.push_back(std::move(exchange));
  if (timer_.active() && !uv_is_active(timer_.raw())) {
    uv_timer_start(timer_.get(), [](uv_timer_t* t) { static_cast<StatusStreams*>(t->data)->tick(); }, 1000, 1000);
  }
}

void StatusStreams::tick() {
  // Streams whose client left are dropped here: a status page needs no disconnect callback.
  std::erase_if(streams_, [](const auto& ex) { return !ex->connected(); });
  if (streams_.empty()) {
    uv_timer_stop(timer_.get());
    return;
  }
  const std::string event =
      "data: " + snapshot_().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
  for (const auto& ex : streams_) ex->write(event);
}

void StatusStreams::closeAll() {
  for (const auto& ex : streams_) ex->finish();
  streams_.clear();
  if (timer_.active()) uv_timer_stop(timer_.get());
}

std::string_view statusPageHtml() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>solverd status</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.5em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}
svg.plot{width:160px;height:40px;background:#f6f6f6}svg.plot polyline{fill:none;stroke:#1769aa;stroke-width:1.5}
.bar{display:inline-block;background:#1769aa;height:.8em}
small{color:#666}
</style></head><body>
<h1>solverd <small id="updated">connecting...</small></h1>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>id</th><th>phase</th><th>status</th><th>age</th><th>solver</th><th>holders</th>
<th>incumbent</th><th>gap</th><th>incumbents over time</th><th>cancel</th></tr></thead><tbody></tbody></table>
<h2>Cancels by reason</h2><table id="cancels"><tbody></tbody></table>
<h2>Work whose client left</h2>
<p>CPU spent: <span id="abandoned-cpu">0</span> s.
Time limit not spent: <span id="unspent">0</span> s <small>(an upper bound on what the cancels saved)</small>.</p>
<h2>Cancel to stop (worker gone)</h2><table id="latency"><tbody></tbody></table>
<script>
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
function render(s) {
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const j of s.jobs) {
    const row = body.insertRow(); row.id = "job-" + j.id; row.dataset.phase = j.state;
    cell(row, j.id.slice(0, 12)); cell(row, j.state); cell(row, j.status);
    cell(row, (j.age_ms / 1000).toFixed(1) + " s", "num"); cell(row, j.solver); cell(row, j.holders, "num");
    cell(row, j.incumbent === null ? "-" : String(Number(j.incumbent.toPrecision(10))), "num");
    cell(row, j.gap === null ? "-" : (100 * j.gap).toFixed(2) + " %", "num");
    row.insertCell().appendChild(plot(j.history));
    cell(row, j.cancel_reason || "");
  }
  const cancels = document.querySelector("#cancels tbody");
  cancels.replaceChildren();
  for (const [reason, n] of Object.entries(s.cancels_by_reason)) {
    const row = cancels.insertRow(); row.id = "cancel-" + reason; cell(row, reason); cell(row, n, "num");
  }
  document.getElementById("abandoned-cpu").textContent = s.abandoned_cpu_seconds.toFixed(3);
  document.getElementById("unspent").textContent = s.unspent_time_limit_seconds.toFixed(1);
  const lat = document.querySelector("#latency tbody");
  lat.replaceChildren();
  const h = s.cancel_to_stop, max = Math.max(1, ...h.counts);
  h.counts.forEach((n, i) => {
    if (n === 0) return;
    const row = lat.insertRow();
    cell(row, i < h.bounds.length ? "\u2264 " + (h.bounds[i] * 1000) + " ms" : "more");
    cell(row, n, "num");
    const bar = row.insertCell().appendChild(document.createElement("span"));
    bar.className = "bar"; bar.style.width = (200 * n / max) + "px";
  });
}
// The snapshot of the moment the page was served: it shows at once, before the first event.
const initial = /*SNAPSHOT*/null;
if (initial) render(initial);
const source = new EventSource("/status");
source.onmessage = e => render(JSON.parse(e.data));
source.onerror = () => { document.getElementById("updated").textContent = "reconnecting..."; };
</script></body></html>
)HTML";
}

}  // namespace tether::solverd
