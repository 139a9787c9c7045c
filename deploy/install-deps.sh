#!/bin/sh
# Install the Debian packages mxtls needs, only those missing, so that a
# second `make run` / `make test` is quick.  Usage: install-deps.sh build|test
set -eu

build="gcc make libc6-dev pkg-config ca-certificates android-libboringssl-dev
libev-dev libidn2-dev libcurl4-gnutls-dev
libunbound-dev libevent-dev dns-root-data libsystemd-dev dpkg-dev zlib1g-dev"
test="$build postfix swaks dnsmasq-base openssl iproute2 python3 procps prometheus nginx
iptables nftables python3-yaml python3-dkim shellcheck systemd clang libclang-rt-14-dev
valgrind libnet-ssleay-perl nsd ldnsutils unbound unbound-host bind9-dnsutils m4"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

# Exim, OpenSMTPD and Sendmail as sending MTAs for the tests.  exim4,
# opensmtpd, sendmail and postfix cannot be installed together (one
# mail-transport-agent), so their packages are unpacked into build/mta,
# each once, and run from there with private configs
# (tests/integration/lib_mta.sh).  sendmail-cf's macros build the .cf from
# deploy/sendmail/mxtls.mc with m4 (a package of the test list).
mta_senders() {
	_pkgs=""
	[ -x build/mta/usr/sbin/exim4 ] || _pkgs="$_pkgs exim4-daemon-light libidn12"
	[ -x build/mta/usr/sbin/smtpd ] || _pkgs="$_pkgs opensmtpd"
	# Sendmail links libwrap, which a minimal system lacks: it finds the
	# unpacked one through LD_LIBRARY_PATH, so it must not be setgid.
	{ [ -x build/mta/usr/libexec/sendmail/sendmail ] &&
		[ ! -g build/mta/usr/libexec/sendmail/sendmail ] &&
		[ -f build/mta/usr/share/sendmail/cf/m4/cf.m4 ] &&
		ls build/mta/usr/lib/*/libwrap.so.0 >/dev/null 2>&1; } ||
		_pkgs="$_pkgs sendmail-bin sendmail-cf libwrap0"
	[ -n "$_pkgs" ] || return 0
	_tmp=$(mktemp -d)
	# apt downloads as _apt where it can.
	chown _apt "$_tmp" 2>/dev/null || true
	# apt-get download writes to the current directory.  $_pkgs is a
	# list of words on purpose.
	# shellcheck disable=SC2086
	(cd "$_tmp" && $SUDO apt-get download -q $_pkgs >/dev/null) || {
		rm -rf "$_tmp"
		echo "install-deps: cannot download$_pkgs" >&2
		return 1
	}
	mkdir -p build/mta
	for _deb in "$_tmp"/*.deb; do dpkg -x "$_deb" build/mta; done
	rm -rf "$_tmp"
	# Not setuid: it must keep LD_LIBRARY_PATH (libidn12) when it
	# re-executes itself.
	chmod u-s build/mta/usr/sbin/exim4
	chmod g-s build/mta/usr/libexec/sendmail/sendmail
	# The binaries look their users up by these compiled-in names.
	for _u in Debian-exim opensmtpd opensmtpq; do
		id "$_u" >/dev/null 2>&1 || $SUDO useradd --system --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin "$_u"
	done
	# smtpctl refuses to run unless setgid to the queue's group.
	$SUDO chgrp opensmtpq build/mta/usr/sbin/smtpctl
	$SUDO chmod g+s build/mta/usr/sbin/smtpctl
	# Mount points for the spool and chroot compiled into smtpd.
	$SUDO mkdir -p /var/spool/smtpd /var/lib/opensmtpd/empty
}

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	[ "${1:-build}" != test ] || mta_senders || true
	exit 0
fi

echo "installing:$missing" >&2
# Postfix must not ask questions nor start a system instance of its own.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q >/dev/null
# $missing is a list of words on purpose.
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
[ "${1:-build}" != test ] || mta_senders || true
exit 0
