// W3C Trace Context parsing (common/trace_context.hpp) against the recommendation's own examples
// and its invalid forms, and the journal's TRACE_ID= field taken from a log line.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "tether/common/log.hpp"
#include "tether/common/trace_context.hpp"

namespace tether::trace {
namespace {

TEST(TraceParent, TheRecommendationsExampleParsesAndFormatsBack) {
  const std::string value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto p = parse(value);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(p->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(p->flags, "01");
  EXPECT_EQ(format(*p), value);
}

// Section 3.2 and 4.3: what a receiver must treat as invalid, and how a later version is read.
TEST(TraceParent, InvalidFormsAreRefusedAndALaterVersionIsReadByItsFirstFields) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",        // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",    // version 00 is exactly 55
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",     // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // all-zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // all-zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // version ff is forbidden
           "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",    // later version: a dash must follow
       }) {
    EXPECT_FALSE(parse(bad)) << bad;
  }
  auto later = parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds");
  ASSERT_TRUE(later);
  EXPECT_EQ(later->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(format(*later), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

TEST(TraceParent, NewIdsAreFreshLowerHexAndValid) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string t = newTraceId(), p = newParentId();
    EXPECT_TRUE(isTraceId(t)) << t;
    EXPECT_EQ(p.size(), 16u);
    EXPECT_TRUE(parse("00-" + t + "-" + p + "-00")) << t << " " << p;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(JournalFields, TraceIdIsTakenFromATraceWordOfTheLine) {
  EXPECT_EQ(log::traceIdOf("job=ab solver=cbc status=interrupted trace=4bf92f3577b34da6a3ce929d0e0e4736"),
            "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(log::traceIdOf("rid=x cancel interrupt trace=4bf92f3577b34da6a3ce929d0e0e4736 more"),
            "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(log::traceIdOf("no trace here"), "");
  EXPECT_EQ(log::traceIdOf("xtrace=4bf92f3577b34da6a3ce929d0e0e4736"), "");
  EXPECT_EQ(log::traceIdOf("trace=4bf92f3577b34da6a3ce929d0e0e47"), "");          // short
  EXPECT_EQ(log::traceIdOf("trace=4bf92f3577b34da6a3ce929d0e0e4736ff"), "");      // long
  EXPECT_EQ(log::traceIdOf("trace=4BF92F3577B34DA6A3CE929D0E0E4736"), "");        // not ours
}

// `error_log journal` for real: the journal's socket is a datagram socket of ours, at its real
// path inside a private mount namespace (a tmpfs over /run/systemd in a child process), so the
// entry libsystemd sends is read back field by field. Needs root for the namespace. A line naming
// a trace carries TRACE_ID=, beside REQUEST_ID= and JOB_ID= when it names a request or a job
// (common/src/log.cpp's one field table).
TEST(JournalFields, AJournalEntryOfALineNamingATraceCarriesTraceId) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto fail = [](int code) { _exit(code); };
    if (unshare(CLONE_NEWNS) != 0) fail(77);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(77);
    if (mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755") != 0) fail(77);
    if (mkdir("/run/systemd/journal", 0755) != 0) fail(2);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, "/run/systemd/journal/socket");
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail(3);
    if (!log::configure("tether-test", log::Target{"journal", spdlog::level::info}).empty()) fail(4);
    log::get("job")->info("job=ab solver=cbc status=interrupted trace=4bf92f3577b34da6a3ce929d0e0e4736");
    log::get("job")->info("job=cd solver=cbc status=optimal");
    // One table gives all three fields (with issue 14's REQUEST_ID= and JOB_ID=).
    log::get("http")->info("rid=r-1 job=j-1 admitted trace=0af7651916cd43dd8448eb211c80319c");
    std::string entries[3];
    for (std::string& e : entries) {
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) fail(5);
      e.assign(buf, static_cast<size_t>(n));
    }
    bool ok = entries[0].find("MESSAGE=job: job=ab solver=cbc status=interrupted trace=4bf92f") != std::string::npos &&
              entries[0].find("\nTRACE_ID=4bf92f3577b34da6a3ce929d0e0e4736") != std::string::npos &&
              entries[0].find("\nPRIORITY=6") != std::string::npos &&
              entries[0].find("\nSYSLOG_IDENTIFIER=tether-test") != std::string::npos &&
              entries[0].find("\nJOB_ID=ab") != std::string::npos &&
              entries[0].find("REQUEST_ID=") == std::string::npos &&
              entries[1].find("TRACE_ID=") == std::string::npos &&
              entries[1].find("\nJOB_ID=cd") != std::string::npos &&
              entries[2].find("\nREQUEST_ID=r-1") != std::string::npos &&
              entries[2].find("\nJOB_ID=j-1") != std::string::npos &&
              entries[2].find("\nTRACE_ID=0af7651916cd43dd8448eb211c80319c") != std::string::npos;
    fail(ok ? 0 : 6);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "no private mount namespace (needs root)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1-5: the child could not set up or read; 6: a field was wrong";
}

}  // namespace
}  // namespace tether::trace
