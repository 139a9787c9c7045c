#!/bin/sh
# DSN advertised, then dropped.  mxtls advertises DSN only
# with [proxy] dsn_submit set, and then keeps the promise: when the
# recipient's server does not offer DSN and a recipient asked for
# NOTIFY=SUCCESS, mxtls sends the "relayed" notice (RFC 3464) to the MTA's
# listener, which delivers it to the sender.  Without dsn_submit the MTA
# (Postfix here) sees no DSN and sends the relayed notice itself.
#
#   example.test  MX mx.example.test   127.0.0.2:25  Postfix, DSN discarded
#   example.net   MX mx2.example.test  127.0.0.3:25  Postfix with DSN
#   sender.test   MX mx3.example.test  127.0.0.4:25  the sender's mailbox
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_mta.sh"
it_setup

dns_mx example.test mx.example.test 10
dns_a mx.example.test 127.0.0.2
dns_mx example.net mx2.example.test 10
dns_a mx2.example.test 127.0.0.3
dns_mx sender.test mx3.example.test 10
dns_a mx3.example.test 127.0.0.4
dns_start || finish

pf_mx mx 127.0.0.2:25 hostname=mx.example.test 'main=smtpd_discard_ehlo_keywords = dsn' || finish
pf_mx mx2 127.0.0.3:25 hostname=mx2.example.test || finish
pf_mx snd 127.0.0.4:25 hostname=mx3.example.test || finish

M=$W/msg
mkdir -p "$M"
S=s@sender.test

# dsn_of N: the Nth message delivered to the sender, or "" (none yet).
dsn_of() { mx_mail snd "$S" | sed -n "${1}p"; }
# dsn_has N ERE...: the Nth notice to the sender has a line matching each.
dsn_has() {
	_n=$1
	shift
	mx_wait_rcpt snd "$S" "$_n" 20 || return 1
	_f=$(dsn_of "$_n")
	for _re in "$@"; do
		grep -qE -- "$_re" "$_f" || {
			echo "notice $_f has no line matching /$_re/:"
			sed 's/^/  | /' "$_f" | head -n 80
			return 1
		}
	done
}
# dsn_count: notices delivered to the sender so far.
dsn_count() { mx_mail snd "$S" | wc -l | tr -d ' '; }
# metric NAME LABELS: its value on /metrics of the current mxtls (0: none).
metric() {
	_k=$1
	[ -n "$2" ] && _k="$1{$2}"
	curl -s --max-time 5 "http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics" |
		awk -v k="$_k" '$1 == k { v = $2 } END { print v + 0 }'
}

# ---------------------------------------------------------------- without dsn_submit
mxtls_start </dev/null || finish
P=$(free_port)
pf_mta mta "127.0.0.1:$P" "[127.0.0.1]:$MXTLS_PORT" || finish

smtpc "$W/t.ehlo" mxtls "EHLO client.test" QUIT
check "without dsn_submit: EHLO answered" reply_is "$W/t.ehlo" "EHLO client.test" 250
check "R17-13 without dsn_submit mxtls does not advertise DSN" no_grep_since "$W/t.ehlo" 0 '/ DSN( |$)'

mkmsg "$M/1" "relayed by the MTA"
smtpc "$W/t.1" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<$S> ENVID=env1" \
	"RCPT TO:<a@example.test> NOTIFY=SUCCESS" "DATA=$M/1" QUIT
check "without dsn_submit: the MTA accepted NOTIFY=SUCCESS" reply_is "$W/t.1" DOT 250
check "without dsn_submit: delivered to mx.example.test" delivered mx a@example.test "$M/1"
check "R17-13 without dsn_submit the MTA itself tells the sender: relayed" \
	dsn_has 1 '^Action: relayed' '^Reporting-MTA: dns; ?mta\.legacy\.test' '^Final-Recipient: rfc822; ?a@example\.test'
pf_stop mta

# Exim as the MTA, the same way.
if [ -x "$EXIM" ]; then
	PE=$(free_port)
	exim_mta dsn "$PE" || fail "Exim starts" "$(cat "$W/exim-dsn/exim.out")"
	mkmsg "$M/1e" "relayed by Exim"
	smtpc "$W/t.1e" "127.0.0.1:$PE" "EHLO client.test" "MAIL FROM:<$S>" \
		"RCPT TO:<ae@example.test> NOTIFY=SUCCESS" "DATA=$M/1e" QUIT
	check "without dsn_submit: Exim accepted NOTIFY=SUCCESS" reply_is "$W/t.1e" DOT 250
	# Exim 4.96 writes "Action: delivered" with "relayed to non-DSN-aware
	# mailer" in the text.
	check "R17-13 without dsn_submit Exim itself tells the sender: relayed" \
		dsn_has 2 'relayed to non-DSN-aware mailer' '^Reporting-MTA: dns; ?mta\.exim\.test' \
		'^Final-Recipient: rfc822; ?ae@example\.test'

	kill_wait "$(awk '$1 == "exim" && $3 == "dsn" { print $2 }' "$W/pids")"
else
	fail "Exim: build/mta/usr/sbin/exim4 is missing (make deps-test unpacks it)"
fi
mxtls_stop

# ---------------------------------------------------------------- dsn_submit = the MTA
P=$(free_port)
mxtls_start proxy="dsn_submit = 127.0.0.1:$P" </dev/null || finish
pf_mta mta "127.0.0.1:$P" "[127.0.0.1]:$MXTLS_PORT" || finish
n0=$(dsn_count)

smtpc "$W/t.ehlo2" mxtls "EHLO client.test" QUIT
check "R17-13 with dsn_submit mxtls advertises DSN" reply_has "$W/t.ehlo2" "EHLO client.test" '/ DSN( |$)'

# Straight to mxtls: every DSN parameter, a server without DSN.
mkmsg "$M/2" "relayed by mxtls"
x=$(mxtls_mark)
smtpc "$W/t.2" mxtls "EHLO client.test" "MAIL FROM:<$S> RET=FULL ENVID=QQ+2B314159" \
	"RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx@example.test" \
	"RCPT TO:<c@example.test> NOTIFY=FAILURE" "DATA=$M/2" QUIT
check "dsn_submit: the message is accepted (the upstream's 250)" reply_is "$W/t.2" DOT '250 2\.0\.0 Ok: queued as'
check "dsn_submit: delivered to mx.example.test" delivered mx b@example.test "$M/2"
check "R17-13 mxtls submits the relayed notice to the MTA (dsn-submitted)" \
	grep_since "$MXTLS_LOG" "$x" 'event=dsn-submitted .*reply="?250 ' 20
n=$((n0 + 1))
check "R17-13 the relayed notice reaches the sender, RFC 3464 fields" dsn_has $n \
	'^Content-Type: multipart/report; report-type=delivery-status;' \
	'^Auto-Submitted: auto-replied' \
	'^Reporting-MTA: dns; mxtls\.test' \
	'^Original-Envelope-Id: QQ\+314159' \
	'^Arrival-Date: ' \
	'^Original-Recipient: rfc822;B\+x@example\.test' \
	'^Final-Recipient: rfc822; b@example\.test' \
	'^Action: relayed' '^Status: 2\.0\.0' \
	'^Remote-MTA: dns; mx\.example\.test' \
	'^Diagnostic-Code: smtp; 250 2\.0\.0 Ok: queued as' \
	'^Content-Type: text/rfc822-headers' \
	'^Subject: relayed by mxtls' \
	'RET=FULL'
check "R17-13 the notice was sent with a null reverse-path" dsn_has $n '^Return-Path: <>'
check "R17-13 only the recipient with NOTIFY=SUCCESS is in the notice" sh -c \
	"! grep -q 'c@example.test' '$(dsn_of $n)'"
check "the notice holds no body line of the message" sh -c \
	"! grep -q 'Body of: relayed by mxtls' '$(dsn_of $n)'"
check "the metric counts the submitted notice" test "$(metric mxtls_dsn_total 'outcome="submitted"')" = 1

# Through the MTA (Postfix passes NOTIFY on, as mxtls advertises DSN): one
# notice, from mxtls, none from the MTA.
mkmsg "$M/3" "relayed by mxtls for the MTA"
smtpc "$W/t.3" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<$S>" \
	"RCPT TO:<d@example.test> NOTIFY=SUCCESS" "DATA=$M/3" QUIT
check "via the MTA: accepted" reply_is "$W/t.3" DOT 250
check "via the MTA: delivered" delivered mx d@example.test "$M/3"
n=$((n + 1))
check "R17-13 via the MTA the sender gets the relayed notice from mxtls" dsn_has $n \
	'^Reporting-MTA: dns; mxtls\.test' '^Final-Recipient: rfc822; d@example\.test' '^Action: relayed' \
	'^Subject: relayed by mxtls for the MTA'
sleep 2
check "via the MTA: exactly one notice (the MTA sent none of its own)" test "$(dsn_count)" = $n

# A server with DSN: the parameters go on; it is the one to tell.
m2=$(log_mark "$(pf_log mx2)")
x=$(mxtls_mark)
smtpc "$W/t.4" mxtls "EHLO client.test" "MAIL FROM:<$S> ENVID=e4" \
	"RCPT TO:<e@example.net> NOTIFY=SUCCESS ORCPT=rfc822;e@example.net" "DATA=$M/3" QUIT
check "server with DSN: accepted" reply_is "$W/t.4" DOT 250
check "R17-13 server with DSN: NOTIFY went on and it sends the success notice" \
	grep_since "$(pf_log mx2)" "$m2" 'sender delivery status notification' 10
check "server with DSN: mxtls queued no notice" no_grep_since "$MXTLS_LOG" "$x" 'event=dsn-'

# NOTIFY without SUCCESS: nothing is owed.
x=$(mxtls_mark)
smtpc "$W/t.5" mxtls "EHLO client.test" "MAIL FROM:<$S>" \
	"RCPT TO:<f@example.test> NOTIFY=FAILURE,DELAY" "DATA=$M/3" QUIT
check "NOTIFY=FAILURE,DELAY: accepted" reply_is "$W/t.5" DOT 250
check "R17-13 NOTIFY without SUCCESS: no notice" no_grep_since "$MXTLS_LOG" "$x" 'event=dsn-'

# Malformed DSN parameters are refused, never passed on.
smtpc "$W/t.6" mxtls "EHLO client.test" "MAIL FROM:<$S> ENVID=a+0D+0AX" \
	"MAIL FROM:<$S> RET=ALL" "MAIL FROM:<$S>" "RCPT TO:<g@example.test> NOTIFY=NEVER,SUCCESS" QUIT
check "R17-13 an ENVID that decodes to CR LF is refused" reply_is "$W/t.6" "MAIL FROM:<$S> ENVID=a+0D+0AX" '501 5\.5\.4'
check "a bad RET is refused" reply_is "$W/t.6" "MAIL FROM:<$S> RET=ALL" '501 5\.5\.4'
check "a bad NOTIFY is refused" reply_is "$W/t.6" "RCPT TO:<g@example.test> NOTIFY=NEVER,SUCCESS" '501 5\.5\.4'
pf_stop mta
mxtls_stop

# ---------------------------------------------------------------- the MTA does not answer
# The MTA's reply to the message never waits for the notice; a failed
# submission is logged, counted and tried again later.
P=$(free_port)
mxtls_start proxy="dsn_submit = 127.0.0.1:$P" </dev/null || finish
x=$(mxtls_mark)
smtpc "$W/t.7" mxtls "EHLO client.test" "MAIL FROM:<$S>" \
	"RCPT TO:<h@example.test> NOTIFY=SUCCESS" "DATA=$M/3" QUIT
check "R17-13 dsn_submit unreachable: the message still gets the upstream's 250" reply_is "$W/t.7" DOT '250 2\.0\.0 Ok: queued as'
check "R17-13 dsn_submit unreachable: logged (dsn-retry, connection refused)" \
	grep_since "$MXTLS_LOG" "$x" 'event=dsn-retry .*[Cc]onnection refused' 10
check "R17-13 dsn_submit unreachable: counted (mxtls_dsn_total retry)" \
	test "$(metric mxtls_dsn_total 'outcome="retry"')" = 1
check "dsn_submit unreachable: one notice waits (mxtls_dsn_queued)" \
	test "$(metric mxtls_dsn_queued '')" = 1
mxtls_stop
check "R17-13 a notice still queued at shutdown is logged as lost" \
	grep -qE 'event=dsn-lost .*mxtls stopped' "$W/mxtls.$MXTLS_N/mxtls.log"

# ---------------------------------------------------------------- the MTA refuses the notice
# A 5xx is final: logged and counted at once, never tried again.
P=$(free_port)
python3 - "$P" >"$W/refuser.out" 2>&1 <<'EOF3' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
while True:
    c, _ = s.accept()
    f = c.makefile("rb")
    c.sendall(b"220 refuser ESMTP\r\n")
    for line in f:
        verb = line[:4].upper()
        if verb == b"EHLO":
            c.sendall(b"250-refuser\r\n250 8BITMIME\r\n")
        elif verb == b"MAIL":
            c.sendall(b"550 5.7.1 no notices here\r\n")
        else:
            c.sendall(b"221 bye\r\n")
            break
    c.close()
EOF3
it_track refuser $! -
wait_for_port "127.0.0.1:$P" tcp 10
mxtls_start proxy="dsn_submit = 127.0.0.1:$P" </dev/null || finish
x=$(mxtls_mark)
smtpc "$W/t.8" mxtls "EHLO client.test" "MAIL FROM:<$S>" \
	"RCPT TO:<i@example.test> NOTIFY=SUCCESS" "DATA=$M/3" QUIT
check "MTA refuses the notice: the message still gets the upstream's 250" reply_is "$W/t.8" DOT '250 2\.0\.0 Ok: queued as'
check "R17-13 the MTA refuses the notice (5xx): logged as failed with its reply" \
	grep_since "$MXTLS_LOG" "$x" 'event=dsn-failed .*reply="550 5\.7\.1 no notices here"' 10
check "R17-13 the MTA refuses the notice (5xx): counted as failed, not as a retry" sh -c \
	"[ \"\$(curl -s 'http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics' | grep -c '^mxtls_dsn_total{outcome=\"\(failed\|retry\)\"}')\" = 1 ] &&
	curl -s 'http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics' | grep -qx 'mxtls_dsn_total{outcome=\"failed\"} 1'"
mxtls_stop

# ---------------------------------------------------------------- mxtls -t
printf '[proxy]\ndsn_submit = mta.example:25\n' >"$W/bad.ini"
check "R17-13 mxtls -t reports a bad dsn_submit with file:line" sh -c \
	"'$MXTLS' -t -c '$W/bad.ini' 2>&1 | grep -q 'bad.ini:2: \\[proxy\\] dsn_submit: invalid address'"

finish
