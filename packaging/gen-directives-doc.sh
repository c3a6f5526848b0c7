#!/bin/sh
# Regenerates docs/directives.md from the directive tables of the three daemons: each one prints
# its own table as Markdown with `--directives` (config/'s referenceMarkdown), so the reference
# can never disagree with what the daemons accept.
#   gen-directives-doc.sh BIN_DIR OUTPUT       (the `directives-doc` target runs it)
#   gen-directives-doc.sh BIN_DIR -            (to stdout: tests/packaging compares)
set -eu
bin_dir=$1
out=$2

table=$(mktemp)
trap 'rm -f "$table"' EXIT

generate() {
    echo "# Directive reference"
    echo
    echo "Generated from the daemons' directive tables by packaging/gen-directives-doc.sh"
    echo "(\`cmake --build BUILD --target directives-doc\`); do not edit by hand."
    echo "Syntax, units and errors: DESIGN.md \"Configuration language\"."
    for daemon in tether-proxy solverd tether-agent; do
        echo
        # A daemon that cannot print its table leaves a note, never a failed build.
        if [ -x "$bin_dir/$daemon" ] && "$bin_dir/$daemon" --directives > "$table" 2>/dev/null; then
            cat "$table"
        elif [ -x "$bin_dir/$daemon" ]; then
            echo "## $daemon"
            echo
            echo "(not generated: \`$daemon --directives\` failed)"
        else
            echo "## $daemon"
            echo
            echo "(not generated: $daemon was not built)"
        fi
    done
}

if [ "$out" = "-" ]; then
    generate
else
    generate > "$out.tmp"
    mv "$out.tmp" "$out"
fi
