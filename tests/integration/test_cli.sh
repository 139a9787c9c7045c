#!/bin/sh
# What a mail administrator meets on day one: the command line (--help,
# --version, each command's usage the same in `mxtls -h` and `mxtls
# COMMAND --help`, usage errors, `mxtls state` with no records), the first
# scrape of a fresh mxtls (unlabelled metrics at 0, the process_* metrics)
# and the systemd notifications (READY=1, RELOADING=1 ... READY=1 around a
# SIGHUP, STOPPING=1 at SIGTERM), with a listener playing NOTIFY_SOCKET.
IT_TIMEOUT=${IT_TIMEOUT:-60}
. "$(dirname "$0")/lib.sh"
it_setup

FETCH=${MXTLS_FETCH:-build/asan/mxtls-fetch}
VERSION=$(sed -n 's/^VERSION *= *//p' Makefile)

# run NAME CMD...: CMD's stdout, stderr and exit status in $W/NAME.{out,err,rc}
run() {
	_n=$1
	shift
	"$@" >"$W/$_n.out" 2>"$W/$_n.err"
	echo $? >"$W/$_n.rc"
}
rc_is() { [ "$(cat "$W/$1.rc")" = "$2" ] || { echo "exit $(cat "$W/$1.rc"), want $2"; cat "$W/$1.err"; exit 1; }; }
empty() { [ ! -s "$W/$1" ] || { echo "$1 is not empty:"; head -n 20 "$W/$1"; exit 1; }; }
has() { grep -qE -- "$2" "$W/$1" || { echo "no /$2/ in $1:"; head -n 30 "$W/$1"; exit 1; }; }

# ================================================================ help, version

for opt in --help -h; do
	run "help$opt" "$MXTLS" "$opt"
	check "mxtls $opt: exit 0" rc_is "help$opt" 0
	check "mxtls $opt: the usage on stdout" has "help$opt.out" '^usage:'
	check "mxtls $opt: nothing on stderr" empty "help$opt.err"
done
check "mxtls -h and --help print the same" cmp "$W/help-h.out" "$W/help--help.out"
for c in explain state keygen sign-policy; do
	check "mxtls -h lists $c" has help-h.out "^  mxtls .*$c"
done
check "mxtls -h lists -t, --version" sh -c "grep -q -- '-t' '$W/help-h.out' && grep -q -- '--version' '$W/help-h.out'"

for opt in --version -V; do
	run "version$opt" "$MXTLS" "$opt"
	check "mxtls $opt: exit 0" rc_is "version$opt" 0
	check "mxtls $opt: 'mxtls $VERSION' (the Makefile's VERSION)" \
		sh -c "[ \"\$(cat '$W/version$opt.out')\" = 'mxtls $VERSION' ] || cat '$W/version$opt.out'"
done

# Each command's own help is, line for line, its part of `mxtls -h`.
for c in explain state keygen sign-policy; do
	for opt in --help -h; do
		run "$c$opt" "$MXTLS" "$c" "$opt"
		check "mxtls $c $opt: exit 0, stdout, nothing on stderr" sh -c \
			"[ \$(cat '$W/$c$opt.rc') = 0 ] && [ -s '$W/$c$opt.out' ] && [ ! -s '$W/$c$opt.err' ] || { cat '$W/$c$opt.rc' '$W/$c$opt.err'; exit 1; }"
	done
	check "mxtls $c --help: the same text as its part of mxtls -h" python3 - "$W/$c--help.out" "$W/help-h.out" "$c" <<'EOF'
import sys
part, full, cmd = (open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3])
lines = part.splitlines(True)
if lines[:1] != ["usage:\n"] or len(lines) < 2:
    sys.exit("does not start with usage: and a command:\n" + part)
if not lines[1].startswith("  mxtls ") or cmd not in lines[1]:
    sys.exit("the first line is not the synopsis of %s: %s" % (cmd, lines[1]))
body = "".join(lines[1:])
if body not in full:
    sys.exit("not in mxtls -h:\n" + body)
EOF
done
check "mxtls keygen -h prints what mxtls keygen --help does" cmp "$W/keygen-h.out" "$W/keygen--help.out"

# ================================================================ usage errors

run badopt "$MXTLS" --no-such-option
check "mxtls --no-such-option: exit 2, the usage on stderr, nothing on stdout" sh -c \
	"[ \$(cat '$W/badopt.rc') = 2 ] && grep -q '^usage:' '$W/badopt.err' && [ ! -s '$W/badopt.out' ]"
run noconf "$MXTLS"
check "mxtls without -c: exit 2 with the usage" sh -c "[ \$(cat '$W/noconf.rc') = 2 ] && grep -q '^usage:' '$W/noconf.err'"
run badcmd "$MXTLS" -c /dev/null frobnicate
check "mxtls -c FILE frobnicate: exit 2" rc_is badcmd 2
run explainnoarg "$MXTLS" -c /dev/null explain
check "mxtls explain without a recipient: exit 2 with explain's usage only" sh -c \
	"[ \$(cat '$W/explainnoarg.rc') = 2 ] && grep -q 'explain RECIPIENT' '$W/explainnoarg.err' && ! grep -q keygen '$W/explainnoarg.err'"
run keygennoarg "$MXTLS" keygen
check "mxtls keygen without -o: exit 2 with keygen's usage, as in mxtls -h" sh -c \
	"[ \$(cat '$W/keygennoarg.rc') = 2 ] && tail -n +2 '$W/keygen--help.out' | grep -qxF \"\$(grep '^  mxtls keygen' '$W/keygennoarg.err')\""
run keygenbad "$MXTLS" keygen -x
check "mxtls keygen -x: exit 2, names the option" sh -c \
	"[ \$(cat '$W/keygenbad.rc') = 2 ] && grep -q -- '-x' '$W/keygenbad.err'"

# ================================================================ mxtls-fetch

for opt in --help -h; do
	run "fhelp$opt" "$FETCH" "$opt"
	check "mxtls-fetch $opt: exit 0, usage on stdout" sh -c \
		"[ \$(cat '$W/fhelp$opt.rc') = 0 ] && grep -q '^usage:' '$W/fhelp$opt.out' && [ ! -s '$W/fhelp$opt.err' ]"
done
for opt in --version -V; do
	run "fversion$opt" "$FETCH" "$opt"
	check "mxtls-fetch $opt: 'mxtls-fetch $VERSION'" sh -c \
		"[ \$(cat '$W/fversion$opt.rc') = 0 ] && [ \"\$(cat '$W/fversion$opt.out')\" = 'mxtls-fetch $VERSION' ]"
done
run fbad "$FETCH" --bogus
check "mxtls-fetch --bogus: exit 64 (EX_USAGE), usage on stderr" sh -c \
	"[ \$(cat '$W/fbad.rc') = 64 ] && grep -q '^usage:' '$W/fbad.err'"

# ================================================================ a fresh mxtls

# The notification listener: every datagram, one per line (newlines inside
# one as |), until killed.  mxtls sends as nobody: the socket is 0666.
NOTIFY=$W/notify.sock
python3 - "$NOTIFY" >"$W/notify.log" 2>&1 <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
while True:
    m = s.recv(4096).decode(errors="replace")
    print(m.replace("\n", "|"), flush=True)
EOF
it_track notify $! -
_i=0
while [ ! -S "$NOTIFY" ] && [ $_i -lt 100 ]; do sleep 0.05; _i=$((_i + 1)); done

NOTIFY_SOCKET=$NOTIFY
export NOTIFY_SOCKET
T0=$(date +%s)
mxtls_start </dev/null || finish
unset NOTIFY_SOCKET

notified() { # N ERE: the Nth notification matches ERE (waits for it)
	_end=$(it_until 5)
	while [ "$(date +%s)" -le "$_end" ]; do
		[ "$(sed -n "$1p" "$W/notify.log")" != "" ] && break
		sleep 0.05
	done
	sed -n "$1p" "$W/notify.log" | grep -qE "$2" ||
		{ echo "notification $1 is not /$2/; all of them:"; cat "$W/notify.log"; exit 1; }
}
check "systemd: READY=1 once mxtls listens" notified 1 '^READY=1$'

# The first scrape: every unlabelled family has its sample.
curl -s "http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics" >"$W/metrics0"
T1=$(date +%s)
for m in mxtls_sessions_total mxtls_sessions_current mxtls_upstream_cached mxtls_dsn_queued mxtls_mta_sts_cache_bytes; do
	check "first scrape: $m 0" has metrics0 "^$m 0\$"
done
check "first scrape: mxtls_tls_handshake_seconds_count 0" has metrics0 '^mxtls_tls_handshake_seconds_count 0$'
check "first scrape: mxtls_build_info{version=\"$VERSION\"} 1" has metrics0 "^mxtls_build_info\\{version=\"$VERSION\"\\} 1\$"
check "process_start_time_seconds: between the start ($T0) and the scrape ($T1)" python3 - "$W/metrics0" "$T0" "$T1" <<'EOF'
import sys
v = [l.split()[1] for l in open(sys.argv[1]) if l.startswith("process_start_time_seconds ")]
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
if len(v) != 1 or not (t0 - 2 <= float(v[0]) <= t1 + 1):
    sys.exit("process_start_time_seconds %s, started at %d, scraped at %d" % (v, t0, t1))
EOF
check "process_resident_memory_bytes above 1 MiB" python3 -c "
import sys
v = [float(l.split()[1]) for l in open('$W/metrics0') if l.startswith('process_resident_memory_bytes ')]
sys.exit(0 if v and v[0] > 1 << 20 else 'got %s' % v)"
check "process_open_fds, process_max_fds, process_cpu_seconds_total present" sh -c \
	"grep -qE '^process_open_fds [1-9]' '$W/metrics0' && grep -qE '^process_max_fds [1-9]' '$W/metrics0' && grep -qE '^process_cpu_seconds_total [0-9]' '$W/metrics0'"
check "promtool check metrics accepts the first scrape" sh -c "promtool check metrics <'$W/metrics0'"

# A session counts: the sample moves from 0 to 1.
smtpc "$W/s1" mxtls "EHLO client.test" "QUIT"
curl -s "http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics" >"$W/metrics1"
check "after one session: mxtls_sessions_total 1" has metrics1 '^mxtls_sessions_total 1$'

kill -HUP "$MXTLS_PID"
check "systemd: RELOADING=1 (with MONOTONIC_USEC) at SIGHUP" notified 2 '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$'
check "systemd: READY=1 after the reload" notified 3 '^READY=1$'
wait_for_log "$MXTLS_LOG" 'event=reloaded' 5 >/dev/null
# A broken config: refused, the old one stays, and systemd hears READY=1 again.
cp "$MXTLS_CONF" "$W/good.ini"
echo "no_such_key = 1" >>"$MXTLS_CONF"
kill -HUP "$MXTLS_PID"
check "systemd: RELOADING=1 at a SIGHUP with a broken config" notified 4 '^RELOADING=1'
check "systemd: READY=1 after the refused reload (the old config runs on)" notified 5 '^READY=1$'
cp "$W/good.ini" "$MXTLS_CONF"

# `mxtls state` on this fresh state_dir: no record, and it says so.
run state "$MXTLS" -c "$MXTLS_CONF" state
check "mxtls state without records: exit 0" rc_is state 0
check "mxtls state without records: one line saying so" sh -c \
	"[ \$(wc -l <'$W/state.out') -eq 1 ] && grep -q 'no retry records' '$W/state.out' || cat '$W/state.out'"

# No session open: SIGTERM ends it at once, after STOPPING=1.
kill -TERM "$MXTLS_PID"
check "systemd: STOPPING=1 at SIGTERM" notified 6 '^STOPPING=1$'
wait "$MXTLS_PID"
check "mxtls exits 0 after SIGTERM (got $?)" test $? -eq 0
check "mxtls: no sanitizer report" sanitizer_clean "$MXTLS_LOG"
grep -v "^mxtls $MXTLS_PID " "$W/pids" >"$W/pids.new"
mv "$W/pids.new" "$W/pids"
finish
