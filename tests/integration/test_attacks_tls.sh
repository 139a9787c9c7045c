#!/bin/sh
# The attack suite, TLS part: an upstream MX that renegotiates.
# tests/hostile/renegd.pl (Perl, Net::SSLeay: Python's ssl module cannot
# make a server renegotiate) is a correct SMTP server, TLS 1.2 only (there
# is no renegotiation in TLS 1.3), with the test PKI's valid certificate,
# that sends a HelloRequest at one point of the session:
#   a12e  right after its reply to the post-TLS EHLO (same segment)
#   a12d  right after its 354 to DATA (same segment)
#   a12b  mid-message, after it has read 1 KiB of a 512 KiB body
#   a12t  right before its 250 to the final dot (same segment)
# BoringSSL refuses renegotiation by default, so for each: the MTA gets 4xx
# promptly (never 250), mxtls logs why, the server never saw a completed
# renegotiation, nothing went in the clear, and a concurrent healthy session
# (mxtls -> real Postfix MX, 127.0.11.1) still delivers.  The server saved
# nothing, except in a12t: there it acknowledged the message behind its
# HelloRequest, which mxtls never reads; the MTA's retry may then deliver it
# twice, which RFC 5321 section 6.1 prefers to losing it.  A control shows that the server really renegotiates: openssl
# s_client, which accepts renegotiation, completes one and delivers.
# (close_notify followed by plaintext is B-07 in test_attacks_upstream.sh.)
# Addresses: 127.0.11.x only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-80}
it_setup

RENEGD=$IT_ROOT/tests/hostile/renegd.pl

# reneg_spawn NAME ADDR:PORT AT: renegd.pl in $W/h-NAME (the layout of
# lib_attacks.sh's at_spawn, so that at_ready, at_saved_is, at_no_plain
# work on it).
reneg_spawn() {
	_d=$W/h-$1
	rm -rf "$_d"
	mkdir -p "$_d/mail"
	perl "$RENEGD" --listen "$2" --at "$3" --cert "$PKI/valid.chain.pem" --key "$PKI/valid.key" \
		--hostname "$1.hostile.test" --log "$_d/log" --maildir "$_d/mail" --pidfile "$_d/pid" \
		>"$_d/out" 2>&1 &
	echo $! >"$_d/job"
	it_track hostile $! "$1"
}

# reneg_log NAME ERE: a line of the server's event log matches.
reneg_log() {
	grep -qE -- "$2" "$W/h-$1/log" && return 0
	echo "no line of hostile $1's log matches /$2/; it has:"
	sed 's/^/  /' "$W/h-$1/log"
	return 1
}
# never_renegotiated NAME: the server sent its HelloRequest and no
# renegotiation was completed.
never_renegotiated() {
	reneg_log "$1" '^misbehave hello-request sent' || return 1
	if grep -q '^renegotiation completed' "$W/h-$1/log"; then
		echo "the client completed a renegotiation with hostile $1:"
		sed 's/^/  /' "$W/h-$1/log"
		return 1
	fi
	return 0
}

CASES="a12e:127.0.11.2:ehlo a12d:127.0.11.3:data a12b:127.0.11.4:body a12t:127.0.11.6:dot"
for c in $CASES; do
	IFS=: read -r id addr at <<EOF
$c
EOF
	reneg_spawn "$id" "$addr:25" "$at"
done
reneg_spawn ctl 127.0.11.5:25 ehlo
at_healthy_setup 127.0.11.1 || finish
for id in a12e a12d a12b a12t ctl; do at_ready "$id" || finish; done

# --- control: the server really renegotiates with a client that accepts it
M=$W/m7
python3 - "$M" <<'EOF'
import sys
lines = ["From: a@sender.test", "To: u@x.test", "Subject: renegotiation", "", "body"]
lines += ["line %04d %s" % (i, "x" * 60) for i in range(60)]
open(sys.argv[1], "w", newline="\n").write("\n".join(lines) + "\n")
EOF
# Each step waits for the server's log to show the one before: a busy
# machine makes it slower, not different.
ctl_saw() { wait_until 10 grep -q "$1" "$W/h-ctl/log"; }
{
	printf 'EHLO ctl.test\r\n'
	ctl_saw '^misbehave hello-request sent'
	printf 'MAIL FROM:<s@sender.test>\r\nRCPT TO:<u@ctl.test>\r\nDATA\r\n'
	ctl_saw '^command DATA' && ctl_saw '^renegotiation completed'
	printf 'Subject: control\r\n\r\nbody\r\n.\r\n'
	ctl_saw '^message saved'
	printf 'QUIT\r\n'
	ctl_saw '^close '
} | timeout 300 openssl s_client -starttls smtp -connect 127.0.11.5:25 -quiet \
	-CAfile "$PKI/test-root-ca.pem" >"$W/ctl.out" 2>&1
check "A-12 renegotiation control: openssl s_client completes the server's renegotiation" \
	reneg_log ctl '^renegotiation completed TLSv1\.2'
check "A-12 renegotiation control: and the server acknowledges its message" at_saved_is ctl 1

# --- mxtls: generous deadlines, so that waiting for one would show
at_mxtls_start proxy='command_timeout = 20' proxy='tls_timeout = 20' \
	proxy='data_init_timeout = 20' proxy='data_block_timeout = 20' proxy='data_done_timeout = 20' <<EOF || finish
[policy]
default = opportunistic

$(at_healthy_conf)
$(for c in $CASES; do echo "$c" | awk -F: '{ print $1, $2 }'; done | while read -r id addr; do
	hostile_conf "$id" "$addr" mandatory
done)
EOF

MBIG=$W/mbig # 512 KiB: still being sent when the HelloRequest comes
cp "$M" "$MBIG"
python3 -c 'import sys; sys.stdout.write(("z" * 900 + "\n") * 580)' >>"$MBIG"

JOBS=""
for id in a12e a12d a12b a12t; do
	msg=$M
	[ "$id" = a12b ] && msg=$MBIG
	SMTPC_TIMEOUT=30 smtpx "$W/$id.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<u@$id.test>" "DATA=$msg" QUIT &
	JOBS="$JOBS $!"
	at_healthy_start "$id"
	eval "HEALTHY_$id=\$AT_HEALTHY_PID"
done
# shellcheck disable=SC2086
for j in $JOBS; do wait "$j" 2>/dev/null; done

# logged NAME ERE: mxtls's event=delivery line for NAME.test matches ERE.
logged() { mxtls_delivery_since 0 "rcpt_domain=$1\\.test( |\$)" "$2"; }
for id in a12e a12d a12b a12t; do
	case $id in
	a12e) t="A-12 renegotiation after the post-TLS EHLO" ;;
	a12d) t="A-12 renegotiation after the 354 to DATA" ;;
	a12b) t="A-12 renegotiation mid-message (after 1 KiB of the body)" ;;
	a12t) t="A-12 renegotiation before the reply to the final dot" ;;
	esac
	check "$t: the MTA gets 4xx, never 250" tempfail "$W/$id.out"
	check "$t: promptly (no deadline fired in the session)" \
		no_deadline_fired "$(mxtls_sid "event=delivery .*rcpt_domain=$id\\.test ")"
	check "$t: mxtls logs the reason (no renegotiation)" logged "$id" 'outcome=deferred.*renegotiation'
	check "$t: the renegotiation was refused, never completed" never_renegotiated "$id"
	if [ "$id" = a12t ]; then
		check "$t: (set-up) the server's 250 was behind its HelloRequest" at_saved_is "$id" 1
	elif [ "$id" = a12b ]; then
		# The whole body may already sit in the socket buffers when the
		# HelloRequest is read; the server may then keep the message.
		# The MTA's 4xx above is what matters: a retry may duplicate,
		# never lose.
		note "$t: the server kept $(at_count "$id" saved) message(s) (0 or 1, by timing)"
	else
		check "$t: nothing delivered" at_saved_is "$id" 0
	fi
	check "$t: nothing in the clear" at_no_plain "$id"
	eval "AT_HEALTHY_PID=\$HEALTHY_$id"
	check "$t: the concurrent healthy session delivered" at_healthy_check "$id"
done

mxtls_stop
finish
