#!/bin/sh
# TLS versions between mxtls and the MX: what is negotiated, and pinning with
# min_version / max_version (in a profile and in [tls]).
#
#   server   listens                    offers          MX names (DNS)
#   both     127.0.0.4:25               TLS 1.2 + 1.3   mx1.example.test
#   tls12    127.0.0.5:25, 127.0.0.7:25 TLS 1.2 only    mx2.example.test, mx.tls.test (.7)
#   tls13    127.0.0.6:25, 127.0.0.8:25 TLS 1.3 only    mx3.example.test, mx.valid.test (.8)
# A case expected to fail has an MX host (name and address) of its own, so
# its retry record cannot decide another case.
. "$(dirname "$0")/lib.sh"
it_setup

dns_a mx1.example.test 127.0.0.4
dns_a mx2.example.test 127.0.0.5
dns_a mx.tls.test 127.0.0.7
dns_a mx3.example.test 127.0.0.6
dns_a mx.valid.test 127.0.0.8
dns_mx both.test mx1.example.test      # 1.2+1.3, defaults            -> TLSv1.3
dns_mx tls12.test mx2.example.test     # 1.2 only, defaults           -> TLSv1.2
dns_mx tls13.test mx3.example.test     # 1.3 only, defaults           -> TLSv1.3
dns_mx min13.test mx.tls.test          # 1.2 only, min_version 1.3    -> 451 4.7.5
dns_mx min13ok.test mx3.example.test   # 1.3 only, min_version 1.3    -> TLSv1.3
dns_mx max12.test mx1.example.test     # 1.2+1.3, max_version 1.2     -> TLSv1.2
dns_mx max12on13.test mx.valid.test    # 1.3 only, max_version 1.2    -> 451 4.7.5
dns_start || finish

pf_mx both 127.0.0.4:25 hostname=mx1.example.test || finish
pf_mx tls12 127.0.0.5:25,127.0.0.7:25 protocols=TLSv1.2 hostname=mx2.example.test || finish
pf_mx tls13 127.0.0.6:25,127.0.0.8:25 protocols=TLSv1.3 hostname=mx3.example.test || finish

# --- the servers offer what they should (openssl as the client)
check "harness: 1.2+1.3 server negotiates TLSv1.3" tls_probe_is 127.0.0.4:25 mx1.example.test '^TLSv1\.3 Verify return code: 0 '
check "harness: 1.2+1.3 server does TLSv1.2 when asked" tls_probe_is 127.0.0.4:25 mx1.example.test '^TLSv1\.2 ' -tls1_2
check "harness: 1.2-only server negotiates TLSv1.2" tls_probe_is 127.0.0.5:25 mx2.example.test '^TLSv1\.2 Verify return code: 0 '
check "harness: 1.2-only server refuses TLSv1.3" tls_probe_is 127.0.0.7:25 mx.tls.test '^NONE ' -tls1_3
check "harness: 1.3-only server negotiates TLSv1.3" tls_probe_is 127.0.0.6:25 mx3.example.test '^TLSv1\.3 Verify return code: 0 '
check "harness: 1.3-only server refuses TLSv1.2" tls_probe_is 127.0.0.8:25 mx.valid.test '^NONE ' -tls1_2

mxtls_start default=mandatory <<EOF || finish
[profile tls13only]
tls = mandatory
verify = strict
min_version = 1.3

[profile tls12max]
tls = mandatory
verify = strict
max_version = 1.2

[match min13.test]
profile = tls13only

[match min13ok.test]
profile = tls13only

[match max12.test]
profile = tls12max

[match max12on13.test]
profile = tls12max
EOF

M=$W/msg
mkdir -p "$M"

N=0
# ok_case LABEL MXNAME DOMAIN VERSION: a delivery that must use VERSION.
ok_case() {
	N=$((N + 1))
	_r=c$N@$3
	_mark=$(log_mark "$(pf_log "$2")")
	_x=$(mxtls_mark)
	mkmsg "$M/$N" "case $N: $1"
	smtpc "$W/t.$N" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<$_r>" "DATA=$M/$N" QUIT
	check "$1: 250 to the final dot" reply_is "$W/t.$N" DOT 250
	_acc=$LAST_OK
	check "$1: MX logged $4" mx_tls_since "$2" "$_mark" "$4"
	check_if $_acc "$1: Received header shows $4" received_over "$2" "$_r" "$4"
	check_if $_acc "$1: delivered byte-identical" delivered "$2" "$_r" "$M/$N"
	check "$1: mxtls logged tls=$4" mxtls_delivery_since "$_x" "tls=$(echo "$4" | sed 's/\./\\./g')( |$)" "$3"
}

# fail_case LABEL MXNAME DOMAIN: a TLS failure under a mandatory profile.
fail_case() {
	N=$((N + 1))
	_r=c$N@$3
	_mark=$(log_mark "$(pf_log "$2")")
	_x=$(mxtls_mark)
	mkmsg "$M/$N" "case $N: $1"
	smtpc "$W/t.$N" mxtls "EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<$_r>" "DATA=$M/$N" QUIT
	check "$1: RCPT 451 4.7.5" reply_is "$W/t.$N" "RCPT TO:<$_r>" '451 4\.7\.5'
	check "$1: the handshake failed at the MX" grep_since "$(pf_log "$2")" "$_mark" 'SSL_accept error|TLS handshake|protocol'
	check "$1: nothing delivered" mx_none "$2" "$_r"
	check "$1: mxtls logged the failed delivery attempt" mxtls_delivery_since "$_x" "$3"
}

ok_case "1.2+1.3 server" both both.test TLSv1.3
ok_case "1.2-only server" tls12 tls12.test TLSv1.2
ok_case "1.3-only server" tls13 tls13.test TLSv1.3
fail_case "min_version 1.3 vs 1.2-only server" tls12 min13.test
ok_case "min_version 1.3 vs 1.3-only server" tls13 min13ok.test TLSv1.3
ok_case "max_version 1.2 vs 1.2+1.3 server (after a 1.3 session to it)" both max12.test TLSv1.2
fail_case "max_version 1.2 vs 1.3-only server" tls13 max12on13.test
mxtls_stop

# --- the same limits from [tls], inherited by the built-in profiles
mxtls_start default=mandatory min_version=1.3 </dev/null || finish
fail_case "[tls] min_version 1.3 vs 1.2-only server" tls12 tls12.test
mxtls_stop
mxtls_start default=mandatory max_version=1.2 </dev/null || finish
ok_case "[tls] max_version 1.2 vs 1.2+1.3 server" both both.test TLSv1.2
mxtls_stop

finish
