// The admin listener's live status page in a real browser: headless Chromium (Debian `chromium`)
// loads GET / after a solve ran and its client left; the DOM shows the job, its incumbents
// plotted and the cancel counted. A screenshot goes to the build tree (status_page.png).
#include "daemon_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <regex>
#include <thread>

namespace tether::test {
namespace {

const char* const kChromium = "/usr/bin/chromium";

// Runs a command (through sh) and returns its stdout.
std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

class StatusPageTest : public DaemonTest {};

TEST_F(StatusPageTest, ChromiumShowsTheJobItsIncumbentsAndTheCancelOfAClientThatLeft) {
  if (::access(kChromium, X_OK) != 0) GTEST_SKIP() << "chromium not installed (Debian package chromium)";
  Solverd d(cgroup_root_, Solverd::Options{"admin { listen 127.0.0.1:0; }\nspare_workers 1;\n", false, {}, {}});
  ASSERT_TRUE(d.started()) << d.process().output();
  // The second "listening on" line is the admin listener's (the API opens first).
  uint16_t admin = 0;
  int seen = 0;
  for (const auto& line : d.process().lines()) {
    std::smatch m;
    if (std::regex_search(line, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))")) && ++seen == 2) {
      admin = static_cast<uint16_t>(std::stoi(m[1]));
    }
  }
  ASSERT_NE(admin, 0) << d.process().output();
  // The status JSON (the page's data): wait for the warm worker, so that the job takes it.
  auto spareReady = [&] {
    HttpClient s(admin);
    s.send("GET", "/status");
    auto r = s.response(5s);
    return r && r->status == 200 && r->json()["spares"].value("ready", 0) >= 1;
  };
  for (auto deadline = std::chrono::steady_clock::now() + 10s; !spareReady();) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no warm worker became ready";
    std::this_thread::sleep_for(20ms);  // polling an HTTP endpoint: no event to wait on
  }

  const std::string id = newId();
  HttpClient c(d.port());
  c.send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
         {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}, {"X-Request-Id", id}});
  ASSERT_TRUE(c.head(10s));
  ASSERT_TRUE(c.eventNamed("incumbent", 20s));
  c.close();  // the client leaves: solverd's own watch interrupts the job
  auto job = d.waitFinished(id, 10s);
  ASSERT_TRUE(job);
  ASSERT_EQ((*job)["cancel"]["reason"], "client_disconnect");

  const std::string url = "http://127.0.0.1:" + std::to_string(admin) + "/";
  const std::string flags = "--headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + d.dir() +
                            "/chromium";
  const std::string dom = run("timeout 60 " + std::string(kChromium) + " " + flags + " --dump-dom " + url + " 2>/dev/null");
  ASSERT_FALSE(dom.empty()) << "chromium printed no DOM";
  // The job's row, its phase, its incumbents as a plotted line, and the cancel counted.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("<tr id=\"job-" + id + "\" data-phase=\"finished\">.*?</tr>")))
      << dom.substr(0, 4000);
  const std::string row = m.str();
  EXPECT_NE(row.find("client_disconnect"), std::string::npos) << row;
  std::smatch points;
  ASSERT_TRUE(std::regex_search(row, points, std::regex("<polyline points=\"([^\"]+)\" data-count=\"(\\d+)\"")))
      << row;
  EXPECT_GE(std::stoi(points[2]), 1) << row;
  EXPECT_TRUE(std::regex_search(dom, std::regex("<tr id=\"cancel-client_disconnect\"><td>client_disconnect</td><td class=\"num\">1</td></tr>")))
      << dom.substr(0, 4000);
  // The warm workers (spare_workers 1, spare_start fork by default): the job took the ready
  // spare, which the fork server had made, and the page says the server is up.
  std::smatch taken;
  ASSERT_TRUE(std::regex_search(dom, taken, std::regex("<tr id=\"spares-taken\"><td>spares taken</td><td class=\"num\">(\\d+)</td></tr>")))
      << dom.substr(0, 4000);
  EXPECT_EQ(taken[1], "1") << dom.substr(0, 4000);
  EXPECT_NE(dom.find("<span id=\"spares-start\">fork</span>"), std::string::npos) << dom.substr(0, 4000);
  EXPECT_NE(dom.find("<span id=\"fork-server\">up</span>"), std::string::npos) << dom.substr(0, 4000);

  const std::string png = std::string(TETHER_BINARY_DIR) + "/status_page.png";
  run("timeout 60 " + std::string(kChromium) + " " + flags + " --window-size=1200,700 --screenshot=" + png + " " + url +
      " >/dev/null 2>&1");
  EXPECT_EQ(::access(png.c_str(), R_OK), 0) << "no screenshot at " << png;
}

}  // namespace
}  // namespace tether::test
