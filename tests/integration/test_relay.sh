#!/bin/sh
# Relay mode end to end: an SMTP client -> mxtls -> Postfix as the MX, found
# through DNS (dnsmasq) or a nexthop override.
#
#   example.test    MX mx.example.test   127.0.0.2:25   STARTTLS, valid cert
#   plain.test      MX mx.plain.test     127.0.0.3:25   no STARTTLS (opportunistic)
#   mplain.test     MX mx-m.plain.test   127.0.0.3:25   no STARTTLS, profile mandatory
#   nullmx.test     MX 0 .                              null MX (RFC 7505)
#   nosuch.test                                         NXDOMAIN
#   nexthop.test    nexthop 127.0.0.2:2525, mx = mx.nexthop.test (mandatory)
#   byname.test     nexthop mx.nexthop.test:2525 (a name; mandatory)
#   badname.test    nexthop 127.0.0.2:2526, mx = mx.wrong.test (mandatory: 451)
# Every failing case has a host of its own, so the retry state of one case
# never decides another.
. "$(dirname "$0")/lib.sh"
it_setup

dns_mx example.test mx.example.test 10
dns_a mx.example.test 127.0.0.2
dns_mx plain.test mx.plain.test 10
dns_a mx.plain.test 127.0.0.3
dns_mx mplain.test mx-m.plain.test 10
dns_a mx-m.plain.test 127.0.0.3
dns_null_mx nullmx.test
dns_a mx.nexthop.test 127.0.0.2
dns_start || finish

pf_mx mx 127.0.0.2:25,127.0.0.2:2525,127.0.0.2:2526 cert=valid hostname=mx.example.test || finish
pf_mx plain 127.0.0.3:25 tls=no hostname=mx.plain.test || finish

M=$W/msg
mkdir -p "$M"

# --- the harness itself, before mxtls is involved
check "harness: DNS MX of example.test" dns_has example.test MX "MX 10 mx.example.test"
check "harness: DNS A of mx.example.test" dns_has mx.example.test A "A 127.0.0.2"
check "harness: DNS null MX of nullmx.test" dns_has nullmx.test MX "MX 0 ."
check "harness: DNS NXDOMAIN for nosuch.test" dns_has nosuch.test MX "rcode=NXDOMAIN"
check "harness: the MX serves a chain that verifies for mx.example.test" sh -c \
	"openssl s_client -starttls smtp -connect 127.0.0.2:25 -servername mx.example.test \
	 -verify_hostname mx.example.test -CAfile '$PKI/test-root-ca.pem' -verify_return_error \
	 </dev/null 2>&1 | grep -q 'Verify return code: 0 (ok)'"
check "harness: the plain MX offers no STARTTLS" sh -c \
	"python3 '$IT_FILES/smtpc.py' 127.0.0.3:25 'EHLO c.test' QUIT | grep '^EHLO' | grep -vq STARTTLS"
mkmsg "$M/h" "harness message"
head -c -1 "$M/h" >"$M/h.swaks" # swaks adds the last line end itself
swaks --server 127.0.0.2:25 --tls --from s@sender.test --to harness@example.test \
	--data "@$M/h.swaks" >"$W/swaks.h.out" 2>&1
check "harness: swaks straight to the MX, message byte-identical" delivered mx harness@example.test "$M/h"

mxtls_start <<EOF || finish
[match mplain.test]
profile = mandatory

[match nexthop.test]
profile = mandatory
nexthop = 127.0.0.2:2525
mx = mx.nexthop.test

[match byname.test]
profile = mandatory
nexthop = mx.nexthop.test:2525

[match badname.test]
profile = mandatory
nexthop = 127.0.0.2:2526
mx = mx.wrong.test
EOF

# --- swaks -> mxtls -> MX over STARTTLS
mkmsg "$M/1" "swaks through mxtls"
head -c -1 "$M/1" >"$M/1.swaks"
m=$(log_mark "$(pf_log mx)")
x=$(mxtls_mark)
swaks --server "127.0.0.1:$MXTLS_PORT" --from s@sender.test --to u1@example.test \
	--timeout 15 --data "@$M/1.swaks" >"$W/swaks.1.out" 2>&1
echo "exit=$?" >>"$W/swaks.1.out"
check "swaks: message accepted (exit 0, 250 to the final dot)" swaks_ok "$W/swaks.1.out"
check "swaks: MX logged a TLSv1.3 connection" mx_tls_since mx "$m" TLSv1.3
check "swaks: delivered byte-identical" delivered mx u1@example.test "$M/1"
check "swaks: MX's Received header shows TLSv1.3 from mxtls.test" received_over mx u1@example.test TLSv1.3
check "swaks: mxtls logged event=delivery tls=TLSv1.3 verify=ok" \
	mxtls_delivery_since "$x" 'tls=TLSv1\.3' 'verify=ok' 'mx=mx\.example\.test' 'addr=127\.0\.0\.2'

# --- opportunistic, server without STARTTLS: delivered in the clear
mkmsg "$M/2" "opportunistic to a plaintext MX"
x=$(mxtls_mark)
smtpc "$W/t2" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<p1@plain.test>" "DATA=$M/2" QUIT
check "no STARTTLS + opportunistic: RCPT 250" reply_is "$W/t2" "RCPT TO:<p1@plain.test>" 250
check "no STARTTLS + opportunistic: 250 to the final dot" reply_is "$W/t2" DOT 250
check "no STARTTLS + opportunistic: delivered byte-identical" delivered plain p1@plain.test "$M/2"
check "no STARTTLS + opportunistic: Received header without TLS" received_over plain p1@plain.test none
check "no STARTTLS + opportunistic: mxtls logged tls=none" mxtls_delivery_since "$x" 'tls=none' 'mx=mx\.plain\.test'

# --- mandatory, server without STARTTLS: 451 4.7.5, nothing delivered
n=$(mx_count plain)
smtpc "$W/t3" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<p2@mplain.test>" "DATA=$M/2" QUIT
check "no STARTTLS + mandatory: RCPT 451 4.7.5" reply_is "$W/t3" "RCPT TO:<p2@mplain.test>" '451 4\.7\.5'
check "no STARTTLS + mandatory: nothing delivered" sh -c "sleep 0.5; [ \$(find '$(pf_dir plain)/mail' -path '*/new/*' -type f | wc -l) -eq $n ]"
check "no STARTTLS + mandatory: no message data reached the MX" sh -c "! grep -q 'p2@mplain.test' '$(pf_log plain)'"

# --- two messages in one session, then a third to another next hop
mkmsg "$M/4a" "first of a session"
mkmsg "$M/4b" "second of a session"
mkmsg "$M/4c" "third of a session, other next hop"
smtpc "$W/t4" mxtls "EHLO client.test" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<s1@example.test>" "DATA=$M/4a" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<s2@example.test>" "DATA=$M/4b" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<s3@plain.test>" "DATA=$M/4c" QUIT
check "one session: first message 250" reply_is "$W/t4" DOT 250 1
check "one session: second message 250" reply_is "$W/t4" DOT 250 2
check "one session: third message (other next hop) 250" reply_is "$W/t4" DOT 250 3
check "one session: first delivered byte-identical" delivered mx s1@example.test "$M/4a"
check "one session: second delivered byte-identical" delivered mx s2@example.test "$M/4b"
check "one session: third delivered byte-identical" delivered plain s3@plain.test "$M/4c"
check "one session: QUIT 221" reply_is "$W/t4" QUIT 221

# --- RSET drops a transaction; the next one is delivered once
mkmsg "$M/5" "after RSET"
smtpc "$W/t5" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<r0@example.test>" RSET \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<r1@example.test>" "DATA=$M/5" QUIT
check "RSET: 250 to RSET" reply_is "$W/t5" RSET 250
check "RSET: next transaction delivered byte-identical" delivered mx r1@example.test "$M/5"
check "RSET: reset recipient not delivered" mx_none mx r0@example.test

# --- a second recipient domain in one transaction: 452 4.5.3, later transaction works
mkmsg "$M/6" "two domains"
smtpc "$W/t6" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	"RCPT TO:<d1@example.test>" "RCPT TO:<d2@plain.test>" "DATA=$M/6" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<d2@plain.test>" "DATA=$M/6" QUIT
check "second domain: first RCPT 250" reply_is "$W/t6" "RCPT TO:<d1@example.test>" 250
check "second domain: second RCPT 452 4.5.3" reply_is "$W/t6" "RCPT TO:<d2@plain.test>" '452 4\.5\.3'
check "second domain: message delivered to the first" delivered mx d1@example.test "$M/6"
check "second domain: later transaction delivers to the second" delivered plain d2@plain.test "$M/6"
check "second domain: exactly one copy each" sh -c "sleep 0.3; [ \$(grep -l '^Delivered-To: d1@example.test' '$(pf_dir mx)'/mail/maildir/new/* | wc -l) -eq 1 ] && [ \$(grep -l '^Delivered-To: d2@plain.test' '$(pf_dir plain)'/mail/maildir/new/* | wc -l) -eq 1 ]"

# --- null MX and NXDOMAIN (each in a session of its own), then a good one
smtpc "$W/t7" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<n@nullmx.test>" QUIT
check "D-14 null MX: RCPT 556 5.1.10" reply_is "$W/t7" "RCPT TO:<n@nullmx.test>" '556 5\.1\.10'
smtpc "$W/t7b" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<n@nosuch.test>" QUIT
check "D-14 NXDOMAIN: RCPT 550 5.1.2" reply_is "$W/t7b" "RCPT TO:<n@nosuch.test>" '550 5\.1\.2'
mkmsg "$M/7" "after refused recipients"
smtpc "$W/t7c" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<n@nullmx.test>" \
	"RCPT TO:<n@nosuch.test>" "RCPT TO:<n1@example.test>" "DATA=$M/7" QUIT
check "D-14 refused recipients first: null MX still 556 5.1.10" reply_is "$W/t7c" "RCPT TO:<n@nullmx.test>" '556 5\.1\.10'
check "D-14 refused recipients first: NXDOMAIN still 550 5.1.2 (a refused RCPT binds no next hop)" \
	reply_is "$W/t7c" "RCPT TO:<n@nosuch.test>" '550 5\.1\.2'
check "refused recipients first: a good recipient after them is accepted (250)" \
	reply_is "$W/t7c" "RCPT TO:<n1@example.test>" 250
check_if $LAST_OK "refused recipients first: ... and delivered byte-identical" \
	delivered mx n1@example.test "$M/7"

# --- nexthop overrides
mkmsg "$M/8" "nexthop by address"
m=$(log_mark "$(pf_log mx)")
x=$(mxtls_mark)
smtpc "$W/t8" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<h1@nexthop.test>" "DATA=$M/8" QUIT
check "nexthop literal + mx names: 250" reply_is "$W/t8" DOT 250
check "nexthop literal + mx names: delivered byte-identical" delivered mx h1@nexthop.test "$M/8"
check "nexthop literal + mx names: over TLS on port 2525" sh -c \
	"tail -c +$((m + 1)) '$(pf_log mx)' | grep -E 'smtpd\[' | grep -qE 'TLS connection established from .*: TLSv1\.3'"
check "nexthop literal + mx names: mxtls logged verify=ok" mxtls_delivery_since "$x" 'verify=ok' 'addr=127\.0\.0\.2' 'port=2525|2525'

mkmsg "$M/9" "nexthop by name"
x=$(mxtls_mark)
smtpc "$W/t9" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<h2@byname.test>" "DATA=$M/9" QUIT
check "nexthop by name: 250" reply_is "$W/t9" DOT 250
check "nexthop by name: delivered byte-identical" delivered mx h2@byname.test "$M/9"
check "nexthop by name: mxtls logged TLS, verify=ok" mxtls_delivery_since "$x" 'tls=TLSv1\.[23]' 'verify=ok' 'mx\.nexthop\.test'

smtpc "$W/t10" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<h3@badname.test>" "DATA=$M/9" QUIT
check "nexthop literal + wrong mx names: RCPT 451 4.7.5" reply_is "$W/t10" "RCPT TO:<h3@badname.test>" '451 4\.7\.5'
check "nexthop literal + wrong mx names: nothing delivered" mx_none mx h3@badname.test

# --- several recipients in one transaction
mkmsg "$M/11" "three recipients"
smtpc "$W/t11" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	"RCPT TO:<a1@example.test>" "RCPT TO:<a2@example.test>" "RCPT TO:<a3@example.test>" "DATA=$M/11" QUIT
check "multi-recipient: all RCPTs 250" sh -c "grep -c '^RCPT TO:<a[123]@example.test> => 250' '$W/t11' | grep -qx 3 || cat '$W/t11'"
check "multi-recipient: 250 to the final dot" reply_is "$W/t11" DOT 250
for r in a1 a2 a3; do
	check "multi-recipient: $r delivered byte-identical" delivered mx "$r@example.test" "$M/11"
done
check "multi-recipient: one upstream transaction" sh -c \
	"grep -E 'nrcpt=3' '$(pf_log mx)' | grep -q 'from=<s@sender.test>' || { grep qmgr '$(pf_log mx)' | tail -n 5; false; }"

# --- pipelined commands
mkmsg "$M/12" "pipelined"
smtpc "$W/t12" mxtls "EHLO client.test" "PIPE=MAIL FROM:<s@sender.test>|RCPT TO:<q1@example.test>|RCPT TO:<q2@example.test>" "DATA=$M/12" QUIT
check "PIPELINING: MAIL, RCPT, RCPT answered in order (250 each)" sh -c \
	"[ \$(grep -cE '^(MAIL FROM:<s@sender.test>|RCPT TO:<q[12]@example.test>) => 250' '$W/t12') -eq 3 ] || { cat '$W/t12'; false; }"
check "PIPELINING: delivered byte-identical" delivered mx q2@example.test "$M/12"

# --- 1 MiB
mkmsg "$M/big" "one mebibyte" 1024
smtpc "$W/t13" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test> SIZE=$(wc -c <"$M/big")" "RCPT TO:<big@example.test>" "DATA=$M/big" QUIT
check "1 MiB: 250 to the final dot" reply_is "$W/t13" DOT 250
check "1 MiB: delivered byte-identical" delivered mx big@example.test "$M/big"

mxtls_stop
finish
