#!/bin/sh
# make bench-dane: what DANE costs.  W1 (one message per connection) and
# W2 (long sessions) through mxtls to an MX found by DNS, once with
# [dns] dnssec = off and once with validation and a DANE-EE TLSA record,
# against a signed test zone (tests/integration/lib_dnssec.sh: NSD, a
# private root as trust anchor).  Runs in a network namespace of its own
# (the MX listens on port 25) and prints a Markdown table.
# Settings: DANE_W1_MSGS [2000], DANE_W2_MSGS [1000], DANE_PAR [10],
# DANE_ROUNDS [3]; MXTLS [build/mxtls].
set -u
cd "$(dirname "$0")/../.."
if [ "${DANE_BENCH_NS:-}" != yes ]; then
	DANE_BENCH_NS=yes exec unshare -n sh -c 'ip link set lo up && exec sh "$0"' "$0"
fi
MXTLS=${MXTLS:-$PWD/build/mxtls}
export MXTLS
. tests/integration/lib.sh
. tests/integration/lib_dnssec.sh
W1_MSGS=${DANE_W1_MSGS:-2000}
W2_MSGS=${DANE_W2_MSGS:-1000}
PAR=${DANE_PAR:-10}
ROUNDS=${DANE_ROUNDS:-3}
it_setup

dnssec_init
dnssec_zone bench.test
dnssec_mx bench.test mx.bench.test
dnssec_a mx.bench.test 127.0.0.61
cert=$(dane_cert bench webpki mx.bench.test)
dnssec_tlsa mx.bench.test 3 1 1 "$W/dane/bench.pem"
dnssec_start || { fail "the signed zone is served"; finish; }
pf_mx sink 127.0.0.61:25 cert="$cert" hostname=mx.bench.test ||
	{ fail "the MX starts"; finish; }

# run PORT W MSGS: messages per second of one run (smtp-source, then the
# MX has them all).
run() {
	_before=$(mx_count sink)
	_keep=""
	[ "$2" = W2 ] && _keep=-d
	_t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	smtp-source -s "$PAR" -m "$3" -l 2048 $_keep -f bench@sender.test \
		-t rcpt@bench.test -M client.bench.test "127.0.0.1:$1" ||
		{ echo "smtp-source failed" >&2; return 1; }
	_want=$((_before + $3))
	_until=$(($(date +%s) + 120))
	while [ "$(mx_count sink)" -lt "$_want" ]; do
		[ "$(date +%s)" -lt "$_until" ] || { echo "the MX has $(mx_count sink) of $_want" >&2; return 1; }
		sleep 0.1
	done
	_t1=$(date +%s.%N)
	echo "$3 $_t0 $_t1" | awk '{ printf "%.0f\n", $1 / ($3 - $2) }'
}

# Both run side by side and take turns, so that a busy moment of the
# machine or a fuller maildir falls on both alike.
mxtls_start log_level=info </dev/null
PORT_off=$MXTLS_PORT
PID_off=$MXTLS_PID
mxtls_start dnssec=validate trust_anchor="$DNSSEC_TA" log_level=info </dev/null
PORT_validate=$MXTLS_PORT
# One message each first: the caches are warm for both alike.
run "$PORT_off" W1 1 >/dev/null
run "$PORT_validate" W1 1 >/dev/null
r=1
while [ $r -le "$ROUNDS" ]; do
	for wl in W1 W2; do
		n=$W1_MSGS
		[ "$wl" = W2 ] && n=$W2_MSGS
		for mode in off validate; do
			eval "port=\$PORT_$mode"
			v=$(run "$port" "$wl" "$n") || { fail "$mode $wl round $r"; finish; }
			echo "$mode $wl $v" >>"$W/results"
		done
	done
	r=$((r + 1))
done
mxtls_stop
mxtls_stop_pid "$PID_off" 1
grep -v "^mxtls $PID_off " "$W/pids" >"$W/pids.new"
mv "$W/pids.new" "$W/pids"
check "dnssec = off: verified by the web PKI (verify=ok), no DANE" \
	sh -c "grep -q verify=ok '$W/mxtls.1/mxtls.log' && ! grep -q verify=dane '$W/mxtls.1/mxtls.log'"
check "validate: every delivery verified by DANE (verify=dane-ee)" \
	sh -c "grep -q verify=dane-ee '$W/mxtls.2/mxtls.log' && ! grep 'event=delivery' '$W/mxtls.2/mxtls.log' | grep -qv verify=dane-ee"

# The median of the rounds, and validate against off.
awk -v rounds="$ROUNDS" '
{ v[$1 " " $2, ++n[$1 " " $2]] = $3 }
function median(k,   i, j, t, a, m) {
	m = n[k]
	for (i = 1; i <= m; i++) a[i] = v[k, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((m + 1) / 2)]
}
END {
	print "| workload | dnssec = off (msg/s) | validate + DANE-EE (msg/s) | ratio |"
	print "|---|---|---|---|"
	split("W1 W2", w, " ")
	for (i = 1; i <= 2; i++) {
		o = median("off " w[i]); d = median("validate " w[i])
		printf "| %s | %d | %d | %.2f |\n", w[i], o, d, (o > 0 ? d / o : 0)
	}
	printf "\nmedian of %d rounds each\n", rounds
}' "$W/results"
finish
