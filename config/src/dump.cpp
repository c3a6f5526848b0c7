// -T's effective configuration and the directive reference (Markdown for docs/directives.md, roff
// for the tether.conf(5) manual page), both from the same table so that they cannot drift.
#include <sstream>

#include "storage.hpp"

namespace tether::config {

bool needsQuotes(std::string_view arg) {
  if (arg.empty()) return true;
  if (arg.front() == '"' || arg.front() == '\'') return true;
  for (char c : arg) {
    switch (c) {
      case ' ': case '\t': case '\r': case '\n': case ';': case '{': case '}': case '#':
      case '\\': return true;
      default: break;
    }
  }
  return false;
}

std::string quote(std::string_view arg) {
  if (!needsQuotes(arg)) return std::string(arg);
  std::string out = "\"";
  for (char c : arg) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      default: out += c; break;
    }
  }
  return out + "\"";
}

namespace {

void dumpDirective(std::ostringstream& out, std::string_view name,
                   const std::vector<std::string_view>& args, int indent) {
  out << std::string(static_cast<size_t>(indent) * 4, ' ') << name;
  for (std::string_view arg : args) out << ' ' << quote(arg);
}

void dumpBlock(std::ostringstream& out, const Block& block, const Schema& schema, int indent) {
  for (const Directive& directive : block.directives()) {
    dumpDirective(out, directive.name, directive.args, indent);
    if (directive.block) {
      out << " {\n";
      dumpBlock(out, *directive.block, schema, indent + 1);
      out << std::string(static_cast<size_t>(indent) * 4, ' ') << "}\n";
    } else {
      out << ";\n";
    }
  }
  for (const DirectiveSpec& spec : schema.directives) {
    if (spec.block || spec.default_value.empty() || block.has(spec.name)) continue;
    bool here = false;
    for (const std::string& context : spec.contexts) here = here || context == block.context();
    if (!here) continue;
    dumpDirective(out, spec.name, splitWords(spec.default_value), indent);
    out << ";  # default\n";
  }
}

std::string contextList(const DirectiveSpec& spec) {
  std::string out;
  for (const std::string& context : spec.contexts) {
    if (!out.empty()) out += ", ";
    out += "`" + context + "`";
  }
  return out;
}

// Text for a roff line: a backslash is `\e`, and a leading `.` or `'` would be read as a
// request (groff(7) "Control characters"), so it is shielded with `\&`.
std::string roffText(std::string_view text) {
  std::string out;
  if (text.starts_with('.') || text.starts_with('\'')) out += "\\&";
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";  // a real minus (lintian: hyphen-used-as-minus-sign), as in option names
    } else if (c == '`') {
      continue;  // Markdown code marks in help texts
    } else {
      out += c;
    }
  }
  return out;
}

// "`main`, `server`" without the Markdown marks.
std::string plainContextList(const DirectiveSpec& spec) {
  std::string out;
  for (const std::string& context : spec.contexts) {
    if (!out.empty()) out += ", ";
    out += context;
  }
  return out;
}

}  // namespace

std::string dump(const Config& config) {
  std::ostringstream out;
  out << "# " << config.schema().program << ": the effective configuration, from";
  for (std::string_view file : config.files()) out << ' ' << file;
  out << "\n";
  dumpBlock(out, config.root(), config.schema(), 0);
  return out.str();
}

std::string referenceMarkdown(const Schema& schema) {
  std::ostringstream out;
  out << "## " << schema.program << "\n\n";
  out << "| directive | context | default | |\n|---|---|---|---|\n";
  for (const DirectiveSpec& spec : schema.directives) {
    out << "| [`" << spec.name << "`](#" << schema.program << "-" << spec.name << ") | "
        << contextList(spec) << " | "
        << (spec.default_value.empty() ? "" : "`" + spec.default_value + "`") << " | "
        << spec.help << " |\n";
  }
  out << "\n";
  for (const DirectiveSpec& spec : schema.directives) {
    out << "### <a id=\"" << schema.program << "-" << spec.name << "\"></a>`" << spec.name
        << "`\n\n";
    out << "- Syntax: `" << spec.name;
    if (!spec.syntax.empty()) out << ' ' << spec.syntax;
    // A block's syntax may already show its braces ("{ ... }"); add them only if it does not.
    if (!spec.block) {
      out << ";`\n";
    } else if (spec.syntax.ends_with('}')) {
      out << "`\n";
    } else {
      out << " { ... }`\n";
    }
    if (!spec.default_value.empty()) {
      out << "- Default: `" << spec.name << ' ' << spec.default_value << ";`\n";
    } else {
      out << "- Default: none\n";
    }
    out << "- Context: " << contextList(spec) << "\n";
    if (spec.multiple) out << "- May appear more than once.\n";
    out << "\n" << spec.help << "\n\n";
  }
  return out.str();
}

std::string referenceRoff(const Schema& schema) {
  std::ostringstream out;
  out << ".SS " << roffText(schema.program) << "\n";
  for (const DirectiveSpec& spec : schema.directives) {
    out << ".TP\n\\fB" << roffText(spec.name) << "\\fR";
    if (!spec.syntax.empty()) out << " " << roffText(spec.syntax);
    if (!spec.block) {
      out << ";";
    } else if (!spec.syntax.ends_with('}')) {
      out << " { ... }";
    }
    out << "\n" << roffText(spec.help) << ".\n.br\n";
    if (!spec.default_value.empty()) {
      out << "Default: \\fB" << roffText(spec.name) << " " << roffText(spec.default_value)
          << ";\\fR\n.br\n";
    } else {
      out << "Default: none.\n.br\n";
    }
    out << "Context: " << roffText(plainContextList(spec)) << ".";
    if (spec.multiple) out << " May appear more than once.";
    out << "\n";
  }
  return out.str();
}

}  // namespace tether::config
