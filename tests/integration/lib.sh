# Shared functions of the integration tests (POSIX sh).  A test script does
#
#	. "$(dirname "$0")/lib.sh"
#	it_setup                       # work dir build/it/NAME, test PKI, traps
#	dns_mx example.test mx.example.test 10; dns_a mx.example.test 127.0.0.2
#	dns_start
#	pf_mx mx1 127.0.0.2:25 cert=valid
#	mxtls_start default=mandatory <<EOF
#	[match example.test]
#	profile = mandatory
#	EOF
#	smtpc out "EHLO client.test" "MAIL FROM:<s@sender.test>" ...
#	check "delivered" reply_is out DOT '250 '
#	finish                         # stops everything, "N passed, N failed"
#
# Everything started here is recorded in $W/pids and stopped by PID on exit.
# Loopback only: receiving MXs listen on 127.0.0.2:25, 127.0.0.3:25, ...
#
# Environment: MXTLS (default build/asan/mxtls), IT_TIMEOUT (seconds the
# whole script may take on an idle machine, default 240; the watchdog allows
# IT_SLOW times that), SMTPC_TIMEOUT (seconds per SMTP reply, 10).

set -u
IT_ROOT=${IT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$IT_ROOT" || exit 1
MXTLS=${MXTLS:-build/asan/mxtls}
case $MXTLS in /*) ;; *) MXTLS=$IT_ROOT/$MXTLS ;; esac
IT_NAME=$(basename "$0" .sh)
W=$IT_ROOT/build/it/$IT_NAME
IT_FILES=$IT_ROOT/tests/integration/files
PKI=$IT_ROOT/build/it/pki
PASS=0
FAIL=0
PF_SBIN=$(postconf -h daemon_directory 2>/dev/null || echo /usr/lib/postfix/sbin)
[ -d "$PF_SBIN" ] || PF_SBIN=/usr/lib/postfix/sbin
# Mail delivered by the receiving MXs belongs to this user.
IT_MAIL_UID=65534
IT_MAIL_GID=65534
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# How many times slower than an idle machine a busy one may be (a shared CI
# runner, scripts run side by side): every wait for something that should
# happen, and the watchdog, allow that many times their idle seconds.  A
# check about time never depends on it: see "deadlines" below.
IT_SLOW=5

# ---------------------------------------------------------------- reporting

# check NAME CMD...: run CMD; "ok  NAME" when it succeeds, else "FAIL NAME"
# and CMD's output indented.  Assertion helpers below print what they saw.
check() {
	_name=$1
	shift
	if _out=$("$@" 2>&1); then
		echo "ok  $_name"
		PASS=$((PASS + 1))
		LAST_OK=yes
	else
		echo "FAIL $_name"
		[ -n "$_out" ] && printf '%s\n' "$_out" | head -n 60 | sed 's/^/    /'
		FAIL=$((FAIL + 1))
		LAST_OK=no
	fi
	return 0
}
LAST_OK=yes

# check_if yes|no NAME CMD...: check NAME only when the check it depends on
# passed (pass "$LAST_OK" saved after that check); otherwise NAME fails at
# once, without waiting for a delivery that cannot happen.
check_if() {
	if [ "$1" = yes ]; then
		shift
		check "$@"
	else
		fail "$2" "not checked: a check it depends on failed"
	fi
}

# fail NAME [DETAIL]: a failed check without a command (or one that could not
# run at all).
fail() {
	echo "FAIL $1"
	[ $# -gt 1 ] && echo "    $2"
	FAIL=$((FAIL + 1))
	LAST_OK=no
}

note() { echo "# $*"; }

# finish: stop everything, print the totals, exit non-zero on failure.
finish() {
	it_stop_all
	trap - EXIT INT TERM
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] && exit 0
	exit 1
}

# ---------------------------------------------------------------- setup

it_setup() {
	mkdir -p "$IT_ROOT/build/it"
	# Leftovers of an earlier, interrupted run of this script.
	[ -f "$W/pids" ] && it_stop_all >/dev/null 2>&1
	rm -rf "$W"
	mkdir -p "$W"
	chmod 755 "$W"
	: >"$W/pids"
	trap 'it_interrupted' INT TERM
	trap 'it_stop_all' EXIT
	(
		command -v flock >/dev/null 2>&1 && flock 9
		sh "$IT_ROOT/tests/integration/pki.sh" "$PKI"
	) 9>"$IT_ROOT/build/it/.pki.lock" || { fail "test PKI" "pki.sh failed"; finish; }
	# The watchdog: a hung test must not hang `make test`, and a slow one
	# is not a failure.  Stopping it stops its sleep too.
	IT_WATCHDOG=$((${IT_TIMEOUT:-240} * IT_SLOW))
	_self=$$
	(
		trap 'kill "$_sp" 2>/dev/null; exit 0' TERM
		sleep "$IT_WATCHDOG" &
		_sp=$!
		wait "$_sp"
		kill -TERM "$_self"
	) >/dev/null 2>&1 &
	it_track watchdog $! -
	DNS_ARGS=""
	MXTLS_N=0
}

# it_interrupted: on SIGTERM (the watchdog) or SIGINT: a failure, then the
# usual closing line so that tests/run.sh counts it.
it_interrupted() {
	trap - INT TERM EXIT
	fail "$IT_NAME: interrupted (timeout after ${IT_WATCHDOG:-?} s, or a signal)"
	it_stop_all
	echo "$PASS passed, $FAIL failed"
	exit 1
}

# it_track KIND PID WHAT: remember a process to stop at the end.
it_track() { echo "$1 $2 $3" >>"$W/pids"; }

# it_stop_all: stop what this script started, newest first.
it_stop_all() {
	[ -f "$W/pids" ] || return 0
	tac "$W/pids" | while read -r kind pid what; do
		case $kind in
		mxtls) mxtls_stop_pid "$pid" "$what" ;;
		postfix) pf_stop_pid "$pid" ;;
		*) kill_wait "$pid" ;;
		esac
	done
	: >"$W/pids"
}

# kill_wait PID [SIGNAL]: signal PID and wait (up to 5 s) until it is gone.
kill_wait() {
	kill -"${2:-TERM}" "$1" 2>/dev/null || return 0
	_i=0
	while alive "$1"; do
		_i=$((_i + 1))
		if [ $_i -eq 100 ]; then
			kill -KILL "$1" 2>/dev/null
		elif [ $_i -gt 120 ]; then
			return 1
		fi
		sleep 0.05
	done
	wait "$1" 2>/dev/null
	return 0
}

# alive PID: the process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# hostile_smtpd NAME ADDR:PORT MODE [smtpd.py options...]: the scripted server
# of tests/hostile with the test PKI's valid certificate; event log
# $W/h-NAME/log, messages and transcripts in $W/h-NAME/mail.
hostile_smtpd() {
	_n=$1
	_l=$2
	_m=$3
	shift 3
	_d=$W/h-$_n
	rm -rf "$_d"
	mkdir -p "$_d/mail"
	python3 "$IT_ROOT/tests/hostile/smtpd.py" --listen "$_l" --mode "$_m" \
		--cert "$PKI/valid.chain.pem" --key "$PKI/valid.key" --hostname "$_n.hostile.test" \
		--log "$_d/log" --maildir "$_d/mail" --pidfile "$_d/pid" "$@" >"$_d/out" 2>&1 &
	_pid=$!
	it_track hostile $_pid "$_n"
	_i=0
	while [ ! -s "$_d/pid" ]; do
		if ! alive $_pid; then
			wait $_pid
			_rc=$?
			if [ $_rc -eq 3 ]; then
				fail "hostile $_n ($_m) starts" "skipped, the local OpenSSL cannot: $(cat "$_d/out")"
			else
				fail "hostile $_n ($_m) starts on $_l" "exit $_rc: $(cat "$_d/out")"
			fi
			return 1
		fi
		_i=$((_i + 1))
		[ $_i -gt 200 ] && { fail "hostile $_n ($_m) starts" "no pidfile after 10 s"; return 1; }
		sleep 0.05
	done
	return 0
}

# nginx_conf_head NAME FORMAT [TYPES]: the start of an nginx.conf for a
# test server kept in $NG (pid, error log, temp paths), up to the server
# blocks: "http {" with access_log $NG/access.log in log format NAME =
# FORMAT (nginx variables as they are: '$host $status'), TYPES (default
# "text/plain txt;") and TLS 1.2 and 1.3.  The caller adds the server
# blocks and the closing "}".
nginx_conf_head() {
	cat <<EOF
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log info;
events { worker_connections 128; }
http {
	log_format $1 '$2';
	access_log $NG/access.log $1;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	types { ${3:-text/plain txt;} }
	default_type application/octet-stream;
	ssl_protocols TLSv1.2 TLSv1.3;
EOF
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# port_busy ADDR:PORT: something listens there (TCP).
port_busy() { ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qxF "$1"; }

# wait_for_port ADDR:PORT [tcp|udp] [SECONDS]: until something listens there.
wait_for_port() {
	_t=$(it_until "${3:-10}")
	_f=-Hltn
	[ "${2:-tcp}" = udp ] && _f=-Hlun
	while :; do
		ss $_f 2>/dev/null | awk '{print $4}' | grep -qxF "$1" && return 0
		[ "$(date +%s)" -ge "$_t" ] && { echo "nothing listens on $1" >&2; return 1; }
		sleep 0.05
	done
}

# it_until SECONDS: the time (epoch seconds) at which a wait for something
# that should happen gives up: SECONDS on an idle machine, IT_SLOW times
# that from now.
it_until() { echo $(($(date +%s) + $1 * IT_SLOW)); }

# wait_until SECONDS CMD...: until CMD succeeds (fails after it_until SECONDS).
wait_until() {
	_t=$(it_until "$1")
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$_t" ] && return 1
		sleep 0.05
	done
}

# wait_for_log FILE ERE [SECONDS]: until a line of FILE matches.
wait_for_log() {
	_t=$(it_until "${3:-20}")
	while :; do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		[ "$(date +%s)" -ge "$_t" ] && return 1
		sleep 0.1
	done
}

# log_mark FILE: the current size; log_since FILE MARK: what came after.
log_mark() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }
log_since() { tail -c +$(($2 + 1)) "$1" 2>/dev/null; }

# ---------------------------------------------------------------- DNS

# Records for dnsmasq, collected before dns_start.
dns_mx() { DNS_ARGS="$DNS_ARGS --mx-host=$1,$2,${3:-10}"; }      # DOMAIN HOST [PREF]
dns_a() { DNS_ARGS="$DNS_ARGS --host-record=$1,$2"; }           # NAME ADDR
dns_null_mx() { DNS_ARGS="$DNS_ARGS --dns-rr=$1,15,000000"; }   # DOMAIN (RFC 7505)
dns_txt() { DNS_ARGS="$DNS_ARGS --txt-record=$1,$2"; }          # NAME TEXT (no spaces)

# dns_start: dnsmasq on 127.0.0.1:$DNS_PORT, authoritative for .test (other
# names under .test are NXDOMAIN), answering only the records above.
dns_start() {
	DNS_PORT=$(free_port)
	# shellcheck disable=SC2086
	dnsmasq --conf-file=/dev/null --keep-in-foreground --pid-file= --user=root \
		--port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --no-negcache --local=/test/ \
		--log-queries --log-facility="$W/dnsmasq.log" $DNS_ARGS \
		>"$W/dnsmasq.out" 2>&1 &
	it_track dnsmasq $! -
	wait_for_port "127.0.0.1:$DNS_PORT" udp || {
		cat "$W/dnsmasq.out"
		fail "dnsmasq starts" "$(cat "$W/dnsmasq.out")"
		return 1
	}
}

# dnsq NAME TYPE: ask the test DNS server.
dnsq() { python3 "$IT_FILES/dnsq.py" "127.0.0.1:$DNS_PORT" "$1" "$2"; }
# dns_has NAME TYPE LINE: the answer has LINE ("MX 10 mx.example.test",
# "A 127.0.0.2", "rcode=NXDOMAIN").
dns_has() {
	_a=$(dnsq "$1" "$2")
	printf '%s\n' "$_a" | grep -qxF -- "$3" && return 0
	echo "DNS $1 $2: expected '$3', got:"
	printf '%s\n' "$_a" | sed 's/^/  /'
	return 1
}

# ---------------------------------------------------------------- Postfix

# Private Postfix instances: $W/pf-NAME/{main.cf,master.cf,queue,data,
# maillog,mail}.  The master runs in the foreground of a background job (no
# `postfix start`: no integrity check, no syslog, and we know its PID).  As
# root, a non-default config directory needs no alternate_config_directories.

pf_dir() { echo "$W/pf-$1"; }
pf_log() { echo "$W/pf-$1/maillog"; }

_pf_queue() { # DIR: the queue layout of postfix-files, made by hand (fast)
	_q=$1/queue
	mkdir -p "$_q" "$1/data"
	for _qs in active bounce corrupt defer deferred flush hold incoming private saved trace; do
		mkdir -p "$_q/$_qs"
		chmod 700 "$_q/$_qs"
		chown postfix:root "$_q/$_qs"
	done
	mkdir -p "$_q/maildrop" "$_q/public" "$_q/pid"
	chown postfix:postdrop "$_q/maildrop" "$_q/public"
	chmod 730 "$_q/maildrop"
	chmod 710 "$_q/public"
	chown root:root "$_q" "$_q/pid"
	chmod 755 "$_q" "$_q/pid"
	chown postfix:postfix "$1/data"
	chmod 700 "$1/data"
}

# inet_interfaces: Postfix wants interface addresses there, and 127.0.0.2 is
# none (only 127.0.0.1/8 is on lo); master.cf names the exact address:port.
_pf_main_common() { # DIR HOSTNAME
	cat <<EOF
compatibility_level = 3.6
queue_directory = $1/queue
data_directory = $1/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $2
mydomain = ${2#*.}
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $1/maillog
maillog_file_prefixes = $1
smtpd_banner = \$myhostname ESMTP test
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_relay_restrictions = permit_mynetworks, reject
local_header_rewrite_clients =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
message_size_limit = 52428800
smtputf8_enable = yes
smtp_dns_support_level = disabled
smtp_host_lookup = native
EOF
}

_pf_master() { # LISTEN...
	for _l in "$@"; do
		echo "$_l inet n - n - - smtpd"
	done
	cat <<'EOF'
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

# _pf_run NAME LISTEN...: start the master of $W/pf-NAME, wait for LISTENs.
_pf_run() {
	_n=$1
	shift
	_d=$(pf_dir "$_n")
	for _l in "$@"; do
		if port_busy "$_l"; then
			echo "postfix $_n: $_l is already in use:" >&2
			ss -Hltnp 2>/dev/null | grep -F " $_l " >&2
			return 1
		fi
	done
	: >"$_d/maillog"
	# Postfix re-reads a main.cf younger than a second until it is older
	# (dict_load_file: it might still be being written): backdate it.
	touch -d '-1 minute' "$_d/main.cf" "$_d/master.cf" "$_d"/any_domain 2>/dev/null
	"$PF_SBIN/master" -c "$_d" >"$_d/master.out" 2>&1 &
	_pid=$!
	it_track postfix $_pid "$_n"
	echo $_pid >"$_d/master.job"
	for _l in "$@"; do
		wait_for_port "$_l" tcp 15 || {
			echo "postfix $_n did not start:" >&2
			cat "$_d/master.out" "$_d/maillog" >&2
			return 1
		}
	done
}

# pf_mx NAME LISTEN[,LISTEN...] [key=value...]: a receiving MX.  It accepts
# mail for every domain and delivers it to the one Maildir
# $W/pf-NAME/mail/maildir/ (a copy per recipient, with its Delivered-To).
# Keys:
#   tls=yes|no          offer STARTTLS (default yes)
#   cert=LEAF           certificate from the test PKI (default valid):
#                       $PKI/LEAF.key + $PKI/LEAF.chain.pem
#   protocols=LIST      smtpd_tls_protocols, e.g. ">=TLSv1.2" (default),
#                       "TLSv1.2" (1.2 only), "TLSv1.3" (1.3 only)
#   hostname=NAME       myhostname (default mx.example.test)
#   main='param = value'  any further main.cf line (repeatable)
pf_mx() {
	_n=$1
	_listen=$(echo "$2" | tr ',' ' ')
	shift 2
	_tls=yes
	_cert=valid
	_proto=">=TLSv1.2"
	_host=mx.example.test
	_extra=""
	for _kv in "$@"; do
		case $_kv in
		tls=*) _tls=${_kv#tls=} ;;
		cert=*) _cert=${_kv#cert=} ;;
		protocols=*) _proto=${_kv#protocols=} ;;
		hostname=*) _host=${_kv#hostname=} ;;
		main=*) _extra="$_extra
${_kv#main=}" ;;
		*) echo "pf_mx: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	case $_proto in
	TLSv1.2) _proto=">=TLSv1.2, <=TLSv1.2" ;;
	TLSv1.3) _proto=">=TLSv1.3" ;;
	esac
	_d=$(pf_dir "$_n")
	rm -rf "$_d"
	mkdir -p "$_d/mail"
	_pf_queue "$_d"
	chown "$IT_MAIL_UID:$IT_MAIL_GID" "$_d/mail"
	{
		_pf_main_common "$_d" "$_host"
		cat <<EOF
virtual_mailbox_domains = regexp:$_d/any_domain
virtual_mailbox_maps = static:maildir/
virtual_mailbox_base = $_d/mail
virtual_uid_maps = static:$IT_MAIL_UID
virtual_gid_maps = static:$IT_MAIL_GID
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_tls_protocols = $_proto
smtpd_tls_mandatory_protocols = $_proto
EOF
		if [ "$_tls" = yes ]; then
			echo "smtpd_tls_security_level = may"
			echo "smtpd_tls_chain_files = $PKI/$_cert.key, $PKI/$_cert.chain.pem"
		else
			echo "smtpd_tls_security_level = none"
		fi
		printf '%s\n' "$_extra"
	} >"$_d/main.cf"
	echo '/./ OK' >"$_d/any_domain"
	# shellcheck disable=SC2086
	_pf_master $_listen >"$_d/master.cf"
	# shellcheck disable=SC2086
	_pf_run "$_n" $_listen
}

# pf_mta NAME LISTEN RELAYHOST: the legacy MTA.  It accepts mail from
# 127.0.0.0/8 on LISTEN and relays everything to RELAYHOST, e.g.
# "[127.0.0.1]:10025", in plaintext.
pf_mta() {
	_n=$1
	_d=$(pf_dir "$_n")
	rm -rf "$_d"
	mkdir -p "$_d"
	_pf_queue "$_d"
	{
		_pf_main_common "$_d" mta.legacy.test
		cat <<EOF
relayhost = $3
relay_domains =
smtp_tls_security_level = none
smtp_helo_name = mta.legacy.test
notify_classes =
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
# Retry a deferred recipient after a second or two, not after minutes.
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
EOF
	} >"$_d/main.cf"
	_pf_master "$2" >"$_d/master.cf"
	_pf_run "$_n" "$2"
}

# pf_stop NAME: stop the instance (its master and all its daemons).
pf_stop() {
	_d=$(pf_dir "$1")
	[ -f "$_d/master.job" ] || return 0
	pf_stop_pid "$(cat "$_d/master.job")"
	rm -f "$_d/master.job"
}
pf_stop_pid() {
	# TERM to the master is passed on to its children ("postfix abort").
	kill_wait "$1" TERM
}

# pf_flush NAME: "postqueue -f" of instance NAME (postqueue itself is
# setgid and would want alternate_config_directories in /etc/postfix).
pf_flush() { postkick -c "$(pf_dir "$1")" public qmgr FAID 2>/dev/null; }

# mx_mail NAME USER@DOMAIN: the files delivered to that recipient, oldest first.
mx_mail() {
	_m=$(pf_dir "$1")/mail/maildir/new
	[ -d "$_m" ] || return 0
	# One awk over the headers of all of them (Maildir names have no blanks).
	# shellcheck disable=SC2012
	ls -1tr "$_m" | sed "s|^|$_m/|" | xargs -r awk -v r="Delivered-To: $2" '
		FNR == 1 { head = 1 }
		head && /^$/ { head = 0 }
		head && $0 == r { print FILENAME; nextfile }'
	return 0
}
# mx_count NAME: how many messages the MX delivered so far, all mailboxes.
mx_count() {
	find "$(pf_dir "$1")/mail" -path '*/new/*' -type f 2>/dev/null | wc -l | tr -d ' '
}
# mx_wait_count NAME N [SECONDS]: until the MX delivered at least N messages.
mx_wait_count() {
	_t=$(it_until "${3:-20}")
	while [ "$(mx_count "$1")" -lt "$2" ]; do
		[ "$(date +%s)" -ge "$_t" ] && {
			echo "MX $1: $(mx_count "$1") messages delivered, expected $2"
			return 1
		}
		sleep 0.1
	done
}

# ---------------------------------------------------------------- mxtls

# mxtls_start [key=value...] <<EOF (more config) EOF: write a config and
# start mxtls on 127.0.0.1:$MXTLS_PORT.  Keys: default= (policy default,
# opportunistic), min_version=, max_version= ([tls] section), proxy='k = v'
# (a [proxy] line; repeatable), private_mx= ([dns] allow_private_mx, default
# yes: the test MXs are on loopback), dnssec= ([dns] dnssec, default off:
# dnsmasq's .test is unsigned and has no chain from a root), trust_anchor=
# ([dns] trust_anchor), log_level= (default debug), config=FILE (use FILE as it is).  The extra sections come from stdin (always give
# one, </dev/null when there is nothing to add).  Sets MXTLS_PORT,
# MXTLS_CONF, MXTLS_LOG, MXTLS_PID.  Each start gets a fresh state_dir.
mxtls_start() {
	_def=opportunistic
	_min=1.2
	_max=1.3
	_conf=""
	_px=""
	_pmx=yes
	_dnssec=off
	_anchor=""
	_loglevel=debug
	for _kv in "$@"; do
		case $_kv in
		log_level=*) _loglevel=${_kv#log_level=} ;;
		default=*) _def=${_kv#default=} ;;
		dnssec=*) _dnssec=${_kv#dnssec=} ;;
		trust_anchor=*) _anchor="
trust_anchor = ${_kv#trust_anchor=}" ;;
		private_mx=*) _pmx=${_kv#private_mx=} ;;
		min_version=*) _min=${_kv#min_version=} ;;
		max_version=*) _max=${_kv#max_version=} ;;
		config=*) _conf=${_kv#config=} ;;
		proxy=*) _px="$_px
${_kv#proxy=}" ;;
		*) echo "mxtls_start: unknown option $_kv" >&2; return 1 ;;
		esac
	done
	MXTLS_N=$((MXTLS_N + 1))
	MXTLS_PORT=$(free_port)
	MXTLS_ADMIN_PORT=$(free_port)
	_d=$W/mxtls.$MXTLS_N
	mkdir -p "$_d/state"
	MXTLS_CONF=$_d/mxtls.ini
	MXTLS_LOG=$_d/mxtls.log
	if [ -n "$_conf" ]; then
		cp "$_conf" "$MXTLS_CONF"
	else
		{
			cat <<EOF
[proxy]
listen = 127.0.0.1:$MXTLS_PORT
hostname = mxtls.test
allow_clients = 127.0.0.0/8
state_dir = state
log_level = $_loglevel
user = nobody
admin_listen = 127.0.0.1:$MXTLS_ADMIN_PORT$_px

[dns]
servers = 127.0.0.1:${DNS_PORT:-53}
allow_private_mx = $_pmx
dnssec = $_dnssec$_anchor

[tls]
ca_bundle = $PKI/test-root-ca.pem
min_version = $_min
max_version = $_max

[policy]
default = $_def

EOF
			cat
		} >"$MXTLS_CONF"
	fi
	if [ ! -x "$MXTLS" ]; then
		fail "mxtls[$MXTLS_N] starts" "$MXTLS does not exist (build it: make build/asan/mxtls)"
		MXTLS_PID=""
		return 1
	fi
	# `mxtls -t` first: a config error is reported as such, and a sanitizer
	# report of the check run is a failure of its own.
	"$MXTLS" -t -c "$MXTLS_CONF" >"$_d/check.out" 2>&1
	_rc=$?
	if ! sanitizer_clean "$_d/check.out" >/dev/null; then
		check "mxtls[$MXTLS_N] -t: no sanitizer report" sanitizer_clean "$_d/check.out"
		ASAN_OPTIONS=detect_leaks=0 "$MXTLS" -t -c "$MXTLS_CONF" >"$_d/check.out" 2>&1
		_rc=$?
	fi
	if [ $_rc -ne 0 ]; then
		fail "mxtls[$MXTLS_N] accepts its config (mxtls -t, exit $_rc)" "$(cat "$_d/check.out"; sed 's/^/  | /' "$MXTLS_CONF")"
		MXTLS_PID=""
		return 1
	fi
	"$MXTLS" -c "$MXTLS_CONF" 2>"$MXTLS_LOG" >"$_d/stdout" &
	MXTLS_PID=$!
	it_track mxtls $MXTLS_PID "$MXTLS_N"
	if ! wait_for_port "127.0.0.1:$MXTLS_PORT" tcp 10 2>/dev/null; then
		fail "mxtls[$MXTLS_N] starts and listens on 127.0.0.1:$MXTLS_PORT" "$(tail -n 30 "$MXTLS_LOG")"
		return 1
	fi
	# The socket listens before the fetcher and the journals are up; a
	# test that counts descriptors or sends at once waits for the rest.
	if ! wait_for_log "$MXTLS_LOG" '( event=start |"event":"start")' 10; then
		fail "mxtls[$MXTLS_N] logs event=start" "$(tail -n 30 "$MXTLS_LOG")"
		return 1
	fi
	return 0
}

# mxtls_stop: stop the current mxtls (SIGTERM, then a second one), then
# check that it was alive until then and that its log has no sanitizer report.
mxtls_stop() {
	[ -n "${MXTLS_PID:-}" ] || return 0
	mxtls_stop_pid "$MXTLS_PID" "$MXTLS_N"
	# Forget it so that it_stop_all does not check it twice.
	grep -v "^mxtls $MXTLS_PID " "$W/pids" >"$W/pids.new"
	mv "$W/pids.new" "$W/pids"
	MXTLS_PID=""
}
mxtls_stop_pid() { # PID N
	_log=$W/mxtls.$2/mxtls.log
	if kill -0 "$1" 2>/dev/null; then
		_alive=yes
		kill -TERM "$1" 2>/dev/null
		_i=0
		while kill -0 "$1" 2>/dev/null && [ $_i -lt 60 ]; do
			sleep 0.05
			_i=$((_i + 1))
		done
		kill_wait "$1" TERM
	else
		_alive=no
	fi
	wait "$1" 2>/dev/null
	_rc=$?
	check "mxtls[$2] was still running at the end" test "$_alive" = yes
	check "mxtls[$2] no sanitizer report" sanitizer_clean "$_log"
	[ "$_alive" = yes ] || note "mxtls[$2] exit status: $_rc"
}

# sanitizer_clean LOG: no ASan/LSan/UBSan report in LOG.
sanitizer_clean() {
	if grep -nE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$1"; then
		grep -A 30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" | head -n 50
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------- SMTP client

# smtpc OUT HOST:PORT STEP...: run files/smtpc.py, transcript to OUT
# (one "LABEL => reply" line per reply).  HOST:PORT may be "mxtls".
smtpc() {
	_o=$1
	_hp=$2
	shift 2
	[ "$_hp" = mxtls ] && _hp=127.0.0.1:${MXTLS_PORT:-1}
	python3 "$IT_FILES/smtpc.py" --timeout "${SMTPC_TIMEOUT:-10}" "$_hp" "$@" >"$_o" 2>&1
	_rc=$?
	# After one reply that never came, do not wait as long for the others:
	# the script must end in time even when mxtls hangs on every session.
	if [ $_rc -ne 0 ] && grep -q '=> !!! timed out' "$_o"; then
		note "smtpc: a reply timed out ($_o); later waits are 5 s"
		SMTPC_TIMEOUT=5
	fi
	return $_rc
}

# reply_is OUT LABEL ERE [N]: the reply to the Nth (default 1st) step LABEL
# in transcript OUT starts with ERE.
reply_is() {
	_got=$(awk -v l="$2 => " -v n="${4:-1}" \
		'index($0, l) == 1 { if (++i == n) { print substr($0, length(l) + 1); exit } }' "$1")
	if printf '%s\n' "$_got" | grep -qE -- "^$3"; then
		return 0
	fi
	echo "expected the reply to '$2' to match /^$3/, got: ${_got:-(no such step)}"
	echo "transcript $1:"
	sed 's/^/  /' "$1"
	return 1
}

# ---------------------------------------------------------------- messages

# mkmsg FILE SUBJECT [BODY_KIB]: a test message (LF line ends) with awkward
# content: leading dots, a lone dot, trailing blanks, tabs, 8-bit UTF-8, a
# 990-byte line.  BODY_KIB pads the body to about that many KiB.
mkmsg() {
	python3 - "$1" "$2" "${3:-0}" <<'EOF'
import sys, hashlib
path, subject, kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = hashlib.sha256(subject.encode()).hexdigest()[:16]
lines = [
    "From: Sender <sender@sender.test>",
    "To: Someone <someone@example.test>",
    "Subject: " + subject,
    "Date: Mon, 1 Jan 2024 00:00:00 +0000",
    "Message-ID: <%s@sender.test>" % h,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=x;",
    "\tbh=%s; b=AAAA" % h,
    "",
    "Body of: " + subject,
    ".a line with a leading dot",
    "..two leading dots",
    ".",
    "a lone dot above; trailing blanks here:   ",
    "\ttab-indented line\twith tabs",
    "8-bit: gr\u00fc\u00dfe, \u65e5\u672c, \u00e9t\u00e9",
    "x" * 990,
    "",
    "an empty line above",
]
n = 0
while kib and sum(len(l) + 1 for l in lines) < kib * 1024:
    n += 1
    lines.append("%08d %s" % (n, hashlib.sha256(str(n).encode()).hexdigest() * 2))
lines.append("-- end of " + subject)
with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write("\n".join(lines) + "\n")
EOF
}

# delivered_is MAILFILE MSGFILE: the delivered file is MSGFILE byte for byte,
# after the header lines the MX prepended (Return-Path, Delivered-To,
# X-Original-To, Received and their continuation lines).
delivered_is() {
	if [ ! -f "$1" ]; then
		echo "no delivered message (${1:-no file})"
		return 1
	fi
	python3 - "$1" "$2" <<'EOF'
import sys
got = open(sys.argv[1], "rb").read()
want = open(sys.argv[2], "rb").read()
if not got.endswith(want):
    import difflib
    # Find where the original message starts in what was delivered.
    first = want.split(b"\n", 1)[0]
    i = got.find(first)
    body = got[i:] if i >= 0 else got
    print("delivered message differs from the one sent (%d vs %d bytes)" % (len(body), len(want)))
    d = difflib.unified_diff(want.decode("utf-8", "replace").splitlines(True),
                             body.decode("utf-8", "replace").splitlines(True),
                             "sent", "delivered", n=1)
    sys.stdout.writelines(list(d)[:40])
    sys.exit(1)
prefix = got[: len(got) - len(want)].decode("utf-8", "replace")
for line in prefix.splitlines():
    if line[:1] in (" ", "\t"):
        continue
    name = line.split(":", 1)[0].lower()
    if name not in ("return-path", "delivered-to", "x-original-to", "received"):
        print("unexpected header added in transit: %r" % line)
        sys.exit(1)
EOF
}

# received_tls MAILFILE VERSION: the MX's own Received header says the
# message came in over VERSION ("TLSv1.3"), or in the clear ("none").
received_tls() {
	_r=$(awk '/^$/ { exit } /^Received:/ { if (s) exit; s = 1; print; next }
		s && /^[ \t]/ { print; next } s { exit }' "$1" | tr '\n\t' '  ')
	if [ "$2" = none ]; then
		case $_r in *"using TLS"*) echo "Received header shows TLS: $_r"; return 1 ;; esac
	else
		case $_r in *"using $2 "*) ;; *) echo "Received header is not over $2: $_r"; return 1 ;; esac
	fi
	case $_r in *"from mxtls.test "*) ;; *) echo "Received header does not name mxtls.test: $_r"; return 1 ;; esac
	return 0
}

# grep_since FILE MARK ERE [SECONDS]: some line of FILE after byte MARK
# matches (waiting up to SECONDS, default 3, for it to be written).
grep_since() {
	_t=$(it_until "${4:-3}")
	while :; do
		log_since "$1" "$2" | grep -qE -- "$3" && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
	done
	echo "no line matching /$3/ in $1 after byte $2; it has:"
	log_since "$1" "$2" | tail -n 25 | cut -c 1-400 | sed 's/^/  /'
	return 1
}
# no_grep_since FILE MARK ERE: no line of FILE after MARK matches.
no_grep_since() {
	if log_since "$1" "$2" | grep -E -- "$3"; then
		echo "(lines above should not be in $1)"
		return 1
	fi
	return 0
}

# mx_wait_rcpt NAME RCPT [N] [SECONDS]: the MX delivered at least N (1)
# messages to RCPT.
mx_wait_rcpt() {
	_t=$(it_until "${4:-5}")
	while [ "$(mx_mail "$1" "$2" | wc -l)" -lt "${3:-1}" ]; do
		if [ "$(date +%s)" -ge "$_t" ]; then
			echo "MX $1 delivered $(mx_mail "$1" "$2" | wc -l) messages to $2, expected ${3:-1}; its log:"
			tail -n 15 "$(pf_log "$1")" | sed 's/^/  /'
			return 1
		fi
		sleep 0.1
	done
}

# mx_none NAME RCPT: the MX delivered nothing to RCPT.
mx_none() {
	_l=$(mx_mail "$1" "$2")
	[ -z "$_l" ] && return 0
	echo "MX $1 delivered to $2: $_l"
	return 1
}

# delivered NAME RCPT MSGFILE [N]: the Nth (default: only/first) message the
# MX delivered to RCPT is MSGFILE byte for byte (see delivered_is).
delivered() {
	mx_wait_rcpt "$1" "$2" "${4:-1}" || return 1
	delivered_is "$(mx_mail "$1" "$2" | sed -n "${4:-1}p")" "$3"
}

# received_over NAME RCPT VERSION: the MX's Received header of the first
# message to RCPT shows VERSION ("TLSv1.3") or no TLS ("none").
received_over() {
	mx_wait_rcpt "$1" "$2" 1 || return 1
	received_tls "$(mx_mail "$1" "$2" | head -n 1)" "$3"
}

# mx_tls_since NAME MARK VERSION: the MX logged a TLS connection with VERSION
# after MARK.
mx_tls_since() {
	grep_since "$(pf_log "$1")" "$2" "TLS connection established from .*: $3 with cipher"
}

# mxtls_delivery_since MARK ERE...: an event=delivery line of mxtls after MARK
# matches every ERE.
mxtls_delivery_since() {
	_m=$1
	shift
	_t=$(it_until 3)
	while :; do
		_lines=$(log_since "$MXTLS_LOG" "$_m" | grep -E '(^|[ "])event=delivery( |$)')
		_ok=yes
		for _re in "$@"; do
			_lines=$(printf '%s\n' "$_lines" | grep -E -- "$_re") || { _ok=no; break; }
		done
		[ $_ok = yes ] && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
	done
	echo "no event=delivery line in $MXTLS_LOG after byte $_m matching all of: $*"
	echo "its event=delivery lines:"
	log_since "$MXTLS_LOG" "$_m" | grep -E 'event=delivery' | tail -n 10 | sed 's/^/  /'
	return 1
}

# mxtls_mark: the current size of the mxtls log.
mxtls_mark() { log_mark "$MXTLS_LOG"; }

# ---------------------------------------------------------------- deadlines

# A check about time reads mxtls's own log: which deadline ended a session
# and when, by mxtls's time stamps; never how long the test itself waited,
# which a slow or busy machine stretches.  A timer fires when it was set
# for, earlier by the age of the loop's clock when it was set (the loop
# reads the clock once per round: 0.6 s seen with 10,000 connections
# arriving at once), later by as long as the loop was kept from running:
# DEADLINE_EARLY and DEADLINE_LATE seconds either side of the configured
# value.
DEADLINE_EARLY=1
DEADLINE_LATE=3

# mxtls_sid ERE [LOG]: the session id of the first line of LOG (default
# $MXTLS_LOG) that matches ERE.
mxtls_sid() {
	grep -E -- "$1" "${2:-$MXTLS_LOG}" | sed -n 's/.* sid=\([0-9][0-9]*\) .*/\1/p' | head -n 1
}

# mxtls_session SID [LOG]: the lines of session SID (for a failure's details).
mxtls_session() {
	grep -E -- " sid=$1 " "${2:-$MXTLS_LOG}" | grep -v ' event=reply ' | cut -c 1-300 |
		tail -n 25 | sed 's/^/  | /'
}

# mxtls_interval SID FROM_ERE TO_ERE [LOG]: the seconds between the first
# line of session SID (all lines when SID is empty) matching TO_ERE and the
# last one before it matching FROM_ERE, by their time stamps (logfmt or
# JSON); nothing when there is no such pair.
mxtls_interval() {
	grep -E -- "${1:+( sid=$1 |\"sid\":\"$1\")}" "${4:-$MXTLS_LOG}" | awk -v from="$2" -v to="$3" '
	function secs(l, t) {
		if (!match(l, /[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+Z/))
			return -1
		split(substr(l, RSTART, RLENGTH - 1), t, ":")
		return t[1] * 3600 + t[2] * 60 + t[3]
	}
	$0 ~ to && t0 != "" {
		d = secs($0) - t0
		if (d < 0)
			d += 86400 # past midnight
		printf "%.3f\n", d
		exit
	}
	$0 ~ from { t0 = secs($0) }'
}

# mxtls_epoch LINE: the time stamp of a line of mxtls's log, in seconds
# since the epoch.
mxtls_epoch() {
	_ts=$(printf '%s\n' "$1" | sed -n 's/^ts=\([0-9-]*\)T\([0-9:]*\)[.0-9]*Z .*/\1 \2/p')
	[ -n "$_ts" ] && date -u -d "$_ts" +%s
}

# deadline_within SECONDS GOT WHAT: GOT (seconds, from the log) is the
# configured SECONDS, within DEADLINE_EARLY and DEADLINE_LATE.
deadline_within() {
	if [ -n "$2" ] && awk -v s="$1" -v g="$2" -v e="$DEADLINE_EARLY" -v l="$DEADLINE_LATE" \
		'BEGIN { exit !(g >= s - e && g <= s + l) }'; then
		return 0
	fi
	echo "$3: ${2:-no such interval in the log} s by mxtls's log, expected $1 s (-$DEADLINE_EARLY/+$DEADLINE_LATE)"
	return 1
}

# at_once GOT WHAT: GOT (seconds, from the log) is no more than a timer
# may be late: nothing was waited for.
at_once() {
	if [ -n "$1" ] && awk -v g="$1" -v l="$DEADLINE_LATE" 'BEGIN { exit !(g <= l) }'; then
		return 0
	fi
	echo "$2: ${1:-no such interval in the log} s by mxtls's log, expected at once (at most $DEADLINE_LATE s)"
	return 1
}

# deadline_fired SID STATE SECONDS [LOG]: the upstream phase STATE of
# session SID (up-greeting, up-tls, up-ehlo-tls, up-data-end...) ended by
# its own deadline: the session's first upstream error is a timeout in
# STATE, SECONDS (the configured value) after it entered STATE.
deadline_fired() {
	_lg=${4:-$MXTLS_LOG}
	_e=$(grep -E -- " sid=$1 .*event=upstream-error " "$_lg" | head -n 1)
	case $_e in
	*" state=$2 reason=timeout "* | *" state=$2 reason=\"timeout "*) ;;
	*)
		echo "session $1: its first upstream error is not a timeout in $2: ${_e:-(none)}"
		mxtls_session "$1" "$_lg"
		return 1
		;;
	esac
	deadline_within "$3" "$(mxtls_interval "$1" " event=state .* to=$2( |\$)" ' event=upstream-error ' "$_lg")" \
		"session $1: $2 timed out after" || { mxtls_session "$1" "$_lg"; return 1; }
}

# client_timeouts SECONDS [LOG]: every session of LOG that client_timeout
# ended (event=client-timeout) had been idle for SECONDS (the configured
# value) since its line before, by the time stamps; prints how many.
client_timeouts() {
	awk -v s="$1" -v e="$DEADLINE_EARLY" -v l="$DEADLINE_LATE" '
	function secs(line, t) {
		if (!match(line, /[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+Z/))
			return -1
		split(substr(line, RSTART, RLENGTH - 1), t, ":")
		return t[1] * 3600 + t[2] * 60 + t[3]
	}
	!match($0, / sid=[0-9]+ /) { next }
	{ sid = substr($0, RSTART + 5, RLENGTH - 6) }
	/ event=client-timeout / {
		d = secs($0) - last[sid]
		if (d < 0)
			d += 86400
		n++
		if (d < s - e || d > s + l) {
			bad++
			if (bad <= 5)
				print "session " sid ": client_timeout after " d " s, expected " s > "/dev/stderr"
		}
	}
	{ last[sid] = secs($0) }
	END { print n + 0; exit bad > 0 }' "${2:-$MXTLS_LOG}"
}

# TIMEOUT_ERE: a line of mxtls's log that says a deadline of a session
# fired: an upstream phase, a cached connection's check, rcpt_timeout,
# client_timeout.
TIMEOUT_ERE=' event=(rcpt-timeout|client-timeout) | event=upstream-(error|reuse-failed) .* reason="?timeout '

# no_deadline_fired [SID [LOG]]: no deadline fired in session SID (none
# given: in any session of LOG): what happened, happened without waiting
# for one.
no_deadline_fired() {
	if [ $# -gt 0 ] && [ -z "$1" ]; then
		echo "no such session in the log"
		return 1
	fi
	_lg=${2:-$MXTLS_LOG}
	_fired=$(grep -E -- " sid=${1:-[0-9]+} " "$_lg" | grep -E -- "$TIMEOUT_ERE" | head -n 5)
	[ -z "$_fired" ] && return 0
	echo "a deadline fired:"
	printf '%s\n' "$_fired" | cut -c 1-300 | sed 's/^/  | /'
	return 1
}

# swaks_ok OUT: swaks (its transcript in OUT, "exit=N" appended) exited 0
# and the reply to the final dot was 250.
swaks_ok() {
	if grep -qx 'exit=0' "$1" && awk '/^ ~?-> \.$/ { d = 1; next } d && /^<~?- / { print; exit }' "$1" | grep -qE '^<~?- +250 '; then
		return 0
	fi
	echo "swaks failed or the final dot was not answered 250:"
	grep -vE '^ ~?-> ' "$1" | tail -n 20 | sed 's/^/  /'
	return 1
}

# ---------------------------------------------------------------- TLS probes

# tls_probe ADDR:PORT SNI [s_client options...]: STARTTLS with openssl,
# verifying against the test root and SNI as host name; prints the
# negotiated version ("TLSv1.3", or "NONE" when the handshake failed) and
# the verification result ("Verify return code: 10 (certificate has expired)").
tls_probe() {
	_a=$1
	_sni=$2
	shift 2
	timeout 10 openssl s_client -starttls smtp -connect "$_a" -servername "$_sni" \
		-verify_hostname "$_sni" -CAfile "$PKI/test-root-ca.pem" "$@" </dev/null 2>&1 |
		awk '/^New, / { v = $2; sub(/,$/, "", v); sub(/^\(NONE\)$/, "NONE", v); print v } /Verify return code:/ { sub(/^ +/, ""); print }'
}

# tls_probe_is ADDR:PORT SNI WANT_ERE [s_client options...]: the probe
# output (joined on one line) matches WANT_ERE.
tls_probe_is() {
	_a=$1
	_sni=$2
	_want=$3
	shift 3
	_got=$(tls_probe "$_a" "$_sni" "$@" | tr '\n' ' ')
	printf '%s\n' "$_got" | grep -qE -- "$_want" && return 0
	echo "openssl s_client to $_a ($_sni $*): expected /$_want/, got: $_got"
	return 1
}

# reply_has OUT LABEL ERE: the reply to the first step LABEL contains ERE
# (case-insensitive, anywhere in the text).
reply_has() {
	_got=$(awk -v l="$2 => " 'index($0, l) == 1 { print substr($0, length(l) + 1); exit }' "$1")
	printf '%s\n' "$_got" | grep -qiE -- "$3" && return 0
	echo "expected the reply to '$2' to contain /$3/ (any case), got: ${_got:-(no such step)}"
	return 1
}

# mta_status NAME RCPT STATUS [ERE] [SECONDS]: the Postfix instance NAME
# logged a delivery attempt to RCPT with status=STATUS (sent, deferred,
# bounced) whose text matches ERE, within SECONDS (default 20).
mta_status() {
	_t=$(it_until "${5:-20}")
	_k=0
	while :; do
		grep -F "to=<$2>," "$(pf_log "$1")" | grep -E " status=$3 " | grep -qE -- "${4:-.}" && return 0
		[ "$(date +%s)" -ge "$_t" ] && break
		sleep 0.1
		# Waiting for a deferred recipient to go out: flush now and then
		# (Postfix's own retry can be later than its backoff says).
		_k=$((_k + 1))
		[ "$3" = sent ] && [ $((_k % 20)) -eq 0 ] && pf_flush "$1"
	done
	echo "$1 logged no status=$3 ${4:+matching /$4/ }for $2; its lines for it:"
	grep -F "to=<$2>" "$(pf_log "$1")" | tail -n 5 | cut -c 1-400 | sed 's/^/  /'
	tail -n 5 "$(pf_log "$1")" | cut -c 1-400 | sed 's/^/  | /'
	return 1
}
