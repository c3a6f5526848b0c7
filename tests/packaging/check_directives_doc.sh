#!/bin/sh
# docs/directives.md is what the daemons' directive tables generate today
# (`cmake --build BUILD --target directives-doc` rewrites it).
#   check_directives_doc.sh SOURCE_DIR BIN_DIR
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
if ! diff -u "$src/docs/directives.md" "$generated"; then
    echo "docs/directives.md is stale: run cmake --build BUILD --target directives-doc"
    exit 1
fi
echo "docs/directives.md matches the directive tables"
