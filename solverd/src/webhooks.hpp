#pragma once
// Webhooks (DESIGN.md "Webhooks"): on a job's terminal status solverd POSTs its description to
// each `callback=URL` given at submission, signed with `callback_secret`, retried on connect
// errors, timeouts, 429 and 5xx (5 tries from 1 s, doubling), never redirected, and only to
// targets `callback_allow` admits, checked at submission on the URL and at connect time on the
// address actually connected to. Internal to the daemon.
#include "tether/common/http_client.hpp"
#include "tether/common/uv_kit.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tether::solverd {

// Who may be called back. Entries of `callback_allow`: CIDRs (10.0.0.0/8, fd00::/8, a single
// address), host names (matched against the URL's host, whatever it resolves to), and `public`
// (every address outside loopback, private, link-local, shared, multicast and reserved ranges).
// Without the directive: `public` alone.
class CallbackPolicy {
 public:
  // Parses the directive's arguments; nullopt with `why` naming the bad one.
  static std::optional<CallbackPolicy> parse(const std::vector<std::string>& entries, std::string* why);

  // At submission: nullopt, or {code, message} for the 422 (invalid_callback: not an http(s) URL
  // with a host; callback_refused: its host is an address, or localhost, that is not admitted).
  struct Refusal {
    std::string code;
    std::string message;
  };
  std::optional<Refusal> check(const std::string& url) const;
  // At connect time: may `host` (the URL's) be reached at `address`?
  bool admits(const std::string& host, const sockaddr* address) const;

 private:
  struct Cidr {
    int family = AF_INET;
    std::array<uint8_t, 16> bytes{};
    int prefix = 0;
  };
  bool admitsAddress(int family, const uint8_t* bytes) const;

  bool allow_public_ = true;
  std::vector<Cidr> cidrs_;
  std::vector<std::string> hosts_;
};

// "t=UNIX,v1=HEX": HMAC-SHA256 with `secret` over "UNIX.BODY" (the scheme of Stripe's and
// GitHub's webhook signatures).
std::string webhookSignature(const std::string& secret, int64_t unix_seconds, const std::string& body);

class Webhooks {
 public:
  static constexpr int kTries = 5;

  Webhooks(uv_loop_t* loop, CallbackPolicy policy, std::string secret);
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  void setPolicy(CallbackPolicy policy, std::string secret);
  const CallbackPolicy& policy() const { return policy_; }

  // Sends `body` (a JSON document) to `url` for job `job`, with retries; logs the outcome.
  void deliver(const std::string& job, const std::string& url, std::string body);
  // Deliveries not yet answered or given up (tries in flight and retries waiting).
  size_t pending() const { return deliveries_.size(); }
  // Shutdown: waiting retries go now, and a failure is not retried again.
  void finishUp();
  // Runs when pending() drops to 0.
  void onIdle(std::function<void()> callback) { idle_ = std::move(callback); }

 private:
  struct Delivery {
    Webhooks* owner = nullptr;
    std::string job;
    std::string url;
    std::string host;
    std::string body;
    int tries = 0;
    std::unique_ptr<uv::Handle<uv_timer_t>> retry;
  };
  void attempt(Delivery& d);
  static void onRetry(uv_timer_t* timer);
  void finished(Delivery& d, const http::ClientResult& result);
  void remove(Delivery& d);

  uv_loop_t* loop_;
  CallbackPolicy policy_;
  std::string secret_;
  http::Client client_;
  std::list<std::unique_ptr<Delivery>> deliveries_;
  bool finishing_ = false;
  std::function<void()> idle_;
};

}  // namespace tether::solverd
