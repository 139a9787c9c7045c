# Helpers of the retry tests (test_retry.sh, test_retry_postfix.sh): one
# mxtls config kept across restarts, the clock moved by restarting mxtls
# with MXTLS_CLOCK_OFFSET, the retry records seen through `mxtls state`,
# the scripted hostile server, and connection counters of the receivers.
# Source it after lib.sh and it_setup:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/lib_retry.sh"
#	it_setup
#	rt_config proxy='tls_timeout = 2' <<EOF ... EOF   # once
#	rt_mxtls_start 0                                  # clock + 0 s
#	...
#	rt_mxtls_restart 310                              # clock + 310 s, same state_dir

# rt_config [default=PROFILE] [proxy='key = value']... [policy='key = value']...
# <<EOF (more sections) EOF: write the one config of this script to
# $W/rt/mxtls.ini.  Unlike lib.sh's mxtls_start (a fresh state_dir and port
# per start), the listen port and the state_dir stay the same for every
# start, so that a restart finds the retry records of the one before.
# Sets RT_CONF, RT_STATE_DIR, MXTLS_PORT, MXTLS_ADMIN_PORT.
rt_config() {
	_def=opportunistic
	_px=""
	_pol=""
	for _kv in "$@"; do
		case $_kv in
		default=*) _def=${_kv#default=} ;;
		proxy=*) _px="$_px
${_kv#proxy=}" ;;
		policy=*) _pol="$_pol
${_kv#policy=}" ;;
		*) echo "rt_config: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	mkdir -p "$W/rt/state"
	RT_CONF=$W/rt/mxtls.ini
	RT_STATE_DIR=$W/rt/state
	MXTLS_PORT=$(free_port)
	MXTLS_ADMIN_PORT=$(free_port)
	{
		cat <<EOF
[proxy]
listen = 127.0.0.1:$MXTLS_PORT
hostname = mxtls.test
allow_clients = 127.0.0.0/8
state_dir = $RT_STATE_DIR
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

[policy]
default = $_def$_pol

EOF
		cat
	} >"$RT_CONF"
}

# rt_mxtls_start OFFSET: start mxtls with the config of rt_config and its
# clock OFFSET seconds ahead of the wall clock (MXTLS_CLOCK_OFFSET).  The
# log of the Nth start is $W/mxtls.N/mxtls.log (lib.sh's mxtls_stop checks
# it for sanitizer reports).  It must listen within RT_START_WAIT seconds
# (10).  Sets RT_OFFSET, MXTLS_N, MXTLS_LOG, MXTLS_PID.
rt_mxtls_start() {
	RT_OFFSET=$1
	MXTLS_N=$((MXTLS_N + 1))
	_d=$W/mxtls.$MXTLS_N
	mkdir -p "$_d"
	# shellcheck disable=SC2034 # lib.sh's name for the current config
	MXTLS_CONF=$RT_CONF
	MXTLS_LOG=$_d/mxtls.log
	MXTLS_PID=""
	if [ ! -x "$MXTLS" ]; then
		fail "mxtls[$MXTLS_N] starts" "$MXTLS does not exist (build it: make build/asan/mxtls)"
		return 1
	fi
	if ! MXTLS_CLOCK_OFFSET=$1 "$MXTLS" -t -c "$RT_CONF" >"$_d/check.out" 2>&1 ||
		! sanitizer_clean "$_d/check.out" >/dev/null; then
		fail "mxtls[$MXTLS_N] accepts its config (mxtls -t), no sanitizer report" "$(cat "$_d/check.out"; sed 's/^/  | /' "$RT_CONF")"
		return 1
	fi
	echo "$1" >"$_d/clock-offset"
	MXTLS_CLOCK_OFFSET=$1 "$MXTLS" -c "$RT_CONF" 2>"$MXTLS_LOG" >"$_d/stdout" &
	MXTLS_PID=$!
	it_track mxtls "$MXTLS_PID" "$MXTLS_N"
	if ! wait_for_port "127.0.0.1:$MXTLS_PORT" tcp "${RT_START_WAIT:-10}" 2>/dev/null; then
		fail "mxtls[$MXTLS_N] (clock +$1 s) starts and listens on 127.0.0.1:$MXTLS_PORT" "$(tail -n 30 "$MXTLS_LOG")"
		return 1
	fi
	note "mxtls[$MXTLS_N] started with MXTLS_CLOCK_OFFSET=$1 (pid $MXTLS_PID, state_dir $RT_STATE_DIR)"
	return 0
}

# rt_mxtls_restart OFFSET: stop mxtls (lib.sh's mxtls_stop: it must have
# been alive, no sanitizer report) and start it again with OFFSET.
rt_mxtls_restart() {
	mxtls_stop
	rt_mxtls_start "$1"
}

# rt_state OUT: `mxtls -c CONF state` with the clock of the running mxtls,
# listing to OUT.  Fails on a non-zero exit or a sanitizer report.
rt_state() {
	MXTLS_CLOCK_OFFSET=${RT_OFFSET:-0} "$MXTLS" -c "$RT_CONF" state >"$1" 2>"$1.err"
	_rc=$?
	if [ $_rc -ne 0 ] || ! sanitizer_clean "$1.err" >/dev/null; then
		echo "mxtls state exited $_rc:"
		cat "$1" "$1.err"
		return 1
	fi
	return 0
}

# rt_state_is OUT ADDR STATE [ERE]: in the listing OUT, the record of the
# host at ADDR is in STATE (failed-once, broken) and matches ERE, not
# expired; STATE "none": there is no record for ADDR.
rt_state_is() {
	_l=$(awk -v a="$2" '$2 == a' "$1")
	if [ "$3" = none ]; then
		[ -z "$_l" ] && return 0
		echo "expected no retry record for $2, \`mxtls state\` lists: $_l"
		return 1
	fi
	if printf '%s\n' "$_l" | awk -v s="$3" '$3 == s && $NF != "expired"' | grep -qE -- "${4:-.}"; then
		return 0
	fi
	echo "expected a $3 record for $2${4:+ matching /$4/}; \`mxtls state\` lists:"
	sed 's/^/  /' "$1"
	[ -s "$1" ] || echo "  (nothing)"
	return 1
}

# rt_state_field OUT ADDR KEY: the value of KEY= (since, until,
# retry_after) in the record of ADDR.
rt_state_field() {
	awk -v a="$2" -v k="$3=" '$2 == a { for (i = 4; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$1"
}

# rt_count KIND NAME: the connections the receiver accepted so far: KIND
# "h" (hostile: count.sh of its event log) or "pf" (Postfix MX: its smtpd
# "connect from" lines, plus those of earlier incarnations, see rt_pf_restart).
rt_count() {
	if [ "$1" = h ]; then
		sh "$IT_ROOT/tests/hostile/count.sh" "$W/h-$2/log"
	else
		_b=0
		[ -f "$W/pfbase-$2" ] && _b=$(cat "$W/pfbase-$2")
		_c=$(grep -cE 'smtpd\[[0-9]+\]: connect from ' "$(pf_log "$2")" 2>/dev/null)
		echo $((_b + ${_c:-0}))
	fi
}

# rt_count_is KIND NAME BEFORE DELTA: the receiver's count moved from
# BEFORE by exactly DELTA.  It waits (3 s) for the count to get there, as
# Postfix logs through postlogd; the caller lets a moment pass after the
# attempts first, so that a late extra connection (or one that should not
# be there at all, DELTA 0) is seen.
rt_count_is() {
	_want=$(($3 + $4))
	_t=$(($(date +%s) + 3))
	while [ "$(rt_count "$1" "$2")" -lt $_want ] && [ "$(date +%s)" -lt "$_t" ]; do
		sleep 0.1
	done
	_c=$(rt_count "$1" "$2")
	[ "$_c" -eq $_want ] && return 0
	echo "$1 $2: the connection count moved by $((_c - $3)) ($3 -> $_c), expected $4"
	if [ "$1" = h ]; then
		tail -n 15 "$W/h-$2/log" | sed 's/^/  | /'
	else
		grep -E 'smtpd\[' "$(pf_log "$2")" | tail -n 10 | cut -c 1-300 | sed 's/^/  | /'
	fi
	return 1
}

# rt_pf_restart NAME LISTEN [pf_mx options]: stop the Postfix MX NAME and
# start it anew with other options (pf_mx starts from an empty directory:
# its connection count so far is kept in $W/pfbase-NAME).
rt_pf_restart() {
	_n=$1
	_c=$(rt_count pf "$_n")
	pf_stop "$_n"
	echo "$_c" >"$W/pfbase-$_n"
	shift
	pf_mx "$_n" "$@"
}

# rt_h_message NAME RCPT: the .env file of the message the hostile server
# NAME accepted for RCPT (empty when none).
rt_h_message() {
	grep -lF "<$2>" "$W/h-$1/mail"/[0-9]*.env 2>/dev/null | head -n 1
}

# rt_h_clear NAME RCPT MSGFILE [fresh]: the hostile server accepted the
# message for RCPT in the clear (tls: no), byte-identical to MSGFILE (line
# ends aside; see delivered_is for the trace headers allowed before it), on a connection that never sent STARTTLS.  With "fresh":
# that connection came right after one that sent STARTTLS and carried no
# MAIL, RCPT or DATA (the fallback is a fresh connection, never the one
# whose TLS failed).
rt_h_clear() {
	_t=$(it_until 5)
	while [ -z "$(rt_h_message "$1" "$2")" ]; do
		if [ "$(date +%s)" -ge "$_t" ]; then
			echo "hostile $1 saved no message for $2; its log:"
			tail -n 20 "$W/h-$1/log" | sed 's/^/  | /'
			return 1
		fi
		sleep 0.1
	done
	_env=$(rt_h_message "$1" "$2")
	if ! grep -qx 'tls: no' "$_env"; then
		echo "message for $2 was not received in the clear:"
		sed 's/^/  | /' "$_env"
		return 1
	fi
	# The .eml has CRLF line ends; delivered_is wants the message as sent,
	# after any Received lines added on the way (the legacy MTA adds one).
	tr -d '\r' <"${_env%.env}.eml" >"${_env%.env}.lf"
	delivered_is "${_env%.env}.lf" "$3" || return 1
	_c=$(sed -n 's/^conn: //p' "$_env")
	_mail=$W/h-$1/mail
	if grep -qE '^C: [a-z]+ STARTTLS' "$_mail/conn-$_c.log"; then
		echo "the fallback connection $_c sent STARTTLS:"
		sed 's/^/  | /' "$_mail/conn-$_c.log"
		return 1
	fi
	[ "${4:-}" = fresh ] || return 0
	_p=$((_c - 1))
	if ! grep -qE '^C: plain STARTTLS' "$_mail/conn-$_p.log" 2>/dev/null ||
		grep -qE '^C: [a-z]+ (MAIL|RCPT|DATA)' "$_mail/conn-$_p.log"; then
		echo "connection $_p (before the fallback $_c) is not a failed STARTTLS without MAIL:"
		sed 's/^/  | /' "$_mail/conn-$_p.log" 2>/dev/null
		return 1
	fi
	return 0
}

# rt_h_none NAME RCPT: the hostile server accepted nothing for RCPT.
rt_h_none() {
	_e=$(rt_h_message "$1" "$2")
	[ -z "$_e" ] && return 0
	echo "hostile $1 accepted a message for $2: $_e"
	sed 's/^/  | /' "$_e"
	return 1
}

# rt_log_has ERE...: a line of the current mxtls log matches every ERE.
rt_log_has() {
	_t=$(it_until 3)
	while :; do
		_lines=$(cat "$MXTLS_LOG")
		_ok=yes
		for _re in "$@"; do
			_lines=$(printf '%s\n' "$_lines" | grep -E -- "$_re") || { _ok=no; break; }
		done
		[ $_ok = yes ] && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
	done
	echo "no line of $MXTLS_LOG matches all of: $*"
	printf '%s\n' "$1" | grep -qE 'event=[a-z-]+' &&
		grep -oE "$(printf '%s\n' "$1" | grep -oE 'event=[a-z-]+' | head -n 1).*" "$MXTLS_LOG" | tail -n 5 | cut -c 1-400 | sed 's/^/  | /'
	return 1
}

# rt_log_lacks ERE...: no line of the current mxtls log matches every ERE.
rt_log_lacks() {
	_lines=$(cat "$MXTLS_LOG")
	for _re in "$@"; do
		_lines=$(printf '%s\n' "$_lines" | grep -E -- "$_re") || return 0
	done
	echo "these lines of $MXTLS_LOG should not be there:"
	printf '%s\n' "$_lines" | cut -c 1-400 | sed 's/^/  | /'
	return 1
}

# rt_retry_after OUT LABEL: the time of "retry after TIME" in the reply to
# LABEL in transcript OUT.
rt_retry_after() {
	awk -v l="$2 => " 'index($0, l) == 1 { print; exit }' "$1" |
		sed -n 's/.*retry after \([0-9TZ:-]*\).*/\1/p'
}

# rt_epoch TIME: 2026-01-01T00:00:00Z -> seconds since the epoch.
rt_epoch() { date -u -d "$(echo "$1" | sed 's/T/ /; s/Z$//')" +%s 2>/dev/null; }

# rt_between VALUE LOW HIGH [WHAT]: LOW <= VALUE <= HIGH (integers).
rt_between() {
	if [ -n "$1" ] && [ "$1" -ge "$2" ] 2>/dev/null && [ "$1" -le "$3" ]; then
		return 0
	fi
	echo "${4:-value} ${1:-(none)} is not in [$2, $3]"
	return 1
}
