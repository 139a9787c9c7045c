# shellcheck shell=sh
# A signed private DNS world for the DANE tests (RFC 7672), built at test
# time and served by NSD on 127.0.0.1:$DNS_PORT.  Source it after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_dnssec.sh"
#	it_setup
#	dnssec_init
#	dnssec_zone ok.test                       # signed, DS in test.
#	dnssec_mx ok.test mx.ok.test
#	dnssec_a mx.ok.test 127.0.0.11
#	dnssec_tlsa mx.ok.test 3 1 1 "$PKI/selfsigned.pem"
#	dnssec_start                              # keys, signing, DS, NSD
#	dnssec_unbound_start                      # optional: a validating
#	                                          # unbound on 127.0.0.1:53
#
# The root zone "." and "test." are always there, signed; "." is the trust
# anchor: $DNSSEC_TA ($W/dnssec/root.key, its KSK's DS and DNSKEY in zone
# file format, as unbound's trust-anchor-file and libunbound's
# ub_ctx_add_ta_file read it).  Every zone is served by the one NSD, so a
# validator that forwards to it (RD queries, `forward-zone`) gets each
# answer, DS included, from the zone that owns it: NSD answers a DS query
# from the parent side when it serves both.  All zones name ns.test.
# (127.0.0.1) as their server; nothing here is meant for an iterating
# resolver, only for forwarding ones.
#
# Records belong to the deepest declared zone that contains their owner.
# Zone options (dnssec_zone ZONE [key=value...]):
#   sign=no          unsigned, delegated without DS: an insecure zone
#   expired=TYPE     the RRSIGs over TYPE (e.g. TLSA) expired yesterday, the
#                    rest of the zone is signed normally: that RRset is bogus
#   bogus=TYPE       the RRSIGs over TYPE do not match their RRset (one
#                    character of the signature changed): that RRset is bogus
#   ds=wrong         the parent's DS names a key the zone does not have: the
#                    whole zone is bogus
#   serve=broken     delegated (without DS), and listed in NSD with a zone
#                    file NSD refuses: NSD answers SERVFAIL for the zone, a
#                    forwarding validator returns SERVFAIL for every name in it
#                    (a lame delegation would not do: NSD answers with the
#                    referral, which a forwarding unbound takes as a NOERROR
#                    answer without records, insecure)
#
# Keys are ECDSA P-256 (algorithm 13), one key per zone (KSK and ZSK in one):
# keygen and signing take milliseconds.  Needs nsd, ldnsutils (ldns-keygen,
# ldns-signzone, ldns-key2ds), openssl; unbound for dnssec_unbound_start;
# unbound-host and dig for dnssec_status.

DNSSEC_DIR=""

# dnssec_init: start a new world in $W/dnssec (the root and test. zones).
dnssec_init() {
	DNSSEC_DIR=$W/dnssec
	DNSSEC_TA=$DNSSEC_DIR/root.key
	rm -rf "$DNSSEC_DIR"
	mkdir -p "$DNSSEC_DIR/zones" "$DNSSEC_DIR/keys" "$DNSSEC_DIR/nsd"
	: >"$DNSSEC_DIR/zonelist"
	: >"$DNSSEC_DIR/rr"
	dnssec_zone .
	dnssec_zone test.
	# The one name server of every zone.
	dnssec_a ns.test 127.0.0.1
}

# _dnssec_fqdn NAME: NAME with exactly one trailing dot, lower case.
_dnssec_fqdn() {
	case $1 in
	.) echo . ;;
	*.) echo "$1" | tr '[:upper:]' '[:lower:]' ;;
	*) echo "$1." | tr '[:upper:]' '[:lower:]' ;;
	esac
}

# dnssec_zone ZONE [sign=no] [expired=TYPE] [bogus=TYPE] [ds=wrong]
# [serve=broken]: declare a zone (see the head of this file).
dnssec_zone() {
	_z=$(_dnssec_fqdn "$1")
	shift
	_sign=yes _exp=- _bog=- _ds=right _serve=yes
	for _kv in "$@"; do
		case $_kv in
		sign=*) _sign=${_kv#sign=} ;;
		expired=*) _exp=${_kv#expired=} ;;
		bogus=*) _bog=${_kv#bogus=} ;;
		ds=*) _ds=${_kv#ds=} ;;
		serve=*) _serve=${_kv#serve=} ;;
		*) echo "dnssec_zone: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	# A zone NSD does not serve properly has nothing to sign.
	[ "$_serve" = yes ] || _sign=no
	echo "$_z $_sign $_exp $_bog $_ds $_serve" >>"$DNSSEC_DIR/zonelist"
}

# dnssec_rr OWNER TYPE RDATA...: a record (TTL $DNSSEC_TTL, default 300).
dnssec_rr() {
	_o=$(_dnssec_fqdn "$1")
	_t=$2
	shift 2
	printf '%s\t%s\tIN\t%s\t%s\n' "$_o" "${DNSSEC_TTL:-300}" "$_t" "$*" >>"$DNSSEC_DIR/rr"
}
dnssec_mx() { dnssec_rr "$1" MX "${3:-10}" "$(_dnssec_fqdn "$2")"; } # DOMAIN HOST [PREF]
dnssec_a() { dnssec_rr "$1" A "$2"; }                                # NAME ADDR
dnssec_aaaa() { dnssec_rr "$1" AAAA "$2"; }                          # NAME ADDR
dnssec_cname() { dnssec_rr "$1" CNAME "$(_dnssec_fqdn "$2")"; }      # NAME TARGET
dnssec_txt() { dnssec_rr "$1" TXT "\"$2\""; }                        # NAME TEXT (one string)

# tlsa_data CERT USAGE SELECTOR MTYPE: the TLSA rdata "U S M HEX" for the
# certificate in PEM file CERT.  Selector 0 is the whole certificate, 1 its
# SubjectPublicKeyInfo; matching type 0 the DER itself, 1 SHA-256, 2 SHA-512.
tlsa_data() {
	case $3 in
	0) _der() { openssl x509 -in "$1" -outform DER; } ;;
	1) _der() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER; } ;;
	*) echo "tlsa_data: selector $3?" >&2; return 1 ;;
	esac
	case $4 in
	0) _hex=$(_der "$1" | od -An -v -tx1 | tr -d ' \n') ;;
	1) _hex=$(_der "$1" | openssl dgst -sha256 -binary | od -An -v -tx1 | tr -d ' \n') ;;
	2) _hex=$(_der "$1" | openssl dgst -sha512 -binary | od -An -v -tx1 | tr -d ' \n') ;;
	*) echo "tlsa_data: matching type $4?" >&2; return 1 ;;
	esac
	[ -n "$_hex" ] || { echo "tlsa_data: cannot read $1" >&2; return 1; }
	echo "$2 $3 $4 $_hex"
}

# dnssec_tlsa HOST U S M CERT [PORT]: a TLSA record at _PORT._tcp.HOST
# (port 25 by default) for the certificate in PEM file CERT.
dnssec_tlsa() {
	_td=$(tlsa_data "$5" "$2" "$3" "$4") || return 1
	# shellcheck disable=SC2086
	dnssec_rr "_${6:-25}._tcp.$1" TLSA $_td
}

# _dnssec_parent ZONE: the deepest declared zone strictly above ZONE.
_dnssec_parent() {
	awk -v z="$1" '
	function within(n, p) { return p == "." || (length(n) > length(p) && substr(n, length(n) - length(p)) == "." p) }
	$1 != z && within(z, $1) && length($1) >= best { best = length($1); p = $1 }
	END { print p }' "$DNSSEC_DIR/zonelist"
}

# dnssec_start: key, sign and delegate every zone (the deepest first, so
# that each DS goes into its parent before the parent is signed), then
# start NSD on 127.0.0.1:$DNS_PORT.  Sets DNS_PORT, DNSSEC_TA.
dnssec_start() {
	_dd=$DNSSEC_DIR
	_now=$(date -u +%s)
	# Signatures valid from an hour ago for 30 days; the expired ones ended
	# yesterday (and began ten days ago).
	_inc=$(date -u -d "@$((_now - 3600))" +%Y%m%d%H%M%S)
	_end=$(date -u -d "@$((_now + 30 * 86400))" +%Y%m%d%H%M%S)
	_xinc=$(date -u -d "@$((_now - 10 * 86400))" +%Y%m%d%H%M%S)
	_xend=$(date -u -d "@$((_now - 86400))" +%Y%m%d%H%M%S)
	# Every record to its zone: the deepest zone that contains its owner.
	awk -v dir="$_dd/zones" '
	function within(n, p) { return p == "." || n == p || (length(n) > length(p) && substr(n, length(n) - length(p)) == "." p) }
	NR == FNR { z[NR] = $1; nz = NR; next }
	{
		best = ""
		for (i = 1; i <= nz; i++)
			if (within($1, z[i]) && length(z[i]) > length(best)) best = z[i]
		f = (best == "." ? "root." : best)
		print >> (dir "/" f "zone.rr")
	}' "$_dd/zonelist" "$_dd/rr"
	# Deepest first: more labels first; the root last.
	awk '{ n = ($1 == ".") ? 0 : gsub(/\./, ".", $1); print n, $0 }' "$_dd/zonelist" |
		sort -k1,1nr | cut -d' ' -f2- >"$_dd/order"
	: >"$_dd/nsd.zones"
	while read -r _z _sign _exp _bog _ds _serve; do
		_f=$_z
		[ "$_z" = . ] && _f=root
		_f=${_f%.}
		_src=$_dd/zones/$_f.zone
		{
			echo "\$TTL 300"
			printf '%s\t300\tIN\tSOA\tns.test. hostmaster.test. 1 3600 600 86400 300\n' "$_z"
			printf '%s\t300\tIN\tNS\tns.test.\n' "$_z"
			# The name server's address, also as glue in the root.
			[ "$_z" = . ] && printf 'ns.test.\t300\tIN\tA\t127.0.0.1\n'
			cat "$_dd/zones/${_f}.zone.rr" 2>/dev/null
		} >"$_src"
		rm -f "$_dd/zones/${_f}.zone.rr"
		_par=$(_dnssec_parent "$_z")
		_pf=$_par
		[ "$_par" = . ] && _pf=root
		_pf=${_pf%.}
		if [ "$_z" != . ]; then
			printf '%s\t300\tIN\tNS\tns.test.\n' "$_z" >>"$_dd/zones/${_pf}.zone.rr"
		fi
		if [ "$_sign" = yes ]; then
			_k=$(cd "$_dd/keys" && ldns-keygen -a ECDSAP256SHA256 -k "$_z") ||
				{ echo "ldns-keygen $_z failed" >&2; return 1; }
			ldns-signzone -o "$_z" -i "$_inc" -e "$_end" -f "$_dd/zones/$_f.signed" \
				"$_src" "$_dd/keys/$_k" >"$_dd/sign.out" 2>&1 ||
				{ echo "ldns-signzone $_z failed: $(cat "$_dd/sign.out")" >&2; return 1; }
			if [ "$_exp" != - ]; then
				# The same zone signed with dates in the past, and its
				# RRSIGs over TYPE put in place of the good ones.
				ldns-signzone -o "$_z" -i "$_xinc" -e "$_xend" -f "$_dd/zones/$_f.expired" \
					"$_src" "$_dd/keys/$_k" >"$_dd/sign.out" 2>&1 ||
					{ echo "ldns-signzone (expired) $_z failed: $(cat "$_dd/sign.out")" >&2; return 1; }
				{
					awk -v t="$_exp" '!($4 == "RRSIG" && $5 == t)' "$_dd/zones/$_f.signed"
					awk -v t="$_exp" '$4 == "RRSIG" && $5 == t' "$_dd/zones/$_f.expired"
				} >"$_dd/zones/$_f.tmp"
				mv "$_dd/zones/$_f.tmp" "$_dd/zones/$_f.signed"
			fi
			if [ "$_bog" != - ]; then
				# One character of each signature over TYPE changed.
				awk -v t="$_bog" 'BEGIN { OFS = "\t" }
				$4 == "RRSIG" && $5 == t {
					c = substr($NF, 5, 1)
					$NF = substr($NF, 1, 4) (c == "A" ? "B" : "A") substr($NF, 6)
				} { print }' "$_dd/zones/$_f.signed" >"$_dd/zones/$_f.tmp"
				mv "$_dd/zones/$_f.tmp" "$_dd/zones/$_f.signed"
			fi
			_dskey=$_dd/keys/$_k.key
			if [ "$_ds" = wrong ]; then
				_wk=$(cd "$_dd/keys" && ldns-keygen -a ECDSAP256SHA256 -k "$_z") || return 1
				_dskey=$_dd/keys/$_wk.key
			fi
			if [ "$_z" = . ]; then
				# The trust anchor: DS and DNSKEY of the root's key.
				{
					ldns-key2ds -n -2 "$_dd/keys/$_k.key"
					cat "$_dd/keys/$_k.key"
				} >"$DNSSEC_TA"
			else
				ldns-key2ds -n -2 "$_dskey" | awk 'BEGIN { OFS = "\t" } { $2 = 300; print }' \
					>>"$_dd/zones/${_pf}.zone.rr"
			fi
			_file=$_f.signed
		elif [ "$_serve" = broken ]; then
			# A record outside the zone: NSD refuses the whole file.
			printf '%s\t300\tIN\tSOA\tns.test. hostmaster.test. 1 3600 600 86400 300\nelsewhere.invalid.\t300\tIN\tA\t127.0.0.1\n' \
				"$_z" >"$_src"
			_file=$_f.zone
		else
			_file=$_f.zone
		fi
		printf 'zone:\n\tname: "%s"\n\tzonefile: "%s"\n' "$_z" "$_file" >>"$_dd/nsd.zones"
	done <"$_dd/order"
	DNS_PORT=$(free_port)
	cat >"$_dd/nsd.conf" <<EOF
server:
	ip-address: 127.0.0.1@$DNS_PORT
	do-ip6: no
	username: ""
	chroot: ""
	zonesdir: "$_dd/zones"
	database: ""
	zonelistfile: "$_dd/nsd/zone.list"
	xfrdfile: "$_dd/nsd/xfrd.state"
	xfrdir: "$_dd/nsd"
	pidfile: "$_dd/nsd/nsd.pid"
	logfile: "$_dd/nsd.log"
	server-count: 1
	verbosity: 2
	hide-version: yes
	reuseport: no
remote-control:
	control-enable: no
EOF
	cat "$_dd/nsd.zones" >>"$_dd/nsd.conf"
	nsd-checkconf "$_dd/nsd.conf" >"$_dd/nsd.out" 2>&1 ||
		{ echo "nsd.conf: $(cat "$_dd/nsd.out")" >&2; return 1; }
	nsd -d -c "$_dd/nsd.conf" >>"$_dd/nsd.out" 2>&1 &
	it_track nsd $! -
	wait_for_port "127.0.0.1:$DNS_PORT" udp 10 || { cat "$_dd/nsd.out" >&2; return 1; }
	# Serving: the root's SOA is answered (the zones are loaded).
	_t=$(it_until 10)
	until dig +short +norec +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 . SOA 2>/dev/null | grep -q 'ns.test'; do
		[ "$(date +%s)" -ge "$_t" ] && { echo "NSD does not answer for the root zone" >&2; cat "$_dd/nsd.out" >&2; return 1; }
		sleep 0.05
	done
}

# dnssec_retlsa ZONE HOST U S M CERT: while the world runs, replace the
# port-25 TLSA records of HOST (in ZONE, signed, one key) by one for CERT
# (TTL 1), sign ZONE again with its key and have NSD load it.
dnssec_retlsa() {
	_z=$(_dnssec_fqdn "$1")
	_own=$(_dnssec_fqdn "_25._tcp.$2")
	_td=$(tlsa_data "$6" "$3" "$4" "$5") || return 1
	_f=${_z%.}
	_src=$DNSSEC_DIR/zones/$_f.zone
	_key=$(ls "$DNSSEC_DIR/keys/K$_z"+*.key 2>/dev/null | head -n 1)
	[ -n "$_key" ] || { echo "dnssec_retlsa: no key for $_z" >&2; return 1; }
	_now=$(date -u +%s)
	{
		awk -v o="$_own" 'BEGIN { OFS = "\t" }
		$4 == "SOA" { $7 = $7 + 1 }
		!($1 == o && $4 == "TLSA") { print }' "$_src"
		printf '%s\t1\tIN\tTLSA\t%s\n' "$_own" "$_td"
	} >"$_src.new"
	mv "$_src.new" "$_src"
	ldns-signzone -o "$_z" -i "$(date -u -d "@$((_now - 3600))" +%Y%m%d%H%M%S)" \
		-e "$(date -u -d "@$((_now + 30 * 86400))" +%Y%m%d%H%M%S)" \
		-f "$DNSSEC_DIR/zones/$_f.signed" "$_src" "${_key%.key}" >"$DNSSEC_DIR/sign.out" 2>&1 ||
		{ echo "ldns-signzone $_z failed: $(cat "$DNSSEC_DIR/sign.out")" >&2; return 1; }
	kill -HUP "$(cat "$DNSSEC_DIR/nsd/nsd.pid")" || return 1
	# Loaded: NSD answers with the new record.
	_t=$(it_until 10)
	until dig +short +norec +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 "$_own" TLSA 2>/dev/null |
		tr -d ' ' | tr '[:upper:]' '[:lower:]' | grep -q "$(echo "$_td" | tr -d ' ')"; do
		[ "$(date +%s)" -ge "$_t" ] && { echo "NSD does not serve the new TLSA of $2" >&2; return 1; }
		sleep 0.1
	done
}

# dnssec_unbound_start [ADDR [PORT]]: a validating unbound (default on
# 127.0.0.1:53) with the world's trust anchor, forwarding everything to NSD.
# Sets UNBOUND_ADDR, UNBOUND_PORT.
dnssec_unbound_start() {
	UNBOUND_ADDR=${1:-127.0.0.1}
	UNBOUND_PORT=${2:-53}
	_u=$DNSSEC_DIR/unbound
	mkdir -p "$_u"
	{
		cat <<EOF
server:
	interface: $UNBOUND_ADDR@$UNBOUND_PORT
	access-control: 127.0.0.0/8 allow
	username: ""
	chroot: ""
	directory: "$_u"
	pidfile: ""
	use-syslog: no
	logfile: "$_u/unbound.log"
	verbosity: 1
	val-log-level: 2
	num-threads: 1
	do-ip6: no
	do-daemonize: no
EOF
		_dnssec_unbound_common
		echo "remote-control:"
		echo "	control-enable: no"
	} >"$_u/unbound.conf"
	unbound-checkconf "$_u/unbound.conf" >"$_u/check.out" 2>&1 ||
		{ echo "unbound.conf: $(cat "$_u/check.out")" >&2; return 1; }
	unbound -d -c "$_u/unbound.conf" >"$_u/unbound.out" 2>&1 &
	it_track unbound $! -
	wait_for_port "$UNBOUND_ADDR:$UNBOUND_PORT" udp 10 || { cat "$_u/unbound.out" "$_u/unbound.log" >&2; return 1; }
}

# The server settings every validator of this world needs: the anchor, the
# forwarding to NSD on loopback (which the unbound daemon refuses without
# do-not-query-localhost: every answer SERVFAIL), and "test." resolved:
# unbound and libunbound answer it themselves by default (RFC 6761),
# NXDOMAIN, "insecure".
_dnssec_unbound_common() {
	cat <<EOF
	trust-anchor-file: "$DNSSEC_TA"
	do-not-query-localhost: no
	local-zone: "test." nodefault
	qname-minimisation: no
	val-log-level: 2
forward-zone:
	name: "."
	forward-addr: 127.0.0.1@$DNS_PORT
server:
EOF
}

# dnssec_status NAME TYPE: what a forwarding validator with the world's
# anchor (libunbound, as mxtls uses it, through unbound-host) makes of NAME
# TYPE: "secure", "insecure", "bogus", "servfail" or "nxdomain", then the
# records.
dnssec_status() {
	_c=$DNSSEC_DIR/unbound-host.conf
	[ -f "$_c" ] || { echo "server:"; _dnssec_unbound_common; } >"$_c"
	_out=$(unbound-host -C "$_c" -v -t "$2" "$1" 2>&1)
	case $_out in
	*"(BOGUS"* | *"validation failure"*) echo bogus ;;
	*"SERVFAIL"*) echo servfail ;;
	*"NXDOMAIN"*) echo nxdomain ;;
	*"(secure)"*) echo secure ;;
	*"(insecure)"*) echo insecure ;;
	*) echo "unknown" ;;
	esac
	printf '%s\n' "$_out"
}

# dnssec_status_is NAME TYPE STATUS: dnssec_status says STATUS first.
dnssec_status_is() {
	_got=$(dnssec_status "$1" "$2")
	[ "$(printf '%s\n' "$_got" | head -n 1)" = "$3" ] && return 0
	echo "$1 $2: expected $3, got:"
	printf '%s\n' "$_got" | sed 's/^/  /'
	return 1
}

# ---------------------------------------------------------------- DANE PKI

# dane_cert NAME ISSUER DNSNAME...: a P-256 server certificate for the
# DNSNAMEs in $W/dane/NAME.{key,pem,chain.pem}.  ISSUER: "self"
# (self-signed), "dane-ca" (a private CA, $W/dane/dane-ca.pem, in no
# bundle: only a DANE-TA record makes it an anchor; the chain ends with
# it, as RFC 7671 asks of DANE-TA servers) or "webpki" (the test PKI's
# intermediate: valid under $PKI/test-root-ca.pem).  Prints the name to
# give pf_mx as cert= (relative to $PKI).
dane_cert() {
	_n=$1
	_iss=$2
	shift 2
	_san=""
	for _h in "$@"; do _san="${_san:+$_san,}DNS:$_h"; done
	_dc=$W/dane
	mkdir -p "$_dc"
	(
		cd "$_dc" || exit 1
		export OPENSSL_CONF=/dev/null
		cat >ext.cnf <<EOF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = ${_san:-DNS:unused.invalid}
EOF
		if [ "$_iss" = dane-ca ] && [ ! -f dane-ca.pem ]; then
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dane-ca.key 2>/dev/null &&
				openssl req -x509 -new -key dane-ca.key -out dane-ca.pem -days 30 \
					-subj "/O=mxtls tests/CN=DANE-TA private CA" -extensions ca -config ext.cnf || exit 1
		fi
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$_n.key" 2>/dev/null || exit 1
		case $_iss in
		self)
			openssl req -x509 -new -key "$_n.key" -out "$_n.pem" -days 30 \
				-subj "/CN=${1:-unused.invalid}" -extensions leaf -config ext.cnf &&
				cp "$_n.pem" "$_n.chain.pem"
			;;
		dane-ca | webpki)
			_ca=dane-ca.pem _cak=dane-ca.key
			[ "$_iss" = webpki ] && _ca=$PKI/inter.pem _cak=$PKI/inter.key
			openssl req -new -key "$_n.key" -out "$_n.csr" -subj "/CN=${1:-unused.invalid}" -config ext.cnf &&
				openssl x509 -req -in "$_n.csr" -CA "$_ca" -CAkey "$_cak" \
					-set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile ext.cnf \
					-extensions leaf -out "$_n.pem" 2>/dev/null &&
				cat "$_n.pem" "$_ca" >"$_n.chain.pem"
			;;
		*) echo "dane_cert: issuer $_iss?" >&2; exit 1 ;;
		esac
	) >"$W/dane/$_n.out" 2>&1 || { echo "dane_cert $_n: $(cat "$W/dane/$_n.out")" >&2; return 1; }
	chmod 644 "$_dc/$_n".*pem
	chmod 600 "$_dc/$_n.key"
	# pf_mx reads $PKI/LEAF.key and $PKI/LEAF.chain.pem.
	echo "../$IT_NAME/dane/$_n"
}

# ---------------------------------------------------------------- Postfix as a DANE client

# pf_dane_client NAME LISTEN: a Postfix that takes mail from 127.0.0.0/8 on
# LISTEN and delivers it by MX itself, as a DANE client (RFC 7672):
# smtp_dns_support_level = dnssec, smtp_tls_security_level = dane.  Its
# resolver is the validating unbound of dnssec_unbound_start, which must
# listen on 127.0.0.1:53: Postfix asks the libc resolver, which reads
# /etc/resolv.conf and passes on the AD bit only with "options trust-ad".
# That resolv.conf is bind-mounted over /etc/resolv.conf in a mount
# namespace of the master's own (unshare -m), which every Postfix process
# of this instance inherits; the host's file is never touched.
pf_dane_client() {
	_n=$1
	_d=$(pf_dir "$_n")
	rm -rf "$_d"
	mkdir -p "$_d"
	_pf_queue "$_d"
	printf 'nameserver 127.0.0.1\noptions trust-ad edns0 attempts:1 timeout:10\n' >"$_d/resolv.conf"
	{
		# lib.sh turns DNS off for its MTAs; this one needs it.
		_pf_main_common "$_d" client.dane.test | grep -vE '^smtp_(dns_support_level|host_lookup) '
		cat <<EOF2
relayhost =
relay_domains =
smtp_dns_support_level = dnssec
smtp_host_lookup = dns
smtp_tls_security_level = dane
# 2: the TLSA record that matched (trust anchor or end entity) is logged.
smtp_tls_loglevel = 2
smtp_helo_name = client.dane.test
smtp_address_preference = ipv4
# One connection per delivery: each case is judged on its own handshake.
smtp_connection_cache_on_demand = no
notify_classes =
bounce_queue_lifetime = 1h
maximal_queue_lifetime = 1h
EOF2
	} >"$_d/main.cf"
	_pf_master "$2" >"$_d/master.cf"
	if port_busy "$2"; then
		echo "postfix $_n: $2 is already in use" >&2
		return 1
	fi
	: >"$_d/maillog"
	touch -d '-1 minute' "$_d/main.cf" "$_d/master.cf"
	# unshare execs sh, sh execs the master: $! is the master.
	# shellcheck disable=SC2016 # the inner sh expands $1..$3
	unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && exec "$2" -c "$3"' \
		sh "$_d/resolv.conf" "$PF_SBIN/master" "$_d" >"$_d/master.out" 2>&1 &
	_pid=$!
	it_track postfix $_pid "$_n"
	echo $_pid >"$_d/master.job"
	wait_for_port "$2" tcp 15 || {
		echo "postfix $_n did not start:" >&2
		cat "$_d/master.out" "$_d/maillog" >&2
		return 1
	}
}

# pf_dane_outcome NAME RCPT: what the DANE client NAME did with its latest
# delivery attempt to RCPT, one line: "dane-ee", "dane-ta" (delivered, the
# TLS connection verified by a DANE-EE or DANE-TA record), "tls"
# (delivered over TLS, not verified), "clear" (delivered in plaintext),
# "deferred REASON", "bounced REASON", or "none" (no attempt logged yet).
pf_dane_outcome() {
	awk -v rcpt="to=<$2>," '
	# The smtp process number, e.g. "postfix/smtp[123]:" -> 123.
	function pid(   s) {
		if (!match($0, /postfix\/smtp\[[0-9]+\]/)) return ""
		s = substr($0, RSTART, RLENGTH); sub(/.*\[/, "", s); sub(/\]/, "", s); return s
	}
	/ TLS connection established to / { p = pid(); tls[p] = $0; next }
	/: Matched DANE (EE|TA) / { p = pid(); m[p] = m[p] " " $0; next }
	/ status=/ && !index($0, rcpt) { p = pid(); tls[p] = ""; m[p] = ""; next }
	index($0, rcpt) && / status=/ {
		p = pid()
		st = $0; sub(/.* status=/, "", st)
		kind = substr(st, 1, index(st " ", " ") - 1)
		why = st; sub(/^[a-z]+ /, "", why)
		if (kind == "sent") {
			if (tls[p] == "") out = "clear"
			else if (tls[p] ~ / Verified TLS/) out = (m[p] ~ /Matched DANE TA/ ? "dane-ta" : "dane-ee")
			else out = "tls"
		} else
			out = kind " " why
		tls[p] = ""; m[p] = ""
		last = out
	}
	END { print (last == "" ? "none" : last) }' "$(pf_log "$1")"
}
