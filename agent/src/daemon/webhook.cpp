#include "webhook.hpp"

#include "tether/agent/control/request_id.hpp"

#include <netdb.h>
#include <uv.h>

#include <charconv>
#include <stdexcept>

namespace tether::agent::daemon {

std::optional<WebhookUrl> parseWebhookUrl(std::string_view url, std::string* why) {
  auto bad = [&](const char* what) -> std::optional<WebhookUrl> {
    if (why) *why = what;
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("only http:// URLs are supported");
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  WebhookUrl out;
  out.path_template = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("invalid port");
      port = authority.substr(close + 2);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  out.host = std::string(host);
  if (!port.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) return bad("invalid port");
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

Webhook::Webhook(uv_loop_t* loop, std::string_view url, std::chrono::milliseconds timeout)
    : loop_(loop), timeout_(timeout), client_(loop) {
  std::string why;
  auto parsed = parseWebhookUrl(url, &why);
  if (!parsed) throw std::runtime_error("invalid webhook URL \"" + std::string(url) + "\": " + why);
  url_ = std::move(*parsed);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(url_.port);
  if (int rc = getaddrinfo(url_.host.c_str(), port.c_str(), &hints, &result); rc != 0 || result == nullptr) {
    throw std::runtime_error("cannot resolve webhook host \"" + url_.host + "\": " + gai_strerror(rc));
  }
  freeaddrinfo(result);
  v6_ = url_.host.find(':') != std::string::npos;
}

Webhook::~Webhook() = default;  // the client abandons requests in flight

std::string Webhook::urlFor(const std::string& id) const {
  std::string path = url_.path_template;
  const std::string encoded = control::percentEncodeId(id);
  for (size_t at = path.find("{id}"); at != std::string::npos; at = path.find("{id}", at + encoded.size())) {
    path.replace(at, 4, encoded);
  }
  return path;
}

int Webhook::fire(const std::string& id, Callback done) {
  auto p = std::make_unique<Pending>();
  p->owner = this;
  p->id = id;
  p->done = std::move(done);
  Pending& ref = *p;
  pending_.push_back(std::move(p));
  attempt(ref);
  return 0;
}

void Webhook::attempt(Pending& p) {
  ++p.tries;
  http::ClientRequest request;
  const std::string host = v6_ ? "[" + url_.host + "]" : url_.host;
  request.url = "http://" + host + ":" + std::to_string(url_.port) + urlFor(p.id);
  request.headers = {{"X-Request-Id", control::percentEncodeId(p.id)}};
  request.timeout = timeout_;
  // The service is the operator's own (tether-agent.conf names it): no address check.
  client_.start(std::move(request), [this, &p](const http::ClientResult& r) { finished(p, r); });
}

void Webhook::finished(Pending& p, const http::ClientResult& r) {
  if (r.status >= 200 && r.status < 300) {
    if (p.done) p.done(r.status, p.tries);
    return remove(p);
  }
  if (!http::worthRetrying(r) || p.tries >= kTries) {
    // The libuv codes the caller logs (uv_strerror): the closest for what curl saw.
    const int status = r.status > 0 ? r.status : r.timed_out ? UV_ETIMEDOUT : r.unreachable ? UV_ECONNREFUSED : UV_EPROTO;
    if (p.done) p.done(status, p.tries);
    return remove(p);
  }
  p.retry = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  if (!*p.retry) return remove(p);
  p.retry->get()->data = &p;
  uv_timer_start(
      p.retry->get(),
      [](uv_timer_t* t) {
        auto* pending = static_cast<Pending*>(t->data);
        pending->retry.reset();  // closes the timer; its memory goes in the close callback
        pending->owner->attempt(*pending);
      },
      kFirstRetryMs << (p.tries - 1), 0);
}

void Webhook::remove(Pending& p) {
  pending_.remove_if([&p](const std::unique_ptr<Pending>& q) { return q.get() == &p; });
}

}  // namespace tether::agent::daemon
