#include "chromium.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>
#include <vector>

namespace tether::test {

namespace {

using Clock = std::chrono::steady_clock;

std::string base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // '=' padding and line breaks
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace

Chromium::Chromium(const std::string& profile_dir) {
  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0) return;
  if (::pipe2(from, O_CLOEXEC) != 0) {
    ::close(to[0]);
    ::close(to[1]);
    return;
  }
  const std::vector<std::string> args{kChromiumPath, "--headless", "--no-sandbox", "--disable-gpu",
                                      "--no-first-run", "--remote-debugging-pipe",
                                      "--user-data-dir=" + profile_dir, "about:blank"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The browser's helpers may outlive it by a moment: as a subreaper this process inherits them,
  // so that the destructor reaps them instead of leaving zombies to an init that may not.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  pid_ = ::fork();
  if (pid_ == 0) {
    // Its own process group: the browser's helpers go with it if it has to be killed.
    ::setpgid(0, 0);
    // Out of the way of 3 and 4 first, then onto them (dup2 clears FD_CLOEXEC).
    int in = ::fcntl(to[0], F_DUPFD, 10), out = ::fcntl(from[1], F_DUPFD, 10);
    if (in < 0 || out < 0 || ::dup2(in, 3) < 0 || ::dup2(out, 4) < 0) ::_exit(127);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(to[0]);
  ::close(from[1]);
  if (pid_ < 0) {
    ::close(to[1]);
    ::close(from[0]);
    return;
  }
  to_ = to[1];
  from_ = from[0];
}

Chromium::~Chromium() {
  if (to_ >= 0) call("Browser.close", nlohmann::json::object(), {}, std::chrono::seconds(5));
  if (to_ >= 0) ::close(to_);
  if (from_ >= 0) ::close(from_);
  if (pid_ <= 0) return;
  // It exits after Browser.close (or when its pipe closes); a browser that does not is killed.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // reaping: no event to wait on here
  }
  // Helpers left in its group, if any, killed and reaped (they are ours: see the constructor).
  ::kill(-pid_, SIGKILL);
  for (auto until = Clock::now() + std::chrono::seconds(5); Clock::now() < until;) {
    const pid_t reaped = ::waitpid(-pid_, &status, WNOHANG);
    if (reaped < 0) break;  // ECHILD: none left
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

nlohmann::json Chromium::call(const std::string& method, nlohmann::json params, const std::string& session,
                              std::chrono::milliseconds timeout) {
  if (to_ < 0) return nullptr;
  const int id = next_id_++;
  nlohmann::json msg{{"id", id}, {"method", method}, {"params", std::move(params)}};
  if (!session.empty()) msg["sessionId"] = session;
  std::string text = msg.dump();
  text.push_back('\0');
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(to_, text.data() + off, text.size() - off);
    if (n <= 0) return nullptr;
    off += static_cast<size_t>(n);
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // Replies and events, one NUL-ended message each; events are not needed here.
    for (size_t end; (end = buf_.find('\0')) != std::string::npos;) {
      auto reply = nlohmann::json::parse(buf_.substr(0, end), nullptr, false);
      buf_.erase(0, end + 1);
      if (reply.is_object() && reply.value("id", 0) == id) {
        return reply.contains("result") ? reply["result"] : nlohmann::json();
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return nullptr;
    pollfd p{from_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char chunk[65536];
    ssize_t n = ::read(from_, chunk, sizeof chunk);
    if (n <= 0) return nullptr;
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

std::string Chromium::open(const std::string& url, std::chrono::milliseconds timeout) {
  auto target = call("Target.createTarget", {{"url", "about:blank"}});
  if (!target.is_object() || !target.contains("targetId")) return {};
  auto attached = call("Target.attachToTarget", {{"targetId", target["targetId"]}, {"flatten", true}});
  if (!attached.is_object() || !attached.contains("sessionId")) return {};
  const std::string session = attached["sessionId"];
  if (call("Page.navigate", {{"url", url}}, session).is_null()) return {};
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto state = evaluate(session, "document.readyState + ' ' + location.href");
    if (state.is_string() && state.get<std::string>() == "complete " + url) return session;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return {};
}

nlohmann::json Chromium::evaluate(const std::string& session, const std::string& expression) {
  auto r = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}}, session);
  if (!r.is_object() || r.contains("exceptionDetails") || !r.contains("result")) return nullptr;
  return r["result"].value("value", nlohmann::json());
}

bool Chromium::screenshot(const std::string& session, const std::string& path) {
  call("Emulation.setDeviceMetricsOverride",
       {{"width", 1200}, {"height", 800}, {"deviceScaleFactor", 1}, {"mobile", false}}, session);
  auto r = call("Page.captureScreenshot", {{"format", "png"}}, session);
  if (!r.is_object() || !r.contains("data")) return false;
  std::ofstream(path, std::ios::binary) << base64Decode(r["data"].get<std::string>());
  return std::ifstream(path).good();
}

}  // namespace tether::test
