#pragma once
// TCP keepalive for accepted client connections, shared by the proxy and http::Server (solverd's
// API and the admin listeners): all three knobs, where uv_tcp_keepalive sets only the idle time,
// plus TCP_USER_TIMEOUT, so that a peer that vanished without FIN or RST is found in the same
// time even while response bytes sit unacknowledged (tcp(7): with both set, the user timeout
// also bounds keepalive). The read then fails with ETIMEDOUT.
#include <uv.h>

#include <chrono>
#include <cstdint>

namespace tether {

struct TcpKeepalive {
  bool enabled = false;
  std::chrono::milliseconds idle{0};      // before the first probe (whole seconds on the wire)
  std::chrono::milliseconds interval{0};  // between probes
  uint32_t count = 0;                     // unanswered probes before the connection is dropped
  // TCP_USER_TIMEOUT: idle + interval * count.
  std::chrono::milliseconds userTimeout() const { return idle + interval * count; }
};

// Sets SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT on a TCP
// socket; nothing when `ka` is off. Returns 0 or the first failure as a negative errno (the
// caller logs it; a connection works without keepalive, so it is not a reason to drop it).
int applyTcpKeepalive(int fd, const TcpKeepalive& ka);
int applyTcpKeepalive(uv_tcp_t* tcp, const TcpKeepalive& ka);

}  // namespace tether
