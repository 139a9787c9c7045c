#!/bin/sh
# Transparent interception for real, in two network namespaces this test
# creates and deletes (lib_transparent.sh):
#
#   pod  192.0.2.2    the legacy Postfix MTA: no relayhost, no TLS, delivers
#                     directly by MX (example.test MX mx.example.test) with
#                     the system resolver; mxtls in transparent mode on
#                     127.0.0.1:10026 (default profile mandatory, the test
#                     root as its only CA, DNS at 192.0.2.1); the redirect
#                     of deploy/redirect.sh
#   net  192.0.2.1    the receiving Postfix, mx.example.test on port 25 with
#                     the test PKI's certificate; dnsmasq on port 53
#
# Rounds (one message each, checked byte for byte at the receiving MX):
#   uid    redirect --backend nftables --uid 65534, mxtls started as root
#          with user = nobody: the message goes out over verified TLSv1.3,
#          the MX sees mxtls's session from the pod's address, mxtls
#          logged the original destination and the verified delivery
#   clear  redirect removed: the MTA delivers in the clear by itself (so
#          the redirect is what did it), mxtls sees nothing
#   mark   redirect --backend iptables --mark 25, mxtls started as nobody
#          with CAP_NET_ADMIN only and upstream_mark = 25 (its UID is no
#          longer excluded: only the mark keeps it out of the redirect)
#   ipv6   (when the namespaces have IPv6) an MTA that uses IPv6 only,
#          mxtls on [::1]:10026, redirect --ipv6: IP6T_SO_ORIGINAL_DST;
#          then removed: in the clear over IPv6
# Loop safety, in every TLS round: the delivery completes without waiting
# for any deadline (none fired in mxtls, none timed out in the MTA), mxtls
# had exactly one session (the MTA's; its own upstream connection, had it
# been redirected, would be a second one from the same address, and so on)
# and the MX had exactly one connection, from the pod.
#
# Needs root, iproute2, nftables, iptables, dnsmasq, Postfix, python3.
# Prints the receiving Postfix's log for the first intercepted message.
# shellcheck source-path=SCRIPTDIR disable=SC2317 # functions run through check
T0=$(date +%s)
IT_TIMEOUT=${IT_TIMEOUT:-85}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_transparent.sh"
it_setup

R=$IT_ROOT/deploy/redirect.sh
PORT=10026
MARK=25
M=$W/msg
mkdir -p "$M"

if ! tp_netns_up >"$W/netns.out" 2>&1; then
	fail "setup: namespaces $TP_POD and $TP_NET, veth pair, /etc/netns/$TP_POD/resolv.conf" "$(cat "$W/netns.out")"
	finish
fi
tp_ok "setup: namespaces $TP_POD (pod, 192.0.2.2) and $TP_NET (net, 192.0.2.1)"
if [ "$TP_V6" = 1 ]; then
	note "IPv6 in the namespaces: 2001:db8::2 (pod), 2001:db8::1 (net)"
else
	note "no IPv6 in the namespaces: the IPv6 round is left out"
fi

if ! tp_dns_start >"$W/dns.out" 2>&1; then
	fail "setup: dnsmasq on 192.0.2.1:53 in the net namespace" "$(cat "$W/dns.out")"
	finish
fi
dnsq_pod() { tp_pod python3 "$IT_FILES/dnsq.py" 192.0.2.1:53 "$1" "$2"; }
dns_from_pod() { # NAME TYPE LINE
	_a=$(dnsq_pod "$1" "$2")
	printf '%s\n' "$_a" | grep -qxF -- "$3" && return 0
	echo "DNS $1 $2 from the pod: expected '$3', got: $_a"
	return 1
}
check "setup: DNS from the pod: example.test MX 10 mx.example.test" dns_from_pod example.test MX "MX 10 mx.example.test"
check "setup: DNS from the pod: mx.example.test A 192.0.2.1" dns_from_pod mx.example.test A "A 192.0.2.1"

if ! tp_pf_mx mx >"$W/mx.out" 2>&1; then
	fail "setup: receiving Postfix on 192.0.2.1:25 in the net namespace" "$(cat "$W/mx.out")"
	finish
fi
if ! tp_pf_mta mta 127.0.0.1:2525 ipv4 >"$W/mta.out" 2>&1; then
	fail "setup: legacy Postfix MTA in the pod" "$(cat "$W/mta.out")"
	finish
fi
tp_ok "setup: receiving Postfix (net) and legacy Postfix MTA (pod) running"

# tls_round LABEL MTA MTA_ADDR:PORT RCPT DST SRC: one message from the MTA
# through the redirect and mxtls to the MX at DST, over verified TLS from SRC.
tls_round() {
	_lb=$1 _mta=$2 _at=$3 _rcpt=$4 _dst=$5 _src=$6
	_dre=$(tp_re "$_dst")
	_sre=$(tp_re "$_src")
	mkmsg "$M/$_rcpt" "$_lb: intercepted, sent on by mxtls"
	MX_MARK=$(log_mark "$(pf_log mx)")
	_m=$MX_MARK
	_x=$(mxtls_mark)
	_t=$(date +%s)
	tp_send "$W/t.$_rcpt" "$_at" "$_rcpt" "$M/$_rcpt"
	check "$_lb: the MTA accepted the message" reply_is "$W/t.$_rcpt" DOT 250
	check "$_lb: the MTA logged status=sent, relay=mx.example.test[$_dst]:25" \
		mta_status "$_mta" "$_rcpt" sent "relay=mx\\.example\\.test\\[$_dre\\]:25" 60
	_sent=$LAST_OK
	[ "$_sent" = yes ] && note "$_lb: delivered in $(($(date +%s) - _t)) s"
	check "$_lb: mxtls logged event=original-destination addr=$_dst" \
		grep_since "$MXTLS_LOG" "$_x" "event=original-destination addr=$_dre( |\$)"
	check "$_lb: mxtls took mx.example.test (MX of example.test, address $_dst) as the certificate name" \
		grep_since "$MXTLS_LOG" "$_x" "event=transparent orig=$_dre names=mx\\.example\\.test( |\$)"
	check "$_lb: mxtls logged event=delivery addr=$_dst tls=TLSv1.3 verify=ok profile=mandatory" \
		mxtls_delivery_since "$_x" 'outcome=tls ' "addr=$_dre " 'port=25 ' \
		'tls=TLSv1\.3 ' 'verify=ok ' 'result=ok ' 'profile=mandatory '
	check "$_lb: the MX logged mxtls's TLSv1.3 session from the pod ($_src)" \
		grep_since "$(pf_log mx)" "$_m" "TLS connection established from unknown\\[$_sre\\]: TLSv1\\.3 with cipher"
	check_if "$_sent" "$_lb: the message arrived byte-identical" delivered mx "$_rcpt" "$M/$_rcpt"
	check_if "$_sent" "$_lb: the MX's Received header: from mxtls.test, using TLSv1.3" \
		received_over mx "$_rcpt" TLSv1.3
	check_if "$_sent" "$_lb: the MTA got the MX's own reply (its queue id) to the final dot" \
		tp_queue_id_matches "$(pf_log "$_mta")" "$(pf_log mx)" "$_rcpt"
	# A redirected upstream connection of mxtls would be a second session
	# (from the pod's address too), and a third...
	check "$_lb: loop safety: mxtls had one session (the MTA's), none from its own upstream" \
		tp_count_is "mxtls sessions" 1 "$MXTLS_LOG" "$_x" '(^| )event=connect( |$)'
	check "$_lb: loop safety: mxtls's session came from the pod's address $_src" \
		grep_since "$MXTLS_LOG" "$_x" "event=connect client=$_sre allowed=yes"
	check "$_lb: loop safety: no deadline fired in mxtls" no_deadline_fired
	check "$_lb: loop safety: nothing timed out in the MTA" no_grep_since "$(pf_log "$_mta")" 0 'timed out'
	check "$_lb: loop safety: the MX had one connection" \
		tp_count_is "MX connections" 1 "$(pf_log mx)" "$_m" ': connect from '
	check "$_lb: the MX's connection came from the pod's address $_src" \
		grep_since "$(pf_log mx)" "$_m" ": connect from unknown\\[$_sre\\]"
}

# clear_round LABEL MTA MTA_ADDR:PORT RCPT DST SRC [--ipv6]: remove the
# redirect; the MTA delivers to DST itself, in the clear.
clear_round() {
	_lb=$1 _mta=$2 _at=$3 _rcpt=$4 _dst=$5 _src=$6
	_dre=$(tp_re "$_dst")
	_sre=$(tp_re "$_src")
	check "$_lb: redirect.sh remove" tp_pod "$R" remove
	# shellcheck disable=SC2086 # $7: --ipv6 or nothing
	check "$_lb: redirect.sh status says not installed (exit 3)" tp_status_is 3 ${7:-}
	mkmsg "$M/$_rcpt" "$_lb: not intercepted, sent by the MTA itself"
	_m=$(log_mark "$(pf_log mx)")
	_x=$(mxtls_mark)
	tp_send "$W/t.$_rcpt" "$_at" "$_rcpt" "$M/$_rcpt"
	check "$_lb: the MTA accepted the message" reply_is "$W/t.$_rcpt" DOT 250
	check "$_lb: the MTA logged status=sent, relay=mx.example.test[$_dst]:25" \
		mta_status "$_mta" "$_rcpt" sent "relay=mx\\.example\\.test\\[$_dre\\]:25" 60
	_sent=$LAST_OK
	check "$_lb: the MX had the connection from the pod ($_src)" \
		grep_since "$(pf_log mx)" "$_m" ": connect from unknown\\[$_sre\\]"
	check_if "$_sent" "$_lb: the message arrived byte-identical" delivered mx "$_rcpt" "$M/$_rcpt"
	check_if "$_sent" "$_lb: the MX logged no TLS connection for it" \
		no_grep_since "$(pf_log mx)" "$_m" "TLS connection established"
	check_if "$_sent" "$_lb: the MX's Received header: from mta.legacy.test, no TLS" \
		received_clear "$_rcpt"
	check "$_lb: mxtls saw no session" tp_count_is "mxtls sessions" 0 "$MXTLS_LOG" "$_x" '(^| )event=connect( |$)'
}
# received_clear RCPT: the first message to RCPT at the MX came in the clear
# from the MTA itself.
received_clear() {
	_f=$(mx_mail mx "$1" | head -n 1)
	[ -n "$_f" ] || { echo "nothing delivered to $1"; return 1; }
	tp_received_clear "$_f"
}

# ---- uid: nftables, mxtls's sockets excluded by its UID ----
check "uid: redirect.sh install --backend nftables --port $PORT --uid 65534" \
	tp_pod "$R" install --backend nftables --port "$PORT" --uid 65534
check "uid: redirect.sh status says installed" tp_status_is 0
if ! tp_mxtls_start "127.0.0.1:$PORT" 192.0.2.2/32 user >"$W/mxtls-uid.out" 2>&1; then
	fail "uid: mxtls starts in the pod (root, user = nobody)" "$(cat "$W/mxtls-uid.out")"
	finish
fi
tp_ok "uid: mxtls starts in the pod (root, user = nobody), listens on 127.0.0.1:$PORT"
tls_round uid mta 127.0.0.1:2525 a@example.test 192.0.2.1 192.0.2.2
grep_since "$(pf_log mx)" "$MX_MARK" ': removed$' 3 >/dev/null
note "the receiving Postfix's log for the transparently intercepted message (a@example.test):"
log_since "$(pf_log mx)" "$MX_MARK" | sed 's/^/#   /'
note "mxtls's log for it:"
log_since "$MXTLS_LOG" 0 | grep -E 'event=(connect|original-destination|transparent|delivery) ' | sed 's/^/#   /'

# ---- clear: the redirect removed, the MTA delivers by itself ----
clear_round clear mta 127.0.0.1:2525 b@example.test 192.0.2.1 192.0.2.2
mxtls_stop

# ---- mark: iptables, mxtls's sockets excluded by their mark only ----
check "mark: redirect.sh install --backend iptables --port $PORT --mark $MARK" \
	tp_pod "$R" install --backend iptables --port "$PORT" --mark "$MARK"
check "mark: redirect.sh status says installed" tp_status_is 0
if tp_mxtls_start "127.0.0.1:$PORT" 192.0.2.2/32 "mark=$MARK" >"$W/mxtls-mark.out" 2>&1; then
	tp_ok "mark: mxtls starts in the pod (UID 65534, CAP_NET_ADMIN only, upstream_mark = $MARK)"
	tls_round mark mta 127.0.0.1:2525 c@example.test 192.0.2.1 192.0.2.2
	mxtls_stop
else
	fail "mark: mxtls starts in the pod (UID 65534, CAP_NET_ADMIN only, upstream_mark = $MARK)" "$(cat "$W/mxtls-mark.out")"
fi
check "mark: redirect.sh remove" tp_pod "$R" remove

# ---- ipv6: an MTA that uses IPv6 only ----
if [ "$TP_V6" = 1 ]; then
	check "ipv6: DNS from the pod: mx.example.test AAAA 2001:db8::1" dns_from_pod mx.example.test AAAA "AAAA 2001:db8::1"
	if ! tp_pf_mta mta6 '[::1]:2526' ipv6 >"$W/mta6.out" 2>&1; then
		fail "ipv6: legacy Postfix MTA (IPv6 only) in the pod" "$(cat "$W/mta6.out")"
	else
		check "ipv6: redirect.sh install --backend nftables --port $PORT --uid 65534 --ipv6" \
			tp_pod "$R" install --backend nftables --port "$PORT" --uid 65534 --ipv6
		check "ipv6: redirect.sh status --ipv6 says installed" tp_status_is 0 --ipv6
		if tp_mxtls_start "[::1]:$PORT" 2001:db8::2/128 user >"$W/mxtls-v6.out" 2>&1; then
			tp_ok "ipv6: mxtls starts in the pod on [::1]:$PORT"
			tls_round ipv6 mta6 ::1:2526 d@example.test 2001:db8::1 2001:db8::2
			clear_round ipv6-clear mta6 ::1:2526 e@example.test 2001:db8::1 2001:db8::2 --ipv6
			mxtls_stop
		else
			fail "ipv6: mxtls starts in the pod on [::1]:$PORT" "$(cat "$W/mxtls-v6.out")"
		fi
		pf_stop mta6
	fi
fi

check "everything leaves no redirect behind" tp_status_is 3 --ipv6
note "run time: $(($(date +%s) - T0)) s"
finish
