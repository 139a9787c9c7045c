#!/bin/sh
# Valgrind (memcheck) on the whole life of the non-sanitizer build
# build/mxtls (`make all`): start, one message delivered over verified TLS
# to a real Postfix MX (found through DNS), one transaction refused with a
# 4xx (its MX does not offer STARTTLS, the profile is mandatory), one
# session that drops mid-DATA, a look at /metrics, a SIGHUP reload, a
# delivery under the reloaded config, then SIGTERM.  Then valgrind must
# report no memory error, no definitely or indirectly lost block, and no
# descriptor left open at exit but stdin, stdout and stderr.
# Addresses: 127.0.11.x only.  Known false reports of libraries, if any,
# are in tests/valgrind.supp, each with the reason it is not ours.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-85}
# Everything is several times slower under valgrind.
SMTPC_TIMEOUT=${SMTPC_TIMEOUT:-30}
VG_MXTLS=${VG_MXTLS:-build/mxtls}
it_setup

if ! command -v valgrind >/dev/null 2>&1; then
	fail "valgrind is installed" "install the Debian package valgrind"
	finish
fi
if [ ! -x "$VG_MXTLS" ] || [ ! -x "$(dirname "$VG_MXTLS")/mxtls-fetch" ]; then
	fail "the non-sanitizer build exists" "$VG_MXTLS or mxtls-fetch beside it is missing: make all"
	finish
fi

dns_mx vg.test mx.tls.test 10
dns_a mx.tls.test 127.0.11.20
dns_mx plain.test mx.plain.test 10
dns_a mx.plain.test 127.0.11.21
dns_start || finish
pf_mx tls 127.0.11.20:25 cert=valid hostname=mx.tls.test || finish
pf_mx plain 127.0.11.21:25 tls=no hostname=mx.plain.test || finish

PORT=$(free_port)
ADMIN=$(free_port)
D=$W/mxtls
mkdir -p "$D/state" "$W/vg"
CONF=$D/mxtls.ini
LOG=$D/mxtls.log
# For lib_attacks.sh's log_has and for smtpc/smtpx's "mxtls".
# shellcheck disable=SC2034
MXTLS_LOG=$LOG
# shellcheck disable=SC2034
MXTLS_PORT=$PORT
# write_conf [EXTRA]: the config, EXTRA appended to [proxy].
write_conf() {
	cat >"$CONF" <<EOF
[proxy]
listen = 127.0.0.1:$PORT
hostname = mxtls.test
allow_clients = 127.0.0.0/8
state_dir = state
log_level = debug
user = nobody
admin_listen = 127.0.0.1:$ADMIN
${1:-}

[dns]
servers = 127.0.0.1:$DNS_PORT
dnssec = off
allow_private_mx = yes

[tls]
ca_bundle = $PKI/test-root-ca.pem
min_version = 1.2
max_version = 1.3

[policy]
default = opportunistic

[match vg.test]
profile = mandatory

[match plain.test]
profile = mandatory
EOF
}
write_conf
check "mxtls -t accepts the config" "$VG_MXTLS" -t -c "$CONF"

# Valgrind opens its log before mxtls becomes nobody and keeps the
# descriptor, so the directory needs no write access for nobody.  No %p in
# the name: the fetcher's child between fork and exec writes nothing.
VGLOG=$W/vg/valgrind.log
SUPP=""
[ -f "$IT_ROOT/tests/valgrind.supp" ] && SUPP=--suppressions=$IT_ROOT/tests/valgrind.supp
T0=$(date +%s)
# shellcheck disable=SC2086
valgrind --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=yes \
	--num-callers=30 --child-silent-after-fork=yes --vgdb=no $SUPP --log-file="$VGLOG" \
	"$VG_MXTLS" -c "$CONF" 2>"$LOG" >"$D/stdout" &
VGPID=$!
it_track vg "$VGPID" -
if ! wait_for_port "127.0.0.1:$PORT" tcp 30; then
	fail "mxtls starts under valgrind" "$(tail -n 20 "$LOG" "$VGLOG")"
	finish
fi
note "mxtls listens after $(($(date +%s) - T0)) s under valgrind"

# 1. Delivered over verified TLS.
mkmsg "$W/m1" "delivered under valgrind"
smtpc "$W/ok.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@vg.test>" \
	"DATA=$W/m1" QUIT
check "delivery under valgrind: 250 to the final dot" reply_is "$W/ok.out" DOT '250 '
check "delivery under valgrind: the MX has the message, byte for byte" delivered tls u@vg.test "$W/m1"
check "delivery under valgrind: over verified TLS" log_has 'event=delivery.*outcome=tls.*verify=ok.*result=ok'

# 2. A transaction that fails: no STARTTLS under mandatory.
smtpc "$W/fail.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<u@plain.test>" QUIT
check "failed transaction under valgrind: 451 at RCPT" reply_is "$W/fail.out" 'RCPT TO:<u@plain.test>' '451 '
check "failed transaction under valgrind: nothing reached the MX" mx_none plain u@plain.test

# 3. A session that drops mid-DATA, once mxtls is sending to the MX.
MARK_DROP=$(log_mark "$(pf_log tls)")
smtpx "$W/drop.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<drop@vg.test>" \
	DATA 'SEND=Subject: dropped\r\n\r\nthe client goes away in the middle\r\n' SLEEP=1
check "dropped session under valgrind: DATA was accepted (354)" reply_is "$W/drop.out" DATA 354
check "dropped session under valgrind: mxtls saw the client go mid-DATA" \
	log_has 'event=client-gone state=data' 10
check "dropped session under valgrind: mxtls gives the MX up without the final dot" \
	grep_since "$(pf_log tls)" "$MARK_DROP" 'lost connection after DATA' 20
check "dropped session under valgrind: nothing delivered" mx_none tls drop@vg.test

# 4. The admin listener.
check "admin /metrics answers under valgrind" python3 -c '
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=20).read().decode()
sys.exit(0 if "mxtls_" in body else "no mxtls_ metric in /metrics")' "http://127.0.0.1:$ADMIN/metrics"

# 5. SIGHUP: a changed config, then a delivery under it.
write_conf "max_bad_commands = 7"
MARK=$(log_mark "$LOG")
kill -HUP "$VGPID"
check "SIGHUP under valgrind: reloaded" grep_since "$LOG" "$MARK" 'event=reloaded' 20
smtpc "$W/ok2.out" mxtls "EHLO mta.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<v@vg.test>" \
	"DATA=$W/m1" QUIT
check "delivery after the reload: 250 to the final dot" reply_is "$W/ok2.out" DOT '250 '
check "delivery after the reload: the MX has it" mx_wait_rcpt tls v@vg.test 1 10

# 6. SIGTERM: valgrind's verdict comes with the exit.
kill -TERM "$VGPID"
i=0
while alive "$VGPID" && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
if alive "$VGPID"; then
	fail "mxtls exits within 30 s of SIGTERM under valgrind" "$(tail -n 5 "$LOG")"
	kill -KILL "$VGPID" 2>/dev/null
fi
wait "$VGPID"
RC=$?
grep -v "^vg $VGPID " "$W/pids" >"$W/pids.new"
mv "$W/pids.new" "$W/pids"
note "valgrind exit status $RC, $(($(date +%s) - T0)) s under valgrind"

vg_has() {
	grep -qE -- "$1" "$VGLOG" && return 0
	echo "no line of $VGLOG matches /$1/; it ends:"
	tail -n 40 "$VGLOG" | sed 's/^/  /'
	return 1
}
# vg_fds: no descriptor that mxtls opened is still open at exit.  Valgrind
# lists each open one as "Open ... file descriptor N: ..." with the stack
# that opened it, up to an empty line; those "<inherited from parent>"
# (stdio, whatever the shell running this test had open) are not mxtls's.
vg_fds() {
	_l=$(awk '/Open [A-Za-z0-9 ]*file descriptor [0-9]+/ { blk = $0; own = 1; next }
		blk != "" && /<inherited from parent>/ { own = 0 }
		blk != "" && /^==[0-9]+== *$/ { if (own) print blk; blk = "" ; next }
		blk != "" { blk = blk "\n" $0 }' "$VGLOG")
	if ! grep -qE 'FILE DESCRIPTORS: [0-9]+ open' "$VGLOG"; then
		echo "valgrind printed no FILE DESCRIPTORS summary"
		return 1
	fi
	[ -z "$_l" ] && return 0
	echo "descriptors mxtls opened and left open at exit:"
	printf '%b\n' "$_l" | sed 's/^/  /'
	return 1
}
check "valgrind: mxtls exited 0 (not 99: no error, no leak)" test "$RC" -eq 0
check "valgrind: ERROR SUMMARY: 0 errors" vg_has 'ERROR SUMMARY: 0 errors'
check "valgrind: definitely lost: 0, indirectly lost: 0" sh -c "
	grep -q 'All heap blocks were freed' '$VGLOG' ||
	{ grep -qE 'definitely lost: 0 bytes' '$VGLOG' && grep -qE 'indirectly lost: 0 bytes' '$VGLOG'; } ||
	{ grep -A 3 'LEAK SUMMARY' '$VGLOG'; false; }"
check "valgrind --track-fds: no descriptor left open but stdio" vg_fds
check "mxtls logged no error of its own" sh -c "! grep -E 'level=(error|crit)' '$LOG'"
finish
