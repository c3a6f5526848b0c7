#!/bin/sh
# Builds the manual pages from packaging/man/*.in: tether-proxy(8), solverd(8), tether-agent(8),
# tether-run(1), and tether.conf(5), whose DIRECTIVES section each daemon prints from its own
# directive table (`--directives=man`), the table docs/directives.md comes from, so the two
# references cannot drift. The date and version come from debian/changelog, so that the same
# tree gives the same pages (reproducible builds).
#   gen-man-pages.sh BIN_DIR MAN_SOURCE_DIR CHANGELOG OUT_DIR
# OUT_DIR gets each page plain (for `man -l`) and as NAME.gz (gzip -9n, as Debian policy 12.1 asks).
set -eu
bin_dir=$1
src=$2
changelog=$3
out=$4

version=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$changelog")
# The trailer line of the newest entry: " -- NAME <MAIL>  Mon, 30 Nov 2026 08:00:00 +0000".
stamp=$(sed -n 's/^ -- .*>  //p' "$changelog" | head -n 1)
date=$(date -u -d "$stamp" +%Y-%m-%d)

mkdir -p "$out"
directives=$(mktemp)
trap 'rm -f "$directives"' EXIT
for daemon in tether-proxy solverd tether-agent; do
    if [ -x "$bin_dir/$daemon" ] && "$bin_dir/$daemon" --directives=man >> "$directives" 2>/dev/null; then
        :
    else
        printf '.SS %s\n(not generated: %s was not built)\n' "$daemon" "$daemon" | sed 's/-/\\-/g' >> "$directives"
    fi
done

for template in "$src"/*.in; do
    page=$(basename "$template" .in)
    awk -v version="$version" -v date="$date" -v options="$src/common-options.roff" \
        -v directives="$directives" '
        $0 == "@TETHER_MAN_COMMON_OPTIONS@" { while ((getline l < options) > 0) print l; close(options); next }
        $0 == "@TETHER_MAN_DIRECTIVES@" { while ((getline l < directives) > 0) print l; close(directives); next }
        { gsub(/@PROJECT_VERSION@/, version); gsub(/@TETHER_MAN_DATE@/, date); print }
    ' "$template" > "$out/$page.tmp"
    mv "$out/$page.tmp" "$out/$page"
    gzip -9nc "$out/$page" > "$out/$page.gz"
done
