#!/usr/bin/env python3
# Writes the bad-configuration corpus (tests/config/bad). Kept in the tree so that the files with
# bytes an editor would mangle (CRLF, a UTF-8 BOM) can be regenerated; the .conf files are the
# source of truth the test reads. Line 1 of each file: `# error: EXPECTED` (the file names in it
# relative to bad/); optional line 2: `# schema: proxy|solverd|agent` (default proxy).
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")

CASES = {
"01-unknown-directive.conf": '''# error: unknown directive "lisen" in 01-unknown-directive.conf:3:5
server {
    lisen 8080;
}
''',
"02-unknown-directive-top.conf": '''# error: unknown directive "worker_processes" in 02-unknown-directive-top.conf:3:1
error_log stderr;
worker_processes 4;
''',
"03-not-allowed-here.conf": '''# error: "proxy_pass" directive is not allowed here in 03-not-allowed-here.conf:3:5
server {
    proxy_pass http://solverd;
}
''',
"04-not-allowed-main.conf": '''# error: "listen" directive is not allowed here in 04-not-allowed-main.conf:2:1
listen 8080;
''',
"05-too-many-args.conf": '''# error: invalid number of arguments in "shutdown_timeout" directive in 05-too-many-args.conf:2:1
shutdown_timeout 30s 40s;
''',
"06-too-few-args.conf": '''# error: invalid number of arguments in "proxy_pass" directive in 06-too-few-args.conf:4:9
server {
    location /v1 {
        proxy_pass;
    }
}
''',
"07-duplicate.conf": '''# error: "shutdown_timeout" directive is duplicate in 07-duplicate.conf:3:1
shutdown_timeout 30s;
shutdown_timeout 40s;
''',
"08-duplicate-in-block.conf": '''# error: "keepalive" directive is duplicate in 08-duplicate-in-block.conf:5:5
upstream solverd {
    server 127.0.0.1:7070;
    keepalive 64;
    keepalive 32;
}
''',
"09-invalid-flag.conf": '''# error: invalid value "maybe" in "trust_request_id" directive, it must be "on" or "off" in 09-invalid-flag.conf:3:22
server {
    trust_request_id maybe;
}
''',
"10-invalid-enum.conf": '''# error: invalid value "explode" in "on_disconnect" directive, it must be "none", "close", "interrupt" or "kill" in 10-invalid-enum.conf:4:23
server {
    location / {
        on_disconnect explode;
    }
}
''',
"11-invalid-size.conf": '''# error: invalid value "64x" in "client_max_body_size" directive, it must be a size such as 512, 64k, 8m or 1g in 11-invalid-size.conf:3:26
server {
    client_max_body_size 64x;
}
''',
"12-size-overflow.conf": '''# error: invalid value "9223372036854775808" in "client_max_body_size" directive, it must be a size such as 512, 64k, 8m or 1g in 12-size-overflow.conf:3:26
server {
    client_max_body_size 9223372036854775808;
}
''',
"13-size-overflow-suffix.conf": '''# error: invalid value "8589934592g" in "client_max_body_size" directive, it must be a size such as 512, 64k, 8m or 1g in 13-size-overflow-suffix.conf:3:26
server {
    client_max_body_size 8589934592g;
}
''',
"14-invalid-duration.conf": '''# error: invalid value "5x" in "kill_after" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 14-invalid-duration.conf:4:20
server {
    location / {
        kill_after 5x;
    }
}
''',
"15-duration-overflow.conf": '''# error: invalid value "106751991168d" in "shutdown_timeout" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 15-duration-overflow.conf:2:18
shutdown_timeout 106751991168d;
''',
"16-duration-sum-overflow.conf": '''# error: invalid value "106751991167d1d" in "shutdown_timeout" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 16-duration-sum-overflow.conf:2:18
shutdown_timeout 106751991167d1d;
''',
"17-duration-wrong-order.conf": '''# error: invalid value "30s1m" in "shutdown_timeout" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 17-duration-wrong-order.conf:2:18
shutdown_timeout 30s1m;
''',
"18-duration-repeated-unit.conf": '''# error: invalid value "1m1m" in "shutdown_timeout" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 18-duration-repeated-unit.conf:2:18
shutdown_timeout 1m1m;
''',
"19-duration-unit-only.conf": '''# error: invalid value "ms" in "shutdown_timeout" directive, it must be a time such as 250ms, 10s, 5m, 1h, 1d or 1m30s in 19-duration-unit-only.conf:2:18
shutdown_timeout ms;
''',
"20-integer-out-of-range.conf": '''# error: invalid value "70000" in "keepalive" directive, it must be an integer from 0 to 65535 in 20-integer-out-of-range.conf:3:15
upstream solverd {
    keepalive 70000;
}
''',
"21-integer-overflow.conf": '''# error: invalid value "99999999999999999999" in "workers" directive, it must be an integer from 1 to 4096 in 21-integer-overflow.conf:3:9
# schema: solverd
workers 99999999999999999999;
''',
"22-invalid-port.conf": '''# error: invalid value "80800" in "listen" directive, invalid port in 22-invalid-port.conf:3:12
server {
    listen 80800;
}
''',
"23-v6-without-brackets.conf": '''# error: invalid value "::1:8080" in "listen" directive, IPv6 address without brackets in 23-v6-without-brackets.conf:3:12
server {
    listen ::1:8080;
}
''',
"24-unix-path-too-long.conf": '''# error: invalid value "unix:/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock" in "control" directive, unix socket path too long in 24-unix-path-too-long.conf:3:13
upstream solverd {
    control unix:/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock;
}
''',
"25-missing-semicolon-before-brace.conf": '''# error: unexpected "}" in 25-missing-semicolon-before-brace.conf:2:31
admin { listen 127.0.0.1:9901 }
''',
"26-missing-semicolon-newline.conf": '''# error: directive "shutdown_timeout" is not terminated by ";" in 26-missing-semicolon-newline.conf:2:1
shutdown_timeout 30s
error_log stderr info;
''',
"27-missing-closing-brace.conf": '''# error: unexpected end of file, expecting "}" in 27-missing-closing-brace.conf:5:1
server {
    listen 8080;
    location / { proxy_pass http://solverd; }
''',
"28-missing-semicolon-at-eof.conf": '''# error: unexpected end of file, expecting ";" or "}" in 28-missing-semicolon-at-eof.conf:2:21
shutdown_timeout 30s''',
"29-unexpected-close-brace.conf": '''# error: unexpected "}" in 29-unexpected-close-brace.conf:3:1
shutdown_timeout 30s;
}
''',
"30-unexpected-semicolon.conf": '''# error: unexpected ";" in 30-unexpected-semicolon.conf:2:22
shutdown_timeout 30s;;
''',
"31-unexpected-open-brace.conf": '''# error: unexpected "{" in 31-unexpected-open-brace.conf:2:1
{ shutdown_timeout 30s; }
''',
"32-block-without-brace.conf": '''# error: directive "server" has no opening "{" in 32-block-without-brace.conf:2:1
server;
''',
"33-plain-directive-with-brace.conf": '''# error: directive "shutdown_timeout" is not terminated by ";" in 33-plain-directive-with-brace.conf:2:1
shutdown_timeout 30s { }
''',
"34-unterminated-quote.conf": '''# error: unexpected end of file, expecting closing " in 34-unterminated-quote.conf:2:11
error_log "stderr info;
shutdown_timeout 30s;
''',
"35-text-after-quote.conf": '''# error: unexpected "x" in 35-text-after-quote.conf:2:19
error_log "stderr"x;
''',
"36-include-missing.conf": '''# error: open() "inc/missing.inc" failed (2: No such file or directory) in 36-include-missing.conf:2:9
include inc/missing.inc;
''',
"37-include-cycle.conf": '''# error: include cycle: "inc/cycle-a.inc" is already being read in inc/cycle-b.inc:2:9
include inc/cycle-a.inc;
''',
"38-include-self.conf": '''# error: include cycle: "38-include-self.conf" is already being read in 38-include-self.conf:3:9
shutdown_timeout 30s;
include 38-include-self.conf;
''',
"39-include-glob-error.conf": '''# error: unknown directive "lisen" in inc/glob-b.inc:2:1
server {
    include inc/glob-*.inc;
}
''',
"40-include-wrong-args.conf": '''# error: invalid number of arguments in "include" directive in 40-include-wrong-args.conf:2:1
include a.inc b.inc;
''',
"41-too-deep-nesting.conf": '''# error: too deep nesting of blocks and includes (at most 32) in 41-too-deep-nesting.conf:34:1
server {
''' + "location / {\n" * 40 + "}\n" * 41,
"42-crlf-unknown.conf": '# error: unknown directive "lisen" in 42-crlf-unknown.conf:3:5\r\nserver {\r\n    lisen 8080;\r\n}\r\n',
"43-bom-unknown.conf": '\ufeff# error: unknown directive "lisen" in 43-bom-unknown.conf:2:1\nlisen 8080;\n',
"44-location-without-args.conf": '''# error: invalid number of arguments in "location" directive in 44-location-without-args.conf:3:5
server {
    location { proxy_pass http://solverd; }
}
''',
"45-upstream-in-server.conf": '''# error: "upstream" directive is not allowed here in 45-upstream-in-server.conf:3:5
server {
    upstream solverd { server 127.0.0.1:7070; }
}
''',
"46-invalid-mode.conf": '''# error: invalid value "0990" in "mode" directive, it must be an octal file mode such as 0660 in 46-invalid-mode.conf:3:32
# schema: solverd
control { listen unix:/x; mode 0990; }
''',
"47-invalid-enum-solverd.conf": '''# error: invalid value "maybe" in "coalesce" directive, it must be "share", "supersede" or "off" in 47-invalid-enum-solverd.conf:3:10
# schema: solverd
coalesce maybe;
''',
"48-duplicate-across-include.conf": '''# error: "shutdown_timeout" directive is duplicate in inc/timeout.inc:2:1
shutdown_timeout 30s;
include inc/timeout.inc;
''',
"49-quoted-unknown-directive.conf": '''# error: unknown directive "lisen" in 49-quoted-unknown-directive.conf:3:5
server {
    "lisen" 8080;
}
''',
"50-tcp-keepalive-too-few.conf": '''# error: invalid number of arguments in "tcp_keepalive" directive in 50-tcp-keepalive-too-few.conf:3:5
server {
    tcp_keepalive 10s 5s;
}
''',
"51-tcp-keepalive-bad-count.conf": '''# error: invalid value "x" in "tcp_keepalive" directive, it must be an integer from 1 to 127 in 51-tcp-keepalive-bad-count.conf:3:26
server {
    tcp_keepalive 10s 5s x;
}
''',
"52-empty-size.conf": '''# error: invalid value "" in "client_max_body_size" directive, it must be a size such as 512, 64k, 8m or 1g in 52-empty-size.conf:3:26
server {
    client_max_body_size "";
}
''',
"53-agent-interrupt-bad.conf": '''# error: invalid value "email" in "interrupt" directive, it must be "signal" or "webhook" in 53-agent-interrupt-bad.conf:3:11
# schema: agent
interrupt email ops@example.com;
''',
"54-listen-in-location.conf": '''# error: "listen" directive is not allowed here in 54-listen-in-location.conf:4:9
server {
    location / {
        listen 8080;
    }
}
''',
"55-unknown-after-comment.conf": '''# error: unknown directive "shutdown_timeot" in 55-unknown-after-comment.conf:3:19
# a comment; with { braces } and "quotes
error_log stderr; shutdown_timeot 5s; # comment "with quotes
''',
"56-close-brace-in-include.conf": '''# error: unexpected "}" in inc/close-brace.inc:3:1
server {
    include inc/close-brace.inc;
}
''',
"57-unterminated-single-quote.conf": """# error: unexpected end of file, expecting closing ' in 57-unterminated-single-quote.conf:3:16
server {
    access_log 'x;
}
""",
"58-size-unknown-suffix.conf": '''# error: invalid value "1t" in "client_max_body_size" directive, it must be a size such as 512, 64k, 8m or 1g in 58-size-unknown-suffix.conf:3:26
server {
    client_max_body_size 1t;
}
''',
"59-level-invalid.conf": '''# error: invalid value "loud" in "error_log" directive, it must be "debug", "info", "notice", "warn", "error", "crit", "alert" or "emerg" in 59-level-invalid.conf:2:18
error_log stderr loud;
''',
"60-missing-brace-nested-eof.conf": '''# error: unexpected end of file, expecting "}" in 60-missing-brace-nested-eof.conf:4:35
server {
    location / {
        proxy_pass http://solverd;''',
}

INCLUDES = {
"cycle-a.inc": "# part of 37-include-cycle.conf\ninclude cycle-b.inc;\n",
"cycle-b.inc": "# part of 37-include-cycle.conf\ninclude cycle-a.inc;\n",
"glob-a.inc": "# part of 39-include-glob-error.conf (read first: glob order)\nlisten 8080;\n",
"glob-b.inc": "# part of 39-include-glob-error.conf\nlisen 8081;\n",
"timeout.inc": "# part of 48-duplicate-across-include.conf\nshutdown_timeout 40s;\n",
"close-brace.inc": "# part of 56-close-brace-in-include.conf\nlisten 8080;\n}\n",
}

for name, text in CASES.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(text.encode("utf-8"))
for name, text in INCLUDES.items():
    with open(os.path.join(HERE, "inc", name), "wb") as f:
        f.write(text.encode("utf-8"))
print(len(CASES), "bad cases")
