#!/bin/sh
# The attack suite, part 1: hostile upstream servers.  Each case
# of docs/security.md sections A-D and I-02 is one scripted server
# (tests/hostile/smtpd.py) on an address of its own (127.0.1.N:25), reached
# through a literal nexthop (the certificate is checked against
# mx.tls.test, which the test PKI's valid leaf carries).  Every attack runs
# at the same time as a healthy session (mxtls -> real Postfix MX over
# verified TLS, 127.0.1.1:25), and all attacks run at once.  For each:
#   - the reply the MTA gets: 4xx where the mail was not delivered, never
#     250 to a final dot the upstream did not acknowledge;
#   - the reason, in the reply and in mxtls's event=delivery line;
#   - under mandatory: nothing of the transaction in the clear (the
#     server's transcripts and saved messages);
#   - the healthy session delivered.
# Timeouts are small (3 s) so that drip and stall cases end fast: the
# deadline is per phase, a server dripping a byte a second still times out.
# ASan's quarantine would hide the memory checks: keep it small.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:quarantine_size_mb=16}
export ASAN_OPTIONS
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_setup
T0=$(date +%s)

# --- cases: C ID MODE PROFILE [smtpd.py options...]
CASES=$W/cases
: >"$CASES"
N=1
C() {
	N=$((N + 1))
	_id=$1
	_mode=$2
	_prof=$3
	shift 3
	echo "$_id 127.0.1.$N $_prof" >>"$CASES"
	at_spawn "$_id" "127.0.1.$N:25" "$_mode" "$@"
}
addr_of() { awk -v i="$1" '$1 == i { print $2 }' "$CASES"; }

LONG=$W/long-ehlo
python3 -c '
import sys
sys.stdout.write("".join("250-line %d of a very long reply\r\n" % i for i in range(5000)) + "250 PIPELINING\r\n")' >"$LONG"
AUTH60=$(python3 -c 'print(" ".join("X-MECH-%d" % i for i in range(60)))')

C a01m no-starttls mandatory
C a01o no-starttls opportunistic
C a02a starttls-refused-454 mandatory
C a02b starttls-refused-554 mandatory
C a02c scripted opportunistic --reply 'starttls=502 5.5.1 not implemented\r\n'
C a03a starttls-garbage mandatory
C a03b scripted mandatory --reply 'starttls=250 OK\r\n'
C a03c scripted mandatory --reply 'starttls=354 Start mail input\r\n'
C a03d scripted mandatory --reply 'starttls=421 4.3.2 shutting down\r\n@close@'
C a04 scripted mandatory --reply 'ehlo=500 5.5.2 Syntax error, command unrecognized\r\n'
C a05m scripted mandatory --reply 'ehlo=220 EHLO client!\r\n'
C a05o scripted opportunistic --reply 'ehlo=220 EHLO client!\r\n'
C a06a scripted mandatory --reply 'greeting=554 No SMTP service here\r\n'
C a06b scripted mandatory --reply 'greeting=HELLO\r\n'
C a07 scripted mandatory --reply 'quit=@silent@' --reply 'rset=354 go ahead\r\n'
C a08 scripted mandatory --reply 'ehlo_plain=250-a08\r\n250-SIZE 100000000\r\n250-CHUNKING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n' \
	--reply 'ehlo_tls=250-a08\r\n250 STARTTLS\r\n'
C a09 scripted mandatory --reply 'ehlo_tls=@silent@'
C a10a handshake-stall mandatory
C a10b alert mandatory
C a10c close-mid-handshake mandatory
C a10d starttls-silent mandatory
C a11a tls10-only mandatory
C a11b tls11-only mandatory
C a12 weak-cipher mandatory cert=rsa
C b01 inject-same-segment mandatory
C b02 scripted mandatory --reply 'starttls=220 ok\r\n250-SIZE 1'
C b03 inject-later mandatory
C b04 scripted mandatory --reply 'greeting=220 b04 ESMTP\r\n250-b04\r\n250 PIPELINING\r\n'
C b04ok scripted mandatory --reply 'greeting=220-b04ok first line\r\n220 b04ok ESMTP\r\n'
C b04tls scripted mandatory --reply 'tls_hello=220 b04tls ESMTP\r\n250-b04tls\r\n250 PIPELINING\r\n'
C b05a scripted mandatory --reply 'mail=250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n'
C b05b scripted mandatory --reply 'rcpt=250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n'
C b05c scripted mandatory --reply 'data=354 go\r\n250 2.0.0 queued\r\n'
C b06a scripted mandatory --reply 'data=354 go\r\n@sleep:0.5@250 2.0.0 Ok: queued early\r\n'
C b06b scripted mandatory --reply 'data=354 go\r\n@sleep:0.5@552 5.3.4 too big\r\n@close@'
C b06c scripted mandatory --reply 'data=354 go\r\n@sleep:0.5@250 2.0.0 Ok: queued early\r\n' --reply 'dot=554 5.7.1 rejected after all\r\n'
C b07 tls-close-notify-then-talk mandatory
C c01a scripted mandatory --reply 'ehlo_tls=250-c01a\r\n25\r\n'
C c01b scripted mandatory --reply 'mail=250-a\r\n\r\n'
C c01c scripted mandatory --reply 'ehlo_tls=250-c01c.example\r\n250\r\n'
C c02 scripted mandatory --reply 'rcpt=250-first\r\n550 second\r\n'
C c03a bad-code mandatory --only-after-tls
C c03b scripted mandatory --reply 'mail=2500 OK\r\n'
C c03c scripted mandatory --reply 'mail=250xOK\r\n'
C c03d scripted mandatory --reply 'mail= 250 OK\r\n'
C c03e scripted mandatory --reply 'mail=099 x\r\n'
C c04a huge-line mandatory --only-after-tls
C c04b endless-continuation mandatory --only-after-tls
C c04c scripted mandatory --reply "ehlo_tls=@file:$LONG@"
C c04d scripted mandatory --reply "rcpt=250 2.1.5 $(printf '%0600d' 0)\\r\\n"
C c04e scripted mandatory --reply "rcpt=250 2.1.5 $(printf '%04000d' 0)\\r\\n"
C c05a nul-in-reply mandatory --only-after-tls
C c05b scripted mandatory --reply 'rcpt=550 5.1.1 <x> unknown\x1b[2J\r\n'
C c05c scripted mandatory --reply 'rcpt=550 5.1.1 no\nX-Injected: 1\r\n'
C c06a scripted mandatory --reply 'dot=550 2.0.0 Ok queued\r\n'
C c06b scripted mandatory --reply 'rcpt=250 5.7.1 rejected\r\n'
C c07a scripted mandatory --reply 'ehlo_plain=250-c07a\r\n250-starttls\r\n250 PIPELINING\r\n'
C c07b scripted mandatory --reply 'ehlo_plain=250-c07b\r\n250-STARTTLSX\r\n250-X-STARTTLS\r\n250 AUTH STARTTLS\r\n'
C c07c scripted mandatory --reply "ehlo_tls=250-c07c\\r\\n250-SIZE 18446744073709551616\\r\\n250-SIZE -1\\r\\n250-SIZE abc\\r\\n250-CHUNKING junk\\r\\n250 AUTH $AUTH60\\r\\n"
C d01a close-after-dot mandatory --only-after-tls
C d01b scripted mandatory --reply 'body=@read:1000@@close@'
C d01c close-after-354 mandatory --only-after-tls
C d02 scripted mandatory --reply 'dot=@silent@'
C d03a scripted mandatory --reply 'dot=452 4.3.1 Insufficient storage\r\n'
C d03b scripted mandatory --reply 'dot=554 5.7.1 rejected\r\n'
C d04 scripted mandatory --reply 'rcpt#2=550 5.1.1 unknown\r\n' --reply 'rcpt#3=452 4.2.2 mailbox full\r\n'
C d05 scripted mandatory --reply 'rcpt=550 5.1.1 unknown\r\n'
C d07 scripted mandatory --reply 'body=@read:1024@421 4.3.2 shutting down\r\n@close@'
C d08a scripted mandatory --reply 'data=250 OK\r\n'
C d08b scripted mandatory --reply 'mail=354 go ahead\r\n'
C d08c scripted mandatory --reply 'rcpt=220 x\r\n'
C d11 scripted mandatory --reply 'ehlo_tls=250-d11\r\n250 SIZE 10485760\r\n'
C d12 normal optnone cert=wrongname
C i02a drip mandatory
C i02b drip mandatory --only-after-tls
C i02c scripted mandatory --reply 'greeting=@silent@'

at_healthy_setup 127.0.1.1 || finish
A12=yes
while read -r id addr prof; do
	at_ready "$id"
	_rc=$?
	if [ $_rc -eq 3 ]; then
		note "SKIP $id: the local OpenSSL cannot run this server: $AT_UNSUPPORTED"
		[ "$id" = a12 ] && A12=no
	fi
done <"$CASES"

# --- mxtls: small phase deadlines, every case a match of its own
at_mxtls_start proxy='connect_timeout = 3' proxy='greeting_timeout = 3' \
	proxy='command_timeout = 3' proxy='tls_timeout = 3' proxy='data_init_timeout = 3' \
	proxy='data_block_timeout = 3' proxy='data_done_timeout = 3' \
	proxy='max_sessions_per_client = 1000' <<EOF || finish
[policy]
default = opportunistic

[profile optnone]
tls = opportunistic
verify = none

$(at_healthy_conf)
$(while read -r id addr prof; do hostile_conf "$id" "$addr" "$prof"; done <"$CASES")
[match d12m.test]
profile = mandatory
nexthop = $(addr_of d12):25
mx = mx.tls.test
EOF
fds_base "$MXTLS_PID" before
RSS0=$(rss_kib "$MXTLS_PID")

# --- messages
M7=$W/m7 # 7-bit, a few KiB, lines that need dot-stuffing
python3 - "$M7" <<'EOF'
import sys
lines = ["From: a@sender.test", "To: u@x.test", "Subject: attack suite", "", "body",
         ".leading dot", "..two", ".", "MAIL FROM:<spoof@bank.test>", "RCPT TO:<victim@x.test>", "DATA"]
lines += ["line %04d %s" % (i, "x" * 60) for i in range(60)]
open(sys.argv[1], "w", newline="\n").write("\n".join(lines) + "\n")
EOF
M7S=$W/m7.stuffed
python3 - "$M7" "$M7S" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read().replace(b"\n", b"\r\n")
out = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in d.split(b"\r\n")[:-1])
open(sys.argv[2], "wb").write(out + b".\r\n")
EOF
MBIG=$W/mbig # 2 MiB, SMTP verbs inside: longer than what is in flight when the server gives up
cp "$M7" "$MBIG"
python3 -c 'import sys; sys.stdout.write(("MAIL FROM:<spoof@bank.test>\nRCPT TO:<victim@x.test>\nDATA\n" + "y" * 900 + "\n") * 2200)' >>"$MBIG"
M8=$W/m8 # 8-bit body
mkmsg "$M8" "8-bit body"

# --- run every attack, each beside a healthy session, a batch at a time
JOBS=""
NB=0
R() { # ID [steps...]: the attack session in the background
	_id=$1
	shift
	if [ $# -eq 0 ]; then
		set -- "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@$_id.test>" "DATA=$M7" QUIT
	fi
	smtpx "$W/$_id.out" mxtls "$@" &
	JOBS="$JOBS $!"
	at_healthy_start "$_id"
	JOBS="$JOBS $AT_HEALTHY_PID"
	NB=$((NB + 1))
	if [ $NB -ge 12 ]; then
		# shellcheck disable=SC2086
		for j in $JOBS; do wait "$j" 2>/dev/null; done
		JOBS=""
		NB=0
	fi
}
T_RUN=$(date +%s)
while read -r id addr prof; do
	case $id in
	a07) R a07 "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@a07.test>" RSET \
		"MAIL FROM:<s@sender.test>" "RCPT TO:<u2@a07.test>" "DATA=$M7" QUIT ;;
	a08) R a08 "EHLO mta.test" "MAIL FROM:<s@sender.test> SIZE=3000" "RCPT TO:<u@a08.test>" "DATA=$M7" QUIT ;;
	b06a | b06b | b06c) R "$id" "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@$id.test>" \
		RAW='DATA\r\n' SLEEP=2.5 "SENDF=$M7S" RECV=DOT QUIET=1 NOOP QUIT ;;
	d01b) R d01b "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@d01b.test>" "DATA=$MBIG" QUIT ;;
	c05c) R c05c "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@c05c.test>" QUIET=1 NOOP QUIT ;;
	d04) R d04 "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@d04.test>" \
		"RCPT TO:<b@d04.test>" "RCPT TO:<c@d04.test>" "DATA=$M7" QUIT ;;
	d05) R d05 "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@d05.test>" \
		"RCPT TO:<b@d05.test>" DATA QUIT ;;
	d07) R d07 "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@d07.test>" "DATA=$MBIG" \
		QUIET=1 NOOP QUIT ;;
	d11) R d11 "EHLO mta.test" "MAIL FROM:<s@sender.test> SIZE=50000000 RET=HDRS ENVID=q" \
		"RCPT TO:<u@d11.test>" "DATA=$M7" \
		"MAIL FROM:<s@sender.test> BODY=8BITMIME SMTPUTF8" "RCPT TO:<u2@d11.test>" \
		"DATA=$M8" QUIT ;;
	d12) R d12 "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@d12.test>" "DATA=$M7" \
		"MAIL FROM:<s@sender.test>" "RCPT TO:<v@d12m.test>" "DATA=$M7" QUIT ;;
	*) R "$id" ;;
	esac
done <"$CASES"
# shellcheck disable=SC2086
for j in $JOBS; do wait "$j" 2>/dev/null; done
T_DONE=$(date +%s)
note "all $(wc -l <"$CASES") attacks with their healthy sessions ran (12 at a time) in $((T_DONE - T_RUN)) s"

# logged NAME ERE: mxtls's event=delivery line for NAME.test matches ERE.
logged() { mxtls_delivery_since 0 "rcpt_domain=$1\\.test( |\$)" "$2"; }
# std NAME "TITLE" REPLY_ERE LOG_ERE: the common checks of an attack that
# must end in a tempfail under mandatory.
std() {
	check "$2: the MTA gets 4xx, never 250" tempfail "$W/$1.out"
	[ -n "$3" ] && check "$2: the reply names the reason" sh -c \
		"grep -E '^(RCPT TO|DATA|DOT)' '$W/$1.out' | grep -qiE -- '$3' || { echo 'no reply matches /$3/:'; cat '$W/$1.out'; false; }"
	[ -n "$4" ] && check "$2: mxtls logs the reason" logged "$1" "$4"
	check "$2: nothing in the clear" at_no_plain "$1"
	check "$2: nothing delivered" at_saved_is "$1" 0
	check "$2: the concurrent healthy session delivered" at_healthy_check "$1"
}
# ok_tls NAME "TITLE": delivered over TLS, exactly once, byte-clean.
ok_tls() {
	check "$2: delivered (250 to the final dot)" reply_is "$W/$1.out" DOT '250 '
	check "$2: the upstream acknowledged exactly one message, over TLS" sh -c \
		"[ \$(find '$(at_dir "$1")' -maxdepth 1 -name '0*.env' | wc -l) = 1 ] && grep -q '^tls: yes' '$(at_dir "$1")'/001.env"
	check "$2: the concurrent healthy session delivered" at_healthy_check "$1"
}

# --- A. STARTTLS negotiation and stripping
std a01m "A-01 STARTTLS stripped under mandatory: no plaintext" '4\.7\.(5|10).*STARTTLS' 'outcome=deferred.*does not offer STARTTLS'
check "A-01 STARTTLS stripped under opportunistic: delivered in the clear (table: no STARTTLS -> clear)" reply_is "$W/a01o.out" DOT '250 '
check "A-01 STARTTLS stripped under opportunistic: logged as plaintext, starttls-not-supported" sh -c \
	"grep -E 'event=plaintext' '$MXTLS_LOG' | grep -q 'reason=starttls-not-supported.*addr=$(addr_of a01o)'"
check "A-01 STARTTLS stripped under opportunistic: delivery logged outcome=plaintext" logged a01o 'outcome=plaintext.*tls=none'
check "A-01 STARTTLS stripped under opportunistic: the concurrent healthy session delivered" at_healthy_check a01o
std a02a "A-02 STARTTLS answered 454" '4\.7\.5.*454' 'outcome=deferred.*454'
std a02b "A-02 STARTTLS answered 554" '4\.7\.5.*554' 'outcome=deferred.*554'
std a02c "A-02 STARTTLS answered 502 (opportunistic: first TLS failure defers, 451 4.7.5)" '4\.7\.5.*502' 'outcome=deferred'
std a03a "A-03 STARTTLS answered with garbage" '4\.7\.5' 'outcome=deferred'
std a03b "A-03 STARTTLS answered 250" '4\.7\.5.*250' 'outcome=deferred'
check "A-03 STARTTLS answered 250: no handshake started on it" at_not_saw a03b '^C: plain \\x16'
std a03c "A-03 STARTTLS answered 354" '4\.7\.5.*354' 'outcome=deferred'
check "A-03 STARTTLS answered 354: no handshake started on it" at_not_saw a03c '^C: plain \\x16'
std a03d "A-03 STARTTLS answered 421 and closed" '4\.7\.5.*421' 'outcome=deferred'
std a04 "A-04 EHLO refused (500), HELO has no STARTTLS: mandatory tempfails" '4\.7\.' 'outcome=deferred'
check "A-04 EHLO refused: mxtls fell back to HELO" at_saw a04 '^C: plain HELO'
std a05m "A-05 EHLO answered 220 under mandatory" '4\.[0-9]\.[0-9].*220 EHLO client' ''
check "A-05 EHLO answered 220 under opportunistic: a protocol violation, the MTA gets 4xx (docs/security.md A-05)" tempfail "$W/a05o.out"
check "A-05 EHLO answered 220 under opportunistic: not delivered on that connection" at_saved_is a05o 0
std a06a "A-06 greeting 554: nothing but QUIT sent" '4\.4\.' 'outcome=deferred'
check "A-06 greeting 554: no EHLO was sent" at_not_saw a06a '^C: plain (EHLO|HELO)'
std a06b "A-06 unparseable greeting 'HELLO'" '4\.4\.' 'outcome=deferred'
check "A-06 unparseable greeting: no EHLO was sent" at_not_saw a06b '^C: plain (EHLO|HELO)'
check "A-07 RSET answered 354: the MTA's RSET still gets an answer and the session goes on" sh -c \
	"grep -qE '^RSET => (250|4)' '$W/a07.out' && grep -q '^QUIT => 221' '$W/a07.out' || { cat '$W/a07.out'; false; }"
check "A-07 QUIT never answered: mxtls closes the upstream within a bounded time" at_wait_closed a07 1 10
check "A-07: the concurrent healthy session delivered" at_healthy_check a07
ok_tls a08 "A-08 capabilities change across TLS (pre-TLS SIZE/CHUNKING/8BITMIME dropped inside TLS)"
check "A-08: SIZE (not re-advertised inside TLS) is not sent on MAIL" sh -c \
	"grep -E '^C: tls MAIL' '$(at_dir a08)'/conn-*.log | grep -qv 'SIZE=' || { grep -E '^C: tls MAIL' '$(at_dir a08)'/conn-*.log; false; }"
check "A-08: STARTTLS is never sent a second time (the post-TLS EHLO offers it again)" sh -c \
	"[ \$(grep -hcE '^C: (plain|tls) STARTTLS' '$(at_dir a08)'/conn-*.log | awk '{s+=\$1} END {print s}') = 1 ]"
std a09 "A-09 no reply to the post-TLS EHLO: deadline, then tempfail" '4\.4\.' 'time(d)? ?out'
check "A-09: no MAIL without a post-TLS EHLO reply" at_not_saw a09 '^C: tls MAIL'
std a10a "A-10 handshake stalls (tls_timeout 3 s)" '4\.7\.5' 'outcome=deferred'
std a10b "A-10 handshake_failure alert" '4\.7\.5.*(alert|handshake)' 'outcome=deferred'
std a10c "A-10 server closes mid-handshake" '4\.7\.5' 'outcome=deferred'
std a10d "A-10 STARTTLS never answered (command_timeout 3 s)" '4\.7\.5' 'outcome=deferred'
std a11a "A-11 server speaks TLS 1.0 only" '4\.7\.5.*(version|protocol)' 'outcome=deferred'
std a11b "A-11 server speaks TLS 1.1 only" '4\.7\.5.*(version|protocol)' 'outcome=deferred'
if [ "$A12" = yes ]; then
	std a12 "A-12 server offers only NULL cipher suites" '4\.7\.5' 'outcome=deferred'
fi
note "A-12 renegotiation: see test_attacks_tls.sh (a Net::SSLeay server that renegotiates)"

# --- B. Buffering, response injection and synchronisation
std b01 "B-01 plaintext injected after 220 in the same segment" '4\.7\.5.*injected' 'plaintext injected'
std b02 "B-02 CRLF-less fragment after 220" '4\.7\.5.*injected' 'plaintext injected'
std b03 "B-03 plaintext injected after 220 in a later segment" '4\.7\.5' 'outcome=deferred'
std b04 "B-04 EHLO answered before it was sent (pre-answered greeting)" '4\.4\.' 'before the command|no command was pending'
ok_tls b04ok "B-04 control: a multi-line 220 greeting is legitimate"
std b04tls "B-04 the same replies again inside TLS (greeting and EHLO replayed unprompted)" '4\.' ''
std b05a "B-05 surplus reply to MAIL" '4\.' 'before the command|no command was pending|outcome=deferred'
std b05b "B-05 surplus reply to RCPT" '4\.' ''
std b05c "B-05 spurious 250 right after 354" '4\.4\.2' 'outcome=deferred'
std b06a "B-06 250 before the end of data" '4\.4\.2' 'outcome=deferred'
check "B-06 250 before the end of data, 554 at the real end: the MTA never gets 250" no_reply_is "$W/b06c.out" DOT 2
check "B-06 250 before the end of data, 554 at the real end: the concurrent healthy session delivered" at_healthy_check b06c
check "B-06 250 before the end of data: the session stays in sync (one reply per command)" sh -c \
	"grep -q '^QUIET => ok' '$W/b06a.out' && grep -q '^NOOP => 250' '$W/b06a.out' || { cat '$W/b06a.out'; false; }"
check "B-06 552 and close before the end of data: never 250" no_reply_is "$W/b06b.out" DOT 2
check "B-06 552 and close before the end of data: nothing delivered" at_saved_is b06b 0
check "B-06 552 and close: the concurrent healthy session delivered" at_healthy_check b06b
std b07 "B-07 close_notify after the dot, then plaintext 250s" '4\.4\.2' 'outcome=deferred'

# --- C. Hostile upstream reply parsing
std c01a "C-01 short last line '25' in the EHLO reply" '4\.' 'outcome=deferred'
std c01b "C-01 empty last line in the MAIL reply" '4\.' 'outcome=deferred'
ok_tls c01c "C-01 control: a last line of exactly '250' is legal"
std c02 "C-02 reply code changes mid-reply (250- then 550)" '4\.' 'outcome=deferred'
check "C-02: the RCPT is neither 250 nor 550" reply_is "$W/c02.out" 'RCPT TO:<u@c02.test>' 4
std c03a "C-03 reply code outside 2xx-5xx (650)" '4\.' 'out of range'
std c03b "C-03 4-digit code '2500'" '4\.' 'outcome=deferred'
std c03c "C-03 bad separator '250x'" '4\.' 'outcome=deferred'
std c03d "C-03 leading space ' 250'" '4\.' 'outcome=deferred'
std c03e "C-03 code 099" '4\.' 'outcome=deferred'
std c04a "C-04 a reply line of a megabyte" '4\.' 'too long'
std c04b "C-04 endless 250- continuation" '4\.' 'outcome=deferred'
std c04c "C-04 a multi-line reply of 5000 lines" '4\.' 'outcome=deferred'
ok_tls c04d "C-04 control: a 600-octet reply line is tolerated"
std c04e "C-04 a 4000-octet reply line" '4\.' 'outcome=deferred'
RSS1=$(rss_kib "$MXTLS_PID")
check "C-04 memory stays bounded under megabyte lines and endless replies (RSS $RSS0 -> $RSS1 KiB, < +150 MiB; ASan build)" \
	test "$((RSS1 - RSS0))" -lt 153600
std c05a "C-05 NUL bytes in replies" '4\.' 'NUL'
check "C-05 NUL: no NUL or ESC reaches the MTA" sh -c "! grep -E '\\\\x00|\\\\x1b' '$W/c05a.out'"
check "C-05 control characters (ESC) in reply text are not passed to the MTA" sh -c \
	"! grep -E '\\\\x1b' '$W/c05b.out' || { echo 'the MTA got:'; cat '$W/c05b.out'; false; }"
check "C-05 control characters: the RCPT is refused (5xx relayed or 4xx), never 250" sh -c \
	"grep -qE '^RCPT TO:<u@c05b.test> => [45]' '$W/c05b.out'"
check "C-05 a bare LF in reply text creates no extra reply line for the MTA" sh -c \
	"! grep -q 'X-Injected' '$W/c05c.out' && grep -q '^QUIET => ok' '$W/c05c.out' && grep -q '^NOOP => 250' '$W/c05c.out' || { cat '$W/c05c.out'; false; }"
check "C-05 bare LF: the concurrent healthy session delivered" at_healthy_check c05c
check "C-06 550 with enhanced code 2.0.0 at the dot: the MTA gets 550, not 250" reply_is "$W/c06a.out" DOT '550 '
check "C-06: the concurrent healthy session delivered" at_healthy_check c06a
check "C-06 250 with enhanced code 5.7.1 at RCPT: success" reply_is "$W/c06b.out" 'RCPT TO:<u@c06b.test>' '250 '
ok_tls c06b "C-06 250 5.7.1 at RCPT"
ok_tls c07a "C-07 lower-case 'starttls' is STARTTLS"
std c07b "C-07 STARTTLSX, X-STARTTLS, 'AUTH STARTTLS' are not STARTTLS" '4\.7\.' 'does not offer STARTTLS'
check "C-07 no STARTTLS sent on a look-alike keyword" at_not_saw c07b '^C: plain STARTTLS'
ok_tls c07c "C-07 SIZE 2^64, SIZE -1, SIZE abc, CHUNKING junk, 60 AUTH mechanisms"

# --- D. Relay integrity
std d01a "D-01 close after the final dot without replying" '4\.4\.2' 'outcome=deferred'
check "D-01 the upstream did receive the whole message (unacked, a possible duplicate)" test "$(at_count d01a unacked)" = 1
std d01b "D-01 close mid-DATA" '4\.4\.2' 'outcome=deferred'
std d01c "D-01 close after 354" '4\.4\.2' 'outcome=deferred'
std d02 "D-02 no reply to the final dot (data_done_timeout 3 s)" '4\.4\.2' 'time(d)? ?out'
check "D-03 452 at the dot: the MTA gets 452" reply_is "$W/d03a.out" DOT '452 '
check "D-03 554 at the dot: the MTA gets 554" reply_is "$W/d03b.out" DOT '554 '
check "D-03 452: the concurrent healthy session delivered" at_healthy_check d03a
check "D-03 554: the concurrent healthy session delivered" at_healthy_check d03b
check "D-04 partial acceptance: 250 / 550 / 452 per recipient as the upstream said" sh -c \
	"grep -q '^RCPT TO:<a@d04.test> => 250' '$W/d04.out' && grep -q '^RCPT TO:<b@d04.test> => 550' '$W/d04.out' && grep -q '^RCPT TO:<c@d04.test> => 452' '$W/d04.out' || { cat '$W/d04.out'; false; }"
check "D-04 partial acceptance: the message is delivered once" reply_is "$W/d04.out" DOT '250 '
check "D-04: the concurrent healthy session delivered" at_healthy_check d04
check "D-05 every RCPT refused: DATA is refused (554 or 503), no 354" reply_is "$W/d05.out" DATA '(554|503)'
check "D-05: DATA never reaches the upstream" at_not_saw d05 '^C: tls DATA'
check "D-05: the concurrent healthy session delivered" at_healthy_check d05
std d07 "D-07 421 mid-DATA while the body carries SMTP verbs" '4\.' 'outcome=deferred'
check "D-07: body lines are never run as commands (one reply, then in sync)" sh -c \
	"grep -q '^QUIET => ok' '$W/d07.out' && grep -q '^NOOP => 250' '$W/d07.out' || { cat '$W/d07.out'; false; }"
check "D-08 DATA answered 250: the MTA does not get 250 to DATA (a protocol error, 451)" sh -c \
	"grep -qE '^DATA => 4' '$W/d08a.out' || { cat '$W/d08a.out'; false; }"
std d08b "D-08 MAIL answered 354" '4\.' 'outcome=deferred'
check "D-08 RCPT answered 220: not relayed as a success (a protocol error, 451)" sh -c \
	"grep -qE '^RCPT TO:<u@d08c.test> => 4' '$W/d08c.out' || { cat '$W/d08c.out'; false; }"
check "D-08 RCPT answered 220: never 250 at the dot" no_reply_is "$W/d08c.out" DOT 2
check "D-11 MAIL parameters the upstream did not advertise (RET, ENVID: DSN) are not forwarded" sh -c \
	"l=\$(grep -hE '^C: tls MAIL' '$(at_dir d11)'/conn-*.log); echo \"\$l\" | grep -q . && ! echo \"\$l\" | grep -qiE 'BODY=|SMTPUTF8|RET=|ENVID=' || { echo \"MAIL sent: \$l\"; false; }"
check "D-11 SIZE is passed to an upstream that advertises SIZE, so it can refuse" sh -c \
	"grep -hE '^C: tls MAIL' '$(at_dir d11)'/conn-*.log | grep -q 'SIZE=50000000'"
check "D-11 an 8-bit body (BODY=8BITMIME) is not sent to an upstream without 8BITMIME (554 5.6.3)" sh -c \
	"grep -qE '^RCPT TO:<u2@d11.test> => 554 5\\.6\\.3' '$W/d11.out' && [ \$(grep -cE '^DOT => 250' '$W/d11.out') = 1 ] || { echo 'delivered 8-bit data to a server that did not advertise 8BITMIME:'; cat '$W/d11.out'; false; }"
check "D-12 first transaction (opportunistic, verify none) is delivered" reply_is "$W/d12.out" DOT '250 ' 1
check "D-12 the unverified connection is not reused for a mandatory+strict domain (451 4.7.5)" sh -c \
	"grep -qE '^RCPT TO:<v@d12m.test> => 4\.?' '$W/d12.out' && [ \$(find '$(at_dir d12)' -name '0*.env' | wc -l) = 1 ] || { cat '$W/d12.out'; ls '$(at_dir d12)'; false; }"

# --- I-02. Slow or tarpitting upstream: deadlines per phase
std i02a "I-02 greeting dripped one byte a second (greeting_timeout 3 s)" '4\.4\.' 'time(d)? ?out'
std i02b "I-02 post-TLS EHLO reply dripped one byte a second (command_timeout 3 s)" '4\.4\.' 'time(d)? ?out'
std i02c "I-02 connection accepted, no greeting ever" '4\.4\.' 'time(d)? ?out'
# slow ID STATE KEY WHAT: the case that waits on a server ended because the
# deadline of the phase it waited in fired (KEY, 3 s here), when it was due
# by mxtls's log, however long the batch took on this machine.
slow() {
	check "I-02 $1 ($4): ended by $3 (3 s) in $2" \
		deadline_fired "$(mxtls_sid "event=delivery .*rcpt_domain=$1\\.test ")" "$2" 3
}
slow a09 up-ehlo-tls command_timeout "no reply to the post-TLS EHLO"
slow a10a up-tls tls_timeout "handshake stalls"
slow a10d up-starttls command_timeout "STARTTLS never answered"
slow d02 up-data-end data_done_timeout "no reply to the final dot"
slow i02a up-greeting greeting_timeout "greeting dripped"
slow i02b up-ehlo-tls command_timeout "post-TLS EHLO reply dripped"
slow i02c up-greeting greeting_timeout "no greeting ever"

# --- after everything: mxtls still serves, fds back
mxtls_mark >/dev/null
at_healthy_start after
check "after all attacks: a new healthy session delivers" at_healthy_check after
FD1=$(fds_settle "$MXTLS_PID" "$((FD0 + 2))")
check "after all attacks: no descriptor leak (fds $FD0 -> $FD1)" test "$FD1" -le "$((FD0 + 2))"
# --- D-08 as a real MTA sees it: Postfix relays through mxtls to the
# server that answers DATA with 250.
if pf_mta legacy 127.0.1.250:25 "[127.0.0.1]:$MXTLS_PORT"; then
	smtpc "$W/d08mta.out" 127.0.1.250:25 "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<u2@d08a.test>" "DATA=$M7" QUIT
	check "D-08 DATA answered 250, as a real Postfix MTA sees it: the mail is not logged as sent" \
		mta_status legacy u2@d08a.test '(deferred|bounced)' . 15
	check "D-08 DATA answered 250, as a real Postfix MTA sees it: deferred (a transient failure), not bounced" \
		mta_status legacy u2@d08a.test deferred . 3
	note "D-08 Postfix MTA: $(grep -F 'to=<u2@d08a.test>' "$(pf_log legacy)" | sed 's/.*status=/status=/' | head -n 1)"
else
	fail "D-08 Postfix MTA starts" "$(cat "$(pf_dir legacy)/master.out")"
fi
mxtls_stop

# --- D-13 mail loop: the next hop is mxtls itself (its own instance,
# max_sessions 50, so that a loop cannot run away)
LOOP_PORT=$(free_port)
at_mxtls_start port="$LOOP_PORT" proxy='max_sessions = 50' proxy='command_timeout = 5' <<EOF || finish
[policy]
default = opportunistic

[match loop.test]
profile = opportunistic
nexthop = 127.0.0.1:$LOOP_PORT
mx = mxtls.test
EOF
smtpx "$W/d13.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@loop.test>" "DATA=$M7" QUIT
check "D-13 mail loop back to mxtls itself: never 250, RCPT refused" sh -c \
	"! grep -q '^DOT => 250' '$W/d13.out' && grep -qE '^RCPT TO:<u@loop.test> => [45]' '$W/d13.out' || { cat '$W/d13.out'; false; }"
check "D-13 mail loop: answered without waiting for a deadline (none fired in any session)" no_deadline_fired
check "D-13 mail loop detected as such (554 5.4.6, not a chain of sessions into itself)" sh -c \
	"grep -qE '^RCPT TO:<u@loop.test> => 5[0-9][0-9] 5\\.4\\.6' '$W/d13.out' || { cat '$W/d13.out'; echo \"sessions mxtls opened for it: \$(grep -c 'event=connect' '$MXTLS_LOG')\"; false; }"
mxtls_stop
note "run time $(($(date +%s) - T0)) s"
finish
