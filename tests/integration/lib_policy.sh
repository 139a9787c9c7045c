# Helpers of the policy-fetching end-to-end tests (test_policy_central.sh,
# test_policy_sts.sh, test_sts_journal.sh, test_tlsrpt.sh,
# test_tls_required_no.sh, ...): certificates for HTTPS policy servers
# from the test PKI, a private nginx, MTA-STS policy servers made of both,
# a dnsmasq whose records can change while the port stays, and small
# probes of mxtls (sending a message, reading /metrics).
# Source it after lib.sh (and lib_retry.sh, whose rt_config and
# rt_mxtls_start keep one state_dir across restarts):
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_retry.sh"
#	. "$(dirname "$0")/lib_policy.sh"
#	it_setup
#	pol_leaf web policy.central.test
#	pol_nginx_start 127.0.0.151:8443 <<EOF (server blocks) EOF
#	pol_dns_up <<EOF (dnsmasq config lines) EOF
#
# or, for MTA-STS policies on port 443 with lib.sh's dnsmasq:
#
#	pol_sts_enforce sts.test mx1.example.test
#	pol_sts_serve 127.0.0.5 sts.test || finish
#	pol_sts_dns 127.0.0.5 sts.test
#	dns_start || finish

# pol_leaf NAME DNSNAME...: a server certificate for the DNSNAMEs, issued
# by the test PKI's intermediate (so [policy] https_ca_bundle and
# mta_sts_ca_bundle = $PKI/test-root-ca.pem verify it), written to
# $W/certs/NAME.key and $W/certs/NAME.chain.pem (leaf, intermediate);
# never into the shared PKI directory.
pol_leaf() {
	_n=$1
	shift
	_san=""
	for _h in "$@"; do _san="${_san:+$_san,}DNS:$_h"; done
	mkdir -p "$W/certs"
	(
		cd "$W/certs" || exit 1
		export OPENSSL_CONF=/dev/null
		cat >"$_n.cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $_san
EOF
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$_n.key" 2>/dev/null &&
			openssl req -new -key "$_n.key" -out "$_n.csr" -subj "/CN=$1" -config "$_n.cnf" &&
			openssl x509 -req -in "$_n.csr" -CA "$PKI/inter.pem" -CAkey "$PKI/inter.key" \
				-set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$_n.cnf" \
				-extensions leaf -out "$_n.pem" 2>/dev/null &&
			cat "$_n.pem" "$PKI/inter.pem" >"$_n.chain.pem"
	) >"$W/certs/$_n.out" 2>&1 || { echo "certificate $_n: $(cat "$W/certs/$_n.out")"; return 1; }
	chmod 644 "$W/certs/$_n".*pem
}

# pol_nginx_start LISTEN... <<EOF (server blocks) EOF: a private nginx
# (Debian's package) with the server blocks from stdin, its files in
# $W/nginx (config nginx.conf, error.log, access.log with one line per
# request: "HOST URI STATUS inm=IF-NONE-MATCH bytes=N").  Waits until it
# listens on every LISTEN (ADDR:PORT).  Sets NGINX_PID.  The config is
# kept, so pol_nginx_restart starts the same server again.
pol_nginx_start() {
	NG=$W/nginx
	mkdir -p "$NG/tmp"
	{
		nginx_conf_head pol '$host $request_uri $status inm=$http_if_none_match bytes=$body_bytes_sent'
		cat
		echo "}"
	} >"$NG/nginx.conf"
	NG_LISTEN="$*"
	pol_nginx_restart
}

# pol_nginx_restart: start the nginx of pol_nginx_start again (after
# pol_nginx_stop), same config, same addresses.
pol_nginx_restart() {
	NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
	[ -x "$NGINX" ] || { echo "nginx is not installed (apt-get install nginx)"; return 1; }
	for _l in $NG_LISTEN; do
		if port_busy "$_l"; then
			echo "$_l is already in use: $(ss -Hltnp | grep -F "$_l ")"
			return 1
		fi
	done
	"$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >>"$NG/out" 2>&1 &
	NGINX_PID=$!
	it_track nginx $NGINX_PID -
	for _l in $NG_LISTEN; do
		wait_for_port "$_l" tcp 10 2>/dev/null || {
			echo "nginx does not listen on $_l:"
			tail -n 20 "$NG/out" "$NG/error.log"
			return 1
		}
	done
	return 0
}

# pol_nginx_stop: stop that nginx (by its PID) and wait until its
# addresses are free.
pol_nginx_stop() {
	[ -n "${NGINX_PID:-}" ] || return 0
	kill_wait "$NGINX_PID" QUIT || kill_wait "$NGINX_PID" TERM
	NGINX_PID=""
	for _l in $NG_LISTEN; do
		_i=0
		while port_busy "$_l" && [ $_i -lt 100 ]; do
			sleep 0.05
			_i=$((_i + 1))
		done
	done
}

# pol_hits ERE: how many lines of nginx's access log match ERE.
pol_hits() {
	_c=$(grep -cE -- "$1" "$W/nginx/access.log" 2>/dev/null)
	echo "${_c:-0}"
}

# pol_hits_are ERE N: exactly N requests matched so far.
pol_hits_are() {
	_c=$(pol_hits "$1")
	[ "$_c" -eq "$2" ] && return 0
	echo "nginx served /$1/ $_c times, expected $2; its access log:"
	tail -n 15 "$W/nginx/access.log" 2>/dev/null | sed 's/^/  | /'
	return 1
}

# ---------------------------------------------------------------- MTA-STS

# pol_sts_policy DOMAIN TEXT: the MTA-STS policy of DOMAIN, the file
# $W/www/mta-sts.DOMAIN/.well-known/mta-sts.txt that pol_sts_serve serves
# as https://mta-sts.DOMAIN/.well-known/mta-sts.txt.  TEXT is a printf
# format (CRLF or LF line ends as given).  May be called again to change
# the policy while nginx runs.
pol_sts_policy() {
	mkdir -p "$W/www/mta-sts.$1/.well-known"
	# shellcheck disable=SC2059
	printf "$2" >"$W/www/mta-sts.$1/.well-known/mta-sts.txt"
	chmod -R a+rX "$W/www"
}

# pol_sts_enforce DOMAIN MX: pol_sts_policy DOMAIN with an enforce policy
# of one mx pattern MX, max_age 86400, CRLF line ends.
pol_sts_enforce() {
	pol_sts_policy "$1" "version: STSv1\r\nmode: enforce\r\nmx: $2\r\nmax_age: 86400\r\n"
}

# pol_sts_serve ADDR DOMAIN...: the policy server of every DOMAIN on
# ADDR:443 (the fetch URL has no port: root, an address of the test's
# own): one certificate for all the mta-sts.DOMAIN names from the test
# PKI's intermediate (pol_leaf sts: $W/certs/sts.key, sts.chain.pem; the
# bundle is $PKI/test-root-ca.pem) and a private nginx (pol_nginx_start,
# access log for pol_hits) with one server block for those names whose
# root is $W/www/$host (pol_sts_policy writes there).  On failure it
# records the failed check ("policy server certificate", or "nginx starts
# on ADDR:443") and returns 1; the caller finishes.
pol_sts_serve() {
	_ss_a=$1
	shift
	_ss_names=""
	for _ss_d in "$@"; do _ss_names="$_ss_names mta-sts.$_ss_d"; done
	# shellcheck disable=SC2086
	pol_leaf sts $_ss_names || { fail "policy server certificate"; return 1; }
	pol_nginx_start "$_ss_a:443" <<EOF || { fail "nginx starts on $_ss_a:443"; return 1; }
	server {
		listen $_ss_a:443 ssl;
		server_name$_ss_names;
		ssl_certificate $W/certs/sts.chain.pem;
		ssl_certificate_key $W/certs/sts.key;
		root $W/www/\$host;
	}
EOF
}

# pol_sts_dns ADDR DOMAIN...: the records that announce each DOMAIN's
# policy, for lib.sh's dns_start (call it before): mta-sts.DOMAIN at ADDR,
# and the TXT record _mta-sts.DOMAIN "v=STSv1;id=1".
pol_sts_dns() {
	_sd_a=$1
	shift
	for _sd_d in "$@"; do
		dns_a "mta-sts.$_sd_d" "$_sd_a"
		dns_txt "_mta-sts.$_sd_d" 'v=STSv1;id=1'
	done
}

# pol_dns_up <<EOF (dnsmasq config lines) EOF: (re)start dnsmasq on
# 127.0.0.1:$DNS_PORT (the same port every time, chosen on the first
# call) with exactly these records, authoritative for .test like lib.sh's
# dns_start.  The query log is $W/dnsmasq.log (appended across restarts).
pol_dns_up() {
	[ -n "${DNS_PORT:-}" ] || DNS_PORT=$(free_port)
	if [ -n "${POL_DNS_PID:-}" ]; then
		kill_wait "$POL_DNS_PID"
		POL_DNS_PID=""
	fi
	cat >"$W/dnsmasq.conf"
	dnsmasq --conf-file="$W/dnsmasq.conf" --keep-in-foreground --pid-file= --user=root \
		--port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --no-negcache --local=/test/ \
		--log-queries --log-facility="$W/dnsmasq.log" \
		>"$W/dnsmasq.out" 2>&1 &
	POL_DNS_PID=$!
	it_track dnsmasq $POL_DNS_PID -
	wait_for_port "127.0.0.1:$DNS_PORT" udp 10 2>/dev/null || {
		echo "dnsmasq does not start: $(cat "$W/dnsmasq.out")"
		return 1
	}
}

# pol_send OUT RCPT [MSGFILE]: one message from s@sender.test to RCPT
# through the current mxtls; transcript in OUT (labels "RCPT TO:<RCPT>",
# DATA, DOT).  MSGFILE defaults to $W/msg.txt (made on first use).
pol_send() {
	_m=${3:-$W/msg.txt}
	[ -f "$_m" ] || mkmsg "$_m" "policy test message"
	smtpc "$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<$2>" \
		"DATA=$_m" "QUIT"
}

# pol_send_new DOMAIN: pol_send to a new recipient of DOMAIN, rN@DOMAIN
# with N = 1, 2, ... counted in the file $W/n (a file, not a variable:
# checks run their commands in a subshell); sets N, RCPT and OUT
# ($W/smtp.N, the transcript).
pol_send_new() {
	N=$(($(cat "$W/n" 2>/dev/null || echo 0) + 1))
	echo $N >"$W/n"
	RCPT=r$N@$1
	OUT=$W/smtp.$N
	pol_send "$OUT" "$RCPT"
}

# pol_rcpt_is OUT RCPT ERE: the reply to RCPT TO matched ERE.
pol_rcpt_is() { reply_is "$1" "RCPT TO:<$2>" "$3"; }

# pol_answer OUT RCPT: what the MTA was told about RCPT in the end: the
# reply to its RCPT, or, for a recipient held while mxtls read the
# message's header for "TLS-Required: No" (the recipient's MTA-STS or
# DANE policy had failed), the reply to the final dot.
pol_answer() {
	_a=$(awk -v l="RCPT TO:<$2> => " 'index($0, l) == 1 { print substr($0, length(l) + 1) }' "$1")
	case $_a in
	"250 2.1.5 Held"*) awk 'index($0, "DOT => ") == 1 { print substr($0, 8) }' "$1" ;;
	*) printf '%s\n' "$_a" ;;
	esac
}
# pol_answer_is OUT RCPT ERE: that answer matches ERE.
pol_answer_is() {
	_a=$(pol_answer "$1" "$2")
	printf '%s\n' "$_a" | grep -qE -- "$3" && return 0
	echo "expected the answer for $2 to match /$3/, got: ${_a:-(none)}"
	sed 's/^/  /' "$1"
	return 1
}

# pol_metrics OUT: GET /metrics of the current mxtls (admin_listen) to OUT.
pol_metrics() {
	curl -s --max-time 5 "http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics" >"$1" 2>&1
}

# pol_metric NAME LABEL...: the value of the sample NAME{...} whose labels
# include every LABEL (k="v"), from a fresh /metrics; 0 when absent.
pol_metric() {
	_mn=$1
	shift
	pol_metrics "$W/metrics.now" || { echo 0; return 0; }
	awk -v n="$_mn" -v want="$*" '
		{
			name = $1; sub(/\{.*/, "", name)
			if (name != n) next
			lab = $1; sub(/^[^{]*/, "", lab)
			k = split(want, w, " ")
			for (i = 1; i <= k; i++) if (index(lab, w[i]) == 0) next
			v = $2; found = 1
		}
		END { print found ? v : 0 }' "$W/metrics.now"
}

# pol_metric_ge NAME MIN LABEL...: that sample is at least MIN.
pol_metric_ge() {
	_mn=$1
	_min=$2
	shift 2
	_v=$(pol_metric "$_mn" "$@")
	if awk -v v="$_v" -v m="$_min" 'BEGIN { exit !(v + 0 >= m + 0) }'; then
		return 0
	fi
	echo "$_mn{$*} is $_v, expected at least $_min; /metrics has:"
	grep -E "^${_mn}" "$W/metrics.now" | sed 's/^/  | /'
	[ -s "$W/metrics.now" ] || echo "  | (nothing: is admin_listen set?)"
	return 1
}

# pol_metric_gt NAME BEFORE LABEL...: that sample grew beyond BEFORE.
pol_metric_gt() {
	_mn=$1
	_b=$2
	shift 2
	_v=$(pol_metric "$_mn" "$@")
	if awk -v v="$_v" -v b="$_b" 'BEGIN { exit !(v + 0 > b + 0) }'; then
		return 0
	fi
	echo "$_mn{$*} is $_v, expected more than $_b; /metrics has:"
	grep -E "^${_mn}" "$W/metrics.now" | sed 's/^/  | /'
	return 1
}

# pol_delivered_to MX RCPT [OTHER_MX...]: MX delivered a message to RCPT,
# and none of the OTHER_MXs did.
pol_delivered_to() {
	_mx=$1
	_r=$2
	shift 2
	mx_wait_rcpt "$_mx" "$_r" 1 5 || return 1
	for _o in "$@"; do mx_none "$_o" "$_r" || return 1; done
	return 0
}

# pol_sts_cached DOMAIN: the record of DOMAIN's cached MTA-STS policy
# ("key value" lines) as the journal $RT_STATE_DIR/mta-sts/journal has it
# last; nothing when it was deleted or never cached.
pol_sts_cached() {
	awk -v k="$1" '
		($1 == "P" || $1 == "D") && NF == 4 && length($4) == 16 {
			cur = $2 == k
			if (cur) { rec = ""; live = $1 == "P" }
			next
		}
		cur && live { rec = rec $0 "\n" }
		END { if (live) printf "%s", rec }' "$RT_STATE_DIR/mta-sts/journal" 2>/dev/null
}

# pol_sts_has DOMAIN LINE...: DOMAIN's cached record has every LINE (the
# journal is written by a thread of its own: waits up to 3 s).
pol_sts_has() {
	_ph_d=$1
	shift
	_ph_t=$(($(date +%s) + 3))
	while :; do
		_ph_rec=$(pol_sts_cached "$_ph_d")
		_ph_ok=yes
		for _ph_l in "$@"; do
			printf '%s\n' "$_ph_rec" | grep -qxF -- "$_ph_l" || { _ph_ok=no; break; }
		done
		[ $_ph_ok = yes ] && return 0
		[ "$(date +%s)" -ge $_ph_t ] && break
		sleep 0.1
	done
	echo "the cached MTA-STS record of $_ph_d lacks one of: $*; it is:"
	printf '%s\n' "$_ph_rec" | sed 's/^/  | /'
	return 1
}

# pol_all CMD...: every CMD (a string, eval'ed) succeeds; stops at the first
# that fails (its output is the check's explanation).
pol_all() { for _c in "$@"; do eval "$_c" || return 1; done; }
