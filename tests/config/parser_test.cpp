// The parsed tree, its places, the typed accessors with their defaults, includes, and limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "test_schema.hpp"

namespace tether::config {
namespace {

using std::chrono::milliseconds;
using testing::proxySchema;
namespace fs = std::filesystem;

const std::string kGood = std::string(TETHER_SOURCE_DIR) + "/tests/config/good/";

Config mustLoad(const std::string& path, const Schema& schema = proxySchema()) {
  LoadResult result = load(path, schema);
  if (!result) throw std::runtime_error(result.error().text());
  return result.config();
}

Config mustParse(std::string_view text, const Schema& schema = proxySchema()) {
  LoadResult result = loadString(text, "test.conf", schema);
  if (!result) throw std::runtime_error(result.error().text());
  return result.config();
}

TEST(Parser, DesignProxyExampleGivesTypedValues) {
  const Config config = mustLoad(kGood + "proxy.conf");
  const Block& root = config.root();
  EXPECT_EQ(root.str("error_log", 0), "stderr");
  EXPECT_EQ(root.str("error_log", 1), "info");
  EXPECT_EQ(root.duration("shutdown_timeout"), milliseconds(30'000));
  ASSERT_NE(root.find("admin"), nullptr);
  EXPECT_EQ(root.find("admin")->block->address("listen").text(), "127.0.0.1:9901");

  const auto upstreams = root.all("upstream");
  ASSERT_EQ(upstreams.size(), 1U);
  EXPECT_EQ(upstreams[0]->args[0], "solverd");
  const Block& upstream = *upstreams[0]->block;
  EXPECT_EQ(upstream.context(), "upstream");
  EXPECT_EQ(upstream.addresses("server").at(0).path, "/run/tether/solverd.sock");
  EXPECT_EQ(upstream.integer("keepalive"), 64);
  EXPECT_EQ(upstream.address("control").kind, Address::Kind::Unix);

  const auto servers = root.all("server");
  ASSERT_EQ(servers.size(), 1U);
  const Block& server = *servers[0]->block;
  ASSERT_EQ(server.addresses("listen").size(), 1U);
  EXPECT_EQ(server.addresses("listen")[0].port, 8080);
  EXPECT_FALSE(server.flag("trust_request_id"));
  EXPECT_EQ(server.size("client_max_body_size"), 64U << 20);
  EXPECT_EQ(server.duration("tcp_keepalive", 0), milliseconds(10'000));
  EXPECT_EQ(server.duration("tcp_keepalive", 1), milliseconds(5'000));
  EXPECT_EQ(server.integer("tcp_keepalive", 2), 3);

  const auto locations = server.all("location");
  ASSERT_EQ(locations.size(), 2U);
  EXPECT_EQ(locations[0]->args, (std::vector<std::string_view>{"/v1/solve"}));
  EXPECT_EQ(locations[0]->block->str("on_disconnect"), "interrupt");
  EXPECT_EQ(locations[0]->block->duration("kill_after"), milliseconds(5'000));
  EXPECT_EQ(locations[1]->args, (std::vector<std::string_view>{"=", "/health"}));
  EXPECT_EQ(locations[1]->block->str("on_disconnect"), "none");
}

TEST(Parser, AbsentDirectivesFallBackToSchemaDefaults) {
  const Config config = mustParse("server { location / { } }");
  const Block& root = config.root();
  EXPECT_EQ(root.duration("shutdown_timeout"), milliseconds(30'000));
  EXPECT_EQ(root.args("error_log"), (std::vector<std::string_view>{"stderr", "info"}));
  EXPECT_EQ(root.find("admin"), nullptr);
  const Block& server = *root.find("server")->block;
  EXPECT_EQ(server.addresses("listen"), std::vector<Address>{*parseAddress("127.0.0.1:8080")});
  EXPECT_EQ(server.size("client_max_body_size"), 64U << 20);
  EXPECT_EQ(server.duration("keepalive_timeout"), milliseconds(75'000));
  EXPECT_EQ(server.integer("tcp_keepalive", 2), 3);
  const Block& location = *server.find("location")->block;
  EXPECT_EQ(location.str("on_disconnect"), "close");
  EXPECT_EQ(location.str("proxy_pass"), "");
}

TEST(Parser, OmittedOptionalArgumentTakesTheDefaultsArgument) {
  const Config config = mustParse("error_log journal;");
  EXPECT_EQ(config.root().str("error_log", 0), "journal");
  EXPECT_EQ(config.root().str("error_log", 1), "info");
}

TEST(Parser, AccessorMisuseIsAProgrammingErrorThatThrows) {
  const Config config = mustParse("server { access_log off; }");
  const Block& server = *config.root().find("server")->block;
  EXPECT_THROW(server.size("access_log"), std::logic_error);
  EXPECT_THROW(server.duration("no_such_directive"), std::logic_error);
  EXPECT_THROW(config.root().integer("shutdown_timeout", 5), std::logic_error);
}

TEST(Parser, RecordsOneBasedLineAndByteColumnOfDirectivesAndArguments) {
  const Config config = mustParse("# comment\nserver {\n\tlisten  8080;\n    location /x { }\n}\n");
  const Directive& server = config.root().directives().at(0);
  EXPECT_EQ(server.pos.file, "test.conf");
  EXPECT_EQ(server.pos.line, 2U);
  EXPECT_EQ(server.pos.column, 1U);
  const Directive& listen = server.block->directives().at(0);
  EXPECT_EQ(listen.pos.line, 3U);
  EXPECT_EQ(listen.pos.column, 2U);
  EXPECT_EQ(listen.arg_pos.at(0).column, 10U);
  const Directive& location = server.block->directives().at(1);
  EXPECT_EQ(location.pos.line, 4U);
  EXPECT_EQ(location.pos.column, 5U);
  EXPECT_EQ(location.arg_pos.at(0).column, 14U);
}

TEST(Parser, QuotesAndBackslashEscapesAreResolved) {
  const Config config = mustLoad(kGood + "quotes.conf");
  const Block& root = config.root();
  EXPECT_EQ(root.str("error_log", 0), "/var/log/tether/proxy log.txt");
  EXPECT_EQ(root.str("error_log", 1), "warn");
  const Block& server = *root.find("server")->block;
  EXPECT_EQ(server.str("access_log"), "tab\there \"quoted\" back\\slash");
  EXPECT_EQ(server.str("request_id_header"), "X-It's");
  const auto locations = server.all("location");
  ASSERT_EQ(locations.size(), 4U);
  EXPECT_EQ(locations[0]->args[0], "/with space");
  EXPECT_EQ(locations[0]->block->str("proxy_pass"), "http://a;b");
  EXPECT_EQ(locations[1]->args[1], "/{braces}");
  EXPECT_EQ(locations[1]->block->str("proxy_pass"), "http://x\\ y");
  EXPECT_EQ(locations[2]->args[0], "");
  EXPECT_EQ(locations[3]->args[0], "multi\nline");
  EXPECT_EQ(locations[3]->pos.line, 9U);
  EXPECT_EQ(server.find("location") == locations[0], true);
}

TEST(Parser, PlaceholderInsideAWordIsNotABlockAsInDesignsWebhookExample) {
  const Config config = mustParse("interrupt webhook http://127.0.0.1:8000/cancel/{id};\n", testing::agentSchema());
  EXPECT_EQ(config.root().str("interrupt", 1), "http://127.0.0.1:8000/cancel/{id}");
  // A brace after a blank still opens a block, and `{}` or `{a b}` glued to a word is no placeholder.
  EXPECT_FALSE(loadString("interrupt webhook x{}; ", "t.conf", testing::agentSchema()));
  EXPECT_FALSE(loadString("interrupt webhook x{a b};", "t.conf", testing::agentSchema()));
}

TEST(Parser, LineAfterMultiLineQuoteIsCountedRight) {
  const LoadResult result = loadString("error_log \"a\nb\nc\" info;\nlisen;", "q.conf", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().text(), "unknown directive \"lisen\" in q.conf:4:1");
}

TEST(Parser, CrlfLineEndingsAreBlanks) {
  const Config config = mustLoad(kGood + "crlf.conf");
  EXPECT_EQ(config.root().duration("shutdown_timeout"), milliseconds(90'000));
  const Directive& server = *config.root().find("server");
  EXPECT_EQ(server.pos.line, 3U);
  const Directive& listen = *server.block->find("listen");
  EXPECT_EQ(listen.pos.line, 4U);
  EXPECT_EQ(listen.pos.column, 5U);
  EXPECT_EQ(server.block->address("listen").host, "::1");
}

TEST(Parser, Utf8ByteOrderMarkIsSkippedAndNotCountedInColumns) {
  const Config config = mustLoad(kGood + "bom.conf");
  const Directive& first = config.root().directives().at(0);
  EXPECT_EQ(first.name, "shutdown_timeout");
  EXPECT_EQ(first.pos.line, 1U);
  EXPECT_EQ(first.pos.column, 1U);
  EXPECT_EQ(first.arg_pos.at(0).column, 18U);
  EXPECT_EQ(config.root().str("error_log", 1), "warn");
}

TEST(Parser, EmptyFileAndCommentsOnlyGiveAnEmptyRoot) {
  EXPECT_TRUE(mustLoad(kGood + "empty.conf").root().directives().empty());
  EXPECT_TRUE(mustLoad(kGood + "comments-only.conf").root().directives().empty());
  EXPECT_TRUE(mustParse("").root().directives().empty());
  EXPECT_TRUE(mustParse("\xEF\xBB\xBF").root().directives().empty());
}

TEST(Parser, IncludeGlobReadsMatchesInSortedOrderRelativeToTheIncludingFile) {
  const Config config = mustLoad(kGood + "include-glob.conf");
  EXPECT_EQ(config.root().duration("shutdown_timeout"), milliseconds(45'000));
  const Block& server = *config.root().find("server")->block;
  const auto listens = server.addresses("listen");
  ASSERT_EQ(listens.size(), 2U);
  EXPECT_EQ(listens[0].port, 8081);
  EXPECT_EQ(listens[1].port, 8082);
  EXPECT_EQ(server.str("access_log"), "off");
  const Directive& location = *server.find("location");
  EXPECT_EQ(location.block->str("proxy_pass"), "http://b");
  EXPECT_EQ(fs::path(location.pos.file).filename(), "b.inc");
  EXPECT_EQ(location.pos.line, 2U);
  const auto files = config.files();
  ASSERT_EQ(files.size(), 5U);
  EXPECT_EQ(fs::path(files[1]).filename(), "main.inc");
  EXPECT_EQ(fs::path(files[2]).filename(), "a.inc");
  EXPECT_EQ(fs::path(files[3]).filename(), "b.inc");
  EXPECT_EQ(fs::path(files[4]).filename(), "b-location.inc");
}

TEST(Parser, IncludeGlobInAMissingDirectoryMatchesNothingAsNginx) {
  const Config config = mustParse("include /nonexistent-tether-dir/*.conf; shutdown_timeout 1s;");
  EXPECT_EQ(config.root().directives().size(), 1U);
  EXPECT_EQ(config.files().size(), 1U);
}

TEST(Parser, IncludeCanBeDisabledForUntrustedText) {
  LoadOptions options;
  options.allow_include = false;
  const LoadResult result = loadString("include /etc/passwd;", "fuzz", proxySchema(), options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().text(), "\"include\" directive is not allowed here in fuzz:1:9");
}

TEST(Parser, IncludedFileCountIsLimited) {
  LoadOptions options;
  options.max_includes = 3;
  const LoadResult result = load(kGood + "include-glob.conf", proxySchema(), options);
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().message.starts_with("too many included files (at most 3)"));
}

std::string nestedLocations(int depth) {
  std::string text = "server {\n";
  for (int i = 0; i < depth; ++i) text += "location /l {\n";
  for (int i = 0; i < depth; ++i) text += "}\n";
  return text + "}\n";
}

TEST(Parser, NestingUpToTheLimitIsAccepted) {
  const Config config = mustParse(nestedLocations(31));  // server + 31 locations = 32 levels
  const Block* block = config.root().find("server")->block.get();
  int depth = 0;
  while (const Directive* location = block->find("location")) {
    block = location->block.get();
    ++depth;
  }
  EXPECT_EQ(depth, 31);
}

TEST(Parser, VeryDeepNestingFailsAtTheLimitWithoutExhaustingTheStack) {
  const LoadResult result = loadString(nestedLocations(100000), "deep.conf", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().text(),
            "too deep nesting of blocks and includes (at most 32) in deep.conf:33:1");
}

TEST(Parser, SameNameMeansDifferentDirectivesInDifferentContexts) {
  // `server` is a block at the top and an address inside `upstream`.
  const Config config = mustParse("upstream u { server 127.0.0.1:1; server unix:/x; } server { }");
  EXPECT_EQ(config.root().find("upstream")->block->addresses("server").size(), 2U);
  EXPECT_NE(config.root().find("server")->block, nullptr);
  const LoadResult result = loadString("upstream u { server { } }", "u.conf", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().text(), "directive \"server\" is not terminated by \";\" in u.conf:1:14");
}

TEST(Parser, ConfigOutlivesTheTextAndTheLoadResult) {
  std::optional<Config> kept;
  {
    std::string text = "shutdown_timeout 7s; server { access_log \"/tmp/\\\"x\\\"\"; }";
    LoadResult result = loadString(text, "gone.conf", proxySchema());
    ASSERT_TRUE(result);
    kept = result.config();
    text.assign(text.size(), '#');
  }
  EXPECT_EQ(kept->root().duration("shutdown_timeout"), milliseconds(7'000));
  EXPECT_EQ(kept->root().find("server")->block->str("access_log"), "/tmp/\"x\"");
  EXPECT_EQ(kept->root().directives()[0].pos.file, "gone.conf");
}

TEST(Parser, MissingTopFileIsReportedWithoutAPlace) {
  const LoadResult result = load("/nonexistent/tether.conf", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().line, 0U);
  EXPECT_EQ(result.error().format("tether-proxy"),
            "tether-proxy: [emerg] open() \"/nonexistent/tether.conf\" failed (2: No such file or "
            "directory)");
}

TEST(Parser, DirectoryAsConfigurationFileIsAReadError) {
  const LoadResult result = load("/tmp", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "read() \"/tmp\" failed (21: Is a directory)");
}

TEST(Error, FormatsAsNginxWithProgramLevelAndPlace) {
  const LoadResult result =
      loadString("server {\n    lisen 8080;\n}\n", "/etc/tether/proxy.conf", proxySchema());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().format("tether-proxy"),
            "tether-proxy: [emerg] unknown directive \"lisen\" in /etc/tether/proxy.conf:2:5");
  EXPECT_EQ(result.error().directive, "lisen");
}

TEST(Error, ErrorAtPlacesADaemonsOwnCheckAtTheDirectiveOrArgument) {
  const Config config = mustParse("server {\n  location / { proxy_pass http://nowhere; }\n}");
  const Directive& proxy_pass =
      *config.root().find("server")->block->find("location")->block->find("proxy_pass");
  EXPECT_EQ(errorAt(proxy_pass, "host not found in upstream \"nowhere\"", 0).text(),
            "host not found in upstream \"nowhere\" in test.conf:2:27");
  EXPECT_EQ(errorAt(proxy_pass, "x").column, 16U);
  EXPECT_EQ(errorAt(proxy_pass, "x").directive, "proxy_pass");
}

TEST(Schema, DefaultThatFailsItsOwnCheckIsReportedOnLoad) {
  Schema schema{"broken", {{"workers", {"main"}, 1, 1, false, false, integerValue(1, 8), "many", "", ""}}};
  const LoadResult result = loadString("", "x", schema);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "the default \"many\" of \"workers\" directive fails its check: invalid value \"many\"");
}

// `tcp_keepalive` of the proxy and solverd: `off`, or exactly IDLE INTERVAL COUNT.
TEST(Schema, TcpKeepaliveTakesOffOrIdleIntervalCount) {
  Schema schema{"ka", {{"tcp_keepalive", {"main"}, 1, 3, false, false, tcpKeepaliveValue(), "off", "", ""}}};
  EXPECT_TRUE(loadString("tcp_keepalive off;", "x", schema));
  EXPECT_TRUE(loadString("tcp_keepalive 10s 5s 3;", "x", schema));
  const LoadResult two = loadString("tcp_keepalive 10s 5s;", "x", schema);
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().message.find("it must be \"off\" or IDLE INTERVAL COUNT"), std::string::npos)
      << two.error().message;
  EXPECT_FALSE(loadString("tcp_keepalive 10s 5s 0;", "x", schema));
  EXPECT_FALSE(loadString("tcp_keepalive soon 5s 3;", "x", schema));
}

Schema withUpstreamCheck() {
  // A daemon's check across directives: every proxy_pass names a declared upstream.
  Schema schema = proxySchema();
  schema.validate = [](const Config& config) -> std::optional<Error> {
    for (const Directive* server : config.root().all("server")) {
      for (const Directive* location : server->block->all("location")) {
        const Directive* pass = location->block->find("proxy_pass");
        if (pass == nullptr) continue;
        bool found = false;
        for (const Directive* upstream : config.root().all("upstream")) {
          found = found || "http://" + std::string(upstream->args[0]) == pass->args[0];
        }
        if (!found) return errorAt(*pass, "host not found in upstream \"" + std::string(pass->args[0]) + "\"", 0);
      }
    }
    return std::nullopt;
  };
  return schema;
}

TEST(Schema, ValidateRunsAfterTheTableChecksAndItsErrorIsTheLoadsError) {
  const Schema schema = withUpstreamCheck();
  EXPECT_TRUE(loadString("upstream a { server 1; } server { location / { proxy_pass http://a; } }", "v", schema));
  const LoadResult result = loadString("server {\n  location / { proxy_pass http://b; }\n}", "v.conf", schema);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().text(), "host not found in upstream \"http://b\" in v.conf:2:27");
  // A table error comes first; validate never sees a configuration that failed the table.
  EXPECT_EQ(loadString("server { lisen 1; location / { proxy_pass http://b; } }", "v", schema).error().message,
            "unknown directive \"lisen\"");
}

TEST(Dump, PrintsDirectivesQuotedWhereNeededAndMarksDefaults) {
  const Config config = mustParse("server { access_log \"a b\"; location \"\" { } }");
  const std::string text = dump(config);
  EXPECT_NE(text.find("shutdown_timeout 30s;  # default\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    access_log \"a b\";\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    location \"\" {\n"), std::string::npos) << text;
  EXPECT_NE(text.find("        on_disconnect close;  # default\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    tcp_keepalive 10s 5s 3;  # default\n"), std::string::npos) << text;
}

TEST(Reference, MarkdownListsEveryDirectiveWithSyntaxDefaultAndContext) {
  const std::string text = referenceMarkdown(proxySchema());
  EXPECT_TRUE(text.starts_with("## tether-proxy\n"));
  for (const DirectiveSpec& spec : proxySchema().directives) {
    EXPECT_NE(text.find("`" + spec.name + "`"), std::string::npos) << spec.name;
  }
  EXPECT_NE(text.find("- Syntax: `on_disconnect none | close | interrupt | kill;`"), std::string::npos);
  EXPECT_NE(text.find("- Default: `kill_after 5s;`"), std::string::npos);
  EXPECT_NE(text.find("- Syntax: `admin { ... }`"), std::string::npos);
  EXPECT_NE(text.find("- Context: `server`, `location`"), std::string::npos);
}

}  // namespace
}  // namespace tether::config
