#pragma once
// The `interrupt webhook URL;` action: an HTTP/1.1 POST to URL (with {id} replaced by the request
// id) that asks the service to stop its own solve. Fire and forget on the loop: the outcome comes
// back in a callback for the log; the ladder's kill after the grace covers a webhook that fails.
// The requests go through tether's one HTTP client (libcurl on the loop, common/http_client.hpp),
// as solverd's webhooks do.
#include "tether/common/http_client.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tether::agent::daemon {

struct WebhookUrl {
  std::string host;  // as written, for the Host header
  uint16_t port = 80;
  std::string path_template;  // "/cancel/{id}"
};

// Parses "http://host[:port]/path". nullopt with a phrase in `why` on failure.
std::optional<WebhookUrl> parseWebhookUrl(std::string_view url, std::string* why = nullptr);

class Webhook {
 public:
  // status: the HTTP status code (> 0) or a negative libuv error (UV_ETIMEDOUT, ...).
  using Callback = std::function<void(int status)>;

  // Checks that the host resolves (start-up: getaddrinfo may block), so that a typo fails the
  // start; each request resolves again (curl's resolver, off the loop). Throws
  // std::runtime_error when the URL is bad or the host does not resolve.
  Webhook(uv_loop_t* loop, std::string_view url, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Webhook();  // abandons requests in flight (their callbacks do not run)
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  // Starts a POST for `id`. Returns 0 or a libuv error if it could not even start.
  int fire(const std::string& id, Callback done);
  // The URL for `id` (for the log).
  std::string urlFor(const std::string& id) const;
  size_t inFlight() const { return client_.inFlight(); }

 private:
  WebhookUrl url_;
  bool v6_ = false;  // the host is an IPv6 literal: brackets in the URL
  std::chrono::milliseconds timeout_;
  http::Client client_;
};

}  // namespace tether::agent::daemon
