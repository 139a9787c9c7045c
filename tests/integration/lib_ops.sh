# Helpers of test_ops.sh (docs/behaviour.md section 9: operating mxtls).
# Source it after lib.sh; call ops_init after it_setup:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_ops.sh"
#	it_setup
#	ops_init
#	ops_start proxy='max_sessions = 2' policy='retry_delay = 1' <<EOF ... EOF
#
# lib.sh's mxtls_start writes a fixed [proxy] section (a second [proxy] from
# stdin is a duplicate section, and config=FILE cannot know the port it
# picks), so these tests write their own config with extra [proxy] keys.
# The state_dir is NOT created beforehand: mxtls must create it (mode 0700).

# ops_init: the helper programs, written to $W.
ops_init() {
	OPSC=$W/opsc.py
	cat >"$OPSC" <<'EOF'
#!/usr/bin/env python3
"""A scripted SMTP client that can pause and can connect from any address.

usage: opsc.py [--timeout S] [--src ADDR] HOST:PORT STEP...
Prints "LABEL => reply" per reply (like smtpc.py) and "time LABEL => S"
(seconds since connecting) after it.  STEPs:
  COMMAND        send COMMAND CRLF, read one reply (LABEL: the command)
  DATA=FILE      DATA, then FILE dot-stuffed and "." (labels DATA, DOT)
  SENDBODY=FILE  FILE dot-stuffed, without the final ".", no reply read
  SEND=TEXT      TEXT CRLF, no reply read
  RAWHEX=HEX     the bytes HEX (no CRLF added), then read one reply (label RAW)
  READ=LABEL     read one reply
  REST=LABEL     read replies until the server closes ("LABEL => EOF" at the end)
  TOUCH=PATH     create PATH (tells the test script where we are)
  WAIT=PATH      wait until PATH exists (at most 30 s)
  SLEEP=S        sleep S seconds
Exit 0 when the script ran to its end, 2 on an error ("LABEL => !!! why").
"""
import os, socket, sys, time

def read_reply(f):
    lines = []
    while True:
        line = f.readline(65536)
        if not line:
            raise EOFError("connection closed by server")
        line = line.rstrip(b"\r\n").decode("utf-8", "replace")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines

T0 = time.monotonic()

def show(label, lines):
    text = " / ".join(l[4:] if len(l) > 4 else "" for l in lines[1:])
    out = lines[0] if not text else lines[0] + " / " + text
    print("%s => %s" % (label, out), flush=True)
    print("time %s => %.2f" % (label, time.monotonic() - T0), flush=True)
    return lines[0][:3]

def stuff(data, dot=True):
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    out = []
    for line in data.split(b"\r\n")[:-1]:
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out) + (b".\r\n" if dot else b"")

def main():
    global T0
    args = sys.argv[1:]
    timeout, src = 10.0, None
    while args and args[0].startswith("--"):
        if args[0] == "--timeout":
            timeout = float(args[1])
        elif args[0] == "--src":
            src = args[1]
        args = args[2:]
    host, _, port = args[0].rpartition(":")
    label = "CONNECT"
    try:
        s = socket.create_connection((host, int(port)), timeout=timeout,
                                     source_address=(src, 0) if src else None)
        T0 = time.monotonic()
        f = s.makefile("rb")
        show(label, read_reply(f))
        for step in args[1:]:
            key, _, val = step.partition("=")
            if key == "DATA" and val:
                label = "DATA"
                s.sendall(b"DATA\r\n")
                if show(label, read_reply(f)) != "354":
                    continue
                label = "DOT"
                s.sendall(stuff(open(val, "rb").read()))
                show(label, read_reply(f))
            elif key == "SENDBODY":
                s.sendall(stuff(open(val, "rb").read(), dot=False))
            elif key == "SEND":
                s.sendall(val.encode() + b"\r\n")
            elif key == "RAWHEX":
                label = "RAW"
                s.sendall(bytes.fromhex(val))
                show(label, read_reply(f))
            elif key == "READ":
                label = val
                show(label, read_reply(f))
            elif key == "REST":
                label = val
                while True:
                    try:
                        show(label, read_reply(f))
                    except EOFError:
                        break
                print("%s => EOF" % label, flush=True)
                print("time %s EOF => %.2f" % (label, time.monotonic() - T0), flush=True)
            elif key == "TOUCH":
                open(val, "w").close()
            elif key == "WAIT":
                end = time.monotonic() + 30
                while not os.path.exists(val):
                    if time.monotonic() > end:
                        raise OSError("waited 30 s for " + val)
                    time.sleep(0.02)
            elif key == "SLEEP":
                time.sleep(float(val))
            else:
                label = step if len(step) < 60 else step[:40] + "...(%d octets)" % len(step)
                s.sendall(step.encode("utf-8") + b"\r\n")
                show(label, read_reply(f))
        s.close()
    except (OSError, EOFError, ValueError) as e:
        print("%s => !!! %s" % (label, e), flush=True)
        print("time %s !!! => %.2f" % (label, time.monotonic() - T0), flush=True)
        return 2
    return 0

sys.exit(main())
EOF
	OPS_HTTP=$W/opshttp.py
	cat >"$OPS_HTTP" <<'EOF'
#!/usr/bin/env python3
"""usage: opshttp.py PORT PATH [OUTFILE]: GET http://127.0.0.1:PORT/PATH;
prints the status code, or "refused" / "error: why"; the body to OUTFILE."""
import http.client, sys
port, path = int(sys.argv[1]), sys.argv[2]
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    print(r.status)
    if len(sys.argv) > 3:
        open(sys.argv[3], "wb").write(body)
except ConnectionRefusedError:
    print("refused")
except Exception as e:
    print("error: %s" % e)
EOF
	OPS_METRICS=$W/opsmetrics.py
	cat >"$OPS_METRICS" <<'EOF'
#!/usr/bin/env python3
"""usage: opsmetrics.py OLD NEW NAME OP N [LABEL=VALUE...]
The sum of the series NAME (whose labels include every LABEL=VALUE) in the
/metrics text NEW minus the same in OLD ("-" for none) compared with N by
OP (eq, ge).  On failure, prints what it saw."""
import re, sys

def parse(path):
    out = []
    if path == "-":
        return out
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4)), line))
    return out

old, new, name, op, n = sys.argv[1:6]
want = dict(a.split("=", 1) for a in sys.argv[6:])
def total(series):
    return sum(v for nm, l, v, _ in series if nm == name and all(l.get(k) == w for k, w in want.items()))
o, s = parse(old), parse(new)
d = total(s) - total(o)
ok = d == float(n) if op == "eq" else d >= float(n)
if not ok:
    sel = " ".join("%s=%s" % kv for kv in want.items())
    print("%s{%s}: moved by %g, expected %s %s" % (name, sel, d, "==" if op == "eq" else ">=", n))
    for tag, ser in (("before", o), ("after", s)):
        lines = [ln for nm, _, _, ln in ser if nm == name]
        print("  %s: %s" % (tag, "; ".join(lines) if lines else "(no series)"))
    sys.exit(1)
EOF
	OPS_JSON=$W/opsjson.py
	cat >"$OPS_JSON" <<'EOF'
#!/usr/bin/env python3
"""usage: opsjson.py LOG [BYTES]: every line (of the first BYTES) is a JSON
object with ts, level, event."""
import io, json, sys
data = open(sys.argv[1], "rb").read()
if len(sys.argv) > 2:
    data = data[: int(sys.argv[2])]
bad = 0
n = 0
for i, raw in enumerate(io.BytesIO(data), 1):
    n += 1
    try:
        o = json.loads(raw.decode("utf-8"))
        if not isinstance(o, dict):
            raise ValueError("not an object")
        miss = [k for k in ("ts", "level", "event") if k not in o]
        if miss:
            raise ValueError("no " + ", ".join(miss))
    except (ValueError, UnicodeDecodeError) as e:
        bad += 1
        if bad <= 10:
            print("line %d: %s: %r" % (i, e, raw[:300]))
if n == 0:
    print("the log is empty")
    sys.exit(1)
if bad:
    print("%d of %d lines are not JSON objects with ts/level/event" % (bad, n))
    sys.exit(1)
EOF
	MXTLS_N=${MXTLS_N:-0}
}

# opsc OUT [--src ADDR] HOST:PORT|mxtls STEP...: run opsc.py, transcript to OUT.
opsc() {
	_o=$1
	shift
	_src=""
	if [ "$1" = --src ]; then
		_src="--src $2"
		shift 2
	fi
	_hp=$1
	shift
	[ "$_hp" = mxtls ] && _hp=127.0.0.1:${MXTLS_PORT:-1}
	# shellcheck disable=SC2086
	python3 "$OPSC" --timeout "${SMTPC_TIMEOUT:-10}" $_src "$_hp" "$@" >"$_o" 2>&1
}

# ops_conf_write FILE <<EOF (sections) EOF: the config with the current
# ports, state_dir, $OPS_PROXY and $OPS_POLICY (newline-separated lines).
ops_conf_write() {
	{
		cat <<EOF
[proxy]
listen = 127.0.0.1:$MXTLS_PORT
hostname = mxtls.test
allow_clients = ${OPS_ALLOW:-127.0.0.0/8}
state_dir = $OPS_STATE
log_level = debug
admin_listen = 127.0.0.1:$MXTLS_ADMIN_PORT
connect_timeout = 5
greeting_timeout = 5
command_timeout = 5
tls_timeout = 5
data_init_timeout = 5
data_block_timeout = 5
data_done_timeout = 5$OPS_PROXY

[dns]
servers = 127.0.0.1:${DNS_PORT:-53}
dnssec = off
allow_private_mx = yes
timeout = 2

[tls]
ca_bundle = $PKI/test-root-ca.pem
min_version = 1.2
max_version = 1.3

[policy]
default = opportunistic$OPS_POLICY

EOF
		cat
	} >"$1"
}

# ops_config [proxy='key = value']... [policy='key = value']... [allow=CIDRS]
# [nouser] <<EOF (sections) EOF: pick ports, write the config of the next
# mxtls to $W/mxtls.N/mxtls.ini.  "user = nobody" unless nouser.  Sets
# MXTLS_N, MXTLS_PORT, MXTLS_ADMIN_PORT, MXTLS_CONF, MXTLS_LOG, OPS_STATE.
ops_config() {
	OPS_PROXY=""
	OPS_POLICY=""
	OPS_ALLOW=""
	_user=yes
	for _kv in "$@"; do
		case $_kv in
		proxy=*) OPS_PROXY="$OPS_PROXY
${_kv#proxy=}" ;;
		policy=*) OPS_POLICY="$OPS_POLICY
${_kv#policy=}" ;;
		allow=*) OPS_ALLOW=${_kv#allow=} ;;
		nouser) _user=no ;;
		*) echo "ops_config: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	[ $_user = yes ] && OPS_PROXY="
user = nobody$OPS_PROXY"
	MXTLS_N=$((MXTLS_N + 1))
	MXTLS_PORT=$(free_port)
	MXTLS_ADMIN_PORT=$(free_port)
	_d=$W/mxtls.$MXTLS_N
	mkdir -p "$_d"
	OPS_STATE=$_d/state
	MXTLS_CONF=$_d/mxtls.ini
	MXTLS_LOG=$_d/mxtls.log
	ops_conf_write "$MXTLS_CONF"
}

# ops_rewrite [proxy=...] [policy=...] <<EOF (sections) EOF: write the
# config of the running mxtls again (same ports and state_dir); without
# proxy=/policy= the ones of ops_config stay.
ops_rewrite() {
	_px=""
	_pol=""
	_set=no
	for _kv in "$@"; do
		case $_kv in
		proxy=*) _px="$_px
${_kv#proxy=}"; _set=yes ;;
		policy=*) _pol="$_pol
${_kv#policy=}"; _set=yes ;;
		*) echo "ops_rewrite: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	if [ $_set = yes ]; then
		OPS_PROXY="
user = nobody$_px"
		OPS_POLICY=$_pol
	fi
	ops_conf_write "$MXTLS_CONF.new"
	mv "$MXTLS_CONF.new" "$MXTLS_CONF"
}

# ops_start: `mxtls -t` on $MXTLS_CONF, then start mxtls; wait for its
# listen and admin ports.  Sets MXTLS_PID.
ops_start() {
	_d=$W/mxtls.$MXTLS_N
	MXTLS_PID=""
	if [ ! -x "$MXTLS" ]; then
		fail "mxtls[$MXTLS_N] starts" "$MXTLS does not exist (build it: make build/asan/mxtls)"
		return 1
	fi
	if ! "$MXTLS" -t -c "$MXTLS_CONF" >"$_d/check.out" 2>&1; then
		fail "mxtls[$MXTLS_N] accepts its config (mxtls -t)" "$(cat "$_d/check.out"; sed 's/^/  | /' "$MXTLS_CONF")"
		return 1
	fi
	"$MXTLS" -c "$MXTLS_CONF" 2>"$MXTLS_LOG" >"$_d/stdout" &
	MXTLS_PID=$!
	it_track mxtls $MXTLS_PID "$MXTLS_N"
	if ! wait_for_port "127.0.0.1:$MXTLS_PORT" tcp 10 2>/dev/null ||
		! wait_for_port "127.0.0.1:$MXTLS_ADMIN_PORT" tcp 5 2>/dev/null; then
		fail "mxtls[$MXTLS_N] starts, listens on 127.0.0.1:$MXTLS_PORT and admin 127.0.0.1:$MXTLS_ADMIN_PORT" "$(tail -n 30 "$MXTLS_LOG")"
		return 1
	fi
	return 0
}

# ops_forget PID: it_stop_all no longer stops PID (the test ended it);
# while PID still runs, it stays on the list.
ops_forget() {
	alive "$1" && return 0
	grep -v "^mxtls $1 " "$W/pids" >"$W/pids.new"
	mv "$W/pids.new" "$W/pids"
}

# ops_wait_exit PID SECONDS: wait until PID (a child of this shell) ends;
# sets OPS_RC (its exit status, or "running") and OPS_ELAPSED (seconds,
# two decimals, since the call).
ops_wait_exit() {
	_t0=$(date +%s%N)
	OPS_RC=running
	while alive "$1"; do
		OPS_ELAPSED=$(ops_since "$_t0")
		between "$OPS_ELAPSED" 0 "$2" >/dev/null || return 1
		sleep 0.02
	done
	OPS_ELAPSED=$(ops_since "$_t0")
	wait "$1" 2>/dev/null
	# shellcheck disable=SC2034 # read by the test script
	OPS_RC=$?
	return 0
}

# ops_now: nanoseconds; ops_since NS: seconds since then (two decimals).
ops_now() { date +%s%N; }
ops_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f\n", (b - a) / 1e9 }'; }

# wait_deliveries MARK N [SECONDS]: until mxtls logged N event=delivery
# lines after MARK (logfmt); fails after SECONDS (10).
wait_deliveries() {
	_t=$(it_until "${3:-10}")
	while [ "$(log_since "$MXTLS_LOG" "$1" | grep -cE '(^| )event=delivery( |$)')" -lt "$2" ]; do
		[ "$(date +%s)" -ge "$_t" ] && return 1
		sleep 0.02
	done
}

# h_count NAME RCPT: messages the hostile server NAME accepted for RCPT.
h_count() {
	# The server stores the RCPT argument as sent: "rcpt: TO:<ADDR>".
	grep -lxF "rcpt: TO:<$2>" "$W/h-$1/mail"/*.env 2>/dev/null | wc -l | tr -d ' '
}
# h_has NAME RCPT [N] [SECONDS]: it accepted N (1) messages for RCPT.
h_has() {
	_t=$(it_until "${4:-5}")
	while [ "$(h_count "$1" "$2")" -lt "${3:-1}" ]; do
		if [ "$(date +%s)" -ge "$_t" ]; then
			echo "hostile $1 accepted $(h_count "$1" "$2") messages for $2, expected ${3:-1}; its log:"
			tail -n 15 "$W/h-$1/log" | sed 's/^/  /'
			return 1
		fi
		sleep 0.1
	done
}
# h_none NAME RCPT: it accepted nothing for RCPT.
h_none() {
	_c=$(h_count "$1" "$2")
	[ "$_c" -eq 0 ] && return 0
	echo "hostile $1 accepted $_c messages for $2"
	return 1
}

# http_is PATH WANT_ERE [PORT]: GET on the admin port answers a status
# matching WANT_ERE ("200", "503|refused").
http_is() {
	_got=$(python3 "$OPS_HTTP" "${3:-$MXTLS_ADMIN_PORT}" "$1" "$W/http.body")
	printf '%s\n' "$_got" | grep -qxE -- "$2" && return 0
	echo "GET $1 on 127.0.0.1:${3:-$MXTLS_ADMIN_PORT}: expected /$2/, got: $_got"
	[ -f "$W/http.body" ] && head -c 300 "$W/http.body" | sed 's/^/  /'
	return 1
}

# metrics_snap FILE: the live /metrics body to FILE (fails unless 200).
metrics_snap() {
	_got=$(python3 "$OPS_HTTP" "$MXTLS_ADMIN_PORT" /metrics "$1")
	[ "$_got" = 200 ] && return 0
	echo "GET /metrics: $_got"
	return 1
}

# mdelta OLD NEW NAME eq|ge N [label=value...]: see opsmetrics.py.
mdelta() { python3 "$OPS_METRICS" "$@"; }

# tcp_refused ADDR PORT: a TCP connect fails (refused or reset).
tcp_refused() {
	python3 - "$1" "$2" <<'EOF'
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
except OSError as e:
    sys.exit(0)
try:
    s.settimeout(2)
    data = s.recv(100)
except OSError as e:
    print("connected, then %s" % e)
    sys.exit(0 if not isinstance(e, socket.timeout) else 1)
if data == b"":
    print("connected, then closed at once without a byte (accepted: no greeting)")
    sys.exit(0)
print("connected; got %r" % data)
sys.exit(1)
EOF
}

# between X LO HI: LO <= X <= HI (decimals).
between() {
	awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x + 0 >= lo + 0 && x + 0 <= hi + 0) }' && return 0
	echo "$1 is not between $2 and $3"
	return 1
}

# log_lacks LOG debug|other ERE: no line of LOG at level debug (or at the
# other levels) matches ERE; prints the lines that do.  Both log formats.
log_lacks() {
	if [ "$2" = debug ]; then
		_l=$(grep -aE '(^|[ ,{])"?level"?[=:]"?debug' "$1" | grep -anE -- "$3")
	else
		_l=$(grep -avE '(^|[ ,{])"?level"?[=:]"?debug' "$1" | grep -anE -- "$3")
	fi
	[ -z "$_l" ] && return 0
	printf '%s\n' "$_l" | cut -c 1-300
	return 1
}
