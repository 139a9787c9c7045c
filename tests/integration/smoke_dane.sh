#!/bin/sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_dnssec.sh"
it_setup
dnssec_init
dnssec_zone ok.test
dnssec_mx ok.test mx.ok.test
dnssec_a mx.ok.test 127.0.0.11
c=$(dane_cert self1 self mx.ok.test)
dnssec_tlsa mx.ok.test 3 1 1 "$W/dane/self1.pem"
dnssec_zone ins.test sign=no
dnssec_mx ins.test mx.ins.test
dnssec_a mx.ins.test 127.0.0.12
dnssec_start
dnssec_unbound_start
for m in validate trust-ad off; do
echo "== $m"
DNS_PROBE_DNSSEC=$m DNS_PROBE_ANCHOR=$DNSSEC_TA build/dns_probe 127.0.0.1:53 tlsa mx.ok.test
DNS_PROBE_DNSSEC=$m DNS_PROBE_ANCHOR=$DNSSEC_TA build/dns_probe 127.0.0.1:53 mx ins.test
done
finish
