#include "status_page.hpp"

#include "tether/common/status_page.hpp"

namespace tether::solverd {

namespace {

constexpr std::string_view kBody = R"HTML(<h2>Workers</h2>
<p>Running <span id="running">0</span> of <span id="workers">0</span>, queued <span id="queued">0</span>.
Warm workers ready: <span id="spares-ready">-</span> of <span id="spares-configured">-</span>
(<span id="spares-start">-</span>; fork server <span id="fork-server">-</span>).</p>
<table id="spares"><tbody></tbody></table>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>id</th><th>phase</th><th>status</th><th>age</th><th>solver</th><th>holders</th>
<th>incumbent</th><th>gap</th><th>incumbents over time</th><th>cancel</th></tr></thead><tbody></tbody></table>
<h2>Cancels by reason</h2><table id="cancels"><tbody></tbody></table>
<h2>Work whose client left</h2>
<p>CPU spent: <span id="abandoned-cpu">0</span> s.
Time limit not spent: <span id="unspent">0</span> s <small>(an upper bound on what the cancels saved)</small>.</p>
<h2>Cancel to stop (worker gone)</h2><table id="latency"><tbody></tbody></table>)HTML";

constexpr std::string_view kRender = R"JS(
function render(s) {
  document.getElementById("running").textContent = s.running;
  document.getElementById("workers").textContent = s.workers;
  document.getElementById("queued").textContent = s.queued;
  const sp = s.spares;
  document.getElementById("spares-ready").textContent = sp ? sp.ready : "-";
  document.getElementById("spares-configured").textContent = sp ? sp.configured : "-";
  document.getElementById("spares-start").textContent = sp ? sp.start : "-";
  document.getElementById("fork-server").textContent = sp ? (sp.start !== "fork" ? "off" : sp.fork_server_up ? "up" : "down") : "-";
  const spares = document.querySelector("#spares tbody");
  spares.replaceChildren();
  for (const k of ["started", "taken", "forked", "died", "retired"]) {
    if (!sp) break;
    const row = spares.insertRow(); row.id = "spares-" + k; cell(row, "spares " + k); cell(row, sp[k], "num");
  }
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
  histogram(document.querySelector("#latency tbody"), s.cancel_to_stop);
}
)JS";

}  // namespace

const std::string& statusPageHtml() {
  static const std::string page = http::statusPage("solverd", kBody, kRender, "/status");
  return page;
}

}  // namespace tether::solverd
