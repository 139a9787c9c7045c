#!/bin/sh
# mxtls is never an open relay (the attack suite; docs/security.md H-01,
# H-02, H-03, B-08).  Three real Postfix MXs, each with a domain of its own
# and every command it receives in its log (debug_peer_list):
#
#   allowed.test  MX mx1.example.test  127.0.10.2:25
#   evil.test     MX mx2.example.test  127.0.10.3:25  must see nothing at all
#   c.test        MX mx3.example.test  127.0.10.4:25
#
# mxtls[1] listens on [::ffff:127.0.0.1] (a dual-stack socket: IPv4 clients
# arrive as ::ffff:a.b.c.d), mxtls[2] on 127.0.0.1; both with
# allow_clients = 127.0.0.1/32.  The outside client is 127.0.10.50.
#   1. From outside, every relay trick (plain, source route, %-hack, quoted
#      local part with @, bang path, XCLIENT and PROXY claims of an allowed
#      address), answered or pipelined before the greeting: one 554 5.7.1,
#      a close, and no DNS query, no upstream connection, no mail anywhere.
#   2. From inside, the routing uses the final domain: each trick addressed
#      to allowed.test reaches allowed.test's MX (the exact RCPT line sent
#      upstream is pinned), evil.test's MX sees nothing.
#   3. XCLIENT, XFORWARD and a PROXY header from an allowed client: 5xx, and
#      the identity they claim appears nowhere.
#   4. No STARTTLS downstream; STARTTLS with pipelined plaintext behind it:
#      502, and the session stays in sync.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup

OUT=127.0.10.50 # a client address outside allow_clients

dns_mx allowed.test mx1.example.test 10
dns_a mx1.example.test 127.0.10.2
dns_mx evil.test mx2.example.test 10
dns_a mx2.example.test 127.0.10.3
dns_mx c.test mx3.example.test 10
dns_a mx3.example.test 127.0.10.4
dns_start || finish

DBG="main=debug_peer_list = 127.0.0.0/8"
pf_mx allowed 127.0.10.2:25 hostname=mx1.example.test "$DBG" || finish
pf_mx evil 127.0.10.3:25 hostname=mx2.example.test "$DBG" || finish
pf_mx c 127.0.10.4:25 hostname=mx3.example.test "$DBG" || finish

# mx_connects NAME: how many SMTP connections the Postfix MX has accepted.
mx_connects() { grep -c 'postfix/smtpd\[[0-9]*\]: connect from' "$(pf_log "$1")"; }

# connects_are NAME N: the MX has accepted exactly N connections.
connects_are() {
	_c=$(mx_connects "$1")
	[ "$_c" -eq "$2" ] && return 0
	echo "MX $1 accepted $_c connections, expected $2; its log:"
	grep -E 'connect from|: < ' "$(pf_log "$1")" | tail -n 10 | cut -c 1-300 | sed 's/^/  /'
	return 1
}

# refused OUT: the transcript has exactly one reply, 554 5.7.1, and the
# connection was closed (nothing else, in particular no 2xx or 3xx).
refused() {
	_n=$(grep -cE '=> [0-9]{3}([ -]|$)' "$1")
	if [ "$_n" -eq 1 ] && grep -qE '=> 554 5\.7\.1 ' "$1" &&
		grep -qE 'closed|reset' "$1"; then
		return 0
	fi
	echo "expected one reply, 554 5.7.1, then a close; got:"
	sed 's/^/  /' "$1"
	return 1
}

# in_order OUT LABEL ERE...: the replies "LABEL#1", "LABEL#2"... of a PIPEX
# step match the EREs in turn, and there are no more of them.
in_order() {
	_o=$1
	_l=$2
	shift 2
	_k=0
	for _re in "$@"; do
		_k=$((_k + 1))
		reply_is "$_o" "$_l#$_k" "$_re" || return 1
	done
	_k=$((_k + 1))
	if grep -q "^$_l#$_k => " "$_o"; then
		echo "more than $((_k - 1)) replies to $_l:"
		sed 's/^/  /' "$_o"
		return 1
	fi
}

# --- the harness: the evil MX counts connections, and mail reaches MXs
smtpc "$W/harness" 127.0.10.3:25 "EHLO harness.test" QUIT
check "harness: evil.test's MX answers and its log counts the connection" connects_are evil 1
check "harness: DNS MX of evil.test" dns_has evil.test MX "MX 10 mx2.example.test"
DNS0=$(log_mark "$W/dnsmasq.log")

# --- mxtls[1]: a dual-stack socket, IPv4 peers as ::ffff:a.b.c.d
MXTLS_N=1
P6=$(free_port)
D6=$W/mxtls.1
mkdir -p "$D6/state"
cat >"$D6/mxtls.ini" <<EOF
[proxy]
listen = [::ffff:127.0.0.1]:$P6
hostname = mxtls.test
allow_clients = 127.0.0.1/32
state_dir = state
log_level = debug
user = nobody
admin_listen = 127.0.0.1:$(free_port)

[dns]
servers = 127.0.0.1:$DNS_PORT
dnssec = off
allow_private_mx = yes

[tls]
ca_bundle = $PKI/test-root-ca.pem

[policy]
default = mandatory
EOF
if "$MXTLS" -t -c "$D6/mxtls.ini" >"$D6/check.out" 2>&1; then
	"$MXTLS" -c "$D6/mxtls.ini" 2>"$D6/mxtls.log" >"$D6/stdout" &
	it_track mxtls $! "$MXTLS_N"
	check "mxtls[1] listens on [::ffff:127.0.0.1]:$P6" wait_for_port "[::ffff:127.0.0.1]:$P6" tcp 10
else
	fail "mxtls[1] accepts listen = [::ffff:127.0.0.1]:$P6" "$(cat "$D6/check.out")"
fi

# --- mxtls[2]: 127.0.0.1, the one all other cases use
at_mxtls_start allow=127.0.0.1/32 <<EOF || finish
[policy]
default = mandatory
EOF
ADMIN=127.0.0.1:$MXTLS_ADMIN_PORT

# ================================================================ 1. outside
TRICKS="<victim@c.test>
<victim@evil.test>
<@a.test:u@c.test>
<@a.test,@allowed.test:u@evil.test>
<u%evil.test@c.test>
<\"u@evil.test\"@c.test>
<evil.test!u@c.test>
<u@c.test@evil.test>"
M=$W/msg
mkmsg "$M" "relay attempt"
i=0
printf '%s\n' "$TRICKS" >"$W/tricks"
while IFS= read -r t; do
	i=$((i + 1))
	# As a client that reads the greeting, then as one that does not:
	# the whole transaction pipelined before the greeting.
	smtpx "$W/o$i.a" mxtls --bind "$OUT" "EHLO relay.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:$t" "DATA=$M" QUIT
	smtpx "$W/o$i.b" mxtls --bind "$OUT" --no-greeting \
		"PIPEX=EHLO relay.test\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:$t\r\nDATA\r\nSubject: relay $i\r\n\r\nrelayed?\r\n.\r\nQUIT\r\n"
	check "H-02 outside client, RCPT TO:$t: 554 5.7.1 at connect, closed" refused "$W/o$i.a"
	check "H-02 outside client, RCPT TO:$t pipelined before the greeting: only 554 5.7.1, closed" refused "$W/o$i.b"
done <"$W/tricks"
NOUT=$((2 * i))

# H-03 from outside: claims of an allowed identity never get past the 554.
smtpx "$W/o.proxy" mxtls --bind "$OUT" --no-greeting \
	"PIPEX=PROXY TCP4 127.0.0.1 127.0.0.1 1234 25\r\nEHLO relay.test\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:<victim@c.test>\r\n"
check "H-03 outside client, PROXY header claiming 127.0.0.1: only 554 5.7.1, closed" refused "$W/o.proxy"
smtpx "$W/o.xclient" mxtls --bind "$OUT" \
	"PIPEX=XCLIENT ADDR=127.0.0.1 NAME=localhost\r\nEHLO relay.test\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:<victim@c.test>\r\n"
check "H-03 outside client, XCLIENT ADDR=127.0.0.1: only 554 5.7.1, closed" refused "$W/o.xclient"
NOUT=$((NOUT + 2))

# H-01 on the dual-stack socket: the v4 allowlist is applied to ::ffff:v4.
P2=$MXTLS_PORT
smtpx "$W/o6.out" "127.0.0.1:$P6" --bind "$OUT" "EHLO relay.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<victim@c.test>"
check "H-01 dual-stack socket, client ::ffff:127.0.10.50: 554 5.7.1, closed" refused "$W/o6.out"
smtpx "$W/i6.out" "127.0.0.1:$P6" "EHLO inside.test" QUIT
check "H-01 dual-stack socket, client ::ffff:127.0.0.1 matches 127.0.0.1/32: served" reply_is "$W/i6.out" "EHLO inside.test" '250[ -]'
check "H-01 dual-stack socket: both logged as ::ffff: addresses, refused and allowed" sh -c \
	"grep -q 'event=connect client=::ffff:127\\.0\\.10\\.50 allowed=no' '$D6/mxtls.log' &&
	 grep -q 'event=connect client=::ffff:127\\.0\\.0\\.1 allowed=yes' '$D6/mxtls.log'"

MX2LOG=$MXTLS_LOG
# log_count FILE ERE: how many lines of FILE match.
log_count() { grep -cE -- "$2" "$1"; }
check "H-01 every outside session was logged allowed=no ($NOUT)" \
	test "$(log_count "$MX2LOG" "event=connect client=$OUT allowed=no")" -eq "$NOUT"
python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
	"http://$ADMIN/metrics" >"$W/metrics" 2>&1
check "H-01 metrics: mxtls_sessions_refused_total{reason=\"not_allowed\"} $NOUT" sh -c \
	"grep -qxF 'mxtls_sessions_refused_total{reason=\"not_allowed\"} $NOUT' '$W/metrics' || { grep refused '$W/metrics'; false; }"
check "H-01 outside sessions: mxtls made no DNS query and no upstream connection" sh -c \
	"! grep -E 'sid=[0-9]+ event=(mail|rcpt|dns|mta-sts|up-send|up-reply|delivery|tls|plaintext|upstream-error) ' '$MX2LOG' '$D6/mxtls.log'"
check "H-01 outside sessions: the DNS server saw no query" sh -c \
	"! tail -c +$((DNS0 + 1)) '$W/dnsmasq.log' | grep -F 'query['"
check "H-01 outside sessions: allowed.test's MX saw no connection" connects_are allowed 0
check "H-01 outside sessions: evil.test's MX saw no connection" connects_are evil 1
check "H-01 outside sessions: c.test's MX saw no connection" connects_are c 0

# ================================================================ 2. inside
# route_case N RCPT MXNAME DELIVERED_TO UPSTREAM_RCPT: from 127.0.0.1 a
# message to RCPT is accepted, mxtls sent "RCPT TO:<UPSTREAM_RCPT>" upstream
# (the exact line), and MXNAME delivered it to DELIVERED_TO.
route_case() {
	_x=$(mxtls_mark)
	_m=$(log_mark "$(pf_log "$3")")
	smtpx "$W/r$1.out" mxtls "EHLO inside.test" "MAIL FROM:<s@sender.test>" "RCPT TO:$2" "DATA=$M" QUIT
	check "H-02 inside, RCPT TO:$2: 250 to RCPT and to the final dot" sh -c \
		"grep -q '^RCPT TO:.* => 250 ' '$W/r$1.out' && grep -q '^DOT => 250 ' '$W/r$1.out' || { cat '$W/r$1.out'; false; }"
	check "H-02 inside, RCPT TO:$2: the line sent upstream is RCPT TO:<$5>" \
		up_sent "$_x" "RCPT TO:<$5>"
	check "H-02 inside, RCPT TO:$2: $3's MX received RCPT TO:<$5>" \
		mx_got "$3" "$_m" "RCPT TO:<$5>"
	check "H-02 inside, RCPT TO:$2: delivered by $3's MX to $4" mx_wait_rcpt "$3" "$4"
}
# mx_got NAME MARK LINE: the MX logged the command LINE from mxtls after MARK.
mx_got() {
	log_since "$(pf_log "$1")" "$2" | grep -qF -- ": < unknown[127.0.0.1]: $3" && return 0
	echo "MX $1 did not log the command '$3'; the commands it got:"
	log_since "$(pf_log "$1")" "$2" | grep -F ': < ' | cut -c 1-300 | sed 's/^/  /'
	return 1
}
# up_sent MARK LINE: mxtls logged "event=up-send line=LINE\r\n" after MARK
# (logfmt: the value quoted, its quotes and line end escaped).
up_sent() {
	_want="event=up-send line=\"$(printf '%s' "$2" | sed 's/"/\\"/g')\\r\\n\""
	log_since "$MXTLS_LOG" "$1" | grep -qF -- "$_want" && return 0
	echo "no '$_want' in $MXTLS_LOG; its up-send lines:"
	log_since "$MXTLS_LOG" "$1" | grep 'event=up-send' | sed 's/^/  /'
	return 1
}

DNS1=$(log_mark "$W/dnsmasq.log")
route_case 1 '<u1%evil.test@allowed.test>' allowed 'u1%evil.test@allowed.test' 'u1%evil.test@allowed.test'
route_case 2 '<"u2@evil.test"@allowed.test>' allowed '"u2@evil.test"@allowed.test' '"u2@evil.test"@allowed.test'
# A source route is ignored (RFC 5321 4.1.1.3, appendix C): stripped, not
# passed on; the mail goes to the final domain.
route_case 3 '<@evil.test:u3@allowed.test>' allowed 'u3@allowed.test' 'u3@allowed.test'
route_case 4 '<@evil.test,@c.test:u4@allowed.test>' allowed 'u4@allowed.test' 'u4@allowed.test'
route_case 5 '<evil.test!u5@allowed.test>' allowed 'evil.test!u5@allowed.test' 'evil.test!u5@allowed.test'
# ... in both directions: a route through allowed.test does not keep a
# mail for c.test at allowed.test's MX.
route_case 6 '<@allowed.test:u6@c.test>' c 'u6@c.test' 'u6@c.test'
check "H-02 inside: allowed.test's MX got no mail for c.test" mx_none allowed u6@c.test
check "H-02 inside: evil.test's MX saw no connection" connects_are evil 1
check "H-02 inside: evil.test's MX delivered nothing" test "$(mx_count evil)" -eq 0
check "H-02 inside: nobody looked up evil.test or its MX in DNS" sh -c \
	"! tail -c +$((DNS1 + 1)) '$W/dnsmasq.log' | grep -E 'query\\[[A-Z]+\\] [^ ]*(evil\\.test|mx2\\.example\\.test) '"

# ================================================================ 3. XCLIENT, PROXY
x=$(mxtls_mark)
m=$(log_mark "$(pf_log allowed)")
smtpx "$W/h03.out" mxtls "EHLO h03.test" "XCLIENT ADDR=10.0.0.1 NAME=trusted" \
	"XFORWARD ADDR=10.0.0.1 NAME=trusted" "MAIL FROM:<s@sender.test>" "RCPT TO:<h03@allowed.test>" "DATA=$M" QUIT
check "H-03 EHLO advertises neither XCLIENT nor XFORWARD" sh -c "! grep -E '^EHLO.*X(CLIENT|FORWARD)' '$W/h03.out'"
check "H-03 XCLIENT ADDR=10.0.0.1 NAME=trusted from an allowed client: 5xx" \
	reply_is "$W/h03.out" "XCLIENT ADDR=10.0.0.1 NAME=trusted" '50[02] '
check "H-03 XFORWARD from an allowed client: 5xx" reply_is "$W/h03.out" "XFORWARD ADDR=10.0.0.1 NAME=trusted" '50[02] '
check "H-03 after XCLIENT the session goes on: message accepted" reply_is "$W/h03.out" DOT '250 '
check "H-03 ... and delivered" mx_wait_rcpt allowed h03@allowed.test
check "H-03 XCLIENT/XFORWARD never reached the MX, 10.0.0.1 appears nowhere" sh -c \
	"! tail -c +$((m + 1)) '$(pf_log allowed)' | grep -E 'XCLIENT|XFORWARD|10\\.0\\.0\\.1|trusted' &&
	 ! grep -l '10\\.0\\.0\\.1' \$(ls '$(pf_dir allowed)'/mail/maildir/new/*) 2>/dev/null | grep -q . &&
	 ! tail -c +$((x + 1)) '$MXTLS_LOG' | grep -E '10\\.0\\.0\\.1|trusted'"
x=$(mxtls_mark)
m=$(log_mark "$(pf_log allowed)")
smtpx "$W/h03p.out" mxtls --no-greeting "PIPEX=PROXY TCP4 10.0.0.1 127.0.0.1 1234 25\r\n" \
	"EHLO h03p.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<h03p@allowed.test>" "DATA=$M" QUIT
check "H-03 PROXY v1 header from an allowed client: the greeting, then 500" in_order "$W/h03p.out" PIPEX '220 ' '50[02] '
check "H-03 after the PROXY header the session goes on: message accepted" reply_is "$W/h03p.out" DOT '250 '
check "H-03 ... delivered, and 10.0.0.1 appears nowhere" sh -c \
	"! tail -c +$((m + 1)) '$(pf_log allowed)' | grep -E 'PROXY|10\\.0\\.0\\.1' &&
	 ! tail -c +$((x + 1)) '$MXTLS_LOG' | grep -E '10\\.0\\.0\\.1' &&
	 tail -c +$((x + 1)) '$MXTLS_LOG' | grep -q 'event=connect client=127\\.0\\.0\\.1 allowed=yes'"
check_if "$LAST_OK" "H-03 PROXY: the message was delivered" mx_wait_rcpt allowed h03p@allowed.test

# ================================================================ 4. B-08
smtpx "$W/b08.out" mxtls "EHLO b08.test" \
	"PIPEX=STARTTLS\r\nNOOP\r\n" \
	"PIPEX=STARTTLS\r\nEHLO commandinjectiontester\r\n" \
	"PIPEX=STARTTLS\r\nRSET\r\n" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<b08@allowed.test>" "DATA=$M" NOOP QUIT
check "B-08 EHLO does not advertise STARTTLS (nor AUTH)" sh -c \
	"grep -q '^EHLO b08.test => 250' '$W/b08.out' && ! grep -E '^EHLO b08.test =>.*(STARTTLS|AUTH)' '$W/b08.out'"
check "B-08 STARTTLS + NOOP in one write: 502 5.5.1, then NOOP's own 250" in_order "$W/b08.out" PIPEX '502 5\.5\.1' '250 '
# PIPEX labels repeat per step: look at the second and third in turn.
awk '/^PIPEX#1 => / { n++ } n == 2' "$W/b08.out" >"$W/b08.2"
awk '/^PIPEX#1 => / { n++ } n == 3' "$W/b08.out" >"$W/b08.3"
check "B-08 STARTTLS + EHLO commandinjectiontester in one write: 502 5.5.1, then EHLO's 250" \
	in_order "$W/b08.2" PIPEX '502 5\.5\.1' '250[ -]mxtls\.test'
check "B-08 STARTTLS + RSET in one write: 502 5.5.1, then RSET's 250" in_order "$W/b08.3" PIPEX '502 5\.5\.1' '250 '
check "B-08 the session stayed in plaintext and in sync: a message, NOOP 250, QUIT 221" sh -c \
	"grep -q '^DOT => 250 ' '$W/b08.out' && grep -q '^NOOP => 250 ' '$W/b08.out' && grep -q '^QUIT => 221 ' '$W/b08.out' || { cat '$W/b08.out'; false; }"
check_if "$LAST_OK" "B-08 ... and the message was delivered" mx_wait_rcpt allowed b08@allowed.test

# Last: nothing of all this reached evil.test's MX.
check "H-02 end: evil.test's MX saw one connection (the harness) and no mail" sh -c \
	"[ \$(grep -c 'postfix/smtpd\\[[0-9]*\\]: connect from' '$(pf_log evil)') -eq 1 ] && [ $(mx_count evil) -eq 0 ]"
note "mxtls[2] port $P2, mxtls[1] port $P6"
finish
