#!/bin/sh
# Postfix as the legacy MTA: relayhost = [127.0.0.1]:PORT of mxtls, which
# delivers to Postfix MXs over STARTTLS.
#
#   example.test   MX mx.example.test   127.0.0.2:25   valid certificate
#   example.net    MX mx2.example.test  127.0.0.3:25   valid certificate
#   expired.test   MX mx.expired.test   127.0.0.4:25   expired certificate, profile mandatory
. "$(dirname "$0")/lib.sh"
it_setup

dns_mx example.test mx.example.test 10
dns_a mx.example.test 127.0.0.2
dns_mx example.net mx2.example.test 10
dns_a mx2.example.test 127.0.0.3
dns_mx expired.test mx.expired.test 10
dns_a mx.expired.test 127.0.0.4
dns_start || finish

pf_mx mx 127.0.0.2:25 hostname=mx.example.test || finish
pf_mx mx2 127.0.0.3:25 hostname=mx2.example.test || finish
pf_mx expired 127.0.0.4:25 cert=expired hostname=mx.expired.test || finish

M=$W/msg
mkdir -p "$M"

# --- the harness: the same MTA relaying straight to the MX delivers intact
P0=$(free_port)
pf_mta mta0 "127.0.0.1:$P0" "[127.0.0.2]:25" || finish
mkmsg "$M/h" "harness: MTA straight to the MX"
smtpc "$W/t.h" "127.0.0.1:$P0" "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<h@example.test>" "DATA=$M/h" QUIT
check "harness: the MTA accepts a message" reply_is "$W/t.h" DOT 250
check "harness: the MTA relays it (status=sent)" mta_status mta0 h@example.test sent
check "harness: MTA -> MX keeps the message byte-identical" delivered mx h@example.test "$M/h"
pf_stop mta0

mxtls_start <<EOF2 || finish
[match expired.test]
profile = mandatory
EOF2
P=$(free_port)
pf_mta mta "127.0.0.1:$P" "[127.0.0.1]:$MXTLS_PORT" || finish

# --- one message, one recipient
mkmsg "$M/1" "MTA via mxtls"
m=$(log_mark "$(pf_log mx)")
x=$(mxtls_mark)
smtpc "$W/t.1" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@example.test>" "DATA=$M/1" QUIT
check "MTA accepted the message" reply_is "$W/t.1" DOT 250
check "MTA logged status=sent through mxtls" mta_status mta a@example.test sent "relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:$MXTLS_PORT"
sent=$LAST_OK
check "MX logged a TLSv1.3 connection from mxtls" mx_tls_since mx "$m" TLSv1.3
check_if $sent "message arrived byte-identical" delivered mx a@example.test "$M/1"
check_if $sent "MX's Received header shows TLSv1.3 from mxtls.test" received_over mx a@example.test TLSv1.3
check_if $sent "the MTA got the MX's own reply (its queue id) to the final dot" sh -c '
	id=$(grep -F "to=<a@example.test>" "$1" | grep -o "queued as [0-9A-F]*" | tail -n 1 | cut -d" " -f3)
	[ -n "$id" ] && grep -q "$id: to=<a@example.test>" "$2" || { echo "queue id ${id:-?} of the MTA log not in the MX log"; false; }' \
	- "$(pf_log mta)" "$(pf_log mx)"
check "mxtls logged event=delivery tls=TLSv1.3 verify=ok" mxtls_delivery_since "$x" 'tls=TLSv1\.3' 'verify=ok' 'example\.test'

# --- one message to two domains: mxtls takes one (452 4.5.3 for the other),
# the MTA sends the other in a later transaction
mkmsg "$M/2" "MTA via mxtls to two domains"
smtpc "$W/t.2" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	"RCPT TO:<b@example.test>" "RCPT TO:<c@example.net>" "DATA=$M/2" QUIT
check "two domains: MTA accepted the message" reply_is "$W/t.2" DOT 250
check "two domains: status=sent for b@example.test" mta_status mta b@example.test sent
check "two domains: status=sent for c@example.net" mta_status mta c@example.net sent
check "two domains: byte-identical at mx.example.test" delivered mx b@example.test "$M/2"
check "two domains: byte-identical at mx2.example.test" delivered mx2 c@example.net "$M/2"
check "two domains: received over TLSv1.3 at mx2.example.test" received_over mx2 c@example.net TLSv1.3

# --- mandatory + expired certificate: the MTA defers with mxtls's reason
smtpc "$W/t.3" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<d@expired.test>" "DATA=$M/1" QUIT
check "expired, mandatory: MTA accepted the message" reply_is "$W/t.3" DOT 250
check "expired, mandatory: MTA logged status=deferred with 451 4.7.5 and the reason" \
	mta_status mta d@expired.test deferred '451 4\.7\.5.*[Ee]xpired'
check "expired, mandatory: nothing delivered" mx_none expired d@expired.test

pf_stop mta
mxtls_stop
finish
