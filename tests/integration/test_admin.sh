#!/bin/sh
# proxy/admin.c over real sockets: tests/integration/admin_probe.c serves
# the admin endpoint on 127.0.0.1:$ADMIN_PORT (default 19925) with a few
# metrics set; a Python client checks each answer, promtool (Debian's
# prometheus package) checks the live /metrics text, and the slow and
# crowded clients check the deadline and the connection limit while
# /healthz keeps answering.  Needs python3 and /usr/bin/promtool.
set -u
cd "$(dirname "$0")/../.." || exit 1

PORT=${ADMIN_PORT:-19925}
PROBE=build/admin_probe
passed=0
failed=0
tmp=$(mktemp -d)
pid=

# shellcheck disable=SC2317 # called through trap
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() {
	echo "ok  $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1"
	failed=$((failed + 1))
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# check NAME H-ARGS...: run the Python helper; its output shows on failure.
check() {
	name=$1
	shift
	if out=$(python3 "$tmp/h.py" "$PORT" "$@" 2>&1); then
		ok "$name"
	else
		fail "$name"
		printf '%s\n' "$out" | head -n 30 | sed 's/^/    /'
	fi
}

# ---------------------------------------------------------------- client
cat >"$tmp/h.py" <<'EOF'
import socket, sys, time, threading

PORT = int(sys.argv[1])
CMD = sys.argv[2]
ARGS = sys.argv[3:]

def die(why):
    print(why)
    sys.exit(1)

# LATE: seconds an answer or a timer may be late on a busy machine (as
# lib.sh's DEADLINE_LATE): waits and bounds allow that, not more.
LATE = 3.0

def conn(timeout=10.0):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.settimeout(timeout)
    return s

def read_all(s):
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            die("connection reset; got so far: %r" % data[:300])
        if not b:
            return data
        data += b

def exchange(raw, timeout=10.0):
    s = conn(timeout)
    s.sendall(raw)
    data = read_all(s)
    s.close()
    return parse(data)

def parse(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        die("no complete response: %r" % data[:300])
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 3 or parts[0] != "HTTP/1.1":
        die("bad status line %r" % lines[0])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(parts[1]), hdrs, body

def expect(status, hdrs, body, want_status, want_body=None, head=False):
    if status != want_status:
        die("status %d, want %d; body %r" % (status, want_status, body[:200]))
    if hdrs.get("connection") != "close":
        die("Connection: %r" % hdrs.get("connection"))
    cl = hdrs.get("content-length")
    if cl is None or not cl.isdigit():
        die("Content-Length: %r" % cl)
    if not head and int(cl) != len(body):
        die("Content-Length %s, body %d bytes" % (cl, len(body)))
    if head and body:
        die("HEAD answered with a body: %r" % body[:100])
    if want_body is not None and body != want_body.encode():
        die("body %r, want %r" % (body, want_body))

def req(method, path, extra=""):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" %
            (method, path, extra)).encode()

def healthz_ms():
    t = time.monotonic()
    st, h, b = exchange(req("GET", "/healthz"))
    if st != 200 or b != b"ok\n":
        die("/healthz: %d %r" % (st, b))
    return (time.monotonic() - t) * 1000

if CMD == "get":            # get PATH STATUS [BODY]
    st, h, b = exchange(req("GET", ARGS[0]))
    expect(st, h, b, int(ARGS[1]), ARGS[2] if len(ARGS) > 2 else None)
    if h.get("content-type") != "text/plain; charset=utf-8":
        die("Content-Type %r" % h.get("content-type"))
elif CMD == "head":         # head PATH STATUS
    st, h, b = exchange(req("HEAD", ARGS[0]))
    expect(st, h, b, int(ARGS[1]), head=True)
    if int(h["content-length"]) == 0:
        die("HEAD: Content-Length 0")
elif CMD == "raw":          # raw PYTHON-BYTES-LITERAL STATUS
    st, h, b = exchange(eval(ARGS[0]))
    expect(st, h, b, int(ARGS[1]))
elif CMD == "method":       # method METHOD PATH: 405 with Allow
    st, h, b = exchange(req(ARGS[0], ARGS[1], "Content-Length: 5\r\n") +
                        b"hello")
    expect(st, h, b, 405, "method not allowed\n")
    if h.get("allow") != "GET, HEAD":
        die("Allow: %r" % h.get("allow"))
elif CMD == "metrics":      # metrics PATH FILE: 200, the type, body saved
    st, h, b = exchange(req("GET", ARGS[0]))
    expect(st, h, b, 200)
    want = "text/plain; version=0.0.4; charset=utf-8"
    if h.get("content-type") != want:
        die("Content-Type %r, want %r" % (h.get("content-type"), want))
    open(ARGS[1], "wb").write(b)
elif CMD == "big":          # a head over 8 KiB: 431, then closed
    st, h, b = exchange(req("GET", "/metrics", "X-Big: %s\r\n" % ("a" * 9000)))
    expect(st, h, b, 431)
elif CMD == "big-nolf":     # 9 KiB and no end of line at all
    st, h, b = exchange(b"GET /" + b"a" * 9000)
    expect(st, h, b, 431)
elif CMD == "early-eof":    # half a head, then our side shut: 400
    s = conn()
    s.sendall(b"GET /metr")
    s.shutdown(socket.SHUT_WR)
    st, h, b = parse(read_all(s))
    expect(st, h, b, 400)
elif CMD == "split":        # a request in pieces, slowly but in time
    s = conn()
    for piece in (b"GE", b"T /hea", b"lthz HTTP/1.1\r", b"\nHost: x\r\n",
                  b"\r\n"):
        s.sendall(piece)
        time.sleep(0.2)
    st, h, b = parse(read_all(s))
    expect(st, h, b, 200, "ok\n")
elif CMD == "slowloris":    # dripping a head: closed at the deadline (5 s)
    s = conn(timeout=5 + 2 * LATE)
    start = time.monotonic()
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    closed = None
    worst = 0.0
    while time.monotonic() - start < 5 + 2 * LATE:
        try:
            s.sendall(b"X")
            s.settimeout(0.25)
            b = s.recv(100)
            if b == b"":
                closed = time.monotonic() - start
                break
            die("got an answer to half a head: %r" % b)
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = time.monotonic() - start
            break
        worst = max(worst, healthz_ms())
    if closed is None:
        die("still open after %.0f s" % (5 + 2 * LATE))
    if not 4.5 <= closed <= 5 + LATE:
        die("closed after %.2f s, want 5 (-0.5/+%.0f)" % (closed, LATE))
    # Had the slow client blocked the loop, /healthz would wait for its
    # deadline.
    if worst > LATE * 1000:
        die("/healthz took %.0f ms during the slow client" % worst)
    print("closed after %.2f s; /healthz at most %.0f ms" % (closed, worst))
elif CMD == "limit":        # 64 idle clients: the 65th is closed at once
    idle = [conn() for _ in range(64)]
    time.sleep(0.3)
    extra = conn()
    t = time.monotonic()
    try:
        extra.sendall(req("GET", "/healthz"))
        b = extra.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        b = b""
    if b != b"":
        die("the 65th connection was answered: %r" % b)
    if time.monotonic() - t > LATE:
        die("the 65th connection was not closed at once")
    for s in idle:
        s.close()
    time.sleep(0.3)
    healthz_ms()
elif CMD == "many":         # a burst of requests, all answered
    errs = []
    def one():
        try:
            st, h, b = exchange(req("GET", "/metrics"))
            if st != 200:
                errs.append(st)
        except Exception as e:
            errs.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(40)]
    for t in ts: t.start()
    for t in ts: t.join()
    if errs:
        die("errors: %r" % errs[:5])
else:
    die("unknown command " + CMD)
EOF

# ---------------------------------------------------------------- build
mkdir -p build
if ! cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation \
    -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Iproxy -Ipolicy -o "$PROBE" tests/integration/admin_probe.c \
    proxy/admin.c proxy/metrics.c -lev -lm; then
	fail "build admin_probe"
	finish
fi

# ---------------------------------------------------------------- start
"$PROBE" "$PORT" >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
i=0
while ! grep -q listening "$tmp/stdout" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 1200 ] || ! kill -0 "$pid" 2>/dev/null; then
		fail "start admin_probe on 127.0.0.1:$PORT"
		sed 's/^/    /' "$tmp/stderr"
		pid=
		finish
	fi
	sleep 0.05
done

# ---------------------------------------------------------------- checks
check "healthz 200" get /healthz 200 "ok
"
check "readyz 200 when ready" get /readyz 200 "ready
"
# ready_is STATUS: until /readyz answers STATUS (the probe has taken the
# signal), at most 30 s.
ready_is() {
	i=0
	until python3 "$tmp/h.py" "$PORT" get /readyz "$1" >/dev/null 2>&1 || [ $i -ge 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
kill -USR1 "$pid"
ready_is 503
check "readyz 503 when not ready" get /readyz 503 "not ready
"
kill -USR1 "$pid"
ready_is 200
check "readyz 200 again" get /readyz 200 "ready
"
check "metrics 200 with the exposition type" metrics /metrics "$tmp/m1"
if [ ! -x /usr/bin/promtool ]; then
	fail "promtool check metrics (/usr/bin/promtool missing: apt-get install prometheus)"
elif promtool check metrics <"$tmp/m1" >"$tmp/promtool" 2>&1; then
	ok "promtool check metrics"
else
	fail "promtool check metrics"
	sed 's/^/    /' "$tmp/promtool" | head -n 20
fi
want='mxtls_deliveries_total{outcome="fallback",profile="we\"ird\\name\nx?"} 1'
if grep -qxF "$want" "$tmp/m1" &&
    grep -qx 'mxtls_tls_handshake_seconds_bucket{le="0.25"} 1' "$tmp/m1" &&
    grep -qx 'mxtls_tls_handshake_seconds_bucket{le="+Inf"} 2' "$tmp/m1" &&
    grep -qx 'mxtls_policy_age_seconds{source="never"} +Inf' "$tmp/m1" &&
    grep -qx '# TYPE mxtls_sessions_refused_total counter' "$tmp/m1"; then
	ok "metrics text"
else
	fail "metrics text"
	sed 's/^/    /' "$tmp/m1" | head -n 60
fi
check "metrics with a query string" metrics "/metrics?x=1" "$tmp/m2"
check "HEAD metrics" head /metrics 200
check "HEAD healthz" head /healthz 200
check "404 other path" get /nope 404 "not found
"
check "404 metrics/" get /metrics/ 404
check "405 POST" method POST /metrics
check "405 DELETE" method DELETE /healthz
check "400 malformed" raw 'b"HELLO\r\n\r\n"' 400
check "400 bad header" raw 'b"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n"' 400
check "505 HTTP/2.0" raw 'b"GET /healthz HTTP/2.0\r\n\r\n"' 505
check "LF line ends" raw 'b"GET /healthz HTTP/1.0\n\n"' 200
check "absolute-form" raw 'b"GET http://127.0.0.1/healthz HTTP/1.1\r\n\r\n"' 200
check "431 head over 8 KiB" big
check "431 request line over 8 KiB" big-nolf
check "400 on EOF inside the head" early-eof
check "request in pieces" split
check "burst of 40 scrapes" many
check "connection limit 64" limit
check "slowloris closed at the deadline, healthz answers" slowloris
check "healthz after all that" get /healthz 200 "ok
"

# The 10 ms tick never waited long: nothing above blocked the loop (a
# blocked loop waits for a deadline, 5 s; a busy machine delays a tick by
# less than lib.sh's DEADLINE_LATE, 3 s).
python3 "$tmp/h.py" "$PORT" metrics /metrics "$tmp/m3" >/dev/null 2>&1
gap=$(sed -n 's/^mxtls_policy_age_seconds{source="max_tick_gap"} //p' "$tmp/m3")
if [ -n "$gap" ] && awk "BEGIN { exit !($gap < 3) }"; then
	ok "loop never blocked (longest tick gap ${gap}s)"
else
	fail "loop never blocked (longest tick gap '${gap}')"
fi

# ---------------------------------------------------------------- stop
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
	fail "SIGTERM stops the probe"
else
	wait "$pid"
	rc=$?
	pid=
	if [ "$rc" -eq 0 ] && ! grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' \
	    "$tmp/stderr"; then
		ok "SIGTERM: exit 0, no sanitizer report"
	else
		fail "SIGTERM: exit $rc"
		sed 's/^/    /' "$tmp/stderr" | head -n 40
	fi
fi
finish
