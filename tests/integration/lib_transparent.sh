# shellcheck shell=sh disable=SC2034 # LAST_OK is read by lib.sh
# Helpers of test_transparent.sh: two network namespaces joined by a veth
# pair, as in tests/deploy/test_redirect.sh, and in them the private Postfix
# instances, dnsmasq and mxtls of lib.sh, started with `ip netns exec`.
# Source it after lib.sh, before it_setup:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_transparent.sh"
#	it_setup
#	tp_netns_up || finish
#
#   "pod" ($TP_POD)  192.0.2.2/24, 2001:db8::2/64 on eth0: the legacy MTA,
#                    mxtls and the redirect; /etc/netns/$TP_POD/resolv.conf
#                    points its resolver at 192.0.2.1
#   "net" ($TP_NET)  192.0.2.1/24, 2001:db8::1/64 on eth0: the receiving
#                    Postfix MX on port 25 and dnsmasq on port 53
#
# The documentation addresses exist only inside the namespaces.  it_stop_all
# (on finish, on the watchdog, on any exit) stops the processes by PID, then
# deletes the namespaces and the /etc/netns files.

TP_POD=mxtls-tp-$$
TP_NET=mxtls-tp-$$-net
TP_V6=0
TP_ETC_NETNS_MADE=no
TP_NETNS_MADE=no

tp_pod() { ip netns exec "$TP_POD" "$@"; }
tp_net() { ip netns exec "$TP_NET" "$@"; }

# lib.sh's it_stop_all (the processes, newest first), then the namespaces.
it_stop_all() {
	if [ -f "$W/pids" ]; then
		tac "$W/pids" | while read -r kind pid what; do
			case $kind in
			mxtls) mxtls_stop_pid "$pid" "$what" ;;
			postfix) pf_stop_pid "$pid" ;;
			*) kill_wait "$pid" ;;
			esac
		done
		: >"$W/pids"
	fi
	tp_netns_down
}

# tp_netns_up: the two namespaces, the veth pair, the addresses, the pod's
# resolv.conf.  Sets TP_V6=1 when both namespaces have IPv6 (::1 on lo and
# the 2001:db8:: addresses).
tp_netns_up() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root (ip netns add)"
		return 1
	fi
	for _t in ip ss nft iptables-restore dnsmasq setpriv postkick; do
		command -v "$_t" >/dev/null 2>&1 || {
			echo "$_t is not installed"
			return 1
		}
	done
	# Leftovers of a run that was killed (SIGKILL: no trap ran).
	for _s in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^mxtls-tp-[0-9]+(-net)?$'); do
		_p=${_s#mxtls-tp-}
		_p=${_p%-net}
		kill -0 "$_p" 2>/dev/null && continue
		ip netns del "$_s" 2>/dev/null
		rm -rf "/etc/netns/$_s"
	done
	TP_NETNS_MADE=yes
	_v=mxtp$$
	ip netns add "$TP_POD" && ip netns add "$TP_NET" &&
		ip link add "${_v}a" netns "$TP_POD" type veth peer name "${_v}b" netns "$TP_NET" &&
		tp_pod ip link set lo up && tp_net ip link set lo up &&
		tp_pod ip link set "${_v}a" name eth0 && tp_net ip link set "${_v}b" name eth0 &&
		tp_pod ip addr add 192.0.2.2/24 dev eth0 && tp_net ip addr add 192.0.2.1/24 dev eth0 &&
		tp_pod ip link set eth0 up && tp_net ip link set eth0 up || return 1
	TP_V6=1
	if ! tp_pod ip -6 addr add 2001:db8::2/64 dev eth0 nodad 2>/dev/null ||
		! tp_net ip -6 addr add 2001:db8::1/64 dev eth0 nodad 2>/dev/null ||
		! tp_pod ip -6 addr show dev lo | grep -q '::1/128' ||
		! tp_net ip -6 addr show dev lo | grep -q '::1/128'; then
		TP_V6=0
	fi
	# `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf on
	# /etc/resolv.conf: Postfix's smtp client (the system resolver) and
	# the resolver in the pod asks dnsmasq in the "net" namespace.
	[ -d /etc/netns ] || TP_ETC_NETNS_MADE=yes
	mkdir -p "/etc/netns/$TP_POD" || return 1
	printf 'nameserver 192.0.2.1\noptions timeout:2 attempts:2\n' >"/etc/netns/$TP_POD/resolv.conf"
	# The veth link comes up asynchronously.
	_i=0
	until tp_pod ip link show eth0 | grep -q LOWER_UP &&
		tp_net ip link show eth0 | grep -q LOWER_UP; do
		_i=$((_i + 1))
		[ $_i -lt 50 ] || { echo "the veth pair does not come up"; return 1; }
		sleep 0.1
	done
}

# tp_netns_down: delete what tp_netns_up made (quietly; idempotent).
tp_netns_down() {
	[ "$TP_NETNS_MADE" = yes ] || return 0
	ip netns del "$TP_POD" 2>/dev/null
	ip netns del "$TP_NET" 2>/dev/null
	rm -rf "/etc/netns/$TP_POD"
	[ "$TP_ETC_NETNS_MADE" = yes ] && rmdir /etc/netns 2>/dev/null
	TP_NETNS_MADE=no
	return 0
}

# tp_wait_port NS ADDR:PORT [tcp|udp] [SECONDS]: until something listens
# there in namespace NS (ss prints IPv6 as [ADDR]:PORT).
tp_wait_port() {
	_t=$(it_until "${4:-10}")
	_f=-Hltn
	[ "${3:-tcp}" = udp ] && _f=-Hlun
	while :; do
		ip netns exec "$1" ss $_f 2>/dev/null | awk '{print $4}' | grep -qxF "$2" && return 0
		[ "$(date +%s)" -ge "$_t" ] && { echo "nothing listens on $2 in $1" >&2; return 1; }
		sleep 0.05
	done
}

# ---------------------------------------------------------------- DNS

# tp_dns_start: dnsmasq in "net" on 192.0.2.1:53, authoritative for .test:
# example.test MX 10 mx.example.test, mx.example.test A 192.0.2.1 (and
# AAAA 2001:db8::1 with IPv6).
tp_dns_start() {
	_rec=mx.example.test,192.0.2.1
	[ "$TP_V6" = 1 ] && _rec=$_rec,2001:db8::1
	ip netns exec "$TP_NET" dnsmasq --conf-file=/dev/null --keep-in-foreground \
		--pid-file= --user=root --port=53 --listen-address=192.0.2.1 \
		--bind-interfaces --no-resolv --no-hosts --no-negcache --local=/test/ \
		--log-queries --log-facility="$W/dnsmasq.log" \
		--mx-host=example.test,mx.example.test,10 --host-record="$_rec" \
		>"$W/dnsmasq.out" 2>&1 &
	it_track dnsmasq $! -
	tp_wait_port "$TP_NET" 192.0.2.1:53 udp 10 || {
		cat "$W/dnsmasq.out"
		return 1
	}
}

# ---------------------------------------------------------------- Postfix

# _tp_pf_run NS NAME LISTEN...: start the master of $W/pf-NAME in NS.  `ip
# netns exec` execs the master: $! is its PID.
_tp_pf_run() {
	_ns=$1
	_n=$2
	shift 2
	_d=$(pf_dir "$_n")
	: >"$_d/maillog"
	touch -d '-1 minute' "$_d/main.cf" "$_d/master.cf" "$_d"/any_domain 2>/dev/null
	ip netns exec "$_ns" "$PF_SBIN/master" -c "$_d" >"$_d/master.out" 2>&1 &
	_pid=$!
	it_track postfix $_pid "$_n"
	echo $_pid >"$_d/master.job"
	for _l in "$@"; do
		tp_wait_port "$_ns" "$_l" tcp 15 || {
			echo "postfix $_n did not start:" >&2
			cat "$_d/master.out" "$_d/maillog" >&2
			return 1
		}
	done
}

# The main.cf lines of lib.sh without those set here.
_tp_main_common() { # DIR HOSTNAME
	_pf_main_common "$1" "$2" |
		grep -vE '^(inet_protocols|mynetworks|smtpd_relay_restrictions|smtp_dns_support_level|smtp_host_lookup) '
}

# tp_pf_mx NAME: the receiving MX in "net": mx.example.test on 192.0.2.1:25
# (and [2001:db8::1]:25 with IPv6), STARTTLS with the test PKI's "valid"
# certificate, every domain delivered to $W/pf-NAME/mail/maildir/ (the
# main.cf of lib.sh's pf_mx).
tp_pf_mx() {
	_n=$1
	_d=$(pf_dir "$_n")
	rm -rf "$_d"
	mkdir -p "$_d/mail"
	_pf_queue "$_d"
	chown "$IT_MAIL_UID:$IT_MAIL_GID" "$_d/mail"
	_listen=192.0.2.1:25
	_lss=192.0.2.1:25
	_proto=ipv4
	if [ "$TP_V6" = 1 ]; then
		_listen="$_listen [2001:db8::1]:25"
		_lss="$_lss [2001:db8::1]:25"
		_proto=all
	fi
	{
		_tp_main_common "$_d" mx.example.test
		cat <<EOF
inet_protocols = $_proto
mynetworks = 127.0.0.0/8
# Its clients are in the pod, not in mynetworks: every domain is its own.
smtpd_relay_restrictions = reject_unauth_destination
smtp_dns_support_level = disabled
virtual_mailbox_domains = regexp:$_d/any_domain
virtual_mailbox_maps = static:maildir/
virtual_mailbox_base = $_d/mail
virtual_uid_maps = static:$IT_MAIL_UID
virtual_gid_maps = static:$IT_MAIL_GID
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_security_level = may
smtpd_tls_chain_files = $PKI/valid.key, $PKI/valid.chain.pem
EOF
	} >"$_d/main.cf"
	echo '/./ OK' >"$_d/any_domain"
	# shellcheck disable=SC2086 # the listen addresses are words
	_pf_master $_listen >"$_d/master.cf"
	# shellcheck disable=SC2086
	_tp_pf_run "$TP_NET" "$_n" $_lss
}

# tp_pf_mta NAME LISTEN ipv4|ipv6: the legacy MTA in the pod.  It accepts
# mail from loopback on LISTEN and delivers it itself, directly by MX (DNS
# through the pod's resolv.conf, no relayhost), without TLS, over IPv4 or
# over IPv6 only.  No connection cache: every delivery is a new
# connection, so that a connection made through the redirect is never
# reused after it is removed.
tp_pf_mta() {
	_n=$1
	_d=$(pf_dir "$_n")
	rm -rf "$_d"
	mkdir -p "$_d"
	_pf_queue "$_d"
	{
		_tp_main_common "$_d" mta.legacy.test
		cat <<EOF
inet_protocols = $3
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_dns_support_level = enabled
smtp_host_lookup = dns
relayhost =
relay_domains =
smtp_tls_security_level = none
smtp_helo_name = mta.legacy.test
smtp_connection_cache_on_demand = no
smtp_connect_timeout = 10s
notify_classes =
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
EOF
	} >"$_d/main.cf"
	_pf_master "$2" >"$_d/master.cf"
	_tp_pf_run "$TP_POD" "$_n" "$2"
}

# tp_send OUT HOST:PORT RCPT MSGFILE: one message to the legacy MTA's smtpd
# in the pod (transcript in OUT, as lib.sh's smtpc).
tp_send() {
	ip netns exec "$TP_POD" python3 "$IT_FILES/smtpc.py" --timeout 10 "$2" \
		"EHLO client.test" "MAIL FROM:<s@sender.test>" "RCPT TO:<$3>" \
		"DATA=$4" QUIT >"$1" 2>&1
}

# ---------------------------------------------------------------- mxtls

# tp_mxtls_start LISTEN ALLOW user|mark=N: mxtls in transparent mode in the
# pod, on LISTEN, default profile mandatory, DNS at 192.0.2.1:53, the test
# root as its only CA.
#   user    started as root, `user = nobody`: its sockets belong to UID 65534
#   mark=N  started as nobody with CAP_NET_ADMIN only (as the systemd
#           drop-in upstream-mark.conf does), `upstream_mark = N`
# Sets MXTLS_N, MXTLS_CONF, MXTLS_LOG, MXTLS_PID (the layout of lib.sh, so
# that mxtls_stop and its checks apply).
tp_mxtls_start() {
	_listen=$1
	_allow=$2
	_how=$3
	MXTLS_N=$((MXTLS_N + 1))
	_d=$W/mxtls.$MXTLS_N
	mkdir -p "$_d/state"
	chmod 755 "$_d"
	MXTLS_CONF=$_d/mxtls.ini
	MXTLS_LOG=$_d/mxtls.log
	MXTLS_PID=""
	case $_how in
	user) _who="user = nobody" ;;
	mark=*)
		_who="upstream_mark = ${_how#mark=}"
		chown 65534:65534 "$_d/state"
		;;
	*) echo "tp_mxtls_start: user or mark=N, not $_how" >&2; return 1 ;;
	esac
	cat >"$MXTLS_CONF" <<EOF
[proxy]
mode = transparent
listen = $_listen
hostname = mxtls.test
; Redirected connections come from the pod's own address.
allow_clients = $_allow
state_dir = $_d/state
log_level = debug
admin_listen = off
$_who

[dns]
servers = 192.0.2.1:53
dnssec = off

[tls]
ca_bundle = $PKI/test-root-ca.pem

[policy]
default = mandatory
EOF
	chmod 644 "$MXTLS_CONF"
	if [ ! -x "$MXTLS" ]; then
		echo "$MXTLS does not exist (build it: make build/asan/mxtls)"
		return 1
	fi
	if ! "$MXTLS" -t -c "$MXTLS_CONF" >"$_d/check.out" 2>&1; then
		echo "mxtls -t rejects the config:"
		cat "$_d/check.out"
		sed 's/^/  | /' "$MXTLS_CONF"
		return 1
	fi
	if [ "$_how" = user ]; then
		ip netns exec "$TP_POD" "$MXTLS" -c "$MXTLS_CONF" \
			>"$_d/stdout" 2>"$MXTLS_LOG" &
	else
		ip netns exec "$TP_POD" setpriv --reuid=65534 --regid=65534 --clear-groups \
			--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
			--bounding-set=-all,+net_admin \
			"$MXTLS" -c "$MXTLS_CONF" >"$_d/stdout" 2>"$MXTLS_LOG" &
	fi
	MXTLS_PID=$!
	it_track mxtls "$MXTLS_PID" "$MXTLS_N"
	if ! tp_wait_port "$TP_POD" "$_listen" tcp 10 2>/dev/null; then
		echo "mxtls does not listen on $_listen in the pod:"
		tail -n 20 "$MXTLS_LOG"
		return 1
	fi
	# Its upstream sockets must belong to UID 65534 (the --uid of the
	# redirect) in both variants.
	_u=$(awk '/^Uid:/ { print $2 }' "/proc/$MXTLS_PID/status" 2>/dev/null)
	if [ "$_u" != 65534 ]; then
		echo "mxtls runs as UID ${_u:-?}, not 65534"
		return 1
	fi
}

# tp_count_since FILE MARK ERE: how many lines after MARK match.
tp_count_since() { log_since "$1" "$2" | grep -cE -- "$3"; }

# tp_count_is WHAT N FILE MARK ERE: exactly N lines after MARK match.
tp_count_is() {
	_c=$(tp_count_since "$3" "$4" "$5")
	[ "$_c" = "$2" ] && return 0
	echo "$1: $_c lines matching /$5/ after byte $4 of $3, expected $2:"
	log_since "$3" "$4" | grep -E -- "$5" | tail -n 10 | cut -c 1-300 | sed 's/^/  /'
	return 1
}

# tp_received_clear MAILFILE: the MX's own Received header shows the legacy
# MTA itself (its HELO name) and no TLS.
tp_received_clear() {
	_r=$(awk '/^$/ { exit } /^Received:/ { if (s) exit; s = 1; print; next }
		s && /^[ \t]/ { print; next } s { exit }' "$1" | tr '\n\t' '  ')
	case $_r in
	*"using TLS"*) echo "Received header shows TLS: $_r"; return 1 ;;
	esac
	case $_r in
	*"from mta.legacy.test "*) ;;
	*) echo "Received header does not name mta.legacy.test: $_r"; return 1 ;;
	esac
	return 0
}

# tp_queue_id_matches MTA_LOG MX_LOG RCPT: the "queued as ID" of the MTA's
# status=sent line for RCPT is a queue id in the MX's log: the MTA got the
# MX's own reply to the final dot.
tp_queue_id_matches() {
	_id=$(grep -F "to=<$3>," "$1" | grep ' status=sent ' |
		grep -o 'queued as [0-9A-Za-z]*' | tail -n 1 | cut -d' ' -f3)
	if [ -n "$_id" ] && grep -q "$_id: to=<$3>" "$2"; then
		return 0
	fi
	echo "queue id ${_id:-?} of the MTA's status=sent line is not in the MX log"
	return 1
}

# tp_ok NAME: a passed check that needs no command.
tp_ok() {
	echo "ok  $1"
	PASS=$((PASS + 1))
	LAST_OK=yes
}

# tp_re TEXT: TEXT as an ERE matching itself (dots and brackets escaped).
tp_re() { printf '%s' "$1" | sed 's/[].[]/\\&/g'; }

# tp_status_is N ARGS...: `redirect.sh status ARGS` in the pod exits N.
tp_status_is() {
	_want=$1
	shift
	_o=$(ip netns exec "$TP_POD" "$IT_ROOT/deploy/redirect.sh" status "$@" 2>&1)
	_rc=$?
	[ "$_rc" = "$_want" ] && return 0
	echo "redirect.sh status $*: exit $_rc, expected $_want:"
	printf '%s\n' "$_o" | sed 's/^/  /'
	return 1
}
