// The daemons' command line, in-process (streams) and as a real process (exit codes).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "test_schema.hpp"
#include "tether/config/cli.hpp"

namespace tether::config {
namespace {

const std::string kGood = std::string(TETHER_SOURCE_DIR) + "/tests/config/good/";
const std::string kBad = std::string(TETHER_SOURCE_DIR) + "/tests/config/bad/";
constexpr std::string_view kDefault = "upstream u { control unix:${RUNTIME_DIR}/control.sock; }\n";

struct CliRun {
  CommandLine result;
  std::string out;
  std::string err;
};

CliRun run(const std::vector<const char*>& args, std::string_view default_text = kDefault) {
  std::vector<const char*> argv(args.size() + 1, "tether-proxy");
  std::copy(args.begin(), args.end(), argv.begin() + 1);
  std::ostringstream out;
  std::ostringstream err;
  CliRun r{parseCommandLine(static_cast<int>(argv.size()), argv.data(), testing::proxySchema(),
                         default_text, out, err),
        {}, {}};
  r.out = out.str();
  r.err = err.str();
  return r;
}

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CommandLine, VersionPrintsProgramAndVersion) {
  const CliRun r = run({"-V"});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_EQ(r.out, "tether-proxy version 0.1.0\n");
}

TEST(CommandLine, HelpListsOptionsAndDirectives) {
  const CliRun r = run({"-h"});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_NE(r.out.find("Usage: tether-proxy [-c FILE]"), std::string::npos);
  EXPECT_NE(r.out.find("  on_disconnect"), std::string::npos);
}

TEST(CommandLine, TestOfGoodFileSaysSyntaxOkAndSuccessful) {
  const std::string file = kGood + "proxy.conf";
  const CliRun r = run({"-t", "-c", file.c_str()});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_EQ(r.err, "tether-proxy: the configuration file " + file + " syntax is ok\n" +
                       "tether-proxy: configuration file " + file + " test is successful\n");
  EXPECT_EQ(r.out, "");
}

TEST(CommandLine, TestOfBadFilePrintsTheErrorAndFails) {
  const std::string file = kBad + "01-unknown-directive.conf";
  const CliRun r = run({"-t", "-c", file.c_str()});
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_EQ(r.err, "tether-proxy: [emerg] unknown directive \"lisen\" in " + file + ":3:5\n" +
                       "tether-proxy: configuration file " + file + " test failed\n");
}

TEST(CommandLine, CapitalTTestsThenPrintsTheEffectiveConfiguration) {
  const std::string file = kGood + "proxy.conf";
  const CliRun r = run({"-T", ("-c" + file).c_str()});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_NE(r.err.find("test is successful"), std::string::npos);
  EXPECT_NE(r.out.find("        on_disconnect interrupt;\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    location = /health {\n"), std::string::npos) << r.out;
}

TEST(CommandLine, RunWithFileReturnsTheConfig) {
  const std::string file = kGood + "proxy.conf";
  const CliRun r = run({"-c", file.c_str()});
  EXPECT_FALSE(r.result.exit_code);
  ASSERT_TRUE(r.result.config);
  EXPECT_EQ(r.result.config_path, file);
  EXPECT_EQ(r.result.config->root().str("error_log"), "stderr");
  EXPECT_EQ(r.out + r.err, "");
  // SIGHUP reads the same file again.
  EXPECT_TRUE(reload(r.result, testing::proxySchema(), kDefault).ok());
}

TEST(CommandLine, RunWithBadFileFailsWithTheErrorOnly) {
  const std::string file = kBad + "07-duplicate.conf";
  const CliRun r = run({"-c", file.c_str()});
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_EQ(r.err, "tether-proxy: [emerg] \"shutdown_timeout\" directive is duplicate in " + file + ":3:1\n");
}

TEST(CommandLine, MissingFileNameAndUnknownOptionFail) {
  const CliRun missing = run({"-c"});
  EXPECT_EQ(missing.result.exit_code, 1);
  EXPECT_EQ(missing.err, "tether-proxy: option \"-c\" requires file name\n");
  const CliRun unknown = run({"-x"});
  EXPECT_EQ(unknown.result.exit_code, 1);
  EXPECT_TRUE(unknown.err.starts_with("tether-proxy: invalid option: \"-x\"\n"));
}

TEST(CommandLine, DirectivesPrintsTheMarkdownReference) {
  const CliRun r = run({"--directives"});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_EQ(r.out, referenceMarkdown(testing::proxySchema()));
}

// tether.conf(5) is built from this output: every directive of the table gets its own tagged
// paragraph, and no text line can be mistaken for a roff request.
TEST(CommandLine, DirectivesManPrintsEveryDirectiveAsRoff) {
  const CliRun r = run({"--directives=man"});
  EXPECT_EQ(r.result.exit_code, 0);
  EXPECT_TRUE(r.out.starts_with(".SS tether\\-proxy\n")) << r.out.substr(0, 40);
  for (const DirectiveSpec& spec : testing::proxySchema().directives) {
    std::string name;
    for (char c : spec.name) name += c == '-' ? std::string("\\-") : std::string(1, c);
    EXPECT_NE(r.out.find(".TP\n\\fB" + name + "\\fR"), std::string::npos) << spec.name;
  }
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with('.')) {
      EXPECT_TRUE(line == ".TP" || line == ".br" || line.starts_with(".SS ")) << line;
    }
    EXPECT_EQ(line.find('`'), std::string::npos) << line;
  }
}

TEST(RuntimeDir, PrefersRuntimeDirectoryThenXdgThenTmp) {
  {
    ScopedEnv runtime("RUNTIME_DIRECTORY", "/run/tether:/run/other");
    ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/1000");
    EXPECT_EQ(defaultRuntimeDir(), "/run/tether");
  }
  {
    ScopedEnv runtime("RUNTIME_DIRECTORY", nullptr);
    ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/1000");
    EXPECT_EQ(defaultRuntimeDir(), "/run/user/1000/tether");
  }
  {
    ScopedEnv runtime("RUNTIME_DIRECTORY", nullptr);
    ScopedEnv xdg("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(defaultRuntimeDir(), "/tmp/tether-" + std::to_string(::geteuid()));
  }
}

TEST(RuntimeDir, PlaceholderIsExpandedEverywhere) {
  EXPECT_EQ(expandDefaults("a ${RUNTIME_DIR}/x ${RUNTIME_DIR}", "/r"), "a /r/x /r");
  EXPECT_EQ(expandDefaults("none", "/r"), "none");
}

TEST(CommandLine, BuiltInDefaultRunsInTheRuntimeDirectoryAndCreatesIt) {
  std::array<char, 32> dir_template{};
  std::snprintf(dir_template.data(), dir_template.size(), "/tmp/tcfgXXXXXX");
  ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
  const std::string parent = dir_template.data();
  const std::string runtime = parent + "/rt";
  ScopedEnv env("RUNTIME_DIRECTORY", runtime.c_str());

  const CliRun test_only = run({"-t"});
  EXPECT_EQ(test_only.result.exit_code, 0);
  EXPECT_NE(test_only.err.find("configuration file (built-in default) test is successful"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(runtime)) << "-t must not create anything";

  const CliRun r = run({});
  ASSERT_TRUE(r.result.config) << r.err;
  EXPECT_EQ(r.result.runtime_dir, runtime);
  EXPECT_EQ(r.result.config->root().find("upstream")->block->address("control").path,
            runtime + "/control.sock");
  struct stat st {};
  ASSERT_EQ(::stat(runtime.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  EXPECT_TRUE(run({}).result.config) << "an existing runtime directory of ours is fine";
  std::filesystem::remove_all(parent);
}

TEST(CommandLine, BrokenBuiltInDefaultIsReportedAsSuch) {
  const CliRun r = run({"-t"}, "lisen 1;");
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_EQ(r.err,
            "tether-proxy: [emerg] unknown directive \"lisen\" in (built-in default):1:1\n"
            "tether-proxy: configuration file (built-in default) test failed\n");
}

TEST(CommandLine, TestReportsTheProgramsOwnValidationError) {
  Schema schema = testing::proxySchema();
  schema.validate = [](const Config& config) -> std::optional<Error> {
    if (!config.root().has("upstream")) return errorAt(config.root().directives().at(0), "no upstream");
    return std::nullopt;
  };
  const std::string file = kGood + "units.conf";
  const char* argv[] = {"tether-proxy", "-t", "-c", file.c_str()};
  std::ostringstream out;
  std::ostringstream err;
  const CommandLine result = parseCommandLine(4, argv, schema, kDefault, out, err);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(err.str(), "tether-proxy: [emerg] no upstream in " + file + ":3:1\n" +
                           "tether-proxy: configuration file " + file + " test failed\n");
}

// Runs the fixture binary with `args` (shell words); returns its exit status and its output.
std::pair<int, std::string> runFixture(const std::string& args) {
  const std::string command = std::string(TETHER_BIN_DIR) + "/config_cli_fixture " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(CommandLineProcess, ExitCodesOfARealDaemonMain) {
  EXPECT_EQ(runFixture("-V"), std::make_pair(0, std::string("tether-proxy version 0.1.0\n")));
  const auto good = runFixture("-t -c " + kGood + "proxy.conf");
  EXPECT_EQ(good.first, 0) << good.second;
  const auto bad = runFixture("-t -c " + kBad + "26-missing-semicolon-newline.conf");
  EXPECT_EQ(bad.first, 1);
  EXPECT_NE(bad.second.find("[emerg] directive \"shutdown_timeout\" is not terminated by \";\""),
            std::string::npos)
      << bad.second;
  const auto running = runFixture("-c " + kGood + "proxy.conf");
  EXPECT_EQ(running.first, 0);
  EXPECT_EQ(running.second, "running with " + kGood +
                                "proxy.conf, upstream control unix:/run/tether/control.sock\n");
}

}  // namespace
}  // namespace tether::config
