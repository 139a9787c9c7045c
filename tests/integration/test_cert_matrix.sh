#!/bin/sh
# The certificate matrix (docs/security.md section E) beyond the cases
# test_certs.sh covers (expired, not yet valid, wrong name, self-signed,
# unknown CA, missing intermediate): mxtls under mandatory + verify =
# strict against an MX that presents
#
#   CASE       DOMAIN              MX HOST                 ADDR  CERTIFICATE            WANT
#   weakrsa    weakrsa.test        mx.weakrsa.test         .201  RSA 1024 leaf          451 (E-10)
#   sha1       sha1.test           mx.sha1.test            .202  leaf signed SHA-1      451 (E-10)
#   ncok       allowed.test        mx.allowed.test         .203  under an intermediate  deliver (control
#                                                                 with nameConstraints    for ncbad)
#                                                                 permitted .allowed.test
#   ncbad      other.test          mx.other.test           .204  same intermediate,     451 (E-09)
#                                                                 leaf for mx.other.test
#   eku        eku.test            mx.eku.test             .205  EKU clientAuth only    451 (E-08)
#   cnonly     cnonly.test         mx.cnonly.test          .206  no SAN, CN matches     deliver (README)
#   cnsan      cnsan.test          mx.cnsan.test           .207  SAN other name, CN     451 (a DNS SAN
#                                                                 matches                 rules out CN)
#   idn        xn--bcher-kva.test  mx.xn--bcher-kva.test   .208  SAN A-label; match     deliver (E-12)
#                                                                 and mx in UTF-8
#   idnbad     xn--mller-kva.test  mx.xn--mller-kva.test   .209  SAN mx.muller.test     451
#                                                                 (look-alike, no IDNA)
#   wildone    wildone.test        mx.example.test         .210  SAN *.example.test     deliver (E-03)
#   wildtwo    wildtwo.test        a.b.example.test        .211  SAN *.example.test     451 (E-03)
#   wildapex   wildapex.test       example.test            .212  SAN *.example.test     451 (E-03)
#   partial    partial.test        mx.partial.test         .213  SAN m*.partial.test    451 (E-03)
#   notca      notca.test          mx.notca.test           .214  issued by an inter-    451 (E-08)
#                                                                 mediate with CA:FALSE
#
# (ADDR: 127.0.0.N.)  Every certificate chains to the shared test root
# (pki.sh) that is mxtls's only CA; they are made here with openssl in the
# work dir.  Each MX is tests/hostile/smtpd.py --mode normal, through
# files/certs-matrix/smtpd_anycert.py so that it serves weak keys and
# SHA-1 too.  Each case: "delivered" (250 to the final dot, the MX saved
# it over TLS, mxtls logged verify=ok), or "refused" (RCPT 451 4.7.5 with
# the reason, nothing delivered: no MAIL reached the MX, mxtls logged
# verify=fail).  The "harness:" checks show with openssl that each
# certificate has the property it is meant to have.
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2317 # functions run through check()
. "$(dirname "$0")/lib.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup

C=$W/certs
mkdir -p "$C"
SMTPD="$IT_FILES/certs-matrix/smtpd_anycert.py"

# ---------------------------------------------------------------- PKI

# mkcert NAME ISSUER KEYTYPE DIGEST EXTS [CN]: NAME.key, NAME.pem signed by
# ISSUER ($C/ISSUER or $PKI/ISSUER: .pem + .key), with the extension lines
# EXTS; subject CN (default NAME).
mkcert() {
	_n=$1 _iss=$2 _kt=$3 _md=$4 _ext=$5 _cn=${6:-$1}
	case $_kt in
	rsa*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${_kt#rsa}" \
		-out "$C/$_n.key" 2>/dev/null ;;
	ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$C/$_n.key" 2>/dev/null ;;
	esac
	if [ -f "$C/$_iss.pem" ]; then _ip=$C/$_iss; else _ip=$PKI/$_iss; fi
	printf '%s\n' "$_ext" >"$C/$_n.ext"
	if ! openssl req -new -key "$C/$_n.key" -subj "/O=mxtls cert matrix/CN=$_cn" \
		-out "$C/$_n.csr" 2>"$C/$_n.err" ||
		! openssl x509 -req -in "$C/$_n.csr" -CA "$_ip.pem" -CAkey "$_ip.key" \
			-set_serial "0x$(openssl rand -hex 8)" -days 30 "-$_md" \
			-extfile "$C/$_n.ext" -out "$C/$_n.pem" 2>>"$C/$_n.err"; then
		cat "$C/$_n.err"
		return 1
	fi
}
LEAF='basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth'
CA='basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign'

make_pki() {
	export OPENSSL_CONF=/dev/null # never the system openssl.cnf
	mkcert weakrsa inter rsa1024 sha256 "$LEAF
subjectAltName = DNS:mx.weakrsa.test" &&
	mkcert sha1 inter ec sha1 "$LEAF
subjectAltName = DNS:mx.sha1.test" &&
	mkcert nc-inter root ec sha256 "$CA
nameConstraints = critical, permitted;DNS:.allowed.test" &&
	mkcert ncok nc-inter ec sha256 "$LEAF
subjectAltName = DNS:mx.allowed.test" &&
	mkcert ncbad nc-inter ec sha256 "$LEAF
subjectAltName = DNS:mx.other.test" &&
	mkcert eku inter ec sha256 'basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = DNS:mx.eku.test' &&
	mkcert cnonly inter ec sha256 "$LEAF" mx.cnonly.test &&
	mkcert cnsan inter ec sha256 "$LEAF
subjectAltName = DNS:other-name.cnsan.test" mx.cnsan.test &&
	mkcert idn inter ec sha256 "$LEAF
subjectAltName = DNS:mx.xn--bcher-kva.test" &&
	mkcert idnbad inter ec sha256 "$LEAF
subjectAltName = DNS:mx.muller.test" &&
	mkcert wild inter ec sha256 "$LEAF
subjectAltName = DNS:*.example.test" &&
	mkcert partial inter ec sha256 "$LEAF
subjectAltName = DNS:m*.partial.test" &&
	mkcert notca-inter root ec sha256 'basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyCertSign' &&
	mkcert notca notca-inter ec sha256 "$LEAF
subjectAltName = DNS:mx.notca.test" || return 1
	for _c in weakrsa sha1 eku cnonly cnsan idn idnbad wild partial; do
		cat "$C/$_c.pem" "$PKI/inter.pem" >"$C/$_c.chain.pem"
	done
	cat "$C/ncok.pem" "$C/nc-inter.pem" >"$C/ncok.chain.pem"
	cat "$C/ncbad.pem" "$C/nc-inter.pem" >"$C/ncbad.chain.pem"
	cat "$C/notca.pem" "$C/notca-inter.pem" >"$C/notca.chain.pem"
	unset OPENSSL_CONF
}
make_pki || { fail "certificates made with openssl" "see above"; finish; }

# The cases: NAME DOMAIN MXHOST ADDR CERT
CASES="weakrsa weakrsa.test mx.weakrsa.test 127.0.0.201 weakrsa
sha1 sha1.test mx.sha1.test 127.0.0.202 sha1
ncok allowed.test mx.allowed.test 127.0.0.203 ncok
ncbad other.test mx.other.test 127.0.0.204 ncbad
eku eku.test mx.eku.test 127.0.0.205 eku
cnonly cnonly.test mx.cnonly.test 127.0.0.206 cnonly
cnsan cnsan.test mx.cnsan.test 127.0.0.207 cnsan
idn xn--bcher-kva.test mx.xn--bcher-kva.test 127.0.0.208 idn
idnbad xn--mller-kva.test mx.xn--mller-kva.test 127.0.0.209 idnbad
wildone wildone.test mx.example.test 127.0.0.210 wild
wildtwo wildtwo.test a.b.example.test 127.0.0.211 wild
wildapex wildapex.test example.test 127.0.0.212 wild
partial partial.test mx.partial.test 127.0.0.213 partial
notca notca.test mx.notca.test 127.0.0.214 notca"

printf '%s\n' "$CASES" >"$W/cases"
# case_field NAME N: field N (2 domain, 3 MX host, 4 address, 5 cert).
case_field() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$W/cases"; }

# --- each certificate has the property it is meant to have (openssl verify,
# as a strict web-PKI client would: -x509_strict, server purpose, the name)
ov() { # CERT CHAIN_EXTRA NAME OPTS...: openssl verify output
	_c=$1 _u=$2 _h=$3
	shift 3
	OPENSSL_CONF=/dev/null openssl verify -x509_strict -purpose sslserver \
		-CAfile "$PKI/test-root-ca.pem" -untrusted "$_u" \
		${_h:+-verify_hostname "$_h"} "$@" "$C/$_c.pem" 2>&1
}
ov_is() { # WANT_ERE CERT CHAIN_EXTRA NAME OPTS...
	_w=$1
	shift
	_got=$(ov "$@")
	printf '%s\n' "$_got" | grep -qE -- "$_w" && return 0
	echo "openssl verify $*: expected /$_w/, got:"
	printf '%s\n' "$_got" | sed 's/^/  /'
	return 1
}
I=$PKI/inter.pem
check "harness: weakrsa is RSA 1024 and verifies at auth level 1" sh -c \
	"OPENSSL_CONF=/dev/null openssl x509 -in '$C/weakrsa.pem' -noout -text | grep -q 'Public-Key: (1024 bit)' &&
	 OPENSSL_CONF=/dev/null openssl verify -auth_level 1 -CAfile '$PKI/test-root-ca.pem' -untrusted '$I' '$C/weakrsa.pem' >/dev/null"
check "harness: weakrsa fails at auth level 2 (112 bits)" ov_is 'too weak|too small' weakrsa "$I" mx.weakrsa.test -auth_level 2
check "harness: sha1 is signed ecdsa-with-SHA1" sh -c \
	"OPENSSL_CONF=/dev/null openssl x509 -in '$C/sha1.pem' -noout -text | grep -q 'Signature Algorithm: ecdsa-with-SHA1'"
check "harness: sha1 fails at auth level 1" ov_is 'md too weak|too weak' sha1 "$I" mx.sha1.test -auth_level 1
check "harness: ncok verifies under the constrained intermediate" ov_is ': OK$' ncok "$C/nc-inter.pem" mx.allowed.test
check "harness: ncbad violates the name constraint" ov_is 'permitted subtree violation' ncbad "$C/nc-inter.pem" mx.other.test
check "harness: eku fails for a server (clientAuth only)" ov_is 'unsu(pported|itable) certificate purpose' eku "$I" mx.eku.test
check "harness: cnonly has no SAN" sh -c \
	"! OPENSSL_CONF=/dev/null openssl x509 -in '$C/cnonly.pem' -noout -ext subjectAltName 2>/dev/null | grep -q DNS:"
check "harness: cnsan's CN is mx.cnsan.test, its SAN another name" sh -c \
	"OPENSSL_CONF=/dev/null openssl x509 -in '$C/cnsan.pem' -noout -subject | grep -q 'CN *= *mx.cnsan.test' &&
	 OPENSSL_CONF=/dev/null openssl x509 -in '$C/cnsan.pem' -noout -ext subjectAltName | grep -q 'DNS:other-name.cnsan.test'"
check "harness: cnsan fails for mx.cnsan.test (a DNS SAN excludes the CN)" ov_is 'hostname mismatch' cnsan "$I" mx.cnsan.test
check "harness: idn verifies for mx.xn--bcher-kva.test" ov_is ': OK$' idn "$I" mx.xn--bcher-kva.test
check "harness: idnbad fails for mx.xn--mller-kva.test" ov_is 'hostname mismatch' idnbad "$I" mx.xn--mller-kva.test
check "harness: wild verifies for mx.example.test" ov_is ': OK$' wild "$I" mx.example.test
check "harness: wild fails for a.b.example.test" ov_is 'hostname mismatch' wild "$I" a.b.example.test
check "harness: wild fails for example.test" ov_is 'hostname mismatch' wild "$I" example.test
check "harness: notca fails (intermediate is not a CA)" ov_is 'invalid CA certificate|not a CA' notca "$C/notca-inter.pem" mx.notca.test

# ---------------------------------------------------------------- the MXs

while read -r n dom mx addr cert; do
	dns_mx "$dom" "$mx" 10
	dns_a "$mx" "$addr"
done <"$W/cases"
dns_start || finish

# Start every MX at once, then wait for all their pidfiles.
while read -r n dom mx addr cert; do
	mkdir -p "$W/mx-$n/mail"
	python3 "$SMTPD" --listen "$addr:25" --mode normal --hostname "$mx" \
		--cert "$C/$cert.chain.pem" --key "$C/$cert.key" \
		--maildir "$W/mx-$n/mail" --log "$W/mx-$n/log" \
		--pidfile "$W/mx-$n/pid" >"$W/mx-$n/out" 2>&1 &
	it_track smtpd $! "$n"
done <"$W/cases"
mx_up() {
	_t=$(it_until 15)
	while read -r _n _rest; do
		while [ ! -s "$W/mx-$_n/pid" ]; do
			if [ "$(date +%s)" -ge "$_t" ]; then
				echo "MX $_n did not start:"
				cat "$W/mx-$_n/out" "$W/mx-$_n/log" 2>/dev/null | sed 's/^/  /'
				return 1
			fi
			sleep 0.05
		done
	done <"$W/cases"
}
check "all $(wc -l <"$W/cases") MXs listen" mx_up
[ "$LAST_OK" = yes ] || finish

mxtls_start default=mandatory <<'EOF' || finish
; IDN: the match and the permitted MX name in UTF-8; DNS and the
; certificate carry the A-label form.
[match bücher.test]
profile = mandatory
mx = mx.bücher.test

[match müller.test]
profile = mandatory
mx = mx.müller.test
EOF

M=$W/msg
mkdir -p "$M"

# mx_saved NAME: how many messages MX NAME acknowledged (NNN.eml files).
mx_saved() { find "$W/mx-$1/mail" -maxdepth 1 -name '[0-9]*.eml' | wc -l | tr -d ' '; }

# saved_is NAME MSGFILE: MX NAME saved exactly one message, MSGFILE (CRLF
# line ends), and it came over TLS.
saved_is() {
	_e=$(find "$W/mx-$1/mail" -maxdepth 1 -name '[0-9]*.eml' | head -n 1)
	[ -n "$_e" ] || { echo "MX $1 saved no message"; return 1; }
	[ "$(mx_saved "$1")" -eq 1 ] || { echo "MX $1 saved $(mx_saved "$1") messages"; return 1; }
	python3 - "$_e" "$2" <<'PY' || return 1
import sys
got = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
want = open(sys.argv[2], "rb").read()
if got != want:
    print("saved message differs from the one sent (%d vs %d bytes)" % (len(got), len(want)))
    sys.exit(1)
PY
	grep -qx 'tls: yes' "${_e%.eml}.env" || { echo "not over TLS:"; cat "${_e%.eml}.env"; return 1; }
}

# case_id NAME: the docs/security.md case NAME proves and a blank, which check
# names start with ("" for the README decisions cnonly and cnsan).
case_id() {
	case $1 in
	weakrsa | sha1) echo "E-10 " ;;
	ncok | ncbad) echo "E-09 " ;;
	eku | notca) echo "E-08 " ;;
	idn | idnbad) echo "E-12 " ;;
	wild* | partial) echo "E-03 " ;;
	esac
}

# deliver NAME: 250 to the final dot, saved byte for byte over TLS, verify=ok.
deliver() {
	_id=$(case_id "$1")
	_dom=$(case_field "$1" 2)
	_mx=$(case_field "$1" 3)
	mkmsg "$M/$1" "cert matrix $1"
	_x=$(mxtls_mark)
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<u@$_dom>" "DATA=$M/$1" QUIT
	check "$_id$1: 250 to the final dot" reply_is "$W/t.$1" DOT 250
	check_if "$LAST_OK" "$_id$1: delivered byte-identical over TLS" saved_is "$1" "$M/$1"
	check "$_id$1: mxtls logged verify=ok for $_mx" mxtls_delivery_since "$_x" \
		'verify=ok' "mx=$(printf '%s' "$_mx" | sed 's/\./\\./g')"
}

# refuse NAME REASON_ERE: RCPT 451 4.7.5 with the reason and the MX host,
# nothing delivered, no MAIL at the MX, verify=fail logged.
refuse() {
	_id=$(case_id "$1")
	_dom=$(case_field "$1" 2)
	_mx=$(case_field "$1" 3)
	mkmsg "$M/$1" "cert matrix $1"
	_x=$(mxtls_mark)
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<u@$_dom>" "DATA=$M/$1" QUIT
	check "$_id$1: RCPT 451 4.7.5" reply_is "$W/t.$1" "RCPT TO:<u@$_dom>" '451 4\.7\.5'
	check "$_id$1: the reply gives the reason (/$2/)" reply_has "$W/t.$1" "RCPT TO:<u@$_dom>" "$2"
	check "$_id$1: the reply names the MX host $_mx" reply_has "$W/t.$1" "RCPT TO:<u@$_dom>" \
		"$(printf '%s' "$_mx" | sed 's/\./\\./g')"
	check "$_id$1: not 250 to the final dot" sh -c "! grep -q '^DOT => 250' '$W/t.$1'"
	check "$_id$1: nothing delivered, no MAIL reached the MX" sh -c \
		"[ \$(find '$W/mx-$1/mail' -maxdepth 1 -name '*.eml' | wc -l) -eq 0 ] &&
		 ! grep -qE '^command (MAIL|RCPT|DATA)' '$W/mx-$1/log' || { cat '$W/mx-$1/log'; false; }"
	check "$_id$1: mxtls logged verify=fail" mxtls_delivery_since "$_x" 'verify=fail' \
		"$(printf '%s' "$_dom" | sed 's/\./\\./g')"
}

refuse weakrsa 'key|weak|small|short|bits'
refuse sha1 'sha-?1|signature|digest|algorithm|weak'
deliver ncok
refuse ncbad 'constraint|permitted|subtree'
refuse eku 'purpose|usage|eku'
deliver cnonly
refuse cnsan 'mismatch'
deliver idn
refuse idnbad 'mismatch'
deliver wildone
refuse wildtwo 'mismatch'
refuse wildapex 'mismatch'
refuse partial 'mismatch'
refuse notca 'ca cert|not a ca|basic constraints|invalid ca'

mxtls_stop
finish
