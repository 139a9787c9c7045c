#!/bin/sh
# Certificate verification of the MX under verify = strict (mandatory), and
# what verify = none and opportunistic do with a bad certificate.
#
# One Postfix MX per certificate of the test PKI (pki.sh), each with an MX
# host (name and address) of its own so that retry records never mix:
#   DOMAIN            MX host             address     certificate served
#   valid.test        mx.valid.test       127.0.0.11  valid (EC), with intermediate
#   rsa.test          mx.rsa.test         127.0.0.12  rsa (RSA 2048)
#   expired.test      mx.expired.test     127.0.0.13  expired
#   notyet.test       mx.notyet.test      127.0.0.14  not yet valid
#   wrongname.test    mx.wrongname.test   127.0.0.15  valid, for wrong.example.net only
#   selfsigned.test   mx.selfsigned.test  127.0.0.16  self-signed
#   unknownca.test    mx.unknownca.test   127.0.0.17  issued by a root not in the bundle
#   nointer.test      mx.nointer.test     127.0.0.18  valid, served without the intermediate
#   verifynone.test   mx.verifynone.test  127.0.0.19  expired; profile verify = none
#   oppexpired.test   mx1.example.test    127.0.0.20  expired; profile opportunistic
. "$(dirname "$0")/lib.sh"
it_setup

i=10
for c in valid rsa expired notyet wrongname selfsigned unknownca nointer verifynone; do
	i=$((i + 1))
	dns_mx $c.test mx.$c.test 10
	dns_a mx.$c.test 127.0.0.$i
done
dns_mx oppexpired.test mx1.example.test 10
dns_a mx1.example.test 127.0.0.20
dns_start || finish

pf_mx valid 127.0.0.11:25 cert=valid hostname=mx.valid.test || finish
pf_mx rsa 127.0.0.12:25 cert=rsa hostname=mx.rsa.test || finish
pf_mx expired 127.0.0.13:25,127.0.0.20:25 cert=expired hostname=mx.expired.test || finish
pf_mx notyet 127.0.0.14:25 cert=notyet hostname=mx.notyet.test || finish
pf_mx wrongname 127.0.0.15:25 cert=wrongname hostname=mx.wrongname.test || finish
pf_mx selfsigned 127.0.0.16:25 cert=selfsigned hostname=mx.selfsigned.test || finish
pf_mx unknownca 127.0.0.17:25 cert=unknownca hostname=mx.unknownca.test || finish
pf_mx nointer 127.0.0.18:25 cert=nointer hostname=mx.nointer.test || finish
pf_mx verifynone 127.0.0.19:25 cert=expired hostname=mx.verifynone.test || finish

# --- each MX presents what it should (openssl, verifying like mxtls must)
check "harness: valid verifies" tls_probe_is 127.0.0.11:25 mx.valid.test 'Verify return code: 0 \(ok\)'
check "harness: rsa verifies" tls_probe_is 127.0.0.12:25 mx.rsa.test 'Verify return code: 0 \(ok\)'
check "harness: expired fails: expired" tls_probe_is 127.0.0.13:25 mx.expired.test 'Verify return code: 10 \(certificate has expired\)'
check "harness: notyet fails: not yet valid" tls_probe_is 127.0.0.14:25 mx.notyet.test 'Verify return code: 9 \(certificate is not yet valid\)'
check "harness: wrongname fails: hostname mismatch" tls_probe_is 127.0.0.15:25 mx.wrongname.test 'Verify return code: 62 \(hostname mismatch\)'
check "harness: selfsigned fails: self-signed" tls_probe_is 127.0.0.16:25 mx.selfsigned.test 'Verify return code: 18 \(self.signed certificate\)'
check "harness: unknownca fails: no issuer" tls_probe_is 127.0.0.17:25 mx.unknownca.test 'Verify return code: 2[01] \(unable to (get local issuer|verify the first) certificate\)'
check "harness: unknownca is signed by a root that is not in the bundle" sh -c \
	"openssl verify -CAfile '$PKI/other-root.pem' '$PKI/unknownca.pem' >/dev/null && ! openssl verify -CAfile '$PKI/test-root-ca.pem' '$PKI/unknownca.pem' >/dev/null 2>&1"
check "harness: nointer fails: no issuer" tls_probe_is 127.0.0.18:25 mx.nointer.test 'Verify return code: 2[01] \(unable to (get local issuer|verify the first) certificate\)'
cat "$PKI/test-root-ca.pem" "$PKI/inter.pem" >"$W/root+inter.pem"
check "harness: nointer verifies when the intermediate is supplied" tls_probe_is 127.0.0.18:25 mx.nointer.test 'Verify return code: 0 \(ok\)' -CAfile "$W/root+inter.pem"

mxtls_start default=mandatory <<EOF2 || finish
[profile nocheck]
tls = mandatory
verify = none

[match verifynone.test]
profile = nocheck

[match oppexpired.test]
profile = opportunistic
EOF2

M=$W/msg
mkdir -p "$M"

# good CASE: delivered over TLS, verify=ok.
good() {
	mkmsg "$M/$1" "certificate $1"
	_x=$(mxtls_mark)
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@$1.test>" "DATA=$M/$1" QUIT
	check "$1: 250 to the final dot" reply_is "$W/t.$1" DOT 250
	_acc=$LAST_OK
	check_if $_acc "$1: delivered byte-identical" delivered "$1" "u@$1.test" "$M/$1"
	check_if $_acc "$1: received over TLSv1.3" received_over "$1" "u@$1.test" TLSv1.3
	check "$1: mxtls logged verify=ok" mxtls_delivery_since "$_x" 'verify=ok' "mx=mx\\.$1\\.test" 'tls=TLSv1\.3'
}

# bad ID CASE MXNAME REASON_ERE: 451 4.7.5 naming the reason, nothing
# delivered; check names start with ID, the docs/security.md case.
bad() {
	_id=$1
	shift
	mkmsg "$M/$1" "certificate $1"
	_x=$(mxtls_mark)
	smtpc "$W/t.$1" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@$1.test>" "DATA=$M/$1" QUIT
	check "$_id $1: RCPT 451 4.7.5" reply_is "$W/t.$1" "RCPT TO:<u@$1.test>" '451 4\.7\.5'
	check "$_id $1: the reply gives the reason (/$3/)" reply_has "$W/t.$1" "RCPT TO:<u@$1.test>" "$3"
	check "$_id $1: the reply names the domain and the MX host" sh -c \
		"grep -F 'RCPT TO:<u@$1.test> =>' '$W/t.$1' | grep -F '$1.test' | grep -qF '$2' || { cat '$W/t.$1'; false; }"
	check "$_id $1: nothing delivered" sh -c "sleep 0.2; [ \$(find '$(pf_dir "$1")/mail' -path '*/new/*' -type f | wc -l) -eq 0 ]"
	check "$_id $1: no message data reached the MX" no_grep_since "$(pf_log "$1")" 0 'smtpd.*: [0-9A-F]+: client='
	check "$_id $1: mxtls logged the delivery attempt with verify=fail" mxtls_delivery_since "$_x" 'verify=fail' "$1\\.test"
}

good valid
good rsa
bad E-01 expired mx.expired.test 'expired'
bad E-01 notyet mx.notyet.test 'not yet valid|not.yet|before'
bad E-02 wrongname mx.wrongname.test 'mismatch|does not match|name'
bad E-05 selfsigned mx.selfsigned.test 'self.signed|not.trusted|untrusted|issuer'
bad E-05 unknownca mx.unknownca.test 'issuer|not.trusted|untrusted|unknown'
bad E-06 nointer mx.nointer.test 'issuer|not.trusted|untrusted|unknown|chain'

# --- verify = none: delivered over TLS, the failure is logged
mkmsg "$M/vn" "verify none"
x=$(mxtls_mark)
smtpc "$W/t.vn" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@verifynone.test>" "DATA=$M/vn" QUIT
check "verify=none + expired: 250 to the final dot" reply_is "$W/t.vn" DOT 250
acc=$LAST_OK
check_if $acc "verify=none + expired: delivered byte-identical" delivered verifynone u@verifynone.test "$M/vn"
check_if $acc "verify=none + expired: received over TLSv1.3" received_over verifynone u@verifynone.test TLSv1.3
check "verify=none + expired: mxtls logged TLS and the certificate problem" \
	mxtls_delivery_since "$x" 'tls=TLSv1\.3' 'verifynone\.test' '[Ee]xpired'

# --- opportunistic + a certificate failure: 451 4.7.5 at the first attempt
smtpc "$W/t.oe" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@oppexpired.test>" "DATA=$M/vn" QUIT
check "E-01 opportunistic + expired: RCPT 451 4.7.5 (first attempt)" reply_is "$W/t.oe" "RCPT TO:<u@oppexpired.test>" '451 4\.7\.5'
check "E-01 opportunistic + expired: nothing delivered, in particular not in the clear" mx_none expired u@oppexpired.test

mxtls_stop
finish
