# More helpers of the policy-fetching end-to-end tests, for
# test_policy_failures.sh: a policy host name whose address can be moved
# from one server to another while mxtls runs (dnsmasq's addn-hosts file,
# reread on SIGHUP), dated certificates from the test PKI's CAs, a
# misbehaving HTTPS server in python3, and the mxtls-fetch child of the
# running mxtls.  Source it after lib.sh, lib_retry.sh and lib_policy.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_retry.sh"
#	. "$(dirname "$0")/lib_policy.sh"
#	. "$(dirname "$0")/lib_policy2.sh"
#	it_setup
#	pol2_hosts_init policy.central.test 127.0.0.181
#	{ echo "host-record=..."; pol2_hosts_line; } | pol_dns_up
#	pol2_point policy.central.test 127.0.0.182

# pol2_hosts_init NAME ADDR: the hosts file ($W/pol2.hosts) dnsmasq reads
# for the names that move; NAME starts at ADDR.
pol2_hosts_init() {
	printf '%s %s\n' "$2" "$1" >"$W/pol2.hosts"
}

# pol2_hosts_line: the dnsmasq config line that reads that file (give it
# to pol_dns_up with the other records).
pol2_hosts_line() { echo "addn-hosts=$W/pol2.hosts"; }

# pol2_point NAME ADDR: from now on NAME resolves to ADDR: the hosts file
# rewritten, dnsmasq (POL_DNS_PID, from pol_dns_up) told by SIGHUP, and
# waited for until it answers ADDR.
pol2_point() {
	printf '%s %s\n' "$2" "$1" >"$W/pol2.hosts.tmp"
	mv "$W/pol2.hosts.tmp" "$W/pol2.hosts"
	kill -HUP "$POL_DNS_PID" 2>/dev/null || { echo "dnsmasq ($POL_DNS_PID) is gone"; return 1; }
	_t=$(it_until 5)
	while :; do
		python3 "$IT_FILES/dnsq.py" "127.0.0.1:$DNS_PORT" "$1" A 2>/dev/null |
			grep -qx "A $2" && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.05
	done
	echo "dnsmasq does not answer $1 A $2:"
	python3 "$IT_FILES/dnsq.py" "127.0.0.1:$DNS_PORT" "$1" A 2>&1 | sed 's/^/  | /'
	return 1
}

# pol2_leaf_dated NAME ISSUER START END DNSNAME...: like lib_policy.sh's
# pol_leaf (files $W/certs/NAME.key, NAME.chain.pem), but valid only from
# START to END (YYYYMMDDHHMMSSZ), issued by ISSUER: "inter" (the test
# PKI's intermediate, trusted through test-root-ca.pem) or "other" (the
# PKI's other-root, in no bundle).  `openssl ca` with a database of its
# own under $W/certs; nothing is written to the shared PKI directory.
pol2_leaf_dated() {
	_n=$1
	_iss=$2
	_from=$3
	_to=$4
	shift 4
	_san=""
	for _h in "$@"; do _san="${_san:+$_san,}DNS:$_h"; done
	case $_iss in
	inter) _ic=$PKI/inter.pem _ik=$PKI/inter.key ;;
	other) _ic=$PKI/other-root.pem _ik=$PKI/other-root.key ;;
	*) echo "pol2_leaf_dated: issuer inter or other, not $_iss"; return 1 ;;
	esac
	mkdir -p "$W/certs/db/new"
	(
		cd "$W/certs" || exit 1
		export OPENSSL_CONF=/dev/null
		[ -f db/index.txt ] || : >db/index.txt
		[ -f db/serial ] || openssl rand -hex 8 >db/serial
		cat >"$_n.cnf" <<EOF
[ca]
default_ca = ca_default
[ca_default]
database = db/index.txt
new_certs_dir = db/new
serial = db/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[policy_any]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $1
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $_san
EOF
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$_n.key" 2>/dev/null &&
			openssl req -config "$_n.cnf" -new -key "$_n.key" -out "$_n.csr" &&
			openssl ca -config "$_n.cnf" -batch -notext -in "$_n.csr" -out "$_n.pem" \
				-cert "$_ic" -keyfile "$_ik" -extensions leaf -extfile "$_n.cnf" \
				-startdate "$_from" -enddate "$_to" &&
			if [ "$_iss" = inter ]; then
				cat "$_n.pem" "$PKI/inter.pem" >"$_n.chain.pem"
			else
				cat "$_n.pem" >"$_n.chain.pem"
			fi
	) >"$W/certs/$_n.out" 2>&1 || { echo "certificate $_n: $(cat "$W/certs/$_n.out")"; return 1; }
	chmod 644 "$W/certs/$_n".*pem
}

# pol2_server [--silent ADDR:PORT]... [--chunked ADDR:PORT CERT KEY BODY]...:
# the misbehaving HTTPS server (python3), one process for all its
# listeners.  --silent accepts TCP connections and holds them without ever
# reading or writing (a TLS handshake that never completes); --chunked
# answers every request with 200, text/plain, and the file BODY in
# chunks of 64 KiB (no Content-Length).  Each accepted connection is a line
# "accept ADDR:PORT" in $W/pol2srv.log.  Sets POL2_SRV_PID.
pol2_server() {
	cat >"$W/pol2srv.py" <<'EOF'
import socket, ssl, sys, threading

log = open(sys.argv[1], "a", buffering=1)
args = sys.argv[2:]
held = []


def listener(hp):
    h, p = hp.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((h, int(p)))
    s.listen(16)
    return s


def silent(s, hp):
    while True:
        c, _ = s.accept()
        held.append(c)  # never read, never written, never closed
        log.write("accept %s\n" % hp)


def chunked_one(c, body):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            c.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        c.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


def chunked(s, hp, ctx, body):
    while True:
        c, _ = s.accept()
        log.write("accept %s\n" % hp)
        try:
            c = ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log.write("handshake %s %s\n" % (hp, e))
            c.close()
            continue
        threading.Thread(target=chunked_one, args=(c, body), daemon=True).start()


threads = []
i = 0
while i < len(args):
    if args[i] == "--silent":
        hp = args[i + 1]
        threads.append(threading.Thread(target=silent, args=(listener(hp), hp), daemon=True))
        i += 2
    elif args[i] == "--chunked":
        hp, cert, key, bodyf = args[i + 1:i + 5]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        body = open(bodyf, "rb").read()
        threads.append(threading.Thread(target=chunked, args=(listener(hp), hp, ctx, body), daemon=True))
        i += 5
    else:
        sys.exit("unknown option %s" % args[i])
for t in threads:
    t.start()
log.write("ready\n")
for t in threads:
    t.join()
EOF
	: >"$W/pol2srv.log"
	python3 "$W/pol2srv.py" "$W/pol2srv.log" "$@" >"$W/pol2srv.out" 2>&1 &
	POL2_SRV_PID=$!
	it_track pol2srv $POL2_SRV_PID -
	wait_for_log "$W/pol2srv.log" '^ready$' 10 && return 0
	echo "the python server does not start: $(cat "$W/pol2srv.out")"
	return 1
}

# pol2_accepted ADDR:PORT: how many connections the python server accepted
# on that listener so far.
pol2_accepted() {
	_c=$(grep -cxF "accept $1" "$W/pol2srv.log" 2>/dev/null)
	echo "${_c:-0}"
}

# pol2_fetcher: the PID of the live mxtls-fetch child of the running
# mxtls (MXTLS_PID), found with `ps --ppid`; empty when there is none (a
# zombie not reaped yet does not count).
pol2_fetcher() {
	ps --ppid "$MXTLS_PID" -o pid=,stat=,comm= 2>/dev/null |
		awk '$3 == "mxtls-fetch" && $2 !~ /^Z/ { print $1; exit }'
}

# pol2_wait_fetcher [NOT_PID] [SECONDS]: until the running mxtls has an
# mxtls-fetch child (other than NOT_PID); prints its PID.
pol2_wait_fetcher() {
	_t=$(it_until "${2:-10}")
	while :; do
		_fp=$(pol2_fetcher)
		[ -n "$_fp" ] && [ "$_fp" != "${1:-}" ] && { echo "$_fp"; return 0; }
		[ "$(date +%s)" -ge "$_t" ] && return 1
		sleep 0.05
	done
}

# pol2_kill_fetcher PID: SIGKILL the mxtls-fetch child PID of the running
# mxtls, after checking that it is exactly that (its parent is MXTLS_PID,
# its name mxtls-fetch): never a process of anybody else.
pol2_kill_fetcher() {
	_pp=$(ps -o ppid=,comm= -p "$1" 2>/dev/null | awk '{ print $1 " " $2 }')
	if [ "$_pp" != "$MXTLS_PID mxtls-fetch" ]; then
		echo "process $1 is not the mxtls-fetch child of mxtls $MXTLS_PID (ps: ${_pp:-gone})"
		return 1
	fi
	kill -KILL "$1"
}

# pol2_ts_ms LINE: the ts= of a log line in milliseconds since the epoch.
pol2_ts_ms() {
	_ts=$(printf '%s\n' "$1" | sed -n 's/^ts=\([0-9T:.-]*\)Z.*/\1/p')
	[ -n "$_ts" ] || return 1
	_s=$(date -u -d "$(echo "${_ts%.*}" | sed 's/T/ /')" +%s 2>/dev/null) || return 1
	echo $((_s * 1000 + $(echo "${_ts##*.}" | sed 's/^0*//;s/^$/0/')))
}
