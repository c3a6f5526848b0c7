#pragma once
// tether-proxy's admin listener (DESIGN.md "Admin listener", "Status page"): GET /metrics,
// /health, /requests, the live status page at / and its data at /status (JSON, or with
// Accept: text/event-stream one snapshot a second and one on every change). Served by the HTTP
// server every daemon's admin listener uses (common/http_server), apart from the data path:
// the page holds streams open for as long as it is shown, which the proxy's client connections
// are not made for. Internal to tether_proxy.
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "tether/common/http_server.hpp"
#include "tether/common/status_page.hpp"
#include "tether/config/address.hpp"

namespace tether::proxy {

struct Context;

// The requests in flight, as /requests and the status page list them.
nlohmann::json requestsInFlight(const Context& ctx);

class Admin {
 public:
  explicit Admin(Context& ctx);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // A reload in two steps, so that nothing changes when the proxy's own listeners fail: open()
  // opens what `addresses` adds (kept addresses stay open), commit() then closes what they no
  // longer name and starts the new ones; abandon() drops what open() opened. "" or why not.
  std::string open(const std::vector<config::Address>& addresses);
  void commit();
  void abandon();
  // Drain and shutdown: the status streams end, listeners and connections close.
  void close();
  // The listeners' addresses, in configuration order.
  std::vector<std::string> listening() const;

 private:
  void handle(const std::shared_ptr<http::Exchange>& ex);
  nlohmann::json snapshot() const;
  uint64_t version() const;

  Context& ctx_;
  http::Server server_;
  http::StatusStreams streams_;
  // Listeners the server runs (it owns them) and those open() made for commit().
  std::vector<const Listener*> running_;
  std::vector<std::unique_ptr<Listener>> opened_;
  std::vector<const Listener*> keep_;
};

}  // namespace tether::proxy
