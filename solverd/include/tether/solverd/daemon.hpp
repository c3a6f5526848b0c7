#pragma once
// solverd: the HTTP API (http_api.cpp), the control socket (control_handler.cpp), the job table
// and its workers, metrics, and service life (daemon.cpp) on one libuv loop.
//
//   tether::solverd::Daemon daemon(loop, settings, reloader);
//   daemon.start();            // throws StartupError: cannot listen, ...
//   uv_run(loop, UV_RUN_DEFAULT);   // returns after SIGTERM's drain
#include "tether/agent/control/server.hpp"
#include "tether/agent/supervise/cgroup.hpp"
#include "tether/agent/supervise/tombstones.hpp"
#include "tether/common/http_server.hpp"
#include "tether/common/metrics.hpp"
#include "tether/common/service.hpp"
#include "tether/common/signals.hpp"
#include "tether/common/uv_kit.hpp"
#include "tether/solverd/job_table.hpp"
#include "tether/solverd/settings.hpp"
#include "tether/solverd/worker_runner.hpp"

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace tether::http {
class StatusStreams;
}

namespace tether::solverd {

// A failure at start-up (main prints it and exits 1).
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class HttpSubscriber;
class LeaseTimer;
class Webhooks;

class Daemon {
 public:
  // Loads the configuration again on SIGHUP: new settings, or nullopt (the error is logged by
  // the reloader and the old settings stay).
  using Reloader = std::function<std::optional<Settings>()>;

  Daemon(uv_loop_t* loop, Settings settings, Reloader reloader = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the cgroup tree and every listener, installs the signal handlers, sends READY=1.
  void start();
  // SIGTERM: stop accepting, let jobs finish up to shutdown_timeout, then cancel what is left
  // (reason shutdown), close everything; the loop then ends. A second call stops at once.
  void shutdown();
  // SIGHUP: applies `settings` to what can change at run time (workers, queue, coalescing,
  // graces, limits of new jobs, the log); listeners stay as they are.
  void reload(const Settings& settings);

  JobTable& jobs() { return *table_; }
  metrics::Registry& metrics() { return registry_; }
  const Settings& settings() const { return settings_; }

 private:
  friend class HttpSubscriber;
  class ControlHandler;

  // http_api.cpp
  void onRequest(std::shared_ptr<http::Exchange> exchange, bool admin);
  void handleSolve(const std::shared_ptr<http::Exchange>& exchange);
  // DESIGN.md "Request identity": logs a trusted id replaced for breaking the rule, and gives a
  // trusted id already in flight (a balancer's retry keeps its id) a generated one.
  void settleRequestId(http::Exchange& exchange);
  void handleJobs(const std::shared_ptr<http::Exchange>& exchange);
  void handleHealth(const std::shared_ptr<http::Exchange>& exchange);
  // Checks shared by /v1/solve and POST /v1/jobs (draining, tombstones, the request itself):
  // the spec, or nullopt once the error is answered.
  std::optional<SolveSpec> readSolve(const std::shared_ptr<http::Exchange>& exchange);
  // Answers a refused admission (queue full, duplicate id, draining); false when admitted.
  // Admitted: records the request's callback (webhooks) on its job.
  bool refused(http::Exchange& exchange, const JobTable::SubmitResult& admission, const std::string& callback);
  // webhooks: the job's description to each callback of a finished job.
  void sendWebhooks(const Job& job);
  // jobs_api.cpp: detached jobs and watchers (DESIGN.md "Jobs that outlive a connection").
  void handleSubmitJob(const std::shared_ptr<http::Exchange>& exchange);
  void handleJobEvents(const std::shared_ptr<http::Exchange>& exchange, const std::string& id);
  // status_api.cpp: the admin listener's live status page (GET /, GET /status).
  void handleStatus(const std::shared_ptr<http::Exchange>& exchange);
  nlohmann::json statusSnapshot() const;
  // A job that is neither kept nor gone: 410 for a dropped result, else 404.
  void respondMissingJob(http::Exchange& exchange, const std::string& id);
  void retire(HttpSubscriber* subscriber);
  void reapRetired();

  // daemon.cpp
  void setupMetrics();
  JobHooks makeHooks();
  void onJobFinished(const Job& job);
  void onJobCancelled(const Job& job, const CancelOrder& order, std::string_view state);
  void countCancel(const CancelOrder& order, std::string_view state);
  void onShutdownTimeout();
  void maybeStopped();
  void updateStatus();
  WorkerOptions workerOptions() const;
  JobLimits jobLimits() const;
  // Makes the API and admin servers listen on exactly these addresses: opens the new ones, then
  // closes the dropped ones. All or nothing; on failure `why` says which address failed.
  bool relisten(const std::vector<config::Address>& api, const std::vector<config::Address>& admin,
                std::string* why);

  uv_loop_t* loop_;
  Settings settings_;
  Reloader reloader_;
  metrics::Registry registry_;
  agent::supervise::CgroupTree tree_;
  agent::supervise::Tombstones tombstones_;
  std::unique_ptr<WorkerRunner> runner_;
  std::unique_ptr<JobTable> table_;
  std::unique_ptr<ControlHandler> control_handler_;
  std::unique_ptr<agent::control::Server> control_;
  std::unique_ptr<http::Server> api_;
  std::unique_ptr<http::Server> admin_;
  // The listeners of api_ and admin_ by configured address (the server owns them), so that a
  // reload opens the new addresses and closes the dropped ones.
  using Listening = std::vector<std::pair<config::Address, const Listener*>>;
  Listening api_listening_;
  Listening admin_listening_;
  bool openMissing(http::Server& server, const Listening& current, const std::vector<config::Address>& wanted,
                   std::string_view what, Listening& opened, std::string* why);
  void closeDropped(http::Server& server, Listening& current, const std::vector<config::Address>& wanted,
                    std::string_view what);
  std::unique_ptr<ServiceNotifier> notifier_;
  std::unique_ptr<SignalWatcher> signals_;
  std::unique_ptr<uv::Handle<uv_timer_t>> shutdown_timer_;
  std::unique_ptr<uv::Handle<uv_timer_t>> reap_timer_;
  std::unique_ptr<LeaseTimer> lease_timer_;
  std::unique_ptr<Webhooks> webhooks_;
  std::unique_ptr<http::StatusStreams> status_streams_;
  // For the status page: cancels by reason (shared requests' own cancels not counted), and the
  // work of jobs whose client left (client_disconnect, lease_expired): CPU spent, time limit left.
  std::map<std::string, uint64_t> cancels_by_reason_;
  double abandoned_cpu_seconds_ = 0;
  double unspent_time_limit_seconds_ = 0;
  std::unordered_map<HttpSubscriber*, std::unique_ptr<HttpSubscriber>> subscribers_;
  std::vector<std::unique_ptr<HttpSubscriber>> retired_;
  bool stopping_ = false;
  bool stopped_ = false;
  bool api_drained_ = false;
  bool admin_drained_ = false;

  // Series looked up once (metrics.hpp: references stay valid).
  metrics::Family<metrics::Counter>* jobs_total_ = nullptr;
  metrics::Family<metrics::Counter>* cancels_total_ = nullptr;
  metrics::Family<metrics::Histogram>* cancel_to_exit_ = nullptr;
  metrics::Family<metrics::Counter>* cpu_seconds_ = nullptr;
  metrics::Counter* crashes_ = nullptr;
  metrics::Counter* disconnects_ = nullptr;
  metrics::Counter* tombstoned_requests_ = nullptr;
};

}  // namespace tether::solverd
