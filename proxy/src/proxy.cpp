// Proxy: owns the listeners, the upstream groups and the shared Context; serves the admin views.
#include "tether/proxy/proxy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>

#include "admin.hpp"
#include "context.hpp"
#include "tether/agent/control/client.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/listener.hpp"
#include "tether/common/log.hpp"

namespace tether::proxy {

// ---- Context -------------------------------------------------------------------------------

AccessLogs::~AccessLogs() {
  for (auto& [path, fd] : fds_) {
    if (fd > 2) ::close(fd);
  }
}

int AccessLogs::open(const std::string& where) {
  if (where == "off") return -1;
  if (where == "stderr") return 2;
  auto it = fds_.find(where);
  if (it != fds_.end()) return it->second;
  int fd = ::open(where.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open access log \"" + where + "\": " + strerror(errno));
  fds_.emplace(where, fd);
  return fd;
}

Context::Context(uv_loop_t* l) : loop(l), timeouts(l), log(tether::log::get("proxy")) {
  requests = &registry.counter("tether_proxy_requests_total", "Requests answered, by status code.", {"code"});
  auto& protocols = registry.counter("tether_proxy_protocol_requests_total",
                                     "Requests answered, by the client's protocol (an HTTP/2 stream is one).",
                                     {"protocol"});
  by_protocol[0] = &protocols.with({"HTTP/1.1"});
  by_protocol[1] = &protocols.with({"HTTP/2.0"});
  disconnects = &registry.counter("tether_proxy_disconnects_total",
                                  "Clients that left before their response was complete.", {"phase", "cause"});
  cancels = &registry.counter("tether_proxy_cancels_total", "Cancel frames, by action, reason and outcome.",
                              {"action", "reason", "result"});
  disconnect_to_cancel = &registry
                              .histogram("tether_proxy_disconnect_to_cancel_seconds",
                                         "From a client's disconnect to its cancel frame written to the control socket.")
                              .get();
  registry.callbackGauge("tether_proxy_active_requests", "Requests in flight.",
                         [this] { return static_cast<double>(active.size()); });
  registry.callbackGauge("tether_proxy_open_connections", "Open client connections.",
                         [this] { return static_cast<double>(conns.size()); });
  // The control connections' own outcomes (the control client counts them).
  auto each_control = [this](auto value) {
    std::vector<metrics::Sample> out;
    if (!current) return out;
    for (const auto& g : current->groups) {
      if (const auto* c = g->control()) value(g->settings().name, *c, out);
    }
    return out;
  };
  registry.callbackFamily(
      metrics::Type::Counter, "tether_proxy_control_events_total",
      "Control connection events per upstream: frames sent, acks, drops, reconnects, connect failures, error replies.",
      {"upstream", "event"}, [each_control] {
        return each_control([](const std::string& name, const agent::control::Client& c, auto& out) {
          const auto& k = c.counters();
          for (auto [event, v] : {std::pair<const char*, uint64_t>{"sent", k.sent}, {"acked", k.acked},
                                  {"dropped", k.dropped}, {"reconnects", k.reconnects},
                                  {"connect_failures", k.connect_failures}, {"errors", k.errors}}) {
            out.push_back({{name, event}, static_cast<double>(v)});
          }
        });
      });
  registry.callbackFamily(metrics::Type::Gauge, "tether_proxy_control_queued",
                          "Cancels waiting to be written or acknowledged, per upstream.", {"upstream"}, [each_control] {
                            return each_control([](const std::string& name, const agent::control::Client& c, auto& out) {
                              out.push_back({{name}, static_cast<double>(c.queued())});
                            });
                          });
  registry.callbackFamily(metrics::Type::Gauge, "tether_proxy_control_connected",
                          "1 while the control connection of an upstream is up.", {"upstream"}, [each_control] {
                            return each_control([](const std::string& name, const agent::control::Client& c, auto& out) {
                              out.push_back({{name}, c.connected() ? 1.0 : 0.0});
                            });
                          });
}

void Context::countRequest(uint16_t status, uint8_t http_major) {
  by_protocol[http_major == 2 ? 1 : 0]->inc();
  // The series are looked up once per status code: the registry's lookup allocates.
  metrics::Counter* unused = nullptr;
  metrics::Counter*& counter = status < by_status.size() ? by_status[status] : unused;
  if (counter == nullptr) {
    char code[8];
    snprintf(code, sizeof code, "%u", static_cast<unsigned>(status));
    counter = &requests->with({std::string_view(code)});
  }
  counter->inc();
}

void Context::connectionClosed(ClientConn*) {
  if (draining && conns.empty() && on_idle) {
    auto done = std::move(on_idle);
    on_idle = nullptr;
    done();
  }
}

Generation::~Generation() {
  for (auto& g : groups) g->closeIdle();
}

// ---- admin ---------------------------------------------------------------------------------

// The admin listener is served by Admin (admin.cpp): /metrics, /health, /requests, the status
// page and its /status stream.


// ---- Proxy ---------------------------------------------------------------------------------

struct Proxy::Impl {
  explicit Impl(uv_loop_t* loop) : ctx(loop), admin(ctx) {}
  Context ctx;
  Admin admin;  // the admin listener (admin.hpp); destroyed before the context it reads
  // A listener and the server it feeds; a reload may point a kept listener at a new server.
  struct Open {
    std::unique_ptr<Listener> listener;
    std::shared_ptr<const ServerRef> server;
    bool kept = false;
  };
  std::vector<std::unique_ptr<Open>> listeners;
  std::optional<uv::Handle<uv_timer_t>> drain_timer;  // from drain() on

  std::string listen(const config::Address& address, std::shared_ptr<const ServerRef> server,
                     std::vector<std::unique_ptr<Open>>& into) {
    std::string why;
    ListenOptions options;
    options.backlog = 4096;  // the benchmark opens 1,000 connections at once
    auto l = Listener::open(ctx.loop, address, options, &why);
    if (!l) return "cannot listen on " + address.text() + ": " + why;
    auto open = std::make_unique<Open>();
    Open* raw = open.get();
    open->server = std::move(server);
    Context* c = &ctx;
    int r = l->start([c, raw](int status) {
      if (status < 0) {
        // Out of file descriptors and the like: libuv keeps the listener going; say it at most
        // once a second, not once per refused client.
        uint64_t now = monotonicNs();
        if (now - c->last_accept_error_ns > 1'000'000'000ULL) {
          c->last_accept_error_ns = now;
          c->log->error("accept on {} failed: {}", raw->listener->address(), uv_strerror(status));
        }
        return;
      }
      ClientConn::accept(*c, raw->listener->stream(), raw->server, raw->listener->isUnix());
    });
    if (r != 0) return "cannot listen on " + address.text() + ": " + uv_strerror(r);
    ctx.log->info("listening on {}", l->address());
    open->listener = std::move(l);
    into.push_back(std::move(open));
    return {};
  }

  // Builds a generation and points listeners at it: kept where the address is unchanged,
  // opened where new, closed where gone. On failure nothing changes.
  std::string apply(Settings settings) {
    auto gen = std::make_shared<Generation>();
    gen->settings = std::move(settings);
    for (const auto& u : gen->settings.upstreams) {
      auto g = std::make_unique<UpstreamGroup>(ctx, u);
      if (auto why = g->resolve(); !why.empty()) return why;
      gen->groups.push_back(std::move(g));
    }
    struct Want {
      config::Address address;
      std::shared_ptr<const ServerRef> server;
    };
    std::vector<Want> wants;
    for (const auto& srv : gen->settings.servers) {
      auto ref = std::make_shared<ServerRef>();
      ref->gen = gen;
      ref->settings = &srv;
      try {
        for (const auto& log : srv.access_logs) {
          ref->access_logs.push_back({ctx.access_logs.open(log.path), log.format.get()});
        }
      } catch (const std::exception& e) {
        return e.what();
      }
      for (const auto& a : srv.listens) wants.push_back({a, ref});
    }
    std::vector<std::unique_ptr<Open>> opened;
    std::vector<std::pair<Open*, std::shared_ptr<const ServerRef>>> repoint;
    for (auto& w : wants) {
      Open* same = nullptr;
      for (auto& o : listeners) {
        if (!o->kept && o->listener->configured() == w.address) same = o.get();
      }
      if (same != nullptr) {
        same->kept = true;
        repoint.emplace_back(same, w.server);
        continue;
      }
      if (auto why = listen(w.address, w.server, opened); !why.empty()) {
        for (auto& o : listeners) o->kept = false;
        return why;  // `opened` closes as it goes out of scope
      }
    }
    if (auto why = admin.open(gen->settings.admin_listens); !why.empty()) {
      for (auto& o : listeners) o->kept = false;
      return why;
    }
    for (auto& [o, server] : repoint) o->server = server;
    for (auto& o : listeners) {
      if (!o->kept) o->listener->close();
    }
    std::erase_if(listeners, [](const std::unique_ptr<Open>& o) { return !o->kept; });
    for (auto& o : listeners) o->kept = false;
    for (auto& o : opened) listeners.push_back(std::move(o));
    admin.commit();
    for (auto& g : gen->groups) g->startControl();
    ctx.current = std::move(gen);
    return {};
  }
};

Proxy::Proxy(uv_loop_t* loop, Settings settings) : impl_(std::make_unique<Impl>(loop)) {
  pending_ = std::move(settings);
  Context* ctx = &impl_->ctx;
  ctx->requests_json = [ctx] { return requestsInFlight(*ctx).dump() + "\n"; };
}

Proxy::~Proxy() {
  Context& ctx = impl_->ctx;
  // No drain callback from a destructor: its owner (main's signal handling) may be gone already.
  ctx.on_idle = nullptr;
  while (!ctx.conns.empty()) ctx.conns.front()->forceClose();
  for (auto& o : impl_->listeners) o->listener->close();
  impl_->listeners.clear();
  impl_->admin.close();
  ctx.current.reset();
}

std::string Proxy::start() { return impl_->apply(std::move(pending_)); }

void Proxy::drain(std::function<void()> done) {
  Context& ctx = impl_->ctx;
  if (ctx.draining) return;
  ctx.draining = true;
  for (auto& o : impl_->listeners) o->listener->close();
  // The admin views answer at once; only status streams stay open, and they end here.
  impl_->admin.close();
  if (ctx.current) {
    for (auto& g : ctx.current->groups) g->closeIdle();
  }
  auto finish = [this, done = std::move(done)] {
    impl_->drain_timer.reset();
    impl_->listeners.clear();
    // Closes the pools and the control clients (a cancel still queued for a control socket that
    // is down is dropped here: we are exiting).
    impl_->ctx.current.reset();
    if (done) done();
  };
  ctx.on_idle = finish;
  // Idle keep-alive connections go at once; in-flight requests finish with Connection: close.
  std::vector<ClientConn*> all(ctx.conns.begin(), ctx.conns.end());
  for (ClientConn* c : all) c->drain();
  if (ctx.conns.empty()) {
    ctx.on_idle = nullptr;
    finish();
    return;
  }
  auto& timer = impl_->drain_timer.emplace(ctx.loop);
  timer->data = this;
  uint64_t timeout = ctx.current ? static_cast<uint64_t>(ctx.current->settings.shutdown_timeout.count()) : 0;
  uv_timer_start(timer.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Proxy*>(t->data);
    Context& c = self->impl_->ctx;
    c.log->warn("shutdown_timeout expired with {} requests in flight; cancelling them", c.active.size());
    while (!c.conns.empty()) c.conns.front()->forceClose();
  }, timeout, 0);
}

std::string Proxy::reload(Settings settings) {
  if (impl_->ctx.draining) return "draining, reload ignored";
  return impl_->apply(std::move(settings));
}

std::string Proxy::metricsText() const { return impl_->ctx.registry.render(); }
std::string Proxy::requestsJson() const { return impl_->ctx.requests_json(); }
size_t Proxy::activeRequests() const { return impl_->ctx.active.size(); }
size_t Proxy::openConnections() const { return impl_->ctx.conns.size(); }

std::vector<std::string> Proxy::listening() const {
  std::vector<std::string> out;
  for (const auto& o : impl_->listeners) out.push_back(o->listener->address());
  for (auto& a : impl_->admin.listening()) out.push_back(std::move(a));
  return out;
}

}  // namespace tether::proxy
