#!/bin/sh
# The MTA-STS cache on disk (proxy/sts.c through proxy/journal.c) with a
# running mxtls whose disk is slow: every fsync() and fdatasync() takes
# SLOW_MS longer (tests/integration/slowsync.c, LD_PRELOAD).
#
# C-burst: BURST recipient domains with MTA-STS enforce policies are
# looked up at once (one session each), so BURST policies are fetched and
# written in a burst, while an unrelated session sends NOOP every 0.1 s.
# mxtls logs each command it reads (log_level = debug) with the time:
# the largest gap between two NOOPs of that session is how long the event
# loop was held up.  Written on the loop (an fsync of the file and one of
# the directory per policy), the gap is at least 2 * SLOW_MS; written by
# the journal's thread, it is the 0.1 s of the client plus scheduling.
# The bound, SLOW_MS, is twice what the loop could be late under load and
# half of what one blocking write costs.
#
# C-torn: a crash in the middle of an append leaves a torn last record:
# after a restart it is ignored and logged, the policies before it still
# apply (no new fetch).
#
#	bN.test   enforce, mx mx.bN.test (127.0.0.183, nothing listens: the
#	          RCPT gets 451 4.4.x once the policy is known)
#
# Needs: nginx, dnsmasq, openssl, python3, cc; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-180}
it_setup

NG_ADDR=127.0.0.181
CA=$PKI/test-root-ca.pem
BURST=6
SLOW_MS=2000
DOMS=""
i=1
while [ $i -le $BURST ]; do
	DOMS="$DOMS b$i"
	i=$((i + 1))
done

SHIM=$W/slowsync.so
cc -shared -fPIC -O1 -Wall -Wextra -Werror -o "$SHIM" tests/integration/slowsync.c -ldl \
	>"$W/build.out" 2>&1 || { fail "build slowsync.so" "$(cat "$W/build.out")"; finish; }

# ---------------------------------------------------------------- servers

doms=""
for d in $DOMS; do
	doms="$doms $d.test"
	pol_sts_policy "$d.test" "version: STSv1\nmode: enforce\nmx: mx.$d.test\nmax_age: 86400\n"
done
# shellcheck disable=SC2086
pol_sts_serve "$NG_ADDR" $doms || finish
{
	for d in $DOMS; do
		echo "txt-record=_mta-sts.$d.test,\"v=STSv1; id=1\""
		echo "host-record=mta-sts.$d.test,$NG_ADDR"
		echo "mx-host=$d.test,mx.$d.test,10"
		echo "host-record=mx.$d.test,127.0.0.183"
	done
} >"$W/dns.in"
pol_dns_up <"$W/dns.in" || { fail "dnsmasq starts"; finish; }

# The unrelated session: NOOP every 0.1 s for SECS seconds.
cat >"$W/pacer.py" <<'EOF'
import socket, sys, time

port, secs, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=60)
f = s.makefile("rb")


def reply():
    while True:
        line = f.readline()
        if not line:
            raise EOFError("closed")
        if line[3:4] != b"-":
            return line


reply()
s.sendall(b"EHLO pacer.test\r\n")
reply()
n, worst, end = 0, 0.0, time.monotonic() + secs
while time.monotonic() < end:
    t = time.monotonic()
    s.sendall(b"NOOP\r\n")
    reply()
    worst = max(worst, time.monotonic() - t)
    n += 1
    time.sleep(0.1)
s.sendall(b"QUIT\r\n")
reply()
with open(out, "w") as o:
    o.write("noops=%d worst_ms=%d\n" % (n, worst * 1000))
EOF

# noop_gap LOG: the largest gap, in ms, between two NOOPs that mxtls read
# from the session that sent the most of them ("ts=...T12:34:56.789Z").
noop_gap() {
	grep 'event=command verb=NOOP' "$1" | awk '
		{
			t = ""; sid = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^ts=/) t = substr($i, 15, 12)
				if ($i ~ /^sid=/) sid = substr($i, 5)
			}
			split(t, p, ":")
			s = p[1] * 3600 + p[2] * 60 + p[3]
			if (sid in last && s - last[sid] > gap[sid])
				gap[sid] = s - last[sid]
			last[sid] = s
			n[sid]++
		}
		END {
			for (k in n)
				if (n[k] > best) { best = n[k]; g = gap[k] }
			printf "%d\n", g * 1000
		}'
}

# ---------------------------------------------------------------- C-burst

rt_config policy="mta_sts_ca_bundle = $CA" policy='mta_sts_wait = 20' </dev/null
export LD_PRELOAD="$SHIM" SLOWSYNC_MS=$SLOW_MS
# The ASan runtime need not come first: the shim only wraps two calls.
export ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0"
rt_mxtls_start 0 || finish
unset LD_PRELOAD SLOWSYNC_MS
check "C-burst harness: mxtls runs with the slow-sync shim" grep -q slowsync.so "/proc/$MXTLS_PID/maps"

python3 "$W/pacer.py" "$MXTLS_PORT" 14 "$W/pacer.out" >"$W/pacer.err" 2>&1 &
PACER=$!
it_track pacer $PACER -
sleep 1
for d in $DOMS; do
	smtpc "$W/burst.$d" mxtls "EHLO burst.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<r@$d.test>" QUIT &
done
wait_burst() {
	for d in $DOMS; do
		_t=$(($(date +%s) + 40))
		while ! grep -q '^QUIT => ' "$W/burst.$d" 2>/dev/null; do
			[ "$(date +%s)" -ge $_t ] && { echo "no end of the session to $d.test:"; cat "$W/burst.$d"; return 1; }
			sleep 0.1
		done
	done
}
check "C-burst harness: the $BURST sessions end" wait_burst
wait "$PACER"
all_cached() {
	for d in $DOMS; do
		hits_d=$(pol_hits "^mta-sts\\.$d\\.test /\\.well-known/mta-sts\\.txt 200 ")
		[ "$hits_d" -eq 1 ] || { echo "$d.test fetched $hits_d times"; return 1; }
		pol_sts_has "$d.test" 'mode enforce' "mx mx.$d.test" || return 1
		reply_is "$W/burst.$d" "RCPT TO:<r@$d.test>" '451 4\.4\.' || return 1
	done
}
check "C-burst harness: $BURST enforce policies fetched at once, each written to the journal" all_cached
check "C-burst harness: the pacer session ran (NOOP every 0.1 s)" \
	grep -qE '^noops=[0-9]+ ' "$W/pacer.out"
GAP=$(noop_gap "$MXTLS_LOG")
note "slowed fsync: $SLOW_MS ms; largest gap between two NOOPs in mxtls's log: $GAP ms; client: $(cat "$W/pacer.out" 2>/dev/null)"
check "C-burst a write burst of the MTA-STS cache (fsync $SLOW_MS ms) does not hold up an unrelated session: NOOP gap ${GAP} ms < $SLOW_MS ms" \
	test "${GAP:-99999}" -lt $SLOW_MS

# ---------------------------------------------------------------- C-torn

mxtls_stop
J=$RT_STATE_DIR/mta-sts/journal
J_SIZE=$(stat -c %s "$J")
# The record of a newer b1.test policy, cut off by a crash.
printf 'P b1.test 212 0123456789abcdef\nmxtls-mta-sts-cache 1\ndomain b1.t' >>"$J"
rt_mxtls_start 0 || finish
MARK=0
smtpc "$W/after.b1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	"RCPT TO:<r2@b1.test>" QUIT
check "C-torn the torn last record is ignored and logged, the journal cut where it began" pol_all \
	"wait_for_log $MXTLS_LOG 'event=mta-sts result=cache-journal-torn .*ignored_bytes=64 ' 5" \
	"test \$(stat -c %s $J) -le $J_SIZE"
check "C-torn ... the records before it kept: b1.test's enforce policy from the cache, not fetched again" pol_all \
	"wait_for_log $MXTLS_LOG 'event=mta-sts domain=b1.test mode=enforce source=cache' 5" \
	"pol_hits_are '^mta-sts\\.b1\\.test /\\.well-known/mta-sts\\.txt 200 ' 1" \
	"reply_is $W/after.b1 'RCPT TO:<r2@b1.test>' '451 4\\.4\\.'"
check "C-torn ... and the other policies of the burst" pol_all \
	"pol_sts_has b$BURST.test 'mode enforce'" \
	"grep -q 'result=cache-loaded .*policies=$BURST ' $MXTLS_LOG"

finish
