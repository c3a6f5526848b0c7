// Several hosts (DESIGN.md "Several hosts"): a detached job lives in the memory of the solverd
// that accepted it, so its polls (which renew its lease), its watchers and its cancels must reach
// that server; another would answer 404 and the client would take its job for lost. solverd's
// `route NAME;` ends the ids of the jobs it accepts with ".NAME", and `server ADDRESS route=NAME;`
// tells the proxy which server that is. Kept apart from the connection code: one call from the
// route step (ClientConn::forward and the one retry on a fresh connection).
#include "runtime.hpp"

#include "tether/agent/control/request_id.hpp"

namespace tether::proxy {

namespace {
constexpr std::string_view kJobsPrefix = "/v1/jobs/";
}

size_t jobRouteServer(const UpstreamGroup& group, std::string_view url) {
  const auto& routes = group.settings().routes;
  if (!url.starts_with(kJobsPrefix)) return kAnyServer;
  std::string_view id = url.substr(kJobsPrefix.size());
  id = id.substr(0, id.find_first_of("/?#"));
  // The id as it appears in the path: percent-encoded where it must be, but a route is made of
  // unreserved bytes (RFC 3986 section 2.3), so the suffix reads the same either way.
  std::string_view route = agent::control::routeOf(id);
  if (route.empty()) return kAnyServer;
  for (size_t i = 0; i < routes.size(); ++i) {
    if (routes[i] == route) return i;
  }
  // A route this upstream does not know (a dot in an unrouted id): any server, as before routes.
  return kAnyServer;
}

}  // namespace tether::proxy
