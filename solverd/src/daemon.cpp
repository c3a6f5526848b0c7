// solverd's life: start-up (cgroup tree, listeners, control socket, READY=1), metrics and the
// outcome log line of every job, SIGHUP reload, SIGTERM drain (DESIGN.md "Service life").
#include "tether/solverd/daemon.hpp"

#include "tether/common/clock.hpp"
#include "tether/common/listener.hpp"
#include "tether/common/log.hpp"
#include "tether/common/status_page.hpp"
#include "tether/solverd/control_handler.hpp"
#include "tether/solverd/fork_server.hpp"

#include "http_subscriber.hpp"
#include "lease_timer.hpp"
#include "webhooks.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

namespace tether::solverd {
namespace {

namespace sv = agent::supervise;

std::string msText(uint64_t from, uint64_t to) {
  if (from == 0 || to == 0) return "-";
  return fmt::format("{:.3f}ms", static_cast<double>(to - from) / 1e6);
}

// Opens one listener of an HTTP server and logs the team's `listening on` line. Returns it (the
// server owns it), or nullptr with `why` set.
const Listener* openListener(http::Server& server, const config::Address& address, std::string_view what,
                             std::string* why) {
  std::string reason;
  auto listener = Listener::open(server.loop(), address, {}, &reason);
  if (!listener) {
    *why = fmt::format("cannot listen on {} ({}): {}", address.text(), what, reason);
    return nullptr;
  }
  const Listener* raw = listener.get();
  const std::string bound = listener->address();
  if (int rc = server.addListener(std::move(listener)); rc < 0) {
    *why = fmt::format("cannot accept on {} ({}): {}", address.text(), what, uv_strerror(rc));
    return nullptr;
  }
  log::get("solverd")->info("listening on {}", bound);
  return raw;
}

// A predecessor killed with SIGKILL leaves its job cgroups behind: its workers exit on stdin EOF,
// the empty directories stay. Empty ones are removed at start-up; populated ones may belong to
// another solverd sharing this root (or a worker still exiting) and are left alone.
size_t removeStaleJobCgroups(const std::string& parent) {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with("job-") || !entry.is_directory(ec)) continue;
    auto populated = sv::readPopulated(entry.path().string());
    if (populated.ok() && !populated.value() && ::rmdir(entry.path().c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace

Daemon::Daemon(uv_loop_t* loop, Settings settings, Reloader reloader)
    : loop_(loop),
      settings_(std::move(settings)),
      reloader_(std::move(reloader)),
      tombstones_(static_cast<uint64_t>(settings_.tombstone_ttl.count()) * 1'000'000ULL) {
  setupMetrics();
}

Daemon::~Daemon() {
  // Subscribers hold exchanges of the servers: they go first. Workers still running are killed
  // by their Targets' destructors (only on error paths: a normal exit drains them), before the
  // jobs their sessions refer to.
  subscribers_.clear();
  retired_.clear();
  api_.reset();
  admin_.reset();
  control_.reset();
  runner_.reset();
  lease_timer_.reset();
  webhooks_.reset();
  status_streams_.reset();
  table_.reset();
}

WorkerOptions Daemon::workerOptions() const {
  WorkerOptions o;
  o.worker_path = settings_.worker_path;
  o.limits.memory_max = settings_.job_memory_max;
  o.limits.pids_max = settings_.job_pids_max;
  o.limits.cpu_max = settings_.job_cpu_max;
  o.max_grace = settings_.max_grace;
  o.time_limit_grace = settings_.time_limit_grace;
  o.spare_workers = settings_.spare_workers;
  o.fork_spares = settings_.fork_spares;
  return o;
}

JobLimits Daemon::jobLimits() const {
  JobLimits l;
  l.workers = settings_.workers;
  l.queue_size = settings_.queue_size;
  l.coalesce = settings_.coalesce;
  l.supersede_grace = settings_.graceFor(std::nullopt);
  l.lease_grace = settings_.graceFor(std::nullopt);
  l.finished_kept = settings_.max_results;
  l.result_ttl = settings_.result_ttl;
  l.gone_ttl = settings_.gone_ttl;
  return l;
}

void Daemon::setupMetrics() {
  jobs_total_ = &registry_.counter("solverd_jobs_total", "Jobs finished, by solver and status.", {"solver", "status"});
  registry_.callbackGauge("solverd_jobs_running", "Jobs with a running worker.",
                          [this] { return table_ ? static_cast<double>(table_->running()) : 0.0; });
  registry_.callbackGauge("solverd_jobs_queued", "Jobs waiting for a worker.",
                          [this] { return table_ ? static_cast<double>(table_->queued()) : 0.0; });
  // The configured limits beside the counts, so that a saturation alert is a ratio that holds
  // for any `workers` and `queue_size` (packaging/prometheus).
  registry_.callbackGauge("solverd_workers", "Parallel solves allowed (the workers directive).",
                          [this] { return static_cast<double>(settings_.workers); });
  registry_.callbackGauge("solverd_queue_capacity", "Jobs that may wait for a worker (the queue_size directive).",
                          [this] { return static_cast<double>(settings_.queue_size); });
  cancels_total_ = &registry_.counter("solverd_cancels_total",
                                      "Cancels, by action, reason and the job's phase when it arrived "
                                      "(queued, running, shared, finished, unknown).",
                                      {"action", "reason", "phase"});
  cancel_to_exit_ = &registry_.histogram("solverd_cancel_to_exit_seconds",
                                         "From a job's cancel to its worker's cgroup being empty.");
  cpu_seconds_ = &registry_.counter("solverd_job_cpu_seconds_total", "CPU time of workers (cpu.stat), by status.",
                                    {"status"});
  crashes_ = &registry_.counter("solverd_worker_crashes_total", "Workers that died without a result.").get();
  disconnects_ = &registry_.counter("solverd_http_disconnects_total",
                                    "Requests whose connection closed before their response.")
                      .get();
  tombstoned_requests_ = &registry_.counter("solverd_tombstoned_requests_total",
                                            "Requests refused because a cancel for their id came first.")
                              .get();
  // Warm workers (spare_pool.hpp): ready now, and what became of the ones started.
  registry_.callbackGauge("solverd_spare_workers", "Warm workers waiting for a job.",
                          [this] { return runner_ ? static_cast<double>(runner_->spares().ready()) : 0.0; });
  auto spareCounter = [this](std::string_view name, std::string_view help, uint64_t SparePool::Stats::*field) {
    registry_.callbackCounter(name, help, [this, field] {
      return runner_ ? static_cast<double>(runner_->spares().stats().*field) : 0.0;
    });
  };
  spareCounter("solverd_spare_workers_started_total", "Warm workers started.", &SparePool::Stats::started);
  spareCounter("solverd_spare_workers_taken_total", "Warm workers handed a job.", &SparePool::Stats::taken);
  spareCounter("solverd_spare_workers_died_total",
               "Warm workers that exited before they were handed a job, or could not start.",
               &SparePool::Stats::died);
  spareCounter("solverd_spare_workers_retired_total", "Warm workers stopped by a reload or the drain.",
               &SparePool::Stats::retired);
  spareCounter("solverd_spare_workers_forked_total", "Warm workers made by the fork server (the others were exec'd).",
               &SparePool::Stats::forked);
  // The fork server (spare_start fork, fork_server.hpp): up or not, and its deaths.
  registry_.callbackGauge("solverd_fork_server_up", "1 while the fork server is ready to make spares.", [this] {
    const ForkServer* server = runner_ ? runner_->spares().forkServer() : nullptr;
    return server != nullptr && server->ready() ? 1.0 : 0.0;
  });
  registry_.callbackCounter("solverd_fork_server_died_total",
                            "Fork servers that exited unasked, did not start, or were killed as stuck.", [this] {
                              const ForkServer* server = runner_ ? runner_->spares().forkServer() : nullptr;
                              return server != nullptr ? static_cast<double>(server->stats().died) : 0.0;
                            });
  registry_.callbackGauge("solverd_tombstones", "Request ids refused after a cancel for an unknown id.",
                          [this] { return static_cast<double>(tombstones_.size(monotonicNs())); });
}

JobHooks Daemon::makeHooks() {
  JobHooks hooks;
  hooks.cancelled = [this](const Job& job, const CancelOrder& order, std::string_view state) {
    onJobCancelled(job, order, state);
  };
  hooks.started = [this](const Job& job) {
    log::get("job")->debug("job={} started ({} still queued)", job.id, table_ ? table_->queued() : 0);
    if (table_) updateStatus();
  };
  hooks.finished = [this](const Job& job) { onJobFinished(job); };
  return hooks;
}

void Daemon::countCancel(const CancelOrder& order, std::string_view state) {
  cancels_total_->with({std::string(toString(order.action)), std::string(agent::control::reasonLabel(order.reason)),
                        std::string(state)}).inc();
}

void Daemon::onJobCancelled(const Job& job, const CancelOrder& order, std::string_view state) {
  countCancel(order, state);
  if (state == "shared") {
    log::get("job")->info("job={} one request cancelled ({}); {} holder(s) keep it going", job.id, order.reason,
                          job.holders(monotonicNs()));
    return;
  }
  ++cancels_by_reason_[order.reason];
  // A queued job ends at once: its outcome line carries the cancel; one line per job is enough.
  auto level = state == "queued" ? spdlog::level::debug : spdlog::level::info;
  const std::string& trace = order.trace_id.empty() ? job.trace_id : order.trace_id;
  log::get("job")->log(level, "job={} cancel {} ({}{}) while {}{}{}{}", job.id, toString(order.action), order.reason,
                        order.phase.empty() ? "" : ", " + order.phase, state,
                        order.action == CancelAction::Interrupt ? fmt::format(", grace {}ms", order.grace.count()) : "",
                        trace.empty() ? "" : " trace=", trace);
}

void Daemon::onJobFinished(const Job& job) {
  std::string status = job.status();
  jobs_total_->with({job.spec.solver, status}).inc();
  cpu_seconds_->with({status}).inc(static_cast<double>(job.cpu_us) / 1e6);
  if (status == "crashed") crashes_->inc();
  std::string objective = "-";
  if (job.outcome && job.outcome->body.contains("objective") && job.outcome->body["objective"].is_number()) {
    objective = fmt::format("{}", job.outcome->body["objective"].get<double>());
  }
  std::string cancel;
  if (job.cancel) {
    const CancelRecord& c = *job.cancel;
    if (c.exited_ns != 0) cancel_to_exit_->get().observe(secondsBetween(c.received_ns, c.exited_ns));
    cancel = fmt::format(" cancel={} reason={} received->signalled={} received->killed={} received->exited={}",
                         toString(c.action), c.reason, msText(c.received_ns, c.signalled_ns),
                         msText(c.received_ns, c.killed_ns), msText(c.received_ns, c.exited_ns));
  }
  std::string extra;
  if (job.outcome && job.outcome->body.contains("exit")) extra = " exit=" + job.outcome->body["exit"].dump();
  if (job.outcome && job.outcome->http_status != 200) {
    extra += fmt::format(" http={} message={}", job.outcome->http_status,
                         job.outcome->body.value("message", std::string{}));
  }
  auto logger = log::get("job");
  // A worker we could not start or that broke the protocol is our failure; a crash is the
  // solver's (degraded, serving on); everything else is the normal outcome of a job.
  auto level = spdlog::level::info;
  if (status == "crashed") level = spdlog::level::warn;
  if (job.outcome && job.outcome->http_status >= 500) level = spdlog::level::err;
  if (!job.trace_id.empty()) extra += " trace=" + job.trace_id;
  logger->log(level, "job={} solver={} status={} objective={} incumbents={} cpu_ms={:.3f} run={}{}{}", job.id,
              job.spec.solver, status, objective, job.incumbents, static_cast<double>(job.cpu_us) / 1000.0,
              msText(job.started_ns, job.finished_ns), cancel, extra);
  if (job.cancel && (job.cancel->reason == reasonName(Reason::ClientDisconnect) ||
                     job.cancel->reason == reasonName(Reason::LeaseExpired))) {
    abandoned_cpu_seconds_ += static_cast<double>(job.cpu_us) / 1e6;
    double ran = job.started_ns != 0 ? secondsBetween(job.started_ns, job.finished_ns) : 0.0;
    unspent_time_limit_seconds_ += std::max(0.0, job.spec.timeLimitSeconds() - ran);
  }
  if (!job.callbacks.empty()) sendWebhooks(job);
  updateStatus();
  maybeStopped();
}

void Daemon::updateStatus() {
  if (!notifier_ || !notifier_->enabled()) return;
  notifier_->status(fmt::format("{} running, {} queued, {} spare{}", table_->running(), table_->queued(),
                                runner_->spares().ready(), stopping_ ? ", stopping" : ""));
}

void Daemon::start() {
  auto logger = log::get("solverd");
  sv::CgroupOptions cg;
  cg.root = settings_.cgroup_root;
  cg.daemon = "solverd";
  cg.limits = workerOptions().limits;
  tree_ = sv::CgroupTree::open(cg);
  if (!tree_.available()) {
    logger->warn("no writable cgroup v2 ({}): workers run in their own process group, best effort",
                 tree_.unavailableReason());
  } else {
    for (const auto& note : tree_.notes()) logger->info("cgroup: {}", note);
    logger->info("job cgroups under {}", tree_.parent());
    if (size_t stale = removeStaleJobCgroups(tree_.parent())) {
      logger->info("removed {} empty job cgroup(s) left by an earlier solverd", stale);
    }
    for (const auto& limit : tree_.unavailableLimits(cg.limits)) logger->warn("job limit not applied: {}", limit);
  }

  runner_ = std::make_unique<WorkerRunner>(loop_, &tree_, workerOptions());
  table_ = std::make_unique<JobTable>(jobLimits(), *runner_, makeHooks());
  runner_->setTable(table_.get());
  runner_->setSparesChanged([this] { updateStatus(); });
  lease_timer_ = std::make_unique<LeaseTimer>(loop_, *table_);
  // readSettings checked callback_allow: parse() cannot fail here.
  webhooks_ = std::make_unique<Webhooks>(loop_, *CallbackPolicy::parse(settings_.callback_allow, nullptr),
                                         settings_.callback_secret);
  webhooks_->onIdle([this] { maybeStopped(); });
  status_streams_ = std::make_unique<http::StatusStreams>(loop_, [this] { return statusSnapshot(); });

  reap_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);  // uv_timer_init cannot fail
  reap_timer_->get()->data = this;
  uv_unref(reap_timer_->raw());

  http::ServerOptions options;
  options.limits.max_body_size = settings_.client_max_body_size;
  options.header_timeout_ms = static_cast<uint64_t>(settings_.client_header_timeout.count());
  options.keepalive_timeout_ms = static_cast<uint64_t>(settings_.keepalive_timeout.count());
  options.tcp_keepalive = settings_.tcp_keepalive;
  options.server_name = "solverd";
  options.request_id_header = settings_.request_id_header;
  options.trust_request_id = settings_.trust_request_id;
  api_ = std::make_unique<http::Server>(loop_, options,
                                        [this](std::shared_ptr<http::Exchange> ex) { onRequest(std::move(ex), false); });
  http::ServerOptions admin_options;
  admin_options.server_name = "solverd";
  admin_ = std::make_unique<http::Server>(loop_, admin_options,
                                          [this](std::shared_ptr<http::Exchange> ex) { onRequest(std::move(ex), true); });
  if (std::string why; !relisten(settings_.listen, settings_.admin, &why)) {
    throw StartupError(why);
  }

  if (settings_.control) {
    control_handler_ = std::make_unique<ControlHandler>(*this);
    control_ = std::make_unique<agent::control::Server>(loop_, *control_handler_, settings_.control->server);
    std::string why;
    if (agent::control::listenControl(loop_, *control_, *settings_.control, &why) != 0) {
      throw StartupError(fmt::format("{} (control)", why));
    }
    logger->info("listening on {}", control_->address());
  }

  notifier_ = std::make_unique<ServiceNotifier>(loop_);
  signals_ = std::make_unique<SignalWatcher>(loop_, SignalActions{
                                                        .graceful = [this](int) { shutdown(); },
                                                        .immediate = [this](int) { shutdown(); },
                                                        .reload =
                                                            [this] {
                                                              if (!reloader_) return;
                                                              notifier_->reloading();
                                                              if (auto s = reloader_()) reload(*s);
                                                              notifier_->ready();
                                                            },
                                                    });
  if (int rc = signals_->start(); rc < 0) throw StartupError(fmt::format("signals: {}", uv_strerror(rc)));
  logger->info("solverd {} ready: {} workers, {} spare, queue {}, worker {}", TETHER_VERSION, settings_.workers,
               settings_.spare_workers, settings_.queue_size, settings_.worker_path);
  notifier_->ready(fmt::format("0 running, 0 queued, {} workers, {} spare", settings_.workers, settings_.spare_workers));
}

bool Daemon::openMissing(http::Server& server, const Listening& current, const std::vector<config::Address>& wanted,
                         std::string_view what, Listening& opened, std::string* why) {
  for (const auto& address : wanted) {
    auto same = [&address](const auto& c) { return c.first == address; };
    if (std::any_of(current.begin(), current.end(), same) || std::any_of(opened.begin(), opened.end(), same)) continue;
    const Listener* listener = openListener(server, address, what, why);
    if (listener == nullptr) return false;
    opened.emplace_back(address, listener);
  }
  return true;
}

void Daemon::closeDropped(http::Server& server, Listening& current, const std::vector<config::Address>& wanted,
                          std::string_view what) {
  std::erase_if(current, [&](const auto& c) {
    if (std::find(wanted.begin(), wanted.end(), c.first) != wanted.end()) return false;
    server.closeListener(c.second);
    log::get("solverd")->info("no longer listening on {} ({})", c.first.text(), what);
    return true;
  });
}

bool Daemon::relisten(const std::vector<config::Address>& api, const std::vector<config::Address>& admin,
                      std::string* why) {
  // All or nothing: the new addresses of both servers are opened first; if one fails, those
  // opened are closed again and nothing changes.
  Listening api_opened, admin_opened;
  if (!openMissing(*api_, api_listening_, api, "API", api_opened, why) ||
      !openMissing(*admin_, admin_listening_, admin, "admin", admin_opened, why)) {
    for (const auto& [a, l] : api_opened) api_->closeListener(l);
    for (const auto& [a, l] : admin_opened) admin_->closeListener(l);
    return false;
  }
  closeDropped(*api_, api_listening_, api, "API");
  closeDropped(*admin_, admin_listening_, admin, "admin");
  api_listening_.insert(api_listening_.end(), api_opened.begin(), api_opened.end());
  admin_listening_.insert(admin_listening_.end(), admin_opened.begin(), admin_opened.end());
  return true;
}

void Daemon::reload(const Settings& settings) {
  auto logger = log::get("solverd");
  // New API and admin addresses take effect now, as nginx does on a reload; requests on the
  // connections of a dropped address carry on. The control socket moves only with a restart
  // (the proxy holds its connection to it).
  if (std::string why; !relisten(settings.listen, settings.admin, &why)) {
    logger->error("reload: {}; keeping the running configuration", why);
    return;
  }
  if (settings.control.has_value() != settings_.control.has_value() ||
      (settings.control && !(settings.control->listen == settings_.control->listen))) {
    logger->warn("reload: the control socket moves only with a restart");
  }
  // The API server reads the request id with the options it was made with.
  if (settings.request_id_header != settings_.request_id_header ||
      settings.trust_request_id != settings_.trust_request_id) {
    logger->warn("reload: request_id_header and trust_request_id change only with a restart");
  }
  auto control = settings_.control;
  auto id_header = settings_.request_id_header;
  const bool trust_id = settings_.trust_request_id;
  settings_ = settings;
  settings_.control = std::move(control);
  settings_.request_id_header = std::move(id_header);
  settings_.trust_request_id = trust_id;
  if (std::string why = log::configure(kProgram, settings_.log); !why.empty()) {
    logger->error("reload: cannot open the log {}: {}", settings_.log.where, why);
  }
  tombstones_.setTtl(static_cast<uint64_t>(settings_.tombstone_ttl.count()) * 1'000'000ULL);
  runner_->setOptions(workerOptions());
  webhooks_->setPolicy(*CallbackPolicy::parse(settings_.callback_allow, nullptr), settings_.callback_secret);
  table_->setLimits(jobLimits());
  logger->info("configuration reloaded: {} workers, {} spare (the old spares retired), queue {}, coalesce {}",
               settings_.workers, settings_.spare_workers, settings_.queue_size, toString(settings_.coalesce));
}

void Daemon::shutdown() {
  auto logger = log::get("solverd");
  if (stopping_) {
    // A second SIGTERM: no more waiting.
    logger->info("shutting down now: killing {} job(s)", table_->active());
    CancelOrder order;
    order.action = CancelAction::Kill;
    order.grace = std::chrono::milliseconds(0);
    order.reason = reasonName(Reason::Shutdown);
    table_->cancelAll(order);
    if (api_) api_->closeAll();
    if (admin_) admin_->closeAll();
    return;
  }
  stopping_ = true;
  logger->info("shutting down: {} running, {} queued; waiting up to {} ms", table_->running(), table_->queued(),
               settings_.shutdown_timeout.count());
  notifier_->stopping(fmt::format("draining {} job(s)", table_->active()));
  auto budget = settings_.shutdown_timeout + settings_.max_grace + std::chrono::seconds(5);
  notifier_->extendTimeout(std::chrono::duration_cast<std::chrono::microseconds>(budget));
  table_->stopAdmitting();
  // Webhooks of jobs ending from now on get one try each: a stop does not wait out retries.
  webhooks_->finishUp();
  status_streams_->closeAll();
  // The timer exists before the drains start: their callbacks may run at once and end the
  // shutdown (maybeStopped closes the timer).
  shutdown_timer_ = std::make_unique<uv::Handle<uv_timer_t>>(loop_);
  shutdown_timer_->get()->data = this;
  uv_timer_start(
      shutdown_timer_->get(), [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->onShutdownTimeout(); },
      static_cast<uint64_t>(settings_.shutdown_timeout.count()), 0);
  // No spare is handed a job from now on: the jobs still queued start cold workers.
  runner_->stopSpares([this] { maybeStopped(); });
  if (api_) {
    api_->drain([this] {
      api_drained_ = true;
      maybeStopped();
    });
  } else {
    api_drained_ = true;
  }
  if (admin_) {
    admin_->drain([this] {
      admin_drained_ = true;
      maybeStopped();
    });
  } else {
    admin_drained_ = true;
  }
  maybeStopped();
}

void Daemon::onShutdownTimeout() {
  if (table_->active() == 0) return;
  log::get("solverd")->info("shutdown_timeout: cancelling {} job(s)", table_->active());
  CancelOrder order;
  order.grace = settings_.graceFor(std::nullopt);
  order.reason = reasonName(Reason::Shutdown);
  table_->cancelAll(order);
}

void Daemon::maybeStopped() {
  // Reached from: shutdown(), each job's end, each drain callback, the reap timer, the last
  // retired spare's end, each webhook's end.
  if (!stopping_ || stopped_ || table_->active() != 0 || !subscribers_.empty() || webhooks_->pending() != 0) return;
  if (runner_->spares().alive() != 0) return;
  if (!api_drained_ || !admin_drained_) {
    // Every job is done: what is left are responses in flight; the server closes them itself.
    return;
  }
  stopped_ = true;
  log::get("solverd")->info("stopped");
  if (control_) control_->close();
  if (shutdown_timer_) shutdown_timer_->close();
  if (reap_timer_) reap_timer_->close();
  if (lease_timer_) lease_timer_->close();
  if (notifier_) notifier_->stopWatchdog();
  if (signals_) signals_->close();
}

}  // namespace tether::solverd
