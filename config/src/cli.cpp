// The daemons' shared command line: -c FILE, -t, -T, -V, -h (nginx's options and wording).
#include "tether/config/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace tether::config {
namespace {

constexpr std::string_view kPlaceholder = "${RUNTIME_DIR}";
constexpr std::string_view kDefaultName = "(built-in default)";

std::string envOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

void usage(std::ostream& out, const Schema& schema) {
  out << "Usage: " << schema.program << " [-c FILE] [-t | -T] [-V] [-h]\n\n"
      << "Options:\n"
      << "  -c FILE       use FILE as the configuration (default: a built-in one on loopback)\n"
      << "  -t            test the configuration and exit\n"
      << "  -T            test the configuration, print the effective configuration and exit\n"
      << "  -V            print the version and exit\n"
      << "  -h            print this help and exit\n"
      << "  --directives  print the directive reference (Markdown) and exit\n"
      << "  --directives=man  the same as roff, for the tether.conf(5) manual page\n\n"
      << "Directives:\n";
  for (const DirectiveSpec& spec : schema.directives) {
    out << "  " << spec.name << std::string(spec.name.size() < 24 ? 24 - spec.name.size() : 1, ' ')
        << spec.help << "\n";
  }
}

// Creates the built-in default's runtime directory (one level, mode 0700). A directory that
// exists must be ours: /tmp/tether-$UID could have been made by someone else first.
std::string ensureRuntimeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return {};
  const int mkdir_errno = errno;
  struct stat st {};
  if (mkdir_errno != EEXIST || ::lstat(dir.c_str(), &st) != 0) {
    return "mkdir() \"" + dir + "\" failed (" + std::to_string(mkdir_errno) + ": " +
           std::strerror(mkdir_errno) + ")";
  }
  if (!S_ISDIR(st.st_mode)) return "\"" + dir + "\" is not a directory";
  if (st.st_uid != ::geteuid()) return "\"" + dir + "\" is owned by another user";
  return {};
}

}  // namespace

std::string defaultRuntimeDir() {
  // systemd joins several RuntimeDirectory= entries with ':'; the first is the service's own.
  std::string runtime = envOrEmpty("RUNTIME_DIRECTORY");
  if (!runtime.empty()) return runtime.substr(0, runtime.find(':'));
  const std::string xdg = envOrEmpty("XDG_RUNTIME_DIR");
  if (!xdg.empty()) return xdg + "/tether";
  return "/tmp/tether-" + std::to_string(::geteuid());
}

std::string expandDefaults(std::string_view text, std::string_view runtime_dir) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (;;) {
    const size_t found = text.find(kPlaceholder, pos);
    out += text.substr(pos, found == std::string_view::npos ? std::string_view::npos : found - pos);
    if (found == std::string_view::npos) return out;
    out += runtime_dir;
    pos = found + kPlaceholder.size();
  }
}

std::string versionLine(std::string_view program) {
  return std::string(program) + " version " TETHER_CONFIG_VERSION;
}

LoadResult reload(const CommandLine& command_line, const Schema& schema,
                  std::string_view default_text) {
  if (!command_line.config_path.empty()) return load(command_line.config_path, schema);
  return loadString(expandDefaults(default_text, command_line.runtime_dir), kDefaultName, schema);
}

CommandLine parseCommandLine(int argc, const char* const* argv, const Schema& schema,
                             std::string_view default_text, std::ostream& out,
                             std::ostream& err) {
  const std::string& program = schema.program;
  CommandLine result;
  bool test = false;
  bool print = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "-?" || arg == "--help") {
      usage(out, schema);
      result.exit_code = 0;
      return result;
    }
    if (arg == "-V" || arg == "-v" || arg == "--version") {
      out << versionLine(program) << "\n";
      result.exit_code = 0;
      return result;
    }
    if (arg == "--directives") {
      out << referenceMarkdown(schema);
      result.exit_code = 0;
      return result;
    }
    if (arg == "--directives=man") {
      out << referenceRoff(schema);
      result.exit_code = 0;
      return result;
    }
    if (arg == "-t") {
      test = true;
    } else if (arg == "-T") {
      test = print = true;
    } else if (arg == "-c" || (arg.starts_with("-c") && arg.size() > 2)) {
      if (arg.size() > 2) {
        result.config_path = arg.substr(2);
      } else if (i + 1 < argc) {
        result.config_path = argv[++i];
      }
      if (result.config_path.empty()) {
        err << program << ": option \"-c\" requires file name\n";
        result.exit_code = 1;
        return result;
      }
    } else {
      err << program << ": invalid option: \"" << arg << "\"\n";
      usage(err, schema);
      result.exit_code = 1;
      return result;
    }
  }

  result.runtime_dir = defaultRuntimeDir();
  const std::string shown =
      result.config_path.empty() ? std::string(kDefaultName) : result.config_path;
  LoadResult loaded = reload(result, schema, default_text);
  if (!loaded) {
    err << loaded.error().format(program) << "\n";
    if (test) err << program << ": configuration file " << shown << " test failed\n";
    result.exit_code = 1;
    return result;
  }
  if (test) {
    err << program << ": the configuration file " << shown << " syntax is ok\n";
    err << program << ": configuration file " << shown << " test is successful\n";
    if (print) out << dump(loaded.config());
    result.exit_code = 0;
    return result;
  }
  if (result.config_path.empty()) {
    if (std::string why = ensureRuntimeDir(result.runtime_dir); !why.empty()) {
      err << program << ": [emerg] " << why << "\n";
      result.exit_code = 1;
      return result;
    }
  }
  result.config = loaded.config();
  return result;
}

CommandLine parseCommandLine(int argc, const char* const* argv, const Schema& schema,
                             std::string_view default_text) {
  return parseCommandLine(argc, argv, schema, default_text, std::cout, std::cerr);
}

}  // namespace tether::config
