#pragma once
// The `interrupt webhook URL;` action: an HTTP/1.1 POST to URL (with {id} replaced by the request
// id) that asks the service to stop its own solve. Fire and forget on the loop: the outcome comes
// back in a callback for the log; the ladder's kill after the grace covers a webhook that fails.
// A try that may pass later (http::worthRetrying: no answer, 429, 5xx) is repeated, kTries in all,
// 100 ms then 200 ms apart: soon, since the grace the service has to stop is seconds long.
// The requests go through tether's one HTTP client (libcurl on the loop, common/http_client.hpp),
// as solverd's webhooks do.
#include "tether/common/http_client.hpp"
#include "tether/common/uv_kit.hpp"

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
  static constexpr int kTries = 3;
  static constexpr uint64_t kFirstRetryMs = 100;  // then doubling

  // status: the HTTP status code (> 0) or a negative libuv error (UV_ETIMEDOUT, ...) of the last
  // try; tries: how many were made.
  using Callback = std::function<void(int status, int tries)>;

  // Checks that the host resolves (start-up: getaddrinfo may block), so that a typo fails the
  // start; each request resolves again (curl's resolver, off the loop). Throws
  // std::runtime_error when the URL is bad or the host does not resolve.
  Webhook(uv_loop_t* loop, std::string_view url, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Webhook();  // abandons requests in flight and retries waiting (their callbacks do not run)
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  // Starts a POST for `id`. Returns 0 or a libuv error if it could not even start.
  int fire(const std::string& id, Callback done);
  // The URL for `id` (for the log).
  std::string urlFor(const std::string& id) const;
  // Requests not yet answered or given up (tries in flight and retries waiting).
  size_t inFlight() const { return pending_.size(); }

 private:
  struct Pending {
    Webhook* owner = nullptr;
    std::string id;
    Callback done;
    int tries = 0;
    std::unique_ptr<uv::Handle<uv_timer_t>> retry;
  };
  void attempt(Pending& p);
  void finished(Pending& p, const http::ClientResult& r);
  void remove(Pending& p);

  uv_loop_t* loop_;
  WebhookUrl url_;
  bool v6_ = false;  // the host is an IPv6 literal: brackets in the URL
  std::chrono::milliseconds timeout_;
  std::list<std::unique_ptr<Pending>> pending_;
  http::Client client_;  // declared last: gone first, so no transfer outlives its Pending
};

}  // namespace tether::agent::daemon
