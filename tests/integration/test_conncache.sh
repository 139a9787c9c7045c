#!/bin/sh
# The upstream connection cache: an idle verified TLS connection
# carries the next session's transaction to the same route, and never one
# of another route, profile or policy.
#
#   server  listens        name               mode                 domains
#   a       127.0.2.11:25  mx1.example.test   normal (valid cert)  a.test,
#                                                                  b.test
#   c       127.0.2.12:25  mx2.example.test   scripted: RSET       c.test
#                                             closes
#   e       127.0.2.13:25  mx.e.test          expired cert         e.test
#                                                                  (verify none)
#   q       127.0.2.14:25  mx3.example.test   scripted: RSET       q.test
#                                             never answered
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
it_setup

dns_a mx1.example.test 127.0.2.11
dns_a mx2.example.test 127.0.2.12
dns_a mx.e.test 127.0.2.13
dns_a mx3.example.test 127.0.2.14
dns_mx a.test mx1.example.test
dns_mx b.test mx1.example.test
dns_mx c.test mx2.example.test
dns_mx q.test mx3.example.test
dns_mx e.test mx.e.test
dns_start || finish

at_spawn a 127.0.2.11:25 normal --hostname mx1.example.test
at_spawn c 127.0.2.12:25 scripted --hostname mx2.example.test --reply rset=@close@
at_spawn e 127.0.2.13:25 normal cert=expired --hostname mx.e.test
at_spawn q 127.0.2.14:25 scripted --hostname mx3.example.test --reply rset=@silent@
for h in a c e q; do at_ready $h || finish; done

start() { # extra [proxy] lines
	at_mxtls_start proxy="$1" <<EOF || finish
[profile lax]
tls = opportunistic
verify = none

[match a.test]
profile = opportunistic

[match b.test]
profile = mandatory

[match c.test]
profile = opportunistic

[match e.test]
profile = lax
EOF
}

M=$W/msg
mkdir -p "$M"
N=0
# send RCPT: one session with one message; its transcript is $W/t.$N.
send() {
	N=$((N + 1))
	mkmsg "$M/$N" "cache $N"
	smtpc "$W/t.$N" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
	    "RCPT TO:<$1>" "DATA=$M/$N" QUIT
}
tls_count() { grep -c "^tls established" "$W/h-$1/log"; }
delivery() { log_since "$MXTLS_LOG" "$1" | grep ' event=delivery '; }
# is WHAT VALUE: say what was counted when it is not what was expected.
is() { [ "$1" = "$2" ] || { echo "got $1, expected $2"; return 1; }; }
reused() { delivery "$1" | grep reused=yes | grep -q -- "${2:-.}" || { delivery "$1"; return 1; }; }
metric_is() {
	is "$(curl -s "http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics" | grep -F "$1 " | awk '{print $2}')" "$2"
}
not_reused() { ! delivery "$1" | grep -q reused=yes || { delivery "$1"; return 1; }; }

start 'connection_cache_time = 30'

X=$(mxtls_mark)
send r1@a.test
check "first session: delivered" reply_is "$W/t.1" DOT 250
check "first session: not from the cache" not_reused "$X"
X=$(mxtls_mark)
send r2@a.test
check "second session to the same route: delivered" reply_is "$W/t.2" DOT 250
check "second session: over the cached connection (logged reused=yes)" reused "$X" 'reply="250'
check "two messages: one connection at the MX" is "$(at_count a connects)" 1
check "two messages: one TLS handshake at the MX" is "$(tls_count a)" 1
check "two messages: both saved" is "$(at_count a saved)" 2
check "the reused delivery still names its TLS facts (TLSv1.3, verify=ok)" reused "$X" 'verify=ok'

X=$(mxtls_mark)
send r3@b.test
check "another domain and profile on the same MX: delivered" reply_is "$W/t.3" DOT 250
check "... over a connection of its own (never the other route's)" is "$(at_count a connects)" 2
check "... not logged as reused" not_reused "$X"

X=$(mxtls_mark)
send r4@e.test
send r5@a.test
check "verify none: delivered past an expired certificate" reply_is "$W/t.4" DOT 250
check "the strict route after it: delivered" reply_is "$W/t.5" DOT 250
check "an unverified connection is not taken by a strict route (e: 1 message, a: 4)" \
	is "$(at_count e saved) $(at_count a saved)" "1 4"
check "... the strict route reused its own connection" reused "$X" 'rcpt_domain=a.test'

X=$(mxtls_mark)
send r6@c.test
send r7@c.test
check "a cached connection the server closes at RSET: the MTA sees nothing of it" reply_is "$W/t.7" DOT 250
check "... logged upstream-reuse-failed" grep_since "$MXTLS_LOG" "$X" 'event=upstream-reuse-failed'
check "... delivered on a new connection (2 saved, 2 connections)" \
	is "$(at_count c saved) $(at_count c connects)" "2 2"
check "metrics: the stale connection counted" metric_is 'mxtls_upstream_reuses_total{outcome="stale"}' 1
check "metrics: the two reuses counted" metric_is 'mxtls_upstream_reuses_total{outcome="reused"}' 2

# A new policy (SIGHUP) never reuses a connection verified under the old.
C0=$(at_count a connects)
kill -HUP "$MXTLS_PID"
wait_for_log "$MXTLS_LOG" 'event=reloaded' 10
X=$(mxtls_mark)
send r8@a.test
check "after a reload: delivered" reply_is "$W/t.8" DOT 250
check "after a reload: on a new connection" is "$(at_count a connects)" $((C0 + 1))
mxtls_stop

# A short idle time: the connection is gone when the next session comes.
start 'connection_cache_time = 1'
C0=$(at_count a connects)
send r9@a.test
sleep 2
send r10@a.test
check "cache time 1 s, 2 s between sessions: delivered" reply_is "$W/t.10" DOT 250
check "cache time 1 s, 2 s between sessions: a new connection" is "$(at_count a connects)" $((C0 + 2))
mxtls_stop

start 'connection_cache_max = 0'
C0=$(at_count a connects)
send r11@a.test
send r12@a.test
check "connection_cache_max = 0: delivered" reply_is "$W/t.12" DOT 250
check "connection_cache_max = 0: one connection per session" is "$(at_count a connects)" $((C0 + 2))
mxtls_stop

# A cached connection whose server no longer answers: the RSET that checks
# it has a short deadline of its own (here command_timeout, 2 s), then a
# new connection; the MTA's RCPT is not held for rcpt_timeout.
start 'connection_cache_time = 30
command_timeout = 2'
X=$(mxtls_mark)
send r13@q.test
send r14@q.test
check "a cached connection that went silent: delivered on a new connection" reply_is "$W/t.14" DOT 250
sid=$(mxtls_sid 'event=upstream-reuse-failed ')
check "... after the RSET deadline: 2 s after the RSET (mxtls's log)" deadline_within 2 \
	"$(mxtls_interval "$sid" ' event=state .* to=up-reuse( |$)' ' event=upstream-reuse-failed ')" \
	"session ${sid:-?}: from the RSET to the reuse failure"
check "... logged upstream-reuse-failed (a timeout), no rcpt-timeout" sh -c \
	"grep -q 'event=upstream-reuse-failed.*time' '$MXTLS_LOG' && ! grep -q 'event=rcpt-timeout' '$MXTLS_LOG'"
check "... 2 messages, 2 connections at the server" is "$(at_count q saved) $(at_count q connects)" "2 2"
mxtls_stop

# A session that moves on to another route leaves its idle connection in
# the cache for the next session to the first route.
start 'connection_cache_time = 30'
mkmsg "$M/two" "two transactions"
smtpc "$W/t.two" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<r15@a.test>" \
	"DATA=$M/two" "MAIL FROM:<s@sender.test>" "RCPT TO:<r16@b.test>" "DATA=$M/two" QUIT
check "two transactions to two routes in one session: both delivered" sh -c \
	"[ \$(grep -c '^DOT => 250' '$W/t.two') = 2 ] || cat '$W/t.two'"
X=$(mxtls_mark)
send r17@a.test
check "... the first route's connection, left when the session moved on, serves the next session" reused "$X" 'rcpt_domain=a.test'
mxtls_stop

# Many sessions at once: all delivered, far fewer connections than messages.
start 'connection_cache_time = 30'
C0=$(at_count a connects)
S0=$(at_count a saved)
"$(command -v smtp-source || echo /usr/sbin/smtp-source)" -s 5 -m 50 -c -f s@sender.test \
	-t load@a.test "127.0.0.1:$MXTLS_PORT" >"$W/source.out" 2>&1
check "smtp-source, 5 parallel sessions, 50 messages: all delivered" is "$(at_count a saved)" $((S0 + 50))
check "... over at most 10 connections" test "$(($(at_count a connects) - C0))" -le 10
note "smtp-source: 50 messages over $(($(at_count a connects) - C0)) upstream connections"
mxtls_stop
finish
