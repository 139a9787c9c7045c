#!/bin/sh
# REQUIRETLS (RFC 8689): the MTA asks, per message, for verified TLS all
# the way.  mxtls advertises it, sends such a message only over TLS that
# DANE, MTA-STS or the web PKI verified, whatever the profile says, and
# only to an upstream that advertises REQUIRETLS itself (the parameter is
# passed on); otherwise 550 5.7.30, after the failure table's retry where
# the failure is a TLS one.
#
#   rt-ok.test      127.0.2.1  scripted MX: STARTTLS, valid certificate,
#                              REQUIRETLS advertised
#   rt-noext.test   127.0.2.2  Postfix: STARTTLS, valid certificate, no
#                              REQUIRETLS
#   rt-expired.test 127.0.2.3  scripted MX: expired certificate, REQUIRETLS
#   rt-plain.test   127.0.2.4  scripted MX: no STARTTLS, REQUIRETLS
#
# Every domain is routed by a [match] with nexthop under profile optnone
# (opportunistic, verify = none): without REQUIRETLS the same messages are
# delivered, which the control rows show.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"
it_setup

hostile_smtpd ok 127.0.2.1:25 normal --ehlo-extra REQUIRETLS || finish
pf_mx noext 127.0.2.2:25 cert=valid hostname=mx.noext.test || finish
hostile_smtpd expired 127.0.2.3:25 normal --ehlo-extra REQUIRETLS \
	--cert "$PKI/expired.chain.pem" --key "$PKI/expired.key" || finish
hostile_smtpd plain 127.0.2.4:25 no-starttls --ehlo-extra REQUIRETLS || finish

mkmsg "$W/msg" "REQUIRETLS test message"

mxtls_start <<EOF || finish
retry_delay = 1

[profile optnone]
tls = opportunistic
verify = none

[match rt-ok.test]
profile = optnone
nexthop = 127.0.2.1:25
mx = mx.tls.test

[match rt-noext.test]
profile = optnone
nexthop = 127.0.2.2:25
mx = mx.tls.test

[match rt-expired.test]
profile = optnone
nexthop = 127.0.2.3:25
mx = mx.tls.test

[match rt-plain.test]
profile = optnone
nexthop = 127.0.2.4:25
mx = mx.tls.test
EOF

# send NAME RCPT [PARAMS]: one message, transcript $W/t.NAME, the log
# lines it caused $W/l.NAME.
send() {
	_m=$(mxtls_mark)
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>${3:+ $3}" \
		"RCPT TO:<$2>" "DATA=$W/msg" QUIT
	log_since "$MXTLS_LOG" "$_m" >"$W/l.$1"
}
# reply_is NAME LABEL ERE: the reply to LABEL in transcript NAME matches.
reply_is() {
	grep -qE "^$2 => $3" "$W/t.$1" && return 0
	echo "expected $2 => /$3/ in:"
	sed 's/^/  /' "$W/t.$1"
	return 1
}

smtpc "$W/t.ehlo" mxtls "EHLO client.test" QUIT
check "EHLO: mxtls advertises REQUIRETLS" grep -qE '^EHLO client.test => 250.* REQUIRETLS( |$)' "$W/t.ehlo"

# --- verified TLS to an upstream with REQUIRETLS: delivered, parameter passed on
send ok u1@rt-ok.test REQUIRETLS
check "rt-ok: MAIL REQUIRETLS accepted" reply_is ok 'MAIL FROM:<s@sender.test> REQUIRETLS' 250
check "rt-ok: delivered (250 to the final dot)" reply_is ok DOT 250
check "rt-ok: the upstream got the message" h_has ok u1@rt-ok.test
check "rt-ok: ... with MAIL FROM ... REQUIRETLS" sh -c "grep -lx 'rcpt: TO:<u1@rt-ok.test>' '$W/h-ok/mail/'*.env | xargs grep -qE '^mail: FROM:<s@sender.test> REQUIRETLS$'"
check "rt-ok: the delivery line says requiretls=yes, verified" \
	grep -qE 'event=delivery .*rcpt_domain=rt-ok\.test .*verify=ok .*profile=optnone\+requiretls .*requiretls=yes' "$W/l.ok"
check "rt-ok: the mail line says requiretls=yes" grep -qE 'event=mail .*requiretls=yes' "$W/l.ok"

# --- an upstream without REQUIRETLS: 550 5.7.30, nothing delivered
send noext u2@rt-noext.test REQUIRETLS
check "rt-noext: RCPT refused 550 5.7.30" reply_is noext 'RCPT TO:<u2@rt-noext.test>' '550 5\.7\.30 '
check "rt-noext: nothing delivered" mx_none noext u2@rt-noext.test
send noext-ctl u3@rt-noext.test
check "rt-noext control: without REQUIRETLS delivered" mx_wait_rcpt noext u3@rt-noext.test 1 5

# --- a certificate that fails under a verify = none profile: deferred, then 550 5.7.30
send exp1 u4@rt-expired.test REQUIRETLS
check "rt-expired: first attempt deferred 451 4.7.5" reply_is exp1 'RCPT TO:<u4@rt-expired.test>' '451 4\.7\.5 '
sleep 2 # retry_delay = 1
send exp2 u4@rt-expired.test REQUIRETLS
check "rt-expired: the retry is refused 550 5.7.30" reply_is exp2 'RCPT TO:<u4@rt-expired.test>' '550 5\.7\.30 '
check "rt-expired: nothing delivered" test "$(h_count expired u4@rt-expired.test)" -eq 0
send exp-ctl u5@rt-expired.test
check "rt-expired control: without REQUIRETLS delivered (verify = none)" h_has expired u5@rt-expired.test

# --- no STARTTLS under an opportunistic profile: never in the clear
send plain1 u6@rt-plain.test REQUIRETLS
check "rt-plain: first attempt deferred 451 4.7.5" reply_is plain1 'RCPT TO:<u6@rt-plain.test>' '451 4\.7\.5 '
sleep 2
send plain2 u6@rt-plain.test REQUIRETLS
check "rt-plain: the retry is refused 550 5.7.30" reply_is plain2 'RCPT TO:<u6@rt-plain.test>' '550 5\.7\.30 '
check "rt-plain: nothing delivered" test "$(h_count plain u6@rt-plain.test)" -eq 0
check "rt-plain: no plaintext session with REQUIRETLS" no_grep_since "$W/l.plain2" 0 'event=delivery outcome=(plaintext|fallback) .*requiretls=yes'
send plain-ctl u7@rt-plain.test
check "rt-plain control: without REQUIRETLS delivered in the clear" h_has plain u7@rt-plain.test

check "metrics: mxtls_requiretls_total counts sent and failed" sh -c \
	"curl -s 'http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics' | grep -q '^mxtls_requiretls_total{outcome=\"failed\"} [1-9]' &&
	 curl -s 'http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics' | grep -q '^mxtls_requiretls_total{outcome=\"tls\"} 1'"

mxtls_stop
finish
