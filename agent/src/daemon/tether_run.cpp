// tether-run [--agent unix:PATH] --id ID [--require-agent] [--timeout MS] [--] CMD ARGS...
//
// Registers its own pid with tether-agent under ID, then execs CMD: the pid stays the same, so
// the agent has moved CMD's process into its cgroup before CMD starts, every child CMD forks is
// caught there, and CMD's exit status is tether-run's.
//
// Exit status 125 (as env(1) and nice(1) use it for their own failures) when CMD is not run:
// the ID was cancelled already (tombstoned), --require-agent and the agent could not be reached
// or refused, or a usage error. 126/127 when CMD cannot be executed / found (shell convention).
#include "agent_main.hpp"

#include "tether/agent/control/blocking_client.hpp"
#include "tether/agent/control/request_id.hpp"
#include "tether/common/trace_context.hpp"
#include "tether/config/cli.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace tether::agent::daemon {
namespace {

using namespace std::chrono_literals;

constexpr int kNotRun = 125;

struct RunOptions {
  std::string agent;  // socket path
  std::string id;
  bool require_agent = false;
  std::chrono::milliseconds timeout{2000};
  int command_index = 0;  // argv index of CMD
};

void usage(std::ostream& out) {
  out << "usage: tether-run [--agent unix:PATH] --id ID [--require-agent] [--timeout MS] [--] CMD ARGS...\n"
         "  Registers itself with tether-agent under ID, then runs CMD in its place (same pid).\n"
         "  --agent unix:PATH   the agent's control socket (default: $TETHER_AGENT, else the agent's\n"
         "                      built-in default, RUNTIME_DIR/agent.sock)\n"
         "  --require-agent     do not run CMD when the agent cannot be reached (exit 125)\n"
         "  --timeout MS        how long registering may take (default 2000)\n"
         "Exit status: CMD's; 125 when CMD was not run (ID cancelled, or --require-agent and no agent),\n"
         "126/127 when CMD cannot be executed / found.\n";
}

// Parses argv; nullopt after printing a usage error (or help, with *exit_code 0).
std::optional<RunOptions> parseArgs(int argc, char** argv, int* exit_code) {
  RunOptions o;
  auto value = [&](int& i, std::string_view arg, std::string_view name, std::string& out) {
    if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
      out = std::string(arg.substr(name.size() + 1));
      return true;
    }
    if (arg == name && i + 1 < argc) {
      out = argv[++i];
      return true;
    }
    return false;
  };
  int i = 1;
  std::string agent;
  std::string timeout;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      usage(std::cout);
      *exit_code = 0;
      return std::nullopt;
    }
    if (arg == "-V" || arg == "--version") {
      std::cout << config::versionLine("tether-run") << "\n";
      *exit_code = 0;
      return std::nullopt;
    }
    if (arg == "--require-agent") {
      o.require_agent = true;
    } else if (value(i, arg, "--agent", agent) || value(i, arg, "--id", o.id) || value(i, arg, "--timeout", timeout)) {
      continue;
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "tether-run: unknown option \"" << arg << "\"\n";
      usage(std::cerr);
      *exit_code = kNotRun;
      return std::nullopt;
    } else {
      break;
    }
  }
  if (o.id.empty() || i >= argc) {
    std::cerr << "tether-run: " << (o.id.empty() ? "--id ID is required" : "no command given") << "\n";
    usage(std::cerr);
    *exit_code = kNotRun;
    return std::nullopt;
  }
  o.command_index = i;
  // The one request-id rule (DESIGN.md "Request identity"), as the proxy and solverd apply it:
  // an id that breaks it is replaced by a generated one, which is said on stderr.
  if (const std::string_view given = o.id; !control::isValidRequestId(given)) {
    o.id = control::newRequestId();
    std::cerr << "tether-run: [warn] --id breaks the request id rule (1 to 128 visible ASCII bytes, no quotes or "
                 "backslash): registering as "
              << o.id << "\n";
  }
  if (agent.empty()) {
    const char* env = std::getenv("TETHER_AGENT");
    agent = env != nullptr && *env != '\0' ? env : "unix:" + config::defaultRuntimeDir() + "/agent.sock";
  }
  if (agent.rfind("unix:", 0) != 0) {
    std::cerr << "tether-run: --agent must be unix:PATH, not \"" << agent << "\"\n";
    *exit_code = kNotRun;
    return std::nullopt;
  }
  o.agent = agent.substr(5);
  if (!timeout.empty()) {
    char* end = nullptr;
    const long ms = std::strtol(timeout.c_str(), &end, 10);
    if (*end != '\0' || ms <= 0) {
      std::cerr << "tether-run: invalid --timeout \"" << timeout << "\"\n";
      *exit_code = kNotRun;
      return std::nullopt;
    }
    o.timeout = std::chrono::milliseconds(ms);
  }
  return o;
}

enum class Registration { Registered, Cancelled, Failed };

// The trace of the request this command serves: $TRACEPARENT, the environment carrier of W3C
// Trace Context that OpenTelemetry SDKs read and write for child processes. "" without a valid one.
std::string traceIdFromEnvironment() {
  const char* value = std::getenv("TRACEPARENT");
  if (value == nullptr) return {};
  auto parent = trace::parse(value);
  return parent ? parent->trace_id : std::string{};
}

// Registers this process. `why` says what failed.
Registration registerSelf(const RunOptions& o, std::string& why) {
  control::BlockingConnection c;
  if (int rc = c.connect(o.agent, o.timeout); rc != 0) {
    why = std::string("cannot connect: ") + std::strerror(-rc);
    return Registration::Failed;
  }
  // hello and register in one write; the replies come in order.
  const std::string bytes = control::encodeMessage(control::Hello{control::kProtocolVersion, "tether-run", {}}) +
                            control::encodeMessage(control::Register{o.id, std::nullopt, traceIdFromEnvironment()});
  if (int rc = c.sendRaw(bytes, o.timeout); rc != 0) {
    why = std::string("cannot send: ") + std::strerror(-rc);
    return Registration::Failed;
  }
  for (;;) {
    control::Message reply;
    control::ProtocolError perr;
    if (int rc = c.receive(reply, o.timeout, &perr); rc != 0) {
      why = rc == -EPROTO ? "bad reply: " + perr.message : std::string("no reply: ") + std::strerror(-rc);
      return Registration::Failed;
    }
    if (std::holds_alternative<control::Hello>(reply)) continue;
    if (const auto* ok = std::get_if<control::Registered>(&reply)) {
      (void)ok;
      return Registration::Registered;
    }
    if (const auto* err = std::get_if<control::Error>(&reply)) {
      why = std::string(control::errorCodeName(err->code)) + ": " + err->message;
      return err->code == control::ErrorCode::Cancelled ? Registration::Cancelled : Registration::Failed;
    }
    why = "unexpected reply \"" + std::string(control::typeName(reply)) + "\"";
    return Registration::Failed;
  }
}

}  // namespace

int tetherRunMain(int argc, char** argv) {
  int exit_code = kNotRun;
  auto options = parseArgs(argc, argv, &exit_code);
  if (!options) return exit_code;

  std::string why;
  switch (registerSelf(*options, why)) {
    case Registration::Registered:
      break;
    case Registration::Cancelled:
      std::cerr << "tether-run: [error] request " << options->id << " was cancelled before it started: not running "
                << argv[options->command_index] << "\n";
      return kNotRun;
    case Registration::Failed:
      if (options->require_agent) {
        std::cerr << "tether-run: [error] cannot register " << options->id << " with the agent at unix:" << options->agent
                  << " (" << why << "): not running " << argv[options->command_index] << " (--require-agent)\n";
        return kNotRun;
      }
      std::cerr << "tether-run: [warn] cannot register " << options->id << " with the agent at unix:" << options->agent
                << " (" << why << "): running " << argv[options->command_index] << " without supervision\n";
      break;
  }
  // The control socket was opened with SOCK_CLOEXEC and is closed by now (BlockingConnection's
  // destructor): CMD inherits nothing of ours.
  execvp(argv[options->command_index], argv + options->command_index);
  const int err = errno;
  std::cerr << "tether-run: cannot run " << argv[options->command_index] << ": " << std::strerror(err) << "\n";
  return err == ENOENT ? 127 : 126;
}

}  // namespace tether::agent::daemon
