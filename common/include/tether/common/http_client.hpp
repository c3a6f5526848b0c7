#pragma once
// Outbound HTTP on the event loop: libcurl's multi interface driven by libuv (uv_poll per socket,
// one uv_timer), as curl's own multi-uv example does. No redirects, no proxies from the
// environment, http and https only. Library code: it does not log; callers log the outcome.
//
//   tether::http::Client client(loop);
//   tether::http::ClientRequest req{.url = "https://hooks.example.com/x", .body = "{}"};
//   req.allow_address = [](const sockaddr* a) { return isPublic(a); };  // checked at connect
//   client.start(std::move(req), [](const tether::http::ClientResult& r) { ... });
#include "tether/common/http_request.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace tether::http {

struct ClientRequest {
  std::string url;
  std::string method = "POST";
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};  // the whole transfer
  // The address about to be connected to (after resolution); false refuses it and the request
  // ends with `refused`. Unset: every address.
  std::function<bool(const sockaddr*)> allow_address;
};

struct ClientResult {
  int status = 0;         // the HTTP status, 0 when no response came
  bool refused = false;   // allow_address said no
  bool timed_out = false;
  bool unreachable = false;  // could not resolve or connect (refused included)
  std::string error;      // curl's message when status is 0
  std::string body;       // the response body's first 64 KiB
};

// Worth another try: no answer (connect error, timeout) or 429 or 5xx, for the target may come
// back; a refused address or another status will not change. The retry rule of solverd's
// webhooks and of tether-agent's `interrupt webhook`.
inline bool worthRetrying(const ClientResult& r) {
  return !r.refused && (r.status == 0 || r.status == 429 || r.status >= 500);
}

class Client {
 public:
  explicit Client(uv_loop_t* loop);
  // Abandons transfers in flight: their callbacks do not run.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts one request; `done` runs once, on the loop, never from inside start().
  void start(ClientRequest request, std::function<void(const ClientResult&)> done);
  size_t inFlight() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::http
