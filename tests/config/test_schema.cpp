#include "test_schema.hpp"

namespace tether::config::testing {
namespace {

const std::vector<std::string> kMain{"main"};

DirectiveSpec errorLog() {
  return {"error_log", kMain, 1, 2, false, false,
          sequence({{}, oneOf({"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"})}),
          "stderr info", "where the log goes and from which level", "stderr | journal | FILE [LEVEL]"};
}

DirectiveSpec adminBlock() {
  return {"admin", kMain, 0, 0, true, false, {}, "", "the admin listener", "{ ... }"};
}

DirectiveSpec controlBlock() {
  return {"control", kMain, 0, 0, true, false, {}, "", "the control socket", "{ ... }"};
}

std::vector<DirectiveSpec> controlRows() {
  return {
      {"listen", {"control"}, 1, 1, false, false, addressValue(), "", "the control socket", "unix:PATH"},
      {"mode", {"control"}, 1, 1, false, false, modeValue(), "0660", "socket file mode", "MODE"},
      {"group", {"control"}, 1, 1, false, false, {}, "", "socket file group", "NAME"},
      {"allow", {"control"}, 2, 2, false, true, sequence({oneOf({"uid", "group"}), {}}), "",
       "SO_PEERCRED rule", "uid N | group NAME"},
  };
}

Schema makeProxy() {
  Schema s{"tether-proxy", {}};
  auto& d = s.directives;
  d.push_back(errorLog());
  d.push_back({"shutdown_timeout", kMain, 1, 1, false, false, durationValue(), "30s", "drain time", "TIME"});
  d.push_back(adminBlock());
  d.push_back({"listen", {"admin"}, 1, 1, false, true, addressValue(), "127.0.0.1:9901", "admin address", "ADDRESS"});
  d.push_back({"upstream", kMain, 1, 1, true, true, {}, "", "a group of upstream servers", "NAME"});
  d.push_back({"server", {"upstream"}, 1, 1, false, true, addressValue(), "", "an upstream server", "ADDRESS"});
  d.push_back({"keepalive", {"upstream"}, 1, 1, false, false, integerValue(0, 65535), "64", "idle connections kept", "N"});
  d.push_back({"control", {"upstream"}, 1, 1, false, false, addressValue(), "", "where cancel frames go", "unix:PATH"});
  d.push_back({"server", kMain, 0, 0, true, true, {}, "", "a virtual server", ""});
  d.push_back({"listen", {"server"}, 1, 1, false, true, addressValue(), "127.0.0.1:8080", "listening address", "ADDRESS"});
  d.push_back({"access_log", {"server"}, 1, 1, false, false, {}, "stderr", "access log", "FILE | stderr | off"});
  d.push_back({"request_id_header", {"server"}, 1, 1, false, false, {}, "X-Request-Id", "request id header", "NAME"});
  d.push_back({"trust_request_id", {"server"}, 1, 1, false, false, flagValue(), "off", "keep a client's id", "on | off"});
  d.push_back({"client_header_timeout", {"server"}, 1, 1, false, false, durationValue(), "10s", "header timeout", "TIME"});
  d.push_back({"client_max_body_size", {"server"}, 1, 1, false, false, sizeValue(), "64m", "body limit", "SIZE"});
  d.push_back({"keepalive_timeout", {"server"}, 1, 1, false, false, durationValue(), "75s", "idle keep-alive", "TIME"});
  d.push_back({"tcp_keepalive", {"server"}, 3, 3, false, false,
               sequence({durationValue(), durationValue(), integerValue(1, 127)}), "10s 5s 3",
               "TCP keepalive idle, interval, count", "IDLE INTERVAL COUNT"});
  d.push_back({"location", {"server", "location"}, 1, 2, true, true, {}, "", "a location", "[=] PREFIX"});
  d.push_back({"proxy_pass", {"location"}, 1, 1, false, false, {}, "", "the upstream", "http://NAME"});
  d.push_back({"on_disconnect", {"location"}, 1, 1, false, false, oneOf({"none", "close", "interrupt", "kill"}),
               "close", "what a client disconnect does", "none | close | interrupt | kill"});
  d.push_back({"kill_after", {"location"}, 1, 1, false, false, durationValue(), "5s", "grace", "TIME"});
  d.push_back({"half_close", {"location"}, 1, 1, false, false, oneOf({"abort", "wait"}), "abort", "half close", "abort | wait"});
  return s;
}

Schema makeSolverd() {
  Schema s{"solverd", {}};
  auto& d = s.directives;
  d.push_back(errorLog());
  d.push_back({"listen", kMain, 1, 1, false, true, addressValue(), "127.0.0.1:7070", "HTTP API", "ADDRESS"});
  d.push_back(controlBlock());
  for (auto& row : controlRows()) d.push_back(std::move(row));
  d.push_back(adminBlock());
  d.push_back({"listen", {"admin"}, 1, 1, false, true, addressValue(), "127.0.0.1:9902", "admin address", "ADDRESS"});
  d.push_back({"workers", kMain, 1, 1, false, false, integerValue(1, 4096), "2", "parallel solves", "N"});
  d.push_back({"queue_size", kMain, 1, 1, false, false, integerValue(0, 10000000), "1000", "waiting jobs", "N"});
  d.push_back({"worker_path", kMain, 1, 1, false, false, {}, "", "worker binary", "PATH"});
  d.push_back({"default_time_limit", kMain, 1, 1, false, false, durationValue(), "1h", "time limit", "TIME"});
  d.push_back({"max_grace", kMain, 1, 1, false, false, durationValue(), "60s", "grace cap", "TIME"});
  d.push_back({"tombstone_ttl", kMain, 1, 1, false, false, durationValue(), "30s", "tombstone life", "TIME"});
  d.push_back({"coalesce", kMain, 1, 1, false, false, oneOf({"share", "supersede", "off"}), "share", "coalescing", "MODE"});
  d.push_back({"cgroup_root", kMain, 1, 1, false, false, {}, "", "cgroup root", "PATH"});
  d.push_back({"job_memory_max", kMain, 1, 1, false, false, sizeValue(), "", "memory.max", "SIZE"});
  d.push_back({"job_cpu_max", kMain, 1, 1, false, false, integerValue(1, 4096), "", "cpu.max", "N"});
  d.push_back({"job_pids_max", kMain, 1, 1, false, false, integerValue(1, 4194304), "", "pids.max", "N"});
  return s;
}

Schema makeAgent() {
  Schema s{"tether-agent", {}};
  auto& d = s.directives;
  d.push_back(errorLog());
  d.push_back(controlBlock());
  for (auto& row : controlRows()) d.push_back(std::move(row));
  d.push_back(adminBlock());
  d.push_back({"listen", {"admin"}, 1, 1, false, true, addressValue(), "127.0.0.1:9903", "admin address", "ADDRESS"});
  d.push_back({"interrupt", kMain, 2, 2, false, false, sequence({oneOf({"signal", "webhook"}), {}}), "signal SIGINT",
               "how a target is asked to stop", "signal NAME | webhook URL"});
  d.push_back({"default_grace", kMain, 1, 1, false, false, durationValue(), "5s", "grace", "TIME"});
  d.push_back({"max_grace", kMain, 1, 1, false, false, durationValue(), "60s", "grace cap", "TIME"});
  d.push_back({"tombstone_ttl", kMain, 1, 1, false, false, durationValue(), "30s", "tombstone life", "TIME"});
  d.push_back({"cgroup_root", kMain, 1, 1, false, false, {}, "", "cgroup root", "PATH"});
  return s;
}

}  // namespace

const Schema& proxySchema() {
  static const Schema schema = makeProxy();
  return schema;
}

const Schema& solverdSchema() {
  static const Schema schema = makeSolverd();
  return schema;
}

const Schema& agentSchema() {
  static const Schema schema = makeAgent();
  return schema;
}

const Schema* schemaNamed(std::string_view name) {
  if (name == "proxy") return &proxySchema();
  if (name == "solverd") return &solverdSchema();
  if (name == "agent") return &agentSchema();
  return nullptr;
}

}  // namespace tether::config::testing
