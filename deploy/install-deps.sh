#!/bin/sh
# Install the Debian packages mxtls needs, only those missing, so that a
# second `make run` / `make test` is quick.  Usage: install-deps.sh build|test
set -eu

build="gcc make libc6-dev pkg-config ca-certificates android-libboringssl-dev
libev-dev libinih-dev libc-ares-dev libidn2-dev libcurl4-gnutls-dev"
test="$build postfix swaks dnsmasq-base openssl iproute2 python3 procps prometheus nginx
iptables nftables python3-yaml shellcheck systemd clang libclang-rt-14-dev
valgrind libnet-ssleay-perl"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "installing:$missing" >&2
# Postfix must not ask questions nor start a system instance of its own.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q >/dev/null
# $missing is a list of words on purpose.
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
