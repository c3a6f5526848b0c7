#!/bin/sh
# docs/directives.md is what the daemons' directive tables generate today
# (`cmake --build BUILD --target directives-doc` rewrites it; the package always carries a copy
# generated at build time, so a stale committed copy misleads only readers of the tree).
#   check_directives_doc.sh SOURCE_DIR BIN_DIR
# A stale copy fails, with the diff and the command to run: the directive tables and
# docs/directives.md change in the same commit (DESIGN.md), so a stale copy is a bug to fix, not
# something to skip past.
set -u
src=$1
bin=$2
for daemon in tether-proxy solverd tether-agent; do
    if [ ! -x "$bin/$daemon" ]; then
        echo "SKIP: $daemon is not built, so its part of the reference cannot be generated"
        exit 77
    fi
done
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
"$src/packaging/gen-directives-doc.sh" "$bin" - > "$generated" || exit 1
if [ ! -f "$src/docs/directives.md" ]; then
    echo "FAILED: docs/directives.md is missing: run cmake --build BUILD --target directives-doc"
    exit 1
fi
if ! diff -u "$src/docs/directives.md" "$generated"; then
    echo "FAILED: docs/directives.md is stale (diff above): run cmake --build BUILD --target directives-doc"
    exit 1
fi
echo "docs/directives.md matches the directive tables"
