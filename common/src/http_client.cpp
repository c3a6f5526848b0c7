#include "tether/common/http_client.hpp"

#include "tether/common/uv_kit.hpp"

#include <curl/curl.h>

#include <unordered_map>
#include <utility>

namespace tether::http {
namespace {

constexpr size_t kMaxResponseBody = 64 * 1024;

struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  ClientRequest request;
  std::function<void(const ClientResult&)> done;
  std::string response;
  bool refused = false;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

// One socket curl asked us to watch. Its memory goes in the poll handle's close callback.
struct Watch {
  uv_poll_t poll{};
  curl_socket_t fd = CURL_SOCKET_BAD;
  Client::Impl* impl = nullptr;
};

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->response.size() < kMaxResponseBody) t->response.append(data, std::min(n, kMaxResponseBody - t->response.size()));
  return n;
}

// CURLOPT_OPENSOCKETFUNCTION: the address is the one resolved and about to be connected to, so
// the allow check cannot be fooled by a name that resolves differently later (DNS rebinding).
curl_socket_t onOpenSocket(void* user, curlsocktype, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request.allow_address && !t->request.allow_address(&address->addr)) {
    t->refused = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

}  // namespace

struct Client::Impl {
  uv_loop_t* loop;
  CURLM* multi = nullptr;
  uv::Handle<uv_timer_t> timer;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers;

  explicit Impl(uv_loop_t* l) : loop(l), timer(l) {
    static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    (void)initialized;
    if (timer) {
      timer->data = this;
      // curl's timer keeps the loop running only while transfers are in flight (start() refs it,
      // the last transfer's end unrefs it): a transfer's first step is this timer, before any
      // socket is polled, and a loop with nothing else to do must still make it (a daemon's stop
      // closes what is left).
      uv_unref(timer.raw());
    }
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::onSocket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::onTimer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  }

  ~Impl() {
    // Removing a handle may call onSocket(REMOVE) for its sockets: the watches close here.
    for (auto& [easy, t] : transfers) curl_multi_remove_handle(multi, easy);
    transfers.clear();
    curl_multi_cleanup(multi);
    timer.close();
  }

  static int onSocket(CURL*, curl_socket_t fd, int what, void* user, void* socket_data) {
    auto* self = static_cast<Impl*>(user);
    auto* watch = static_cast<Watch*>(socket_data);
    if (what == CURL_POLL_REMOVE) {
      if (watch != nullptr) {
        // Before curl closes the fd: libuv must stop polling it first.
        uv_poll_stop(&watch->poll);
        uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
                 [](uv_handle_t* h) { delete static_cast<Watch*>(h->data); });
        curl_multi_assign(self->multi, fd, nullptr);
      }
      return 0;
    }
    if (watch == nullptr) {
      watch = new Watch;
      watch->fd = fd;
      watch->impl = self;
      if (uv_poll_init_socket(self->loop, &watch->poll, fd) != 0) {
        delete watch;
        return -1;  // curl fails the transfer
      }
      watch->poll.data = watch;
      curl_multi_assign(self->multi, fd, watch);
    }
    int events = 0;
    if ((what & CURL_POLL_IN) != 0) events |= UV_READABLE;
    if ((what & CURL_POLL_OUT) != 0) events |= UV_WRITABLE;
    uv_poll_start(&watch->poll, events, [](uv_poll_t* h, int status, int ev) {
      auto* w = static_cast<Watch*>(h->data);
      int flags = 0;
      if (status < 0) {
        flags = CURL_CSELECT_ERR;
      } else {
        if ((ev & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
        if ((ev & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
      }
      Impl* impl = w->impl;  // `w` may be freed by the action below
      int running = 0;
      curl_multi_socket_action(impl->multi, w->fd, flags, &running);
      impl->finishDone();
    });
    return 0;
  }

  static int onTimer(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (!self->timer) return 0;
    if (timeout_ms < 0) {
      uv_timer_stop(self->timer.get());
      return 0;
    }
    // 0 means "now": the next loop turn, never from inside curl's own call.
    uv_timer_start(
        self->timer.get(),
        [](uv_timer_t* t) {
          auto* impl = static_cast<Impl*>(t->data);
          int running = 0;
          curl_multi_socket_action(impl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
          impl->finishDone();
        },
        static_cast<uint64_t>(timeout_ms), 0);
    return 0;
  }

  void finishDone() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      CURLcode code = msg->data.result;
      auto it = transfers.find(easy);
      if (it == transfers.end()) continue;
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers.erase(it);
      if (transfers.empty() && timer) uv_unref(timer.raw());
      curl_multi_remove_handle(multi, easy);
      ClientResult result;
      long status = 0;
      if (code == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      result.status = static_cast<int>(status);
      result.refused = t->refused;
      result.timed_out = code == CURLE_OPERATION_TIMEDOUT;
      result.unreachable = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST;
      if (code != CURLE_OK) result.error = t->error[0] != '\0' ? std::string(t->error) : curl_easy_strerror(code);
      result.body = std::move(t->response);
      auto done = std::move(t->done);
      t.reset();
      if (done) done(result);  // may start() again: the map is consistent
    }
  }
};

Client::Client(uv_loop_t* loop) : impl_(std::make_unique<Impl>(loop)) {}
Client::~Client() = default;

size_t Client::inFlight() const { return impl_->transfers.size(); }

void Client::start(ClientRequest request, std::function<void(const ClientResult&)> done) {
  auto t = std::make_unique<Transfer>();
  t->request = std::move(request);
  t->done = std::move(done);
  CURL* easy = curl_easy_init();
  t->easy = easy;
  const ClientRequest& r = t->request;
  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");  // never a proxy from the environment
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "tether/" TETHER_VERSION);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &onOpenSocket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t.get());
  if (r.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, r.body.c_str());
  } else if (r.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  for (const auto& h : r.headers) t->headers = curl_slist_append(t->headers, (h.name + ": " + h.value).c_str());
  // No "Expect: 100-continue" pause before the body.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
  impl_->transfers.emplace(easy, std::move(t));
  if (impl_->timer) uv_ref(impl_->timer.raw());
  curl_multi_add_handle(impl_->multi, easy);
}

}  // namespace tether::http
