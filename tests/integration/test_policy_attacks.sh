#!/bin/sh
# Attacks on the policy sources (docs/security.md section F: F-10, F-11, F-13,
# F-14, F-15, F-16), end to end: one mxtls with a signed central policy
# ([policy] url, signing_key, refresh 1 s) and MTA-STS, a private nginx for
# the central document and the mta-sts.* policy hosts, dnsmasq (restarted
# on the same port to change records), receiving Postfix MXs.  Everything
# listens on 127.0.13.x:
#
#	.10  nginx: policy.central.test:PORT (the central document) and the
#	     good mta-sts.*.test host (:443)
#	.11  nginx :443, certificate for wrong.example.net (serves mode none /
#	     testing policies with a new id)
#	.12  nginx :443, 404 with a valid policy as body
#	.13  nginx :443, the policies as text/html
#	.14  nginx :443, the right names, issued by a CA not in the bundle
#	.15  nginx :443, the right names, expired
#	.30  nginx :443, mta-sts.ssrf*.test: a loopback policy host (F-14)
#	.21  Postfix P, no STARTTLS (every MX name of the attacked domains)
#	.22  Postfix B, certificate for another name
#	.23  Postfix V, valid certificate (mx.valid.test)
#	.99  nothing listens ("down")
#
# Domains:
#	aN.sts.test  MTA-STS enforce (MX aN.mx.test: P); the attacks on the
#	             central document try to list sts.test as opportunistic/off
#	dN.mand.test no MTA-STS; the central document (serial 5) makes
#	             mand.test mandatory (MX dN.mx.test: P)
#	cN.sts.test  MTA-STS enforce, cached, then the TXT record or the
#	             policy host fails (F-09 c/d under attack)
#	w1.sts.test  MTA-STS enforce, cached; an authentic newer central
#	             document downgrades it
#	f10, f11, f16, ssrf, ssrf2 .test: the single cases of their names
# Every attacked domain has an MX name of its own, so no retry record of
# an earlier attempt hides what the policy says: a downgraded policy shows
# as mail delivered in the clear by P, a kept one as 451 4.7.5 and P seeing
# no MAIL/RCPT/DATA at all.
#
# The MTA-STS TXT record is checked at most once a minute: the clock is
# moved by restarting mxtls with MXTLS_CLOCK_OFFSET (lib_retry.sh), the
# state_dir (central copy, MTA-STS cache) stays.
#
# Needs: nginx, dnsmasq, Postfix, openssl, curl, python3; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
. "$(dirname "$0")/lib_policy2.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_setup
T_START=$(date +%s)

NET=127.0.13
GOOD=$NET.10
BADNAME=$NET.11
E404=$NET.12
HTML=$NET.13
UNTRUSTED=$NET.14
EXPIRED=$NET.15
SSRF=$NET.30
DOWN=$NET.99
CPORT=$(free_port)
URL=https://policy.central.test:$CPORT/policy.ini
CA=$PKI/test-root-ca.pem
WWW=$W/www
DOCS=$W/docs
mkdir -p "$WWW/central" "$DOCS"

A_DOMS="a0 a1 a2 a3 a4 a5 a6 a7"
C_DOMS="c1 c2 c3 c4 c5 c6 c7 c8"
D_DOMS="d0 d1 d2 d3 d4 d5 d6 d7 d8 d9"
# every mta-sts.X host name the good server answers for
STS_HOSTS=""
for d in $A_DOMS $C_DOMS w1; do STS_HOSTS="$STS_HOSTS mta-sts.$d.sts.test"; done
STS_HOSTS="$STS_HOSTS mta-sts.f10.test mta-sts.f11.test mta-sts.f16.test"

# ---------------------------------------------------------------- policies

# policy DIR HOST TEXT: HOST's mta-sts.txt under $WWW/DIR (printf format).
policy() {
	mkdir -p "$WWW/$1/$2/.well-known"
	# shellcheck disable=SC2059
	printf "$3" >"$WWW/$1/$2/.well-known/mta-sts.txt"
}
ENFORCE='version: STSv1\nmode: enforce\nmx: *.mx.test\nmax_age: 86400\n'
for d in $A_DOMS $C_DOMS w1; do policy good "mta-sts.$d.sts.test" "$ENFORCE"; done
policy good mta-sts.f10.test "$ENFORCE"
policy good mta-sts.f11.test 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
policy good mta-sts.f16.test "$ENFORCE"
# What the failing hosts serve with the new id: the downgrade itself.
NONE='version: STSv1\nmode: none\nmax_age: 86400\n'
TESTING='version: STSv1\nmode: testing\nmx: *.mx.test\nmax_age: 86400\n'
for d in $C_DOMS; do policy bad "mta-sts.$d.sts.test" "$NONE"; done
policy bad mta-sts.c6.sts.test "$TESTING"
policy ssrf mta-sts.ssrf.test "$TESTING"
chmod -R a+rX "$WWW"

# ---------------------------------------------------------------- certificates

# shellcheck disable=SC2086
pol_leaf good policy.central.test $STS_HOSTS mta-sts.ssrf.test mta-sts.ssrf2.test ||
	{ fail "policy server certificate"; finish; }
NOW=$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)
LATER=$(date -u -d '+20 days' +%Y%m%d%H%M%SZ)
# shellcheck disable=SC2086
pol2_leaf_dated untrusted other "$NOW" "$LATER" $STS_HOSTS ||
	{ fail "untrusted certificate"; finish; }
# shellcheck disable=SC2086
pol2_leaf_dated expired inter 20200101000000Z 20210101000000Z $STS_HOSTS ||
	{ fail "expired certificate"; finish; }

# ---------------------------------------------------------------- nginx

# One nginx, its access log (one line per request):
# "HOST URI STATUS addr=SERVER_ADDR cookie=.. auth=.. pauth=.. user=.."
NG=$W/nginx
mkdir -p "$NG/tmp"
srv() { # LISTEN CERT ROOT [directives]
	cat <<EOF
	server {
		listen $1 ssl;
		ssl_certificate $2.chain.pem;
		ssl_certificate_key $2.key;
		root $3;
		${4:-}
	}
EOF
}
{
	nginx_conf_head att '$host $request_uri $status addr=$server_addr cookie="$http_cookie" auth="$http_authorization" pauth="$http_proxy_authorization" user="$remote_user"'
	srv "$GOOD:$CPORT" "$W/certs/good" "$WWW/central"
	srv "$GOOD:443" "$W/certs/good" "$WWW/good/\$host"
	srv "$BADNAME:443" "$PKI/wrongname" "$WWW/bad/\$host"
	srv "$E404:443" "$W/certs/good" "$WWW/bad/\$host" \
		'location = /.well-known/mta-sts.txt { return 404 "version: STSv1\nmode: none\nmax_age: 86400\n"; }'
	srv "$HTML:443" "$W/certs/good" "$WWW/bad/\$host" 'types { } default_type text/html;'
	srv "$UNTRUSTED:443" "$W/certs/untrusted" "$WWW/bad/\$host"
	srv "$EXPIRED:443" "$W/certs/expired" "$WWW/bad/\$host"
	# F-14: a policy that sets a cookie and asks for credentials, and a
	# redirect to an internal-looking URL on the same loopback host.
	cat <<EOF
	server {
		listen $SSRF:443 ssl;
		server_name mta-sts.ssrf.test;
		ssl_certificate $W/certs/good.chain.pem;
		ssl_certificate_key $W/certs/good.key;
		root $WWW/ssrf/mta-sts.ssrf.test;
		add_header Set-Cookie "session=secret; Path=/; Domain=ssrf.test";
		add_header WWW-Authenticate 'Basic realm="internal"';
	}
	server {
		listen $SSRF:443 ssl;
		server_name mta-sts.ssrf2.test;
		ssl_certificate $W/certs/good.chain.pem;
		ssl_certificate_key $W/certs/good.key;
		location = /.well-known/mta-sts.txt { return 302 https://mta-sts.ssrf.test/latest/meta-data/; }
		location / { return 200 "internal secret\n"; }
	}
}
EOF
} >"$NG/nginx.conf"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { fail "nginx installed" "apt-get install nginx"; finish; }
for a in "$GOOD:$CPORT" "$GOOD:443" "$BADNAME:443" "$E404:443" "$HTML:443" "$UNTRUSTED:443" \
	"$EXPIRED:443" "$SSRF:443" "$DOWN:443" "$DOWN:25" "$DOWN:$CPORT"; do
	port_busy "$a" && { fail "$a is free" "$(ss -Hltnp | grep -F "$a ")"; finish; }
done
"$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/out" 2>&1 &
it_track nginx $! -
for a in "$GOOD:$CPORT" "$GOOD:443" "$BADNAME:443" "$E404:443" "$HTML:443" "$UNTRUSTED:443" \
	"$EXPIRED:443" "$SSRF:443"; do
	wait_for_port "$a" tcp 10 || { fail "nginx starts" "$(cat "$NG/out" "$NG/error.log")"; finish; }
done
# ng_hits ERE: requests in nginx's access log matching ERE.
ng_hits() {
	_c=$(grep -cE -- "$1" "$NG/access.log" 2>/dev/null)
	echo "${_c:-0}"
}

# ---------------------------------------------------------------- DNS

# The records, as the variables below say; dns_up (re)starts dnsmasq on
# the same port with them.
CENTRAL_AT=$GOOD # policy.central.test
WARM_AT=$DOWN    # the MX names of the cN and w1 domains
PHASE=1          # 2: the cN domains' TXT records and policy hosts attacked
dns_gen() {
	echo "host-record=policy.central.test,$CENTRAL_AT"
	for d in $A_DOMS; do
		echo "txt-record=_mta-sts.$d.sts.test,\"v=STSv1; id=1\""
		echo "host-record=mta-sts.$d.sts.test,$GOOD"
		echo "mx-host=$d.sts.test,$d.mx.test,10"
		echo "host-record=$d.mx.test,$NET.21"
	done
	for d in $D_DOMS; do
		echo "mx-host=$d.mand.test,$d.mx.test,10"
		echo "host-record=$d.mx.test,$NET.21"
	done
	for d in $C_DOMS w1; do
		host=$GOOD
		id=1
		if [ $PHASE = 2 ] && [ "$d" != w1 ]; then
			id=2
			case $d in
			c2) host=$DOWN ;;
			c3 | c6) host=$BADNAME ;;
			c4) host=$E404 ;;
			c5) host=$HTML ;;
			c7) host=$UNTRUSTED ;;
			c8) host=$EXPIRED ;;
			esac
		fi
		# c1: the TXT record disappears.
		[ $PHASE = 2 ] && [ "$d" = c1 ] ||
			echo "txt-record=_mta-sts.$d.sts.test,\"v=STSv1; id=$id\""
		echo "host-record=mta-sts.$d.sts.test,$host"
		echo "mx-host=$d.sts.test,$d.mx.test,10"
		mx=$WARM_AT
		[ "$d" = c2 ] && [ "$WARM_AT" != "$DOWN" ] && mx=$NET.22
		echo "host-record=$d.mx.test,$mx"
	done
	# F-10: only f10.test publishes a policy; sub.f10.test has none.
	echo "txt-record=_mta-sts.f10.test,\"v=STSv1; id=1\""
	echo "host-record=mta-sts.f10.test,$GOOD"
	echo "mx-host=sub.f10.test,f10s.mx.test,10"
	echo "host-record=f10s.mx.test,$NET.21"
	# F-11: the permitted MX is down, a backup the policy does not name works.
	echo "txt-record=_mta-sts.f11.test,\"v=STSv1; id=1\""
	echo "host-record=mta-sts.f11.test,$GOOD"
	echo "mx-host=f11.test,mx1.example.test,10"
	echo "mx-host=f11.test,mx.valid.test,20"
	echo "host-record=mx1.example.test,$DOWN"
	echo "host-record=mx.valid.test,$NET.23"
	# F-16: the TXT record is dropped (the policy host would say enforce).
	echo "host-record=mta-sts.f16.test,$GOOD"
	echo "mx-host=f16.test,f16.mx.test,10"
	echo "host-record=f16.mx.test,$NET.21"
	# F-14: policy hosts on a loopback address.
	for d in ssrf ssrf2; do
		echo "txt-record=_mta-sts.$d.test,\"v=STSv1; id=1\""
		echo "host-record=mta-sts.$d.test,$SSRF"
		echo "mx-host=$d.test,$d.mx.test,10"
		echo "host-record=$d.mx.test,$NET.21"
	done
}
dns_up() {
	dns_gen >"$W/dns.in"
	# Not in a pipeline: pol_dns_up sets DNS_PORT and POL_DNS_PID here.
	pol_dns_up <"$W/dns.in"
}
dns_up || { fail "dnsmasq starts"; finish; }

# ---------------------------------------------------------------- MXs

pf_mx P "$NET.21:25" hostname=mx.plain.test tls=no || { fail "Postfix P starts"; finish; }
pf_mx B "$NET.22:25" hostname=mx.bad.test cert=wrongname || { fail "Postfix B starts"; finish; }
pf_mx V "$NET.23:25" hostname=mx.valid.test || { fail "Postfix V starts"; finish; }

# ---------------------------------------------------------------- central documents

mxtls_keys() {
	"$MXTLS" keygen -o "$W/good.key" >"$W/good.key.out" 2>&1 &&
		"$MXTLS" keygen -o "$W/other.key" >"$W/other.key.out" 2>&1
}
mxtls_keys || { fail "mxtls keygen" "$(cat "$W"/*.key.out)"; finish; }
PUB=$(sed -n 's/^public-key = //p' "$W/good.key.out")

# doc NAME SERIAL STS_PROFILE MAND_PROFILE: $DOCS/NAME, a document
# sending sts.test (with its subdomains) and mand.test to those profiles
# ("-": no match for it).
doc() {
	{
		printf '[document]\nserial = %s\n\n' "$2"
		printf '[profile c-mand]\ntls = mandatory\nverify = strict\n\n'
		printf '[profile c-opp]\ntls = opportunistic\nverify = none\n\n'
		printf '[profile c-off]\ntls = off\n\n'
		[ "$3" = - ] || printf '[match sts.test]\nprofile = %s\n\n' "$3"
		[ "$4" = - ] || printf '[match mand.test]\nprofile = %s\n\n' "$4"
		# Something for every document to route, so no profile is unused.
		printf '[match unused.test]\nprofile = c-opp\n'
	} >"$DOCS/$1"
}
# sign NAME KEY: $DOCS/NAME.sig, made with mxtls sign-policy.
sign() {
	"$MXTLS" sign-policy -k "$W/$2.key" "$DOCS/$1" >"$DOCS/$1.sign.out" 2>&1 ||
		echo "sign-policy $1: $(cat "$DOCS/$1.sign.out")"
}
# serve DOC SIG: the central server serves $DOCS/DOC with $DOCS/SIG as
# its .sig ("-": no .sig, 404).  The .sig first; the document with a
# modification time of its own (nginx's ETag).
echo $(($(date +%s) - 10000)) >"$W/t_pub"
serve() {
	if [ "$2" = - ]; then
		rm -f "$WWW/central/policy.ini.sig"
	else
		cp "$DOCS/$2" "$WWW/central/.sig.tmp"
		chmod 644 "$WWW/central/.sig.tmp"
		mv "$WWW/central/.sig.tmp" "$WWW/central/policy.ini.sig"
	fi
	cp "$DOCS/$1" "$WWW/central/.doc.tmp"
	chmod 644 "$WWW/central/.doc.tmp"
	_tp=$(($(cat "$W/t_pub") + 1))
	echo $_tp >"$W/t_pub"
	touch -d "@$_tp" "$WWW/central/.doc.tmp"
	mv "$WWW/central/.doc.tmp" "$WWW/central/policy.ini"
}

doc old3 3 c-opp - # the fleet's document before sts.test had MTA-STS
doc cur5 5 - c-mand
doc unsigned6 6 c-off c-off
doc same5 5 c-off c-mand # the same serial as cur5, other content
doc auth9 9 c-off c-mand
for d in old3 cur5 same5 auth9; do sign $d good; done
cp "$DOCS/unsigned6" "$DOCS/other6"
sign other6 other

# ---------------------------------------------------------------- helpers

# send DOMAIN: a message to a new recipient of DOMAIN; sets RCPT and OUT.
send() { pol_send_new "$1"; }
logged() { grep_since "$MXTLS_LOG" "$MARK" "$@"; }
not_logged() { no_grep_since "$MXTLS_LOG" "$MARK" "$@"; }
m() { pol_metric mxtls_policy_fetches_total 'source="central"' "outcome=\"$1\""; }
# count_since ERE N [SECONDS]: at least N log lines after MARK match ERE.
count_since() {
	_t=$(it_until "${3:-8}")
	while :; do
		_c=$(log_since "$MXTLS_LOG" "$MARK" | grep -cE -- "$1")
		[ "$_c" -ge "$2" ] && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
	done
	echo "$_c lines after byte $MARK match /$1/, expected at least $2; the central lines:"
	log_since "$MXTLS_LOG" "$MARK" | grep central | tail -n 8 | cut -c 1-300 | sed 's/^/  | /'
	return 1
}
# MX_MARK: the size of P's and B's logs before a send (mx_mark sets it).
mx_mark() { MX_MARK="$(log_mark "$(pf_log P)") $(log_mark "$(pf_log B)")"; }
# in_clear_none: since mx_mark, neither P nor B took a MAIL, RCPT or DATA
# (Postfix counts them in its "disconnect from" line).
in_clear_none() {
	# shellcheck disable=SC2086
	set -- $MX_MARK
	no_grep_since "$(pf_log P)" "$1" 'disconnect from .* (mail|rcpt|data)=' &&
		no_grep_since "$(pf_log B)" "$2" 'disconnect from .* (mail|rcpt|data)='
}
# kept MX_NAME: the last message was deferred 451 4.7.5 (never 5xx), not
# delivered, and nothing of it crossed to the MXs.
kept() {
	pol_answer_is "$OUT" "$RCPT" '^451 4\.7\.5 ' || return 1
	mx_none "$1" "$RCPT" || return 1
	in_clear_none
}
# rcpt_logged ERE...: mxtls's event=rcpt line for RCPT matches every ERE.
rcpt_logged() {
	_l=$(grep -F "to=$RCPT " "$MXTLS_LOG" | grep 'event=rcpt ')
	for _re in "$@"; do
		printf '%s\n' "$_l" | grep -qE -- "$_re" && continue
		echo "event=rcpt line for $RCPT does not match /$_re/: ${_l:-(none)}"
		return 1
	done
}
# plain_delivered: the last message was accepted and P got it in the clear.
plain_delivered() {
	reply_is "$OUT" DOT '250 ' || return 1
	pol_delivered_to P "$RCPT" || return 1
	received_over P "$RCPT" none
}
# never_5xx: the RCPT reply is a 4xx (deferred), never 5xx.
never_5xx() {
	_r=$(awk -v l="RCPT TO:<$RCPT> => " 'index($0, l) == 1 { print substr($0, length(l) + 1) }' "$OUT")
	case $_r in
	4*) return 0 ;;
	esac
	echo "expected a 4xx to RCPT TO:<$RCPT>, got: ${_r:-(none)}"
	return 1
}

rt_config policy="url = $URL" policy='refresh = 1' policy="https_ca_bundle = $CA" \
	policy="signing_key = $PUB" policy="mta_sts_ca_bundle = $CA" \
	policy='mta_sts_wait = 5' </dev/null

# ---------------------------------------------------------------- F-13 config

# mxtls -t on the config with another url.
bad_url() {
	sed "s|^url = .*|url = $1|" "$RT_CONF" >"$W/badurl.ini"
	"$MXTLS" -t -c "$W/badurl.ini" >"$W/badurl.out" 2>&1
	_rc=$?
	if [ $_rc -eq 1 ] && grep -qE "^$W/badurl.ini:[0-9]+: .*$2.*expected an https:// URL" \
		"$W/badurl.out"; then
		return 0
	fi
	echo "mxtls -t with url = $1: exit $_rc, expected 1 and FILE:LINE: ... expected an https:// URL:"
	sed 's/^/  | /' "$W/badurl.out"
	return 1
}
check "F-13 [policy] url = http://...: refused by mxtls -t (exit 1, FILE:LINE, expected an https:// URL)" \
	bad_url "http://policy.central.test:$CPORT/policy.ini" 'http://'
check "F-13 [policy] url = file:///etc/passwd: refused by mxtls -t" bad_url file:///etc/passwd 'file:'
check "F-13 [policy] url = HTTP://... (scheme case): refused by mxtls -t" \
	bad_url "HTTP://policy.central.test/policy.ini" 'HTTP://'

# ---------------------------------------------------------------- F-15: serial 3, then 5

serve old3 old3.sig
rt_mxtls_start 0 || finish
MARK=0
check "F-15 setup: signed serial 3 taken" \
	logged "event=central-policy url=$URL how=fetched serial=3( |$)" 10
serve cur5 cur5.sig
check "F-15 setup: signed serial 5 (mand.test mandatory) taken" \
	logged "event=central-policy url=$URL how=fetched serial=5( |$)" 8
MARK=$(mxtls_mark)
serve cur5 cur5.sig
check "F-15 serial 5 published again (a new ETag, 200, the same bytes): seen as unchanged" \
	logged "event=central-policy-fetch url=$URL what=document .*status=200 .*outcome=not-modified" 8
check "... and not applied again (connection cache and TLS sessions kept)" \
	not_logged "event=central-policy url=$URL how=fetched"

mx_mark
send d0.mand.test
check "F-15 serial 5 in force: d0.mand.test (no STARTTLS) 451 4.7.5, nothing in the clear" kept P
check "F-15 ... rcpt under the document's [match mand.test], profile c-mand" \
	rcpt_logged 'profile=c-mand' 'match=mand\.test'
mx_mark
send a0.sts.test
check "F-15 baseline: a0.sts.test MTA-STS enforce, MX without STARTTLS: 451 4.7.5, nothing in the clear" kept P
check "F-15 ... rcpt logged profile=mta-sts mta_sts=enforce" \
	rcpt_logged 'profile=mta-sts' 'mta_sts=enforce'

# Cache the enforce policies of the cN and w1 domains now (their MXs are
# down: an ordinary 4.4.x deferral, no retry record for a host).
for d in $C_DOMS w1; do
	smtpc "$W/warm.$d" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<w@$d.sts.test>" QUIT
done
warm_ok() {
	for _d in $C_DOMS w1; do
		pol_sts_has "$_d.sts.test" 'mode enforce' >/dev/null || {
			echo "$_d.sts.test: no cached enforce policy; the session:"
			sed 's/^/  | /' "$W/warm.$_d"
			return 1
		}
		pol_answer_is "$W/warm.$_d" "w@$_d.sts.test" '^4' || return 1
	done
}
check "F-15 setup: the enforce policies of c1..c8, w1 cached (their MXs down: 4xx)" warm_ok

# ---------------------------------------------------------------- F-15 (a): not authentic

I0=$(m invalid)
MARK=$(mxtls_mark)
serve unsigned6 -
check "F-15 (a) unsigned serial 6 (sts.test, mand.test -> tls off), .sig 404: refused" \
	count_since 'event=central-policy-refused .*reason="?signature fetch failed' 2
check "F-15 (a) ... counted (outcome=invalid)" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
mx_mark
send a1.sts.test
check "F-15 (a) unsigned: a1.sts.test stays MTA-STS enforce: 451 4.7.5, nothing in the clear" kept P
check "F-15 (a) ... profile=mta-sts, not the document's" rcpt_logged 'profile=mta-sts' 'mta_sts=enforce'
mx_mark
send d1.mand.test
check "F-15 (a) unsigned: d1.mand.test stays mandatory (c-mand): 451 4.7.5, nothing in the clear" \
	pol_all "kept P" "rcpt_logged profile=c-mand"

MARK=$(mxtls_mark)
serve other6 other6.sig
check "F-15 (a) serial 6 signed with another key: refused (bad signature)" \
	count_since 'event=central-policy-refused .*bad signature' 2
mx_mark
send a2.sts.test
check "F-15 (a) other key: a2.sts.test 451 4.7.5, nothing in the clear" kept P
mx_mark
send d2.mand.test
check "F-15 (a) other key: d2.mand.test 451 4.7.5 (c-mand)" pol_all "kept P" "rcpt_logged profile=c-mand"

MARK=$(mxtls_mark)
serve unsigned6 cur5.sig
check "F-15 (a) serial 6 with the genuine signature of serial 5 (another document): refused" \
	count_since 'event=central-policy-refused .*bad signature' 2
mx_mark
send a3.sts.test
check "F-15 (a) signature of another document: a3.sts.test 451 4.7.5, nothing in the clear" kept P
check "F-15 (a) none of the forged documents was taken (no serial=6)" \
	sh -c "! grep -E 'event=central-policy .*serial=6' '$MXTLS_LOG'"

# ---------------------------------------------------------------- F-15 (b): replay

I0=$(m invalid)
MARK=$(mxtls_mark)
serve old3 old3.sig
check "F-15 (b) replay of serial 3 with its own genuine signature: refused as a rollback" \
	logged 'level=error .*event=central-policy-refused .*rollback.*serial=3 in_force=5' 8
check "F-15 (b) ... counted (outcome=invalid)" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
mx_mark
send a4.sts.test
check "F-15 (b) replayed serial 3 listed sts.test opportunistic: a4.sts.test still 451 4.7.5, nothing in the clear" \
	pol_all "kept P" "rcpt_logged profile=mta-sts"
mx_mark
send d3.mand.test
check "F-15 (b) replay: d3.mand.test still mandatory (serial 5): 451 4.7.5" \
	pol_all "kept P" "rcpt_logged profile=c-mand"
copy_serial() { # N: state_dir holds serial N as the last good copy
	grep -qx "serial $1" "$RT_STATE_DIR/central-policy.meta" &&
		cmp -s "$RT_STATE_DIR/central-policy" "$DOCS/cur5" && return 0
	echo "state_dir/central-policy(.meta) is not serial $1:"
	sed 's/^/  | /' "$RT_STATE_DIR/central-policy.meta"
	return 1
}
check "F-15 (b) the last good copy in state_dir is still serial 5" copy_serial 5
explain() { # RCPT ERE...: mxtls explain RCPT prints every ERE
	MXTLS_CLOCK_OFFSET=$RT_OFFSET "$MXTLS" -c "$RT_CONF" explain "$1" >"$W/explain.out" 2>&1
	shift
	for _re in "$@"; do
		grep -qE -- "$_re" "$W/explain.out" && continue
		echo "mxtls explain does not show /$_re/; it printed:"
		sed 's/^/  | /' "$W/explain.out"
		return 1
	done
}
check "F-15 (b) mxtls explain r@d3.mand.test shows the serial-5 policy ([match mand.test], c-mand)" \
	explain r@d3.mand.test '\[match mand\.test\]' 'c-mand'

# A restart, the replay still served: the copy in state_dir (serial 5)
# is in force before any fetch, and the replay is refused again.
rt_mxtls_restart 0 || finish
MARK=0
check "F-15 (b) restart: the last good copy taken (how=last-good-copy serial=5)" \
	logged "event=central-policy url=$URL how=last-good-copy serial=5( |$)" 5
check "F-15 (b) restart: the replayed serial 3 refused again (rollback, in_force=5)" \
	logged 'event=central-policy-refused .*rollback.*serial=3 in_force=5' 8
mx_mark
send a5.sts.test
check "F-15 (b) after the restart: a5.sts.test 451 4.7.5, nothing in the clear" \
	pol_all "kept P" "rcpt_logged profile=mta-sts"
mx_mark
send d4.mand.test
check "F-15 (b) after the restart: d4.mand.test 451 4.7.5 (c-mand)" \
	pol_all "kept P" "rcpt_logged profile=c-mand"

# ---------------------------------------------------------------- F-15 (e): fetch fails

F0=$(m failed)
MARK=$(mxtls_mark)
CENTRAL_AT=$DOWN
dns_up || fail "dnsmasq restarts (central server down)"
check "F-15 (e) central server down: fetch failures logged" \
	count_since "event=central-policy-fetch-failed url=$URL" 2
check "F-15 (e) ... counted (outcome=failed)" pol_metric_gt mxtls_policy_fetches_total "$F0" \
	'source="central"' 'outcome="failed"'
mx_mark
send d5.mand.test
check "F-15 (e) a fetch failure never downgrades: d5.mand.test still mandatory, 451 4.7.5, nothing in the clear" \
	pol_all "kept P" "rcpt_logged profile=c-mand"

# ---------------------------------------------------------------- F-15 (c, d): MTA-STS

# The cN domains' TXT record goes, or its id changes while the policy host
# fails (down, wrong name, 404, text/html, untrusted CA, expired; the
# failing hosts serve mode none / testing); the MXs come up, without
# STARTTLS (c2: with a certificate for another name).  A minute later
# (clock +120 s) the TXT records are looked at again.  The central server
# stays down over the restart.
PHASE=2
WARM_AT=$NET.21
dns_up || fail "dnsmasq restarts (phase 2)"
rt_mxtls_restart 120 || finish
MARK=0
check "F-15 (e) restart with the central server down: the last good copy (serial 5) in force" \
	logged "event=central-policy url=$URL how=last-good-copy serial=5( |$)" 5
mx_mark
send d6.mand.test
check "F-15 (e) ... d6.mand.test mandatory after the restart: 451 4.7.5, nothing in the clear" \
	pol_all "kept P" "rcpt_logged profile=c-mand"

sts_kept() { # DOMAIN SOURCE_ERE: the cached enforce policy applied
	pol_all "kept ${MXN:-P}" "rcpt_logged profile=mta-sts mta_sts=enforce" || return 1
	_l=$(grep -E "event=mta-sts .*domain=$1 " "$MXTLS_LOG" | grep -E "mode=enforce .*source=$2")
	[ -n "$_l" ] && return 0
	echo "no event=mta-sts line for $1 with mode=enforce source=/$2/:"
	grep -E "event=mta-sts .*domain=$1 " "$MXTLS_LOG" | cut -c 1-300 | sed 's/^/  | /'
	return 1
}
H_C1=$(ng_hits '^mta-sts\.c1\.sts\.test ')
mx_mark
send c1.sts.test
check "F-15 (c) TXT record gone: c1.sts.test's cached enforce policy applies: 451 4.7.5, nothing in the clear" \
	sts_kept c1.sts.test 'txt-missing-cache-valid'
check "F-15 (c) ... and no fetch was attempted" test "$(ng_hits '^mta-sts\.c1\.sts\.test ')" -eq "$H_C1"
MXN=B
mx_mark
send c2.sts.test
check "F-15 (c) new id, policy host down: c2.sts.test (MX bad certificate) cached enforce: 451 4.7.5, nothing in the clear" \
	sts_kept c2.sts.test 'fetch-failed-cache-valid'
MXN=P
fetch_refused() { # DOMAIN ERE: the refused fetch was logged, cached policy kept
	_l=$(grep -E "event=mta-sts .*domain=$1 .*result=refused" "$MXTLS_LOG" | grep -E "kept=cached-policy")
	printf '%s\n' "$_l" | grep -qE -- "$2" && return 0
	echo "no refused fetch for $1 with kept=cached-policy matching /$2/:"
	grep -E "event=mta-sts .*domain=$1 " "$MXTLS_LOG" | cut -c 1-300 | sed 's/^/  | /'
	return 1
}
check "F-15 (c) ... the failed fetch logged, kept=cached-policy" fetch_refused c2.sts.test 'id=2'
for c in "c3 wrong name, serving mode none|webpki|certificate|name" \
	"c4 404|404" "c5 text/html, serving mode none|text/html" \
	"c6 wrong name, serving mode testing|webpki|certificate|name" \
	"c7 untrusted CA, serving mode none|webpki|certificate|issuer" \
	"c8 expired certificate, serving mode none|webpki|certificate|expired"; do
	d=${c%% *}
	what=${c#* }
	why=${what#*|}
	what=${what%%|*}
	mx_mark
	send "$d.sts.test"
	case $d in c3 | c6 | c7 | c8) tag="(d)" ;; *) tag="(c)" ;; esac
	check "F-15 $tag new id, policy host $what: $d.sts.test cached enforce kept: 451 4.7.5, nothing in the clear" \
		sts_kept "$d.sts.test" 'fetch-failed-cache-valid'
	check "F-15 $tag ... $d: the refused fetch logged with its reason, kept=cached-policy" \
		fetch_refused "$d.sts.test" "$why"
done
cached_id1() {
	for _d in $C_DOMS; do
		pol_sts_has "$_d.sts.test" 'mode enforce' 'id 1' || return 1
	done
}
check "F-15 (c, d) the cache still holds id 1, mode enforce, for every cN" cached_id1

# ---------------------------------------------------------------- F-15: same serial

CENTRAL_AT=$GOOD
I0=$(m invalid)
MARK=$(mxtls_mark)
serve same5 cur5.sig
dns_up || fail "dnsmasq restarts (central server back)"
check "F-15 same serial 5, other content, with serial 5's signature: refused (same serial, before its signature is looked at)" \
	count_since 'event=central-policy-refused .*same serial as the document in force' 2
mx_mark
send a6.sts.test
check "F-15 ... a6.sts.test 451 4.7.5, nothing in the clear" pol_all "kept P" "rcpt_logged profile=mta-sts"

MARK=$(mxtls_mark)
serve same5 same5.sig
# A second document with the serial in force, genuinely signed (the
# operator re-signed a correction without raising the serial; the
# attacker replays the other one): versions must be monotonic.
check "F-15 same serial 5, other content, its own genuine signature: refused (serial not higher)" \
	count_since 'event=central-policy-refused .*serial' 1
mx_mark
send a7.sts.test
check "F-15 ... a7.sts.test 451 4.7.5, nothing in the clear" pol_all "kept P" "rcpt_logged profile=mta-sts"

# ---------------------------------------------------------------- F-15: authentic downgrade

MARK=$(mxtls_mark)
serve auth9 auth9.sig
check "F-15 authentic newer signed serial 9 (sts.test -> tls off): taken" \
	logged "event=central-policy url=$URL how=fetched serial=9( |$)" 8
mx_mark
send w1.sts.test
check "F-15 authentic downgrade: the explicit central match wins over w1.sts.test's cached enforce (docs/behaviour.md section 6): delivered in the clear" \
	plain_delivered
check "F-15 ... rcpt logged under the document's match (profile c-off, match sts.test)" \
	rcpt_logged 'profile=c-off' 'match=sts\.test'
# Does mxtls say that a central match overrides a known enforce policy?
if log_since "$MXTLS_LOG" "$MARK" | grep -E 'level=(warn|error)' | grep -qE 'w1\.sts\.test|sts\.test.*(mta-sts|enforce)'; then
	note "mxtls logged a warning for the central match weakening w1.sts.test's enforce policy"
else
	note "NO warning: mxtls does not log that the central match weakened w1.sts.test's cached MTA-STS enforce policy"
fi

# ---------------------------------------------------------------- F-10

TXT_PARENT=$(grep -c 'query\[TXT\] _mta-sts\.f10\.test from' "$W/dnsmasq.log")
MARK=$(mxtls_mark)
send sub.f10.test
check "F-10 sub.f10.test (no policy of its own; f10.test enforce): delivered as the default says (in the clear)" \
	plain_delivered
check "F-10 ... _mta-sts.sub.f10.test looked up, the parent's _mta-sts.f10.test never" pol_all \
	"grep -q 'query\\[TXT\\] _mta-sts\\.sub\\.f10\\.test from' $W/dnsmasq.log" \
	"test \$(grep -c 'query\\[TXT\\] _mta-sts\\.f10\\.test from' $W/dnsmasq.log) -eq $TXT_PARENT" \
	"test \$(ng_hits '^mta-sts\\.f10\\.test ') -eq 0"
send "[$NET.21]"
check "F-10 recipient address literal r@[$NET.21]: no MTA-STS or MX lookup for it; refused 553 5.1.3 (no MX, no name to verify), not delivered" \
	pol_all "! grep -q 'query\\[[A-Z]*\\] [^ ]*\\[' $W/dnsmasq.log" "grep -qF 'RCPT TO:<$RCPT> => 553 5.1.3' '$OUT'" "mx_none P '$RCPT'"
note "address literal: RCPT => $(awk -v l="RCPT TO:<$RCPT> => " 'index($0, l) == 1 { print substr($0, length(l) + 1) }' "$OUT")"

# ---------------------------------------------------------------- F-11

V0=$(log_mark "$(pf_log V)")
MARK=$(mxtls_mark)
send f11.test
check "F-11 enforce mx mx1.example.test (down), backup MX mx.valid.test (valid TLS, not in the policy): deferred 4xx, never 5xx" \
	never_5xx
check "F-11 ... the backup never contacted (Postfix V saw no connection), mx-not-permitted logged" pol_all \
	"mx_none V $RCPT" "no_grep_since $(pf_log V) $V0 'connect from'" \
	"logged 'event=mx-not-permitted mx=mx.valid.test'"

# ---------------------------------------------------------------- F-16

MARK=$(mxtls_mark)
send f16.test
check "F-16 first contact, TXT dropped, STARTTLS stripped: opportunistic proceeds in the clear (RFC 8461 section 10)" \
	plain_delivered
check "F-16 ... the policy host (which says enforce) was never asked" \
	test "$(ng_hits '^mta-sts\.f16\.test ')" -eq 0
check "F-16 ... logged: no MTA-STS policy (event=mta-sts mode=none) and the plaintext reason (starttls-not-supported)" \
	pol_all "logged 'event=mta-sts .*domain=f16\\.test .*mode=none'" \
	"logged 'event=plaintext .*reason=starttls-not-supported .*mx=f16\\.mx\\.test'"
check "F-16 ... the plaintext line says no MTA-STS policy was known (mta_sts=none), so operators can count such first contacts" \
	logged 'event=plaintext .*mx=f16\.mx\.test .*mta_sts=none'

# ---------------------------------------------------------------- F-14

MARK=$(mxtls_mark)
send ssrf.test
check "F-14 mta-sts.ssrf.test resolves to a loopback address ($SSRF): fetched from it (non-public addresses are not refused)" \
	pol_all "test \$(ng_hits '^mta-sts\\.ssrf\\.test /\\.well-known/mta-sts\\.txt 200 addr=$SSRF ') -eq 1" \
	"logged 'event=mta-sts .*domain=ssrf\\.test .*result=fetched'"
send ssrf2.test
check "F-14 mta-sts.ssrf2.test (loopback) answers 302 to an internal URL: refused, not followed" pol_all \
	"logged 'event=mta-sts .*domain=ssrf2\\.test .*result=refused'" \
	"test \$(ng_hits '/latest/meta-data') -eq 0"
check "F-14 no cookie, no Authorization, no Proxy-Authorization, no user in any request to a policy host" \
	sh -c "! grep -vE 'cookie=\"-\" auth=\"-\" pauth=\"-\" user=\"-\"\$' $NG/access.log"
check "F-14 mxtls logs the addresses it gives the fetcher for the policy host (a private or loopback one shows)" \
	logged "event=mta-sts .*domain=ssrf\\.test .*result=fetching .*addrs=[^ ]*$SSRF"

note "run time $(($(date +%s) - T_START)) s"
finish
