// The live status pages in a real browser while work runs (DESIGN.md "Status page"): headless
// Chromium keeps solverd's page and tether-proxy's page open, a solve goes through the proxy, its
// client leaves, and the test reads the pages' DOM as it changes, without a reload: the job's row
// and the request's row appear, the job's incumbents are plotted, the cancel is counted on both
// pages, the disconnect on the proxy's. Screenshots of both go to the build tree.
#include "chromium.hpp"
#include "daemon_support.hpp"

#include <unistd.h>

#include <fstream>
#include <regex>

namespace tether::test {
namespace {

// The port of the n-th (0-based) "listening on 127.0.0.1:PORT" line of `p`.
uint16_t listeningPort(Process& p, int n) {
  int seen = 0;
  for (const auto& line : p.lines()) {
    std::smatch m;
    if (std::regex_search(line, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))")) && seen++ == n) {
      return static_cast<uint16_t>(std::stoi(m[1]));
    }
  }
  return 0;
}

class LiveStatusPagesTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped()) return;
    if (::access(kChromiumPath, X_OK) != 0) GTEST_SKIP() << "chromium not installed (Debian package chromium)";
    if (!std::ifstream(binPath("tether-proxy"))) GTEST_SKIP() << "tether-proxy not built in " << TETHER_BIN_DIR;
  }

  // Waits until `expression` evaluates to true in the tab.
  static bool waitTrue(Chromium& browser, const std::string& tab, const std::string& expression,
                       std::chrono::milliseconds timeout) {
    return waitFor([&] { return browser.evaluate(tab, expression) == true; }, timeout);
  }
};

TEST_F(LiveStatusPagesTest, BothPagesShowTheSolveLiveAndCountTheCancelOfTheClientThatLeft) {
  Solverd d(cgroup_root_, Solverd::Options{"admin { listen 127.0.0.1:0; }\n", false, {}, {}});
  ASSERT_TRUE(d.started()) << d.process().output();
  const uint16_t solverd_admin = listeningPort(d.process(), 1);  // the API opens first
  ASSERT_NE(solverd_admin, 0) << d.process().output();

  const std::string conf_path = d.dir() + "/proxy.conf";
  std::ofstream(conf_path) << "error_log stderr info;\n"
                           << "admin { listen 127.0.0.1:0; }\n"
                           << "upstream solverd {\n  server 127.0.0.1:" << d.port() << ";\n"
                           << "  control unix:" << d.controlPath() << ";\n}\n"
                           << "server {\n  listen 127.0.0.1:0;\n"
                           << "  location /v1/solve { proxy_pass http://solverd; on_disconnect interrupt; kill_after 5s; }\n"
                           << "}\n";
  Process proxy({binPath("tether-proxy"), "-c", conf_path});
  ASSERT_TRUE(proxy.waitForLine(R"(listening on 127\.0\.0\.1:\d+)", 10s));
  ASSERT_TRUE(waitFor([&] { return listeningPort(proxy, 1) != 0; }, 10s)) << proxy.output();
  const uint16_t proxy_port = listeningPort(proxy, 0);
  const uint16_t proxy_admin = listeningPort(proxy, 1);

  Chromium browser(d.dir() + "/chromium");
  ASSERT_TRUE(browser.started());
  const std::string solverd_page = browser.open("http://127.0.0.1:" + std::to_string(solverd_admin) + "/");
  ASSERT_FALSE(solverd_page.empty()) << "chromium did not load solverd's page";
  const std::string proxy_page = browser.open("http://127.0.0.1:" + std::to_string(proxy_admin) + "/");
  ASSERT_FALSE(proxy_page.empty()) << "chromium did not load tether-proxy's page";
  // Both pages stay as loaded: a reload would drop this mark, and each row below must come from
  // the pages' event streams.
  for (const auto& tab : {solverd_page, proxy_page}) {
    ASSERT_TRUE(waitTrue(browser, tab, "document.getElementById('updated').textContent.startsWith('updated')", 10s));
    ASSERT_EQ(browser.evaluate(tab, "window.tetherMark = 'loaded once'"), "loaded once");
    EXPECT_EQ(browser.evaluate(tab, "document.querySelectorAll('tbody tr[id^=job-], tbody tr[id^=request-]').length"), 0);
  }

  // A solve through the proxy; its id is the proxy's.
  HttpClient c(proxy_port);
  c.send("POST", "/v1/solve?solver=cbc", readFile(modelPath("market_split_hard.lp")),
         {{"Content-Type", "text/x-lp"}, {"Accept", "application/x-ndjson"}});
  auto head = c.head(10s);
  ASSERT_TRUE(head);
  ASSERT_EQ(head->status, 200);
  const std::string id = head->headers["x-request-id"];
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(c.eventNamed("incumbent", 20s));

  // While it runs: the job's row on solverd's page with its incumbents plotted, the request's row
  // on the proxy's page.
  const std::string job_row = "document.getElementById('job-" + id + "')";
  EXPECT_TRUE(waitTrue(browser, solverd_page,
                       job_row + "?.dataset.phase === 'running' && Number(" + job_row +
                           ".querySelector('svg.plot polyline')?.dataset.count) >= 1",
                       10s))
      << browser.evaluate(solverd_page, "document.body.innerHTML");
  // The plot grows in place: the client's next incumbent shows up as one more point in the same row.
  const std::string points = "Number(" + job_row + "?.querySelector('svg.plot polyline')?.dataset.count)";
  const nlohmann::json before = browser.evaluate(solverd_page, points);
  ASSERT_TRUE(before.is_number()) << before.dump();
  ASSERT_TRUE(c.eventNamed("incumbent", 20s)) << "cbc found no second incumbent";
  EXPECT_TRUE(waitTrue(browser, solverd_page, points + " > " + before.dump(), 10s))
      << browser.evaluate(solverd_page, points).dump() << " point(s), " << before.dump() << " before";
  const std::string request_row = "document.getElementById('request-" + id + "')";
  EXPECT_TRUE(waitTrue(browser, proxy_page, request_row + " !== null", 10s))
      << browser.evaluate(proxy_page, "document.body.innerHTML");
  EXPECT_EQ(browser.evaluate(proxy_page, request_row + ".cells[3].textContent"),
            "127.0.0.1:" + std::to_string(d.port()));
  EXPECT_EQ(browser.evaluate(proxy_page, request_row + ".cells[4].textContent"), "HTTP/1.1");
  browser.screenshot(proxy_page, std::string(TETHER_BINARY_DIR) + "/status_page_proxy_running.png");

  // The client leaves: the proxy's cancel frame interrupts the job.
  c.close();
  auto job = d.waitFinished(id, 15s);
  ASSERT_TRUE(job) << d.process().output();
  ASSERT_EQ((*job)["cancel"]["reason"], "client_disconnect") << job->dump();

  EXPECT_TRUE(waitTrue(browser, solverd_page,
                       job_row + "?.dataset.phase === 'finished' && " + job_row +
                           ".cells[9].textContent === 'client_disconnect'",
                       10s))
      << browser.evaluate(solverd_page, "document.body.innerHTML");
  EXPECT_TRUE(waitTrue(browser, solverd_page,
                       "document.querySelector('#cancel-client_disconnect td.num')?.textContent === '1'", 10s))
      << browser.evaluate(solverd_page, "document.body.innerHTML");
  EXPECT_GE(browser.evaluate(solverd_page, "Number(" + job_row + ".querySelector('svg.plot polyline').dataset.count)"),
            1);
  EXPECT_TRUE(waitTrue(browser, proxy_page,
                       request_row + " === null && document.querySelector('#cancel-client_disconnect td.num')?.textContent === '1'",
                       10s))
      << browser.evaluate(proxy_page, "document.body.innerHTML");
  // The disconnect counted by its phase, and its latency to the cancel frame in the histogram.
  EXPECT_EQ(browser.evaluate(proxy_page, "document.querySelectorAll('#disconnects tr').length"), 1)
      << browser.evaluate(proxy_page, "document.body.innerHTML");
  EXPECT_EQ(browser.evaluate(proxy_page, "document.querySelectorAll('#latency tr').length"), 1);
  for (const auto& tab : {solverd_page, proxy_page}) {
    EXPECT_EQ(browser.evaluate(tab, "window.tetherMark"), "loaded once") << "the page was reloaded";
  }
  const std::string dir = TETHER_BINARY_DIR;
  EXPECT_TRUE(browser.screenshot(solverd_page, dir + "/status_page_solverd_live.png"));
  EXPECT_TRUE(browser.screenshot(proxy_page, dir + "/status_page_proxy_live.png"));
  d.expectNoErrorsLogged();
}

}  // namespace
}  // namespace tether::test
