#!/bin/bash
# A solver service written as a shell script: one run per connection, the connection on stdin and
# stdout (inetd style), started by
#     systemd-socket-activate --inetd --accept --listen 127.0.0.1:8001 -E PATH -E TETHER_AGENT ./solve.sh
# or, as a system service, by a systemd socket unit with Accept=yes whose service runs this script.
#
#     POST /solve   body: a model in CPLEX LP format
#                   <- 200 and cbc's solution file, or 500 and cbc's output
#
# cbc runs under `tether-run --id "$REQUEST_ID"`, with REQUEST_ID from the X-Request-Id header
# that tether-proxy adds; when the client leaves, tether-proxy tells tether-agent, which stops
# that cbc. tether-run finds the agent through $TETHER_AGENT (unix:PATH).
set -u

reply() {  # reply CODE REASON FILE
    printf 'HTTP/1.1 %s %s\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' \
        "$1" "$2" "$(stat -c %s "$3")"
    cat "$3"
    exit 0
}

workdir=$(mktemp -d /tmp/solve-XXXXXX)
trap 'rm -rf "$workdir"' EXIT

# The request line and the header fields, up to the empty line (RFC 9112 section 2.1).
read -r method path _ || exit 0
length=0 request_id=
while IFS= read -r line; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    name=${line%%:*} value=${line#*:}
    value=${value#"${value%%[! ]*}"}  # the optional whitespace after the colon
    case "${name,,}" in
        content-length) length=$value ;;
        x-request-id) request_id=$value ;;
    esac
done

if [ "$method" != POST ] || [ "$path" != /solve ]; then
    echo "not found" > "$workdir/out"
    reply 404 "Not Found" "$workdir/out"
fi
head -c "$length" > "$workdir/model.lp"  # cbc reads LP format by the extension

if [ -n "$request_id" ]; then
    run=(tether-run --id "$request_id" --)
else
    run=()  # a client that came straight here: no id, cbc runs on its own
fi
if "${run[@]}" cbc "$workdir/model.lp" solve solu "$workdir/solution.txt" > "$workdir/out" 2>&1 &&
   [ -s "$workdir/solution.txt" ]; then
    reply 200 OK "$workdir/solution.txt"
fi
reply 500 "Internal Server Error" "$workdir/out"
