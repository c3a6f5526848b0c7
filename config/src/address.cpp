#include "tether/config/address.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include "tether/config/units.hpp"

namespace tether::config {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::string_view kSystemdPrefix = "systemd:";

std::optional<Address> fail(std::string* why, std::string_view phrase) {
  if (why != nullptr) *why = phrase;
  return std::nullopt;
}

bool isIpv4(const std::string& host) {
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

bool isIpv6(const std::string& host) {
  in6_addr addr{};
  return inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

// A DNS name as RFC 1123 allows it: labels of letters, digits and '-', separated by dots.
bool isHostName(std::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return true;
}

std::optional<uint16_t> parsePort(std::string_view text) {
  const auto value = parseInteger(text);
  if (!value || text.front() == '-' || *value > 65535) return std::nullopt;
  return static_cast<uint16_t>(*value);
}

}  // namespace

std::string Address::text() const {
  switch (kind) {
    case Kind::Unix: return std::string(kUnixPrefix) + path;
    case Kind::Systemd: return std::string(kSystemdPrefix) + name;
    case Kind::Tcp: break;
  }
  const std::string port_text = std::to_string(port);
  if (host.empty()) return "*:" + port_text;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

std::optional<Address> parseAddress(std::string_view text, std::string* why) {
  Address address;
  if (text.starts_with(kUnixPrefix)) {
    address.kind = Address::Kind::Unix;
    address.path = text.substr(kUnixPrefix.size());
    if (address.path.empty()) return fail(why, "no unix socket path");
    if (address.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return fail(why, "unix socket path too long");
    }
    if (address.path.find('\0') != std::string::npos) return fail(why, "invalid unix socket path");
    return address;
  }
  if (text.starts_with(kSystemdPrefix)) {
    address.kind = Address::Kind::Systemd;
    address.name = text.substr(kSystemdPrefix.size());
    // systemd's FileDescriptorName= allows at most 255 printable ASCII characters, no ':'.
    if (address.name.empty()) return fail(why, "no socket name");
    if (address.name.size() > 255) return fail(why, "socket name too long");
    for (char c : address.name) {
      if (c <= ' ' || c > '~' || c == ':') return fail(why, "invalid socket name");
    }
    return address;
  }
  address.kind = Address::Kind::Tcp;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(why, "missing \"]\"");
    address.host = text.substr(1, close - 1);
    if (!isIpv6(address.host)) return fail(why, "invalid IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') return fail(why, "no port");
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      port_text = text;
    } else {
      address.host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      if (address.host == "*") {
        address.host.clear();
      } else if (address.host.find(':') != std::string::npos) {
        return fail(why, "IPv6 address without brackets");
      } else if (!isIpv4(address.host) && !isHostName(address.host)) {
        return fail(why, "invalid host");
      }
    }
  }
  if (port_text.empty()) return fail(why, "no port");
  const auto port = parsePort(port_text);
  if (!port) return fail(why, "invalid port");
  address.port = *port;
  return address;
}

}  // namespace tether::config
