#!/bin/sh
# The failure table of docs/behaviour.md section 7, end to end: an SMTP client ->
# mxtls -> real Postfix MXs and the scripted hostile server, with mxtls's
# clock moved by restarting it with MXTLS_CLOCK_OFFSET (same state_dir, so
# every phase after the first also proves that the retry records persisted
# across a restart).  retry_delay and fallback_ttl keep their defaults
# (300 s, 3600 s).
#
# Phases (one mxtls start each; every case gets one attempt per phase):
#   P0  clock +0      first attempt                      -> t0
#   P1  clock +60     one minute later (inside the delay)
#   P2  clock +310    the one retry (at/after t0 + 300)
#   P3  clock +2110   inside fallback_ttl after the retry
#   P4  clock +3970   after fallback_ttl: the cycle starts again
#
# Cases: each has a domain CASE.test with an MX host (name, address) of its
# own, so that retry records never mix.  Columns: optnone = opportunistic +
# verify none, opportunistic = opportunistic + strict (built in),
# mandatory (built in, strict); the *13 profiles add min_version = 1.3.
# Outcome after the retry: clear = no STARTTLS, delivered in the clear at
# every attempt (no record); fallback = clear on a fresh connection;
# fail = 550 5.7.5; fail-notls = 550 5.7.10; recover = the receiver is
# fixed between P1 and P2, TLS works at the retry.
#
# Where each cell of the table is shown (check names start with "Pn CASE"):
#   no STARTTLS          optnone: nst-on, opportunistic: nst-os (clear at every
#                        attempt, no record); mandatory: nst-m (451, then at the
#                        retry 550 5.7.10)
#   first TLS failure    P0 of every case but nst-on/nst-os, all three columns
#   before t0 + 300      P1 (451 4.7.5, the receiver's count does not move)
#   retry, TLS works     P2 of rec-on (optnone), rec-os (opportunistic),
#                        rec-m (mandatory): over TLS, the record is gone
#   retry fails too      optnone: v12-on, stall-on, injl-on -> clear on a fresh
#                        connection; opportunistic: exp-os, wn-os (certificate)
#                        -> 550 5.7.5, v12-os, alert-os, t10-os (other) -> clear;
#                        mandatory: exp-m, wn-m, v12-m, injs-m, r454-m -> 550
#                        5.7.5, nst-m -> 550 5.7.10
#   inside fallback_ttl  P3: the final outcome without a TLS attempt
#   after fallback_ttl   P4: 451 4.7.5 with a new t0
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
it_setup
T_BEGIN=$(date +%s)

CASES=$W/cases
cat >"$CASES" <<'EOF'
# id     MX host           addr receiver                          profile        outcome     reason (ERE)
nst-on   mx.nst-on.test    102  pf:tls=no                         optnone        clear       -
nst-os   mx.nst-os.test    103  pf:tls=no                         opportunistic  clear       -
nst-m    mx.nst-m.test     104  pf:tls=no                         mandatory      fail-notls  does.not.offer.STARTTLS
exp-os   mx.expired.test   105  pf:cert=expired                   opportunistic  fail        certificate.has.expired
exp-m    mx3.example.test  106  pf:cert=expired                   mandatory      fail        certificate.has.expired
wn-os    mx.wn-os.test     107  pf:cert=wrongname                 opportunistic  fail        hostname.mismatch.*wrong\.example\.net
wn-m     mx.wn-m.test      108  pf:cert=wrongname                 mandatory      fail        hostname.mismatch.*wrong\.example\.net
v12-on   mx.v12-on.test    109  pf:protocols=TLSv1.2              optnone13      fallback    protocol.version
v12-os   mx.v12-os.test    110  pf:protocols=TLSv1.2              opp13          fallback    protocol.version
v12-m    mx.v12-m.test     111  pf:protocols=TLSv1.2              mand13         fail        protocol.version
rec-on   mx.rec-on.test    112  pf:protocols=TLSv1.2/protocols=>=TLSv1.2  optnone13  recover  protocol.version
rec-os   mx1.example.test  113  pf:cert=expired/cert=valid        opportunistic  recover     certificate.has.expired
rec-m    mx2.example.test  114  pf:cert=expired/cert=valid        mandatory      recover     certificate.has.expired
stall-on mx.stall-on.test  121  h:handshake-stall                 optnone        fallback    timeout
alert-os mx.alert-os.test  122  h:alert                           opportunistic  fallback    alert.handshake.failure
t10-os   mx.t10-os.test    123  h:tls10-only                      opportunistic  fallback    protocol.version
injl-on  mx.injl-on.test   124  h:inject-later                    optnone        fallback    plaintext.injected|wrong.version.number
injs-m   mx.injs-m.test    125  h:inject-same-segment             mandatory      fail        plaintext.injected.after.STARTTLS
r454-m   mx.r454-m.test    126  h:starttls-refused-454            mandatory      fail        454.4\.7\.0
EOF
cases() { grep -v '^#' "$CASES"; }

# --- DNS: CASE.test MX <MX host>, <MX host> A 127.0.0.<addr>
cases | while read -r id mx a rest; do echo "$id $mx $a"; done >"$W/dns"
while read -r id mx a; do
	dns_mx "$id.test" "$mx" 10
	dns_a "$mx" "127.0.0.$a"
done <"$W/dns"
dns_start || finish

# --- receivers
while read -r id mx a recv rest; do
	case $recv in
	pf:*)
		opts=${recv#pf:}
		pf_mx "$id" "127.0.0.$a:25" "${opts%%/*}" hostname="$mx" || fail "Postfix MX $id starts" "$(cat "$(pf_dir "$id")/master.out")"
		;;
	h:*) hostile_smtpd "$id" "127.0.0.$a:25" "${recv#h:}" ;;
	esac
done <<EOF
$(cases)
EOF

# --- the harness: each receiver is what the case says, before mxtls is involved
check "harness: exp-os serves an expired certificate" tls_probe_is 127.0.0.105:25 mx.expired.test 'Verify return code: 10 \(certificate has expired\)'
check "harness: wn-os serves a certificate for another name" tls_probe_is 127.0.0.107:25 mx.wn-os.test 'Verify return code: 62 \(hostname mismatch\)'
check "harness: v12-m speaks TLS 1.2 and no TLS 1.3" sh -c "
	v=\$(timeout 10 openssl s_client -starttls smtp -connect 127.0.0.111:25 </dev/null 2>&1 | grep -E '^New, ')
	echo \"\$v\" | grep -q TLSv1.2 && ! timeout 10 openssl s_client -starttls smtp -tls1_3 -connect 127.0.0.111:25 </dev/null 2>&1 | grep -q '^New, TLSv1.3' || { echo \"got: \$v\"; false; }"
check "harness: nst-m offers no STARTTLS" sh -c \
	"python3 '$IT_FILES/smtpc.py' 127.0.0.104:25 'EHLO c.test' QUIT | grep '^EHLO' | grep -vq STARTTLS"
check "harness: hostile t10-only speaks TLS 1.0 only" sh -c \
	"timeout 10 openssl s_client -starttls smtp -connect 127.0.0.123:25 -tls1_2 </dev/null 2>&1 | grep -q '^New, (NONE)'"
# The harness probes connected: the counts start from here.

rt_config proxy='tls_timeout = 2' <<EOF || finish
[profile optnone]
tls = opportunistic
verify = none

[profile optnone13]
tls = opportunistic
verify = none
min_version = 1.3

[profile opp13]
tls = opportunistic
verify = strict
min_version = 1.3

[profile mand13]
tls = mandatory
verify = strict
min_version = 1.3

$(cases | while read -r id mx a recv prof rest; do printf '[match %s.test]\nprofile = %s\n\n' "$id" "$prof"; done)
EOF

M=$W/msg
mkdir -p "$M"

# what PHASE OUTCOME: what an attempt of a case with OUTCOME must get in PHASE:
# defer (first TLS failure: 451, contacted once), wait (451, not contacted),
# direct (clear, no STARTTLS), fallback (clear on a fresh connection after a
# failed TLS try), fallback-ttl (clear, only the plaintext connection),
# fail / fail-notls (at the retry, contacted once), fail-ttl /
# fail-notls-ttl (not contacted), tls.
what() {
	case $2 in
	clear) echo direct; return ;;
	esac
	case $1 in
	0 | 4) [ "$2" = recover ] && [ "$1" = 4 ] && echo tls || echo defer ;;
	1) echo wait ;;
	2) case $2 in recover) echo tls ;; *) echo "$2" ;; esac ;;
	3) case $2 in recover) echo tls ;; *) echo "$2-ttl" ;; esac ;;
	esac
}
# delta WHAT: connections the receiver must see in that attempt.
delta() {
	case $1 in
	wait | fail-ttl | fail-notls-ttl) echo 0 ;;
	fallback) echo 2 ;;
	*) echo 1 ;;
	esac
}

# phase P: one SMTP session per case through mxtls, then the checks.
phase() {
	P=$1
	PN="P$P (clock +$RT_OFFSET s)"
	mkmsg "$M/p$P" "retry test phase $P"
	while read -r id mx a recv prof out re; do
		kind=${recv%%:*}
		rt_count "$kind" "$id" >"$W/count.$P.$id"
		smtpc "$W/t.$P.$id" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
			"RCPT TO:<u$P@$id.test>" "DATA=$M/p$P" QUIT
	done <<EOF
$(cases)
EOF
	sleep 0.5 # a connection that should not have been made has been logged now
	rt_state "$W/state.$P"
	check "$PN: mxtls state lists the records (exit 0)" rt_state "$W/state.$P"
	sed 's/^/#   state: /' "$W/state.$P"
	while read -r id mx a recv prof out re; do
		kind=${recv%%:*}
		w=$(what "$P" "$out")
		n="$PN $id [$prof, ${recv#*:}]"
		t=$W/t.$P.$id
		r="RCPT TO:<u$P@$id.test>"
		addr=127.0.0.$a
		where="${mx}[$addr]:25"
		check "$n: $w: receiver contacted $(delta "$w") time(s)" \
			rt_count_is "$kind" "$id" "$(cat "$W/count.$P.$id")" "$(delta "$w")"
		case $w in
		defer | wait)
			check "D-15 $n: $w: RCPT 451 4.7.5" reply_is "$t" "$r" '451 4\.7\.5 '
			check "$n: $w: the reply names the domain, $where, the reason and the retry time" sh -c '
				grep -F "$1 =>" "$2" | grep -F "$3" | grep -F "$4" | grep -E -- "$5" | grep -qE "retry after [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z" ||
				{ echo "want domain $3, $4, /$5/, retry after TIME in:"; grep -F "$1 =>" "$2"; false; }' - "$r" "$t" "$id.test" "$where" "$re"
			if [ "$kind" = pf ]; then
				check "$n: $w: nothing delivered" mx_none "$id" "u$P@$id.test"
			else
				check "$n: $w: nothing delivered" rt_h_none "$id" "u$P@$id.test"
			fi
			check "$n: $w: record failed-once" rt_state_is "$W/state.$P" "$addr" failed-once
			ra=$(rt_retry_after "$t" "$r")
			check "$n: $w: the reply's retry time is the record's retry_after" \
				test "$ra" = "$(rt_state_field "$W/state.$P" "$addr" retry_after)"
			;;
		esac
		case $w in
		defer)
			check "$n: defer: mxtls logged the TLS failure, action=defer record=failed-once" \
				rt_log_has 'event=tls-failure' "host=$mx\\[$addr\\]:25" 'action=defer' 'record=failed-once'
			if [ "$P" = 0 ]; then
				echo "$ra" >"$W/ra.$id"
				# The attempt's time: when mxtls logged its failure (P0
				# does not move the clock), whenever this check runs.
				at=$(mxtls_epoch "$(grep -E "event=tls-failure .*host=$mx\\[$addr\\]:25" "$MXTLS_LOG" | head -n 1)")
				check "D-15 $n: defer: retry time = the attempt's time + 300 s ($ra)" \
					rt_between "$(rt_epoch "$ra")" $((${at:-0} + 300 - 60)) $((${at:-0} + 301)) "retry after"
			else
				first=$(rt_epoch "$(cat "$W/ra.$id")")
				check "$n: defer: a new cycle: retry time ($ra) > first cycle's + fallback_ttl" \
					rt_between "$(rt_epoch "$ra")" $((first + 3601)) $((first + 3600 + 3970)) "retry after"
			fi
			;;
		wait)
			check "D-15 $n: wait: mxtls skipped the host (event=tls-skip action=defer)" \
				rt_log_has 'event=tls-skip' "host=$mx\\[$addr\\]:25" 'record=failed-once' 'action=defer'
			check "$n: wait: same t0 (the retry time of P0)" test "$ra" = "$(cat "$W/ra.$id")"
			;;
		direct | fallback | fallback-ttl)
			check "$n: $w: 250 to the final dot" reply_is "$t" DOT '250 '
			if [ "$kind" = pf ]; then
				check "$n: $w: delivered byte-identical" delivered "$id" "u$P@$id.test" "$M/p$P"
				check "$n: $w: Received header without TLS" received_over "$id" "u$P@$id.test" none
			elif [ "$w" = fallback ]; then
				check "$n: $w: saved with tls: no, byte-identical, on a fresh connection after the failed STARTTLS one" \
					rt_h_clear "$id" "u$P@$id.test" "$M/p$P" fresh
			else
				check "$n: $w: saved with tls: no, byte-identical, no STARTTLS tried" \
					rt_h_clear "$id" "u$P@$id.test" "$M/p$P"
			fi
			;;
		esac
		case $w in
		direct)
			check "$n: direct: mxtls logged event=delivery tls=none, no fallback" \
				rt_log_has 'event=delivery' "rcpt_domain=$id\\.test" 'tls=none' 'reply="250 '
			check "$n: direct: not as a fallback" rt_log_lacks 'event=delivery' "rcpt_domain=$id\\.test" 'fallback=yes'
			check "$n: direct: no record" rt_state_is "$W/state.$P" "$addr" none
			;;
		fallback)
			check "$n: fallback: mxtls logged the failed retry, action=fallback-clear record=broken" \
				rt_log_has 'event=tls-failure' "host=$mx\\[$addr\\]:25" 'action=fallback-clear' 'record=broken'
			;;
		fallback-ttl)
			check "$n: fallback-ttl: mxtls skipped TLS (event=tls-skip action=fallback-clear)" \
				rt_log_has 'event=tls-skip' "host=$mx\\[$addr\\]:25" 'record=broken' 'action=fallback-clear'
			;;
		esac
		case $w in
		fallback | fallback-ttl)
			check "$n: $w: mxtls logged event=delivery tls=none fallback=yes" \
				rt_log_has 'event=delivery' "rcpt_domain=$id\\.test" 'tls=none' 'fallback=yes' 'reply="250 '
			check "$n: $w: record broken" rt_state_is "$W/state.$P" "$addr" broken
			;;
		fail | fail-ttl | fail-notls | fail-notls-ttl)
			case $w in
			fail-notls*) code='550 5\.7\.10 ' ;;
			*) code='550 5\.7\.5 ' ;;
			esac
			check "D-15 $n: $w: RCPT ${code%% }" reply_is "$t" "$r" "$code"
			check "$n: $w: the reply names the domain, $where and the reason" sh -c '
				grep -F "$1 =>" "$2" | grep -F "$3" | grep -F "$4" | grep -qE -- "$5" ||
				{ echo "want domain $3, $4, /$5/ in:"; grep -F "$1 =>" "$2"; false; }' - "$r" "$t" "$id.test" "$where" "$re"
			if [ "$kind" = pf ]; then
				check "$n: $w: nothing delivered" mx_none "$id" "u$P@$id.test"
			else
				check "$n: $w: nothing delivered" rt_h_none "$id" "u$P@$id.test"
			fi
			check "$n: $w: record broken" rt_state_is "$W/state.$P" "$addr" broken
			case $w in
			*-ttl) check "$n: $w: mxtls skipped the host (event=tls-skip)" \
				rt_log_has 'event=tls-skip' "host=$mx\\[$addr\\]:25" 'record=broken' 'action=fail' ;;
			*) check "$n: $w: mxtls logged the failed retry, record=broken" \
				rt_log_has 'event=tls-failure' "host=$mx\\[$addr\\]:25" 'action=fail' 'record=broken' ;;
			esac
			;;
		tls)
			check "$n: tls: 250 to the final dot" reply_is "$t" DOT '250 '
			check "$n: tls: delivered byte-identical" delivered "$id" "u$P@$id.test" "$M/p$P"
			check "$n: tls: Received header shows TLSv1.3" received_over "$id" "u$P@$id.test" TLSv1.3
			check "$n: tls: mxtls logged event=delivery tls=TLSv1.3" \
				rt_log_has 'event=delivery' "rcpt_domain=$id\\.test" 'tls=TLSv1\.3' 'reply="250 '
			check "$n: tls: the record is gone" rt_state_is "$W/state.$P" "$addr" none
			[ "$P" = 2 ] && check "$n: tls: mxtls logged event=tls-recovered" \
				rt_log_has 'event=tls-recovered' "mx=$mx" "addr=$addr"
			;;
		esac
	done <<EOF
$(cases)
EOF
}

rt_mxtls_start 0 || finish
phase 0
rt_mxtls_restart 60 || finish
phase 1

# The broken receivers of the "recover" cases are fixed now.
while read -r id mx a recv rest; do
	fix=${recv#pf:*/}
	[ "$fix" != "$recv" ] || continue
	rt_pf_restart "$id" "127.0.0.$a:25" "$fix" hostname="$mx" || fail "Postfix MX $id restarts with $fix"
done <<EOF
$(cases | awk '$6 == "recover"')
EOF

rt_mxtls_restart 310 || finish
phase 2
rt_mxtls_restart 2110 || finish
phase 3
rt_mxtls_restart 3970 || finish
phase 4

# --- never MAIL in the clear on a connection that was to be TLS (mandatory)
for id in injs-m r454-m; do
	check "mandatory $id: no MAIL/RCPT/DATA ever sent in the clear (hostile transcripts)" sh -c \
		"! grep -HE '^C: plain (MAIL|RCPT|DATA)' '$W/h-$id/mail'/conn-*.log"
done
for id in nst-m exp-m wn-m v12-m; do
	check "mandatory $id: Postfix never accepted MAIL before TLS" no_grep_since "$(pf_log "$id")" 0 \
		'smtpd.*: [0-9A-F]+: client='
done

mxtls_stop
note "run time: $(($(date +%s) - T_BEGIN)) s"
finish
