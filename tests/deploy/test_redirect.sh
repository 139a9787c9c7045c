#!/bin/sh
# deploy/redirect.sh for real, in two network namespaces this test creates
# and deletes: "pod" (mxtls-test-PID) and "net" (mxtls-test-PID-net), joined
# by a veth pair (pod 192.0.2.2 / 2001:db8::2, net 192.0.2.1 / 2001:db8::1,
# documentation addresses that exist only inside them).  Checked: install
# (twice: idempotent), status, remove, for the iptables and the nftables
# backend, IPv4 and (when the namespaces have it) IPv6; and end to end: a
# connection from the pod to 192.0.2.1:25 reaches the "mxtls" listener on
# 127.0.0.1:10026 in the pod, which reads the original destination with
# SO_ORIGINAL_DST, while the connections of the excluded UID or mark, those
# to loopback, and all of them once the redirect is removed, reach the real
# port 25.  Needs root (ip netns), iproute2, iptables, nftables, python3.
# shellcheck source-path=SCRIPTDIR
set -u
. "$(dirname "$0")/lib.sh"

R=$REPO/deploy/redirect.sh
NS=mxtls-test-$$
NET=mxtls-test-$$-net
MXUID=10025 # the UID "mxtls" runs as here
PORT=10026
MARK=0x19
tmp=$(mktemp -d)
pids=

cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null
	done
	ip netns del "$NS" 2>/dev/null
	ip netns del "$NET" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "$(id -u)" -ne 0 ]; then
	fail "setup: needs root (ip netns add)"
	finish
	exit 1
fi
for t in ip python3; do
	command -v "$t" >/dev/null 2>&1 || fail "setup: $t not installed"
done
for t in iptables iptables-save iptables-restore ip6tables-save; do
	command -v "$t" >/dev/null 2>&1 || fail "setup: $t not installed (apt-get install iptables)"
done
command -v nft >/dev/null 2>&1 || fail "setup: nft not installed (apt-get install nftables)"
[ "$failed" -eq 0 ] || { finish; exit 1; }

# The probe runs as $MXUID too: a copy it can read, and a python3 of the
# system's rather than one under /root.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
cp "$REPO/tests/deploy/redirect_probe.py" "$tmp/probe.py"
chmod 755 "$tmp"
chmod 644 "$tmp/probe.py"

nsx() {
	ip netns exec "$NS" "$@"
}

netx() {
	ip netns exec "$NET" "$@"
}

if ! out=$(ip netns add "$NS" 2>&1 && ip netns add "$NET" 2>&1 &&
	ip link add mxt$$a netns "$NS" type veth peer name mxt$$b netns "$NET" 2>&1); then
	fail "setup: namespaces and veth pair" "$out"
	finish
	exit 1
fi
nsx ip link set lo up
netx ip link set lo up
nsx ip link set mxt$$a name eth0
netx ip link set mxt$$b name eth0
nsx ip addr add 192.0.2.2/24 dev eth0
netx ip addr add 192.0.2.1/24 dev eth0
nsx ip link set eth0 up
netx ip link set eth0 up
v6=1
if ! nsx ip -6 addr add 2001:db8::2/64 dev eth0 nodad 2>/dev/null ||
	! netx ip -6 addr add 2001:db8::1/64 dev eth0 nodad 2>/dev/null ||
	! nsx ip -6 addr show dev lo | grep -q '::1/128'; then
	v6=0
	note "no IPv6 in the namespaces: the IPv6 checks are left out"
fi

# Unrelated rules that install and remove must leave alone.
nsx iptables -w 5 -t nat -A OUTPUT -p tcp --dport 587 -j RETURN
[ "$v6" = 1 ] && nsx ip6tables -w 5 -t nat -A OUTPUT -p tcp --dport 587 -j RETURN
nsx nft add table ip other
nsx nft add chain ip other keep '{ type filter hook output priority 0; policy accept; }'

# Rulesets without counters, comments or the time stamps of iptables-save.
snapshot() {
	{
		nsx iptables-save -t nat
		[ "$v6" = 1 ] && nsx ip6tables-save -t nat
		nsx nft list ruleset 2>/dev/null
	} | grep -v '^#' | sed -e 's/\[[0-9]*:[0-9]*\]//' \
		-e 's/counter packets [0-9]* bytes [0-9]*/counter/'
}
baseline=$(snapshot)
printf '%s\n' "$baseline" >"$tmp/baseline"
# like NAME: ok when the ruleset equals the baseline, else FAIL with a diff.
like_baseline() {
	snapshot >"$tmp/now"
	if diff "$tmp/baseline" "$tmp/now" >"$tmp/diff" 2>&1; then
		ok "$1"
	else
		fail "$1" "$(head -n 20 "$tmp/diff")"
	fi
}

# Listeners: "mxtls" on the redirect port in the pod, the real port 25 in
# the net namespace (and on the pod's loopback).
log_mx=$tmp/mxtls.log
log_real=$tmp/real.log
serve() { # netns addr port log
	ip netns exec "$1" "$PY" "$tmp/probe.py" serve "$2" "$3" "$4" 600 >/dev/null 2>&1 &
	pids="$pids $!"
}
serve "$NS" 127.0.0.1 "$PORT" "$log_mx"
serve "$NS" 127.0.0.1 25 "$log_real"
serve "$NET" 192.0.2.1 25 "$log_real"
want=3
if [ "$v6" = 1 ]; then
	serve "$NS" ::1 "$PORT" "$log_mx"
	serve "$NET" 2001:db8::1 25 "$log_real"
	want=5
fi
i=0
while [ "$(cat "$log_mx" "$log_real" 2>/dev/null | grep -c '^ready$')" -lt "$want" ]; do
	i=$((i + 1))
	if [ "$i" -gt 50 ]; then
		fail "setup: probe listeners did not start"
		finish
		exit 1
	fi
	sleep 0.1
done

seq=0
# reach NAME WHERE ADDR [uid UID | mark N]: connect to ADDR:25 from the pod;
# WHERE is mxtls (redirected: SO_ORIGINAL_DST must be ADDR:25) or real (not
# redirected: arrived at ADDR:25 itself).
reach() {
	name=$1 where=$2 addr=$3
	shift 3
	seq=$((seq + 1))
	token=t$seq-$$
	as=
	mark=
	case ${1:-} in
	uid) as="setpriv --reuid=$2 --regid=$2 --clear-groups" ;;
	mark) mark=$2 ;;
	esac
	# shellcheck disable=SC2086 # $as is a command prefix, $mark optional
	if ! err=$(nsx $as "$PY" "$tmp/probe.py" connect "$addr" 25 "$token" $mark 2>&1); then
		fail "$name" "could not connect to $addr:25: $err"
		return
	fi
	case $addr in
	*:*) dst="[$addr]:25" ;;
	*) dst="$addr:25" ;;
	esac
	j=0
	line=
	while [ -z "$line" ] && [ "$j" -lt 30 ]; do
		line=$(grep -h "^$token " "$log_mx" "$log_real")
		[ -n "$line" ] || sleep 0.1
		j=$((j + 1))
	done
	in_mx=$(grep -c "^$token " "$log_mx")
	# Quoted parts of patterns are literal: "[::1]" is no bracket here.
	if [ "$where" = mxtls ]; then
		if [ "$in_mx" = 1 ] && [ "${line%" orig=$dst"}" != "$line" ]; then
			ok "$name"
		else
			fail "$name" "expected at the redirect port with orig=$dst, got: ${line:-nothing}"
		fi
	elif [ "$in_mx" = 0 ] && case $line in *" local=$dst "*) true ;; *) false ;; esac then
		ok "$name"
	else
		fail "$name" "expected at $dst itself, got: ${line:-nothing}"
	fi
}

# refused NAME ADDR: connecting from the pod to ADDR:25 fails, and no
# listener saw it.
refused() {
	seq=$((seq + 1))
	token=t$seq-$$
	if nsx "$PY" "$tmp/probe.py" connect "$2" 25 "$token" >/dev/null 2>&1; then
		fail "$1" "the connection to $2:25 went through"
		return
	fi
	sleep 0.3
	if grep -q "^$token " "$log_mx" "$log_real"; then
		fail "$1" "a listener saw it: $(grep -h "^$token " "$log_mx" "$log_real")"
	else
		ok "$1"
	fi
}

fams=ip
v6flag=
if [ "$v6" = 1 ]; then
	fams="ip ip6"
	v6flag=--ipv6
fi

# The rules a backend should hold; $1 = backend, $2 = uid|mark.
rules_ok() {
	b=$1 excl=$2
	if [ "$b" = iptables ]; then
		for fam in $fams; do
			if [ "$fam" = ip ]; then
				s=$(nsx iptables-save -t nat) lo=127.0.0.0/8
			else
				s=$(nsx ip6tables-save -t nat) lo=::1/128
			fi
			if [ "$excl" = uid ]; then
				e="-A MXTLS -m owner --uid-owner $MXUID -j RETURN"
			else
				e="-A MXTLS -m mark --mark $MARK -j RETURN"
			fi
			got=$(printf '%s\n' "$s" | grep -E -- '(^-A MXTLS|-j MXTLS$|^:MXTLS)')
			exp=":MXTLS - [0:0]
-A OUTPUT -p tcp -m tcp --dport 25 -j MXTLS
$e
-A MXTLS -d $lo -j RETURN
-A MXTLS -p tcp -j REDIRECT --to-ports $PORT"
			if [ "$got" != "$exp" ]; then
				echo "$fam rules:"
				printf '%s\n' "$got"
				echo "expected:"
				printf '%s\n' "$exp"
				return 1
			fi
		done
	else
		for fam in $fams; do
			if [ "$fam" = ip ]; then lo="ip daddr 127.0.0.0/8"; else lo="ip6 daddr ::1"; fi
			if [ "$excl" = uid ]; then
				e="meta skuid $MXUID return"
			else
				e="meta mark 0x00000019 return"
			fi
			got=$(nsx nft list table "$fam" mxtls | sed 's/^[[:space:]]*//' | grep -v '^$')
			exp="table $fam mxtls {
chain output {
type nat hook output priority -100; policy accept;
$e
$lo return
tcp dport 25 redirect to :$PORT
}
}"
			if [ "$got" != "$exp" ]; then
				echo "$fam table:"
				printf '%s\n' "$got"
				echo "expected:"
				printf '%s\n' "$exp"
				return 1
			fi
		done
	fi
}

for b in iptables nftables; do
	check "$b: install --uid $MXUID${v6flag:+ $v6flag}" nsx "$R" install --backend "$b" --port "$PORT" --uid "$MXUID" $v6flag
	check "$b: the rules are as documented" rules_ok "$b" uid
	first=$(snapshot)
	check "$b: install again succeeds" nsx "$R" install --backend "$b" --port "$PORT" --uid "$MXUID" $v6flag
	second=$(snapshot)
	if [ "$second" = "$first" ]; then
		ok "$b: install again is idempotent (same ruleset)"
	else
		fail "$b: install again is idempotent" "$(printf '%s\n' "$second" | grep -i mxtls)"
	fi
	if [ "$b" = iptables ]; then
		n=$(nsx iptables -t nat -S OUTPUT | grep -c -- '-j MXTLS$')
		if [ "$n" = 1 ]; then
			ok "$b: one jump to MXTLS after two installs"
		else
			fail "$b: one jump to MXTLS after two installs" "$n jumps"
		fi
	fi
	st=$(nsx "$R" status --backend "$b" $v6flag 2>&1)
	rc=$?
	if [ "$rc" = 0 ] && printf '%s\n' "$st" | grep -q "^$b ip: installed"; then
		ok "$b: status says installed (exit 0)"
	else
		fail "$b: status says installed" "exit $rc: $st"
	fi

	reach "$b: MTA -> 192.0.2.1:25 redirected, original destination read" mxtls 192.0.2.1
	# What mxtls's allow_clients sees: the pod's own address, not loopback.
	last=$(grep -v '^ready$' "$log_mx" | tail -n 1)
	case $last in
	*" peer=192.0.2.2 "*) ok "$b: the redirected connection comes from the pod's address" ;;
	*) fail "$b: the redirected connection comes from the pod's address" "$last" ;;
	esac
	reach "$b: mxtls's UID -> 192.0.2.1:25 not redirected (no loop)" real 192.0.2.1 uid "$MXUID"
	reach "$b: MTA -> 127.0.0.1:25 (loopback) not redirected" real 127.0.0.1
	reach "$b: another UID (65534) is redirected" mxtls 192.0.2.1 uid 65534
	if [ "$v6" = 1 ]; then
		reach "$b: MTA -> [2001:db8::1]:25 redirected (IPv6)" mxtls 2001:db8::1
		reach "$b: mxtls's UID -> [2001:db8::1]:25 not redirected (IPv6)" real 2001:db8::1 uid "$MXUID"
	fi

	check "$b: install --mark $MARK replaces the UID rule" nsx "$R" install --backend "$b" --port "$PORT" --mark "$MARK" $v6flag
	check "$b: the mark rules are as documented" rules_ok "$b" mark
	reach "$b: marked socket not redirected" real 192.0.2.1 mark "$MARK"
	reach "$b: unmarked socket redirected" mxtls 192.0.2.1
	reach "$b: other mark (0x18) redirected" mxtls 192.0.2.1 mark 0x18
	if [ "$v6" = 1 ]; then
		reach "$b: marked socket not redirected (IPv6)" real 2001:db8::1 mark "$MARK"
	fi

	# mxtls down (nothing on the redirect port): refused, not sent direct.
	check "$b: install --port 10099 (no listener there)" nsx "$R" install --backend "$b" --port 10099 --uid "$MXUID" $v6flag
	refused "$b: mxtls down: the MTA's connection is refused, nothing direct" 192.0.2.1
	if [ "$v6" = 1 ]; then
		refused "$b: mxtls down: refused over IPv6 too" 2001:db8::1
	fi

	check "$b: remove" nsx "$R" remove --backend "$b"
	like_baseline "$b: remove restores the ruleset exactly (unrelated rules kept)"
	nsx "$R" status --backend "$b" >/dev/null 2>&1
	rc=$?
	if [ "$rc" = 3 ]; then
		ok "$b: status after remove exits 3"
	else
		fail "$b: status after remove exits 3" "exit $rc"
	fi
	check "$b: remove again is harmless" nsx "$R" remove --backend "$b"
	reach "$b: after remove, MTA -> 192.0.2.1:25 goes direct" real 192.0.2.1

	# The Kubernetes init container holds NET_ADMIN and nothing else.
	capset="--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin"
	# shellcheck disable=SC2086 # $capset is several options
	check "$b: install with only CAP_NET_ADMIN" nsx setpriv $capset "$R" install --backend "$b" --port "$PORT" --uid "$MXUID" $v6flag
	# shellcheck disable=SC2086
	check "$b: remove with only CAP_NET_ADMIN" nsx setpriv $capset "$R" remove --backend "$b"
	like_baseline "$b: clean after the NET_ADMIN-only round"
done

# ---- with mxtls itself: transparent mode behind the redirect ----
# mxtls runs as $MXUID in the pod on 127.0.0.1:$MXPORT; the MTA's
# connection to 192.0.2.1:25 reaches it with its original destination, and
# mxtls's own upstream connection reaches 192.0.2.1:25 itself (no loop).
MXPORT=10036
MXTLS=$REPO/build/mxtls
if [ -x "$MXTLS" ]; then
	mkdir -p "$tmp/state"
	chown "$MXUID:$MXUID" "$tmp/state"
	cat >"$tmp/mxtls.ini" <<EOF
[proxy]
mode = transparent
listen = 127.0.0.1:$MXPORT
admin_listen = 127.0.0.1:9925
; A redirected connection comes from the pod's own address.
allow_clients = 192.0.2.2/32
state_dir = $tmp/state
[dns]
servers = 127.0.0.1:53
dnssec = off
allow_private_mx = yes
timeout = 1
[tls]
ca_bundle = $REPO/ca-bundles/ca-certificates.crt
EOF
	chmod 644 "$tmp/mxtls.ini"
	# As in the Kubernetes sidecar: a read-only root, only the state
	# directory writable (a tmpfs here, an emptyDir there).  The log file
	# is opened before.  Not through nsx (a function: $! would be a
	# subshell's): ip netns exec, unshare, sh and setpriv all exec, so $!
	# is mxtls itself.
	# shellcheck disable=SC2016 # expanded by the inner sh
	ip netns exec "$NS" unshare -m sh -c '
		mount --make-rprivate / && mount -o remount,bind,ro / &&
		for m in $(findmnt -rn -o TARGET | grep -v -E "^/(proc|sys|dev)(/|\$)"); do
			mount -o remount,bind,ro "$m" 2>/dev/null
		done &&
		mount -t tmpfs -o "uid=$2,gid=$2,mode=0700,size=16m" tmpfs "$3" &&
		exec setpriv --reuid="$2" --regid="$2" --clear-groups "$1" -c "$4"' \
		sh "$MXTLS" "$MXUID" "$tmp/state" "$tmp/mxtls.ini" >/dev/null 2>"$tmp/mxtls.log" &
	mxpid=$!
	pids="$pids $mxpid"
	i=0
	# Listening comes before the fetcher and the journals: wait for both.
	until nsx bash "$REPO/deploy/healthcheck.sh" tcp "127.0.0.1:$MXPORT" 2>/dev/null &&
		grep -q 'event=start' "$tmp/mxtls.log"; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || break
		sleep 0.1
	done
	if grep -q 'event=start' "$tmp/mxtls.log"; then
		ok "mxtls: starts on a read-only root filesystem, state on a tmpfs"
	else
		fail "mxtls: starts on a read-only root filesystem, state on a tmpfs" "$(tail -n 5 "$tmp/mxtls.log")"
	fi
	check "mxtls: admin /healthz through mxtls-healthcheck" nsx bash "$REPO/deploy/healthcheck.sh"
	check "mxtls: admin /readyz through mxtls-healthcheck" nsx bash "$REPO/deploy/healthcheck.sh" http 127.0.0.1:9925 /readyz
	for b in nftables iptables; do
		nsx "$R" install --backend "$b" --port "$MXPORT" --uid "$MXUID" >/dev/null 2>&1 ||
			fail "mxtls/$b: install"
		before=$(grep -c ' local=192.0.2.1:25 ' "$log_real")
		out=$(nsx "$PY" "$tmp/probe.py" smtp 192.0.2.1 25 rcpt@dest.example 2>&1)
		case $out in
		"220 "*mxtls*) ok "mxtls/$b: the MTA's connection to 192.0.2.1:25 is answered by mxtls" ;;
		*) fail "mxtls/$b: the MTA's connection to 192.0.2.1:25 is answered by mxtls" "$out" ;;
		esac
		n=$(grep -c 'event=original-destination addr=192.0.2.1' "$tmp/mxtls.log")
		if [ "$n" -ge 1 ]; then
			ok "mxtls/$b: mxtls read the original destination 192.0.2.1"
		else
			fail "mxtls/$b: mxtls read the original destination 192.0.2.1" "$(tail -n 5 "$tmp/mxtls.log")"
		fi
		after=$(grep -c ' local=192.0.2.1:25 ' "$log_real")
		if [ "$after" -gt "$before" ] &&
			grep ' local=192.0.2.1:25 ' "$log_real" | tail -n 1 | grep -q ' peer=192.0.2.2 '; then
			ok "mxtls/$b: mxtls's own upstream connection reached 192.0.2.1:25 (no loop)"
		else
			fail "mxtls/$b: mxtls's own upstream connection reached 192.0.2.1:25 (no loop)" \
				"$(printf '%s\n' "$out" | tail -n 3)"
		fi
		nsx "$R" remove --backend "$b" >/dev/null 2>&1 || fail "mxtls/$b: remove"
	done
	kill "$mxpid" 2>/dev/null
	i=0
	while kill -0 "$mxpid" 2>/dev/null && [ "$i" -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$mxpid" 2>/dev/null; then
		fail "mxtls: exits on SIGTERM within 5 s"
	else
		ok "mxtls: exits on SIGTERM within 5 s"
	fi
else
	fail "mxtls: build/mxtls is built (make), for the checks with mxtls itself"
fi
like_baseline "mxtls: clean after the mxtls rounds"

# --backend auto: nftables when nft exists; switching drops the other's rules.
check "auto: install (iptables first, then auto)" nsx "$R" install --backend iptables --uid "$MXUID"
check "auto: install with auto" nsx "$R" install --uid "$MXUID"
if nsx nft list table ip mxtls >/dev/null 2>&1 &&
	! nsx iptables -t nat -S | grep -q MXTLS; then
	ok "auto: nftables chosen, the iptables redirect dropped"
else
	fail "auto: nftables chosen, the iptables redirect dropped" "$(snapshot | grep -i mxtls)"
fi
if [ "$v6" = 1 ]; then
	nsx "$R" install --uid "$MXUID" --ipv6 >/dev/null
	nsx "$R" install --uid "$MXUID" >/dev/null
	if nsx nft list table ip6 mxtls >/dev/null 2>&1; then
		fail "auto: install without --ipv6 drops an earlier IPv6 redirect"
	else
		ok "auto: install without --ipv6 drops an earlier IPv6 redirect"
	fi
fi
check "auto: remove" nsx "$R" remove
like_baseline "auto: remove restores the ruleset"

# The init container has a read-only root filesystem: no temporary files,
# no lock files.  A private mount namespace with every mount read-only.
ro_round() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	nsx unshare -m sh -c '
		mount --make-rprivate / && mount -o remount,bind,ro / || exit 99
		for m in $(findmnt -rn -o TARGET | grep -v -E "^/(proc|sys|dev)(/|\$)"); do
			mount -o remount,bind,ro "$m" 2>/dev/null
		done
		if touch "$2/rw-probe" 2>/dev/null; then exit 98; fi
		"$1" install --backend "$3" --uid 10025 $4 && "$1" remove --backend "$3"' \
		sh "$R" "$tmp" "$1" "$v6flag"
}
for b in iptables nftables; do
	out=$(ro_round "$b" 2>&1)
	case $? in
	0) ok "$b: install and remove on a read-only filesystem" ;;
	98 | 99) note "cannot make a read-only mount namespace here: read-only check left out" ;;
	*) fail "$b: install and remove on a read-only filesystem" "$out" ;;
	esac
done
like_baseline "clean after the read-only rounds"

# Errors: a clear message and a non-zero exit.
expect_error() { # name pattern command...
	n=$1 pat=$2
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -q -- "$pat"; then
		ok "$n"
	else
		fail "$n" "exit $rc: $out"
	fi
}
expect_error "error: install without --uid/--mark" "needs --uid UID or --mark" nsx "$R" install
expect_error "error: --uid and --mark together" "not both" nsx "$R" install --uid 1 --mark 1
expect_error "error: bad port" "port" nsx "$R" install --uid 1 --port 70000
expect_error "error: bad mark" "invalid mark" nsx "$R" install --mark 0
expect_error "error: unknown user" "no user" nsx "$R" install --uid no-such-user-here
expect_error "error: bad backend" "backend" nsx "$R" install --uid 1 --backend pf
expect_error "error: unknown action" "usage" nsx "$R" frobnicate
for b in iptables nftables; do
	expect_error "error: $b without CAP_NET_ADMIN says so" "CAP_NET_ADMIN" \
		nsx setpriv --reuid="$MXUID" --regid="$MXUID" --clear-groups --inh-caps=-all --bounding-set=-all \
		"$R" install --backend "$b" --uid "$MXUID"
done
like_baseline "errors changed nothing"

finish
