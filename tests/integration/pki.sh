#!/bin/sh
# A test PKI for the integration tests.  Usage: pki.sh OUTDIR
#
# OUTDIR/test-root-ca.pem      the bundle mxtls trusts: the test root only
# OUTDIR/root.pem, inter.pem   root CA, intermediate CA (signed by the root)
# OUTDIR/other-root.pem        a second root that is in no bundle
# For every leaf NAME below:
#   OUTDIR/NAME.key            its private key
#   OUTDIR/NAME.pem            the leaf certificate alone
#   OUTDIR/NAME.chain.pem      what a server presents: leaf, then intermediates
#
# Leaves (all name the MX host names of LEAF_NAMES unless said otherwise):
#   valid        EC P-256, issued by the intermediate, valid now
#   rsa          RSA 2048, otherwise like valid
#   expired      validity 2020-01-01 .. 2021-01-01
#   notyet       validity 2099-01-01 .. 2100-01-01
#   wrongname    valid, but only for wrong.example.net
#   selfsigned   a self-signed certificate for the right names
#   unknownca    issued by other-root (not trusted)
#   nointer      issued by the intermediate, chain file WITHOUT the intermediate
#   cnonly       valid, no subjectAltName at all: only its CN, mx.cnonly.test
#
# Idempotent: a second run with the same recipe leaves OUTDIR alone.
set -eu

out=${1:?usage: pki.sh OUTDIR}
# The host names a "right" certificate carries.
LEAF_NAMES="mx.example.test mx1.example.test mx2.example.test mx3.example.test
mx.plain.test mx.nexthop.test mx.tls.test mx.valid.test mx.rsa.test mx.expired.test
mx.notyet.test mx.selfsigned.test mx.unknownca.test mx.nointer.test
mx.verifynone.test localhost"
# Any change to this script rebuilds the PKI.
RECIPE="mxtls-test-pki $(cksum <"$0" | cut -d' ' -f1)"

if [ -f "$out/recipe" ] && [ "$(cat "$out/recipe")" = "$RECIPE" ] &&
	[ -f "$out/nointer.chain.pem" ]; then
	exit 0
fi

rm -rf "$out"
mkdir -p "$out"
cd "$out"
export OPENSSL_CONF=/dev/null # never read the system openssl.cnf

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

san=""
for n in $LEAF_NAMES; do san="${san:+$san,}DNS:$n"; done

# Extensions, one section per kind of certificate.
cat >ext.cnf <<EOF
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
[wrongname]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example.net
[cnonly]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[selfsigned]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = $san
EOF

# A minimal `openssl ca` setup, so that any validity period can be set.
mkdir -p db/new
: >db/index.txt
openssl rand -hex 8 >db/serial
cat >ca.cnf <<EOF
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
organizationName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
EOF

# sign CSR OUT ISSUERCERT ISSUERKEY EXTSECTION START END
sign() {
	openssl ca -config ca.cnf -batch -notext \
		-in "$1" -out "$2" -cert "$3" -keyfile "$4" \
		-extfile ext.cnf -extensions "$5" -startdate "$6" -enddate "$7" 2>/dev/null ||
		{ echo "pki.sh: signing $2 failed" >&2; exit 1; }
}
csr() { # KEY CSR CN
	openssl req -config ca.cnf -new -key "$1" -out "$2" -subj "/O=mxtls tests/CN=$3"
}

now=$(date -u -d "-1 hour" +%Y%m%d%H%M%SZ)
later=$(date -u -d '+3650 days' +%Y%m%d%H%M%SZ)

# Roots: self-signed with `openssl req -x509` (valid for 20 years).
eckey root.key
openssl req -x509 -new -key root.key -out root.pem -days 7300 \
	-subj "/O=mxtls tests/CN=mxtls Test Root CA" -extensions root -config ext.cnf
eckey other-root.key
openssl req -x509 -new -key other-root.key -out other-root.pem -days 7300 \
	-subj "/O=somebody else/CN=Unknown Root CA" -extensions root -config ext.cnf

# The intermediate, signed by the root.
eckey inter.key
csr inter.key inter.csr "mxtls Test Intermediate CA"
sign inter.csr inter.pem root.pem root.key inter "$now" "$later"

# leaf NAME KEYTYPE ISSUER(inter|other|self) EXT START END CHAIN(yes|no) [CN]
leaf() {
	if [ "$2" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
	else
		eckey "$1.key"
	fi
	case $3 in
	self)
		openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 \
			-subj "/O=mxtls tests/CN=mx.example.test" -extensions "$4" -config ext.cnf
		;;
	inter)
		csr "$1.key" "$1.csr" "${8:-mx.example.test}"
		sign "$1.csr" "$1.pem" inter.pem inter.key "$4" "$5" "$6"
		;;
	other)
		csr "$1.key" "$1.csr" mx.example.test
		sign "$1.csr" "$1.pem" other-root.pem other-root.key "$4" "$5" "$6"
		;;
	esac
	if [ "$7" = yes ]; then
		cat "$1.pem" inter.pem >"$1.chain.pem"
	else
		cat "$1.pem" >"$1.chain.pem"
	fi
}

leaf valid ec inter leaf "$now" "$later" yes
leaf rsa rsa inter leaf "$now" "$later" yes
leaf expired ec inter leaf 20200101000000Z 20210101000000Z yes
leaf notyet ec inter leaf 20990101000000Z 21000101000000Z yes
leaf wrongname ec inter wrongname "$now" "$later" yes
leaf selfsigned ec self selfsigned - - no
leaf unknownca ec other leaf "$now" "$later" no
leaf nointer ec inter leaf "$now" "$later" no
leaf cnonly ec inter cnonly "$now" "$later" yes mx.cnonly.test

cp root.pem test-root-ca.pem
rm -f ./*.csr
chmod 644 ./*.pem
chmod 600 ./*.key
printf '%s\n' "$RECIPE" >recipe
