#pragma once
// The live status page of the admin listener (DESIGN.md "Status page"): GET / is one
// self-contained HTML page (no external assets); GET /status is its data as JSON, or with
// Accept: text/event-stream a snapshot every second as Server-Sent Events, which the page reads
// with EventSource. Internal to the daemon.
#include "tether/common/http_server.hpp"
#include "tether/common/uv_handle.hpp"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace tether::solverd {

std::string_view statusPageHtml();

class StatusStreams {
 public:
  StatusStreams(uv_loop_t* loop, std::function<nlohmann::json()> snapshot);
  StatusStreams(const StatusStreams&) = delete;
  StatusStreams& operator=(const StatusStreams&) = delete;

  // Starts an SSE stream of snapshots on `exchange` (one at once, then one a second).
  void add(std::shared_ptr<http::Exchange> exchange);
  // Ends every stream (shutdown: the admin drain waits for them).
  void closeAll();
  size_t size() const { return streams_.size(); }

 private:
  void tick();

  std::function<nlohmann::json()> snapshot_;
  UvHandle<uv_timer_t> timer_;
  std::vector<std::shared_ptr<http::Exchange>> streams_;
};

}  // namespace tether::solverd
