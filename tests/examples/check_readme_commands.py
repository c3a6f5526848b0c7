#!/usr/bin/python3
"""Every command block of the README names only what the tree has.

    check_readme_commands.py SOURCE_DIR [MARKDOWN...]     default: README.md, examples/*/README.md
    check_readme_commands.py --self-test SOURCE_DIR       plants bad names, expects each to fail

In each fenced block (``` or ~~~) of each file:
  - a path under scripts/ bench/ examples/ packaging/ tests/ docs/ cmake/ (with or without ./,
    or after curl's @) must exist in the source tree;
  - build*/bin/NAME, a word after `--target`, and a command word that starts with tether- or
    solverd (tether-proxy, tether-agent, tether-run, solverd, solverd-worker, ...) must be a target
    that the CMake files define;
  - a systemd unit named tether-*/solverd* (.service, .socket) must have packaging/systemd/UNIT.in.
Prints every miss as FILE:LINE and exits 1 if there is one.
"""
import glob
import os
import re
import shutil
import sys
import tempfile

PATH_RX = re.compile(r"(?<![\w/.-])(?:\./)?((?:scripts|bench|examples|packaging|tests|docs|cmake)/[\w./*@+-]*)")
BIN_RX = re.compile(r"(?<![\w/.-])(?:\./)?build[\w.-]*/bin/([\w.+-]+)")
TARGET_RX = re.compile(r"--target((?:\s+[\w.+-]+)+)")
UNIT_RX = re.compile(r"\b((?:tether-[\w-]+|solverd)\.(?:service|socket))\b")
# A command word: at the start of a line or after a shell separator, past env assignments and
# the words that run another command.
COMMAND_RX = re.compile(r"(?:^|[;&|(]|\$\()\s*(?:(?:sudo|exec|env|nohup|time)\s+|[A-Za-z_]\w*=\S*\s+)*"
                        r"((?:tether|solverd)[\w.+-]*)")


def cmake_targets(source_dir):
    targets = set()
    rx = re.compile(r"\b(?:add_executable|add_custom_target|add_library|tether_add_gtest|tether_add_\w+)\(\s*([\w.+-]+)")
    for pattern in ("**/CMakeLists.txt", "**/*.cmake"):
        for path in glob.glob(os.path.join(source_dir, pattern), recursive=True):
            rel = os.path.relpath(path, source_dir)
            if rel.startswith(("build", ".")):
                continue
            with open(path, errors="replace") as f:
                targets.update(rx.findall(f.read()))
    return targets


def command_blocks(text):
    """(line number, line) of every line inside a fenced block."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            inside = not inside
            continue
        if inside:
            yield number, line


def path_exists(source_dir, rel):
    rel = rel.rstrip(".,:;)")
    if any(c in rel for c in "*?["):
        return bool(glob.glob(os.path.join(source_dir, rel))) or os.path.isdir(
            os.path.join(source_dir, os.path.dirname(rel)))
    return os.path.exists(os.path.join(source_dir, rel))


def check_file(source_dir, markdown, targets):
    misses = []
    with open(markdown) as f:
        text = f.read()
    name = os.path.relpath(markdown, source_dir) if markdown.startswith(source_dir) else markdown
    for number, line in command_blocks(text):
        code = line.split(" #", 1)[0]  # a shell comment is prose
        where = f"{name}:{number}"
        for rel in PATH_RX.findall(code):
            if not path_exists(source_dir, rel):
                misses.append(f"{where}: {rel} is not in the tree")
        for target in BIN_RX.findall(code):
            if target not in targets:
                misses.append(f"{where}: build/bin/{target}: the build defines no target {target}")
        for group in TARGET_RX.findall(code):
            for target in group.split():
                if target not in targets:
                    misses.append(f"{where}: --target {target}: the build defines no such target")
        for word in COMMAND_RX.findall(code):
            if word not in targets:
                misses.append(f"{where}: {word}: no binary of the tree has that name")
        for unit in UNIT_RX.findall(code):
            if not os.path.exists(os.path.join(source_dir, "packaging", "systemd", unit + ".in")):
                misses.append(f"{where}: {unit}: packaging/systemd/ has no such unit")
    return misses


def default_files(source_dir):
    return [os.path.join(source_dir, "README.md")] + sorted(
        glob.glob(os.path.join(source_dir, "examples", "*", "README.md")))


def check(source_dir, files):
    targets = cmake_targets(source_dir)
    misses = [m for path in files for m in check_file(source_dir, path, targets)]
    for m in misses:
        print(m)
    return misses


def self_test(source_dir):
    """Each planted line must be reported; the unplanted README must pass."""
    planted = [
        "./scripts/rnu",
        "bench/abandoned_solve.shh",
        "build-release/bin/tether-proxyy -c proxy.conf",
        "cmake --build build --target tether-agent tether-rnu",
        "TETHER_AGENT=unix:/x tether-agnet -c examples/python-service/agent.conf",
        "curl --data-binary @tests/solverd/models/knapsak.lp localhost:8080/solve",
        "systemctl enable --now tether-proxxy.socket",
    ]
    targets = cmake_targets(source_dir)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for line in planted:
            path = os.path.join(tmp, "README.md")
            with open(path, "w") as f:
                f.write(f"# planted\n\n```\n{line}\n```\n")
            misses = check_file(source_dir, path, targets)
            print(f"planted `{line}`: {misses[0] if misses else 'NOT REPORTED'}")
            failures += not misses
    if check(source_dir, default_files(source_dir)):
        print("the README itself does not pass")
        failures += 1
    return 1 if failures else 0


def main():
    if sys.argv[1] == "--self-test":
        return self_test(os.path.abspath(sys.argv[2]))
    source_dir = os.path.abspath(sys.argv[1])
    files = [os.path.abspath(p) for p in sys.argv[2:]] or default_files(source_dir)
    misses = check(source_dir, files)
    if not misses:
        print(f"{len(files)} file(s): every command block names what the tree has")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
