#!/usr/bin/env python3
"""Checks that the wire contract is written once: every enum and constant of the protocol is
defined in agent/protocol/ and nowhere else in the product code (DESIGN.md "The parts").

    check_wire_contract.py SOURCE_DIR [SCAN_DIR...]

The protocol's enums are read from SOURCE_DIR/agent/protocol itself, so a new wire enum is
guarded as soon as it is written there. SCAN_DIR (default: SOURCE_DIR's agent, common, config,
proxy and solverd, without agent/protocol) is searched for copies:

  - an enum whose enumerators (a `k` prefix and case aside) are all a protocol enum's, two or
    more of them (`enum class CancelAction { kInterrupt, kKill }`, a job state of queued,
    running, finished), or all but one when three or more are shared (a phase or cause enum
    with one more value); an enum that shares a name or two with a vocabulary of its own (the
    proxy's `OnDisconnect { None, Close, Interrupt, Kill }`, the worker's outcome kinds) is not
    a copy;
  - a string literal that is a wire name of the protocol with a spelling no other vocabulary
    uses (the cancel reasons, phases, causes, worker statuses, error codes);
  - a number of the wire: a status code or exit code written as a digit, a frame bound.

Comments are ignored: they may name the contract. Exit 1 with one line per finding, else 0.
Tests and benchmarks are not scanned: asserting wire names is their job."""

import os
import re
import sys

ENUM_RE = re.compile(r"^[ \t]*enum\s+(?:class\s+|struct\s+)?(\w+)\s*(?::\s*[\w:]+\s*)?\{([^{}]*)\}", re.S | re.M)
WIRE_ENUM_RE = re.compile(r"^enum\s+(?:class\s+|struct\s+)?(\w+)\s*(?::\s*[\w:]+\s*)?\{([^{}]*)\}", re.S | re.M)
LITERAL_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')

# Wire names whose spelling belongs to the protocol alone. Generic words that other vocabularies
# also use ("running", "shutdown", "kill", "time_limit" the solve option, "api") are left out:
# the enum check covers their enums.
DISTINCT_NAMES = {
    # reasons
    "client_disconnect", "upstream_timeout", "lease_expired", "superseded",
    # phases and causes
    "request_headers", "request_body", "awaiting_response", "response_body", "write_error",
    # worker statuses
    "interrupted", "iteration_limit", "numerical_error", "infeasible", "unbounded",
    # control and worker error codes (the HTTP API's own codes share unknown_solver & co.)
    "bad_frame", "bad_message", "unknown_type", "invalid_model", "solver_error",
}

NUMBER_PATTERNS = [
    (re.compile(r'"status_code"\s*,\s*\d'), "a worker status code written as a number"),
    (re.compile(r"\bstatus_code\s*=\s*\d"), "a worker status code written as a number"),
    (re.compile(r"\bstatus\.code\s*[=!]=\s*\d"), "a worker exit code written as a number"),
    (re.compile(r"\b(?:1'048'576|1048576)\b"), "the control frame bound"),
    (re.compile(r"\bconstexpr\b[^;=]*\b\w*[Ff]rame\w*\s*=\s*[^;]*<<\s*30"), "the worker frame bound"),
]


def strip_comments(text):
    """Removes // and /* */ comments, keeping string literals and line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def enumerators(body):
    names = []
    for part in body.split(","):
        name = part.split("=")[0].strip()
        if not name:
            continue
        if re.match(r"k[A-Z]", name):  # kInterrupt -> Interrupt
            name = name[1:]
        names.append(name.replace("_", "").lower())
    return names


def sources(root):
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", "build")]
        for f in files:
            if f.endswith((".cpp", ".hpp", ".h", ".cc")):
                yield os.path.join(base, f)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    source = os.path.abspath(argv[1])
    protocol = os.path.join(source, "agent", "protocol")
    scans = [os.path.abspath(d) for d in argv[2:]] or [
        os.path.join(source, d) for d in ("agent", "common", "config", "proxy", "solverd")]

    # The wire enums: those at namespace scope of the protocol's public headers (the decoder's
    # and the client's own states are not on the wire).
    wire_enums = {}
    for path in sources(os.path.join(protocol, "include")):
        for m in WIRE_ENUM_RE.finditer(strip_comments(open(path, encoding="utf-8").read())):
            names = enumerators(m.group(2))
            if len(names) >= 2:
                wire_enums[m.group(1)] = set(names)
    if not wire_enums:
        print(f"FAILED: no protocol enums found under {protocol}")
        return 1

    findings = []
    for scan in scans:
        for path in sources(scan):
            if os.path.commonpath([path, protocol]) == protocol:
                continue
            text = strip_comments(open(path, encoding="utf-8").read())
            rel = os.path.relpath(path, source)
            line_of = lambda pos: text.count("\n", 0, pos) + 1
            for m in ENUM_RE.finditer(text):
                names = set(enumerators(m.group(2)))
                for wire, wire_names in wire_enums.items():
                    shared = names & wire_names
                    if len(shared) >= 2 and (shared == names or (len(shared) >= 3 and len(shared) >= len(names) - 1)):
                        findings.append(f"{rel}:{line_of(m.start())}: enum {m.group(1)} copies the protocol's "
                                        f"{wire} ({', '.join(sorted(shared))})")
            for m in LITERAL_RE.finditer(text):
                if m.group(1) in DISTINCT_NAMES:
                    findings.append(f"{rel}:{line_of(m.start())}: wire name \"{m.group(1)}\" written outside "
                                    "the protocol module")
            for pattern, what in NUMBER_PATTERNS:
                for m in pattern.finditer(text):
                    findings.append(f"{rel}:{line_of(m.start())}: {what}: {m.group(0).strip()}")

    for f in findings:
        print(f)
    if findings:
        print(f"FAILED: {len(findings)} wire definition(s) outside agent/protocol/ "
              f"(use the protocol's enums and names: tether/agent/control/vocabulary.hpp, request_id.hpp, "
              f"message.hpp, tether/solverd/worker/protocol.hpp)")
        return 1
    print(f"wire contract defined once: {len(wire_enums)} protocol enums, no copy in {len(scans)} tree(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
