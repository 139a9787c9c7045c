#!/bin/sh
# Stored verdicts are keyed by every fact that produced them: a retry record
# made under one policy never decides for another.  Each case sets up two
# deliveries that share all but one fact (the port, the profile, the name
# the certificate had to match), makes the first fail, and checks that the
# second is still contacted and delivered.  Also: a record dated in the
# future counts as none, and a version 1 state file is still read.
#
#   R14-01  two next hops on one address, ports 2545 (handshake fails) and
#           2531 (healthy): the healthy one is contacted and delivers
#   R17-03  one MX for a strict and a verify-none domain: the strict one's
#           name mismatch does not defer (nor push into the clear) the other
#   R17-04  a broken record dated a year ahead (clock corrected since): the
#           host is contacted, the mandatory domain is not bounced, and the
#           record is gone from `mxtls state`
#   R17-04b a version 1 file's record (no port, no policy) applies to port
#           25 under any policy
#   R17-01  transparent mode, one address for two domains: evil's name
#           mismatch is held against mx.evil.test, good's mail to the same
#           address still goes out over TLS
#
# The transparent case redirects with iptables, so the script runs in a
# network namespace of its own (it makes one when it is not in one yet).
if [ -z "${IT_OWN_NETNS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1; then
	IT_OWN_NETNS=1 exec unshare -n sh -c 'ip link set lo up && exec sh "$0"' "$0"
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
it_setup

NOW=$(date +%s)
YEAR=31536000

dns_mx strict.test mx.shared.test 10
dns_mx lax.test mx.shared.test 10
dns_a mx.shared.test 127.0.0.31
dns_a mx.nexthop.test 127.0.0.32
dns_mx fut.test mx1.example.test 10
dns_a mx1.example.test 127.0.0.34
dns_mx v1.test mx2.example.test 10
dns_a mx2.example.test 127.0.0.35
dns_mx good.test mx.example.test 10
dns_a mx.example.test 127.0.0.33
dns_mx evil.test mx.evil.test 10
dns_a mx.evil.test 127.0.0.33
dns_start || finish

pf_mx shared 127.0.0.31:25 cert=wrongname hostname=mx.shared.test || fail "Postfix MX shared starts"
pf_mx p2531 127.0.0.32:2531 hostname=mx.nexthop.test || fail "Postfix MX on port 2531 starts"
hostile_smtpd p2545 127.0.0.32:2545 alert
pf_mx fut 127.0.0.34:25 hostname=mx1.example.test || fail "Postfix MX fut starts"
pf_mx v1 127.0.0.35:25 hostname=mx2.example.test || fail "Postfix MX v1 starts"
pf_mx tp 127.0.0.33:25 hostname=mx.example.test || fail "Postfix MX tp starts"

# The state file as an older mxtls (version 1) left it: a record dated a
# year ahead, and one of ten seconds ago.
mkdir -p "$W/rt/state"
cat >"$W/rt/state/retry-state" <<EOF
mxtls-retry-state 1
mx1.example.test 127.0.0.34 broken $((NOW + YEAR)) $((NOW + YEAR + 3600)) certificate from%20the%20future
mx2.example.test 127.0.0.35 failed-once $((NOW - 10)) 0 handshake version%201%20record
EOF

rt_config proxy='tls_timeout = 5' <<'EOF' || finish
[profile optnone]
tls = opportunistic
verify = none

[match strict.test]
profile = mandatory

[match lax.test]
profile = optnone

[match a.test]
profile = optnone
nexthop = mx.nexthop.test:2545

[match b.test]
profile = mandatory
nexthop = mx.nexthop.test:2531

[match fut.test]
profile = mandatory

[match v1.test]
profile = optnone
EOF
rt_mxtls_start 0 || finish

printf 'Subject: key test\n\nkey test\n' >"$W/msg"
msg() { # RCPT: one message to RCPT, transcript $W/t.RCPT
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<$1>" "DATA=$W/msg" QUIT
}

# --- R17-04: dropped at load
rt_state "$W/state0"
check "R17-04 the record dated a year ahead is dropped at start" rt_state_is "$W/state0" 127.0.0.34 none
check "R17-04b the version 1 record is read (port 25, any policy)" rt_state_is "$W/state0" 127.0.0.35 failed-once 'port=25 .*policy=\*'
m=$(mxtls_mark)
msg u@fut.test
check "R17-04 mandatory domain with a future-dated broken record: delivered (250), not 550" reply_is "$W/t.u@fut.test" DOT '250 '
check "R17-04 ... over TLS to the MX" mx_wait_rcpt fut u@fut.test
check "R17-04 ... no tls-skip logged" no_grep_since "$MXTLS_LOG" "$m" 'event=tls-skip.*127\.0\.0\.34'

# --- R17-04b: the version 1 record still holds for port 25
msg u@v1.test
check "R17-04b version 1 record: 451 4.7.5 at once, host not contacted" reply_is "$W/t.u@v1.test" "RCPT TO:<u@v1.test>" '451 4\.7\.5 .*version 1 record'
check "R17-04b ... nothing delivered" mx_none v1 u@v1.test

# --- R14-01: ports
msg u@a.test
check "R14-01 port 2545 (handshake alert): 451 4.7.5" reply_is "$W/t.u@a.test" "RCPT TO:<u@a.test>" '451 4\.7\.5'
m=$(mxtls_mark)
msg u@b.test
check "R14-01 port 2531 on the same address: contacted and delivered (250)" reply_is "$W/t.u@b.test" DOT '250 '
check "R14-01 ... over TLS" mx_wait_rcpt p2531 u@b.test
check "R14-01 ... no tls-skip logged for port 2531" no_grep_since "$MXTLS_LOG" "$m" 'event=tls-skip'
rt_state "$W/state1"
check "R14-01 mxtls state shows the record with port=2545" rt_state_is "$W/state1" 127.0.0.32 failed-once 'port=2545 '
check "R14-01 mxtls state has no record for port 2531" sh -c "! grep -q 'port=2531 ' '$W/state1'"

# --- R17-03: profiles
msg u@strict.test
check "R17-03 mandatory domain, wrong name at the shared MX: 451 4.7.5" reply_is "$W/t.u@strict.test" "RCPT TO:<u@strict.test>" '451 4\.7\.5 .*mx\.shared\.test'
m=$(mxtls_mark)
msg u@lax.test
check "R17-03 verify-none domain at the same MX: delivered (250)" reply_is "$W/t.u@lax.test" DOT '250 '
check "R17-03 ... over TLS, not in the clear" received_over shared u@lax.test TLSv1.3
check "R17-03 ... no fallback, no tls-skip" no_grep_since "$MXTLS_LOG" "$m" 'fallback=yes|event=tls-skip'

# Records of the retry phase: moved clock, the same state_dir.
rt_mxtls_restart 310 || finish
m=$(mxtls_mark)
msg u2@lax.test
check "R17-03 at the retry of the strict record, the verify-none domain still delivers over TLS" reply_is "$W/t.u2@lax.test" DOT '250 '
check "R17-03 ... no fallback to the clear" no_grep_since "$MXTLS_LOG" "$m" 'fallback=yes'
mxtls_stop

# --- R17-01: transparent mode
TPORT=$(free_port)
d=$W/tp
mkdir -p "$d/state"
cat >"$d/mxtls.ini" <<EOF
[proxy]
mode = transparent
listen = 127.0.0.1:$TPORT
hostname = mxtls.test
allow_clients = 127.0.0.0/8
state_dir = $d/state
log_level = debug
admin_listen = off
user = nobody

[dns]
servers = 127.0.0.1:$DNS_PORT
dnssec = off

[tls]
ca_bundle = $PKI/test-root-ca.pem

[policy]
default = mandatory
EOF
if ! iptables -t nat -A OUTPUT -p tcp -d 127.0.0.33 --dport 25 -m owner ! --uid-owner 65534 -j REDIRECT --to-ports "$TPORT" 2>"$W/iptables.err"; then
	fail "R17-01 redirect to mxtls installed (iptables)" "$(cat "$W/iptables.err")"
	finish
fi
MXTLS_N=$((MXTLS_N + 1))
mkdir -p "$W/mxtls.$MXTLS_N"
MXTLS_LOG=$W/mxtls.$MXTLS_N/mxtls.log
"$MXTLS" -c "$d/mxtls.ini" 2>"$MXTLS_LOG" &
MXTLS_PID=$!
it_track mxtls "$MXTLS_PID" "$MXTLS_N"
wait_for_port "127.0.0.1:$TPORT" tcp 10 || fail "R17-01 transparent mxtls listens" "$(tail -n 20 "$MXTLS_LOG")"

tmsg() { # RCPT: one message dialled to the MX's own address
	smtpc "$W/tp.$1" 127.0.0.33:25 "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<$1>" "DATA=$W/msg" QUIT
}
tmsg u@evil.test
check "R17-01 evil.test (MX mx.evil.test, certificate for mx.example.test): 451 4.7.5" reply_is "$W/tp.u@evil.test" "RCPT TO:<u@evil.test>" '451 4\.7\.5 .*mx\.evil\.test'
m=$(mxtls_mark)
tmsg u@good.test
check "R17-01 good.test at the same address: delivered (250)" reply_is "$W/tp.u@good.test" DOT '250 '
check "R17-01 ... over TLS" received_over tp u@good.test TLSv1.3
check "R17-01 ... not skipped by evil's record" no_grep_since "$MXTLS_LOG" "$m" 'event=tls-skip'
mxtls_stop

finish
