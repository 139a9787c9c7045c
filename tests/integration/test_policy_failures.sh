#!/bin/sh
# The central policy document when its server fails, end to end (the
# cases test_policy_central.sh does not have), and mxtls-fetch killed
# under a running mxtls.
#
# One mxtls runs throughout (refresh 1 s).  Its [policy] url names
# policy.central.test, and mxtls resolves that name at every refresh
# (libunbound, dnsmasq); the test moves the name from one server to another
# (dnsmasq's addn-hosts, reread on SIGHUP), all on the same port:
#
#	.181 good      nginx, the document of the moment (text/plain)
#	.182 e500      nginx, 500
#	.183 redirect  nginx, 302 to /moved.ini on the same server (a valid
#	               newer document: taken only if the redirect were followed)
#	.184 big       nginx, a valid document of 4 MiB + 1 byte (Content-Length)
#	.185 chunked   python3, the same body chunked (no length known)
#	.186 expired   nginx, certificate for policy.central.test, expired
#	.187 wrongname nginx, the test PKI's certificate for wrong.example.net
#	.188 untrusted nginx, certificate for policy.central.test by a CA
#	               that is not in https_ca_bundle
#	.189 htmlpage  nginx, 200 with an HTML page (text/html)
#	.190 htmldoc   nginx, a valid newer document served as text/html
#	.191 atcap     nginx, a valid newer document of exactly 4 MiB
#	.192 silent    python3, accepts TCP and never answers (no TLS)
#
# Where a bad server serves a document at all (or redirects to one), it
# is valid, has a higher serial and sends central.test elsewhere, so "the
# previous policy is still in force" is seen in a message's routing.  The
# document served as text/html is taken (mxtls does not check the type of
# the central document today: checked as such, see the comment there),
# and so is the one of exactly 4 MiB.
#
#	central.test  MX mx1.example.test (127.0.0.172, Postfix "A");
#	              the documents send it to nexthop mx2 (.173, "B") or
#	              mx3 (.174, "C")
#
# Then the mxtls-fetch child is killed (SIGKILL, by its PID, found with
# `ps --ppid MXTLS_PID`) with a fetch in flight, and twice more: it is
# restarted with a doubling back-off (1 s, 2 s, 4 s), a message sent
# while none runs is delivered, and the refresh after each restart picks
# up a changed document.
#
# Needs: nginx, dnsmasq, Postfix, openssl, curl, python3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
. "$(dirname "$0")/lib_policy2.sh"
IT_TIMEOUT=${IT_TIMEOUT:-90}
it_setup
T_START=$(date +%s)

HOST=policy.central.test
PORT=$(free_port)
URL=https://$HOST:$PORT/policy.ini
CA=$PKI/test-root-ca.pem
CAP=4194304 # the document cap: policy/document.h DOCUMENT_MAX, the fetch's max_bytes

GOOD=127.0.0.181
E500=127.0.0.182
REDIR=127.0.0.183
BIG=127.0.0.184
CHUNKED=127.0.0.185
EXPIRED=127.0.0.186
WRONGNAME=127.0.0.187
UNTRUSTED=127.0.0.188
HTMLPAGE=127.0.0.189
HTMLDOC=127.0.0.190
ATCAP=127.0.0.191
SILENT=127.0.0.192

for d in good redir big bad htmldoc atcap; do mkdir -p "$W/www-$d"; done
chmod -R 755 "$W"/www-*

# ---------------------------------------------------------------- documents

# doc SERIAL HOST: a valid document sending central.test to HOST.
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
EOF
}
# padded SIZE: stdin, then comment lines up to exactly SIZE bytes.
padded() {
	python3 -c '
import sys
size = int(sys.argv[1])
d = sys.stdin.buffer.read()
line = b"# padding " + b"p" * 69 + b"\n"
d += line * ((size - 2 - len(d)) // len(line))
d += b"#" * (size - len(d) - 1) + b"\n"
assert len(d) == size
sys.stdout.buffer.write(d)' "$1"
}
# put FILE: stdin becomes FILE, atomically, readable by nginx, with a
# modification time of its own (nginx's ETag is mtime-size).
echo $(($(date +%s) - 10000)) >"$W/t_pub"
put() {
	cat >"$1.tmp"
	chmod 644 "$1.tmp"
	_tp=$(($(cat "$W/t_pub") + 1))
	echo $_tp >"$W/t_pub"
	touch -d "@$_tp" "$1.tmp"
	mv "$1.tmp" "$1"
}

doc 10 mx2.example.test | put "$W/www-good/policy.ini"
doc 21 mx3.example.test | put "$W/www-redir/moved.ini"
doc 22 mx3.example.test | padded $((CAP + 1)) | put "$W/www-big/policy.ini"
doc 23 mx3.example.test | put "$W/www-bad/policy.ini"
doc 30 mx3.example.test | put "$W/www-htmldoc/policy.ini"
doc 40 mx2.example.test | padded $CAP | put "$W/www-atcap/policy.ini"

# ---------------------------------------------------------------- servers

pol_leaf policy $HOST || { fail "policy server certificate"; finish; }
pol2_leaf_dated expired inter 20240101000000Z 20250101000000Z $HOST ||
	{ fail "expired certificate for $HOST"; finish; }
pol2_leaf_dated untrusted other "$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)" \
	"$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)" $HOST ||
	{ fail "certificate for $HOST by an untrusted CA"; finish; }

# srv ADDR CERT KEY BODY...: one nginx server block on ADDR:PORT.
# keepalive_timeout 0: every fetch opens a new connection.  mxtls-fetch
# keeps connections alive and reuses one for the same host and port even
# after mxtls hands it other addresses, so with keep-alive a fetch after
# pol2_point would still reach the previous server (a finding of its own:
# a move of the policy host is not followed while a connection lives).
srv() {
	cat <<EOF
	server {
		listen $1:$PORT ssl;
		server_name $HOST;
		ssl_certificate $2;
		ssl_certificate_key $3;
		keepalive_timeout 0;
		types { text/plain ini; }
EOF
	shift 3
	printf '\t\t%s\n' "$@"
	echo "	}"
}
PC=$W/certs/policy.chain.pem
PK=$W/certs/policy.key
{
	srv $GOOD "$PC" "$PK" "root $W/www-good;"
	srv $E500 "$PC" "$PK" "location / { return 500; }"
	srv $REDIR "$PC" "$PK" "root $W/www-redir;" \
		"location = /policy.ini { return 302 https://$HOST:$PORT/moved.ini; }"
	srv $BIG "$PC" "$PK" "root $W/www-big;"
	srv $EXPIRED "$W/certs/expired.chain.pem" "$W/certs/expired.key" "root $W/www-bad;"
	srv $WRONGNAME "$PKI/wrongname.chain.pem" "$PKI/wrongname.key" "root $W/www-bad;"
	srv $UNTRUSTED "$W/certs/untrusted.chain.pem" "$W/certs/untrusted.key" "root $W/www-bad;"
	srv $HTMLPAGE "$PC" "$PK" "location / { default_type text/html;" \
		"return 200 '<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in to continue.</body></html>'; }"
	srv $HTMLDOC "$PC" "$PK" "root $W/www-htmldoc;" \
	    "location = /policy.ini { types { } default_type text/html; }"
	srv $ATCAP "$PC" "$PK" "root $W/www-atcap;"
} >"$W/servers.conf"
pol_nginx_start $GOOD:$PORT $E500:$PORT $REDIR:$PORT $BIG:$PORT $EXPIRED:$PORT \
	$WRONGNAME:$PORT $UNTRUSTED:$PORT $HTMLPAGE:$PORT $HTMLDOC:$PORT $ATCAP:$PORT \
	<"$W/servers.conf" || { fail "nginx starts"; finish; }
pol2_server --silent $SILENT:$PORT \
	--chunked $CHUNKED:$PORT "$W/certs/policy.chain.pem" "$W/certs/policy.key" \
	"$W/www-big/policy.ini" || { fail "python3 server starts"; finish; }

pol2_hosts_init $HOST $GOOD
{
	echo "host-record=mx1.example.test,127.0.0.172"
	echo "host-record=mx2.example.test,127.0.0.173"
	echo "host-record=mx3.example.test,127.0.0.174"
	echo "mx-host=central.test,mx1.example.test,10"
	pol2_hosts_line
} >"$W/dns.in"
pol_dns_up <"$W/dns.in" || { fail "dnsmasq starts"; finish; }

pf_mx A 127.0.0.172:25 hostname=mx1.example.test || { fail "Postfix A starts"; finish; }
pf_mx B 127.0.0.173:25 hostname=mx2.example.test || { fail "Postfix B starts"; finish; }
pf_mx C 127.0.0.174:25 hostname=mx3.example.test || { fail "Postfix C starts"; finish; }

# ---------------------------------------------------------------- helpers

# send: a message to a new recipient at central.test; sets RCPT and OUT.
send() { pol_send_new central.test; }
# in_force B|C: a message to central.test is accepted through mxtls and
# delivered where that Postfix is, and by no other.
in_force() {
	send
	reply_is "$OUT" DOT '250 ' || return 1
	case $1 in
	B) pol_delivered_to B "$RCPT" A C ;;
	C) pol_delivered_to C "$RCPT" A B ;;
	esac
}
logged() { grep_since "$MXTLS_LOG" "$MARK" "$@"; }
not_logged() { no_grep_since "$MXTLS_LOG" "$MARK" "$@"; }
COPY_IS=$W/copy-expected
copy_is() { # the last good copy in state_dir is $COPY_IS byte for byte
	cmp -s "$RT_STATE_DIR/central-policy" "$COPY_IS" && return 0
	echo "state_dir/central-policy differs from the document last taken:"
	head -c 600 "$RT_STATE_DIR/central-policy" 2>/dev/null | sed 's/^/  | /'
	return 1
}
# taken SERIAL [SECONDS]: that serial fetched and taken after MARK.
taken() { logged "event=central-policy url=$URL how=fetched serial=$1( |$)" "${2:-5}"; }
# fetch_line RESULT STATUS OUTCOME [ERE]: after MARK, the one-line record
# of a document fetch with these values (and ERE), bytes and duration.
fetch_line() {
	logged "event=central-policy-fetch url=$URL what=document result=$1 status=$2 bytes=[0-9]+ duration_ms=[0-9]+ outcome=$3( |\$)${4:+.*$4}" 5
}
# failed RESULT STATUS ERROR_ERE [SECONDS]: after MARK (within SECONDS,
# default 5), the fetch failed with RESULT and STATUS and the reason
# matching ERROR_ERE is logged twice: a central-policy-fetch-failed
# warning and the fetch record with outcome kept-last-good.
failed() {
	logged "level=warn .*event=central-policy-fetch-failed url=$URL result=$1 status=$2 error=\"[^\"]*$3" "${4:-5}" &&
		fetch_line "$1" "$2" kept-last-good "error=\"[^\"]*$3"
}
# still B|C: the previous policy is still in force: nothing taken since
# MARK, the copy in state_dir unchanged, a message routed by it.
still() {
	not_logged "event=central-policy url=[^ ]* how=fetched" || return 1
	copy_is || return 1
	in_force "$1"
}
m() { pol_metric mxtls_policy_fetches_total 'source="central"' "outcome=\"$1\""; }

# case_refused NAME ADDR RESULT STATUS ERROR_ERE: point the name at ADDR,
# then the two checks of a refused fetch.
case_refused() {
	MARK=$(mxtls_mark)
	_pp=$(pol2_point $HOST "$2") || { fail "$1: $HOST moved to $2" "$_pp"; return; }
	check "$1: refused (result=$3 status=$4), the reason logged, outcome=kept-last-good" \
		failed "$3" "$4" "$5"
	check "$1: the previous policy still in force (serial 10: B), copy kept" still B
}

# ---------------------------------------------------------------- start

doc 10 mx2.example.test >"$COPY_IS"
rt_config policy="url = $URL" policy='refresh = 1' policy="https_ca_bundle = $CA" </dev/null
rt_mxtls_start 0 || finish
MXTLS_PID1=$MXTLS_PID
MARK=0
check "first fetch from the good server: serial 10 taken" taken 10 10
check "serial 10 in force: central.test goes to nexthop mx2 (B)" in_force B
F0=$(m failed)
I0=$(m invalid)

# ---------------------------------------------------------------- HTTP-level failures

case_refused "500" $E500 http-status 500 'HTTP status 500'

MARK=$(mxtls_mark)
pol2_point $HOST $REDIR || fail "redirect: $HOST moved to $REDIR"
check "302 redirect: refused (result=redirect-refused status=302), Location named, outcome=kept-last-good" \
	failed redirect-refused 302 "moved\.ini"
check "302 redirect: not followed (nginx never served /moved.ini)" pol_hits_are ' /moved.ini ' 0
check "302 redirect: the previous policy still in force (B), copy kept" still B

case_refused "body over the cap (4 MiB + 1, Content-Length)" $BIG too-large 200 \
	"body larger than $CAP bytes"
case_refused "body over the cap (4 MiB + 1, chunked)" $CHUNKED too-large 200 \
	"body larger than $CAP bytes"
check "... the chunked server was reached" test "$(pol2_accepted $CHUNKED:$PORT)" -ge 1

# ---------------------------------------------------------------- certificates

# The reasons are GnuTLS's (libcurl-gnutls), as mxtls-fetch passes them on.
case_refused "expired certificate for $HOST" $EXPIRED tls-error 0 'verification failed: expired'
case_refused "certificate for another name (wrong.example.net)" $WRONGNAME tls-error 0 \
	"does not match target host name '$HOST'"
case_refused "certificate by a CA not in https_ca_bundle" $UNTRUSTED tls-error 0 \
	'verification failed: issuer not trusted'

# ---------------------------------------------------------------- garbage with a 200

MARK=$(mxtls_mark)
pol2_point $HOST $HTMLPAGE || fail "HTML page: $HOST moved to $HTMLPAGE"
check "200 text/html with an HTML page: refused by the parser, the errors logged" pol_all \
	"logged 'level=error .*event=central-policy-refused url=$URL how=fetched errors=\".*expected' 5" \
	"fetch_line ok 200 refused"
check "HTML page: the previous policy still in force (B), copy kept" still B

# A wrong Content-Type is refused.  mxtls takes text/plain,
# application/octet-stream (what nginx sends for .ini) or none; a valid,
# newer document served as text/html is refused all the same.
MARK=$(mxtls_mark)
pol2_point $HOST $HTMLDOC || fail "text/html: $HOST moved to $HTMLDOC"
check "wrong Content-Type (a valid document as text/html): refused, the reason logged" pol_all \
	"logged 'level=error .*event=central-policy-refused url=$URL reason=\"Content-Type is not text/plain\" content_type=text/html' 5" \
	"fetch_line ok 200 refused"
check "... the previous policy still in force (B), copy kept" still B

MARK=$(mxtls_mark)
pol2_point $HOST $ATCAP || fail "at the cap: $HOST moved to $ATCAP"
cp "$W/www-atcap/policy.ini" "$COPY_IS"
check "a document of exactly 4 MiB (the cap): taken, serial 40" pol_all "taken 40 8" \
	"logged 'event=central-policy-fetch url=[^ ]* what=document result=ok status=200 bytes=$CAP duration_ms=[0-9]+ outcome=updated' 1"
check "... serial 40 routes central.test to mx2 (B), copy in state_dir" pol_all "in_force B" copy_is

# ---------------------------------------------------------------- a server that never answers

# mxtls asks for a 10 s connect timeout (it covers the TLS handshake) and
# a 60 s total, neither configurable: a server that completes TLS and
# then says nothing would hold the refresh for 60 s, too long for this
# test (see the report).  This server accepts TCP and never answers the
# ClientHello, which ends at the connect timeout.
MARK=$(mxtls_mark)
A0=$(pol2_accepted $SILENT:$PORT)
pol2_point $HOST $SILENT || fail "silent: $HOST moved to $SILENT"
T_HANG=$(date +%s)
in_flight() { # a fetch to the silent server has started
	_t=$(($(date +%s) + 30))
	while [ "$(pol2_accepted $SILENT:$PORT)" -le "$1" ]; do
		[ "$(date +%s)" -ge "$_t" ] && { echo "the silent server accepted no connection"; return 1; }
		sleep 0.05
	done
}
check "silent server: a fetch is in flight (the server accepted a connection)" in_flight "$A0"
check "while that fetch hangs, mail flows: message delivered by the policy in force (B)" \
	pol_all "in_force B" "not_logged 'event=central-policy-fetch url=[^ ]* what=document result=timeout'"
check "silent server: the fetch times out (result=timeout), the reason logged, outcome=kept-last-good" \
	failed timeout 0 'timeout' 14
check "... after the 10 s connect timeout (duration_ms 9000..12000)" pol_all \
	"logged 'event=central-policy-fetch url=[^ ]* what=document result=timeout status=0 bytes=0 duration_ms=(9[0-9]{3}|1[01][0-9]{3}) ' 1"
note "silent server: the timeout came $(($(date +%s) - T_HANG)) s after the name was moved"
check "silent server: the previous policy still in force (B), copy kept" still B

# ---------------------------------------------------------------- the fetcher killed

exited() { # PID RESTART_IN: mxtls logged the death of PID and the delay
	logged "level=warn .*event=fetcher-exited pid=$1 signal=9 restart_in=$2( |\$)" 5
}
# gap_ms PID SECONDS: the new fetcher started at least SECONDS after the
# death of PID was logged (the back-off is kept, give or take 100 ms).
gap_ms() {
	_e=$(grep -E "event=fetcher-exited pid=$1 " "$MXTLS_LOG" | head -n 1)
	_s=$(log_since "$MXTLS_LOG" "$(grep -bE "event=fetcher-exited pid=$1 " "$MXTLS_LOG" | head -n 1 | cut -d: -f1)" |
		grep -E 'event=fetcher-started ' | head -n 1)
	_a=$(pol2_ts_ms "$_e") && _b=$(pol2_ts_ms "$_s") || { echo "no exited/started pair for $1: $_e / $_s"; return 1; }
	[ $((_b - _a)) -ge $(($2 * 1000 - 100)) ] && return 0
	echo "restarted $((_b - _a)) ms after the death, back-off was $2 s"
	return 1
}

# 1: killed while a fetch (to the silent server) is in flight: the
# server accepted more connections than there are timed-out fetches.
F1=$(pol2_fetcher)
check "the running mxtls has an mxtls-fetch child (ps --ppid $MXTLS_PID)" test -n "$F1"
check "another fetch to the silent server is in flight" \
	in_flight "$(grep -cE 'event=central-policy-fetch url=[^ ]* what=document result=timeout ' "$MXTLS_LOG")"
MARK=$(mxtls_mark)
check "kill -9 the fetcher ($F1) with a fetch in flight" pol2_kill_fetcher "${F1:-0}"
doc 50 mx3.example.test | put "$W/www-good/policy.ini"
cp "$W/www-good/policy.ini" "$COPY_IS"
pol2_point $HOST $GOOD || fail "good: $HOST moved back to $GOOD"
check "mxtls logs the death (fetcher-exited pid=$F1 signal=9 restart_in=1s)" exited "$F1" 1s
check "the fetch in flight fails at once with the reason (fetcher died), not at its timeout" pol_all \
	"logged 'event=central-policy-fetch-failed url=$URL result=internal status=0 error=\"fetcher died\"' 2" \
	"fetch_line internal 0 kept-last-good 'fetcher died'"
# mxtls may notice the closed pipe (the failed fetch) or the exit status
# first: either line can come first, the two must be close.
gap=$(mxtls_interval '' " event=fetcher-exited pid=${F1:-0} " ' event=central-policy-fetch-failed .*fetcher died')
[ -n "$gap" ] || gap=$(mxtls_interval '' ' event=central-policy-fetch-failed .*fetcher died' " event=fetcher-exited pid=${F1:-0} ")
check "... when its death was noticed (mxtls's log: between fetcher-exited and the failure)" at_once \
	"$gap" "between the fetcher's death and the failed fetch"
F2=$(pol2_wait_fetcher "$F1" 5)
check "restarted: a new mxtls-fetch child ($F2), logged as fetcher-started" pol_all "test -n '$F2'" \
	"logged 'event=fetcher-started pid=$F2 ' 1" "gap_ms $F1 1"
check "the next refresh works: a changed document (serial 50) picked up" taken 50 5
check "serial 50 routes central.test to mx3 (C), copy in state_dir" pol_all "in_force C" copy_is

# 2 and 3: killed again at once: the back-off doubles (2 s, then 4 s).
MARK=$(mxtls_mark)
check "kill -9 the new fetcher ($F2)" pol2_kill_fetcher "${F2:-0}"
check "mxtls logs it: restart_in=2s (back-off doubled)" exited "${F2:-0}" 2s
F3=$(pol2_wait_fetcher "$F2" 5)
check "... restarted ($F3) no sooner than 2 s later" pol_all "test -n '$F3'" "gap_ms ${F2:-0} 2"
MARK=$(mxtls_mark)
check "kill -9 the third fetcher ($F3)" pol2_kill_fetcher "${F3:-0}"
check "mxtls logs it: restart_in=4s" exited "${F3:-0}" 4s
# The outage: no fetcher for 4 s.  A changed document is published, a
# refresh fails for want of a fetcher, and a message goes through.
doc 51 mx2.example.test | put "$W/www-good/policy.ini"
none() { # no mxtls-fetch child right now
	_f=$(pol2_fetcher)
	[ -z "$_f" ] && return 0
	echo "mxtls has an mxtls-fetch child ($_f)"
	return 1
}
check "outage: mxtls has no mxtls-fetch child" none
send
check "outage: a message sent now is accepted (250 to the final dot)" reply_is "$OUT" DOT '250 '
check "outage: ... and still no fetcher after the message went through (it was sent during the outage)" none
check "outage: delivered by the policy in force (serial 50: C)" pol_delivered_to C "$RCPT" A B
check "outage: a refresh without a fetcher is logged as failed, kept-last-good" \
	fetch_line internal 0 kept-last-good 'fetcher not running'
check "outage: mxtls itself still runs, the same process" pol_all "alive $MXTLS_PID" \
	"test $MXTLS_PID -eq $MXTLS_PID1"
cp "$W/www-good/policy.ini" "$COPY_IS"
F4=$(pol2_wait_fetcher "$F3" 8)
check "restarted after the outage ($F4), no sooner than 4 s" pol_all "test -n '$F4'" "gap_ms ${F3:-0} 4"
check "the next refresh works: the document changed during the outage (serial 51) picked up" taken 51 5
check "serial 51 routes central.test to mx2 (B), copy in state_dir" pol_all "in_force B" copy_is

# ---------------------------------------------------------------- counts

check "metrics: every failed fetch counted (outcome=failed grew by at least 10)" \
	pol_metric_ge mxtls_policy_fetches_total $((F0 + 10)) 'source="central"' 'outcome="failed"'
check "metrics: the refused HTML page counted (outcome=invalid)" \
	pol_metric_gt mxtls_policy_fetches_total "$I0" 'source="central"' 'outcome="invalid"'

note "run time $(($(date +%s) - T_START)) s"
finish
