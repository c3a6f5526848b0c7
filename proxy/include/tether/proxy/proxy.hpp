#pragma once
// tether-proxy's runtime: every listener, client connection, upstream pool and control client of
// one Settings, on one libuv loop, no threads. See DESIGN.md "Disconnect semantics".
//
//   tether::proxy::Proxy proxy(loop, settings);
//   if (auto why = proxy.start(); !why.empty()) { /* log, exit 1 */ }
//   uv_run(loop, UV_RUN_DEFAULT);
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/proxy/settings.hpp"

namespace tether::proxy {

class Proxy {
 public:
  Proxy(uv_loop_t* loop, Settings settings);
  ~Proxy();  // closes everything still open (run the loop afterwards to finish the closes)
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Opens every listener (logging `listening on ADDRESS` for each) and the control clients.
  // Start-up only. Returns "" or a phrase saying which listener failed and why.
  std::string start();

  // SIGTERM: stops accepting, closes idle connections, lets in-flight requests finish (their
  // responses get `Connection: close`); after `shutdown_timeout` cancels what is left (reason
  // `shutdown`). `done` runs once nothing is left; the loop then has no proxy handle open.
  void drain(std::function<void()> done);

  // SIGHUP: new requests use `settings`; in-flight requests keep the settings they started with.
  // Listeners are kept when their address is unchanged, opened when new, closed when gone.
  // Returns "" or why the new settings could not be applied (the old ones stay).
  std::string reload(Settings settings);

  // The admin views, also served on the admin listener.
  std::string metricsText() const;
  std::string requestsJson() const;
  size_t activeRequests() const;
  size_t openConnections() const;
  // The addresses listened on ("127.0.0.1:40123", "unix:/run/x.sock"): a port 0 resolved.
  std::vector<std::string> listening() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  Settings pending_;  // until start()
};

}  // namespace tether::proxy
