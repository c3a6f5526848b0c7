#pragma once
// Headless Chromium (Debian `chromium`) driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on the browser's fd 3, replies and events on its fd 4, one
// JSON message each, ended by a NUL byte), so that a test can keep a page open while things
// happen and read its live DOM: no WebSocket client, no Python, no port.
#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <chrono>
#include <string>

namespace tether::test {

inline constexpr const char* kChromiumPath = "/usr/bin/chromium";

class Chromium {
 public:
  // Starts the browser with its profile in `profile_dir` (created by the browser).
  explicit Chromium(const std::string& profile_dir);
  // Browser.close, then SIGKILL to the browser's process group if it lingers; reaps it.
  ~Chromium();
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;

  bool started() const { return pid_ > 0 && to_ >= 0; }
  // Opens `url` in a new tab and waits for its load; returns the tab's session id, "" on failure.
  std::string open(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // The value of `expression` evaluated in the tab (JSON-serialisable), or null on error.
  nlohmann::json evaluate(const std::string& session, const std::string& expression);
  // A PNG of the tab's viewport written to `path`.
  bool screenshot(const std::string& session, const std::string& path);

 private:
  // One command; its result, or null on an error reply, a broken pipe or the timeout.
  nlohmann::json call(const std::string& method, nlohmann::json params, const std::string& session = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  pid_t pid_ = -1;
  int to_ = -1;    // our end of the browser's fd 3
  int from_ = -1;  // our end of the browser's fd 4
  int next_id_ = 1;
  std::string buf_;
};

}  // namespace tether::test
