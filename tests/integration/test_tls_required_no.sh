#!/bin/sh
# "TLS-Required: No" (RFC 8689 section 5): a message whose header says so
# is delivered even when the recipient domain's TLS policy fails — over TLS
# without the certificate check where that works — and under a local
# mandatory profile only with [policy] honour_tls_required_no = yes.  The
# recipient is held (250) until the header is read at DATA; a message
# without the header gets the policy's failure at its end, and nothing is
# delivered.  REQUIRETLS prevails over the header.
#
#	E 127.0.0.3  mx2.example.test  Postfix, expired certificate
#	  127.0.0.5  nginx: https://mta-sts.sts.test/.well-known/mta-sts.txt
#
#	sts.test    MX mx2.example.test, MTA-STS enforce (mx2.example.test)
#	mand.test   MX mx2.example.test, [match] profile = mandatory
#
# mxtls[1]: honour_tls_required_no = no (the default), [report] on;
# mxtls[2]: honour_tls_required_no = yes.
#
# Needs: dnsmasq, Postfix, nginx, openssl, python3; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup

CA=$PKI/test-root-ca.pem
NG_ADDR=127.0.0.5
TODAY=$(date -u +%F)

pol_sts_enforce sts.test mx2.example.test
pol_sts_serve "$NG_ADDR" sts.test || finish

dns_mx sts.test mx2.example.test
dns_mx mand.test mx2.example.test
dns_a mx2.example.test 127.0.0.3
pol_sts_dns "$NG_ADDR" sts.test
dns_txt _smtp._tls.sts.test 'v=TLSRPTv1;rua=mailto:tlsrpt@sts.test'
dns_start || finish

pf_mx E 127.0.0.3:25 hostname=mx2.example.test cert=expired || { fail "Postfix E starts"; finish; }

# The messages: one with the header (among others, not first), one without.
mkmsg "$W/plain.txt" "no TLS-Required header"
mkmsg "$W/no.txt" "with TLS-Required: No"
awk 'NR == 3 { print "TLS-Required: No" } { print }' "$W/no.txt" >"$W/no.tmp" && mv "$W/no.tmp" "$W/no.txt"

# send NAME RCPT MSG PARAMS [RCPT2]: one message (MAIL parameters PARAMS,
# a second recipient RCPT2), transcript $W/t.NAME, the log lines of that
# session $W/l.NAME.
send() {
	_m=$(mxtls_mark)
	if [ -n "${5:-}" ]; then
		smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>${4:+ $4}" \
			"RCPT TO:<$2>" "RCPT TO:<$5>" "DATA=$3" QUIT
	else
		smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>${4:+ $4}" \
			"RCPT TO:<$2>" "DATA=$3" QUIT
	fi
	log_since "$MXTLS_LOG" "$_m" >"$W/l.$1"
}
t() { reply_is "$W/t.$1" "$2" "$3"; }

# ---------------------------------------------------------------- mxtls[1]

mxtls_start <<EOF || finish
mta_sts_ca_bundle = $CA
mta_sts_wait = 10

[match mand.test]
profile = mandatory

[report]
enabled = yes
organization_name = mxtls test
contact_info = tls-reports@sender.test
submitter = mta.sender.test
EOF

send sts-no a1@sts.test "$W/no.txt" ""
check "sts.test, TLS-Required: No: the recipient is held (250)" t sts-no "RCPT TO:<a1@sts.test>" '250 2\.1\.5 Held'
check "sts.test, TLS-Required: No: delivered despite the MTA-STS failure (250 at the dot)" t sts-no DOT '250 '
check "sts.test, TLS-Required: No: Postfix E got it" mx_wait_rcpt E a1@sts.test 1 5
check "sts.test, TLS-Required: No: the message arrived byte for byte" delivered E a1@sts.test "$W/no.txt"
check "sts.test, TLS-Required: No: over TLS, unverified, logged tls_required_no=yes" \
	grep -qE 'event=delivery outcome=tls .*rcpt_domain=sts\.test .*verify=none .*profile=opportunistic\+tls-required-no .*tls_required_no=yes' "$W/l.sts-no"
check "sts.test, TLS-Required: No: the MTA-STS failure was logged first" \
	grep -qE 'event=tls-failure .*result=certificate-expired' "$W/l.sts-no"

send sts-plain a2@sts.test "$W/plain.txt" ""
check "sts.test, no header: the recipient is held (250)" t sts-plain "RCPT TO:<a2@sts.test>" '250 2\.1\.5 Held'
check "sts.test, no header: deferred at the dot with the policy's reply (451 4.7.5)" t sts-plain DOT '451 4\.7\.5 '
check "sts.test, no header: nothing delivered" mx_none E a2@sts.test
check "sts.test, no header: logged (event=tls-required-absent)" \
	grep -qE 'event=tls-required-absent rcpt_domain=sts\.test reply="451 4\.7\.5 ' "$W/l.sts-plain"

send sts-two a3@sts.test "$W/no.txt" "" a4@sts.test
check "sts.test, two recipients: the second is deferred 452 4.5.3 while the first is held" \
	t sts-two "RCPT TO:<a4@sts.test>" '452 4\.5\.3 '
check "sts.test, two recipients: the first is delivered" t sts-two DOT '250 '
check "sts.test, two recipients: a3 delivered" mx_wait_rcpt E a3@sts.test 1 5
check "sts.test, two recipients: a4 not delivered" mx_none E a4@sts.test

send sts-req a5@sts.test "$W/no.txt" REQUIRETLS
check "sts.test, REQUIRETLS and TLS-Required: No: REQUIRETLS prevails (451, no hold)" \
	t sts-req "RCPT TO:<a5@sts.test>" '451 4\.7\.5 '
check "sts.test, REQUIRETLS: nothing delivered" mx_none E a5@sts.test

send mand-no b1@mand.test "$W/no.txt" ""
check "mand.test (local mandatory), honour_tls_required_no = no: refused at once (451 4.7.5)" \
	t mand-no "RCPT TO:<b1@mand.test>" '451 4\.7\.5 '
check "mand.test, honour_tls_required_no = no: nothing delivered" mx_none E b1@mand.test

check "metric mxtls_tls_required_no_total{outcome=\"tls\"} counts the deliveries" sh -c \
	"curl -s 'http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics' | grep -qx 'mxtls_tls_required_no_total{outcome=\"tls\"} 2'"

# The TLS report counts the MTA-STS failure, and no success for sts.test:
# a message sent on its TLS-Required: No applied no policy.
sleep 2 # the counts reach the journal within a second
"$MXTLS" -c "$MXTLS_CONF" report --dry-run "$TODAY" >"$W/report.out" 2>&1
cat >"$W/check.py" <<'EOF'
import json, sys
reports, cur = {}, None
for l in open(sys.argv[1]).read().splitlines():
    word, _, rest = l.partition(" ")
    if word == "domain":
        cur = reports[rest] = {}
    elif cur is not None:
        cur[word] = rest
ps = json.loads(reports["sts.test"]["json"])["policies"]
assert [p["policy"]["policy-type"] for p in ps] == ["sts"], ps
s = ps[0]["summary"]
# The first message's attempt and the REQUIRETLS one's (a profile of its
# own, so a retry record of its own): both failed, nothing counted as a
# success of the policy.
assert s == {"total-successful-session-count": 0,
             "total-failure-session-count": 2}, s
assert {d["result-type"] for d in ps[0]["failure-details"]} == {"certificate-expired"}, ps
EOF
check "the TLS report for sts.test counts the MTA-STS failure (certificate-expired), no success" \
	sh -c "python3 '$W/check.py' '$W/report.out' || cat '$W/report.out'"
mxtls_stop

# ---------------------------------------------------------------- mxtls[2]

mxtls_start <<EOF || finish
mta_sts_ca_bundle = $CA
honour_tls_required_no = yes

[match mand.test]
profile = mandatory
EOF
send mand-yes b2@mand.test "$W/no.txt" ""
check "mand.test, honour_tls_required_no = yes: held, then delivered" t mand-yes DOT '250 '
check "mand.test, honour_tls_required_no = yes: Postfix E got it" mx_wait_rcpt E b2@mand.test 1 5
check "mand.test, honour_tls_required_no = yes: logged tls_required_no=yes" \
	grep -qE 'event=delivery outcome=tls .*rcpt_domain=mand\.test .*profile=mandatory\+tls-required-no .*tls_required_no=yes' "$W/l.mand-yes"
send mand-plain b3@mand.test "$W/plain.txt" ""
check "mand.test, honour = yes, no header: deferred at the dot (451 4.7.5)" t mand-plain DOT '451 4\.7\.5 '
check "mand.test, honour = yes, no header: nothing delivered" mx_none E b3@mand.test
mxtls_stop
finish
