#!/bin/sh
# The failure table as the legacy MTA sees it: Postfix (relayhost = mxtls)
# -> mxtls -> a broken receiving MX.  mxtls's clock moves by restarts with
# MXTLS_CLOCK_OFFSET (same state_dir); Postfix's queue is flushed after each
# move.  retry_delay and fallback_ttl are set to non-default values here
# (600 s, 1800 s), so the test also shows that mxtls uses the configured ones.
#
#   opp.test    MX mx.alert.test    127.0.0.141:25  hostile server, fatal alert
#               in the handshake; profile opportunistic (strict)
#               -> deferred, then after the delay sent in the clear
#   mand.test   MX mx.expired.test  127.0.0.142:25  Postfix, expired certificate;
#               profile mandatory -> deferred, then after the delay bounced (5.7.5)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
it_setup
T_BEGIN=$(date +%s)

dns_mx opp.test mx.alert.test 10
dns_a mx.alert.test 127.0.0.141
dns_mx mand.test mx.expired.test 10
dns_a mx.expired.test 127.0.0.142
dns_start || finish

hostile_smtpd alert 127.0.0.141:25 alert || finish
pf_mx expired 127.0.0.142:25 cert=expired hostname=mx.expired.test || finish

rt_config policy='retry_delay = 600' policy='fallback_ttl = 1800' <<EOF || finish
[match opp.test]
profile = opportunistic

[match mand.test]
profile = mandatory
EOF
rt_mxtls_start 0 || finish

P=$(free_port)
pf_mta mta "127.0.0.1:$P" "[127.0.0.1]:$MXTLS_PORT" || finish
MTA=$(pf_dir mta)
MTALOG=$(pf_log mta)

M=$W/msg
mkdir -p "$M"
mkmsg "$M/opp" "legacy MTA, opportunistic, broken TLS"
mkmsg "$M/mand" "legacy MTA, mandatory, expired certificate"

# mta_since MARK RCPT STATUS ERE [SECONDS]: the MTA logged, after byte MARK
# of its log, a delivery attempt to RCPT with STATUS whose text matches ERE.
mta_since() {
	_t=$(it_until "${5:-20}")
	_n=0
	while :; do
		log_since "$MTALOG" "$1" | grep -F "to=<$2>," | grep -E -- "status=$3 .*$4" >/dev/null && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.2
		# A message that was still active at the last flush is deferred
		# by now: schedule it again rather than wait for Postfix's backoff.
		_n=$((_n + 1))
		[ $((_n % 10)) -eq 0 ] && flush >/dev/null 2>&1
	done
	echo "the MTA logged no status=$3 matching /$4/ for $2 after byte $1; its lines for it:"
	log_since "$MTALOG" "$1" | grep -F "to=<$2>," | tail -n 5 | cut -c 1-400 | sed 's/^/  | /'
	return 1
}
# flush: what `postqueue -f` does for the deferred queue.  (postqueue -f
# itself also wakes the pickup service, which this MTA does not run, and
# then reports "mail system is down"; -i schedules one message at a time.)
flush() {
	find "$MTA/queue/deferred" -type f -printf '%f\n' | while read -r _id; do
		postqueue -c "$MTA" -i "$_id" || echo "postqueue -i $_id failed"
	done
}

c_opp=$(rt_count h alert)
c_mand=$(rt_count pf expired)

# --- t0: both messages are deferred with mxtls's 451 4.7.5
m0=$(log_mark "$MTALOG")
smtpc "$W/t.opp" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<a@opp.test>" "DATA=$M/opp" QUIT
check "MTA accepted the message to opp.test" reply_is "$W/t.opp" DOT '250 '
smtpc "$W/t.mand" "127.0.0.1:$P" "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<b@mand.test>" "DATA=$M/mand" QUIT
check "MTA accepted the message to mand.test" reply_is "$W/t.mand" DOT '250 '

check "opportunistic: the MTA logged status=deferred with 451 4.7.5, the host and the alert" \
	mta_since "$m0" a@opp.test deferred '451 4\.7\.5 TLS to mx\.alert\.test\[127\.0\.0\.141\]:25 for domain opp\.test failed: alert handshake_failure; retry after '
check "mandatory: the MTA logged status=deferred with 451 4.7.5, the host and the expired certificate" \
	mta_since "$m0" b@mand.test deferred '451 4\.7\.5 TLS to mx\.expired\.test\[127\.0\.0\.142\]:25 for domain mand\.test failed: certificate has expired'
rt_state "$W/state.0"
check "t0: mxtls state lists mx.alert.test[127.0.0.141] as failed-once (handshake)" \
	rt_state_is "$W/state.0" 127.0.0.141 failed-once '^mx\.alert\.test .*event=handshake'
check "t0: mxtls state lists mx.expired.test[127.0.0.142] as failed-once (certificate)" \
	rt_state_is "$W/state.0" 127.0.0.142 failed-once '^mx\.expired\.test .*event=certificate'
ra=$(rt_state_field "$W/state.0" 127.0.0.141 retry_after)
since=$(rt_state_field "$W/state.0" 127.0.0.141 since)
check "t0: retry_after = since + retry_delay (600 s) ($since, $ra)" \
	test "$(($(rt_epoch "$ra") - $(rt_epoch "$since")))" = 600

# Postfix retries (backoff 1-2 s; on a busy machine a flush schedules it):
# mxtls answers 451 at once, without contacting the receivers again.
deferred_twice() {
	_t=$(it_until 15)
	_n=0
	while [ "$(log_since "$MTALOG" "$m0" | grep -F "to=<a@opp.test>," | grep -c "status=deferred.*451 4\.7\.5")" -lt 2 ]; do
		[ "$(date +%s)" -ge "$_t" ] && { echo "only one deferral logged"; return 1; }
		sleep 0.2
		_n=$((_n + 1))
		[ $((_n % 10)) -eq 0 ] && flush >/dev/null 2>&1
	done
	return 0
}
check "the MTA retried (a second deferral of the opportunistic message)" deferred_twice
sleep 0.3
check "t0: the hostile server was contacted once" rt_count_is h alert "$c_opp" 1
check "t0: the expired Postfix MX was contacted once" rt_count_is pf expired "$c_mand" 1

# --- clock +310 s: still inside retry_delay = 600: deferred again, nobody contacted
rt_mxtls_restart 310 || finish
m1=$(log_mark "$MTALOG")
flush
check "+310 s (< retry_delay 600): opportunistic still deferred with 451 4.7.5" \
	mta_since "$m1" a@opp.test deferred '451 4\.7\.5 .*retry after '"$ra"
check "+310 s (< retry_delay 600): mandatory still deferred with 451 4.7.5" \
	mta_since "$m1" b@mand.test deferred '451 4\.7\.5 .*certificate has expired'
sleep 0.3
check "+310 s: the hostile server was not contacted" rt_count_is h alert "$c_opp" 1
check "+310 s: the expired Postfix MX was not contacted" rt_count_is pf expired "$c_mand" 1

# --- clock +610 s: past retry_delay, the one retry: clear fallback / bounce
rt_mxtls_restart 610 || finish
m2=$(log_mark "$MTALOG")
flush
check "+610 s: opportunistic: the MTA logged status=sent" mta_since "$m2" a@opp.test sent '250 '
check "+610 s: opportunistic: the message arrived in the clear (tls: no), byte-identical, on a fresh connection" \
	rt_h_clear alert a@opp.test "$M/opp" fresh
check "+610 s: opportunistic: mxtls logged event=delivery tls=none fallback=yes" \
	rt_log_has 'event=delivery' 'rcpt_domain=opp\.test' 'tls=none' 'fallback=yes' 'reply="250 '
check "+610 s: mandatory: the MTA logged status=bounced with 550 5.7.5 and the reason" \
	mta_since "$m2" b@mand.test bounced '550 5\.7\.5 TLS to mx\.expired\.test\[127\.0\.0\.142\]:25 for domain mand\.test failed again: certificate has expired'
check "+610 s: mandatory: nothing delivered" mx_none expired b@mand.test
check "+610 s: mandatory: the expired Postfix MX never saw MAIL" no_grep_since "$(pf_log expired)" 0 'smtpd.*: [0-9A-F]+: client='
sleep 0.3
check "+610 s: the hostile server was contacted twice more (failed TLS + fallback)" rt_count_is h alert "$c_opp" 3
check "+610 s: the expired Postfix MX was contacted once more" rt_count_is pf expired "$c_mand" 2
rt_state "$W/state.2"
check "+610 s: both hosts broken until about now + fallback_ttl (1800 s)" sh -c '
	for a in 127.0.0.141 127.0.0.142; do
		u=$(awk -v a=$a "\$2 == a && \$3 == \"broken\"" "$1" | sed -n "s/.* until=\([^ ]*\).*/\1/p")
		[ -n "$u" ] || { echo "no broken record for $a:"; cat "$1"; exit 1; }
		d=$(( $(date -u -d "$(echo "$u" | sed "s/T/ /; s/Z$//")" +%s) - $(date +%s) - $2 ))
		[ $d -ge 1780 ] && [ $d -le 1800 ] || { echo "$a: until=$u is now+offset+$d s"; exit 1; }
	done' - "$W/state.2" "$RT_OFFSET"
check "the MTA's queue is empty" sh -c "postqueue -c '$MTA' -p | grep -q 'Mail queue is empty' || postqueue -c '$MTA' -p"

# --- the Postfix log lines (for the closing note): each message's delivery
# attempts and, for the bounced one, the non-delivery notification.
for r in a@opp.test b@mand.test; do
	id=$(grep -F "to=<$r>," "$MTALOG" | head -n 1 | sed -n 's/.*: \([0-9A-F]*\): to=.*/\1/p')
	note "Postfix (legacy MTA) log lines for $r (queue id $id):"
	grep -E "(: $id: to=<|\]: $id: sender non-delivery)" "$MTALOG" | sed 's/^/#   /'
done
note "the message as the receiver saved it: $(rt_h_message alert a@opp.test)"
sed 's/^/#   /' "$(rt_h_message alert a@opp.test)"

pf_stop mta
mxtls_stop
note "run time: $(($(date +%s) - T_BEGIN)) s"
finish
