# Exim as the legacy MTA (Debian's exim4-daemon-light, unpacked into
# build/mta by deploy/install-deps.sh: exim4 conflicts with the installed
# postfix package).  Sourced after lib.sh.
EXIM=$IT_ROOT/build/mta/usr/sbin/exim4
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
	LD_LIBRARY_PATH=$IT_ROOT/build/mta/usr/lib/x86_64-linux-gnu \
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
