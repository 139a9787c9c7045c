#!/bin/sh
# DANE for SMTP (RFC 7672) end to end, in a signed private DNS world
# (lib_dnssec.sh: NSD, a private root as trust anchor).  Every case is
# delivered by two clients and each must give the expected result:
#
#   Postfix  the reference: a Postfix delivering by MX with
#            smtp_dns_support_level = dnssec and smtp_tls_security_level =
#            dane, its resolver a validating unbound on 127.0.0.1:53
#   mxtls    [dns] dnssec = validate with the world's anchor, forwarding to
#            NSD, under the opportunistic default profile (DANE must hold
#            even where the profile would fall back to plaintext)
#
# DANE_CLIENTS=postfix|mxtls|both (default both) runs one column or both.
#
# Receivers (Postfix MXs, one address per case):
#   S  self-signed certificate ($PKI/selfsigned)
#   T  issued by a private CA (in no bundle; a DANE-TA record's anchor),
#      naming mx.ta-ok.test
#   N  issued by the same CA, naming only wrong.example.net
#   W  issued by the test PKI (valid under the WebPKI test bundle), naming
#      the MX hosts of the insecure cases: today's behaviour verifies it
#   P  no STARTTLS
#
# Results: dane-ee, dane-ta (delivered over TLS, authenticated by that
# record), tls (delivered over TLS, not DANE-authenticated), clear
# (delivered in plaintext), deferred (nothing delivered: Postfix defers,
# mxtls answers 451 4.7.5 unless the row says otherwise).
#
# Needs: root (port 25 and 53 on loopback, unshare -m), nsd, ldnsutils,
# unbound, unbound-host, bind9-dnsutils (dig), Postfix, swaks, nginx, openssl.
# shellcheck source-path=SCRIPTDIR disable=SC2317 # zone_NAME called by name, others through check
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_dnssec.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
DANE_CLIENTS=${DANE_CLIENTS:-both}
case $DANE_CLIENTS in
postfix | mxtls | both) ;;
*) echo "DANE_CLIENTS must be postfix, mxtls or both" >&2; exit 2 ;;
esac
it_setup
T_START=$(date +%s)

# ---------------------------------------------------------------- the cases

# name            receiver  expected  mxtls reply when deferred (ERE)
CASES='
ee-ok             S  dane-ee
ee-mismatch       S  deferred
ee-mismatch-plain P  deferred
ee-301            S  dane-ee
ee-312            S  dane-ee
ta-ok             T  dane-ta
ta-wrongname      N  deferred
rollover          S  dane-ee
pkix-only         S  tls
pkix-only-plain   P  deferred
tlsa-expired      S  deferred
mx-bogus          S  deferred  451 4\.(4\.3|7\.5)
tlsa-servfail     S  deferred
notlsa            W  tls
insecure          W  tls
insecure-plain    P  clear
mixed             W  tls
cname             S  dane-ee
cname-fallback    S  dane-ee
dane-sts          S  dane-ee
'
# mxtls alone.  retry: the same mxtls once retry_delay (1 s here) has
# passed, when an opportunistic profile would fall back to plaintext: DANE
# must not.  trust-ad: [dns] dnssec = trust-ad, mxtls asks the validating
# unbound and believes its AD bit.
# transparent: mode = transparent, the MTA dials the MX's own address and
# an iptables redirect hands the connection to mxtls: the destination is
# a DANE host as the secure address of a secure MX host of the domain.
# profile: the profile's dane key, set by a [match] for the one recipient:
# only (no usable TLSA record: deferred, never plaintext nor unverified)
# and off (the TLSA records are not looked at: a verify = none profile
# delivers past a mismatching record).
# onlym: the domain onlym.test (secure, no TLSA) under an explicit match
# with a mandatory profile that has dane = only: the failure table judges
# it like any TLS failure, deferred at first and bounced (550 5.7.5) at
# the retry, never delivered.
# cache: three sessions one after the other to cachex.test (DANE-EE, TTL
# 1 s), the connection cache on: the second reuses the first one's
# connection; then the TLSA record changes to one that matches nothing,
# and the third must not reuse the connection verified under the old one.
# name               phase     domain of          expected  reply (ERE)
MXTLS_ONLY='
retry-mismatch       retry     ee-mismatch        deferred
retry-mismatch-plain retry     ee-mismatch-plain  deferred
only-ok              profile   ee-ok              dane-ee
only-notlsa          profile   notlsa             deferred
only-insecure        profile   insecure           deferred
off-mismatch         profile   ee-mismatch        tls
onlym-first          profile   onlym              deferred  451 4\.7\.5
onlym-retry          retry     onlym              failed    550 5\.7\.5
cache-first          cache     cachex             dane-ee
cache-reuse          cache     cachex             dane-ee
cache-changed        cache     cachex             deferred
tp-ok                transparent ee-ok            dane-ee
tp-mismatch          transparent ee-mismatch      deferred
tp-insecure          transparent insecure         tls
trust-ad-ok          trust-ad  ee-ok              dane-ee
trust-ad-mismatch    trust-ad  ee-mismatch        deferred
'

SS=$PKI/selfsigned.pem # what S presents
OTHER=$PKI/valid.pem   # another key: a record for it matches nothing here

# secure_mx DOMAIN ADDR [zone options]: DOMAIN a zone of its own, MX
# mx.DOMAIN at ADDR.
secure_mx() {
	_dom=$1 _addr=$2
	shift 2
	dnssec_zone "$_dom" "$@"
	dnssec_mx "$_dom" "mx.$_dom"
	dnssec_a "mx.$_dom" "$_addr"
}

# expect_dns NAME TYPE STATUS: what the validator must make of NAME TYPE
# (checked once the world runs).
expect_dns() { echo "$1 $2 $3" >>"$W/dns.expect"; }
: >"$W/dns.expect"

# One function per case: zone_NAME DOMAIN ADDR (dashes become underscores).
zone_ee_ok() {
	secure_mx "$1" "$2"
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	expect_dns "$1" MX secure
	expect_dns "_25._tcp.mx.$1" TLSA secure
}
zone_ee_mismatch() { secure_mx "$1" "$2"; dnssec_tlsa "mx.$1" 3 1 1 "$OTHER"; }
zone_ee_mismatch_plain() { zone_ee_mismatch "$@"; }
zone_ee_301() { secure_mx "$1" "$2"; dnssec_tlsa "mx.$1" 3 0 1 "$SS"; }
zone_ee_312() { secure_mx "$1" "$2"; dnssec_tlsa "mx.$1" 3 1 2 "$SS"; }
zone_ta_ok() { secure_mx "$1" "$2"; dnssec_tlsa "mx.$1" 2 1 1 "$W/dane/dane-ca.pem"; }
zone_ta_wrongname() { zone_ta_ok "$@"; }
# A key rollover: the next key published beside the current one.
zone_rollover() {
	secure_mx "$1" "$2"
	dnssec_tlsa "mx.$1" 3 1 1 "$OTHER"
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
}
# PKIX-TA and PKIX-EE only: unusable for SMTP (RFC 7672 section 3.1.3),
# but a secure TLSA RRset still makes TLS mandatory.
zone_pkix_only() {
	secure_mx "$1" "$2"
	dnssec_tlsa "mx.$1" 0 0 1 "$PKI/root.pem"
	dnssec_tlsa "mx.$1" 1 1 1 "$SS"
}
zone_pkix_only_plain() { zone_pkix_only "$@"; }
# The TLSA record would match; its signature expired yesterday.
zone_tlsa_expired() {
	secure_mx "$1" "$2" expired=TLSA
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	expect_dns "$1" MX secure
	expect_dns "mx.$1" A secure
	expect_dns "_25._tcp.mx.$1" TLSA bogus
}
# The MX RRset's signature does not match it; the host and its TLSA are fine.
zone_mx_bogus() {
	secure_mx "$1" "$2" bogus=MX
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	expect_dns "$1" MX bogus
	expect_dns "mx.$1" A secure
	expect_dns "_25._tcp.mx.$1" TLSA secure
}
# _tcp.mx.DOMAIN is delegated to a zone NSD answers SERVFAIL for: the MX
# and its address are secure, the TLSA lookup fails.
zone_tlsa_servfail() {
	secure_mx "$1" "$2"
	dnssec_zone "_tcp.mx.$1" serve=broken
	expect_dns "$1" MX secure
	expect_dns "mx.$1" A secure
	expect_dns "_25._tcp.mx.$1" TLSA servfail
}
# Secure, without TLSA (a proven absence): no DANE.
zone_notlsa() {
	secure_mx "$1" "$2"
	expect_dns "_25._tcp.mx.$1" TLSA nxdomain
}
# Unsigned zones: their TLSA records (matching nothing) must be ignored.
zone_insecure() {
	secure_mx "$1" "$2" sign=no
	dnssec_tlsa "mx.$1" 3 1 1 "$OTHER"
	expect_dns "$1" MX insecure
	expect_dns "_25._tcp.mx.$1" TLSA insecure
}
zone_insecure_plain() { zone_insecure "$@"; }
# A secure domain whose MX host lies in an unsigned child zone.
zone_mixed() {
	dnssec_zone "$1"
	dnssec_zone "unsigned.$1" sign=no
	dnssec_mx "$1" "mx.unsigned.$1"
	dnssec_a "mx.unsigned.$1" "$2"
	dnssec_tlsa "mx.unsigned.$1" 3 1 1 "$OTHER"
	expect_dns "$1" MX secure
	expect_dns "mx.unsigned.$1" A insecure
	expect_dns "_25._tcp.mx.unsigned.$1" TLSA insecure
}
# The MX host is an alias (another signed zone holds the target): TLSA is
# looked up at the target first, then at the alias (RFC 7672 section
# 2.2.2).  Here only the target's matches.
zone_cname() {
	dnssec_zone "$1"
	dnssec_zone "target.$1"
	dnssec_mx "$1" "mx.$1"
	dnssec_cname "mx.$1" "host.target.$1"
	dnssec_a "host.target.$1" "$2"
	dnssec_tlsa "host.target.$1" 3 1 1 "$SS"
	dnssec_tlsa "mx.$1" 3 1 1 "$OTHER"
	expect_dns "mx.$1" A secure
	expect_dns "_25._tcp.host.target.$1" TLSA secure
}
# The target has no TLSA: the alias's (matching) record counts.
zone_cname_fallback() {
	dnssec_zone "$1"
	dnssec_zone "target.$1"
	dnssec_mx "$1" "mx.$1"
	dnssec_cname "mx.$1" "host.target.$1"
	dnssec_a "host.target.$1" "$2"
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	expect_dns "_25._tcp.host.target.$1" TLSA nxdomain
}
# The mxtls-only domains ($W/extra below).
zone_onlym() { zone_notlsa "$@"; }
zone_cachex() {
	DNSSEC_TTL=1
	secure_mx "$1" "$2"
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	DNSSEC_TTL=300
}

# DANE and an MTA-STS enforce policy for the same MX: DANE wins (RFC 8461
# section 2).  Under MTA-STS alone the self-signed certificate would fail.
STS_ADDR=127.0.0.200
zone_dane_sts() {
	secure_mx "$1" "$2"
	dnssec_tlsa "mx.$1" 3 1 1 "$SS"
	dnssec_txt "_mta-sts.$1" "v=STSv1; id=1"
	dnssec_a "mta-sts.$1" "$STS_ADDR"
	mkdir -p "$W/www/mta-sts.$1/.well-known"
	printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.%s\r\nmax_age: 86400\r\n' "$1" \
		>"$W/www/mta-sts.$1/.well-known/mta-sts.txt"
	chmod -R a+rX "$W/www"
}

# ---------------------------------------------------------------- the world

dnssec_init
# The private CA first: the TA records hash it.
if ! { dane_cert ta-right dane-ca mx.ta-ok.test && dane_cert ta-wrong dane-ca wrong.example.net &&
	dane_cert web webpki mx.notlsa.test mx.insecure.test mx.insecure-plain.test \
		mx.unsigned.mixed.test; } >/dev/null; then
	fail "DANE certificates"
	finish
fi

# Each case: its domain NAME.test, its own address 127.0.0.(20+i), its
# receiver's address list.
i=0
L_S="" L_T="" L_N="" L_W="" L_P=""
printf '%s\n' "$CASES" | while read -r name rcv exp code; do
	[ -n "$name" ] || continue
	i=$((i + 1))
	echo "$name $name.test 127.0.0.$((20 + i)) $rcv $exp ${code:-451 4\\.7\\.5}"
done >"$W/cases"
# The domains of the mxtls-only rows that no shared case has.
printf '%s\n' 'onlym onlym.test 127.0.0.60 W' 'cachex cachex.test 127.0.0.61 S' >"$W/extra"
cat "$W/cases" "$W/extra" | while read -r name dom addr rcv exp code; do
	echo "$name $dom $addr $rcv"
done >"$W/domains"
while read -r name dom addr rcv; do
	"zone_$(echo "$name" | tr - _)" "$dom" "$addr"
	eval "L_$rcv=\"\${L_$rcv:+\$L_$rcv,}$addr:25\""
done <"$W/domains"

T0=$(date +%s)
dnssec_start || { fail "the DNSSEC world starts (NSD)"; finish; }
note "world built and served in $(($(date +%s) - T0)) s: $(wc -l <"$W/dnssec/zonelist") zones, NSD on 127.0.0.1:$DNS_PORT"
dnssec_unbound_start 127.0.0.1 53 || { fail "validating unbound on 127.0.0.1:53"; finish; }

# What a forwarding validator (libunbound, as in mxtls) makes of the world.
check "world: the root zone validates from the anchor" dnssec_status_is . SOA secure
while read -r qn qt st; do
	check "world: $qn $qt is $st" dnssec_status_is "$qn" "$qt" "$st"
done <"$W/dns.expect"
# The same through the local unbound (the resolver Postfix uses), with AD.
dig_is() { # NAME TYPE ERE: dig +dnssec through unbound; the header matches
	_h=$(dig +dnssec +time=10 +tries=1 @127.0.0.1 "$1" "$2" 2>&1 | grep -E 'status:|flags:' | tr '\n' ' ')
	printf '%s\n' "$_h" | grep -qE -- "$3" && return 0
	echo "dig $1 $2 via unbound: expected /$3/, got: $_h"
	return 1
}
check "world: unbound answers ee-ok.test MX with AD" dig_is ee-ok.test MX 'NOERROR.*flags: [a-z ]* ad;'
check "world: unbound answers SERVFAIL for the expired TLSA" dig_is _25._tcp.mx.tlsa-expired.test TLSA 'SERVFAIL'
check "world: unbound answers the insecure MX without AD" dig_is insecure.test MX 'NOERROR.*flags: qr rd ra;'

# ---------------------------------------------------------------- receivers

start_mx() { # LETTER LISTEN key=value...
	_l=$1 _a=$2
	shift 2
	[ -n "$_a" ] || return 0
	pf_mx "$_l" "$_a" "$@" || { fail "receiver $_l starts"; finish; }
}
start_mx S "$L_S" cert=selfsigned hostname=mx.s.test
start_mx T "$L_T" "cert=../$IT_NAME/dane/ta-right" hostname=mx.ta-ok.test
start_mx N "$L_N" "cert=../$IT_NAME/dane/ta-wrong" hostname=mx.n.test
start_mx W "$L_W" "cert=../$IT_NAME/dane/web" hostname=mx.w.test
start_mx P "$L_P" tls=no hostname=mx.p.test

mkmsg "$W/msg.txt" "DANE test message"

# delivered_to RCV RCPT SECONDS: the receiver got the message for RCPT
# (waiting up to SECONDS).  nothing_to RCV RCPT: it got nothing for RCPT.
delivered_to() { mx_wait_rcpt "$1" "$2" 1 "$3"; }
nothing_to() { mx_none "$1" "$2"; }

# ---------------------------------------------------------------- Postfix

if [ "$DANE_CLIENTS" != mxtls ]; then
	PF_PORT=$(free_port)
	HOST_RESOLV=$(cat /etc/resolv.conf)
	pf_dane_client C "127.0.0.1:$PF_PORT" || { fail "Postfix DANE client starts"; finish; }
	check "postfix: its processes see the private resolv.conf" sh -c \
		"nsenter -t '$(cat "$(pf_dir C)/master.job")' -m cat /etc/resolv.conf | grep -qx 'options trust-ad.*'"
	check "postfix: /etc/resolv.conf outside it is untouched" test "$(cat /etc/resolv.conf)" = "$HOST_RESOLV"
	T0=$(date +%s)
	while read -r name dom addr rcv exp code; do
		swaks --server "127.0.0.1:$PF_PORT" --from s@sender.test --to "pf-$name@$dom" \
			--helo client.test --data "@$W/msg.txt" >"$W/swaks.$name" 2>&1
		echo "exit=$?" >>"$W/swaks.$name"
	done <"$W/cases"
	# Every case's first attempt logged (deferred ones stay in the queue).
	_t=$(it_until 30)
	while :; do
		_left=""
		while read -r name dom addr rcv exp code; do
			[ "$(pf_dane_outcome C "pf-$name@$dom")" = none ] && _left="$_left $name"
		done <"$W/cases"
		[ -z "$_left" ] && break
		[ "$(date +%s)" -ge "$_t" ] && { note "Postfix: no attempt logged for:$_left"; break; }
		sleep 0.2
	done
	note "Postfix column: $(($(date +%s) - T0)) s"
	# Postfix probes its resolver (dnssec_probe) and warns when AD is missing.
	check "postfix: its resolver validates (no dnssec_probe warning)" \
		no_grep_since "$(pf_log C)" 0 'DNSSEC validation may be unavailable'
	while read -r name dom addr rcv exp code; do
		check "postfix $name: accepted for delivery" swaks_ok "$W/swaks.$name"
		pf_dane_outcome C "pf-$name@$dom" >"$W/pf.$name"
	done <"$W/cases"
fi

# ---------------------------------------------------------------- mxtls

# mxtls_outcome OUT DOMAIN MARK: the result of the session in transcript
# OUT, one line like pf_dane_outcome's ("deferred REPLY" has mxtls's reply).
mxtls_outcome() {
	_d=$(awk '/ => [45][0-9][0-9] / { print substr($0, index($0, " => ") + 4); exit }' "$1")
	case $_d in
	4*) echo "deferred $_d"; return ;;
	5*) echo "failed $_d"; return ;;
	esac
	if ! grep -qE '^DOT => 250 ' "$1"; then
		echo "other $(grep -E ' => [45]' "$1" | head -n 1)"
		return
	fi
	_l=$(log_since "$MXTLS_LOG" "$3" | grep -E " event=delivery .*rcpt_domain=$2 " | grep ' reply="250' | tail -n 1)
	case $_l in
	"") echo "other: no event=delivery line" ;;
	*" tls=none "*) echo clear ;;
	*" verify=dane-ee "*) echo dane-ee ;;
	*" verify=dane-ta "*) echo dane-ta ;;
	*) echo tls ;;
	esac
}

# mxtls_cases <<EOF (NAME DOMAIN lines) EOF: one message per line through
# the current mxtls, all at once (each session's delivery line is told
# apart by its domain); each outcome to $W/mx.NAME.
mxtls_cases() {
	cat >"$W/mx.batch"
	_pids=""
	while read -r _n _dom; do
		smtpc "$W/smtp.$_n" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
			"RCPT TO:<mx-$_n@$_dom>" "DATA=$W/msg.txt" "QUIT" &
		_pids="$_pids $!"
	done <"$W/mx.batch"
	for _p in $_pids; do wait "$_p"; done
	while read -r _n _dom; do
		if [ -n "${MXTLS_PID:-}" ]; then
			mxtls_outcome "$W/smtp.$_n" "$_dom" 0 >"$W/mx.$_n"
		else
			echo "mxtls did not start" >"$W/mx.$_n"
		fi
	done <"$W/mx.batch"
}

if [ "$DANE_CLIENTS" != postfix ]; then
	pol_leaf sts mta-sts.dane-sts.test || { fail "MTA-STS server certificate"; finish; }
	pol_nginx_start "$STS_ADDR:443" <<EOF || { fail "nginx starts on $STS_ADDR:443"; finish; }
	server {
		listen $STS_ADDR:443 ssl;
		server_name mta-sts.dane-sts.test;
		ssl_certificate $W/certs/sts.chain.pem;
		ssl_certificate_key $W/certs/sts.key;
		root $W/www/\$host;
	}
EOF
	T0=$(date +%s)
	# The [policy] section goes on from mxtls_start's "default =" line.
	mxtls_start dnssec=validate "trust_anchor=$DNSSEC_TA" <<EOF
mta_sts_ca_bundle = $PKI/test-root-ca.pem
mta_sts_wait = 5
retry_delay = 1

[profile dane-only]
dane = only

[profile dane-off]
verify = none
dane = off

[profile dane-only-mandatory]
tls = mandatory
dane = only

[match onlym.test]
profile = dane-only-mandatory

[match mx-only-ok@ee-ok.test]
profile = dane-only

[match mx-only-notlsa@notlsa.test]
profile = dane-only

[match mx-only-insecure@insecure.test]
profile = dane-only

[match mx-off-mismatch@ee-mismatch.test]
profile = dane-off
EOF
	[ -n "${MXTLS_PID:-}" ] || fail "mxtls starts with [dns] dnssec = validate"
	check "validate: the start-up check finds the root zone secure" \
		wait_for_log "$MXTLS_LOG" ' event=dnssec-check result=secure' 15
	{
		awk '{ print $1, $2 }' "$W/cases"
		printf '%s\n' "$MXTLS_ONLY" | awk '$2 == "profile" { print $1, $3 ".test" }'
	} | mxtls_cases
	# mxtls explain asks the DNS as the proxy does.
	"$MXTLS" -c "$MXTLS_CONF" explain u@ee-ok.test >"$W/explain.ok" 2>&1
	check "mxtls explain u@ee-ok.test: MX secure, the host DANE-authenticated by its 3 1 1 record" \
		sh -c "grep -q 'MX of ee-ok.test: secure' '$W/explain.ok' && grep -qE '^ +dane +auth' '$W/explain.ok' && grep -qE '^ +tlsa +3 1 1 .* usable' '$W/explain.ok' || cat '$W/explain.ok'"
	"$MXTLS" -c "$MXTLS_CONF" explain u@insecure.test >"$W/explain.ins" 2>&1
	check "mxtls explain u@insecure.test: MX insecure, no TLSA lookup" \
		sh -c "grep -q 'MX of insecure.test: insecure' '$W/explain.ins' && grep -qE '^ +dane +none .*no TLSA lookup' '$W/explain.ins' || cat '$W/explain.ins'"
	sleep 2
	printf '%s\n' "$MXTLS_ONLY" | awk '$2 == "retry" { print $1, $3 ".test" }' | mxtls_cases
	# TLS-Required: No (RFC 8689) lifts the DANE policy: the message goes
	# over TLS without authentication, the DANE failure still logged.
	awk 'NR == 3 { print "TLS-Required: No" } { print }' "$W/msg.txt" >"$W/msg-trn.txt"
	_m=$(mxtls_mark)
	smtpc "$W/smtp.trn" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<mx-trn@ee-mismatch.test>" "DATA=$W/msg-trn.txt" QUIT
	check "TLS-Required: No to ee-mismatch.test (its TLSA record matches nothing): delivered" \
		reply_is "$W/smtp.trn" DOT '250 '
	check "TLS-Required: No: received by S" delivered_to S mx-trn@ee-mismatch.test 5
	log_since "$MXTLS_LOG" "$_m" >"$W/log.trn"
	check "TLS-Required: No: the DANE failure logged" grep -q ' event=dane-failure .*result=tlsa-invalid' "$W/log.trn"
	check "TLS-Required: No: then the delivery without DANE" \
		grep -qE ' event=delivery outcome=tls .*verify=none .*tls_required_no=yes' "$W/log.trn"
	mxtls_stop
	# [dns] dnssec = trust-ad: the validating unbound answers, mxtls
	# believes its AD bit.
	_nsd_port=$DNS_PORT
	DNS_PORT=53
	mxtls_start dnssec=trust-ad </dev/null
	DNS_PORT=$_nsd_port
	[ -n "${MXTLS_PID:-}" ] || fail "mxtls starts with [dns] dnssec = trust-ad"
	printf '%s\n' "$MXTLS_ONLY" | awk '$2 == "trust-ad" { print $1, $3 ".test" }' | mxtls_cases
	check "trust-ad: the start-up check finds the root zone secure" \
		wait_for_log "$MXTLS_LOG" ' event=dnssec-check result=secure' 15
	mxtls_stop
	# A trust anchor the world was not signed with (as when the resolvers
	# strip signatures, every answer is bogus): said once, at start.
	mkdir -p "$W/wrong-anchor"
	if _k=$(cd "$W/wrong-anchor" && ldns-keygen -a ECDSAP256SHA256 -k .); then
		{
			ldns-key2ds -n -2 "$W/wrong-anchor/$_k.key"
			cat "$W/wrong-anchor/$_k.key"
		} >"$W/wrong-anchor/root.key"
		mxtls_start dnssec=validate "trust_anchor=$W/wrong-anchor/root.key" </dev/null
		check "wrong trust anchor: mxtls warns at start (event=dnssec-check result=bogus)" \
			wait_for_log "$MXTLS_LOG" 'level=warn event=dnssec-check result=bogus .*trust_anchor=' 15
		mxtls_stop
	else
		fail "wrong trust anchor: ldns-keygen"
	fi
	# The connection cache (the cache rows), one session after the other.
	mxtls_start dnssec=validate "trust_anchor=$DNSSEC_TA" \
		proxy='connection_cache_time = 60' </dev/null
	[ -n "${MXTLS_PID:-}" ] || fail "mxtls starts with connection_cache_time = 60"
	cache_send() { # NAME
		_m=$(mxtls_mark)
		smtpc "$W/smtp.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
			"RCPT TO:<mx-$1@cachex.test>" "DATA=$W/msg.txt" "QUIT"
		mxtls_outcome "$W/smtp.$1" cachex.test "$_m" >"$W/mx.$1"
		log_since "$MXTLS_LOG" "$_m" >"$W/log.$1"
	}
	cache_send cache-first
	cache_send cache-reuse
	check "cache-reuse: the connection of cache-first was reused" \
		grep -qE ' event=delivery .* reused=yes' "$W/log.cache-reuse"
	check "cache-reuse: ... after this session's own TLSA lookup (event=dane)" \
		grep -qE ' event=dane mx=mx\.cachex\.test .*state=auth' "$W/log.cache-reuse"
	# One session, two messages, the TLSA record changed between them:
	# the session's own idle connection, verified under the old record,
	# must not carry the second message without new lookups.
	rm -f "$W/resigned"
	_m=$(mxtls_mark)
	smtpc "$W/smtp.cache-session" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<mx-session1@cachex.test>" "DATA=$W/msg.txt" "WAITFOR=$W/resigned" \
		"MAIL FROM:<s@sender.test>" "RCPT TO:<mx-session2@cachex.test>" "DATA=$W/msg.txt" \
		"QUIT" &
	_sp=$!
	_t=$(it_until 30)
	until grep -q '^DOT => ' "$W/smtp.cache-session" 2>/dev/null || [ "$(date +%s)" -ge "$_t" ]; do
		sleep 0.1
	done
	_re=no
	if dnssec_retlsa cachex.test mx.cachex.test 3 1 1 "$OTHER"; then
		_re=yes
		sleep 2 # the old record's TTL (1 s) runs out in mxtls's resolver
	fi
	: >"$W/resigned"
	wait "$_sp"
	log_since "$MXTLS_LOG" "$_m" >"$W/log.cache-session"
	check "cache-session: the first message delivered over DANE" \
		reply_is "$W/smtp.cache-session" DOT '250 .*verified by DANE'
	check_if "$_re" "cache-session: after the TLSA record changed, the second message was not sent on the session's idle connection (451 4.7.5)" \
		reply_is "$W/smtp.cache-session" DOT '451 4\.7\.5' 2
	check_if "$_re" "cache-session: ... the new record was looked up, and a new connection failed it" \
		grep -qE 'did not match the certificate' "$W/log.cache-session"
	if [ "$_re" = yes ]; then
		cache_send cache-changed
		check "cache-changed: the connection verified under the old TLSA record was not reused" \
			no_grep_since "$W/log.cache-changed" 0 ' reused=yes'
		check "cache-changed: a new connection failed the new record" \
			grep -qE 'did not match the certificate' "$W/log.cache-changed"
	else
		fail "cachex.test: the TLSA record changed (NSD reloaded)"
		echo "changed: not run" >"$W/mx.cache-changed"
	fi
	mxtls_stop
	# Transparent mode.  The redirect spares mxtls's own connections (it
	# runs as nobody).
	mxtls_start dnssec=validate "trust_anchor=$DNSSEC_TA" \
		proxy='mode = transparent' </dev/null
	[ -n "${MXTLS_PID:-}" ] || fail "mxtls starts in transparent mode"
	if iptables -t nat -A OUTPUT -p tcp -d 127.0.0.0/8 --dport 25 -m owner \
		! --uid-owner 65534 -j REDIRECT --to-ports "$MXTLS_PORT" 2>"$W/iptables.err"; then
		printf '%s\n' "$MXTLS_ONLY" | awk '$2 == "transparent" { print $1, $3 }' |
			while read -r _n _base; do
				_addr=$(awk -v n="$_base" '$1 == n { print $3 }' "$W/cases")
				_m=$(mxtls_mark)
				smtpc "$W/smtp.$_n" "$_addr:25" "EHLO client.test" \
					"MAIL FROM:<s@sender.test>" "RCPT TO:<mx-$_n@$_base.test>" \
					"DATA=$W/msg.txt" "QUIT"
				mxtls_outcome "$W/smtp.$_n" "$_base.test" "$_m" >"$W/mx.$_n"
			done
		iptables -t nat -D OUTPUT -p tcp -d 127.0.0.0/8 --dport 25 -m owner \
			! --uid-owner 65534 -j REDIRECT --to-ports "$MXTLS_PORT"
	else
		fail "transparent: redirect to mxtls installed (iptables)" "$(cat "$W/iptables.err")"
	fi
	mxtls_stop
	note "mxtls column: $(($(date +%s) - T0)) s"
fi

# ---------------------------------------------------------------- results

# class OUTCOME: its first word.
class() { echo "${1%% *}"; }

# judge CLIENT NAME RCPT RCV EXP CODE OUTCOME: the checks of one cell.
judge() {
	_c=$1 _n=$2 _r=$3 _rcv=$4 _e=$5 _code=$6 _o=$7
	check "$_c $_n: $_e" test "$(class "$_o")" = "$_e"
	[ "$LAST_OK" = yes ] || echo "    $_c got: $_o"
	case $_e in
	deferred | failed)
		check "$_c $_n: nothing delivered" nothing_to "$_rcv" "$_r"
		if [ "$_c" = mxtls ] && [ "$(class "$_o")" = "$_e" ]; then
			check "$_c $_n: reply $_code" test -n "$(echo "${_o#"$_e" }" | grep -E "^$_code")"
		fi
		;;
	*)
		# The client saw the 250: the receiver's local delivery follows
		# at once.  Otherwise there is nothing to wait for.
		case $(class "$_o") in
		dane-ee | dane-ta | tls | clear) _s=5 ;;
		*) _s=0 ;;
		esac
		check "$_c $_n: delivered to $_rcv" delivered_to "$_rcv" "$_r" $_s
		;;
	esac
}

: >"$W/table"
while read -r name dom addr rcv exp code; do
	p=- m=-
	if [ "$DANE_CLIENTS" != mxtls ]; then
		p=$(cat "$W/pf.$name")
		judge postfix "$name" "pf-$name@$dom" "$rcv" "$exp" "$code" "$p"
	fi
	if [ "$DANE_CLIENTS" != postfix ]; then
		m=$(cat "$W/mx.$name")
		judge mxtls "$name" "mx-$name@$dom" "$rcv" "$exp" "$code" "$m"
	fi
	agree=-
	if [ "$DANE_CLIENTS" = both ]; then
		agree=yes
		[ "$(class "$p")" = "$(class "$m")" ] || agree=NO
		check "$name: Postfix and mxtls agree" test $agree = yes
	fi
	printf '%s|%s|%s|%s|%s\n' "$name" "$exp" "$p" "$m" "$agree" >>"$W/table"
done <"$W/cases"
if [ "$DANE_CLIENTS" != postfix ]; then
	printf '%s\n' "$MXTLS_ONLY" | while read -r name phase base exp code; do
		[ -n "$name" ] || continue
		rcv=$(awk -v n="$base" '$1 == n { print $4 }' "$W/domains")
		m=$(cat "$W/mx.$name")
		judge mxtls "$name" "mx-$name@$base.test" "$rcv" "$exp" "${code:-451 4\.7\.5}" "$m"
		printf '%s|%s|%s|%s|%s\n' "$name" "$exp" "(mxtls only: $phase)" "$m" - >>"$W/table"
	done
fi

echo
echo "case | expected | Postfix | mxtls | agree?"
awk -F'|' '{ for (i = 1; i <= 5; i++) { v = $i; if (length(v) > 60) v = substr(v, 1, 57) "..."; c[NR, i] = v; if (length(v) > w[i]) w[i] = length(v) } }
END { for (r = 1; r <= NR; r++) { l = ""; for (i = 1; i <= 5; i++) l = l sprintf("%-" w[i] "s", c[r, i]) (i < 5 ? " | " : ""); sub(/ +$/, "", l); print l } }' "$W/table"
echo
note "took $(($(date +%s) - T_START)) s"
finish
