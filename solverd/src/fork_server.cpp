#include "tether/solverd/fork_server.hpp"

#include "tether/agent/supervise/fork_server.hpp"
#include "tether/common/clock.hpp"
#include "tether/common/log.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace tether::solverd {
namespace {

namespace sv = agent::supervise;

// A server that dies sooner than this after its start counts towards the back-off.
constexpr uint64_t kQuickDeathNs = 1'000'000'000;
constexpr std::chrono::milliseconds kBackoffFirst{1'000};
constexpr std::chrono::milliseconds kBackoffMax{60'000};

// The server's answers that mean "not on this kernel or under this seccomp profile": ENOSYS/EPERM
// (clone(2) filtered too: the server tried it after clone3), EINVAL (CLONE_INTO_CGROUP or
// CLONE_PIDFD unknown), EOPNOTSUPP (the target cgroup cannot take processes). Nothing a restart
// would change.
bool refusedByKernel(int code) { return code == ENOSYS || code == EPERM || code == EINVAL || code == EOPNOTSUPP; }
// Answers about this one child (limits, memory): the server is fine, the spare is exec'd.
bool transient(int code) { return code == EAGAIN || code == ENOMEM || code == EBUSY || code == ENOSPC || code == EBADF; }

}  // namespace

struct ForkServer::Server {
  uint64_t number = 0;
  std::unique_ptr<sv::Target> target;  // declared before the fds and handles below: it goes last
  int sock = -1;                       // solverd's end of the socketpair
  std::unique_ptr<uv::Handle<uv_poll_t>> announce_poll;  // until the server announces itself
  std::unique_ptr<uv::Handle<uv_pipe_t>> stderr_pipe;
  StderrLog stderr_log;
  uint64_t started_ns = 0;
  bool retiring = false;

  ~Server() {
    announce_poll.reset();
    if (stderr_pipe) stderr_log.stop(*stderr_pipe);
    stderr_pipe.reset();
    if (sock >= 0) ::close(sock);
  }
};

ForkServer::ForkServer(uv_loop_t* loop, const sv::CgroupTree* tree, WorkerOptions options,
                       std::function<void()> on_change)
    : loop_(loop), tree_(tree), options_(std::move(options)), on_change_(std::move(on_change)) {
  timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  (*timer_)->data = this;
  launch(true);
}

ForkServer::~ForkServer() = default;

int ForkServer::pid() const { return current_ ? current_->target->pid() : 0; }

void ForkServer::launch(bool wait_for_ready) {
  if (stopped_ || refused_ || current_ || !options_.fork_spares || options_.spare_workers == 0) return;
  auto logger = log::get("worker");
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    ++stats_.died;
    goDown(fmt::format("cannot make the fork server's socket: {}", sv::errnoError(errno, "socketpair").message()), true);
    return;
  }
  auto server = std::make_unique<Server>();
  server->number = next_number_++;
  server->sock = pair[0];
  Server* raw = server.get();

  sv::Target::Options target_options;
  target_options.id = "fork-server-" + std::to_string(raw->number);
  target_options.cgroup_name = "job-fork-server";
  // No job limits: the server holds a loaded binary and nothing else; its children are in their
  // own cgroups, with the job limits.
  target_options.on_done = [this, raw](sv::Target&, const sv::Outcome& outcome) { onServerDone(raw, outcome); };
  sv::SpawnOptions spawn;
  spawn.argv = {options_.worker_path, "--fork-server"};
  spawn.stdin_mode = sv::Stdio::kNull;
  spawn.stdout_mode = sv::Stdio::kNull;
  spawn.stderr_mode = sv::Stdio::kPipe;
  spawn.fd3 = pair[1];
  auto spawned = sv::Target::spawn(loop_, tree_, std::move(target_options), spawn);
  ::close(pair[1]);
  if (!spawned) {
    ++stats_.died;
    failures_ = failures_ + 1;
    goDown(fmt::format("cannot start the fork server {}: {}", options_.worker_path, spawned.error().message()), true);
    return;
  }
  raw->target = std::move(spawned.value());
  raw->started_ns = monotonicNs();
  raw->stderr_pipe = raw->target->takeStderrPipe();
  if (raw->stderr_pipe) raw->stderr_log.start(*raw->stderr_pipe, "fork-server", raw->target->pid());
  raw->announce_poll = std::make_unique<uv::Handle<uv_poll_t>>(loop_, raw->sock);
  if (*raw->announce_poll) {
    (*raw->announce_poll)->data = this;
    uv_poll_start(raw->announce_poll->get(), UV_READABLE,
                  [](uv_poll_t* h, int, int) { static_cast<ForkServer*>(h->data)->onReadable(); });
  }
  ++stats_.started;
  current_ = std::move(server);
  state_ = State::kStarting;
  wait_for_ready_ = wait_for_ready;
  uv_timer_start(
      timer_->get(), [](uv_timer_t* t) { static_cast<ForkServer*>(t->data)->onTimer(); },
      static_cast<uint64_t>(kReadyTimeout.count()), 0);
  logger->debug("fork server pid={} started in {}", raw->target->pid(), raw->target->cgroupPath());
}

void ForkServer::onReadable() {
  if (!current_ || state_ != State::kStarting) return;
  auto announced = sv::fork_server::awaitReady(current_->sock, 0);
  if (!announced && announced.error().code == ETIMEDOUT) return;  // spurious wake-up
  current_->announce_poll.reset();
  if (!announced) {
    // It closed its end before announcing itself: its exit (onServerDone) says why.
    return;
  }
  uv_timer_stop(timer_->get());
  state_ = State::kReady;
  log::get("worker")->info("fork server pid={} ready in {:.1f} ms", *announced,
                           static_cast<double>(monotonicNs() - current_->started_ns) / 1e6);
  notify();
}

sv::Result<sv::ChildProcess> ForkServer::fork(int cgroup_fd, const std::array<int, 3>& stdio) {
  if (!ready()) return sv::errnoError(EAGAIN, "the fork server is not ready");
  auto child = sv::fork_server::request(current_->sock, cgroup_fd, stdio, static_cast<int>(kRequestTimeout.count()));
  if (child) return child;
  const int code = child.error().code;
  const int server_pid = current_->target->pid();
  if (transient(code)) return child;
  if (refusedByKernel(code)) {
    refused_ = true;
    retire("refused");
    goDown(fmt::format("fork server pid={}: {}; spares are exec'd until the next reload", server_pid,
                       child.error().message()),
           false);
    return child;
  }
  // No answer, or a wrong one: the server cannot be trusted with another request.
  ++stats_.died;
  uint64_t lived = monotonicNs() - current_->started_ns;
  failures_ = lived < kQuickDeathNs ? failures_ + 1 : 1;
  retire("stuck");
  goDown(fmt::format("fork server pid={} failed a request ({}): killed", server_pid, child.error().message()), true);
  return child;
}

void ForkServer::onServerDone(Server* server, const sv::Outcome& outcome) {
  if (current_.get() == server) {
    std::unique_ptr<Server> owned = std::move(current_);
    ++stats_.died;
    uint64_t lived = outcome.done_ns > owned->started_ns ? outcome.done_ns - owned->started_ns : 0;
    failures_ = lived < kQuickDeathNs ? failures_ + 1 : 1;
    if (owned->stderr_pipe) owned->stderr_log.stop(*owned->stderr_pipe);
    std::string why = fmt::format("fork server pid={} exited ({}) after {:.1f} ms", outcome.pid,
                                  outcome.status.describe(), static_cast<double>(lived) / 1e6);
    owned.reset();  // its Target included: allowed inside its on_done
    goDown(why, true);
  } else {
    auto it = std::find_if(retiring_.begin(), retiring_.end(), [server](const auto& s) { return s.get() == server; });
    if (it != retiring_.end()) retiring_.erase(it);
  }
  maybeGone();
}

void ForkServer::retire(const char* why) {
  if (!current_) return;
  current_->retiring = true;
  current_->announce_poll.reset();
  log::get("worker")->debug("fork server pid={} retired ({})", current_->target->pid(), why);
  current_->target->cancel(sv::CancelAction::Kill, 0, why);
  retiring_.push_back(std::move(current_));
}

void ForkServer::goDown(const std::string& why, bool restart) {
  const bool was_up = state_ != State::kDown;
  state_ = State::kDown;
  wait_for_ready_ = false;
  if (*timer_) uv_timer_stop(timer_->get());
  if (!why.empty()) {
    if (restart && !stopped_ && !refused_) {
      std::chrono::milliseconds delay{0};
      if (failures_ > 1) {
        unsigned shift = std::min(failures_ - 2, 16U);
        delay = std::min<std::chrono::milliseconds>(kBackoffMax, kBackoffFirst * (int64_t{1} << shift));
      }
      log::get("worker")->warn("{}; spares are exec'd until it is back, restart in {} ms ({} failures in a row)", why,
                               delay.count(), failures_);
      if (*timer_) {
        uv_timer_start(
            timer_->get(), [](uv_timer_t* t) { static_cast<ForkServer*>(t->data)->onTimer(); },
            static_cast<uint64_t>(delay.count()), 0);
      }
    } else {
      log::get("worker")->warn("{}", why);
    }
  }
  if (was_up) notify();
}

void ForkServer::onTimer() {
  if (state_ == State::kStarting && current_) {
    // No announcement in time: a server that cannot start (or is stuck loading).
    ++stats_.died;
    failures_ += 1;
    const int server_pid = current_->target->pid();
    retire("not ready");
    goDown(fmt::format("fork server pid={} did not announce itself within {} ms: killed", server_pid,
                       kReadyTimeout.count()),
           true);
    return;
  }
  if (state_ == State::kDown) launch(false);
}

void ForkServer::restart(WorkerOptions options) {
  options_ = std::move(options);
  if (stopped_) return;
  failures_ = 0;
  refused_ = false;
  retire("reload");
  goDown({}, false);
  launch(true);
}

void ForkServer::stop(std::function<void()> on_gone) {
  if (stopped_) return;
  stopped_ = true;
  on_gone_ = std::move(on_gone);
  retire("drain");
  goDown({}, false);
  timer_->close();
  maybeGone();
}

void ForkServer::notify() {
  if (on_change_) on_change_();
}

void ForkServer::maybeGone() {
  if (!stopped_ || alive() != 0 || !on_gone_) return;
  auto on_gone = std::move(on_gone_);
  on_gone_ = nullptr;
  on_gone();
}

}  // namespace tether::solverd
