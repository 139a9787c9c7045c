#!/bin/sh
# mxtls-fetch (policy/fetch.c) against real HTTPS servers on loopback:
# a private nginx (policy files with ETag and Last-Modified, a redirect,
# a 404, a 500, a large file, wrong and missing Content-Types, and
# servers with a wrong-name, an expired, an untrusted and a TLS 1.1-only
# certificate) and a small python3 TLS server (a body dripping one byte
# every half second, an over-long chunked body, a listener that never
# answers).  Certificates come from a throwaway CA made here.
# tests/integration/fetch_client.c drives the fetcher over a socketpair,
# as mxtls does.
#
# Needs: nginx (Debian's "nginx"), openssl, python3, cc and libcurl4-gnutls-dev.
# Environment: MXTLS_FETCH=PATH tests that binary instead of an ASan
# build made here.
. "$(dirname "$0")/lib.sh"
it_setup

CA=$W/ca
NG=$W/nginx
WWW=$W/www
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS_T="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -g -O1 -Ipolicy"

# ---------------------------------------------------------------- build

FETCH=${MXTLS_FETCH:-$W/mxtls-fetch}
if [ -z "${MXTLS_FETCH:-}" ]; then
	# shellcheck disable=SC2086
	cc $CFLAGS_T $SAN_FLAGS -o "$FETCH" policy/fetch.c policy/fetchproto.c -lcurl \
		>"$W/build.out" 2>&1 || { fail "build mxtls-fetch" "$(cat "$W/build.out")"; finish; }
fi
# shellcheck disable=SC2086
cc $CFLAGS_T -o "$W/fetch_client" tests/integration/fetch_client.c policy/fetchproto.c \
	>"$W/build.out" 2>&1 || { fail "build fetch_client" "$(cat "$W/build.out")"; finish; }
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { fail "nginx installed" "apt-get install nginx"; finish; }
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

# ---------------------------------------------------------------- certificates

mkdir -p "$CA/db/new"
(
	cd "$CA" || exit 1
	export OPENSSL_CONF=/dev/null
	cat >ext.cnf <<'EOF'
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:mta-sts.example.test, DNS:policy.example.test, IP:127.0.0.1, IP:::1
[wrongname]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example.test
EOF
	cat >ca.cnf <<'EOF'
[ca]
default_ca = ca_default
[ca_default]
database = db/index.txt
new_certs_dir = db/new
serial = db/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
EOF
	: >db/index.txt
	openssl rand -hex 8 >db/serial
	key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
	root() { # NAME CN
		key "$1.key"
		openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 \
			-subj "/CN=$2" -config ext.cnf -extensions root
	}
	leaf() { # NAME ISSUER EXT START END
		key "$1.key"
		openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" -config ext.cnf
		openssl ca -config ca.cnf -batch -notext -in "$1.csr" -out "$1.pem" \
			-cert "$2.pem" -keyfile "$2.key" -extfile ext.cnf -extensions "$3" \
			-startdate "$4" -enddate "$5" 2>/dev/null
	}
	now=$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)
	later=$(date -u -d '+20 days' +%Y%m%d%H%M%SZ)
	root ca "mxtls-fetch test CA" &&
		root other "somebody else's CA" &&
		leaf good ca leaf "$now" "$later" &&
		leaf wrongname ca wrongname "$now" "$later" &&
		leaf expired ca leaf 20200101000000Z 20210101000000Z &&
		leaf untrusted other leaf "$now" "$later"
) >"$W/ca.out" 2>&1 || { fail "throwaway CA" "$(cat "$W/ca.out")"; finish; }
chmod 644 "$CA"/*.pem

# ---------------------------------------------------------------- content

mkdir -p "$WWW/.well-known"
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n' \
	>"$WWW/.well-known/mta-sts.txt"
python3 - "$WWW" <<'EOF'
import sys
w = sys.argv[1]
open(w + "/exact.txt", "wb").write(b"e" * 65536)
open(w + "/over.txt", "wb").write(b"o" * 65537)
open(w + "/huge.txt", "wb").write(b"h" * 200000)
EOF
echo '<html>policy</html>' >"$WWW/page.html"
for f in charset upper none cookie; do echo "version: STSv1" >"$WWW/$f.txt"; done
: >"$WWW/empty.txt"
chmod -R a+rX "$WWW"

# ---------------------------------------------------------------- servers

P_GOOD=$(free_port)
P_WRONG=$(free_port)
P_EXPIRED=$(free_port)
P_UNTRUSTED=$(free_port)
P_TLS11=$(free_port)
P_SLOW=$(free_port)
P_HOLE=$(free_port)
P_CLOSED=$(free_port) # nothing listens here

mkdir -p "$NG/tmp"
tls_server() { # PORT CERT [extra directives]
	cat <<EOF
	server {
		listen 127.0.0.1:$1 ssl;
		ssl_certificate $CA/$2.pem;
		ssl_certificate_key $CA/$2.key;
		root $WWW;
		${3:-}
	}
EOF
}
{
	nginx_conf_head fetch '$server_port $request_uri $status ua="$http_user_agent" cookie="$http_cookie" ae="$http_accept_encoding" inm="$http_if_none_match"' 'text/plain txt; text/html html;'
	cat <<EOF
	server {
		listen 127.0.0.1:$P_GOOD ssl;
		listen [::1]:$P_GOOD ssl;
		ssl_certificate $CA/good.pem;
		ssl_certificate_key $CA/good.key;
		root $WWW;
		location = /redirect { return 301 https://evil.example.test/.well-known/mta-sts.txt; }
		location = /redirect-http { return 302 http://mta-sts.example.test/x; }
		location = /error { return 500; }
		location = /cookie.txt { add_header Set-Cookie "session=secret; Path=/"; }
		location = /charset.txt { charset utf-8; }
		location = /upper.txt { types { } default_type "TEXT/PLAIN"; }
		location = /none.txt { types { } default_type ""; }
	}
EOF
	tls_server "$P_WRONG" wrongname
	tls_server "$P_EXPIRED" expired
	tls_server "$P_UNTRUSTED" untrusted
	tls_server "$P_TLS11" good "ssl_protocols TLSv1 TLSv1.1; ssl_ciphers DEFAULT:@SECLEVEL=0;"
	echo "}"
} >"$NG/nginx.conf"

"$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/out" 2>&1 &
it_track nginx $! -
for p in $P_GOOD $P_WRONG $P_EXPIRED $P_UNTRUSTED $P_TLS11; do
	wait_for_port "127.0.0.1:$p" tcp 10 || { fail "nginx starts" "$(cat "$NG/out" "$NG/error.log")"; finish; }
done

cat >"$W/slow.py" <<'EOF'
# The misbehaving HTTPS server: /drip sends one byte every half second,
# /chunked sends 2049 chunks of 64 bytes (no length known in advance),
# /fast answers at once; a second port listens and never accepts.
import socket, ssl, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

cert, key, port, hole = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def head(self, extra):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def do_GET(self):
        try:
            if self.path == "/drip":
                self.head([("Content-Length", "100")])
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.5)
            elif self.path == "/chunked":
                self.head([("Transfer-Encoding", "chunked")])
                for _ in range(2049):
                    self.wfile.write(b"40\r\n" + b"c" * 64 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/chunked-small":
                self.head([("Transfer-Encoding", "chunked")])
                self.wfile.write(b"f\r\nversion: STSv1\n\r\n0\r\n\r\n")
            elif self.path == "/fast":
                self.head([("Content-Length", "5")])
                self.wfile.write(b"fast\n")
            else:
                self.send_error(404)
        except OSError:
            pass

srv = ThreadingHTTPServer(("127.0.0.1", port), H)
srv.daemon_threads = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
# The handshake runs in the handler's thread, not in the accept loop.
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
bh = socket.socket()
bh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
bh.bind(("127.0.0.1", hole))
bh.listen(1)
srv.serve_forever()
EOF
python3 "$W/slow.py" "$CA/good.pem" "$CA/good.key" "$P_SLOW" "$P_HOLE" >"$W/slow.out" 2>&1 &
it_track slow.py $! -
if ! wait_for_port "127.0.0.1:$P_SLOW" tcp 10 || ! wait_for_port "127.0.0.1:$P_HOLE" tcp 10; then
	fail "python server starts" "$(cat "$W/slow.out")"
	finish
fi

# ---------------------------------------------------------------- helpers

STS=https://mta-sts.example.test
N=0
# fc ARGS...: run the client; its transcript in $OUT (a new file each time).
fc() {
	N=$((N + 1))
	OUT=$W/fc.$N
	"$W/fetch_client" -x "$FETCH" -t 60 "$@" >"$OUT" 2>"$OUT.err"
}
# resp OUT ID RESULT [STATUS]: the response to ID has that result (and
# status), and the fetcher exited 0 at the end without sanitizer reports.
resp() {
	_l=$(grep -E "^id=$2 result=" "$1" | head -n 1)
	case $_l in
	"id=$2 result=$3 status=${4:-}"*) ;;
	*)
		echo "expected id=$2 result=$3${4:+ status=$4}; transcript:"
		sed 's/^/  /' "$1" "$1.err"
		return 1
		;;
	esac
	clean_exit "$1"
}
clean_exit() { # OUT
	if ! grep -qx 'exit=0' "$1"; then
		echo "the fetcher did not exit 0 at the end of input:"
		sed 's/^/  /' "$1" "$1.err"
		return 1
	fi
	sanitizer_clean "$1.err"
}
# field OUT ID KEY: a string field of a response.
field() { sed -n "s/^id=$2 $3=//p" "$1" | head -n 1; }
# has OUT ID KEY ERE: that field matches.
has() {
	_v=$(field "$1" "$2" "$3")
	printf '%s\n' "$_v" | grep -qiE -- "$4" && return 0
	echo "id=$2 $3 is '$_v', expected /$4/"
	sed 's/^/  /' "$1"
	return 1
}
all() { # CMD1 ; CMD2 ... given as separate strings
	for _c in "$@"; do eval "$_c" || return 1; done
}
good() { echo "url=$STS:$P_GOOD$1 addr=127.0.0.1 ca=$CA/ca.pem"; }
access_has() { # ERE: a line of nginx's access log matches
	grep -qE -- "$1" "$NG/access.log" && return 0
	echo "no access log line matches /$1/:"
	tail -n 5 "$NG/access.log" | sed 's/^/  /'
	return 1
}

# ---------------------------------------------------------------- cases

# shellcheck disable=SC2046
fc $(good /.well-known/mta-sts.txt) text out="$W/body.1"
check "first fetch: ok 200" resp "$OUT" 1 ok 200
check "first fetch: body byte for byte" cmp "$W/body.1" "$WWW/.well-known/mta-sts.txt"
check "first fetch: Content-Type, ETag, Last-Modified handed back" all \
	"has $OUT 1 ctype '^text/plain$'" "has $OUT 1 etag '^\".+\"$'" "has $OUT 1 lastmod 'GMT$'"
check "F-06 request carries our User-Agent, no Accept-Encoding" \
	access_has "^$P_GOOD /.well-known/mta-sts.txt 200 ua=\"mxtls-fetch/1\" cookie=\"-\" ae=\"-\""
ETAG=$(field "$OUT" 1 etag)
LASTMOD=$(field "$OUT" 1 lastmod)

# shellcheck disable=SC2046
fc $(good /.well-known/mta-sts.txt) text etag="$ETAG"
check "If-None-Match: not-modified 304" resp "$OUT" 1 not-modified 304
# nginx logs a quote as \x22.
INNER=${ETAG#\"}
INNER=${INNER%\"}
check "If-None-Match sent as given" grep -qF "304 ua=\"mxtls-fetch/1\" cookie=\"-\" ae=\"-\" inm=\"\\x22$INNER\\x22\"" "$NG/access.log"
# shellcheck disable=SC2046
fc $(good /.well-known/mta-sts.txt) text ims="$LASTMOD"
check "If-Modified-Since: not-modified 304" resp "$OUT" 1 not-modified 304

sleep 1.1 # a new second: a new Last-Modified, so a new ETag
printf 'version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 600\n' >"$WWW/.well-known/mta-sts.txt"
# shellcheck disable=SC2046
fc $(good /.well-known/mta-sts.txt) text etag="$ETAG" out="$W/body.2"
check "changed document: ok with the new body" all "resp $OUT 1 ok 200" \
	"cmp $W/body.2 $WWW/.well-known/mta-sts.txt"
check "changed document: a new ETag" test "$(field "$OUT" 1 etag)" != "$ETAG"

# shellcheck disable=SC2046
fc $(good /redirect) text
check "F-03 301 redirect: refused, not followed" all "resp $OUT 1 redirect-refused 301" \
	"has $OUT 1 error 'evil.example.test.*not followed'"
check "F-03 redirect target never contacted" sh -c "! grep -q evil $NG/error.log"
# shellcheck disable=SC2046
fc $(good /redirect-http) text
check "F-03 302 to http://: refused" resp "$OUT" 1 redirect-refused 302

# shellcheck disable=SC2046
fc $(good /nonexistent.txt) text
check "404: http-status, no body" all "resp $OUT 1 http-status 404" "grep -q '^id=1 .* bytes=0 ' $OUT"
# shellcheck disable=SC2046
fc $(good /error) text
check "500: http-status" resp "$OUT" 1 http-status 500

# shellcheck disable=SC2046
fc $(good /exact.txt) max=65536 out="$W/body.3"
check "F-06 body of exactly the cap: ok" all "resp $OUT 1 ok 200" "cmp $W/body.3 $WWW/exact.txt"
# shellcheck disable=SC2046
fc $(good /over.txt) max=65536
check "F-06 body one byte over the cap: too-large" resp "$OUT" 1 too-large
# shellcheck disable=SC2046
fc $(good /huge.txt) max=65536
check "F-06 200 kB body with a 64 KiB cap: too-large" resp "$OUT" 1 too-large
fc url="$STS:$P_SLOW/chunked" addr=127.0.0.1 ca="$CA/ca.pem" max=65536 text
check "F-06 chunked body past the cap (no length known): too-large" resp "$OUT" 1 too-large
fc url="$STS:$P_SLOW/chunked-small" addr=127.0.0.1 ca="$CA/ca.pem" text out="$W/body.4"
check "F-06 chunked body under the cap: ok" all "resp $OUT 1 ok 200" \
	"printf 'version: STSv1\n' | cmp - $W/body.4"

# shellcheck disable=SC2046
fc $(good /page.html) text
check "F-04 text/html when text/plain is required: content-type" all \
	"resp $OUT 1 content-type 200" "has $OUT 1 error 'text/html'"
# shellcheck disable=SC2046
fc $(good /page.html)
check "text/html when any type will do: ok" resp "$OUT" 1 ok 200
# shellcheck disable=SC2046
fc $(good /none.txt) text
check "F-04 no Content-Type: content-type" resp "$OUT" 1 content-type
# shellcheck disable=SC2046
fc $(good /empty.txt) text -- $(good /page.html) text max=1
check "empty text/plain body: ok; type checked before the cap" all \
	"resp $OUT 1 ok 200" "resp $OUT 2 content-type"
# shellcheck disable=SC2046
fc $(good /charset.txt) text -- $(good /upper.txt) text
check "F-04 text/plain; charset=utf-8 and TEXT/PLAIN: ok" all "resp $OUT 1 ok 200" \
	"has $OUT 1 ctype 'charset=utf-8'" "resp $OUT 2 ok 200"

fc url="$STS:$P_SLOW/drip" addr=127.0.0.1 ca="$CA/ca.pem" to=2000 text
check "F-07 server dripping a byte every 0.5 s: timeout" resp "$OUT" 1 timeout
check "F-07 ... by the total timeout, 2 s (the fetcher's ms=)" deadline_within 2 \
	"$(sed -n 's/^id=1 result=.* ms=\([0-9]*\)$/\1/p' "$OUT" | awk '{ print $1 / 1000 }')" "the drip's fetch"
fc url="$STS:$P_HOLE/" addr=127.0.0.1 ca="$CA/ca.pem" cto=1000 to=2000
check "F-07 server that never answers the handshake: timeout" resp "$OUT" 1 timeout

fc url="$STS:$P_WRONG/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/ca.pem"
check "F-08 certificate for another name: tls-error" all "resp $OUT 1 tls-error" \
	"has $OUT 1 error 'match|name'"
fc url="$STS:$P_EXPIRED/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/ca.pem"
check "F-08 expired certificate: tls-error" all "resp $OUT 1 tls-error" "has $OUT 1 error 'expired'"
fc url="$STS:$P_UNTRUSTED/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/ca.pem"
check "F-08 certificate from a CA not in the bundle: tls-error" resp "$OUT" 1 tls-error
fc url="$STS:$P_UNTRUSTED/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/other.pem"
check "... and ok with that CA's bundle" resp "$OUT" 1 ok 200
# Loading the system store is slow on a busy machine: deadlines far off.
fc url="$STS:$P_GOOD/.well-known/mta-sts.txt" addr=127.0.0.1 cto=30000 to=30000
check "F-08 no bundle: the system store, which lacks the test CA: tls-error" resp "$OUT" 1 tls-error
fc url="$STS:$P_TLS11/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/ca.pem"
check "server offering TLS 1.0/1.1 only: tls-error" resp "$OUT" 1 tls-error

fc url="$STS:$P_CLOSED/" addr=127.0.0.1 ca="$CA/ca.pem"
check "connection refused: connect-error" resp "$OUT" 1 connect-error
fc url="$STS:$P_GOOD/.well-known/mta-sts.txt" addr=127.0.0.9 addr=127.0.0.1 ca="$CA/ca.pem" text
check "the addresses given are used, the next after a failure" all \
	"resp $OUT 1 ok 200" "access_has '^$P_GOOD /.well-known/mta-sts.txt 200'"
fc url="$STS:$P_GOOD/.well-known/mta-sts.txt" addr=::1 ca="$CA/ca.pem" text
check "an IPv6 address" resp "$OUT" 1 ok 200
fc url="https://127.0.0.1:$P_GOOD/.well-known/mta-sts.txt" addr=127.0.0.1 ca="$CA/ca.pem" text
check "an address literal host (IP SAN)" resp "$OUT" 1 ok 200

# Two in one fetcher (one curl multi handle), the server setting a cookie:
# no Cookie header ever goes out (the cookie engine is never enabled).
# shellcheck disable=SC2046
fc $(good /cookie.txt) to=3000 -- $(good /cookie.txt) id=2 to=3000
check "F-14 no cookies kept or sent" all "resp $OUT 1 ok 200" "resp $OUT 2 ok 200" \
	"test \$(grep -c '^$P_GOOD /cookie.txt 200 ' $NG/access.log) -eq 2" \
	"! grep -q 'cookie=\"session' $NG/access.log"
N=$((N + 1))
OUT=$W/fc.$N
# shellcheck disable=SC2046
https_proxy=http://127.0.0.1:$P_CLOSED HTTPS_PROXY=http://127.0.0.1:$P_CLOSED \
	ALL_PROXY=http://127.0.0.1:$P_CLOSED all_proxy=http://127.0.0.1:$P_CLOSED \
	"$W/fetch_client" -x "$FETCH" -t 60 $(good /.well-known/mta-sts.txt) text >"$OUT" 2>"$OUT.err"
check "F-13 proxy variables in the environment are ignored" resp "$OUT" 1 ok 200

# shellcheck disable=SC2046
fc url="https://u:pw@mta-sts.example.test:$P_GOOD/" addr=127.0.0.1 -- raw=junk -- raw=http -- \
	$(good /.well-known/mta-sts.txt) text
check "F-14 malformed requests: bad-request, and the fetcher goes on" all \
	"resp $OUT 1 bad-request" "has $OUT 1 error credentials" \
	"resp $OUT 77 bad-request" "has $OUT 77 error 'unknown field'" \
	"resp $OUT 78 bad-request" "resp $OUT 4 ok 200"
fc raw=unframeable
check "an unframeable stream: exit 2, no crash" all "grep -qx 'exit=2' $OUT" \
	"grep -q 'cannot be framed' $OUT.err" "sanitizer_clean $OUT.err"
t0=$(date +%s)
fc url="$STS:$P_HOLE/" addr=127.0.0.1 ca="$CA/ca.pem" to=20000 -- raw=unframeable
t1=$(date +%s)
check "exit on an unframeable stream, transfers in flight: not answered, not waited for (their timeout: 20 s)" all \
	"grep -qx eof $OUT" "grep -qx 'exit=2' $OUT" "test $((t1 - t0)) -lt 20"

fc url="$STS:$P_SLOW/drip" addr=127.0.0.1 ca="$CA/ca.pem" to=3000 -- \
	url="$STS:$P_SLOW/fast" addr=127.0.0.1 ca="$CA/ca.pem"
check "requests in flight together: the fast one answered first" all \
	"resp $OUT 1 timeout" "resp $OUT 2 ok 200" \
	"test \"\$(grep -m1 -o '^id=[0-9]* result' $OUT)\" = 'id=2 result'"
fc url="$STS:$P_HOLE/" addr=127.0.0.1 ca="$CA/ca.pem" cto=1500 to=2000 repeat=70
check "70 at once: 64 in flight (timeout), 6 busy" all "clean_exit $OUT" \
	"test \$(grep -c 'result=busy' $OUT) -eq 6" "test \$(grep -c 'result=timeout' $OUT) -eq 64"

finish
