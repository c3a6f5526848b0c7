#include <gtest/gtest.h>

#include "tether/config/address.hpp"

namespace tether::config {
namespace {

TEST(ParseAddress, BarePortListensOnAllAddresses) {
  const auto address = parseAddress("8080");
  ASSERT_TRUE(address);
  EXPECT_EQ(address->kind, Address::Kind::Tcp);
  EXPECT_EQ(address->host, "");
  EXPECT_EQ(address->port, 8080);
  EXPECT_EQ(address->text(), "*:8080");
  EXPECT_EQ(parseAddress("*:8080"), address);
}

TEST(ParseAddress, HostAndPort) {
  const auto v4 = parseAddress("127.0.0.1:0");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  const auto name = parseAddress("localhost:7070");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "localhost");
  EXPECT_EQ(name->text(), "localhost:7070");
}

TEST(ParseAddress, BracketedIpv6IsKeptWithoutBrackets) {
  const auto address = parseAddress("[::1]:8443");
  ASSERT_TRUE(address);
  EXPECT_EQ(address->host, "::1");
  EXPECT_EQ(address->port, 8443);
  EXPECT_EQ(address->text(), "[::1]:8443");
  EXPECT_TRUE(parseAddress("[fe80::1:2]:65535"));
}

TEST(ParseAddress, UnixAndSystemd) {
  const auto unix_address = parseAddress("unix:/run/tether/solverd.sock");
  ASSERT_TRUE(unix_address);
  EXPECT_EQ(unix_address->kind, Address::Kind::Unix);
  EXPECT_EQ(unix_address->path, "/run/tether/solverd.sock");
  EXPECT_EQ(unix_address->text(), "unix:/run/tether/solverd.sock");
  const auto systemd = parseAddress("systemd:proxy-http");
  ASSERT_TRUE(systemd);
  EXPECT_EQ(systemd->kind, Address::Kind::Systemd);
  EXPECT_EQ(systemd->name, "proxy-http");
  EXPECT_EQ(systemd->text(), "systemd:proxy-http");
}

TEST(ParseAddress, TextRoundTrips) {
  for (const char* text : {"*:1", "10.0.0.1:65535", "[::]:80", "unix:x.sock", "systemd:a"}) {
    const auto address = parseAddress(text);
    ASSERT_TRUE(address) << text;
    EXPECT_EQ(address->text(), text);
    EXPECT_EQ(parseAddress(address->text()), address);
  }
}

TEST(ParseAddress, RejectsMalformedAddressesWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "no port"},
      {"65536", "invalid port"},
      {"-1", "invalid port"},
      {"host:", "no port"},
      {"::1:80", "IPv6 address without brackets"},
      {"[::1]", "no port"},
      {"[::1:80", "missing \"]\""},
      {"[nothost]:80", "invalid IPv6 address"},
      {"bad_host!:80", "invalid host"},
      {"unix:", "no unix socket path"},
      {"systemd:", "no socket name"},
      {"systemd:a b", "invalid socket name"},
  };
  for (const auto& [text, reason] : cases) {
    std::string why;
    EXPECT_FALSE(parseAddress(text, &why)) << text;
    EXPECT_EQ(why, reason) << text;
  }
  std::string why;
  EXPECT_FALSE(parseAddress("unix:/" + std::string(107, 'a'), &why));
  EXPECT_EQ(why, "unix socket path too long");
  EXPECT_TRUE(parseAddress("unix:/" + std::string(106, 'a')));
}

}  // namespace
}  // namespace tether::config
