#!/bin/sh
# proxy/dns.c against a real resolver: dnsmasq on 127.0.0.1:5391 serves a
# small .test zone; tests/integration/dns_probe.c prints what dns.c
# delivers.  Needs root (dnsmasq) and /usr/sbin/dnsmasq (dnsmasq-base).
set -u
cd "$(dirname "$0")/../.." || exit 1

PORT=5391
DEAD=127.0.0.1:5399 # nothing listens here: ICMP port unreachable
NS=127.0.0.1:$PORT
PROBE=build/dns_probe
passed=0
failed=0
tmp=$(mktemp -d)
dm_pid=

# shellcheck disable=SC2317 # called through trap
cleanup() {
	if [ -n "$dm_pid" ]; then
		kill "$dm_pid" 2>/dev/null
		wait "$dm_pid" 2>/dev/null
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

# run PROBE-ARGS...: sets out, rc, ms; a sanitizer report counts as rc 99.
run() {
	out=$("$PROBE" "$@" 2>"$tmp/stderr")
	rc=$?
	ms=$(sed -n 's/^elapsed_ms //p' "$tmp/stderr")
	ms=${ms:-999999}
	if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$tmp/stderr"; then
		rc=99
	fi
}

show() {
	echo "  probe: $PROBE $*"
	echo "  exit $rc; stdout:"
	printf '%s\n' "$out" | sed 's/^/    /'
	sed 's/^/  stderr: /' "$tmp/stderr" | head -n 30
}

# expect NAME WANT PROBE-ARGS...: the probe's whole stdout must be WANT.
expect() {
	name=$1
	want=$2
	shift 2
	run "$@"
	if [ "$rc" -eq 0 ] && [ "$out" = "$want" ]; then
		ok "$name"
	else
		fail "$name"
		echo "  want:"
		printf '%s\n' "$want" | sed 's/^/    /'
		show "$@"
	fi
}

# expect_fast NAME MAX_MS WANT PROBE-ARGS...: as expect, within MAX_MS by
# the probe's own clock.  MAX_MS is the deadline an answer that came at
# once must beat, or a timeout's expected time plus 3 s for a timer that a
# busy machine runs late: never the time the answer usually takes.
expect_fast() {
	name=$1
	max=$2
	want=$3
	shift 3
	run "$@"
	if [ "$rc" -eq 0 ] && [ "$out" = "$want" ] && [ "$ms" -le "$max" ]; then
		ok "$name (${ms} ms)"
	else
		fail "$name"
		echo "  want within $max ms (took $ms ms):"
		printf '%s\n' "$want" | sed 's/^/    /'
		show "$@"
	fi
}

# --- build the probe -------------------------------------------------------
mkdir -p build
if ! cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g \
    -fsanitize=address,undefined -Iproxy -Ipolicy -o "$PROBE" \
    tests/integration/dns_probe.c proxy/dns.c policy/dnssec.c -Wl,--no-as-needed -levent -lunbound -lev; then
	fail "build dns_probe"
	finish
fi

# --- start dnsmasq ---------------------------------------------------------
if [ ! -x /usr/sbin/dnsmasq ]; then
	fail "dnsmasq: /usr/sbin/dnsmasq missing (apt-get install dnsmasq-base)"
	finish
fi
# big.test: 20 MX records, more than DNS_MX_MAX and more than fit in 512
# bytes of UDP, so the resolver must retry over TCP.  Preferences fall as the
# number rises: mx20 (80) is the best.
big=
i=1
while [ $i -le 20 ]; do
	big="$big --mx-host=big.test,mx$i.big.test,$((100 - i))"
	i=$((i + 1))
done
# --local=/test/: dnsmasq answers the whole zone itself (NXDOMAIN for
# unknown names) and forwards nothing; -C /dev/null: no system config.
# shellcheck disable=SC2086
/usr/sbin/dnsmasq -C /dev/null --port=$PORT --listen-address=127.0.0.1 \
    --bind-interfaces --no-resolv --no-hosts --keep-in-foreground \
    --pid-file="$tmp/dnsmasq.pid" --log-facility="$tmp/dnsmasq.log" \
    --log-queries --local=/test/ \
    --mx-host=mx.test,mx2.test,20 --mx-host=mx.test,mx1.test,10 \
    --mx-host=mx.test,mx3.test,30 --mx-host=mx.test,mx2b.test,20 \
    --mx-host=mx.test,mx2c.test,20 \
    --mx-host=nullmx.test,.,0 \
    --dns-rr=nullmx-raw.test,15,000000 \
    --mx-host=mixed.test,.,0 --mx-host=mixed.test,mx1.test,10 \
    --host-record=nomx.test,192.0.2.10 \
    --host-record=host.test,192.0.2.1,2001:db8::1 \
    --host-record=v6.test,2001:db8::6 \
    --cname=alias.test,host.test \
    --address=/wild.test/192.0.2.7 \
    $big >"$tmp/dnsmasq.out" 2>&1 &
dm_pid=$!
echo "$dm_pid" >"$tmp/dnsmasq.mypid"

# Ready when it answers; give up after about 5 s.
i=0
while :; do
	run -t 0.2 "$NS" mx mx.test
	case "$out" in "status OK"*) break ;; esac
	i=$((i + 1))
	if [ $i -ge 25 ] || ! kill -0 "$dm_pid" 2>/dev/null; then
		fail "dnsmasq did not come up on $NS"
		cat "$tmp/dnsmasq.out" "$tmp/dnsmasq.log" 2>/dev/null | tail -n 20
		finish
	fi
	sleep 0.2
done

# --- MX --------------------------------------------------------------------
# dnsmasq answers equal preferences in reverse configuration order
# (2c, 2b, 2); a stable sort keeps that order.
expect mx-order "status OK
mx 10 mx1.test
mx 20 mx2c.test
mx 20 mx2b.test
mx 20 mx2.test
mx 30 mx3.test" "$NS" mx mx.test

expect mx-absolute-name "status OK
mx 10 mx1.test
mx 20 mx2c.test
mx 20 mx2b.test
mx 20 mx2.test
mx 30 mx3.test" "$NS" mx mx.test.

want="status OK"
i=20
while [ $i -ge 5 ]; do
	want="$want
mx $((100 - i)) mx$i.big.test"
	i=$((i - 1))
done
expect mx-max-16-over-tcp "$want" "$NS" mx big.test

expect "D-14 mx-null" "status NULLMX
error MX lookup for nullmx.test is a null MX: the domain accepts no mail" \
    "$NS" mx nullmx.test

expect "D-14 mx-null-wire-form" "status NULLMX
error MX lookup for nullmx-raw.test is a null MX: the domain accepts no mail" \
    "$NS" mx nullmx-raw.test

# RFC 7505 forbids mixing; the "." has nothing to connect to, so it goes.
expect "D-14 mx-null-mixed" "status OK
mx 10 mx1.test" "$NS" mx mixed.test

expect "D-14 mx-nxdomain" "status NXDOMAIN
error MX lookup for nx.test does not exist" "$NS" mx nx.test

expect mx-nodata "status NODATA
error MX lookup for nomx.test has no MX records" "$NS" mx nomx.test

expect mx-nodata-cname "status NODATA
error MX lookup for alias.test has no MX records" "$NS" mx alias.test

expect mx-bad-name "status NXDOMAIN
error MX lookup for a..test is not a valid domain name" "$NS" mx a..test

expect mx-empty-name "status NXDOMAIN
error MX lookup for  is not a valid domain name" "$NS" mx ""

# --- addresses -------------------------------------------------------------
expect addr-a-aaaa "status OK
addr 192.0.2.1
addr 2001:db8::1" "$NS" addr host.test

expect addr-a-only "status OK
addr 192.0.2.10" "$NS" addr nomx.test

expect addr-aaaa-only "status OK
addr 2001:db8::6" "$NS" addr v6.test

expect addr-cname "status OK
addr 192.0.2.1
addr 2001:db8::1" "$NS" addr alias.test

expect addr-wildcard "status OK
addr 192.0.2.7" "$NS" addr a.b.wild.test

expect addr-numeric "status OK
addr 192.0.2.99" "$NS" addr 192.0.2.99

expect addr-nxdomain "status NXDOMAIN
error address lookup for nx.test does not exist" "$NS" addr nx.test

expect addr-nodata "status NODATA
error address lookup for mx.test has no A or AAAA records" "$NS" addr mx.test

# --- servers and failures --------------------------------------------------
expect servers-failover "status OK
mx 10 mx1.test" "$DEAD,$NS" mx mixed.test

# An unreachable server: a temporary failure by the deadline at the latest
# (three times the timeout: two tries, the second twice as long).
expect_fast "D-14 tempfail-unreachable" 3900 "status TEMPFAIL
error MX lookup for mx.test timed out" \
    -t 1 "$DEAD" mx mx.test

expect_fast "D-14 tempfail-unreachable-addr" 3900 "status TEMPFAIL
error address lookup for host.test timed out" \
    -t 1 "$DEAD" addr host.test

# A server that never answers: 0.3 s for the first try, twice that for
# the second, so about 0.9 s in all.
expect_fast "D-14 timeout-mx" 3900 "status TEMPFAIL
error MX lookup for example.com timed out" -t 0.3 blackhole mx example.com
if [ "$ms" -lt 800 ]; then
	fail "D-14 timeout-mx waited only $ms ms (want 2 tries: about 900)"
fi

expect_fast "D-14 timeout-addr" 3900 "status TEMPFAIL
error address lookup for example.com timed out" -t 0.3 blackhole addr example.com

# dnsmasq cannot be made to SERVFAIL or REFUSE; the probe answers itself.
expect_fast "D-14 tempfail-servfail" 5000 "status TEMPFAIL
error MX lookup for example.com failed: no usable answer from the DNS servers (SERVFAIL)" \
    -t 5 rcode:2 mx example.com

expect_fast "D-14 tempfail-refused" 5000 "status TEMPFAIL
error address lookup for example.com failed: no usable answer from the DNS servers (SERVFAIL)" \
    -t 5 rcode:5 addr example.com

# dns_new() refuses a server list that is not addresses.
run "bad,server,list" mx mx.test
case "$rc:$out" in
'1:dns_new: dns: servers "bad,server,list": '*) ok bad-servers ;;
*)
	fail bad-servers
	show "bad,server,list" mx mx.test
	;;
esac

# --- cancellation and teardown ----------------------------------------------
# Each mode checks inside the probe that no callback runs from within
# dns_lookup_*; ASan checks that the abandoned query is freed exactly once.
expect cancel-mx-answered "callbacks 0" "$NS" cancel-mx mx.test
expect cancel-addr-answered "callbacks 0" "$NS" cancel-addr host.test
# The query outlives the cancel until libunbound lets it go.
expect cancel-mx-timeout "callbacks 0" -t 0.2 blackhole cancel-mx example.com
expect cancel-addr-timeout "callbacks 0" -t 0.2 blackhole cancel-addr example.com
# A bad name fails at once, delivered later: cancel it before delivery.
expect cancel-completed "callbacks 0" "$NS" cancel-mx a..test
expect_fast free-pending 5000 "callbacks 0" -t 5 blackhole free-pending example.com
expect free-in-callback "status OK
mx 10 mx1.test
callbacks 1" "$NS" free-in-cb mixed.test
expect free-in-callback-sync "status NXDOMAIN
error MX lookup for a..test is not a valid domain name
callbacks 1" "$NS" free-in-cb a..test
expect cancel-in-callback "status OK
mx 10 mx1.test
callbacks 1" "$NS" cancel-in-cb mixed.test

finish
