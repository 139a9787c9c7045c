# Exim as the legacy MTA (Debian's exim4-daemon-light, unpacked into
# build/mta by deploy/install-deps.sh: exim4 conflicts with the installed
# postfix package).  Sourced after lib.sh.
EXIM=$IT_ROOT/build/mta/usr/sbin/exim4
# Libraries unpacked beside them (libidn12 for Exim, libwrap0 for Sendmail).
MTA_LIBS=$IT_ROOT/build/mta/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch)
# exim_mta NAME PORT [TRANSPORT OPTIONS]: Exim accepting on 127.0.0.1:PORT
# and relaying everything to mxtls ($MXTLS_PORT), in the foreground of a
# background job; DSN advertised to its clients.
exim_mta() {
	_d=$W/exim-$1
	mkdir -p "$_d/spool" "$_d/log"
	chown -R Debian-exim "$_d/spool" "$_d/log"
	cat >"$_d/exim.conf" <<EOF3
primary_hostname = mta.exim.test
exim_path = $EXIM
keep_environment = LD_LIBRARY_PATH
spool_directory = $_d/spool
log_file_path = $_d/log/%slog
daemon_smtp_ports = $2
local_interfaces = 127.0.0.1
never_users = root
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
dsn_advertise_hosts = *
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
begin routers
smarthost:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = to_mxtls
  self = send
  no_more
begin transports
to_mxtls:
  driver = smtp
  port = $MXTLS_PORT
  hosts_avoid_tls = *
  allow_localhost
${3:-}
begin retry
* * F,2h,15m; G,16h,1h,1.5
EOF3
	chmod 644 "$_d/exim.conf"
	LD_LIBRARY_PATH=$MTA_LIBS \
		"$EXIM" -C "$_d/exim.conf" -bdf -q1m >"$_d/exim.out" 2>&1 &
	it_track exim $! "$1"
	wait_for_port "127.0.0.1:$2" tcp 10
}
# exim_log NAME: its main log.
exim_log() { echo "$W/exim-$1/log/mainlog"; }
# exim_delivered NAME RCPT: Exim logged the delivery (=>) of RCPT.
exim_delivered() {
	wait_for_log "$(exim_log "$1")" "=> $2 .*C=\"250 " 30 && return 0
	echo "exim $1 logged no delivery to $2:"
	sed 's/^/  | /' "$(exim_log "$1")" | tail -n 20
	return 1
}


# OpenSMTPD as the legacy MTA (Debian's opensmtpd, unpacked into build/mta
# too).  Its spool and chroot paths are compiled in: a private mount
# namespace puts directories of $W there.  One instance at a time (its
# control socket is /var/run/smtpd.sock).
SMTPD=$IT_ROOT/build/mta/usr/sbin/smtpd
SMTPCTL=$IT_ROOT/build/mta/usr/sbin/smtpctl
# smtpd_mta NAME PORT: OpenSMTPD accepting on 127.0.0.1:PORT and relaying
# everything to mxtls ($MXTLS_PORT).
smtpd_mta() {
	_d=$W/smtpd-$1
	mkdir -p "$_d/spool" "$_d/empty"
	chmod 711 "$_d/spool"
	chmod 755 "$_d/empty"
	cat >"$_d/smtpd.conf" <<EOF3
listen on 127.0.0.1 port $2
action "mxtls" relay host smtp://127.0.0.1:$MXTLS_PORT
match from any for any action "mxtls"
EOF3
	mkdir -p /var/spool/smtpd /var/lib/opensmtpd/empty
	unshare -m sh -c "mount --bind '$_d/spool' /var/spool/smtpd &&
		mount --bind '$_d/empty' /var/lib/opensmtpd/empty &&
		exec '$SMTPD' -d -f '$_d/smtpd.conf'" >"$_d/smtpd.out" 2>&1 &
	it_track smtpd $! "$1"
	wait_for_port "127.0.0.1:$2" tcp 10
}
# smtpd_log NAME: what it logged (-d: to stderr).
smtpd_log() { echo "$W/smtpd-$1/smtpd.out"; }

# Sendmail as the legacy MTA (Debian's sendmail-bin and sendmail-cf,
# unpacked into build/mta too), with the .cf built from the shipped
# deploy/sendmail/mxtls.mc: only mxtls's port is put in for 10025.  It
# runs as root with a private queue, in a UTS and mount namespace of its
# own: it needs a host name that resolves before it reads its
# configuration (otherwise it sleeps 60 s), so mta.sendmail.test is named
# in a bind-mounted /etc/hosts, and a service switch file of "hosts files"
# keeps it from asking DNS about recipient domains.  No syslog here: -X
# writes its SMTP traffic (both sides) to a file instead.
SENDMAIL=$IT_ROOT/build/mta/usr/libexec/sendmail/sendmail
SENDMAIL_CF=$IT_ROOT/build/mta/usr/share/sendmail/cf
# unshare -u -m sh -c "$SM_NS" HOSTS CMD...: CMD as mta.sendmail.test, with
# HOSTS as /etc/hosts.
# shellcheck disable=SC2016
SM_NS='hostname mta.sendmail.test && mount --bind "$0" /etc/hosts && exec "$@"'
# sm_dir NAME: its directory; sm_opts NAME: the options of every run.
sm_dir() { echo "$W/sendmail-$1"; }
sm_opts() {
	_d=$(sm_dir "$1")
	echo "-C $_d/sendmail.cf -O QueueDirectory=$_d/queue -O StatusFile=$_d/statistics" \
		"-O PidFile=$_d/sendmail.pid -O ServiceSwitchFile=$_d/service.switch" \
		"-O AliasFile=$_d/aliases -O HelpFile=$_d/helpfile"
}
# sm_mta NAME PORT [QUEUE-INTERVAL]: Sendmail accepting on 127.0.0.1:PORT
# (in the foreground, -bD), running its queue every QUEUE-INTERVAL
# (default 1m, as -q takes it).
sm_mta() {
	_d=$(sm_dir "$1")
	rm -rf "$_d"
	mkdir -p "$_d/queue"
	chmod 700 "$_d/queue"
	sed "s/\<10025\>/$MXTLS_PORT/g" deploy/sendmail/mxtls.mc >"$_d/mxtls.mc"
	m4 "$SENDMAIL_CF/m4/cf.m4" "$_d/mxtls.mc" >"$_d/sendmail.cf" 2>"$_d/m4.err" || {
		echo "m4 failed:"
		cat "$_d/m4.err"
		return 1
	}
	chmod 644 "$_d/sendmail.cf"
	echo 'hosts files' >"$_d/service.switch"
	# Sendmail refuses a sender whose domain does not resolve (553 5.1.8).
	printf '127.0.0.1\tmta.sendmail.test localhost sender.test\n' >"$_d/hosts"
	: >"$_d/aliases"
	: >"$_d/helpfile"
	: >"$_d/statistics"
	# $(sm_opts) is a list of words on purpose.
	# shellcheck disable=SC2046
	LD_LIBRARY_PATH=$MTA_LIBS unshare -u -m sh -c "$SM_NS" "$_d/hosts" \
		"$SENDMAIL" $(sm_opts "$1") \
		-O "DaemonPortOptions=Name=MTA,Addr=127.0.0.1,Port=$2" \
		-X "$_d/traffic" -bD "-q${3:-1m}" >"$_d/sendmail.out" 2>&1 &
	echo $! >"$_d/daemon.job"
	it_track sendmail $! "$1"
	wait_for_port "127.0.0.1:$2" tcp 10
}
# sm_stop NAME: stop the daemon, then any child of it (a queue runner, a
# delivery) that outlives it, by PID; fails when one is still there.
sm_stop() {
	_f=$(sm_dir "$1")/daemon.job
	[ -f "$_f" ] || return 0
	_p=$(cat "$_f")
	_kids=$(pgrep -P "$_p")
	kill_wait "$_p" || { echo "Sendmail $1 (PID $_p) did not stop"; return 1; }
	rm -f "$_f"
	for _k in $_kids; do
		kill_wait "$_k" || { echo "Sendmail $1's child $_k did not stop"; return 1; }
	done
}
# sm_queue NAME: what is in its queue (sendmail -bp).
sm_queue() {
	# shellcheck disable=SC2046
	LD_LIBRARY_PATH=$MTA_LIBS unshare -u -m sh -c "$SM_NS" "$(sm_dir "$1")/hosts" "$SENDMAIL" $(sm_opts "$1") -bp 2>&1
}
# sm_queue_empty NAME: nothing is left in its queue.
sm_queue_empty() {
	_q=$(sm_queue "$1")
	case $_q in *" is empty"*) return 0 ;; esac
	echo "Sendmail $1's queue:"
	printf '%s\n' "$_q" | sed 's/^/  | /'
	return 1
}
