#include "webhooks.hpp"

#include "tether/common/log.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tether::solverd {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An address literal (brackets of an IPv6 URL host removed): family and 16 bytes (v4 in the first 4).
bool parseAddress(std::string text, int& family, std::array<uint8_t, 16>& bytes) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  bytes.fill(0);
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

bool inPrefix(const uint8_t* a, const uint8_t* b, int prefix) {
  int full = prefix / 8;
  if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

struct Range {
  int family;
  std::array<uint8_t, 16> bytes;
  int prefix;
};

// Not public: RFC 6890's special-purpose ranges that a webhook has no business reaching.
const std::vector<Range>& notPublic() {
  static const std::vector<Range> kRanges = [] {
    std::vector<Range> out;
    for (const char* cidr : {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                             "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
                             "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3", "::/127", "100::/64",
                             "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8"}) {
      std::string text(cidr);
      auto slash = text.find('/');
      Range r{};
      parseAddress(text.substr(0, slash), r.family, r.bytes);
      r.prefix = std::stoi(text.substr(slash + 1));
      out.push_back(r);
    }
    return out;
  }();
  return kRanges;
}

bool isPublic(int family, const uint8_t* bytes) {
  if (family == AF_INET6) {
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses are their IPv4 one.
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(bytes, kMapped, 12) == 0 || std::memcmp(bytes, kNat64, 12) == 0) {
      return isPublic(AF_INET, bytes + 12);
    }
  }
  return std::none_of(notPublic().begin(), notPublic().end(), [&](const Range& r) {
    return r.family == family && inPrefix(bytes, r.bytes.data(), r.prefix);
  });
}

std::string hex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

// The scheme and host of an absolute URL (curl's own parser, the one that will use it), or false.
bool urlParts(const std::string& url, std::string& scheme, std::string& host) {
  CURLU* u = curl_url();
  bool ok = curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  char* part = nullptr;
  if (ok && curl_url_get(u, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
    scheme = lower(part);
    curl_free(part);
  } else {
    ok = false;
  }
  part = nullptr;
  if (ok && curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
    host = lower(part);
    curl_free(part);
  } else {
    ok = false;
  }
  curl_url_cleanup(u);
  return ok && !host.empty();
}

}  // namespace

std::optional<CallbackPolicy> CallbackPolicy::parse(const std::vector<std::string>& entries, std::string* why) {
  CallbackPolicy p;
  if (entries.empty()) return p;  // the default: public addresses
  p.allow_public_ = false;
  for (const auto& entry : entries) {
    if (entry == "public") {
      p.allow_public_ = true;
      continue;
    }
    auto slash = entry.find('/');
    Cidr c;
    if (parseAddress(entry.substr(0, slash), c.family, c.bytes)) {
      int max = c.family == AF_INET ? 32 : 128;
      c.prefix = max;
      if (slash != std::string::npos) {
        const std::string bits = entry.substr(slash + 1);
        if (bits.empty() || bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), ::isdigit) ||
            std::stoi(bits) > max) {
          if (why != nullptr) *why = "invalid prefix length in \"" + entry + "\"";
          return std::nullopt;
        }
        c.prefix = std::stoi(bits);
      }
      p.cidrs_.push_back(c);
      continue;
    }
    // A host name: letters, digits, '-' and '.' (RFC 1123).
    bool name = slash == std::string::npos && !entry.empty() &&
                std::all_of(entry.begin(), entry.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.'; });
    if (!name) {
      if (why != nullptr) *why = "\"" + entry + "\" is not a CIDR, a host name or \"public\"";
      return std::nullopt;
    }
    p.hosts_.push_back(lower(entry));
  }
  return p;
}

bool CallbackPolicy::admitsAddress(int family, const uint8_t* bytes) const {
  for (const auto& c : cidrs_) {
    if (c.family == family && inPrefix(bytes, c.bytes.data(), c.prefix)) return true;
  }
  return allow_public_ && isPublic(family, bytes);
}

std::optional<CallbackPolicy::Refusal> CallbackPolicy::check(const std::string& url) const {
  std::string scheme, host;
  if (url.size() > 2048 || !urlParts(url, scheme, host) || (scheme != "http" && scheme != "https")) {
    return Refusal{"invalid_callback", "callback must be an absolute http:// or https:// URL with a host"};
  }
  if (std::find(hosts_.begin(), hosts_.end(), host) != hosts_.end()) return std::nullopt;
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  if (parseAddress(host, family, bytes)) {
    if (admitsAddress(family, bytes.data())) return std::nullopt;
    return Refusal{"callback_refused", "callback address " + host + " is not allowed (callback_allow)"};
  }
  if (host == "localhost" || host.ends_with(".localhost")) {
    // RFC 6761 section 6.3: always loopback. Names that resolve elsewhere are checked at connect.
    parseAddress("127.0.0.1", family, bytes);
    if (!admitsAddress(family, bytes.data())) {
      return Refusal{"callback_refused", "callback host " + host + " is loopback, not allowed (callback_allow)"};
    }
  }
  return std::nullopt;
}

bool CallbackPolicy::admits(const std::string& host, const sockaddr* address) const {
  if (std::find(hosts_.begin(), hosts_.end(), host) != hosts_.end()) return true;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return admitsAddress(AF_INET, reinterpret_cast<const uint8_t*>(&in->sin_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return admitsAddress(AF_INET6, in6->sin6_addr.s6_addr);
  }
  return false;
}

std::string webhookSignature(const std::string& secret, int64_t unix_seconds, const std::string& body) {
  std::string signed_text = std::to_string(unix_seconds) + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac, &len);
  return fmt::format("t={},v1={}", unix_seconds, hex(mac, len));
}

Webhooks::Webhooks(uv_loop_t* loop, CallbackPolicy policy, std::string secret)
    : loop_(loop), policy_(std::move(policy)), secret_(std::move(secret)), client_(loop) {}

void Webhooks::setPolicy(CallbackPolicy policy, std::string secret) {
  policy_ = std::move(policy);
  secret_ = std::move(secret);
}

void Webhooks::deliver(const std::string& job, const std::string& url, std::string body) {
  auto d = std::make_unique<Delivery>();
  d->owner = this;
  d->job = job;
  d->url = url;
  std::string scheme;
  urlParts(url, scheme, d->host);
  d->body = std::move(body);
  Delivery& ref = *d;
  deliveries_.push_back(std::move(d));
  attempt(ref);
}

void Webhooks::attempt(Delivery& d) {
  ++d.tries;
  http::ClientRequest req;
  req.url = d.url;
  req.body = d.body;
  req.headers = {{"Content-Type", "application/json"}, {"Tether-Job", d.job}};
  if (!secret_.empty()) {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    req.headers.push_back({"Tether-Signature", webhookSignature(secret_, now.count(), d.body)});
  }
  req.allow_address = [policy = policy_, host = d.host](const sockaddr* a) { return policy.admits(host, a); };
  client_.start(std::move(req), [this, &d](const http::ClientResult& r) { finished(d, r); });
}

void Webhooks::finished(Delivery& d, const http::ClientResult& r) {
  auto logger = log::get("webhook");
  if (r.status >= 200 && r.status < 300) {
    logger->info("job={} webhook delivered to {} ({}, try {})", d.job, d.url, r.status, d.tries);
    return remove(d);
  }
  std::string why = r.refused     ? std::string("the address connected to is not allowed by callback_allow")
                    : r.status != 0 ? fmt::format("status {}", r.status)
                                    : r.error;
  if (!http::worthRetrying(r) || d.tries >= kTries || finishing_) {
    logger->warn("job={} webhook to {} given up after {} tr{}: {}", d.job, d.url, d.tries, d.tries == 1 ? "y" : "ies",
                 why);
    return remove(d);
  }
  uint64_t delay_ms = 1000ULL << (d.tries - 1);  // 1 s, 2 s, 4 s, 8 s
  logger->info("job={} webhook to {} failed ({}); try {} in {}ms", d.job, d.url, why, d.tries + 1, delay_ms);
  d.retry = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  if (!*d.retry) return remove(d);
  d.retry->get()->data = &d;
  uv_timer_start(d.retry->get(), &Webhooks::onRetry, delay_ms, 0);
}

void Webhooks::onRetry(uv_timer_t* timer) {
  auto* d = static_cast<Delivery*>(timer->data);
  d->retry.reset();  // closes the timer; its memory goes in the close callback
  d->owner->attempt(*d);
}

void Webhooks::finishUp() {
  finishing_ = true;
  for (auto& d : deliveries_) {
    if (d->retry && *d->retry) uv_timer_start(d->retry->get(), &Webhooks::onRetry, 0, 0);
  }
}

void Webhooks::remove(Delivery& d) {
  deliveries_.remove_if([&d](const std::unique_ptr<Delivery>& p) { return p.get() == &d; });
  if (deliveries_.empty() && idle_) idle_();
}

}  // namespace tether::solverd
