#pragma once
// The live status pages of the admin listeners (DESIGN.md "Status page"): solverd's and
// tether-proxy's. What they share is here once: the page skeleton (style, the helpers their
// scripts use, the snapshot embedded at serving time, the EventSource that updates the page), the
// answer to GET / and the Server-Sent Events stream of snapshots. Each daemon brings its snapshot
// (a JSON object) and the script that renders it.
#include "tether/common/http_server.hpp"
#include "tether/common/uv_kit.hpp"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tether::http {

// One self-contained HTML page (inline style and script, no external asset). `body` is the
// page's HTML; `render` is a script defining `function render(s)` that draws a snapshot `s`. The
// page draws the snapshot it was served with, then each one from `events_path` (EventSource).
// Helpers the render script may call: cell(row, text, cls), plot(points) (an <svg class="plot">
// polyline of [x, y] points, data-count = how many) and histogram(tbody, {bounds, counts}).
std::string statusPage(std::string_view title, std::string_view body, std::string_view render,
                       std::string_view events_path);

// Answers GET / with `page` (from statusPage) carrying `snapshot`.
void respondStatusPage(Exchange& exchange, const std::string& page, const nlohmann::json& snapshot);

// The snapshots as Server-Sent Events, one `data:` line each: one at once, then one a second,
// and, when `version` is given, one as soon as its value changes (checked every 200 ms).
class StatusStreams {
 public:
  StatusStreams(uv_loop_t* loop, std::function<nlohmann::json()> snapshot,
                std::function<uint64_t()> version = nullptr);
  StatusStreams(const StatusStreams&) = delete;
  StatusStreams& operator=(const StatusStreams&) = delete;

  // Starts an SSE stream of snapshots on `exchange`.
  void add(std::shared_ptr<Exchange> exchange);
  // Ends every stream (shutdown: the admin drain waits for them).
  void closeAll();
  size_t size() const { return streams_.size(); }

 private:
  void tick();
  std::string event() const;

  std::function<nlohmann::json()> snapshot_;
  std::function<uint64_t()> version_;
  uint64_t last_version_ = 0;
  uint64_t last_sent_ns_ = 0;
  uv::Handle<uv_timer_t> timer_;
  std::vector<std::shared_ptr<Exchange>> streams_;
};

}  // namespace tether::http
