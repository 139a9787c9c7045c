#!/bin/sh
# Regenerates the test PKI of tests/unit/test_dane.c, and digests.h with
# the TLSA association data computed here by openssl(1), independently of
# the code under test.  Run from anywhere; the files are committed, so
# this is only needed to change them.  Validity 100 years, except the
# expired chain.
#
#   ee-self      self-signed leaf for mx.example.net (for DANE-EE)
#   ca           root CA;  int: intermediate under ca
#   leaf         under int: DNS mx.example.net
#   other        under int: DNS other.example (and CN mx.example.net, which
#                must not count: it has a DNS-ID)
#   wild         under int: DNS *.example.net
#   cnonly       under int: no subjectAltName, CN mx.example.net
#   old-int      intermediate under ca, expired in 2001
#   old-leaf     under old-int, DNS mx.example.net, expired in 2001
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# A CA database for `openssl ca`, which (unlike `x509 -req` in 3.0) can
# set dates in the past.
mkdir "$tmp/db"
: >"$tmp/db/index"
echo 1000 >"$tmp/db/serial"
cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $tmp/db/index
serial = $tmp/db/serial
new_certs_dir = $tmp/db
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf_mx]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.example.net
[leaf_other]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[leaf_wild]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:*.example.net
[leaf_cnonly]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
EOF

# sign NAME CN ISSUER EXT START END
sign() {
	key "$1"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
	openssl ca -batch -config "$tmp/ca.cnf" -notext -cert "$3.pem" -keyfile "$3.key" \
		-extensions "$4" -startdate "$5" -enddate "$6" -in "$tmp/$1.csr" -out "$1.pem" 2>/dev/null
}

long_from=20240101000000Z
long_to=21240101000000Z

# selfsign NAME CN EXT: fixed dates too, so that a machine whose clock is
# behind the one that made the files still finds them valid.
selfsign() {
	key "$1"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
	openssl ca -batch -config "$tmp/ca.cnf" -notext -selfsign -keyfile "$1.key" \
		-extensions "$3" -startdate $long_from -enddate $long_to -in "$tmp/$1.csr" -out "$1.pem" 2>/dev/null
}

selfsign ee-self mx.example.net leaf_mx
selfsign ca "DANE Test Root" v3_ca
sign int "DANE Test Intermediate" ca v3_ca $long_from $long_to
sign leaf mx.example.net int leaf_mx $long_from $long_to
sign other mx.example.net int leaf_other $long_from $long_to
sign wild "*.example.net" int leaf_wild $long_from $long_to
sign cnonly mx.example.net int leaf_cnonly $long_from $long_to
sign old-int "DANE Test Old Intermediate" ca v3_ca 20000101000000Z 20010101000000Z
sign old-leaf mx.example.net old-int leaf_mx 20000101000000Z 20010101000000Z

# The private keys are not needed by the test: only the certificates.
rm -f ./*.key

# TLSA association data: selector 0 = the certificate's DER, 1 = its
# SubjectPublicKeyInfo DER; matching type 1 = SHA-256, 2 = SHA-512.
spki() { openssl x509 -in "$1.pem" -noout -pubkey | openssl pkey -pubin -outform DER; }
cert() { openssl x509 -in "$1.pem" -outform DER; }
hex() { od -An -v -tx1 | tr -d ' \n'; }
{
	echo "/* Made by make.sh with openssl(1): do not edit. */"
	for n in ee-self ca int leaf other wild cnonly old-int old-leaf; do
		c=$(echo "$n" | tr a-z- A-Z_)
		echo "#define ${c}_SPKI_SHA256 \"$(spki "$n" | openssl dgst -sha256 -binary | hex)\""
		echo "#define ${c}_SPKI_SHA512 \"$(spki "$n" | openssl dgst -sha512 -binary | hex)\""
		echo "#define ${c}_CERT_SHA256 \"$(cert "$n" | openssl dgst -sha256 -binary | hex)\""
		echo "#define ${c}_CERT_SHA512 \"$(cert "$n" | openssl dgst -sha512 -binary | hex)\""
		echo "#define ${c}_SPKI \"$(spki "$n" | hex)\""
		echo "#define ${c}_CERT \"$(cert "$n" | hex)\""
	done
} >digests.h
echo "made $(ls ./*.pem | wc -l) certificates and digests.h"
