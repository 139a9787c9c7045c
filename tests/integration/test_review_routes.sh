#!/bin/sh
# Routes and the MX hosts they may reach.
#
#   R17-02  a domain without MX (implicit MX: its own address) whose policy
#           pins mx names: the domain itself must match a pin too
#   R17-05  recipients join a transaction only on the same route: a profile
#           whose name differs only in case, and a recipient pinned to
#           other mx names, get 452 4.5.3 instead of riding a connection
#           that was not made (or verified) for them
#   R17-10  an MX host on a loopback or private address is not contacted
#           (451 naming the reason), nor an MX record that is an address;
#           [dns] allow_private_mx opens it for listed networks; a literal
#           nexthop stays the operator's choice
. "$(dirname "$0")/lib.sh"
it_setup

dns_a mx.valid.test 127.0.0.51
dns_mx x.test mx.plain.test 10
dns_a mx.plain.test 127.0.0.52
dns_mx y.test mx.example.test 10
dns_a mx.example.test 127.0.0.53
dns_mx lo.test mx.tls.test 10
dns_a mx.tls.test 127.0.0.54
dns_mx lit.test 127.0.0.54 10
dns_mx ok.test mx1.example.test 10
dns_a mx1.example.test 127.0.0.55
dns_start || finish

pf_mx valid 127.0.0.51:25 hostname=mx.valid.test || fail "Postfix MX valid starts"
pf_mx plain 127.0.0.52:25 tls=no hostname=mx.plain.test || fail "Postfix MX plain starts"
pf_mx ex 127.0.0.53:25 hostname=mx.example.test || fail "Postfix MX ex starts"
pf_mx lo 127.0.0.54:25 hostname=mx.tls.test || fail "Postfix MX lo starts"
pf_mx ok 127.0.0.55:25 hostname=mx1.example.test || fail "Postfix MX ok starts"
printf 'Subject: routes\n\nroutes test\n' >"$W/msg"

mxtls_start <<'EOF' || finish
[profile relaxed]
tls = opportunistic

[profile Relaxed]
tls = mandatory

[match mx.valid.test]
profile = mandatory
mx = mail.mx.valid.test

[match x.test]
profile = relaxed

[match vip@x.test]
profile = Relaxed

[match y.test]
profile = mandatory

[match pin@y.test]
profile = mandatory
mx = mx.other.test
EOF

# --- R17-02
smtpc "$W/t02" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@mx.valid.test>" "DATA=$W/msg" QUIT
check "R17-02 no MX, mx pinned to mail.mx.valid.test: the domain's own address is not used (451 4.7.5)" \
	reply_is "$W/t02" "RCPT TO:<u@mx.valid.test>" '451 4\.7\.5 No MX host of mx\.valid\.test matches'
check "R17-02 ... nothing delivered" mx_none valid u@mx.valid.test

# --- R17-05: profile names are case-sensitive
smtpc "$W/t05a" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@x.test>" \
	"RCPT TO:<vip@x.test>" "DATA=$W/msg" QUIT
check "R17-05 a@x.test (profile relaxed, opportunistic, MX without STARTTLS): 250" \
	reply_is "$W/t05a" "RCPT TO:<a@x.test>" '250 '
check "R17-05 vip@x.test (profile Relaxed, mandatory) does not join the clear transaction: 452 4.5.3" \
	reply_is "$W/t05a" "RCPT TO:<vip@x.test>" '452 4\.5\.3'
check "R17-05 ... a@x.test delivered in the clear" mx_wait_rcpt plain a@x.test
check "R17-05 ... vip@x.test not delivered in the clear" mx_none plain vip@x.test

# --- R17-05: the mx pins are part of the route
smtpc "$W/t05b" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@y.test>" \
	"RCPT TO:<pin@y.test>" "DATA=$W/msg" QUIT
check "R17-05 a@y.test (verified for mx.example.test): 250" reply_is "$W/t05b" "RCPT TO:<a@y.test>" '250 '
check "R17-05 pin@y.test (pinned to mx.other.test) does not join: 452 4.5.3" \
	reply_is "$W/t05b" "RCPT TO:<pin@y.test>" '452 4\.5\.3'
check "R17-05 ... pin@y.test not delivered to mx.example.test" mx_none ex pin@y.test
mxtls_stop

# --- R17-10: private MX addresses
mxtls_start private_mx=no </dev/null || finish
smtpc "$W/t10a" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@lo.test>" "DATA=$W/msg" QUIT
check "R17-10 MX on a loopback address: 451 4.4.x naming the reason" \
	reply_is "$W/t10a" "RCPT TO:<u@lo.test>" '451 4\.4\.[0-9] .*127\.0\.0\.54, a loopback address'
smtpc "$W/t10b" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@lit.test>" "DATA=$W/msg" QUIT
check "R17-10 an MX record that is an address (127.0.0.54): 451 4.4.x, loopback" \
	reply_is "$W/t10b" "RCPT TO:<u@lit.test>" '451 4\.4\.[0-9] .*loopback'
check "R17-10 ... the MX was never contacted" sh -c "! grep -q 'connect from' '$(pf_log lo)'"
mxtls_stop

mxtls_start private_mx=127.0.0.55/32 <<'EOF' || finish
[match nh.test]
profile = mandatory
nexthop = 127.0.0.54
mx = mx.tls.test
EOF
smtpc "$W/t10c" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@ok.test>" "DATA=$W/msg" QUIT
check "R17-10 allow_private_mx = 127.0.0.55/32: that MX is contacted and delivers" reply_is "$W/t10c" DOT '250 '
smtpc "$W/t10d" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@lo.test>" "DATA=$W/msg" QUIT
check "R17-10 ... 127.0.0.54 is still refused" reply_is "$W/t10d" "RCPT TO:<u@lo.test>" '451 4\.4\.[0-9] .*loopback'
smtpc "$W/t10e" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@nh.test>" "DATA=$W/msg" QUIT
check "R17-10 a literal nexthop on loopback is the operator's choice: delivered" reply_is "$W/t10e" DOT '250 '
printf '[dns]\nallow_private_mx = maybe\n' >"$W/bad.ini"
check "R17-10 mxtls -t: a bad allow_private_mx value names the key" sh -c \
	"'$MXTLS' -t -c '$W/bad.ini' 2>&1 | grep 'allow_private_mx'"
mxtls_stop
finish
