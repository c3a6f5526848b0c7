// The access log format engine (proxy/include/tether/proxy/log_format.hpp) and its directives,
// in-process: variables, escapes, the predefined formats, and the configuration errors of
// `log_format` and `access_log`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <ctime>
#include <map>
#include <string>

#include "tether/proxy/config.hpp"
#include "tether/proxy/log_format.hpp"

namespace tether::proxy {
namespace {

using Headers = std::map<std::string, std::string>;

bool lookup(const void* source, std::string_view name, std::string_view& value) {
  // Case-insensitive, as HeadBuffer::find: the test's names are lower case.
  for (const auto& [k, v] : *static_cast<const Headers*>(source)) {
    if (k.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < k.size(); ++i) same = same && std::tolower(k[i]) == std::tolower(name[i]);
    if (same) {
      value = v;
      return true;
    }
  }
  return false;
}

// A request that went through: every field set.
AccessRecord fullRecord(const Headers& headers) {
  AccessRecord r;
  r.remote_addr = "192.0.2.7";
  r.method = "POST";
  r.uri = "/v1/solve?solver=cbc";
  r.http_minor = 1;
  r.status = 499;
  r.body_bytes_sent = 1234;
  r.request_time = 4.2105;
  r.upstream_response_time = 4.2;
  r.upstream_addr = "unix:/run/tether/solverd.sock";
  r.request_id = "d39ccd50b968299a613cc6501666095f";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.disconnect_phase = "awaiting_response";
  r.disconnect_cause = "eof";
  r.cancel_action = "interrupt";
  r.cancel_outcome = "sent";
  r.header = lookup;
  r.header_source = &headers;
  r.now = 1796025600;  // 2026-12-01 00:00:00 UTC
  return r;
}

std::string render(std::string_view text, LogEscape escape, const AccessRecord& r) {
  std::string why;
  auto format = LogFormat::compile(text, escape, why);
  EXPECT_TRUE(format) << why;
  if (!format) return {};
  std::string out;
  format->append(out, r);
  return out;
}

// The local time as $time_local shows it; with `iso`, "%Y-%m-%dT%H:%M:%S" and the offset apart.
std::string localTime(time_t now, bool iso = false, bool offset_only = false) {
  tm t{};
  localtime_r(&now, &t);
  char buf[64];
  size_t n = offset_only ? strftime(buf, sizeof buf, "%z", &t)
             : iso       ? strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t)
                         : strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S %z", &t);
  return std::string(buf, n);
}

TEST(LogFormat, EveryVariableShowsItsFieldOfTheRequest) {
  Headers h{{"user-agent", "curl/7.88.1"}, {"x-solve-key", "k1"}};
  const AccessRecord r = fullRecord(h);
  EXPECT_EQ(render("$remote_addr|$request|$request_method|$request_uri|$server_protocol|$status|"
                   "$body_bytes_sent|$request_time|$upstream_response_time|$upstream_addr|$request_id|"
                   "$trace_id|$disconnect_phase|$disconnect_cause|$cancel_action|$cancel_outcome|"
                   "$http_user_agent|$http_x_solve_key|${status}x",
                   LogEscape::Default, r),
            "192.0.2.7|POST /v1/solve?solver=cbc HTTP/1.1|POST|/v1/solve?solver=cbc|HTTP/1.1|499|1234|4.210|"
            "4.200|unix:/run/tether/solverd.sock|d39ccd50b968299a613cc6501666095f|"
            "4bf92f3577b34da6a3ce929d0e0e4736|awaiting_response|eof|interrupt|sent|curl/7.88.1|k1|499x\n");
  EXPECT_EQ(render("[$time_local]", LogEscape::Default, r),
            "[" + localTime(r.now) + "]\n");
  std::string iso = render("$time_iso8601", LogEscape::Default, r);
  std::string z = localTime(r.now, false, true);
  EXPECT_EQ(iso, localTime(r.now, true) + z.substr(0, 3) + ":" + z.substr(3) + "\n");
  std::string msec = render("$msec", LogEscape::Default, r);
  EXPECT_EQ(msec.find('.'), msec.size() - 5) << msec;  // seconds, a dot, milliseconds
}

TEST(LogFormat, UnsetVariablesAreADashOrAnEmptyJsonString) {
  Headers none;
  AccessRecord r;  // a connection that sent nothing usable: 400 before the request line
  r.remote_addr = "192.0.2.7";
  r.status = 400;
  r.header = lookup;
  r.header_source = &none;
  const char* text = "$request|$upstream_response_time|$upstream_addr|$request_id|$trace_id|$http_referer|"
                     "$disconnect_phase|$cancel_action|$cancel_outcome|$remote_user|$status";
  EXPECT_EQ(render(text, LogEscape::Default, r), "-|-|-|-|-|-|-|-|-|-|400\n");
  EXPECT_EQ(render(text, LogEscape::None, r), "-|-|-|-|-|-|-|-|-|-|400\n");
  EXPECT_EQ(render(text, LogEscape::Json, r), "||||||||||400\n");
  r.status = 0;  // as nginx: a status is always three digits
  EXPECT_EQ(render("$status", LogEscape::Default, r), "000\n");
  EXPECT_EQ(render("{\"status\":$status}", LogEscape::Json, r), "{\"status\":0}\n");  // still a JSON number
}

TEST(LogFormat, DefaultEscapeHexesQuotesBackslashesControlAndHighBytes) {
  Headers h{{"user-agent", std::string("a\"b\\c\x01\x1f\x7f\xc3\xa9 d", 12)}};
  AccessRecord r = fullRecord(h);
  EXPECT_EQ(render("\"$http_user_agent\"", LogEscape::Default, r),
            "\"a\\x22b\\x5Cc\\x01\\x1F\\x7F\\xC3\\xA9 d\"\n");
}

TEST(LogFormat, NoneEscapeWritesTheBytesAsReceived) {
  const std::string raw("a\"b\\c\x01\xff", 7);
  Headers h{{"user-agent", raw}};
  EXPECT_EQ(render("$http_user_agent", LogEscape::None, fullRecord(h)), raw + "\n");
}

// Every byte value, valid UTF-8 of each length, and the classic invalid sequences (overlong,
// surrogate, past U+10FFFF, truncated, stray continuation): the line parses as JSON, valid UTF-8
// comes back unchanged, and an invalid byte comes back as the code point of its value.
TEST(LogFormat, JsonEscapeKeepsEveryLineParseableAndValidUtf8Unchanged) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string valid = "\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \x7f";
  const std::vector<std::string> invalid = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97",
                                            "\x80", "\xf5\x80\x80\x80", "\xe0\x80\xaf"};
  std::vector<std::string> values = {all, valid, "\"}\n{\"forged\":1", "\\u0000"};
  values.insert(values.end(), invalid.begin(), invalid.end());
  for (const std::string& v : values) {
    Headers h{{"user-agent", v}};
    AccessRecord r = fullRecord(h);
    r.uri = v;
    std::string line = render(R"({"ua":"$http_user_agent","uri":"$request_uri","status":$status})", LogEscape::Json, r);
    ASSERT_EQ(line.back(), '\n');
    ASSERT_EQ(line.find('\n'), line.size() - 1) << "a raw newline splits the line";
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j["status"], 499);
    std::string ua = j["ua"];
    if (v == valid || v.starts_with("\"") || v.starts_with("\\")) {
      EXPECT_EQ(ua, v);
    }
    EXPECT_EQ(j["uri"], ua);
  }
  // An invalid byte is its Latin-1 code point: 0xC0 0xAF -> U+00C0 U+00AF.
  Headers h{{"user-agent", "\xc0\xaf"}};
  nlohmann::json j = nlohmann::json::parse(render(R"({"ua":"$http_user_agent"})", LogEscape::Json, fullRecord(h)));
  EXPECT_EQ(j["ua"], "\xc3\x80\xc2\xaf");
}

// The default format keeps the line tether-proxy wrote before log_format existed (operators'
// parsers read it), with the trace id as one more optional tail.
TEST(LogFormat, TetherFormatIsTheCombinedLinePlusIdTimesAndItsOptionalTails) {
  Headers h{{"referer", "http://r/"}, {"user-agent", "ua"}};
  AccessRecord r = fullRecord(h);
  std::string out;
  LogFormat::tether().append(out, r);
  const std::string time = localTime(r.now);
  EXPECT_EQ(out, "192.0.2.7 - - [" + time + "] \"POST /v1/solve?solver=cbc HTTP/1.1\" 499 1234 \"http://r/\" \"ua\" "
                 "rid=d39ccd50b968299a613cc6501666095f rt=4.210 urt=4.200 upstream=unix:/run/tether/solverd.sock "
                 "phase=awaiting_response cause=eof trace=4bf92f3577b34da6a3ce929d0e0e4736\n");
  r.status = 200;
  r.disconnect_phase = r.disconnect_cause = r.trace_id = r.upstream_addr = {};
  r.upstream_response_time.reset();
  out.clear();
  LogFormat::tether().append(out, r);
  EXPECT_EQ(out, "192.0.2.7 - - [" + time + "] \"POST /v1/solve?solver=cbc HTTP/1.1\" 200 1234 \"http://r/\" \"ua\" "
                 "rid=d39ccd50b968299a613cc6501666095f rt=4.210 urt=-\n");
  out.clear();
  LogFormat::combined().append(out, r);
  EXPECT_EQ(out, "192.0.2.7 - - [" + time + "] \"POST /v1/solve?solver=cbc HTTP/1.1\" 200 1234 \"http://r/\" \"ua\"\n");
}

TEST(LogFormat, UnknownVariablesAndBadNamesAreRefusedAtCompileTime) {
  std::string why;
  EXPECT_FALSE(LogFormat::compile("$nosuch", LogEscape::Default, why));
  EXPECT_EQ(why, "unknown \"nosuch\" variable");
  EXPECT_FALSE(LogFormat::compile("cost $", LogEscape::Default, why));
  EXPECT_EQ(why, "invalid variable name in \"$\"");
  EXPECT_FALSE(LogFormat::compile("${status", LogEscape::Default, why));
  EXPECT_FALSE(LogFormat::compile("$http_", LogEscape::Default, why));
  EXPECT_TRUE(LogFormat::compile("100% literal, no variables", LogEscape::Default, why));
}

// ---- the directives --------------------------------------------------------------------------

std::optional<config::Error> load(const std::string& text, Settings& s) {
  config::LoadResult r = config::loadString(text, "test.conf", schema());
  if (!r) return r.error();
  return toSettings(r.config(), s);
}

const std::string kUpstream = "upstream u { server 127.0.0.1:1; }\n";

TEST(LogFormatDirectives, SeveralFormatsAndAccessLogsPerServer) {
  Settings s;
  auto err = load(kUpstream +
                      "log_format json escape=json '{\"rid\":\"$request_id\",' '\"status\":$status}';\n"
                      "log_format plain '$remote_addr $status';\n"
                      "server { listen 127.0.0.1:0; access_log /tmp/a.log json; access_log /tmp/b.log plain;\n"
                      "  access_log stderr; access_log /tmp/c.log combined; location / { proxy_pass http://u; } }\n"
                      "server { listen 127.0.0.1:0; location / { proxy_pass http://u; } }\n"
                      "server { listen 127.0.0.1:0; access_log off; trace_context start; location / { proxy_pass http://u; } }\n",
                  s);
  ASSERT_FALSE(err) << err->text();
  ASSERT_EQ(s.servers.size(), 3u);
  const auto& logs = s.servers[0].access_logs;
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_EQ(logs[0].path, "/tmp/a.log");
  EXPECT_EQ(logs[0].format->escape(), LogEscape::Json);
  EXPECT_EQ(logs[2].path, "stderr");
  EXPECT_EQ(logs[2].format.get(), s.servers[1].access_logs[0].format.get()) << "both are `tether`";
  Headers none;
  AccessRecord r = fullRecord(none);
  std::string out;
  logs[0].format->append(out, r);
  EXPECT_EQ(out, "{\"rid\":\"d39ccd50b968299a613cc6501666095f\",\"status\":499}\n");  // strings joined
  // No access_log: `access_log stderr;` in the tether format.
  ASSERT_EQ(s.servers[1].access_logs.size(), 1u);
  EXPECT_EQ(s.servers[1].access_logs[0].path, "stderr");
  EXPECT_EQ(s.servers[1].trace_context, TraceContext::Pass);
  EXPECT_TRUE(s.servers[2].access_logs.empty());
  EXPECT_EQ(s.servers[2].trace_context, TraceContext::Start);
}

TEST(LogFormatDirectives, MistakesAreReportedWithTheirPlace) {
  struct Case {
    std::string conf;
    std::string error;
  };
  const std::string server = "server { listen 127.0.0.1:0; location / { proxy_pass http://u; } }\n";
  const std::vector<Case> cases = {
      {"log_format x '$nosuch';\n" + server, "unknown \"nosuch\" variable in test.conf:2:14"},
      {"log_format x escape=xml '$status';\n" + server,
       "unknown log format escaping \"xml\", it must be default, json or none in test.conf:2:14"},
      {"log_format x escape=json;\n" + server, "log_format \"x\" has no format string in test.conf:2:1"},
      {"log_format tether '$status';\n" + server, "duplicate log_format name \"tether\" in test.conf:2:12"},
      {"server { listen 127.0.0.1:0; access_log /tmp/x.log nosuch; location / { proxy_pass http://u; } }\n",
       "unknown log format \"nosuch\" in test.conf:2:52"},
      {"server { listen 127.0.0.1:0; access_log off json; location / { proxy_pass http://u; } }\n",
       "\"access_log off\" takes no format and stands alone in test.conf:2:41"},
      {"server { listen 127.0.0.1:0; access_log off; access_log stderr; location / { proxy_pass http://u; } }\n",
       "\"access_log off\" takes no format and stands alone in test.conf:2:41"},
      {"server { listen 127.0.0.1:0; trace_context on; location / { proxy_pass http://u; } }\n",
       "invalid value \"on\""},
      {"server { log_format x '$status'; listen 127.0.0.1:0; location / { proxy_pass http://u; } }\n",
       "\"log_format\" directive is not allowed here"},
  };
  for (const Case& c : cases) {
    Settings s;
    auto err = load(kUpstream + c.conf, s);
    ASSERT_TRUE(err) << c.conf;
    EXPECT_NE(err->text().find(c.error), std::string::npos) << err->text() << "\nwanted: " << c.error;
  }
}

}  // namespace
}  // namespace tether::proxy
