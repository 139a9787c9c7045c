# Helpers of the attack suite (test_attacks_upstream.sh,
# test_attacks_downstream.sh): hostile servers of tests/hostile/smtpd.py,
# each on an address of its own, the raw client tests/attacks/smtpx.py, a
# healthy session to a real Postfix MX run at the same time as each attack,
# and the checks every attack shares (docs/security.md;
# section 0: no false 250, no plaintext under mandatory, byte hygiene).
# Source it after lib.sh and it_setup:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_attacks.sh"
#	it_setup
#	at_spawn a01 127.0.1.2:25 no-starttls; at_ready a01
#	at_mxtls_start proxy='command_timeout = 3' <<EOF ... EOF
#	at_healthy_start a01; smtpx "$W/a01.out" mxtls "EHLO c.test" ...; at_healthy_check a01

AT_CLIENT=$IT_ROOT/tests/attacks/smtpx.py
AT_FLOOD=$IT_ROOT/tests/attacks/flood.py
AT_HOSTILE=$IT_ROOT/tests/hostile/smtpd.py

# smtpx OUT HOST:PORT|mxtls [--options] STEP...: tests/attacks/smtpx.py,
# transcript to OUT ("LABEL => reply" lines, as smtpc).
smtpx() {
	_o=$1
	_hp=$2
	shift 2
	[ "$_hp" = mxtls ] && _hp=127.0.0.1:${MXTLS_PORT:-1}
	_opts=""
	while [ $# -gt 0 ]; do
		case $1 in
		--bind | --timeout) _opts="$_opts $1 $2"; shift 2 ;;
		--no-greeting) _opts="$_opts $1"; shift ;;
		*) break ;;
		esac
	done
	# shellcheck disable=SC2086
	python3 "$AT_CLIENT" --timeout "${SMTPC_TIMEOUT:-10}" $_opts "$_hp" "$@" >"$_o" 2>&1
}

# at_mxtls_start [port=N] [allow=CIDR] [proxy='key = value']... <<EOF (more sections) EOF: mxtls
# on 127.0.0.1:$MXTLS_PORT with lib.sh's defaults plus the given [proxy]
# keys (lib.sh's mxtls_start cannot add [proxy] keys and a second [proxy]
# section is refused).  Sets MXTLS_PORT, MXTLS_CONF, MXTLS_LOG, MXTLS_PID.
at_mxtls_start() {
	_px=""
	_port=""
	_allow=127.0.0.0/8
	for _kv in "$@"; do
		case $_kv in
		proxy=*) _px="$_px
${_kv#proxy=}" ;;
		port=*) _port=${_kv#port=} ;;
		allow=*) _allow=${_kv#allow=} ;;
		*) echo "at_mxtls_start: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	MXTLS_N=$((MXTLS_N + 1))
	MXTLS_PORT=${_port:-$(free_port)}
	MXTLS_ADMIN_PORT=$(free_port)
	_d=$W/mxtls.$MXTLS_N
	mkdir -p "$_d/state"
	MXTLS_CONF=$_d/mxtls.ini
	MXTLS_LOG=$_d/mxtls.log
	{
		cat <<EOF
[proxy]
listen = 127.0.0.1:$MXTLS_PORT
hostname = mxtls.test
allow_clients = $_allow
state_dir = state
log_level = debug
user = nobody
admin_listen = 127.0.0.1:$MXTLS_ADMIN_PORT$_px

[dns]
servers = 127.0.0.1:${DNS_PORT:-53}
dnssec = off
allow_private_mx = yes

[tls]
ca_bundle = $PKI/test-root-ca.pem
min_version = 1.2
max_version = 1.3

EOF
		cat
	} >"$MXTLS_CONF"
	MXTLS_PID=""
	if [ ! -x "$MXTLS" ]; then
		fail "mxtls[$MXTLS_N] starts" "$MXTLS does not exist (build it: make build/asan/mxtls)"
		return 1
	fi
	if ! "$MXTLS" -t -c "$MXTLS_CONF" >"$_d/check.out" 2>&1 ||
		! sanitizer_clean "$_d/check.out" >/dev/null; then
		fail "mxtls[$MXTLS_N] accepts its config (mxtls -t), no sanitizer report" "$(cat "$_d/check.out"; sed 's/^/  | /' "$MXTLS_CONF")"
		return 1
	fi
	"$MXTLS" -c "$MXTLS_CONF" 2>"$MXTLS_LOG" >"$_d/stdout" &
	MXTLS_PID=$!
	it_track mxtls "$MXTLS_PID" "$MXTLS_N"
	if ! wait_for_port "127.0.0.1:$MXTLS_PORT" tcp 10 2>/dev/null; then
		fail "mxtls[$MXTLS_N] starts and listens on 127.0.0.1:$MXTLS_PORT" "$(tail -n 30 "$MXTLS_LOG")"
		return 1
	fi
	return 0
}

# at_spawn NAME ADDR:PORT MODE [cert=LEAF] [smtpd.py options...]: start the
# scripted server with the test PKI's LEAF certificate (default valid),
# without waiting for it; event log $W/h-NAME/log, messages and transcripts
# in $W/h-NAME/mail.  at_ready NAME waits until it listens; a mode the local
# OpenSSL cannot do (exit 3) returns 3 with the reason in AT_UNSUPPORTED.
at_spawn() {
	_n=$1
	_l=$2
	_m=$3
	shift 3
	_cert=valid
	case ${1:-} in cert=*) _cert=${1#cert=}; shift ;; esac
	_d=$W/h-$_n
	rm -rf "$_d"
	mkdir -p "$_d/mail"
	python3 "$AT_HOSTILE" --listen "$_l" --mode "$_m" \
		--cert "$PKI/$_cert.chain.pem" --key "$PKI/$_cert.key" --hostname "$_n.hostile.test" \
		--log "$_d/log" --maildir "$_d/mail" --pidfile "$_d/pid" "$@" >"$_d/out" 2>&1 &
	echo $! >"$_d/job"
	it_track hostile $! "$_n"
}
at_ready() {
	_d=$W/h-$1
	_pid=$(cat "$_d/job")
	AT_UNSUPPORTED=""
	_i=0
	while [ ! -s "$_d/pid" ]; do
		if ! alive "$_pid"; then
			wait "$_pid"
			_rc=$?
			if [ $_rc -eq 3 ]; then
				AT_UNSUPPORTED=$(cat "$_d/out")
				return 3
			fi
			fail "hostile $1 starts" "exit $_rc: $(cat "$_d/out")"
			return 1
		fi
		_i=$((_i + 1))
		[ $_i -gt 300 ] && { fail "hostile $1 starts" "no pidfile after 15 s"; return 1; }
		sleep 0.05
	done
	return 0
}

# at_dir NAME: the hostile server's mail directory.
at_dir() { echo "$W/h-$1/mail"; }

# at_count NAME KIND: files of KIND in its mail dir: saved (NNN.eml, the
# messages it answered 250 to), unacked, aborted; connects (connections).
at_count() {
	case $2 in
	saved) find "$(at_dir "$1")" -maxdepth 1 -name '[0-9]*.env' | wc -l | tr -d ' ' ;;
	unacked) find "$(at_dir "$1")" -maxdepth 1 -name 'unacked-*.env' | wc -l | tr -d ' ' ;;
	aborted) find "$(at_dir "$1")" -maxdepth 1 -name 'aborted-*.env' | wc -l | tr -d ' ' ;;
	connects) sh "$IT_ROOT/tests/hostile/count.sh" "$W/h-$1/log" ;;
	esac
}

# at_saved_is NAME N: the hostile server acknowledged exactly N messages.
at_saved_is() {
	_c=$(at_count "$1" saved)
	[ "$_c" = "$2" ] && return 0
	echo "hostile $1 acknowledged (saved) $_c messages, expected $2:"
	find "$(at_dir "$1")" -maxdepth 1 -type f -printf '  %f\n' | sort
	return 1
}

# at_no_plain NAME: nothing of a transaction went to the hostile server in
# the clear: no MAIL, RCPT, DATA, BDAT command or message byte on a plain
# connection (its transcripts), and no message (saved, unacked or
# aborted) that came in without TLS.
at_no_plain() {
	_d=$(at_dir "$1")
	_bad=$(grep -hiE '^C: plain (MAIL|RCPT|DATA|BDAT)|^C: \(data\) plain' "$_d"/conn-*.log 2>/dev/null | head -n 5)
	_env=$(grep -l '^tls: no' "$_d"/*.env 2>/dev/null | head -n 5)
	if [ -z "$_bad$_env" ]; then
		return 0
	fi
	echo "sent in the clear to hostile $1:"
	printf '%s\n' "$_bad" "$_env" | grep . | sed 's/^/  /'
	return 1
}

# at_saw NAME ERE: some transcript line of the hostile server matches ERE
# (lines are "C: plain|tls TEXT" and "S: ...").
at_saw() {
	grep -hE -- "$2" "$(at_dir "$1")"/conn-*.log 2>/dev/null | grep -q . && return 0
	echo "no transcript line of hostile $1 matches /$2/; they have:"
	cat "$(at_dir "$1")"/conn-*.log 2>/dev/null | cut -c 1-200 | tail -n 20 | sed 's/^/  /'
	return 1
}
# at_not_saw NAME ERE: no transcript line matches.
at_not_saw() {
	_l=$(grep -hE -- "$2" "$(at_dir "$1")"/conn-*.log 2>/dev/null | head -n 5)
	[ -z "$_l" ] && return 0
	echo "hostile $1 received what it should not have:"
	printf '%s\n' "$_l" | cut -c 1-300 | sed 's/^/  /'
	return 1
}

# at_hygiene NAME: every message the hostile server received (saved,
# unacked) has no bare CR, bare LF or NUL; what it received of an aborted
# DATA has no bare LF, no NUL and no bare CR before its last byte.
at_hygiene() {
	_d=$(at_dir "$1")
	_bad=""
	for _e in "$_d"/*.env; do
		[ -f "$_e" ] || continue
		case $(basename "$_e") in
		aborted-*) _keys='bare_lf|nul|bare_cr_inside' ;;
		*) _keys='bare_cr|bare_lf|nul' ;;
		esac
		_x=$(grep -E "^($_keys): [1-9]" "$_e" | tr '\n' ' ')
		[ -n "$_x" ] && _bad="$_bad
$(basename "$_e"): $_x"
	done
	[ -z "$_bad" ] && return 0
	echo "stray CR/LF/NUL reached hostile $1:$_bad"
	return 1
}

# at_wait_closed NAME N [SECONDS]: the hostile server logged N "close" lines.
at_wait_closed() {
	_t=$(it_until "${3:-5}")
	while [ "$(grep -c '^close ' "$W/h-$1/log" 2>/dev/null)" -lt "$2" ]; do
		if [ "$(date +%s)" -ge "$_t" ]; then
			echo "hostile $1: $(grep -c '^close ' "$W/h-$1/log") of $2 connections closed after ${3:-5} s; log:"
			tail -n 10 "$W/h-$1/log" | sed 's/^/  /'
			return 1
		fi
		sleep 0.1
	done
}

# no_reply_is OUT LABEL ERE: the reply to LABEL (any occurrence) does not
# start with ERE (e.g. never 250 to the final dot).
no_reply_is() {
	_got=$(awk -v l="$2 => " 'index($0, l) == 1 { print substr($0, length(l) + 1) }' "$1")
	if printf '%s\n' "$_got" | grep -qE -- "^$3"; then
		echo "the reply to '$2' must not match /^$3/; transcript $1:"
		sed 's/^/  /' "$1"
		return 1
	fi
	return 0
}

# tempfail OUT: the transaction in OUT was refused with a 4xx at RCPT,
# DATA or the final dot, and the final dot (if it came that far) was
# never answered 2xx.  Prints the reply that refused it.
tempfail() {
	_r=$(awk '/^(RCPT TO:|DATA|DOT|RAW|RECV)[^=]* => / { sub(/^[^=]*=> /, ""); print }' "$1" |
		grep -E '^[0-9]{3}' | grep -vE '^(2|3)' | head -n 1)
	_dot=$(awk 'index($0, "DOT => ") == 1 { print substr($0, 8) }' "$1")
	if printf '%s\n' "$_dot" | grep -qE '^2'; then
		echo "the final dot was answered 2xx although the mail was not delivered:"
		sed 's/^/  /' "$1"
		return 1
	fi
	case $_r in
	4*) return 0 ;;
	esac
	echo "expected a 4xx at RCPT, DATA or the final dot, first refusal: ${_r:-(none)}; transcript $1:"
	sed 's/^/  /' "$1"
	return 1
}

# log_has ERE [SECONDS]: the current mxtls log has a line matching ERE.
log_has() { grep_since "$MXTLS_LOG" 0 "$1" "${2:-3}"; }

# rss_kib PID: resident memory of PID in KiB; fds PID: open descriptors.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l | tr -d ' '; }
# fds_base PID TAG: the descriptor count to compare with at the end, read
# after one healthy delivery (TAG), so that what opens on first use (the
# resolver's sockets, the fetcher's pipes) is in it too.
fds_base() {
	at_healthy_start "$2"
	check "a healthy session delivers before the attacks" at_healthy_check "$2"
	FD0=$(fds "$1")
}
# fds_settle PID MAX: the descriptor count of PID, read again for up to
# 15 s while it is above MAX.  Idle connections leave the cache after
# connection_cache_time (5 s) and those leaving wait up to 2 s for the
# answer to QUIT: a leak is what is still open after that.  The open
# descriptors are listed (stderr) when the count stays above MAX.
fds_settle() {
	_t=$(it_until 15)
	_n=$(fds "$1")
	while [ "$_n" -gt "$2" ] && [ "$(date +%s)" -lt "$_t" ]; do
		sleep 0.5
		_n=$(fds "$1")
	done
	[ "$_n" -le "$2" ] || ls -l "/proc/$1/fd" | sed 's/^/# fd /' >&2
	echo "$_n"
}

# ---------------------------------------------------------------- healthy

# The healthy session: a second mxtls session, to a real Postfix MX over
# verified TLS, started together with an attack.  at_healthy_setup ADDR
# once (before mxtls starts); it needs the match section of
# at_healthy_conf in the mxtls config.
at_healthy_setup() {
	AT_HEALTHY_ADDR=$1
	pf_mx healthy "$1:25" cert=valid hostname=mx.tls.test || {
		fail "healthy Postfix MX starts" "$(cat "$(pf_dir healthy)/master.out" 2>/dev/null)"
		return 1
	}
	mkmsg "$W/healthy.msg" "healthy session beside an attack"
}
at_healthy_conf() {
	cat <<EOF
[match healthy.test]
profile = mandatory
nexthop = $AT_HEALTHY_ADDR:25
mx = mx.tls.test

EOF
}

# at_healthy_start TAG: in the background, a session to healthy.test.
at_healthy_start() {
	smtpc "$W/healthy.$1.out" mxtls "EHLO healthy.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<$1@healthy.test>" "DATA=$W/healthy.msg" QUIT &
	AT_HEALTHY_PID=$!
}
# at_healthy_check TAG: it got 250 to its final dot and Postfix delivered it.
at_healthy_check() {
	# (check runs this in a subshell, which cannot wait for the job)
	_t=$(it_until 30)
	while alive "$AT_HEALTHY_PID" && [ "$(date +%s)" -lt "$_t" ]; do sleep 0.1; done
	reply_is "$W/healthy.$1.out" DOT '250 ' || return 1
	mx_wait_rcpt healthy "$1@healthy.test" 1 10
}

# hostile_conf NAME ADDR PROFILE [MX]: a match section sending NAME.test to
# the hostile server at ADDR:25 (literal nexthop; the certificate is
# checked against MX, default mx.tls.test, which the valid leaf carries).
hostile_conf() {
	cat <<EOF
[match $1.test]
profile = $3
nexthop = $2:25
mx = ${4:-mx.tls.test}

EOF
}
