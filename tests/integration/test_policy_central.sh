#!/bin/sh
# The central policy document end to end (docs/behaviour.md section 6):
# a running mxtls fetches [policy] url from a private nginx over HTTPS
# (a certificate for policy.central.test from the test PKI; the name
# resolved through dnsmasq), and the document's [match] sections decide
# where mail goes, observed by which receiving Postfix gets it:
#
#	central.test  MX mx1.example.test (127.0.0.152, MX "A")
#	              the document sends it to nexthop mx2 (127.0.0.153, "B")
#	              or mx3 (127.0.0.154, "C"), profile mandatory
#	local.test    MX mx1.example.test; the local config has its own
#	              [match local.test], which wins over the document's
#
# Cases: first fetch; 304 (nginx's ETag) keeps it; a new document picked
# up within `refresh` without a restart; 404, garbage, a document with an
# error, a lower serial (rollback), the server down: refused or failed,
# the last good one stays (logs, metrics, the copy in state_dir); a
# restart with the server down uses the copy in state_dir; max_stale
# warns and exposes the age on /metrics; signing_key: a signed document is
# taken, a missing or wrong .sig refused.
#
# Needs: nginx, dnsmasq, Postfix, openssl, curl, python3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup
T_START=$(date +%s)

NG_ADDR=127.0.0.151
NG_PORT=$(free_port)
URL=https://policy.central.test:$NG_PORT/policy.ini
WWW=$W/www
CA=$PKI/test-root-ca.pem
mkdir -p "$WWW" "$W/keys"
chmod 755 "$WWW"

# ---------------------------------------------------------------- servers

pol_leaf policy policy.central.test || { fail "policy server certificate"; finish; }
pol_nginx_start "$NG_ADDR:$NG_PORT" <<EOF || { fail "nginx starts"; finish; }
	server {
		listen $NG_ADDR:$NG_PORT ssl;
		server_name policy.central.test;
		ssl_certificate $W/certs/policy.chain.pem;
		ssl_certificate_key $W/certs/policy.key;
		root $WWW;
	}
EOF

dns_a policy.central.test $NG_ADDR
dns_a mx1.example.test 127.0.0.152
dns_a mx2.example.test 127.0.0.153
dns_a mx3.example.test 127.0.0.154
dns_mx central.test mx1.example.test 10
dns_mx local.test mx1.example.test 10
dns_start || finish

pf_mx A 127.0.0.152:25 hostname=mx1.example.test || { fail "Postfix A starts"; finish; }
pf_mx B 127.0.0.153:25 hostname=mx2.example.test || { fail "Postfix B starts"; finish; }
pf_mx C 127.0.0.154:25 hostname=mx3.example.test || { fail "Postfix C starts"; finish; }

# ---------------------------------------------------------------- documents

# publish: stdin becomes $WWW/policy.ini, atomically, with a modification
# time of its own (nginx's ETag is mtime-size: every publication gets a new
# one even within one second).
# publish runs at the end of a pipeline (a subshell): the time is kept in
# a file.
echo $(($(date +%s) - 10000)) >"$W/t_pub"
publish() {
	cat >"$WWW/.policy.tmp"
	chmod 644 "$WWW/.policy.tmp"
	_tp=$(($(cat "$W/t_pub") + 1))
	echo $_tp >"$W/t_pub"
	touch -d "@$_tp" "$WWW/.policy.tmp"
	mv "$WWW/.policy.tmp" "$WWW/policy.ini"
}
# doc SERIAL HOST: a valid document sending central.test to HOST (and
# local.test to mx3, which the local [match local.test] must override).
doc() {
	cat <<EOF
# the fleet's policy
[document]
serial = $1

[profile central-mandatory]
tls = mandatory
verify = strict

[match central.test]
profile = central-mandatory
nexthop = $2

[match local.test]
profile = central-mandatory
nexthop = mx3.example.test
EOF
}

# send RCPT_DOMAIN: a message to a new recipient of that domain; sets RCPT
# and OUT.
send() { pol_send_new "$1"; }
# sent_to MX OTHER...: the last message sent was accepted (250 to the
# final dot) and delivered by MX, not by the OTHERs.
sent_to() {
	reply_is "$OUT" DOT '250 ' || return 1
	pol_delivered_to "$@" || return 1
}
# in_force HOST...: a message to central.test goes where HOST's Postfix is.
in_force() {
	send central.test
	case $1 in
	B) sent_to B "$RCPT" A C ;;
	C) sent_to C "$RCPT" A B ;;
	esac
}
m() { pol_metric mxtls_policy_fetches_total 'source="central"' "outcome=\"$1\""; }
logged() { grep_since "$MXTLS_LOG" "$MARK" "$@"; }
not_logged() { no_grep_since "$MXTLS_LOG" "$MARK" "$@"; }
COPY_IS=$W/copy-expected
copy_is() { # the last good copy in state_dir is $COPY_IS byte for byte
	cmp "$RT_STATE_DIR/central-policy" "$COPY_IS" && return 0
	echo "state_dir/central-policy differs from the document last taken:"
	sed 's/^/  | /' "$RT_STATE_DIR/central-policy" 2>/dev/null | head -n 20
	return 1
}

# ---------------------------------------------------------------- 1: first fetch

doc 1 mx2.example.test | publish
cp "$WWW/policy.ini" "$COPY_IS"
rt_config policy="url = $URL" policy='refresh = 1' policy="https_ca_bundle = $CA" \
	policy='max_stale = 4' <<EOF
[match local.test]
profile = opportunistic
EOF
rt_mxtls_start 0 || finish
MXTLS_PID1=$MXTLS_PID
MARK=0
check "first fetch: document taken (event=central-policy how=fetched serial=1)" \
	logged "event=central-policy url=$URL how=fetched serial=1( |$)" 10
check "the document's [match central.test] applies: nexthop mx2, delivered by B" in_force B
check "... over TLS (profile central-mandatory)" mxtls_delivery_since 0 'outcome=tls' \
	'rcpt_domain=central.test' 'profile=central-mandatory'
send local.test
check "local [match local.test] wins over the document's: MX mx1, delivered by A" \
	sent_to A "$RCPT" B C
check "metrics: central fetch outcome=ok counted" pol_metric_ge mxtls_policy_fetches_total 1 \
	'source="central"' 'outcome="ok"'
check "last good copy in state_dir/central-policy, serial in .meta" pol_all copy_is \
	"grep -qx 'serial 1' $RT_STATE_DIR/central-policy.meta"

# ---------------------------------------------------------------- 2: 304

MARK=$(mxtls_mark)
H304=$(pol_hits " /policy.ini 304 ")
wait_304() {
	_t=$(it_until 5)
	while [ "$(pol_hits ' /policy.ini 304 inm=[^-]')" -le "$H304" ]; do
		[ "$(date +%s)" -ge "$_t" ] && { pol_hits_are " /policy.ini 304 " "$((H304 + 1))"; return 1; }
		sleep 0.1
	done
}
check "refresh 1 s: conditional request (If-None-Match), nginx answers 304" wait_304
check "metrics: outcome=not-modified counted" pol_metric_ge mxtls_policy_fetches_total 1 \
	'source="central"' 'outcome="not-modified"'
check "304 keeps the document: not re-applied, still in force" pol_all \
	"not_logged 'event=central-policy url=[^ ]* how=fetched'" "in_force B"
# Visibility: every fetch logs url, status, bytes, duration and
# outcome (updated, not-modified, refused: why, kept-last-good).
fetch_logged() { # STATUS OUTCOME_ERE: some line of the whole log has them all
	_l=$(grep -F "url=$URL" "$MXTLS_LOG" | grep -E "status=$1( |$)" |
		grep -E 'bytes=[0-9]+' | grep -E 'duration(_ms)?=[0-9]+' | grep -E "$2")
	[ -n "$_l" ] && return 0
	echo "no log line for a fetch of $URL with status=$1, bytes=, duration and outcome /$2/;"
	echo "the lines naming the url:"
	grep -F "url=$URL" "$MXTLS_LOG" | head -n 4 | cut -c 1-300 | sed 's/^/  | /'
	return 1
}
check "every fetch logged with url, status, bytes, duration, outcome (the 200, the 304s)" \
	pol_all "fetch_logged 200 updated" "fetch_logged 304 not-modified"

# ---------------------------------------------------------------- 3: a change

# The mark first: the next refresh may come before the line after publish.
MARK=$(mxtls_mark)
doc 2 mx3.example.test | publish
cp "$WWW/policy.ini" "$COPY_IS"
check "changed document picked up without a restart (serial=2)" \
	logged "event=central-policy url=$URL how=fetched serial=2( |$)" 6
check "... by the next refresh, 1 s after the fetch before it (mxtls's log)" deadline_within 1 \
	"$(mxtls_interval '' ' event=central-policy-fetch ' " event=central-policy url=.* how=fetched serial=2( |\$)")" \
	"from the fetch before to serial 2"
check "... the same mxtls process" pol_all "test $MXTLS_PID -eq $MXTLS_PID1" "alive $MXTLS_PID"
check "the new [match central.test] applies: nexthop mx3, delivered by C" in_force C
send local.test
check "local [match local.test] still wins: delivered by A" sent_to A "$RCPT" B C
check "state_dir copy replaced by the new document, .meta serial 2" pol_all copy_is \
	"grep -qx 'serial 2' $RT_STATE_DIR/central-policy.meta"

# ---------------------------------------------------------------- 4: 404

F0=$(m failed)
MARK=$(mxtls_mark)
rm -f "$WWW/policy.ini"
check "404: central-policy-fetch-failed logged with the status" \
	logged 'event=central-policy-fetch-failed .*status=404' 5
check "metrics: outcome=failed counted" pol_metric_gt mxtls_policy_fetches_total "$F0" \
	'source="central"' 'outcome="failed"'
check "404: the last good document stays in force (C), state_dir copy kept" pol_all \
	"in_force C" copy_is "not_logged 'event=central-policy url=[^ ]* how=fetched'"

# ---------------------------------------------------------------- 5: garbage

I0=$(m invalid)
MARK=$(mxtls_mark)
head -c 3000 /dev/urandom | publish
check "garbage document: central-policy-refused logged" \
	logged 'level=error .*event=central-policy-refused ' 5
check "metrics: outcome=invalid counted" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
check "garbage: the last good document stays in force (C), state_dir copy kept" pol_all \
	"in_force C" copy_is

# ---------------------------------------------------------------- 6: an error

I0=$(m invalid)
MARK=$(mxtls_mark)
{
	doc 3 mx2.example.test
	printf '\n[match broken.test]\nprofile = no-such-profile\n'
} | publish
check "document with an unknown profile: refused whole, the reason logged" \
	logged 'event=central-policy-refused .*no-such-profile' 5
check "metrics: outcome=invalid counted" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
check "its valid parts were not applied: central.test still goes to C" pol_all \
	"in_force C" copy_is "not_logged 'serial=3'"

# ---------------------------------------------------------------- 7: rollback

I0=$(m invalid)
MARK=$(mxtls_mark)
doc 1 mx2.example.test | publish
check "lower serial (1 < 2): refused as a rollback" \
	logged 'event=central-policy-refused .*rollback.*serial=1 in_force=2' 5
check "metrics: outcome=invalid counted" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
check "rollback refused: serial 2 still in force (C), copy kept" pol_all "in_force C" copy_is

# ---------------------------------------------------------------- 8: server down, stale

F0=$(m failed)
MARK=$(mxtls_mark)
pol_nginx_stop
# Served once the server is back (published after it stopped: a fetch in
# between would take it now).
doc 3 mx2.example.test | publish
check "server down: central-policy-fetch-failed logged" \
	logged 'event=central-policy-fetch-failed .*url=' 5
check "metrics: outcome=failed counted" pol_metric_gt mxtls_policy_fetches_total "$F0" \
	'source="central"' 'outcome="failed"'
check "max_stale 4 s: central-policy-stale warning with the age" \
	logged "level=warn .*event=central-policy-stale url=$URL age=([4-9]|[1-9][0-9]+)( |$)" 10
check "mxtls_policy_age_seconds{source=\"central\"} >= 4 on /metrics" \
	pol_metric_ge mxtls_policy_age_seconds 4 'source="central"'
check "stale is no reason to stop the mail: the last good document applies (C)" in_force C

# ---------------------------------------------------------------- 9: restart, server down

rt_mxtls_restart 0
MARK=0
check "restart with the server down: the copy in state_dir taken (how=last-good-copy serial=2)" \
	logged "event=central-policy url=$URL how=last-good-copy serial=2( |$)" 5
check "... and the fetch failure logged" logged 'event=central-policy-fetch-failed ' 5
check "after the restart the last good document routes the mail (C)" in_force C
send local.test
check "... and local [match local.test] still wins (A)" sent_to A "$RCPT" B C

# ---------------------------------------------------------------- 10: back up

MARK=$(mxtls_mark)
pol_nginx_restart || fail "nginx restarts"
cp "$WWW/policy.ini" "$COPY_IS"
check "server back: serial 3 fetched and taken" \
	logged "event=central-policy url=$URL how=fetched serial=3( |$)" 6
check "serial 3 applies (nexthop mx2, B); the copy replaced" pol_all "in_force B" copy_is

# ---------------------------------------------------------------- 11: signatures

"$MXTLS" keygen -o "$W/keys/good" >"$W/keys/good.out" 2>&1
"$MXTLS" keygen -o "$W/keys/other" >"$W/keys/other.out" 2>&1
PUB=$(sed -n 's/^public-key = //p' "$W/keys/good.out")
check "mxtls keygen prints public-key = BASE64 (44 characters), key file 0600" pol_all \
	"test \${#PUB} -eq 44" "test \"\$(stat -c %a $W/keys/good)\" = 600"
sign() { # KEY: sign $WWW/policy.ini with $W/keys/KEY, into policy.ini.sig
	"$MXTLS" sign-policy -k "$W/keys/$1" "$WWW/policy.ini" >"$W/keys/sign.out" 2>&1 &&
		chmod 644 "$WWW/policy.ini.sig"
}

mxtls_stop
doc 4 mx3.example.test | publish
check "mxtls sign-policy -k KEY DOC writes DOC.sig" pol_all "sign good" \
	"test -s $WWW/policy.ini.sig"
cp "$WWW/policy.ini" "$COPY_IS"
rt_config policy="url = $URL" policy='refresh = 1' policy="https_ca_bundle = $CA" \
	policy='max_stale = 4' policy="signing_key = $PUB" <<EOF
[match local.test]
profile = opportunistic
EOF
rt_mxtls_start 0 || finish
MARK=0
check "signing_key: a correctly signed document is taken (serial=4)" \
	logged "event=central-policy url=$URL how=fetched serial=4( |$)" 8
check "... the signature was fetched from url.sig" pol_all \
	"test \$(pol_hits ' /policy.ini.sig 200 ') -ge 1"
check "signed serial 4 applies (C)" pol_all "in_force C" copy_is

I0=$(m invalid)
MARK=$(mxtls_mark)
doc 5 mx2.example.test | publish
rm -f "$WWW/policy.ini.sig"
check "missing .sig (404): document refused" \
	logged 'event=central-policy-refused .*signature' 5
check "metrics: outcome=invalid counted" pol_metric_gt mxtls_policy_fetches_total "$I0" \
	'source="central"' 'outcome="invalid"'
check "unsigned serial 5 not applied: C, copy kept" pol_all "in_force C" copy_is \
	"not_logged 'serial=5'"

MARK=$(mxtls_mark)
sign other
check "signature by another key: refused (bad signature)" \
	logged 'event=central-policy-refused .*bad signature' 5
check "wrongly signed serial 5 not applied: C, copy kept" pol_all "in_force C" copy_is \
	"not_logged 'serial=5'"

MARK=$(mxtls_mark)
printf 'not a signature\n' >"$WWW/policy.ini.sig"
check "a .sig that is not base64 of 64 bytes: refused" \
	logged 'event=central-policy-refused .*signature' 5

MARK=$(mxtls_mark)
sign good
cp "$WWW/policy.ini" "$COPY_IS"
check "the same document signed with the right key: taken (serial=5)" \
	logged "event=central-policy url=$URL how=fetched serial=5( |$)" 6
check "signed serial 5 applies (B)" pol_all "in_force B" copy_is
send local.test
check "local [match local.test] wins under signed documents too (A)" sent_to A "$RCPT" B C

note "run time $(($(date +%s) - T_START)) s"
finish
