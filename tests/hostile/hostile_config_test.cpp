// Configurations (issue 7): every directive of every daemon with a bad value. For each row of a
// daemon's directive table (`--directives`, the same table docs/directives.md is made from), a
// valid base configuration gets that directive, in its context, with a bad value; `-t` must
// exit 1 with an `[emerg]` line naming the directive and pointing at FILE:LINE:COLUMN of it
// (or, for the checks a daemon makes after parsing, worded as nginx's, which do not always name
// the directive: quoting the bad argument, with the column at it; those are listed).
//
// "Bad" is tried in order: a value no checker accepts (`bad%value`), then too many arguments
// (for directives whose argument is free text: a path, a header name, a URL), then a block
// directive given a value and no block. The first that the daemon refuses is checked; the test
// prints how many directives were refused on their value and how many only on their arity.
#include "support.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace tether::hostile {
namespace {

struct Row {
  std::string name, context;
};

// The rows of a `--directives` table: "| [`name`](#anchor) | `context` | ...".
std::vector<Row> directiveTable(const std::string& daemon, std::string* raw) {
  std::vector<Row> rows;
  shell(tether::test::binPath(daemon) + " --directives", raw);
  static const std::regex row(R"(^\| \[`([a-z_]+)`\]\([^)]*\) \| `([a-z_]+)`)");
  std::istringstream in(*raw);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, row)) rows.push_back({m[1], m[2]});
  }
  return rows;
}

// A valid configuration with a marker line "#@CONTEXT" first in each context; the marker is
// replaced by the directive under test, so its line number is the marker's.
std::string baseConfig(const std::string& daemon, const std::string& dir) {
  if (daemon == "tether-proxy") {
    return "#@main\n"
           "admin {\n  #@admin\n  listen unix:" + dir + "/a.sock;\n}\n"
           "upstream u {\n  #@upstream\n  server unix:" + dir + "/u.sock;\n}\n"
           "server {\n  #@server\n  listen 127.0.0.1:0;\n"
           "  location / {\n    #@location\n    proxy_pass http://u;\n  }\n}\n";
  }
  // solverd and tether-agent share the control and admin blocks.
  return "#@main\n"
         "control {\n  #@control\n  listen unix:" + dir + "/c.sock;\n}\n"
         "admin {\n  #@admin\n  listen unix:" + dir + "/a.sock;\n}\n" +
         (daemon == "solverd" ? "listen unix:" + dir + "/api.sock;\n" : "");
}

struct Attempt {
  std::string line;        // the directive as written (without indentation)
  std::vector<int> columns;  // 1-based columns of its tokens, given its indentation
};

Attempt attempt(const std::string& name, const std::vector<std::string>& args, const std::string& tail, int indent) {
  Attempt a;
  a.line = name;
  int col = indent + 1;
  a.columns.push_back(col);
  col += static_cast<int>(name.size()) + 1;
  for (const auto& arg : args) {
    a.line += " " + arg;
    a.columns.push_back(col);
    col += static_cast<int>(arg.size()) + 1;
  }
  a.line += tail;
  return a;
}

void checkEveryDirective(const std::string& daemon) {
  if (!std::filesystem::exists(tether::test::binPath(daemon))) GTEST_SKIP() << daemon << " is not built";
  char tmpl[] = "/tmp/hcf-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string file = dir + "/bad.conf";
  const std::string base = baseConfig(daemon, dir);
  std::string out;

  std::ofstream(file) << base;
  ASSERT_EQ(shell(tether::test::binPath(daemon) + " -t -c " + file, &out), 0) << "the base configuration:\n"
                                                                                 << base << out;
  std::string table;
  auto rows = directiveTable(daemon, &table);
  ASSERT_GT(rows.size(), 5u) << table;

  int on_value = 0, on_arity = 0, on_block = 0;
  std::string free_text;  // directives that took `bad%value` (a path, a name, a URL)
  std::string unnamed;  // directives whose message quotes the bad argument but not their name
  for (const auto& row : rows) {
    SCOPED_TRACE(daemon + ": \"" + row.name + "\" in " + row.context);
    const std::string marker = "#@" + row.context;
    const auto at = base.find(marker);
    ASSERT_NE(at, std::string::npos) << "no " << row.context << " block in the base configuration";
    const int line_no = 1 + static_cast<int>(std::count(base.begin(), base.begin() + static_cast<long>(at), '\n'));
    const int indent = static_cast<int>(at - (base.rfind('\n', at) == std::string::npos ? 0 : base.rfind('\n', at) + 1));

    const std::vector<Attempt> attempts = {
        attempt(row.name, {"bad%value"}, ";", indent),
        attempt(row.name, {"a", "b", "c", "d", "e", "f", "g", "h", "i"}, ";", indent),
        attempt(row.name, {"bad%value", "x", "y", "z", "w", "v", "u", "t", "s"}, " { }", indent),
    };
    bool refused = false;
    for (size_t i = 0; i < attempts.size() && !refused; ++i) {
      std::string conf = base;
      conf.replace(at, marker.size(), attempts[i].line);
      // The base's own occurrence in that block goes, or a bad value that is checked after
      // parsing would be reported as a duplicate instead.
      const std::string own = "\n" + std::string(static_cast<size_t>(indent), ' ') + row.name + " ";
      const auto next = conf.find(own, at + attempts[i].line.size());
      const auto block_end = conf.find('}', at);
      if (next != std::string::npos && (row.context == "main" || next < block_end)) {
        conf.erase(next + 1, conf.find('\n', next + 1) - next);
      }
      std::ofstream(file, std::ios::trunc) << conf;
      const int rc = shell(tether::test::binPath(daemon) + " -t -c " + file, &out);
      if (rc == 0) continue;
      refused = true;
      (i == 0 ? on_value : i == 1 ? on_arity : on_block)++;
      if (i > 0) free_text += (free_text.empty() ? "" : ", ") + row.name;
      EXPECT_EQ(rc, 1) << attempts[i].line << "\n" << out;
      EXPECT_NE(out.find("[emerg]"), std::string::npos) << attempts[i].line << "\n" << out;
      const bool named = out.find("\"" + row.name + "\"") != std::string::npos;
      std::smatch m;
      const std::regex where(std::regex_replace(file, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + ":" +
                             std::to_string(line_no) + ":(\\d+)");
      if (!std::regex_search(out, m, where)) {
        ADD_FAILURE() << "no " << file << ":" << line_no << ":COLUMN in: " << out << "for: " << attempts[i].line;
        continue;
      }
      const int column = std::stoi(m[1]);
      EXPECT_NE(std::find(attempts[i].columns.begin(), attempts[i].columns.end(), column), attempts[i].columns.end())
          << "column " << column << " is not the start of a token of: " << attempts[i].line << "\n" << out;
      if (!named) {
        // The daemons' own checks after parsing word their messages as nginx does, which does
        // not always name the directive (`host not found in upstream "x"`, `unknown group "x"`).
        // Then the message must quote the bad argument and the column point at it.
        const int arg_column = attempts[i].columns.size() > 1 ? attempts[i].columns[1] : -1;
        EXPECT_TRUE(out.find("\"bad%value\"") != std::string::npos && column == arg_column)
            << "the message neither names the directive nor points at its bad argument: " << attempts[i].line
            << "\n" << out;
        unnamed += (unnamed.empty() ? "" : ", ") + row.name;
      }
    }
    EXPECT_TRUE(refused) << "every bad value was accepted";
  }
  std::printf("[ measure  ] %s: %zu directives refused: %d on a bad value, %d only on too many arguments, "
              "%d block directives on a value with no block (%s)\n",
              daemon.c_str(), rows.size(), on_value, on_arity, on_block, free_text.c_str());
  if (!unnamed.empty()) {
    std::printf("[ measure  ] %s: messages that point at the bad argument without naming the directive: %s\n",
                daemon.c_str(), unnamed.c_str());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(ConfigBadValueTest, EveryProxyDirectiveWithABadValueFailsTheTestWithItsNameAndPosition) {
  checkEveryDirective("tether-proxy");
}

TEST(ConfigBadValueTest, EverySolverdDirectiveWithABadValueFailsTheTestWithItsNameAndPosition) {
  checkEveryDirective("solverd");
}

TEST(ConfigBadValueTest, EveryAgentDirectiveWithABadValueFailsTheTestWithItsNameAndPosition) {
  checkEveryDirective("tether-agent");
}

}  // namespace
}  // namespace tether::hostile
