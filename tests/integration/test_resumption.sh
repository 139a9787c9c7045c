#!/bin/sh
# TLS session resumption per upstream host, and the rule that keeps it
# safe: only sessions whose verification passed are kept, because a
# resumed handshake runs no chain verification.
#
#   server   listens        certificate   profile            expected
#   good     127.0.0.31:25  valid         mandatory, strict  2nd delivery resumed
#   bad      127.0.0.32:25  expired       opportunistic,     full handshake and
#                                         verify none        the failure logged
#                                                            every time
. "$(dirname "$0")/lib.sh"
it_setup

dns_a mx.valid.test 127.0.0.31
dns_a mx.verifynone.test 127.0.0.32
dns_mx good.test mx.valid.test
dns_mx bad.test mx.verifynone.test
dns_start || finish

pf_mx good 127.0.0.31:25 hostname=mx.valid.test || finish
pf_mx bad 127.0.0.32:25 cert=expired hostname=mx.verifynone.test || finish

mxtls_start default=mandatory proxy='connection_cache_time = 0' <<CONF || finish
[profile lax]
tls = opportunistic
verify = none

[match bad.test]
profile = lax
CONF

M=$W/msg
mkdir -p "$M"
N=0
# send DOMAIN LABEL: one message, 250 expected; TLSLINE: mxtls's tls event.
send() {
	N=$((N + 1))
	_x=$(mxtls_mark)
	mkmsg "$M/$N" "resumption $N"
	smtpc "$W/t.$N" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	    "RCPT TO:<r$N@$1>" "DATA=$M/$N" QUIT
	check "$2: 250 to the final dot" reply_is "$W/t.$N" DOT 250
	TLSLINE=$(log_since "$MXTLS_LOG" "$_x" | grep ' event=tls ' | tail -n 1)
}
has() { printf '%s\n' "$TLSLINE" | grep -q -- "$1"; }

send good.test "first delivery to a verified host"
check "first delivery: full handshake" has 'resumed=no'
send good.test "second delivery to the same host"
check "second delivery: session resumed" has 'resumed=yes'
check "second delivery: verified as ok" has 'verify=ok'
send bad.test "first delivery past an expired certificate (verify none)"
check "unverified host: full handshake" has 'resumed=no'
send bad.test "second delivery past an expired certificate"
check "unverified host: never resumed" has 'resumed=no'
check "unverified host: the failure is logged again" has 'verify=fail'
mxtls_stop
finish
