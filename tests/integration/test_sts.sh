#!/bin/sh
# The MTA-STS policy cache (proxy/sts.c) against real servers on loopback:
# dnsmasq serves the _mta-sts TXT records and the mta-sts.DOMAIN addresses,
# a private nginx on 127.0.0.71:443 serves the policies (a certificate for
# the mta-sts.*.test names from the test PKI's intermediate, so the bundle
# is the test root), and a small python3 HTTPS server on 127.0.0.72:443
# answers only after 3 s.  The fetch URL has no port, hence port 443 on
# addresses of our own (this runs as root).
#
# tests/integration/sts_probe.c runs sts.c with dns.c, fetcher.c and the
# real mxtls-fetch, and prints one line per answer:
#   DOMAIN source=... mode=... mx=... error=... ms=...
# Each probe run is a fresh process: a restart reads the cache from disk
# (the journal state_dir/mta-sts/journal; "disk:DOMAIN" prints a record).
# Fetches are counted in nginx's access log; TXT queries in dnsmasq's log.
#
# Needs: dnsmasq, nginx, openssl, python3, cc, libev, libunbound, libcurl.
# Environment: MXTLS_FETCH=PATH uses that mxtls-fetch instead of
# build/asan/mxtls-fetch (or one built here).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_policy.sh"
it_setup

NG_ADDR=127.0.0.71
SLOW_ADDR=127.0.0.72
NG=$W/nginx
WWW=$W/www
CACHE=$W/state/mta-sts
CERTS=$W/certs
mkdir -p "$W/state" # sts_new makes mta-sts/ in it, as mxtls does in state_dir
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS_T="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -g -O1 -Iproxy -Ipolicy -isystem /usr/include/android"

# ---------------------------------------------------------------- build

PROBE=$W/sts_probe
# shellcheck disable=SC2086
cc $CFLAGS_T $SAN_FLAGS -o "$PROBE" tests/integration/sts_probe.c proxy/sts.c \
	proxy/dns.c proxy/fetcher.c proxy/file.c proxy/journal.c proxy/log.c proxy/metrics.c \
	proxy/clock.c policy/stsdecide.c policy/mtasts.c policy/policy.c policy/fetchproto.c policy/dnssec.c policy/dane.c \
	-Wl,--no-as-needed -levent -lunbound -lev -lidn2 -lm >"$W/build.out" 2>&1 ||
	{ fail "build sts_probe" "$(cat "$W/build.out")"; finish; }
FETCH=${MXTLS_FETCH:-}
if [ -z "$FETCH" ]; then
	FETCH=$IT_ROOT/build/asan/mxtls-fetch
	if [ ! -x "$FETCH" ]; then
		FETCH=$W/mxtls-fetch
		# shellcheck disable=SC2086
		cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Ipolicy $SAN_FLAGS \
			-o "$FETCH" policy/fetch.c policy/fetchproto.c -lcurl >"$W/build.out" 2>&1 ||
			{ fail "build mxtls-fetch" "$(cat "$W/build.out")"; finish; }
	fi
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { fail "nginx installed" "apt-get install nginx"; finish; }
command -v dnsmasq >/dev/null 2>&1 || { fail "dnsmasq installed" "apt-get install dnsmasq"; finish; }
for a in "$NG_ADDR:443" "$SLOW_ADDR:443"; do
	if port_busy "$a"; then
		fail "$a is free" "$(ss -Hltnp | grep -F "$a")"
		finish
	fi
done

# ---------------------------------------------------------------- certificate

# A leaf for every mta-sts.X.test host, issued by the test PKI's
# intermediate (not written into the shared PKI directory): pol_leaf
# writes $CERTS/sts.key and $CERTS/sts.chain.pem.
names=""
for d in a b c d e f p t x z; do names="$names mta-sts.$d.test"; done
# shellcheck disable=SC2086
_o=$(pol_leaf sts $names) || { fail "policy server certificate" "$_o"; finish; }
CA=$PKI/test-root-ca.pem

# ---------------------------------------------------------------- policies

policy() { # DOMAIN TEXT (printf format, CRLF or LF as given)
	mkdir -p "$WWW/$1/.well-known"
	# shellcheck disable=SC2059
	printf "$2" >"$WWW/$1/.well-known/mta-sts.txt"
}
policy a 'version: STSv1\r\nmode: enforce\r\nmx: mx.a.test\r\nmax_age: 86400\r\n'
policy b 'version: STSv2\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n'
policy d 'version: STSv1\nmode: enforce\nmx: mx.d.test\nmax_age: 86400\n'
policy f 'version: STSv1\nmode: none\nmax_age: 86400\n'
policy g 'version: STSv1\nmode: enforce\nmx: mx.g.test\nmax_age: 86400\n'
policy p 'version: STSv1\nmode: enforce\nmx: mx1.p.test\nmx: mx2.p.test\nmax_age: 86400\n'
policy t 'version: STSv1\nmode: testing\nmx: *.t.test\nmax_age: 100\n'
policy z 'version: STSv1\nmode: enforce\nmx: mx.z.test\nmax_age: 0\n'
chmod -R a+rX "$WWW"

# ---------------------------------------------------------------- nginx

mkdir -p "$NG/tmp"
vhost() { # X CERT [directives]: the server for mta-sts.X.test
	cat <<EOF
	server {
		listen $NG_ADDR:443 ssl;
		server_name mta-sts.$1.test;
		ssl_certificate $2;
		ssl_certificate_key ${2%.chain.pem}.key;
		root $WWW/$1;
		${3:-}
	}
EOF
}
{
	nginx_conf_head sts '$host $request_uri $status'
	for x in a b f p t z; do vhost $x "$CERTS/sts.chain.pem"; done
	# 404, with a valid policy as the body (F-02: the body is ignored).
	vhost c "$CERTS/sts.chain.pem" 'location = /.well-known/mta-sts.txt { return 404 "version: STSv1\nmode: enforce\nmx: mx.c.test\nmax_age: 86400\n"; }'
	vhost d "$CERTS/sts.chain.pem" 'types { } default_type text/html;'
	# A certificate for another name (wrong.example.net).
	vhost g "$PKI/wrongname.chain.pem"
	echo "}"
} >"$NG/nginx.conf"
"$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/out" 2>&1 &
it_track nginx $! -
wait_for_port "$NG_ADDR:443" tcp 10 || { fail "nginx starts" "$(cat "$NG/out" "$NG/error.log")"; finish; }

# ---------------------------------------------------------------- slow server

cat >"$W/slow.py" <<'EOF'
# mta-sts.e.test: a valid policy, 3 s after the request.
import ssl, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

chain, key, addr, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
BODY = b"version: STSv1\nmode: enforce\nmx: mx.e.test\nmax_age: 86400\n"

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.headers.get("Host"), self.path))
        time.sleep(3)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        except OSError:
            pass

srv = ThreadingHTTPServer((addr, 443), H)
srv.daemon_threads = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
srv.serve_forever()
EOF
: >"$W/slow.log"
python3 "$W/slow.py" "$CERTS/sts.chain.pem" "$CERTS/sts.key" "$SLOW_ADDR" "$W/slow.log" >"$W/slow.out" 2>&1 &
it_track slow.py $! -
wait_for_port "$SLOW_ADDR:443" tcp 10 || { fail "python server starts" "$(cat "$W/slow.out")"; finish; }

# ---------------------------------------------------------------- DNS

DNS_PORT=$(free_port)
DNS_PID=""
# dns_up ID_OF_A: (re)start dnsmasq on the same port with _mta-sts.a.test
# "v=STSv1; id=ID_OF_A" ("-": no record for a.test).
dns_up() {
	[ -n "$DNS_PID" ] && kill_wait "$DNS_PID"
	{
		if [ "$1" != - ]; then
			echo "txt-record=_mta-sts.a.test,\"v=STSv1; id=$1\""
		fi
		for d in b c d f g p t z; do
			echo "txt-record=_mta-sts.$d.test,\"v=STSv1; id=1\""
		done
		echo "txt-record=_mta-sts.e.test,\"v=STSv1; id=1\""
		# Two records (F-01): no policy.
		echo "txt-record=_mta-sts.i.test,\"v=STSv1; id=1\""
		echo "txt-record=_mta-sts.i.test,\"v=STSv1; id=2\""
		for d in a b c d f g p t x z; do
			echo "host-record=mta-sts.$d.test,$NG_ADDR"
		done
		echo "host-record=mta-sts.e.test,$SLOW_ADDR"
	} >"$W/dnsmasq.conf"
	dnsmasq --conf-file="$W/dnsmasq.conf" --keep-in-foreground --pid-file= --user=root \
		--port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --no-negcache --local=/test/ \
		--log-queries --log-facility="$W/dnsmasq.log" \
		>"$W/dnsmasq.out" 2>&1 &
	DNS_PID=$!
	it_track dnsmasq $DNS_PID -
	wait_for_port "127.0.0.1:$DNS_PORT" udp 10 || {
		fail "dnsmasq starts" "$(cat "$W/dnsmasq.out")"
		finish
	}
}

# ---------------------------------------------------------------- helpers

# probe NAME STEP...: run the probe with the shared cache; $OUT is its
# transcript (then "exit=N"), $OUT.err its log.
probe() {
	OUT=$W/probe.$1.out
	shift
	"$PROBE" -d "127.0.0.1:$DNS_PORT" -x "$FETCH" -c "$CACHE" -a "$CA" \
		-w "${WAIT:-5}" -t 20 "$@" >"$OUT" 2>"$OUT.err"
	echo "exit=$?" >>"$OUT"
}
# clean OUT: the probe kept every promise and exited 0, no sanitizer report.
clean() {
	if grep -q '^FAIL' "$1" || ! grep -qx 'exit=0' "$1"; then
		echo "probe failed:"
		sed 's/^/  /' "$1"
		tail -n 20 "$1.err" | sed 's/^/  | /'
		return 1
	fi
	sanitizer_clean "$1.err"
}
# ans OUT N DOMAIN ERE: the Nth answer for DOMAIN matches ERE.
ans() {
	_l=$(grep -E "^$3 source=" "$1" | sed -n "$2p")
	printf '%s\n' "$_l" | grep -qE -- "$4" && return 0
	echo "answer $2 for $3: expected /$4/, got: ${_l:-(none)}"
	sed 's/^/  /' "$1"
	return 1
}
# hits HOST N: nginx served HOST's policy N times so far.
hits() {
	_n=$(grep -c "^$1 /.well-known/mta-sts.txt " "$NG/access.log" 2>/dev/null)
	[ "$_n" -eq "$2" ] && return 0
	echo "nginx served $1 $_n times, expected $2:"
	sed 's/^/  /' "$NG/access.log"
	return 1
}
# txtq NAME N: dnsmasq saw N TXT queries for NAME so far.
txtq() {
	_n=$(grep -c "query\[TXT\] $1 from" "$W/dnsmasq.log" 2>/dev/null)
	[ "$_n" -eq "$2" ] && return 0
	echo "dnsmasq saw $_n TXT queries for $1, expected $2"
	return 1
}
all() { for _c in "$@"; do eval "$_c" || return 1; done; }

# ---------------------------------------------------------------- cases

dns_up 1

probe 1 a.test a.test +61 a.test par:p.test,p.test,p.test,p.test n.test \
	f.test f.test cancel:x.test disk:a.test
check "probe 1: promises kept, clean exit" clean "$OUT"
check "enforce policy fetched" ans "$OUT" 1 a.test \
	'source=fetched mode=enforce mx=mx.a.test error=- '
check "same id at once: the cache, no refetch" all \
	"ans $OUT 2 a.test 'source=cache mode=enforce mx=mx.a.test '" "hits mta-sts.a.test 1"
check "61 s later: TXT checked again, same id, still no refetch" all \
	"ans $OUT 3 a.test 'source=cache mode=enforce '" "txtq _mta-sts.a.test 2" \
	"hits mta-sts.a.test 1"
check "4 lookups at once: one TXT query, one fetch, 4 answers" all \
	"ans $OUT 4 p.test 'source=fetched mode=enforce mx=mx1.p.test,mx2.p.test '" \
	"txtq _mta-sts.p.test 1" "hits mta-sts.p.test 1"
check "no TXT record: no policy" ans "$OUT" 1 n.test 'source=none mode=- mx=- error=- '
check "F-11 mode none: no policy, but remembered" all \
	"ans $OUT 1 f.test 'source=fetched-mode-none mode=- '" \
	"ans $OUT 2 f.test 'source=cache-mode-none mode=- '" "hits mta-sts.f.test 1"
check "cancelled lookup: no callback" all "grep -qx 'x.test cancelled' $OUT" \
	"! grep -q '^x.test source=' $OUT"
check "metrics: 3 fetches ok" grep -qx 'fetches ok=3 failed=0 invalid=0' "$OUT"
check "fetch logged with url, status, bytes, duration" grep -qE \
	'event=mta-sts .*domain=a.test .*result=fetched .*url=https://mta-sts.a.test/.well-known/mta-sts.txt .*status=200 bytes=[0-9]+ duration_ms=[0-9]+' \
	"$OUT.err"
check "cache journal: 0600 in a 0700 directory, documented format" all \
	"test \"\$(stat -c %a $CACHE)\" = 700" "test \"\$(stat -c %a $CACHE/journal)\" = 600" \
	"head -n 1 $CACHE/journal | grep -qx 'mxtls-journal 1 mta-sts'" \
	"grep -qE '^P a.test [0-9]+ [0-9a-f]{16}\$' $CACHE/journal" \
	"grep -qx 'mxtls-mta-sts-cache 1' $CACHE/journal" \
	"grep -qx 'a.test disk id=1 mode=enforce max_age=86400 mx=mx.a.test' $OUT"

probe 2 a.test p.test
check "restart: cache read from disk, same id, no refetch" all "clean $OUT" \
	"ans $OUT 1 a.test 'source=cache mode=enforce mx=mx.a.test '" \
	"ans $OUT 1 p.test 'source=cache mode=enforce '" \
	"hits mta-sts.a.test 1" "hits mta-sts.p.test 1" \
	"grep -q 'result=cache-loaded .*policies=3' $OUT.err"

probe 3 b.test c.test d.test g.test c.test i.test +61 c.test disk:b.test disk:c.test \
	disk:g.test
check "probe 3: promises kept, clean exit" clean "$OUT"
check "invalid policy (version STSv2): error, no policy" ans "$OUT" 1 b.test \
	'source=fetch-failed mode=- mx=- error=sts-policy-invalid: '
check "404 (with a valid body): sts-policy-fetch-error, no policy" ans "$OUT" 1 c.test \
	'source=fetch-failed mode=- mx=- error=sts-policy-fetch-error: HTTP status 404 '
check "F-04 text/html: sts-policy-fetch-error, no policy" ans "$OUT" 1 d.test \
	'source=fetch-failed mode=- .*error=sts-policy-fetch-error: Content-Type "text/html"'
check "F-08 certificate for another name: sts-webpki-invalid" ans "$OUT" 1 g.test \
	'source=fetch-failed mode=- .*error=sts-webpki-invalid: '
# Three lookups of c.test, the third 61 s later: two fetches, two TXT
# queries in all, so the second lookup made neither.
check "F-07 failed fetch: no new fetch or TXT query within 60 s, the error kept" all \
	"ans $OUT 2 c.test 'source=fetch-failed .*error=sts-policy-fetch-error: HTTP status 404'" \
	"hits mta-sts.c.test 2" "txtq _mta-sts.c.test 2"
check "61 s later: TXT checked and fetched again" all \
	"ans $OUT 3 c.test 'source=fetch-failed .*error=sts-policy-fetch-error: HTTP status 404'" \
	"grep -c 'domain=c.test .*result=refused' $OUT.err | grep -qx 2"
check "two v=STSv1 TXT records: no policy, sts-policy-invalid, no fetch" all \
	"ans $OUT 1 i.test 'source=txt-invalid mode=- mx=- error=sts-policy-invalid: _mta-sts.i.test TXT: '" \
	"! grep -q '^mta-sts.i.test ' $NG/access.log"
check "no cached record for a failed domain" all "grep -qx 'b.test disk none' $OUT" \
	"grep -qx 'c.test disk none' $OUT" "grep -qx 'g.test disk none' $OUT"
check "metrics: failed and invalid counted" grep -qx 'fetches ok=0 failed=4 invalid=1' "$OUT"
check "refusals logged with the reason" grep -qE \
	'level=warn .*event=mta-sts .*domain=b.test .*result=refused .*outcome=invalid .*error="sts-policy-invalid: ' \
	"$OUT.err"

# The id changes, and so does the policy.
policy a 'version: STSv1\nmode: testing\nmx: *.a.test\nmax_age: 86400\n'
chmod -R a+rX "$WWW"
dns_up 2
probe 4 a.test disk:a.test
check "changed id: refetched, the new policy applies" all "clean $OUT" \
	"ans $OUT 1 a.test 'source=fetched mode=testing mx=\\*.a.test '" \
	"hits mta-sts.a.test 2" "grep -q '^a.test disk id=2 mode=testing ' $OUT"

dns_up -
probe 5 a.test
check "TXT record gone, cached policy valid: still applied" all "clean $OUT" \
	"ans $OUT 1 a.test 'source=txt-missing-cache-valid mode=testing mx=\\*.a.test '" \
	"hits mta-sts.a.test 2"

dns_up 2
probe 6 a.test refresh:a.test a.test +120 refresh:a.test a.test
check "refresh of a copy younger than a minute: no refetch" all "clean $OUT" \
	"ans $OUT 1 a.test 'source=cache mode=testing '" \
	"ans $OUT 2 a.test 'source=cache mode=testing '"
check "refresh later: TXT checked and the policy re-fetched, same id" all \
	"ans $OUT 3 a.test 'source=fetched mode=testing '" "hits mta-sts.a.test 3"

WAIT=1 probe 7 e.test sleep:4 e.test
check "probe 7: promises kept, clean exit" clean "$OUT"
# The wait is a timer: a busy machine fires it up to ~0.7 s early (the
# loop's clock is read once per round) or late (lib.sh DEADLINE_*).
check "F-07 slow policy server, wait 1 s: answered by that wait (0.3 to 4 s), fetch pending" all \
	"ans $OUT 1 e.test 'source=fetch-pending mode=- mx=- '" \
	"ans $OUT 1 e.test 'ms=[3-9][0-9]{2}\$|ms=[1-3][0-9]{3}\$'"
check "F-07 ... the fetch went on: a later lookup gets the policy" all \
	"ans $OUT 2 e.test 'source=cache mode=enforce mx=mx.e.test '" \
	"test \$(grep -c 'mta-sts.e.test /.well-known/mta-sts.txt' $W/slow.log) -eq 1"

probe 8 t.test +101 t.test
check "max_age 100: expired 101 s later, fetched again" all "clean $OUT" \
	"ans $OUT 1 t.test 'source=fetched mode=testing mx=\\*.t.test '" \
	"ans $OUT 2 t.test 'source=fetched mode=testing '" "hits mta-sts.t.test 2"

probe 9 z.test z.test +61 z.test
check "max_age 0: used for the waiting lookup and a minute, no fetch loop" all \
	"clean $OUT" "ans $OUT 1 z.test 'source=fetched mode=enforce mx=mx.z.test '" \
	"ans $OUT 2 z.test 'source=cache mode=enforce '" \
	"ans $OUT 3 z.test 'source=fetched mode=enforce '" "hits mta-sts.z.test 2"

# F-09 (d): a new id, and the policy server fails: the cached policy stays.
rm -f "$WWW/a/.well-known/mta-sts.txt"
dns_up 3
probe 10 a.test disk:a.test
check "new id, fetch fails (404): the valid cached policy still applies" all "clean $OUT" \
	"ans $OUT 1 a.test 'source=fetch-failed-cache-valid mode=testing mx=\\*.a.test error=sts-policy-fetch-error: HTTP status 404 '" \
	"hits mta-sts.a.test 4" "grep -q '^a.test disk id=2 ' $OUT"

# Cache files of mxtls before the journal: corrupt ones and stale
# temporary files are removed at start.  And a crash in the middle of an
# append (a torn last record: a newer a.test cut short) loses that record
# only.
printf 'garbage\n' >"$CACHE/junk.test.sts"
printf 'x' >"$CACHE/a.test.sts.tmp"
J_SIZE=$(stat -c %s "$CACHE/journal")
printf 'P a.test 230 0123456789abcdef\nmxtls-mta-sts-cache 1\ndomain a.te' >>"$CACHE/journal"
probe 11 a.test disk:a.test
check "corrupt (old-style) cache file and stale temporary file removed at start" all "clean $OUT" \
	"test ! -e $CACHE/junk.test.sts" "test ! -e $CACHE/a.test.sts.tmp" \
	"grep -q 'result=cache-file-removed file=$CACHE/junk.test.sts' $OUT.err" \
	"ans $OUT 1 a.test 'mode=testing '"
check "C torn last record of the journal: ignored and logged, the older records kept, the journal cut" all \
	"grep -q 'result=cache-journal-torn .*ignored_bytes=63 ' $OUT.err" \
	"grep -q '^a.test disk id=2 mode=testing ' $OUT" "test \$(stat -c %s $CACHE/journal) -le $J_SIZE"

finish
