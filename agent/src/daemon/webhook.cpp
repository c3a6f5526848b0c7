#include "webhook.hpp"

#include "tether/agent/control/request_id.hpp"

#include <netdb.h>

#include <charconv>
#include <cstring>
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

struct Webhook::Request {
  Webhook* owner = nullptr;
  std::string id;
  Callback done;
  UvHandle<uv_tcp_t> tcp;
  UvHandle<uv_timer_t> timer;
  std::string out;
  std::string in;
  std::list<std::unique_ptr<Request>>::iterator self;
};

Webhook::Webhook(uv_loop_t* loop, std::string_view url, std::chrono::milliseconds timeout)
    : loop_(loop), timeout_(timeout) {
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
  std::memcpy(&address_, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
}

Webhook::~Webhook() {
  for (auto& r : requests_) {
    r->tcp->data = nullptr;
    r->timer->data = nullptr;
  }
  requests_.clear();
}

std::string Webhook::urlFor(const std::string& id) const {
  std::string path = url_.path_template;
  const std::string encoded = control::percentEncodeId(id);
  for (size_t at = path.find("{id}"); at != std::string::npos; at = path.find("{id}", at + encoded.size())) {
    path.replace(at, 4, encoded);
  }
  return path;
}

int Webhook::fire(const std::string& id, Callback done) {
  auto request = std::make_unique<Request>();
  Request* r = request.get();
  r->owner = this;
  r->id = id;
  r->done = std::move(done);
  const bool v6 = address_.ss_family == AF_INET6;
  const std::string host = v6 ? "[" + url_.host + "]" : url_.host;
  r->out = "POST " + urlFor(id) + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(url_.port) +
           "\r\nUser-Agent: tether-agent\r\nX-Request-Id: " + control::percentEncodeId(id) +
           "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (int rc = uv_tcp_init(loop_, r->tcp.get()); rc != 0) return rc;
  r->tcp.markInitialized();
  r->tcp->data = r;
  uv_timer_init(loop_, r->timer.get());
  r->timer.markInitialized();
  r->timer->data = r;
  requests_.push_back(std::move(request));
  r->self = std::prev(requests_.end());

  uv_timer_start(
      r->timer.get(),
      [](uv_timer_t* t) {
        if (auto* req = static_cast<Request*>(t->data)) req->owner->finish(req, UV_ETIMEDOUT);
      },
      static_cast<uint64_t>(timeout_.count()), 0);
  auto* connect = new uv_connect_t{};
  int rc = uv_tcp_connect(connect, r->tcp.get(), reinterpret_cast<const sockaddr*>(&address_), [](uv_connect_t* c, int status) {
    // The request is freed here; everything the callback needs from it is read first (the stream
    // outlives the request: it is the Request's handle, closed only by finish()).
    uv_stream_t* stream = c->handle;
    delete c;
    auto* req = static_cast<Request*>(stream->data);
    if (req == nullptr) return;
    if (status < 0) {
      req->owner->finish(req, status);
      return;
    }
    auto* write = new uv_write_t{};
    uv_buf_t buf = uv_buf_init(req->out.data(), static_cast<unsigned>(req->out.size()));
    if (int wrc = uv_write(write, stream, &buf, 1, [](uv_write_t* w, int) { delete w; }); wrc != 0) {
      delete write;
      req->owner->finish(req, wrc);
      return;
    }
    uv_read_start(
        stream,
        [](uv_handle_t*, size_t suggested, uv_buf_t* b) { *b = uv_buf_init(new char[suggested], static_cast<unsigned>(suggested)); },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          std::unique_ptr<char[]> owned(b->base);
          auto* rq = static_cast<Request*>(s->data);
          if (rq == nullptr) return;
          if (n > 0) rq->in.append(b->base, static_cast<size_t>(n));
          // "HTTP/1.1 200 ": the status line is all we need; the body is the service's business.
          int code = 0;
          if (rq->in.size() >= 12 && rq->in.compare(0, 5, "HTTP/") == 0) {
            std::from_chars(rq->in.data() + 9, rq->in.data() + 12, code);
          }
          if (code > 0) {
            rq->owner->finish(rq, code);
          } else if (n < 0) {
            rq->owner->finish(rq, n == UV_EOF ? UV_EPROTO : static_cast<int>(n));
          }
        });
  });
  if (rc != 0) {
    delete connect;
    finish(r, rc);
    return 0;  // reported through the callback like every other failure
  }
  return 0;
}

// The one teardown of a request: reached from the status line arriving, a connect/read/write
// error, and the timeout. The callback runs after the request is gone from the list.
void Webhook::finish(Request* request, int status) {
  Callback done = std::move(request->done);
  request->tcp->data = nullptr;
  request->timer->data = nullptr;
  requests_.erase(request->self);
  if (done) done(status);
}

}  // namespace tether::agent::daemon
