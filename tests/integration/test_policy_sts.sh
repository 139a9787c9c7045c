#!/bin/sh
# MTA-STS (RFC 8461; docs/behaviour.md sections 6 and 7) end to end: a
# running mxtls looks up _mta-sts.DOMAIN TXT in dnsmasq, fetches
# https://mta-sts.DOMAIN/.well-known/mta-sts.txt from a private nginx on
# 127.0.0.161:443 (a certificate for every mta-sts.*.test name from the
# test PKI; [policy] mta_sts_ca_bundle = the test root) and delivers to
# receiving Postfix MXs as the policy says:
#
#	V 127.0.0.162  mx1.example.test, mx.tls.test    valid certificate
#	E 127.0.0.163  mx2.example.test                 expired certificate
#	P 127.0.0.164  mx3.example.test                 no STARTTLS
#	  127.0.0.166  mx.plain.test                    (the same Postfix)
#	N 127.0.0.165  mx.wrongname.test                certificate for another name
#	  127.0.0.167  mx.strict.test                   (the same Postfix)
#	C 127.0.0.168  mx.cnonly.test                   certificate without
#	                                                subjectAltName, CN right
#
#	domain          policy (mx)                MX
#	sts.test        enforce *.example.test     mx1.example.test (V)
#	nomx.test       enforce mx1.example.test   mx.tls.test (V, not permitted)
#	exp.test        enforce mx2.example.test   mx2.example.test (E)
#	wrongname.test  enforce mx.wrongname.test  mx.wrongname.test (N)
#	plain.test      enforce mx3.example.test   mx3.example.test (P)
#	testing.test    testing mx.plain.test      mx.plain.test (P)
#	localwin.test   enforce mx1.example.test   mx.tls.test; local [match] opportunistic
#	offsts.test     enforce mx1.example.test   mx.tls.test; tried with mta_sts = off
#	strict.test     enforce mx.strict.test     mx.strict.test (N); tried with a
#	                local [profile mandatory] verify = none
#	localexp.test   (none; local [match] mandatory)  mx2.example.test (E)
#	cnlocal.test    (none; local [match] mandatory)  mx.cnonly.test (C)
#	cntesting.test  testing mx.cnonly.test     mx.cnonly.test (C)
#	cnsts.test      enforce mx.cnonly.test     mx.cnonly.test (C)
#
# The clock is moved past retry_delay by restarting mxtls with
# MXTLS_CLOCK_OFFSET (lib_retry.sh); the state_dir (retry records, the
# MTA-STS cache) stays.  Fetches are counted in nginx's access log, TXT
# queries in dnsmasq's.
#
# Needs: nginx, dnsmasq, Postfix, openssl, curl, python3; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup
T_START=$(date +%s)

NG_ADDR=127.0.0.161
CA=$PKI/test-root-ca.pem
STS_DOMAINS="sts nomx exp wrongname plain testing localwin offsts strict many cntesting cnsts"

# ---------------------------------------------------------------- policies

pol_sts_enforce sts.test '*.example.test'
pol_sts_enforce nomx.test mx1.example.test
pol_sts_enforce exp.test mx2.example.test
pol_sts_enforce wrongname.test mx.wrongname.test
pol_sts_enforce plain.test mx3.example.test
pol_sts_policy testing.test 'version: STSv1\nmode: testing\nmx: mx.plain.test\nmax_age: 86400\n'
pol_sts_enforce localwin.test mx1.example.test
pol_sts_enforce offsts.test mx1.example.test
pol_sts_enforce strict.test mx.strict.test
# 20 mx patterns; the MX matches only the last.
many=""
for i in $(seq 1 19); do many="${many}mx: mx$i.other.test\r\n"; done
pol_sts_policy many.test "version: STSv1\r\nmode: enforce\r\n${many}mx: mx1.example.test\r\nmax_age: 86400\r\n"
pol_sts_policy cntesting.test 'version: STSv1\nmode: testing\nmx: mx.cnonly.test\nmax_age: 86400\n'
pol_sts_enforce cnsts.test mx.cnonly.test

# ---------------------------------------------------------------- servers

doms=""
for d in $STS_DOMAINS; do doms="$doms $d.test"; done
# shellcheck disable=SC2086
pol_sts_serve "$NG_ADDR" $doms || finish

# dns STS_TEST_ID: (re)start dnsmasq with every record, sts.test's TXT id
# as given.
dns() {
	{
		for d in $STS_DOMAINS; do
			id=1
			[ "$d" = sts ] && id=$1
			echo "txt-record=_mta-sts.$d.test,\"v=STSv1; id=$id\""
			echo "host-record=mta-sts.$d.test,$NG_ADDR"
		done
		echo "mx-host=sts.test,mx1.example.test,10"
		echo "mx-host=nomx.test,mx.tls.test,10"
		echo "mx-host=exp.test,mx2.example.test,10"
		echo "mx-host=localexp.test,mx2.example.test,10"
		echo "mx-host=wrongname.test,mx.wrongname.test,10"
		echo "mx-host=plain.test,mx3.example.test,10"
		echo "mx-host=testing.test,mx.plain.test,10"
		echo "mx-host=localwin.test,mx.tls.test,10"
		echo "mx-host=offsts.test,mx.tls.test,10"
		echo "mx-host=strict.test,mx.strict.test,10"
		echo "mx-host=many.test,mx1.example.test,10"
		for d in cnlocal cntesting cnsts; do echo "mx-host=$d.test,mx.cnonly.test,10"; done
		echo "host-record=mx1.example.test,127.0.0.162"
		echo "host-record=mx.tls.test,127.0.0.162"
		echo "host-record=mx2.example.test,127.0.0.163"
		echo "host-record=mx3.example.test,127.0.0.164"
		echo "host-record=mx.wrongname.test,127.0.0.165"
		echo "host-record=mx.plain.test,127.0.0.166"
		echo "host-record=mx.strict.test,127.0.0.167"
		echo "host-record=mx.cnonly.test,127.0.0.168"
	} >"$W/dns.in"
	# Not at the end of a pipeline: pol_dns_up sets DNS_PORT here.
	pol_dns_up <"$W/dns.in"
}
dns 1 || { fail "dnsmasq starts"; finish; }

pf_mx V 127.0.0.162:25 hostname=mx1.example.test || { fail "Postfix V starts"; finish; }
pf_mx E 127.0.0.163:25 hostname=mx2.example.test cert=expired || { fail "Postfix E starts"; finish; }
pf_mx P 127.0.0.164:25,127.0.0.166:25 hostname=mx3.example.test tls=no || { fail "Postfix P starts"; finish; }
pf_mx N 127.0.0.165:25,127.0.0.167:25 hostname=mx.wrongname.test cert=wrongname || { fail "Postfix N starts"; finish; }
pf_mx C 127.0.0.168:25 hostname=mx.cnonly.test cert=cnonly || { fail "Postfix C starts"; finish; }

# ---------------------------------------------------------------- helpers

# send DOMAIN: a message to a new recipient of DOMAIN; sets RCPT and OUT.
send() { pol_send_new "$1"; }
# What the MTA was told about $RCPT in the end (lib_policy.sh).
answer() { pol_answer "$OUT" "$RCPT"; }
rcpt_is() { pol_answer_is "$OUT" "$RCPT" "^$1"; }
rcpt_has() { pol_answer_is "$OUT" "$RCPT" "$1"; }
# never_5xx: the answer is not a permanent failure.
never_5xx() {
	_r=$(answer)
	case $_r in
	5*) echo "permanent failure for $RCPT under MTA-STS only: $_r"; return 1 ;;
	"") echo "no reply to RCPT TO:<$RCPT>"; sed 's/^/  /' "$OUT"; return 1 ;;
	esac
	return 0
}
hits() { pol_hits "^mta-sts\\.$1 /\\.well-known/mta-sts\\.txt 200 "; }
hits_are() { pol_hits_are "^mta-sts\\.$1 /\\.well-known/mta-sts\\.txt 200 " "$2"; }
txt_queries() { grep -c "query\[TXT\] _mta-sts\.$1 from" "$W/dnsmasq.log" 2>/dev/null; }
logged() { grep_since "$MXTLS_LOG" "$MARK" "$@"; }
logged_all() { # ERE...: one log line after MARK matches every ERE
	_t=$(it_until 3)
	while :; do
		_l=$(log_since "$MXTLS_LOG" "$MARK")
		_ok=yes
		for _re in "$@"; do
			_l=$(printf '%s\n' "$_l" | grep -E -- "$_re") || { _ok=no; break; }
		done
		[ $_ok = yes ] && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
	done
	echo "no line of $MXTLS_LOG after byte $MARK matches all of: $*"
	return 1
}
# wait_hits DOMAIN N: nginx served DOMAIN's policy N times (waiting 5 s).
wait_hits() {
	_t=$(it_until 5)
	while [ "$(hits "$1")" -lt "$2" ] && [ "$(date +%s)" -lt "$_t" ]; do sleep 0.1; done
	hits_are "$1" "$2"
}

rt_config policy="mta_sts_ca_bundle = $CA" policy='mta_sts_wait = 5' <<EOF
[match localexp.test]
profile = mandatory

[match localwin.test]
profile = opportunistic

[match cnlocal.test]
profile = mandatory
EOF

# ---------------------------------------------------------------- clock +0

rt_mxtls_start 0 || finish
MARK=0
send sts.test
check "E-04 enforce, MX in the policy (*.example.test) with a valid certificate: 250 to the final dot" reply_is "$OUT" DOT '250 '
check "... delivered by V over TLS" pol_all "pol_delivered_to V $RCPT E P N" \
	"received_over V $RCPT TLSv1.3"
check "... policy fetched once, logged with url, status, bytes, duration" \
	logged_all 'event=mta-sts domain=sts.test result=fetched outcome=ok' \
	'url=https://mta-sts.sts.test/.well-known/mta-sts.txt' 'mode=enforce' 'status=200' \
	'bytes=[0-9]+' 'duration_ms=[0-9]+'
check "... rcpt logged with mta_sts=enforce, profile mta-sts (the built-in enforce profile)" \
	logged_all 'event=rcpt ' 'profile=mta-sts' 'mta_sts=enforce'
check "... delivery logged: outcome=tls verify=ok, strict to the MX name" \
	mxtls_delivery_since 0 'outcome=tls' 'rcpt_domain=sts.test' 'mx=mx1.example.test' \
	'verify=ok' 'profile=mta-sts' 'policy_source=mta-sts'
# docs/behaviour.md section 3: "Every delivery logs: TLS version, cipher,
# verification result (and why it failed), policy source."
check "... the delivery line names its policy source (MTA-STS)" \
	mxtls_delivery_since 0 'rcpt_domain=sts.test' 'mta[-_]sts'
check "metrics: mxtls_policy_fetches_total{source=\"mta-sts\",outcome=\"ok\"} >= 1" \
	pol_metric_ge mxtls_policy_fetches_total 1 'source="mta-sts"' 'outcome="ok"'

send sts.test
check "second message to sts.test: delivered by V" pol_all "reply_is $OUT DOT '250 '" \
	"pol_delivered_to V $RCPT"
check "... from the cache: the policy fetched only once" hits_are sts.test 1
check "cache on disk: sts.test in state_dir/mta-sts/journal, id 1, mode enforce" \
	pol_sts_has sts.test 'id 1' 'mode enforce'

send many.test
check "R17-09 enforce with 20 mx patterns, the MX matches the 20th: delivered by V" \
	pol_all "reply_is $OUT DOT '250 '" "pol_delivered_to V $RCPT"

MARK=$(mxtls_mark)
send nomx.test
check "F-11 enforce, the only MX (mx.tls.test) not in the policy's mx: 451 4.7.5 No MX host ... matches" \
	pol_all "rcpt_is '451 4\\.7\\.5 '" "rcpt_has 'No MX host.*match'"
check "F-11 ... that MX not used (nothing delivered, mx-not-permitted logged)" pol_all \
	"mx_none V $RCPT" "logged 'event=mx-not-permitted mx=mx.tls.test'"

send wrongname.test
check "E-02 enforce, MX certificate for another name: 451 4.7.5" rcpt_is '451 4\.7\.5 '
check "... not delivered" mx_none N "$RCPT"

send exp.test
check "E-01 enforce, the permitted MX has an expired certificate: 451 4.7.5" rcpt_is '451 4\.7\.5 '
check "... not delivered" mx_none E "$RCPT"
check "... the recipient was held for the header (250 2.1.5 Held), refused at the dot" \
	reply_is "$OUT" "RCPT TO:<$RCPT>" '250 2\.1\.5 Held'
EXP_RETRY=$(rt_epoch "$(rt_retry_after "$OUT" DOT)")
check "... with a retry time within retry_delay (300 s)" \
	rt_between "$EXP_RETRY" "$(date +%s)" $(($(date +%s) + 305)) "retry after"

send localexp.test
check "local mandatory profile, the same expired server: 451 4.7.5 (before retry_delay)" \
	rcpt_is '451 4\.7\.5 '

send plain.test
check "enforce, MX without STARTTLS: 451 4.7.5, not delivered in the clear" pol_all \
	"rcpt_is '451 4\\.7\\.5 '" "mx_none P $RCPT"

MARK=$(mxtls_mark)
send testing.test
check "F-11 mode testing, MX without STARTTLS: delivered as the local policy says (in the clear)" \
	pol_all "reply_is $OUT DOT '250 '" "pol_delivered_to P $RCPT" "received_over P $RCPT none"
check "... rcpt logged with mta_sts=testing" logged_all 'event=rcpt ' 'mta_sts=testing'
check "F-11 ... the failure a testing policy would have caused is logged (would-have-failed)" \
	logged_all 'testing.test' '[Ww]ould'
check "... and counted on /metrics" sh -c \
	"curl -s http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics | grep -iE 'would|testing'"

# RFC 8461 section 4.2: under MTA-STS the MX certificate must name the
# host in a subjectAltName DNS-ID; the CN fallback of RFC 6125 6.4.4 is
# for ordinary profiles only.  The MTA-STS-only cases come last: their
# failure leaves a retry record for the host.
MARK=$(mxtls_mark)
send cnlocal.test
check "A-CN local mandatory (strict) profile, MX certificate with only a CN: delivered over TLS (CN fallback)" \
	pol_all "reply_is $OUT DOT '250 '" "pol_delivered_to C $RCPT" "received_over C $RCPT TLSv1.3"
check "A-CN ... logged verify=ok" mxtls_delivery_since "$MARK" 'rcpt_domain=cnlocal.test' 'verify=ok'

MARK=$(mxtls_mark)
send cntesting.test
check "A-CN MTA-STS testing, MX certificate with only a CN: delivered as the lower policy says (over TLS)" \
	pol_all "reply_is $OUT DOT '250 '" "pol_delivered_to C $RCPT" "received_over C $RCPT TLSv1.3"
check "A-CN ... and reported: enforce would have refused it, the missing subjectAltName named" \
	logged_all 'event=mta-sts-testing-failure ' 'domain=cntesting.test' 'subjectAltName'

MARK=$(mxtls_mark)
send cnsts.test
check "A-CN MTA-STS enforce, MX certificate with only a CN (matching): 451 4.7.5, nothing delivered" \
	pol_all "rcpt_is '451 4\\.7\\.5 '" "mx_none C $RCPT"
check "A-CN ... the reply names the missing subjectAltName and the CN" \
	pol_all "rcpt_has 'subjectAltName'" "rcpt_has 'mx\\.cnonly\\.test \\(CN\\)'"
check "A-CN ... logged as certificate-host-mismatch" \
	logged_all 'event=tls-failure ' 'host=mx.cnonly.test' 'result=certificate-host-mismatch'

MARK=$(mxtls_mark)
send localwin.test
check "explicit local [match localwin.test] wins over its enforce policy: delivered by V" \
	pol_all "reply_is $OUT DOT '250 '" "pol_delivered_to V $RCPT"
check "... MTA-STS not consulted for it (no TXT query, no fetch)" pol_all \
	"test \$(txt_queries localwin.test) -eq 0" "hits_are localwin.test 0"

# ---------------------------------------------------------------- clock +310

# sts.test's id changes (and the policy with it); seen after the restart
# (the TXT record is checked at most once a minute).
pol_sts_policy sts.test 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmx: *.example.test\nmax_age: 604800\n'
dns 2 || fail "dnsmasq restarts with id=2"
H_EXP=$(hits exp.test)
rt_mxtls_restart 310 || finish
MARK=0

send exp.test
check "after retry_delay (clock +310 s), expired certificate again, MTA-STS only: 451 4.7.5, never 550" \
	pol_all "rcpt_is '451 4\\.7\\.5 '" never_5xx
check "... the reply says the domain's MTA-STS policy requires TLS" rcpt_has 'MTA-STS'
check "... not delivered" mx_none E "$RCPT"
check "... and the policy is fetched again (RFC 8461 section 5)" wait_hits exp.test $((H_EXP + 1))
check "... it was the real retry: the host contacted, the table said fail (tls-failure action=fail)" \
	logged_all 'event=tls-failure ' 'host=mx2.example.test' 'action=fail( |$)'

send localexp.test
check "the same server under a locally configured mandatory profile: 550 5.7.5" \
	rcpt_is '550 5\.7\.5 '

send exp.test
check "host now marked broken: MTA-STS delivery still 451 4.7.5, never 550" pol_all \
	"rcpt_is '451 4\\.7\\.5 '" never_5xx

send wrongname.test
check "MX certificate for another name, after retry_delay: 451 4.7.5, never 550" pol_all \
	"rcpt_is '451 4\\.7\\.5 '" never_5xx "mx_none N $RCPT"

send plain.test
check "MX without STARTTLS, after retry_delay: 451 4.7.5, never 550 5.7.10, never in the clear" \
	pol_all "rcpt_is '451 4\\.7\\.5 '" never_5xx "mx_none P $RCPT"

H_NOMX=$(hits nomx.test)
send nomx.test
check "restart: nomx.test's policy from the disk cache, same id: not fetched again" pol_all \
	"rcpt_is '451 4\\.7\\.5 '" "hits_are nomx.test $H_NOMX"

send sts.test
check "id changed in DNS (1 -> 2): policy fetched again, delivered by V" pol_all \
	"reply_is $OUT DOT '250 '" "pol_delivered_to V $RCPT" "hits_are sts.test 2"
check "... the cache holds id 2 and the new max_age" \
	pol_sts_has sts.test 'id 2' 'max_age 604800'

# `mxtls explain` shows the MTA-STS facts (here: the
# cached enforce policy of sts.test, id 2, in state_dir).
explain_sts() {
	MXTLS_CLOCK_OFFSET=310 "$MXTLS" -c "$RT_CONF" explain r@sts.test >"$W/explain.out" 2>&1
	grep -qi 'mta.sts' "$W/explain.out" && grep -q enforce "$W/explain.out" && return 0
	echo "mxtls explain r@sts.test printed:"
	sed 's/^/  | /' "$W/explain.out"
	return 1
}
check "mxtls explain RCPT@sts.test shows the MTA-STS facts (mode enforce, mx patterns)" explain_sts

# ---------------------------------------------------------------- mta_sts = off

mxtls_stop
H_ALL=$(pol_hits '/\.well-known/mta-sts\.txt')
TXT_OFF=$(txt_queries offsts.test)
TXT_NOMX=$(txt_queries nomx.test)
rt_config policy='mta_sts = off' policy="mta_sts_ca_bundle = $CA" <<EOF
[match localexp.test]
profile = mandatory
EOF
rt_mxtls_start 310 || finish
MARK=0
send offsts.test
check "mta_sts = off: offsts.test (enforce, MX not permitted) delivered by V" pol_all \
	"reply_is $OUT DOT '250 '" "pol_delivered_to V $RCPT"
send nomx.test
check "mta_sts = off: nomx.test's cached enforce policy ignored, delivered by V" pol_all \
	"reply_is $OUT DOT '250 '" "pol_delivered_to V $RCPT"
check "mta_sts = off: no TXT query, no fetch" pol_all \
	"test \$(txt_queries offsts.test) -eq $TXT_OFF" "test \$(txt_queries nomx.test) -eq $TXT_NOMX" \
	"pol_hits_are '/\\.well-known/mta-sts\\.txt' $H_ALL"
check "mta_sts = off: no event=mta-sts, no mta_sts= in the rcpt lines" pol_all \
	"! grep -E 'event=mta-sts|mta_sts=' $MXTLS_LOG"

# ---------------------------------------------------------------- strict

# The operator relaxed the built-in mandatory profile for their own
# matches; an MTA-STS enforce policy still means strict verification
# (RFC 8461 section 4.2; docs/behaviour.md section 6: mandatory + strict).
mxtls_stop
rt_config policy="mta_sts_ca_bundle = $CA" <<EOF
[profile mandatory]
verify = none
EOF
rt_mxtls_start 310 || finish
MARK=0
send strict.test
check "E-02 local [profile mandatory] verify = none: MTA-STS enforce still verifies strictly (451 4.7.5, MX cert for another name)" \
	pol_all "rcpt_is '451 4\\.7\\.5 '" "mx_none N $RCPT"

note "run time $(($(date +%s) - T_START)) s"
finish
