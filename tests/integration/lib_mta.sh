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

