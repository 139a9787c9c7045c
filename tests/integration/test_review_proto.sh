#!/bin/sh
# Review and interop findings, the SMTP protocol side: each check is
# named after its finding (R17-NN) and failed before that finding
# was fixed.  Scripted servers (tests/hostile/smtpd.py) play the upstreams on
# 127.0.3.N:25, MX records come from dnsmasq.  What needs no socket is
# tested in tests/unit (the R17_NN_* tests).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:quarantine_size_mb=16}
export ASAN_OPTIONS
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
. "$(dirname "$0")/lib_ops.sh"
IT_TIMEOUT=${IT_TIMEOUT:-300}
it_setup
ops_init

# wait_saw NAME ERE [SECONDS]: at_saw, waiting up to SECONDS (default 5).
wait_saw() {
	_t=$(($(date +%s) + ${3:-5}))
	while ! at_saw "$1" "$2" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge $_t ] && { at_saw "$1" "$2"; return 1; }
		sleep 0.1
	done
}

# delivery_reason DOMAIN ERE: mxtls's event=delivery line for DOMAIN has
# a reason matching ERE.
delivery_reason() {
	_l=$(grep -E 'event=delivery' "$MXTLS_LOG" | grep -F "rcpt_domain=$1 ")
	printf '%s\n' "$_l" | grep -qE -- "reason=\"$2" && return 0
	echo "no event=delivery line for $1 with reason /$2/; lines for it:"
	printf '%s\n' "$_l" | cut -c 1-400 | sed 's/^/  /'
	return 1
}

# --- the upstreams
at_spawn r06 127.0.3.2:25 scripted --reply 'data=354 go\r\n250 2.0.0 fake-early\r\n' \
	--reply 'dot=554 5.7.1 rejected after all\r\n'
at_spawn r08a 127.0.3.3:25 scripted --reply 'ehlo=@close@'
at_spawn r08b 127.0.3.4:25 scripted --reply 'ehlo=421 4.3.2 too busy, try another MX\r\n@close@'
at_spawn r08c 127.0.3.5:25 scripted --reply 'greeting=220 r08c ESMTP\r\n250 2.0.0 early\r\n'
at_spawn r08ok 127.0.3.6:25 sink
at_spawn r14 127.0.3.7:25 sink
at_spawn r17 127.0.3.9:25 sink
at_spawn r17p 127.0.3.10:25 no-starttls
at_spawn r19a 127.0.3.11:25 scripted --reply 'ehlo_tls=250-r19a\r\n250 PIPELINING\r\n'
at_spawn r19b 127.0.3.12:25 scripted --reply 'ehlo_tls=250-r19b\r\n250-8BITMIME\r\n250 PIPELINING\r\n'
at_spawn r17u 127.0.3.13:25 sink cert=wrongname
at_spawn r17m 127.0.3.14:25 scripted --reply 'dot=250-first line\r\n250 2.0.0 Ok: queued as M1\r\n'
at_spawn r17l 127.0.3.15:25 scripted --reply "dot=250 2.0.0 Ok: queued as L1 $(printf '%0700d' 0)\\r\\n"
at_spawn r17r 127.0.3.16:25 scripted --reply 'dot=554 5.7.1 rejected\r\n'
at_spawn r18s 127.0.3.17:25 scripted --reply 'quit=@silent@'
at_spawn r18d 127.0.3.18:25 sink
at_spawn r15 127.0.3.19:25 scripted --reply 'dot=@sleep:3@250 2.0.0 Ok: queued late\r\n'
for h in r06 r08a r08b r08c r08ok r14 r17 r17p r19a r19b r17u r17m r17l r17r r18s r18d r15; do
	at_ready "$h" || finish
done

# R17-08: the first MX fails after its greeting, the second delivers.
for c in a b c; do
	dns_mx "r08$c.test" "mx1.r08$c.test" 10
	dns_mx "r08$c.test" mx2.example.test 20
done
dns_a mx1.r08a.test 127.0.3.3
dns_a mx1.r08b.test 127.0.3.4
dns_a mx1.r08c.test 127.0.3.5
dns_a mx2.example.test 127.0.3.6
dns_mx r17.test mx3.example.test 10
dns_a mx3.example.test 127.0.3.9
dns_mx r17p.test mx.plain.test 10
dns_a mx.plain.test 127.0.3.10
dns_mx r17u.test mx.verifynone.test 10
dns_a mx.verifynone.test 127.0.3.13
dns_start || finish

at_mxtls_start proxy='connection_cache_time = 1' <<EOF || finish
[policy]
default = opportunistic

[profile optnone]
tls = opportunistic
verify = none

[match r17u.test]
profile = optnone

$(hostile_conf r06 127.0.3.2 mandatory)
$(hostile_conf r14 127.0.3.7 mandatory)
$(hostile_conf r19a 127.0.3.11 mandatory)
$(hostile_conf r19b 127.0.3.12 mandatory)
$(hostile_conf r17m 127.0.3.14 mandatory)
$(hostile_conf r17l 127.0.3.15 mandatory)
$(hostile_conf r17r 127.0.3.16 mandatory)
$(hostile_conf r18s 127.0.3.17 mandatory)
$(hostile_conf r18d 127.0.3.18 mandatory)
EOF
M=$W/msg
mkmsg "$M" "review findings"
E="EHLO mta.test"
F="MAIL FROM:<s@sender.test>"

# --- R17-06 a reply that came before its command
smtpx "$W/r06.out" mxtls "$E" "$F" "RCPT TO:<u@r06.test>" \
	'PIPEX=DATA\r\nSubject: r06\r\n\r\nthe body, sent before the 354\r\n.\r\n' QUIT
check "R17-06 354 and 250 in one segment, body pipelined: the final dot is never answered 250" \
	no_reply_is "$W/r06.out" 'PIPEX#2' 2
check "R17-06 ... it is answered 4xx (the MTA tries again)" reply_is "$W/r06.out" 'PIPEX#2' '4[0-9][0-9] 4\.'
check "R17-06 ... and the upstream got no end of data" at_saved_is r06 0

# --- R17-08 the next MX after a failure at EHLO
for c in a b c; do
	smtpc "$W/r08$c.out" mxtls "$E" "$F" "RCPT TO:<u@r08$c.test>" "DATA=$M" QUIT
done
check "R17-08 EOF at EHLO: the next MX delivers" reply_is "$W/r08a.out" DOT '250 '
check "R17-08 421 at EHLO: the next MX delivers" reply_is "$W/r08b.out" DOT '250 '
check "R17-08 a reply before EHLO was sent: the next MX delivers" reply_is "$W/r08c.out" DOT '250 '
check "R17-08 ... each first MX was tried first" sh -c \
	"[ \$(sh tests/hostile/count.sh '$W/h-r08a/log') -ge 1 ] && [ \$(sh tests/hostile/count.sh '$W/h-r08b/log') -ge 1 ] && [ \$(sh tests/hostile/count.sh '$W/h-r08c/log') -ge 1 ]"
check "R17-08 ... and the second MX has the three messages" at_saved_is r08ok 3

# --- R17-14 BDAT
CHUNK='RSET\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:<victim@r14.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n'
N14=$(printf "$CHUNK" | wc -c | tr -d ' ')
smtpx "$W/r14.out" mxtls "$E" "$F" "RCPT TO:<u@r14.test>" "PIPEX=BDAT $N14 LAST\\r\\n$CHUNK"
check "R17-14 BDAT without CHUNKING: 5xx and the connection closed, no further reply" sh -c \
	"grep -qE '^PIPEX#1 => 5[0-9][0-9] ' '$W/r14.out' && grep -q '^PIPEX => replies=1 end=closed' '$W/r14.out' || { cat '$W/r14.out'; false; }"
check "R17-14 ... no byte of its chunk ran as a command (no RCPT to the victim upstream)" at_not_saw r14 'victim'
check "R17-14 ... nothing delivered" at_saved_is r14 0

# --- R17-17 how the message left, in the final reply
smtpc "$W/r17.out" mxtls "$E" "$F" "RCPT TO:<u@r17.test>" "DATA=$M" QUIT
smtpc "$W/r17p.out" mxtls "$E" "$F" "RCPT TO:<u@r17p.test>" "DATA=$M" QUIT
smtpc "$W/r17u.out" mxtls "$E" "$F" "RCPT TO:<u@r17u.test>" "DATA=$M" QUIT
smtpc "$W/r17m.out" mxtls "$E" "$F" "RCPT TO:<u@r17m.test>" "DATA=$M" QUIT
smtpc "$W/r17r.out" mxtls "$E" "$F" "RCPT TO:<u@r17r.test>" "DATA=$M" QUIT
smtpx "$W/r17l.out" mxtls "$E" "$F" "RCPT TO:<u@r17l.test>" "DATA=$M" QUIT
check "R17-17 verified TLS: '250 ... [mxtls: TLSv1.x verified mx3.example.test]'" \
	reply_is "$W/r17.out" DOT '250 2\.0\.0 Ok: queued as [0-9]+ \[mxtls: TLSv1\.[23] verified mx3\.example\.test\]$'
check "R17-17 the next MX of R17-08: verified TLS to mx2.example.test" \
	reply_is "$W/r08a.out" DOT '250 .* \[mxtls: TLSv1\.[23] verified mx2\.example\.test\]$'
check "R17-17 no STARTTLS: '[mxtls: plaintext, no STARTTLS, mx.plain.test]'" \
	reply_is "$W/r17p.out" DOT '250 .* \[mxtls: plaintext, no STARTTLS, mx\.plain\.test\]$'
check "R17-17 verify = none, wrong name: '[mxtls: TLSv1.x unverified mx.verifynone.test]'" \
	reply_is "$W/r17u.out" DOT '250 .* \[mxtls: TLSv1\.[23] unverified mx\.verifynone\.test\]$'
check "R17-17 multi-line reply: on its last line only (literal next hop: the verified name)" \
	reply_is "$W/r17m.out" DOT '250-first line / 2\.0\.0 Ok: queued as M1 \[mxtls: TLSv1\.[23] verified mx\.tls\.test\]$'
check "R17-17 a refusal keeps its code and status" \
	reply_is "$W/r17r.out" DOT '554 5\.7\.1 rejected \[mxtls: TLSv1\.[23] verified mx\.tls\.test\]$'
# (smtpx shows the line without its CRLF)
check "R17-17 a 700-octet reply line: cut to 512 octets with CRLF, the summary whole, the queue id kept" \
	python3 - "$W/r17l.out" <<'EOF'
import re, sys
for line in open(sys.argv[1]):
    if line.startswith("DOT => "):
        r = line[7:].rstrip("\n")
        if (len(r) + 2 == 512 and r.startswith("250 2.0.0 Ok: queued as L1 000")
                and re.search(r"0 \[mxtls: TLSv1\.[23] verified mx\.tls\.test\]$", r)):
            sys.exit(0)
        print("DOT reply (%d octets with CRLF): %r" % (len(r) + 2, r[:80] + "..." + r[-80:]))
        sys.exit(1)
print("no DOT reply")
sys.exit(1)
EOF

# --- R17-18 QUIT before closing a clean upstream connection
check "R17-18 a plaintext upstream gets QUIT at the end of the session" wait_saw r17p '^C: plain QUIT'
check "R17-18 a cached TLS connection gets QUIT when it leaves the cache (connection_cache_time 1 s)" \
	wait_saw r17 '^C: tls QUIT'
smtpc "$W/r18s.out" mxtls "$E" "$F" "RCPT TO:<u@r18s.test>" "DATA=$M" QUIT
check "R17-18 a server that never answers QUIT: it got QUIT" wait_saw r18s '^C: tls QUIT' 6
check "R17-18 ... and mxtls closed the connection within a few seconds all the same" at_wait_closed r18s 1 8
smtpx "$W/r18d.out" mxtls "$E" "$F" "RCPT TO:<u@r18d.test>" 'RAW=DATA\r\n' 'SEND=Subject: half\r\n\r\nhalf a body\r\n'
check "R17-18 the MTA leaves mid-DATA: the upstream gets no QUIT (it would be message text)" sh -c \
	"sleep 1; ! grep -h 'QUIT' '$(at_dir r18d)'/conn-*.log '$(at_dir r18d)'/aborted-* 2>/dev/null | grep -q . || { grep -h QUIT '$(at_dir r18d)'/conn-*.log '$(at_dir r18d)'/aborted-*; false; }"

# --- R17-19 the refusals of 8-bit and SMTPUTF8 mail, logged formatted
smtpc "$W/r19a.out" mxtls "$E" "MAIL FROM:<s@sender.test> BODY=8BITMIME" "RCPT TO:<u@r19a.test>" QUIT
smtpc "$W/r19b.out" mxtls "$E" "MAIL FROM:<s@sender.test> SMTPUTF8" "RCPT TO:<u@r19b.test>" QUIT
check "R17-19 8-bit mail to a server without 8BITMIME: 554 5.6.3 to the MTA" \
	reply_is "$W/r19a.out" "RCPT TO:<u@r19a.test>" '554 5\.6\.3 \[127\.0\.3\.11\]:25 does not accept'
check "R17-19 ... the delivery line's reason names the server, no %s template" \
	delivery_reason r19a.test '554 5\.6\.3 \[127\.0\.3\.11\]:25 does not accept 8-bit messages'
check "R17-19 SMTPUTF8 mail to a server without SMTPUTF8: the reason names the server, no %s template" \
	delivery_reason r19b.test '553 5\.6\.7 \[127\.0\.3\.12\]:25 does not support SMTPUTF8'
check "R17-19 no log line carries an unformatted %s" sh -c "! grep -n '%s' '$MXTLS_LOG'"
mxtls_stop

# --- R17-15 drain: no 421 after the final dot went out, no new MAIL
at_mxtls_start proxy='drain_timeout = 1' <<EOF || finish
$(hostile_conf r15 127.0.3.19 mandatory)
EOF
D_PID=$MXTLS_PID
rm -f "$W/r15b.up" "$W/r15b.go"
opsc "$W/r15b.out" mxtls "$E" "TOUCH=$W/r15b.up" "WAIT=$W/r15b.go" "$F" "REST=AFTER" &
b15=$!
_i=0
while [ ! -f "$W/r15b.up" ] && [ $_i -lt 200 ]; do sleep 0.05; _i=$((_i + 1)); done
SMTPC_TIMEOUT=15 smtpc "$W/r15a.out" mxtls "$E" "$F" "RCPT TO:<u@r15.test>" "DATA=$M" QUIT &
a15=$!
wait_for_log "$W/h-r15/log" 'misbehave scripted dot' 10
kill -TERM "$D_PID"
sleep 0.3
touch "$W/r15b.go"
wait $b15
wait $a15
ops_wait_exit "$D_PID" 10
check "R17-15 drain_timeout passes while the final dot is unanswered: the MTA gets the upstream's 250, not 421" \
	reply_is "$W/r15a.out" DOT '250 2\.0\.0 Ok: queued late'
check "R17-15 ... the message was delivered once" at_saved_is r15 1
check "R17-15 MAIL on an open session while draining: 421 4.3.2" reply_is "$W/r15b.out" "$F" '421 4\.3\.2'
check "R17-15 ... and that session is closed" grep -q '^AFTER => EOF' "$W/r15b.out"
check "R17-15 mxtls exits once the reply was relayed (rc=$OPS_RC after $OPS_ELAPSED s)" test "$OPS_RC" = 0
check "mxtls[$MXTLS_N] no sanitizer report" sanitizer_clean "$MXTLS_LOG"
ops_forget "$D_PID"

finish
