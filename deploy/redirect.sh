#!/bin/sh
# redirect.sh — install, remove or show the redirect that sends a host's (or a
# pod's) outbound SMTP connections (TCP port 25) to mxtls in transparent mode.
#
#   redirect.sh install|remove|status [--backend auto|iptables|nftables]
#               [--port 10026] [--uid UID|NAME | --mark N[/MASK]] [--ipv6]
#
# What install puts in place, in the nat OUTPUT hook of the current network
# namespace (so run it inside the pod, or with `ip netns exec`):
#   1. connections of mxtls itself are left alone: its UID (--uid; needs no
#      capability in mxtls) or its socket mark (--mark; mxtls then needs
#      CAP_NET_ADMIN for SO_MARK, `[proxy] upstream_mark`);
#   2. connections to loopback (127.0.0.0/8, ::1) are left alone;
#   3. every other TCP connection to port 25 is redirected to
#      127.0.0.1:PORT (IPv4) and, with --ipv6, to [::1]:PORT (IPv6), where
#      mxtls reads the original destination with SO_ORIGINAL_DST.
# iptables: a chain MXTLS in the nat table of iptables (and ip6tables) and
# one jump to it from OUTPUT.  nftables: a table `mxtls` (families ip and
# ip6) with one chain `output`.  Nothing else is touched.
#
# install is idempotent and atomic per family (iptables-restore --noflush /
# one nft transaction): running it again replaces the chain's rules, never
# adds a second jump; without --ipv6 it drops an IPv6 redirect left by an
# earlier install with --ipv6.  remove deletes exactly the chain/table and the jump
# that install adds, for both families and, with --backend auto, for both
# backends.  status prints the rules and exits 0 when the redirect is in
# place (for IPv6 too with --ipv6), 3 when it is not.
#
# --backend auto (the default): install uses nftables if `nft` is installed,
# otherwise iptables (and removes a redirect that the other backend holds);
# remove and status look at both.  Needs CAP_NET_ADMIN in the namespace;
# iptables-legacy needs CAP_NET_RAW too, iptables-nft and nft do not.
# Exit status: 0 done, 1 error, 2 usage, 3 (status) not installed.
#
# If mxtls is not running while the redirect is installed, the MTA's
# connections to port 25 are refused and it keeps the mail queued: nothing
# leaves in the clear past mxtls.
set -u

PROG=redirect.sh
CHAIN=MXTLS
TABLE=mxtls
DPORT=25

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: redirect.sh install|remove|status [--backend auto|iptables|nftables]
                   [--port 10026] [--uid UID|NAME | --mark N[/MASK]] [--ipv6]
  install  redirect outbound TCP port 25 to 127.0.0.1:PORT ([::1]:PORT with
           --ipv6), except the connections of --uid or --mark (one is needed)
  remove   delete what install added (both families; both backends with auto)
  status   print the rules; exit 0 if installed, 3 if not
EOF
	exit 2
}

# A hint for a failed iptables/nft command, from its error text.
hint() {
	case $1 in
	*"ermission denied"* | *"ot permitted"* | *"you must be root"*)
		echo " (needs CAP_NET_ADMIN in this network namespace: run as root, or in an init container with capability NET_ADMIN)" ;;
	*"not supported"* | *"ould not load"* | *"o such file or directory"* | *"does not exist"*)
		echo " (the kernel lacks netfilter NAT support for this family: modules nf_nat / nft_redirect / xt_REDIRECT)" ;;
	esac
}

# ---- arguments ----

action=
backend=auto
port=10026
uid=
mark=
ipv6=0
[ $# -ge 1 ] || usage
action=$1
shift
case $action in
install | remove | status) ;;
-h | --help) usage ;;
*) printf '%s: error: unknown action "%s"\n' "$PROG" "$action" >&2; usage ;;
esac

while [ $# -gt 0 ]; do
	opt=$1
	val=
	case $opt in
	--*=*)
		val=${opt#*=}
		opt=${opt%%=*}
		;;
	--backend | --port | --uid | --mark)
		[ $# -ge 2 ] || die "$opt needs a value"
		val=$2
		shift
		;;
	esac
	case $opt in
	--backend) backend=$val ;;
	--port) port=$val ;;
	--uid) uid=$val ;;
	--mark) mark=$val ;;
	--ipv6)
		[ -z "$val" ] || die "--ipv6 takes no value"
		ipv6=1
		;;
	-h | --help) usage ;;
	*) printf '%s: error: unknown option "%s"\n' "$PROG" "$opt" >&2; usage ;;
	esac
	shift
done

case $backend in
auto | iptables | nftables) ;;
*) die "--backend must be auto, iptables or nftables, not \"$backend\"" ;;
esac

is_uint() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ ${#1} -le 10 ]
}

# Leading zeros off (010 is no octal here).
decimal() {
	d=$1
	while :; do
		case $d in
		0[0-9]*) d=${d#0} ;;
		*) break ;;
		esac
	done
	echo "$d"
}

# A mark: decimal or 0x hex, 1..0xffffffff.  Prints it as 0x hex.
norm_mark() {
	v=$1
	case $v in
	0x* | 0X*)
		h=${v#0[xX]}
		case $h in '' | *[!0-9a-fA-F]*) return 1 ;; esac
		[ ${#h} -le 8 ] || return 1
		n=$(printf '%d' "0x$h") || return 1
		;;
	*)
		is_uint "$v" || return 1
		n=$(decimal "$v")
		;;
	esac
	[ "$n" -ge 1 ] && [ "$n" -le 4294967295 ] || return 1
	printf '0x%x' "$n"
}

if ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
	die "--port must be a TCP port (1-65535), not \"$port\""
fi
port=$(decimal "$port")

if [ "$action" = install ]; then
	if [ -n "$uid" ] && [ -n "$mark" ]; then
		die "give --uid or --mark, not both"
	fi
	if [ -z "$uid" ] && [ -z "$mark" ]; then
		die "install needs --uid UID or --mark N: without it mxtls's own connections to port 25 would be redirected back to mxtls (a loop)"
	fi
fi
if [ -n "$uid" ]; then
	if ! is_uint "$uid"; then
		case $uid in
		[a-z_]*) ;;
		*) die "--uid must be a user id or a user name, not \"$uid\"" ;;
		esac
		n=$(id -u -- "$uid" 2>/dev/null) || die "--uid: no user \"$uid\" here; give the numeric UID mxtls runs as"
		uid=$n
	fi
	[ "$uid" -le 4294967294 ] || die "--uid out of range: $uid"
	uid=$(decimal "$uid")
fi
markval=
markmask=
if [ -n "$mark" ]; then
	case $mark in
	*/*)
		markval=$(norm_mark "${mark%%/*}") || die "--mark: invalid mark \"${mark%%/*}\" (1 to 0xffffffff)"
		markmask=$(norm_mark "${mark#*/}") || die "--mark: invalid mask \"${mark#*/}\" (1 to 0xffffffff)"
		;;
	*)
		markval=$(norm_mark "$mark") || die "--mark: invalid mark \"$mark\" (1 to 0xffffffff)"
		;;
	esac
fi

have() { command -v "$1" >/dev/null 2>&1; }

families="ip"
[ "$ipv6" = 1 ] && families="ip ip6"

# ---- iptables ----

ipt_tool() { # family
	if [ "$1" = ip ]; then echo iptables; else echo ip6tables; fi
}

ipt_loopback() {
	if [ "$1" = ip ]; then echo 127.0.0.0/8; else echo ::1/128; fi
}

# The jump install adds, as `iptables -S` prints it.
IPT_JUMP="-A OUTPUT -p tcp -m tcp --dport $DPORT -j $CHAIN"

# Sets $rules to the nat table (-S), or fails with the tool's message in $err.
ipt_rules() { # family
	t=$(ipt_tool "$1")
	if ! have "$t"; then
		err="$t not found (install the iptables package)"
		return 1
	fi
	if ! rules=$("$t" -w 5 -t nat -S 2>&1); then
		err=$rules
		return 1
	fi
}

# Of $rules: 0 installed, 1 absent, 2 incomplete; $text: our rules.
ipt_state() {
	chain_rules=$(printf '%s\n' "$rules" | grep -E -- "^-A $CHAIN( |\$)")
	jumps=$(printf '%s\n' "$rules" | grep -c -x -F -- "$IPT_JUMP")
	have_chain=0
	printf '%s\n' "$rules" | grep -q -x -F -- "-N $CHAIN" && have_chain=1
	text=
	if [ "$have_chain" = 0 ] && [ "$jumps" = 0 ]; then
		return 1
	fi
	text=$(printf '%s\n' "$rules" | grep -F -- "-j $CHAIN" | sed 's/^/    /')
	[ -n "$chain_rules" ] && text="$text
$(printf '%s\n' "$chain_rules" | sed 's/^/    /')"
	if [ "$have_chain" = 1 ] && [ "$jumps" -ge 1 ] &&
		printf '%s\n' "$chain_rules" | grep -q -- '-j REDIRECT'; then
		return 0
	fi
	return 2
}

ipt_install() { # family
	fam=$1
	t=$(ipt_tool "$fam")
	ipt_rules "$fam" || die "iptables: cannot read the $fam nat table: $err$(hint "$err")"
	jumps=$(printf '%s\n' "$rules" | grep -c -x -F -- "$IPT_JUMP")
	if [ -n "$uid" ]; then
		except="-A $CHAIN -m owner --uid-owner $uid -j RETURN"
	elif [ -n "$markmask" ]; then
		except="-A $CHAIN -m mark --mark $markval/$markmask -j RETURN"
	else
		except="-A $CHAIN -m mark --mark $markval -j RETURN"
	fi
	input="*nat
:$CHAIN - [0:0]
$except
-A $CHAIN -d $(ipt_loopback "$fam") -j RETURN
-A $CHAIN -p tcp -j REDIRECT --to-ports $port"
	[ "$jumps" = 0 ] && input="$input
$IPT_JUMP"
	# Declaring the chain with --noflush empties it first: the chain's
	# rules are replaced and the jump added in one commit.
	if ! out=$(printf '%s\nCOMMIT\n' "$input" | "$t-restore" -w 5 --noflush 2>&1); then
		die "iptables: could not install the $fam redirect with $t-restore: $out$(hint "$out")"
	fi
	# A jump added twice by hand or by an old version: keep one.
	while [ "$jumps" -gt 1 ]; do
		"$t" -w 5 -t nat -D OUTPUT -p tcp -m tcp --dport "$DPORT" -j "$CHAIN" 2>/dev/null || break
		jumps=$((jumps - 1))
	done
	echo "iptables $fam: tcp dport $DPORT -> port $port installed (chain $CHAIN)"
}

# remove: quiet when there is nothing; $1 family, $2 "strict" to fail when
# the table cannot be read.
ipt_remove() {
	fam=$1
	t=$(ipt_tool "$fam")
	if ! ipt_rules "$fam"; then
		[ "$2" = strict ] && die "iptables: cannot read the $fam nat table: $err$(hint "$err")"
		return 0
	fi
	jumps=$(printf '%s\n' "$rules" | grep -c -x -F -- "$IPT_JUMP")
	have_chain=0
	printf '%s\n' "$rules" | grep -q -x -F -- "-N $CHAIN" && have_chain=1
	[ "$jumps" = 0 ] && [ "$have_chain" = 0 ] && return 0
	while [ "$jumps" -gt 0 ]; do
		out=$("$t" -w 5 -t nat -D OUTPUT -p tcp -m tcp --dport "$DPORT" -j "$CHAIN" 2>&1) ||
			die "iptables: could not delete the $fam jump to $CHAIN: $out$(hint "$out")"
		jumps=$((jumps - 1))
	done
	if [ "$have_chain" = 1 ]; then
		out=$("$t" -w 5 -t nat -F "$CHAIN" 2>&1) ||
			die "iptables: could not flush chain $CHAIN ($fam): $out$(hint "$out")"
		out=$("$t" -w 5 -t nat -X "$CHAIN" 2>&1) ||
			die "iptables: could not delete chain $CHAIN ($fam): $out (another rule still jumps to it?)"
	fi
	echo "iptables $fam: redirect removed"
}

# ---- nftables ----

nft_loopback() {
	if [ "$1" = ip ]; then echo "ip daddr 127.0.0.0/8"; else echo "ip6 daddr ::1"; fi
}

nft_install() { # families...
	have nft || die "nft not found (install the nftables package, or use --backend iptables)"
	if [ -n "$uid" ]; then
		except="meta skuid $uid return"
	elif [ -n "$markmask" ]; then
		except="meta mark and $markmask == $markval return"
	else
		except="meta mark $markval return"
	fi
	# One transaction: create the table if missing, delete it, define it.
	ruleset=
	for fam in "$@"; do
		ruleset="$ruleset
table $fam $TABLE
delete table $fam $TABLE
table $fam $TABLE {
	chain output {
		type nat hook output priority -100; policy accept;
		$except
		$(nft_loopback "$fam") return
		tcp dport $DPORT redirect to :$port
	}
}"
	done
	if ! out=$(printf '%s\n' "$ruleset" | nft -f /dev/stdin 2>&1); then
		die "nftables: could not install the redirect: $out$(hint "$out")"
	fi
	for fam in "$@"; do
		echo "nftables $fam: tcp dport $DPORT -> port $port installed (table $fam $TABLE)"
	done
}

# 0 installed, 1 absent, 2 incomplete, 4 cannot read ($err); $text: the table.
nft_state() { # family
	text=
	have nft || { err="nft not found (install the nftables package)"; return 4; }
	if out=$(nft list table "$1" "$TABLE" 2>&1); then
		text=$(printf '%s\n' "$out" | sed 's/^/    /')
		printf '%s\n' "$out" | grep -q "redirect to :" && return 0
		return 2
	fi
	case $out in
	*"o such file or directory"*) return 1 ;;
	esac
	err=$out
	return 4
}

nft_remove() { # family strict|quiet
	nft_state "$1"
	case $? in
	1) return 0 ;;
	4)
		[ "$2" = strict ] && die "nftables: cannot read table $1 $TABLE: $err$(hint "$err")"
		return 0
		;;
	esac
	out=$(nft delete table "$1" "$TABLE" 2>&1) ||
		die "nftables: could not delete table $1 $TABLE: $out$(hint "$out")"
	echo "nftables $1: redirect removed"
}

# ---- actions ----

backends_to_look_at() {
	case $backend in
	auto)
		b=
		have nft && b="nftables"
		{ have iptables || have ip6tables; } && b="$b iptables"
		[ -n "$b" ] || die "neither nft nor iptables is installed (install nftables or iptables)"
		echo "$b"
		;;
	*) echo "$backend" ;;
	esac
}

do_install() {
	b=$backend
	if [ "$b" = auto ]; then
		if have nft; then
			b=nftables
		elif have iptables; then
			b=iptables
		else
			die "neither nft nor iptables is installed (install nftables or iptables)"
		fi
	fi
	if [ "$b" = nftables ]; then
		# shellcheck disable=SC2086 # the families are words
		nft_install $families
	else
		have iptables-restore || die "iptables not found (install the iptables package, or use --backend nftables)"
		for fam in $families; do
			ipt_install "$fam"
		done
	fi
	# Without --ipv6 no IPv6 redirect stays from an earlier install.
	if [ "$ipv6" = 0 ]; then
		if [ "$b" = nftables ]; then
			nft_remove ip6 quiet
		else
			ipt_remove ip6 quiet
		fi
	fi
	# With auto, one redirect only: drop one the other backend holds.
	if [ "$backend" = auto ]; then
		if [ "$b" = nftables ]; then
			if have iptables; then
				for fam in ip ip6; do ipt_remove "$fam" quiet; done
			fi
		elif have nft; then
			for fam in ip ip6; do nft_remove "$fam" quiet; done
		fi
	fi
}

do_remove() {
	case $backend in
	nftables) have nft || die "nft not found (install the nftables package)" ;;
	iptables) have iptables || die "iptables not found (install the iptables package)" ;;
	esac
	for b in $(backends_to_look_at); do
		for fam in ip ip6; do
			# With a named backend IPv4 must be readable; IPv6 may be
			# missing from the kernel.
			mode=quiet
			[ "$fam" = ip ] && [ "$backend" != auto ] && mode=strict
			if [ "$b" = nftables ]; then
				nft_remove "$fam" "$mode"
			else
				ipt_remove "$fam" "$mode"
			fi
		done
	done
}

do_status() {
	rc=0
	for fam in ip ip6; do
		found=0
		for b in $(backends_to_look_at); do
			text=
			if [ "$b" = nftables ]; then
				nft_state "$fam"
				st=$?
			elif ipt_rules "$fam"; then
				ipt_state
				st=$?
			else
				st=4
			fi
			case $st in
			0) echo "$b $fam: installed"; found=1 ;;
			1) echo "$b $fam: not installed" ;;
			2) echo "$b $fam: incomplete (run install again, or remove)" ;;
			*) echo "$b $fam: cannot read: $err$(hint "$err")"
			   [ "$fam" = ip ] && rc=1 ;;
			esac
			[ -n "$text" ] && [ "$st" != 4 ] && printf '%s\n' "$text"
		done
		if [ "$found" = 0 ] && [ "$rc" = 0 ]; then
			if [ "$fam" = ip ] || [ "$ipv6" = 1 ]; then
				rc=3
			fi
		fi
	done
	return "$rc"
}

case $action in
install) do_install ;;
remove) do_remove ;;
status) do_status; exit $? ;;
esac
exit 0
