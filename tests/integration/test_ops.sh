#!/bin/sh
# Operating mxtls end to end (docs/behaviour.md section 9): the admin
# endpoint and its metrics (promtool), SIGHUP reload (in-flight sessions keep
# their config, a broken config is refused, reload under load), SIGTERM
# drain, privileges, limits, JSON logs and log_addresses.
#
#   example.test, reload.test, load.test   MX mx.example.test  127.0.0.61:25  Postfix, STARTTLS
#   plain.ops.test                         MX mx.plain.test    127.0.0.62:25  hostile no-starttls
#   fail.ops.test                          MX mx.fail.test     127.0.0.63:25  hostile alert
#   (after a reload) reload.test, load.test  nexthop 127.0.0.64:2525          hostile normal
#
# mxtls instances (each with user = nobody and its own admin port):
#   1, 2  started to fail: as root without user; fd limit too low
#   3     limits: max_sessions, per client, SIZE, line length, bad commands
#   4     client_timeout = 2 (on its own: sessions held open elsewhere would
#         time out on a busy machine)
#   5     metrics, admin endpoint, privileges, reload, reload under load, drain
#   6     drain_timeout = 2, log_format = json, log_addresses = hash
#   7     allow_clients, log_addresses = domain, a second SIGTERM
# Times (deadlines, "at once") are read from mxtls's log (lib.sh).
IT_TIMEOUT=${IT_TIMEOUT:-150}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"
it_setup
ops_init
T_START=$(ops_now)

dns_mx example.test mx.example.test 10
dns_mx reload.test mx.example.test 10
dns_mx load.test mx.example.test 10
dns_a mx.example.test 127.0.0.61
dns_mx plain.ops.test mx.plain.test 10
dns_a mx.plain.test 127.0.0.62
dns_mx fail.ops.test mx.fail.test 10
dns_a mx.fail.test 127.0.0.63
dns_start || finish

pf_mx mx 127.0.0.61:25 cert=valid hostname=mx.example.test || finish
hostile_smtpd plain 127.0.0.62:25 no-starttls || finish
hostile_smtpd alert 127.0.0.63:25 alert || finish
hostile_smtpd new 127.0.0.64:2525 normal || finish

M=$W/msg
mkdir -p "$M"
for _m in 1 2 3 4 r1 r2 r3 r4 d1 h1 c1 small; do mkmsg "$M/$_m" "ops message $_m"; done
mkmsg "$M/big" "ops message over 10k" 20

# ================================================================ refusals at start

# --- as root without [proxy] user: refused
ops_config nouser </dev/null
timeout 10 "$MXTLS" -c "$MXTLS_CONF" >"$W/root.out" 2>"$W/root.err"
rc=$?
check "privileges: as root without [proxy] user, mxtls exits non-zero (got $rc)" \
	sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "privileges: ... with a clear message (root, user)" sh -c \
	"grep -iE 'root' '$W/root.err' | grep -qiE 'user' || { echo 'stderr:'; cat '$W/root.err'; exit 1; }"
check "privileges: ... and nothing is left listening" sh -c "! ss -Hltn | awk '{print \$4}' | grep -qxF 127.0.0.1:$MXTLS_PORT"
check "privileges: ... no sanitizer report" sanitizer_clean "$W/root.err"

# --- fd limit too low for max_sessions
ops_config proxy='max_sessions = 1000' </dev/null
timeout 10 prlimit --nofile=64:64 "$MXTLS" -c "$MXTLS_CONF" >"$W/fd.out" 2>"$W/fd.err"
rc=$?
check "fd limit: under prlimit --nofile=64:64 with max_sessions = 1000, exits non-zero (got $rc)" \
	sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "fd limit: ... with a clear message (file descriptors, the limit)" sh -c \
	"grep -qiE 'file descriptor' '$W/fd.err' && grep -qE '64' '$W/fd.err' || { echo 'stderr:'; cat '$W/fd.err'; exit 1; }"
check "fd limit: ... no sanitizer report" sanitizer_clean "$W/fd.err"

# ================================================================ limits

ops_config proxy='max_sessions = 2' proxy='max_sessions_per_client = 1' \
	proxy='max_message_size = 10k' </dev/null
if ops_start; then
	# --- max_sessions = 2: two sessions from two clients, a third gets 421 4.3.2
	rm -f "$W/l.go"
	opsc "$W/l1" --src 127.0.0.1 mxtls "TOUCH=$W/l1.up" "WAIT=$W/l.go" QUIT &
	l1=$!
	opsc "$W/l2" --src 127.0.0.5 mxtls "TOUCH=$W/l2.up" "WAIT=$W/l.go" QUIT &
	l2=$!
	wait_until 10 test -f "$W/l1.up" -a -f "$W/l2.up"
	metrics_snap "$W/lim0" >/dev/null
	opsc "$W/l3" --src 127.0.0.6 mxtls "REST=AFTER"
	touch "$W/l.go"
	wait $l1 $l2
	metrics_snap "$W/lim1" >/dev/null
	check "max_sessions = 2: the first two sessions get 220" sh -c \
		"grep -q '^CONNECT => 220' '$W/l1' && grep -q '^CONNECT => 220' '$W/l2' || cat '$W/l1' '$W/l2'"
	check "max_sessions = 2: the third connection gets 421 4.3.2" reply_is "$W/l3" CONNECT '421 4\.3\.2'
	check "max_sessions = 2: ... and is closed" grep -q '^AFTER => EOF' "$W/l3"
	check "max_sessions = 2: sessions_refused_total{reason=\"max_sessions\"} +1" \
		mdelta "$W/lim0" "$W/lim1" mxtls_sessions_refused_total eq 1 reason=max_sessions
	check "max_sessions = 2: the first sessions still work after it (QUIT 221)" sh -c \
		"grep -q '^QUIT => 221' '$W/l1' && grep -q '^QUIT => 221' '$W/l2' || cat '$W/l1' '$W/l2'"

	# --- max_sessions_per_client = 1
	no_sessions() { metrics_snap "$W/lim2" >/dev/null && grep -qx 'mxtls_sessions_current 0' "$W/lim2"; }
	wait_until 5 no_sessions
	rm -f "$W/p.go"
	opsc "$W/p1" --src 127.0.0.7 mxtls "TOUCH=$W/p1.up" "WAIT=$W/p.go" QUIT &
	p1=$!
	wait_until 10 test -f "$W/p1.up"
	opsc "$W/p2" --src 127.0.0.7 mxtls "REST=AFTER"
	opsc "$W/p3" --src 127.0.0.8 mxtls QUIT
	touch "$W/p.go"
	wait $p1
	metrics_snap "$W/lim3" >/dev/null
	check "max_sessions_per_client = 1: a second session from 127.0.0.7 gets 421 4.7.0" \
		reply_is "$W/p2" CONNECT '421 4\.7\.0'
	check "max_sessions_per_client = 1: ... and is closed" grep -q '^AFTER => EOF' "$W/p2"
	check "max_sessions_per_client = 1: another client meanwhile gets 220" reply_is "$W/p3" CONNECT 220
	check "max_sessions_per_client = 1: sessions_refused_total{reason=\"per_client\"} +1" \
		mdelta "$W/lim2" "$W/lim3" mxtls_sessions_refused_total eq 1 reason=per_client

	# --- max_message_size = 10k
	smtpc "$W/s1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test> SIZE=20000" QUIT
	check "max_message_size = 10k: EHLO advertises SIZE 10240" reply_has "$W/s1" "EHLO client.test" '(^| / )SIZE 10240( |$)'
	check "max_message_size = 10k: MAIL with SIZE=20000 gets 552" reply_is "$W/s1" "MAIL FROM:<s@sender.test> SIZE=20000" '552 '
	smtpc "$W/s2" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<big1@example.test>" "DATA=$M/big" \
		"MAIL FROM:<s@sender.test>" "RCPT TO:<small1@example.test>" "DATA=$M/small" QUIT
	check "max_message_size = 10k: a 20 KiB body gets 552 5.3.4" reply_is "$W/s2" DOT '552 5\.3\.4' 1
	check "max_message_size = 10k: the session goes on, the next (small) message gets 250" reply_is "$W/s2" DOT 250 2
	check "max_message_size = 10k: the small one is delivered" delivered mx small1@example.test "$M/small"
	check "max_message_size = 10k: the big one is not delivered" mx_none mx big1@example.test

	# --- command line over 1000 octets
	long="NOOP $(head -c 1100 /dev/zero | tr '\0' x)"
	opsc "$W/s3" mxtls "EHLO client.test" "$long" NOOP QUIT
	check "line length: a 1105-octet command line gets 500 5.5.2" \
		sh -c "grep -qE '^NOOP xxx.*octets\\) => 500 5\\.5\\.2' '$W/s3' || cat '$W/s3'"
	check "line length: the next command is answered in sync (NOOP 250)" reply_is "$W/s3" NOOP 250

	# --- 8 bad commands: 421 and close
	opsc "$W/s4" mxtls "EHLO client.test" XYZZY1 XYZZY2 XYZZY3 XYZZY4 XYZZY5 XYZZY6 XYZZY7 XYZZY8 "REST=AFTER"
	check "bad commands: the 7th still gets 500" reply_is "$W/s4" XYZZY7 500
	check "bad commands: the 8th leads to 421 4.7.0" \
		sh -c "grep -qE '^(XYZZY8|AFTER) => 421 4\\.7\\.0' '$W/s4' || cat '$W/s4'"
	check "bad commands: ... and the connection is closed" grep -q '^AFTER => EOF' "$W/s4"

	metrics_snap "$W/lim4" >/dev/null
	check "limits: sessions_current is 0 once every session closed (refused ones too)" \
		mdelta - "$W/lim4" mxtls_sessions_current eq 0

	# --- SIGTERM without sessions: ends at once
	D_PID=$MXTLS_PID
	kill -TERM "$D_PID"
	ops_wait_exit "$D_PID" 60
	check "SIGTERM without sessions: mxtls exits, status 0 (got $OPS_RC)" test "$OPS_RC" = 0
	check "SIGTERM without sessions: ... at once (from event=shutdown to event=stop)" \
		at_once "$(mxtls_interval '' ' event=shutdown ' ' event=stop( |$)')" "shutdown to stop"
	check "SIGTERM without sessions: ... no drain deadline" no_grep_since "$MXTLS_LOG" 0 'event=drain-timeout'
	check "mxtls[$MXTLS_N] no sanitizer report" sanitizer_clean "$MXTLS_LOG"
	ops_forget "$D_PID"
fi

# ================================================================ client_timeout

ops_config proxy='client_timeout = 2' </dev/null
if ops_start; then
	opsc "$W/s5" mxtls "EHLO client.test" "REST=IDLE"
	check "client_timeout = 2: an idle client gets 421 4.4.2" reply_is "$W/s5" IDLE '421 4\.4\.2'
	sid=$(mxtls_sid ' event=client-timeout ')
	check "client_timeout = 2: ... 2 s after the reply to its last command (mxtls's log)" deadline_within 2 \
		"$(mxtls_interval "$sid" ' event=(command|reply|state) ' ' event=client-timeout ')" "session ${sid:-?}"
	check "client_timeout = 2: ... and the connection is closed" grep -q '^IDLE => EOF' "$W/s5"
	mxtls_stop
fi

# ================================================================ metrics, admin, privileges

ops_config proxy='drain_timeout = 10' policy='retry_delay = 1' policy='fallback_ttl = 60' </dev/null
ops_start || finish
A_PID=$MXTLS_PID
A_N=$MXTLS_N

# --- privileges
check "privileges: with user = nobody, ps shows the process as nobody" \
	sh -c "u=\$(ps -o user= -p $A_PID | tr -d ' '); [ \"\$u\" = nobody ] || { echo \"ps -o user: \$u\"; exit 1; }"
check "privileges: real, effective and saved uid and gid are nobody's (65534)" sh -c \
	"awk '/^Uid:|^Gid:/ { for (i = 2; i <= 5; i++) if (\$i != 65534) { print; bad = 1 } } END { exit bad }' /proc/$A_PID/status"
check "privileges: no supplementary groups kept" sh -c \
	"g=\$(awk '/^Groups:/ { \$1 = \"\"; print }' /proc/$A_PID/status | tr -d ' '); [ -z \"\$g\" ] || [ \"\$g\" = 65534 ] || { echo \"Groups: \$g\"; exit 1; }"
check "privileges: state_dir was created with mode 0700" sh -c \
	"m=\$(stat -c %a '$OPS_STATE'); [ \"\$m\" = 700 ] || { echo \"mode \$m\"; exit 1; }"
check "privileges: state_dir belongs to nobody" sh -c \
	"o=\$(stat -c %U '$OPS_STATE'); [ \"\$o\" = nobody ] || { echo \"owner \$o\"; exit 1; }"

# --- admin endpoint
check "admin: /healthz 200" http_is /healthz 200
check "admin: /readyz 200 while running" http_is /readyz 200
check "admin: unknown path /nope 404" http_is /nope 404
check "admin: /metrics 200" metrics_snap "$W/m0"

# --- one delivery over TLS
x=$(mxtls_mark)
smtpc "$W/t1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u1@example.test>" "DATA=$M/1" QUIT
check "TLS delivery: 250 to the final dot" reply_is "$W/t1" DOT 250
check "TLS delivery: delivered byte-identical" delivered mx u1@example.test "$M/1"
check "TLS delivery: logged outcome=tls" mxtls_delivery_since "$x" 'outcome=tls' 'tls=TLSv1\.3'
metrics_snap "$W/m1"
check "metrics after TLS delivery: deliveries_total{outcome=\"tls\"} +1" mdelta "$W/m0" "$W/m1" mxtls_deliveries_total eq 1 outcome=tls
check "metrics after TLS delivery: other outcomes unchanged" sh -c \
	"for o in plaintext fallback deferred failed; do python3 '$OPS_METRICS' '$W/m0' '$W/m1' mxtls_deliveries_total eq 0 outcome=\$o || exit 1; done"
check "metrics after TLS delivery: tls_handshakes_total +1" mdelta "$W/m0" "$W/m1" mxtls_tls_handshakes_total eq 1
check "metrics after TLS delivery: tls_handshakes_total{version=\"TLSv1.3\"} +1" mdelta "$W/m0" "$W/m1" mxtls_tls_handshakes_total eq 1 version=TLSv1.3
check "metrics after TLS delivery: tls_handshake_seconds_count +1" mdelta "$W/m0" "$W/m1" mxtls_tls_handshake_seconds_count eq 1
check "metrics after TLS delivery: upstream_connect_seconds_count +1" mdelta "$W/m0" "$W/m1" mxtls_upstream_connect_seconds_count eq 1
check "metrics after TLS delivery: sessions_total +1" mdelta "$W/m0" "$W/m1" mxtls_sessions_total eq 1
check "metrics after TLS delivery: sessions_current back to 0" mdelta - "$W/m1" mxtls_sessions_current eq 0
sz=$(wc -c <"$M/1" | tr -d ' ')
check "metrics after TLS delivery: bytes_relayed_total{direction=\"upstream\"} +>= the message ($sz bytes)" \
	mdelta "$W/m0" "$W/m1" mxtls_bytes_relayed_total ge "$sz" direction=upstream
check "metrics after TLS delivery: tls_failures_total unchanged" mdelta "$W/m0" "$W/m1" mxtls_tls_failures_total eq 0

# --- one delivery in the clear to a server without STARTTLS (opportunistic)
x=$(mxtls_mark)
smtpc "$W/t2" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<p1@plain.ops.test>" "DATA=$M/2" QUIT
check "plaintext delivery: 250 to the final dot" reply_is "$W/t2" DOT 250
check "plaintext delivery: the server without STARTTLS got it" h_has plain p1@plain.ops.test
check "plaintext delivery: logged outcome=plaintext" mxtls_delivery_since "$x" 'outcome=plaintext' 'tls=none'
metrics_snap "$W/m2"
check "metrics after plaintext delivery: deliveries_total{outcome=\"plaintext\"} +1" mdelta "$W/m1" "$W/m2" mxtls_deliveries_total eq 1 outcome=plaintext
check "metrics after plaintext delivery: deliveries_total{outcome=\"tls\"} unchanged" mdelta "$W/m1" "$W/m2" mxtls_deliveries_total eq 0 outcome=tls
check "metrics after plaintext delivery: tls_handshakes_total unchanged" mdelta "$W/m1" "$W/m2" mxtls_tls_handshakes_total eq 0
check "metrics after plaintext delivery: tls_failures_total unchanged (no STARTTLS is no failure)" mdelta "$W/m1" "$W/m2" mxtls_tls_failures_total eq 0

# --- a TLS failure (fatal alert): deferred
x=$(mxtls_mark)
smtpc "$W/t3" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<f1@fail.ops.test>" "DATA=$M/3" QUIT
check "TLS failure: RCPT 451 4.7.5" reply_is "$W/t3" "RCPT TO:<f1@fail.ops.test>" '451 4\.7\.5'
check "TLS failure: logged outcome=deferred" mxtls_delivery_since "$x" 'outcome=deferred'
metrics_snap "$W/m3"
check "metrics after TLS failure: deliveries_total{outcome=\"deferred\"} +1" mdelta "$W/m2" "$W/m3" mxtls_deliveries_total eq 1 outcome=deferred
check "metrics after TLS failure: tls_failures_total +1" mdelta "$W/m2" "$W/m3" mxtls_tls_failures_total eq 1
res=$(sed -n 's/^mxtls_tls_failures_total{result="\([^"]*\)"}.*/\1/p' "$W/m3" | head -n 1)
check "metrics after TLS failure: tls_failures_total{result=\"${res:-?}\"} is an RFC 8460 result type" sh -c \
	"case '$res' in starttls-not-supported|certificate-host-mismatch|certificate-expired|certificate-not-trusted|validation-failure|tlsa-invalid|dnssec-invalid|dane-required|sts-policy-fetch-error|sts-policy-invalid|sts-webpki-invalid) ;; *) echo 'result label: $res'; grep tls_failures '$W/m3'; exit 1 ;; esac"
check "metrics after TLS failure: retry_records{state=\"failed-once\"} is 1" mdelta - "$W/m3" mxtls_retry_records eq 1 state=failed-once
check "metrics after TLS failure: no delivery counted as tls/plaintext" sh -c \
	"python3 '$OPS_METRICS' '$W/m2' '$W/m3' mxtls_deliveries_total eq 0 outcome=tls && python3 '$OPS_METRICS' '$W/m2' '$W/m3' mxtls_deliveries_total eq 0 outcome=plaintext"

# --- after retry_delay (1 s) the retry fails too: fallback in the clear
sleep 1.2
x=$(mxtls_mark)
smtpc "$W/t4" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<f2@fail.ops.test>" "DATA=$M/4" QUIT
check "fallback: 250 to the final dot" reply_is "$W/t4" DOT 250
check "fallback: delivered in the clear on a fresh connection" h_has alert f2@fail.ops.test
check "fallback: logged outcome=fallback" mxtls_delivery_since "$x" 'outcome=fallback'
metrics_snap "$W/m4"
check "metrics after fallback: deliveries_total{outcome=\"fallback\"} +1" mdelta "$W/m3" "$W/m4" mxtls_deliveries_total eq 1 outcome=fallback
check "metrics after fallback: tls_failures_total +1" mdelta "$W/m3" "$W/m4" mxtls_tls_failures_total eq 1
check "metrics after fallback: retry_records{state=\"broken\"} is 1" mdelta - "$W/m4" mxtls_retry_records eq 1 state=broken
check "metrics after fallback: deliveries_total{outcome=\"plaintext\"} unchanged" mdelta "$W/m3" "$W/m4" mxtls_deliveries_total eq 0 outcome=plaintext
check "metrics: sessions_total counts the 4 sessions" mdelta "$W/m0" "$W/m4" mxtls_sessions_total eq 4

# --- the live /metrics passes promtool
promtool check metrics <"$W/m4" >"$W/promtool.out" 2>&1
rc=$?
check "promtool check metrics on the live /metrics after traffic" sh -c \
	"[ $rc -eq 0 ] || { echo 'exit $rc'; cat '$W/promtool.out'; head -n 40 '$W/m4'; exit 1; }"
note "/metrics excerpt after the mixed run:"
grep -E '^mxtls_(deliveries_total|tls_handshakes_total|tls_failures_total|sessions_total|bytes_relayed_total|retry_records)' "$W/m4" | sed 's/^/#   /'

# ================================================================ SIGHUP

# --- a session mid-transaction keeps its config; new sessions get the new one
rm -f "$W/r1.up" "$W/r1.go"
opsc "$W/r1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<old1@reload.test>" \
	"TOUCH=$W/r1.up" "WAIT=$W/r1.go" "DATA=$M/r1" \
	"MAIL FROM:<s@sender.test>" "RCPT TO:<old2@reload.test>" "DATA=$M/r2" QUIT &
r1=$!
wait_until 10 test -f "$W/r1.up"
ops_rewrite <<EOF
[match reload.test]
profile = opportunistic
nexthop = 127.0.0.64:2525
mx = mx.example.test
EOF
x=$(mxtls_mark)
kill -HUP "$A_PID"
check "reload: SIGHUP logs event=reloaded" grep_since "$MXTLS_LOG" "$x" 'event=reloaded'
touch "$W/r1.go"
wait $r1
smtpc "$W/r3" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<new1@reload.test>" "DATA=$M/r3" QUIT
check "reload: the session open across SIGHUP: RCPT before it 250" reply_is "$W/r1" "RCPT TO:<old1@reload.test>" 250
check "reload: ... its message after it 250" reply_is "$W/r1" DOT 250 1
check "reload: ... delivered the old way (MX from DNS, byte-identical)" delivered mx old1@reload.test "$M/r1"
check "reload: ... not the new way" h_none new old1@reload.test
check "reload: ... a second transaction in that session: 250" reply_is "$W/r1" DOT 250 2
check "reload: ... still under the old config (MX from DNS)" mx_wait_rcpt mx old2@reload.test
check "reload: ... not the new nexthop" h_none new old2@reload.test
check "reload: a new session: 250" reply_is "$W/r3" DOT 250
check "reload: ... uses the new [match] (nexthop 127.0.0.64:2525)" h_has new new1@reload.test
check "reload: ... not the old MX" mx_none mx new1@reload.test
metrics_snap "$W/m5"
check "reload: config_reloads_total{outcome=\"ok\"} +1" mdelta "$W/m4" "$W/m5" mxtls_config_reloads_total eq 1 outcome=ok
check "reload: /readyz still 200" http_is /readyz 200

# --- a broken config is refused, the last good one stays
cp "$MXTLS_CONF" "$W/good.ini"
ops_rewrite <<EOF
[match broken.test]
profile = no-such-profile
EOF
bad_line=$(grep -n 'no-such-profile' "$MXTLS_CONF" | cut -d: -f1)
x=$(mxtls_mark)
kill -HUP "$A_PID"
check "broken reload: logged event=reload-failed" grep_since "$MXTLS_LOG" "$x" 'event=reload-failed'
check "broken reload: ... naming the file and line ($(basename "$MXTLS_CONF"):$bad_line)" \
	grep_since "$MXTLS_LOG" "$x" "event=reload-failed.*mxtls\\.ini:$bad_line"
check "broken reload: no event=reloaded" no_grep_since "$MXTLS_LOG" "$x" 'event=reloaded'
metrics_snap "$W/m6"
check "broken reload: config_reloads_total{outcome=\"failed\"} +1" mdelta "$W/m5" "$W/m6" mxtls_config_reloads_total eq 1 outcome=failed
check "broken reload: config_reloads_total{outcome=\"ok\"} unchanged" mdelta "$W/m5" "$W/m6" mxtls_config_reloads_total eq 0 outcome=ok
smtpc "$W/r4" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<new2@reload.test>" "DATA=$M/r4" QUIT
check "broken reload: mxtls still serves (250)" reply_is "$W/r4" DOT 250
check "broken reload: ... with the last good config (nexthop 127.0.0.64:2525)" h_has new new2@reload.test
check "broken reload: ... not the broken one's (MX from DNS)" mx_none mx new2@reload.test
check "broken reload: /readyz still 200" http_is /readyz 200

# --- reload under load: smtp-source while SIGHUP goes back and forth
# X: load.test via its MX (Postfix); Y: load.test to the nexthop (hostile).
cp "$W/good.ini" "$MXTLS_CONF" # = X for load.test
kill -HUP "$A_PID"
wait_for_log "$MXTLS_LOG" 'event=reloaded' 5
metrics_snap "$W/m7"
NLOAD=40
x=$(mxtls_mark)
smtp-source -s 4 -m $NLOAD -N -f s@sender.test -t u@load.test -M client.test "127.0.0.1:$MXTLS_PORT" \
	>"$W/load.out" 2>&1 &
lp=$!
# Each reload once a quarter of the stream went through.
wait_deliveries "$x" $((NLOAD / 4)) || note "load: fewer than $((NLOAD / 4)) deliveries before the first SIGHUP"
ops_rewrite <<EOF
[match reload.test]
profile = opportunistic
nexthop = 127.0.0.64:2525
mx = mx.example.test

[match load.test]
profile = opportunistic
nexthop = 127.0.0.64:2525
mx = mx.example.test
EOF
kill -HUP "$A_PID"
wait_deliveries "$x" $((NLOAD / 2)) || note "load: fewer than $((NLOAD / 2)) deliveries before the second SIGHUP"
ops_rewrite <<EOF
[match load.test]
profile = opportunistic
nexthop = 127.0.0.64:2525
mx = mx.example.test

[match broken.test]
profile = no-such-profile
EOF
kill -HUP "$A_PID"
wait_deliveries "$x" $((NLOAD * 3 / 4)) || note "load: fewer than $((NLOAD * 3 / 4)) deliveries before the third SIGHUP"
cp "$W/good.ini" "$MXTLS_CONF"
kill -HUP "$A_PID"
wait_until 30 sh -c "! kill -0 $lp 2>/dev/null"
lp_alive=no
alive $lp && lp_alive=yes
kill $lp 2>/dev/null
wait $lp
lrc=$?
check "load: smtp-source ($NLOAD messages, 4 sessions) finished, exit 0 (exit $lrc, still running: $lp_alive)" \
	sh -c "[ $lp_alive = no ] && [ $lrc -eq 0 ] || { tail -n 20 '$W/load.out'; exit 1; }"
# Each message has its own recipient NNu@load.test (smtp-source -N).
load_count() { # prints "N_MX N_HOSTILE DUPLICATES MISSING"
	python3 - "$(pf_dir mx)/mail/maildir/new" "$W/h-new/mail" "$NLOAD" <<'EOF'
import glob, os, re, sys
mx, h, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {}
nmx = nh = 0
for f in glob.glob(os.path.join(mx, "*")):
    for line in open(f, errors="replace"):
        if line in ("\n", "\r\n"):
            break
        m = re.match(r"Delivered-To: (\d+)u@load\.test$", line.strip())
        if m:
            seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
            nmx += 1
for f in glob.glob(os.path.join(h, "*.env")):
    for line in open(f, errors="replace"):
        m = re.match(r"rcpt: TO:<(\d+)u@load\.test>$", line.strip())
        if m:
            seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
            nh += 1
dup = sorted(k for k, v in seen.items() if v > 1)
miss = sorted(k for k in range(1, n + 1) if k not in seen)
print(nmx, nh, len(dup), len(miss), "dup=" + ",".join(map(str, dup[:10])), "missing=" + ",".join(map(str, miss[:10])))
EOF
}
load_all_in() {
	_t=$(it_until 20)
	while :; do
		# shellcheck disable=SC2046 # four words on purpose
		set -- $(load_count)
		[ "$4" -eq 0 ] && break
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.2
	done
	# shellcheck disable=SC2046
	set -- $(load_count)
	[ "$4" -eq 0 ] && [ "$3" -eq 0 ] && return 0
	echo "MX: $1, nexthop: $2, duplicated: $3, missing: $4 ($5 $6)"
	grep -E 'event=(delivery|reload)' "$MXTLS_LOG" | grep -vE 'outcome=(tls|fallback|plaintext)' | tail -n 10 | cut -c 1-300 | sed 's/^/  /'
	return 1
}
check "load: every message reached a receiver exactly once (none lost, none duplicated)" load_all_in
# shellcheck disable=SC2046
set -- $(load_count)
check "load: the reloads happened mid-stream (MX got $1, the nexthop got $2)" sh -c "[ $1 -gt 0 ] && [ $2 -gt 0 ]"
metrics_snap "$W/m8"
check "load: config_reloads_total{outcome=\"ok\"} +2, {outcome=\"failed\"} +1" sh -c \
	"python3 '$OPS_METRICS' '$W/m7' '$W/m8' mxtls_config_reloads_total eq 2 outcome=ok && python3 '$OPS_METRICS' '$W/m7' '$W/m8' mxtls_config_reloads_total eq 1 outcome=failed"
check "load: deliveries_total{outcome=\"tls\"} +$NLOAD" mdelta "$W/m7" "$W/m8" mxtls_deliveries_total eq $NLOAD outcome=tls
check "load: no message refused by mxtls" sh -c "! grep -E '^smtp-source: (fatal|warning)|: (4|5)[0-9][0-9] ' '$W/load.out' || exit 1"

# ================================================================ SIGTERM: drain

rm -f "$W/d1.up" "$W/d1.go"
opsc "$W/d1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<d1@example.test>" DATA \
	"SENDBODY=$M/d1" "TOUCH=$W/d1.up" "WAIT=$W/d1.go" "SEND=." "READ=DOT" QUIT &
d1=$!
wait_until 10 test -f "$W/d1.up"
x=$(mxtls_mark)
kill -TERM "$A_PID"
check "drain: SIGTERM logs event=shutdown" grep_since "$MXTLS_LOG" "$x" 'event=shutdown'
check "drain: new connections are refused" tcp_refused 127.0.0.1 "$MXTLS_PORT"
check "drain: /readyz 503 (or refused) while draining" http_is /readyz '503|refused'
check "drain: mxtls still runs while a message is in flight" alive "$A_PID"
touch "$W/d1.go"
wait $d1
ops_wait_exit "$A_PID" 60
check "drain: the message in flight gets 250" reply_is "$W/d1" DOT 250
check "drain: ... its session goes on to QUIT 221" reply_is "$W/d1" QUIT 221
check "drain: ... delivered byte-identical" delivered mx d1@example.test "$M/d1"
check "drain: mxtls exits (rc=$OPS_RC)" test "$OPS_RC" != running
check "drain: ... once the last session ended (at once after its event=session-end)" \
	at_once "$(mxtls_interval '' ' event=session-end' ' event=stop( |$)')" "last session to stop"
check "drain: ... not by the drain deadline" no_grep_since "$MXTLS_LOG" 0 'event=drain-timeout'
check "drain: exit status 0" test "$OPS_RC" = 0
check "mxtls[$A_N] no sanitizer report" sanitizer_clean "$MXTLS_LOG"
ops_forget "$A_PID"

# ================================================================ drain_timeout, JSON, hash

ops_config proxy='drain_timeout = 2' proxy='log_format = json' proxy='log_addresses = hash' </dev/null
if ops_start; then
	B_PID=$MXTLS_PID
	smtpc "$W/b1" mxtls "EHLO client.test" "MAIL FROM:<bob.sender@sender.test>" "RCPT TO:<alice.hashed@example.test>" "DATA=$M/h1" QUIT
	check "hash: delivered" delivered mx alice.hashed@example.test "$M/h1"
	B_MARK=$(mxtls_mark)
	# A verb of bytes that are not UTF-8, with ESC and DEL: mxtls logs the verb.
	opsc "$W/b3" mxtls "EHLO client.test" "RAWHEX=ff fe 1b 5b 32 4a 7f c3 28 20 61 0d 0a" QUIT
	check "hostile verb: answered 500" reply_is "$W/b3" RAW 500
	rm -f "$W/b2.up"
	opsc "$W/b2" mxtls "EHLO client.test" "TOUCH=$W/b2.up" "REST=IDLE" &
	b2=$!
	wait_until 10 test -f "$W/b2.up"
	kill -TERM "$B_PID"
	ops_wait_exit "$B_PID" 60
	wait $b2
	check "drain_timeout = 2: an idle session is closed with 421 4.3.2" reply_is "$W/b2" IDLE '421 4\.3\.2'
	check "drain_timeout = 2: ... and the connection is closed" grep -q '^IDLE => EOF' "$W/b2"
	check "drain_timeout = 2: mxtls exits by its drain deadline, 2 s after the SIGTERM (mxtls's log)" deadline_within 2 \
		"$(mxtls_interval '' '"event":"shutdown"' '"event":"drain-timeout"')" "shutdown to drain-timeout"
	check "drain_timeout = 2: exit status 0 (got $OPS_RC)" test "$OPS_RC" = 0
	check "mxtls[$MXTLS_N] no sanitizer report" sanitizer_clean "$MXTLS_LOG"
	ops_forget "$B_PID"
	check "log_format = json: every stderr line is a JSON object with ts, level, event" python3 "$OPS_JSON" "$MXTLS_LOG" "$B_MARK"
	check "log_format = json: ... also after a command with non-UTF-8 bytes and control characters" python3 "$OPS_JSON" "$MXTLS_LOG"
	check "log_format = json: the delivery is logged" grep -qE '"event":"delivery".*"outcome":"tls"' "$MXTLS_LOG"
	check "log_addresses = hash: no envelope address (nor its local part) in info-level events" \
		log_lacks "$MXTLS_LOG" other 'alice\.hashed|bob\.sender'
	check "log_addresses = hash: nor in debug-level events (log_level = debug)" \
		log_lacks "$MXTLS_LOG" debug 'alice\.hashed|bob\.sender'
	check "log_addresses = hash: the mail and rcpt events carry a hash instead" python3 - "$MXTLS_LOG" <<'EOF'
import json, re, sys
got = {}
for line in open(sys.argv[1], errors="replace"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("event") == "mail":
        got["from"] = o.get("from", "")
    if o.get("event") == "rcpt":
        got["to"] = o.get("to", "")
for k in ("from", "to"):
    v = got.get(k)
    if v is None or not re.fullmatch(r"[0-9a-f]{16,64}", v):
        print("event %s: %s=%r is not a hex hash" % ("mail" if k == "from" else "rcpt", k, v))
        sys.exit(1)
EOF
fi

# ================================================================ allow_clients, domain, second SIGTERM

ops_config allow=127.0.0.2/32 proxy='log_addresses = domain' </dev/null
if ops_start; then
	C_PID=$MXTLS_PID
	metrics_snap "$W/c-m0" >/dev/null
	opsc "$W/c0" --src 127.0.0.1 mxtls "REST=AFTER"
	metrics_snap "$W/c-m1" >/dev/null
	check "allow_clients: sessions_refused_total{reason=\"not_allowed\"} +1" \
		mdelta "$W/c-m0" "$W/c-m1" mxtls_sessions_refused_total eq 1 reason=not_allowed
	check "allow_clients = 127.0.0.2/32: a client at 127.0.0.1 gets 554 5.7.1" reply_is "$W/c0" CONNECT '554 5\.7\.1'
	check "allow_clients = 127.0.0.2/32: ... and is closed" grep -q '^AFTER => EOF' "$W/c0"
	opsc "$W/c1" --src 127.0.0.2 mxtls "EHLO client.test" "MAIL FROM:<carol.sender@sender.test>" \
		"RCPT TO:<dave.domain@example.test>" "DATA=$M/c1" QUIT
	check "allow_clients = 127.0.0.2/32: a client at 127.0.0.2 is served (250)" reply_is "$W/c1" DOT 250
	check "log_addresses = domain: delivered" delivered mx dave.domain@example.test "$M/c1"
	check "log_addresses = domain: no local part in info-level events" \
		log_lacks "$MXTLS_LOG" other 'carol\.sender|dave\.domain'
	check "log_addresses = domain: nor in debug-level events (log_level = debug)" \
		log_lacks "$MXTLS_LOG" debug 'carol\.sender|dave\.domain'
	check "log_addresses = domain: the rcpt event shows the domain only" \
		grep -qE 'event=rcpt .*to="?\*@example\.test"?( |$)' "$MXTLS_LOG"
	check "log_addresses = domain: the mail event shows the domain only" \
		grep -qE 'event=mail .*from="?\*@sender\.test"?( |$)' "$MXTLS_LOG"

	# --- a second SIGTERM ends at once
	rm -f "$W/c2.up"
	opsc "$W/c2" --src 127.0.0.2 mxtls "EHLO client.test" "TOUCH=$W/c2.up" "REST=IDLE" &
	c2=$!
	wait_until 10 test -f "$W/c2.up"
	kill -TERM "$C_PID"
	sleep 0.5
	check "second SIGTERM: after the first, mxtls drains (still running, drain_timeout 30)" alive "$C_PID"
	check "second SIGTERM: /readyz 503 (or refused) while draining" http_is /readyz '503|refused'
	kill -TERM "$C_PID"
	ops_wait_exit "$C_PID" 60
	wait $c2
	check "second SIGTERM: mxtls ends (rc $OPS_RC)" test "$OPS_RC" != running
	check "second SIGTERM: ... at once (from event=shutdown-now to event=stop)" \
		at_once "$(mxtls_interval '' ' event=shutdown-now ' ' event=stop( |$)')" "shutdown-now to stop"
	check "second SIGTERM: exit status 0" test "$OPS_RC" = 0
	check "second SIGTERM: the session left gets 421 4.3.2" reply_is "$W/c2" IDLE '421 4\.3\.2'
	check "mxtls[$MXTLS_N] no sanitizer report" sanitizer_clean "$MXTLS_LOG"
	ops_forget "$C_PID"
fi

note "run time $(ops_since "$T_START") s"
finish
