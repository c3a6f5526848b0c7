#pragma once
// Listen and upstream addresses as the configuration writes them (nginx's `listen` forms plus
// unix: and systemd: prefixes): `8080`, `*:8080`, `host:port`, `[v6]:port`, `unix:PATH`,
// `systemd:NAME` (a socket passed by systemd socket activation, matched by FileDescriptorName=).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether::config {

struct Address {
  enum class Kind { Tcp, Unix, Systemd };
  Kind kind = Kind::Tcp;
  std::string host;   // Tcp: "" = all addresses; an IPv6 literal is kept without brackets
  uint16_t port = 0;  // Tcp: 0 lets the kernel choose (tests bind port 0)
  std::string path;   // Unix: the socket path, shorter than sun_path (108 bytes)
  std::string name;   // Systemd: the FileDescriptorName of the passed socket

  // The canonical form, accepted again by parseAddress: `*:8080`, `127.0.0.1:8080`,
  // `[::1]:8080`, `unix:/run/x.sock`, `systemd:proxy`.
  std::string text() const;

  bool operator==(const Address&) const = default;
};

// Parses one address. On failure returns nullopt and, if `why` is given, a short phrase saying
// what is wrong ("invalid port", "unix socket path too long").
std::optional<Address> parseAddress(std::string_view text, std::string* why = nullptr);

}  // namespace tether::config
