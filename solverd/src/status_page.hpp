#pragma once
// solverd's live status page (DESIGN.md "Status page"): GET / on the admin listener is one
// self-contained HTML page (common/status_page.hpp); GET /status is its data as JSON, or with
// Accept: text/event-stream a snapshot every second as Server-Sent Events, which the page reads
// with EventSource. Internal to the daemon.
#include <string>

namespace tether::solverd {

// The page, without its snapshot (http::respondStatusPage embeds it).
const std::string& statusPageHtml();

}  // namespace tether::solverd
