#include "tether/common/tcp_keepalive.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace tether {

int applyTcpKeepalive(int fd, const TcpKeepalive& ka) {
  if (!ka.enabled) return 0;
  // The kernel counts idle and interval in whole seconds, at least 1.
  int on = 1;
  int idle = static_cast<int>(std::max<int64_t>(1, ka.idle.count() / 1000));
  int interval = static_cast<int>(std::max<int64_t>(1, ka.interval.count() / 1000));
  int count = static_cast<int>(ka.count);
  unsigned user_timeout = static_cast<unsigned>(ka.userTimeout().count());
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout) != 0) {
    return -errno;
  }
  return 0;
}

int applyTcpKeepalive(uv_tcp_t* tcp, const TcpKeepalive& ka) {
  if (!ka.enabled) return 0;
  uv_os_fd_t fd;
  if (int r = uv_fileno(reinterpret_cast<uv_handle_t*>(tcp), &fd); r != 0) return r;
  return applyTcpKeepalive(fd, ka);
}

}  // namespace tether
