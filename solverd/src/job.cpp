#include "tether/solverd/job.hpp"

namespace tether::solverd {

std::string_view toString(CoalesceMode mode) {
  switch (mode) {
    case CoalesceMode::Share: return "share";
    case CoalesceMode::Supersede: return "supersede";
    case CoalesceMode::Off: return "off";
  }
  return "off";
}

std::optional<CoalesceMode> parseCoalesceMode(std::string_view text) {
  if (text == "share") return CoalesceMode::Share;
  if (text == "supersede") return CoalesceMode::Supersede;
  if (text == "off") return CoalesceMode::Off;
  return std::nullopt;
}

size_t Job::liveRequests() const {
  size_t n = 0;
  for (const auto& r : requests) n += r.live && r.kind != Attachment::Kind::Submitter ? 1 : 0;
  return n;
}

size_t Job::holders(uint64_t now_ns) const {
  return liveRequests() + (lease_expires_ns > now_ns ? 1 : 0);
}

std::string Job::status() const {
  if (outcome) {
    auto it = outcome->body.find("status");
    if (it != outcome->body.end() && it->is_string()) return it->get<std::string>();
    auto err = outcome->body.find("error");
    if (err != outcome->body.end() && err->is_string()) return err->get<std::string>();
    return "error";
  }
  return std::string(toString(state));
}

nlohmann::json Job::describe(uint64_t now_ns) const {
  auto ms = [](uint64_t from, uint64_t to) -> nlohmann::json {
    if (from == 0 || to == 0) return nullptr;
    return static_cast<double>(to - from) / 1e6;
  };
  nlohmann::json j{{"id", id},
                   {"state", toString(state)},
                   {"status", status()},
                   {"solver", spec.solver},
                   {"format", spec.format},
                   {"time_limit", spec.timeLimitSeconds()},
                   {"incumbents", incumbents},
                   {"cpu_ms", static_cast<double>(cpu_us) / 1000.0}};
  if (!key.empty()) j["key"] = key;
  if (!trace_id.empty()) j["trace_id"] = trace_id;
  j["age_ms"] = ms(created_ns, now_ns);
  j["queued_ms"] = ms(created_ns, started_ns);
  j["run_ms"] = ms(started_ns, finished_ns != 0 ? finished_ns : (started_ns != 0 ? now_ns : 0));
  auto reqs = nlohmann::json::array();
  size_t watchers = 0;
  for (const auto& r : requests) {
    if (r.kind == Attachment::Kind::Watcher) {
      watchers += r.live ? 1 : 0;
      continue;  // watchers come and go; their count is enough
    }
    nlohmann::json one{{"id", r.request_id}, {"live", r.live}};
    if (!r.trace_id.empty()) one["trace_id"] = r.trace_id;
    reqs.push_back(std::move(one));
  }
  j["requests"] = std::move(reqs);
  j["watchers"] = watchers;
  j["holders"] = holders(now_ns);
  if (detached()) {
    j["lease_ms"] = lease.count();
    j["lease_expires_in_ms"] = lease_expires_ns > now_ns ? static_cast<double>(lease_expires_ns - now_ns) / 1e6 : 0.0;
  }
  if (!last_incumbent.is_null()) j["incumbent"] = last_incumbent;
  if (worker_pid != 0) {
    j["worker_pid"] = worker_pid;
    j["worker_start"] = spare ? "spare" : "cold";
  }
  if (!cgroup.empty()) j["cgroup"] = cgroup;
  if (cancel) {
    j["cancel"] = {{"action", toString(cancel->action)},
                   {"reason", cancel->reason},
                   {"phase", cancel->phase},
                   {"received_ns", cancel->received_ns},
                   {"signalled_ns", cancel->signalled_ns},
                   {"killed_ns", cancel->killed_ns},
                   {"exited_ns", cancel->exited_ns},
                   {"received_to_signalled_ms", ms(cancel->received_ns, cancel->signalled_ns)},
                   {"received_to_exited_ms", ms(cancel->received_ns, cancel->exited_ns)}};
    if (!cancel_trace_id.empty()) j["cancel"]["trace_id"] = cancel_trace_id;
  }
  if (outcome) j["result"] = outcome->body;
  return j;
}

}  // namespace tether::solverd
