#!/bin/bash
# mxtls-healthcheck: the container's HEALTHCHECK, with nothing but bash
# (its /dev/tcp) — the runtime image has no curl.
#
#   mxtls-healthcheck [http [HOST:PORT [PATH]]]   default http 127.0.0.1:9925 /healthz
#   mxtls-healthcheck tcp HOST:PORT               a TCP connect only
#
# http: exit 0 when the admin endpoint answers "HTTP/1.x 200" within 5 s.
# tcp: exit 0 when HOST:PORT accepts a connection within 5 s.
# Anything else: a one-line reason on stderr, exit 1.  HOST may be [IPv6].
set -u

mode=${1:-http}
case $mode in
http) addr=${2:-127.0.0.1:9925} path=${3:-/healthz} ;;
tcp) addr=${2:-127.0.0.1:10025} path= ;;
*) echo "usage: mxtls-healthcheck [http [HOST:PORT [PATH]] | tcp HOST:PORT]" >&2; exit 2 ;;
esac
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}

# The connect itself has no timeout in bash: run it under timeout(1).
# Docker reads exit 1 as unhealthy (and reserves 2): any failure is 1.
if [ -z "${MXTLS_HEALTHCHECK_INNER:-}" ]; then
	MXTLS_HEALTHCHECK_INNER=1 timeout 5 "$BASH" "$0" "$mode" "$addr" "$path"
	rc=$?
	[ "$rc" = 0 ] && exit 0
	[ "$rc" = 124 ] && echo "mxtls-healthcheck: $addr: no answer within 5 s" >&2
	exit 1
fi

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
	echo "mxtls-healthcheck: cannot connect to $addr" >&2
	exit 1
fi
[ "$mode" = tcp ] && exit 0

printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=
IFS= read -r status <&3
status=${status%$'\r'}
case $status in
"HTTP/1."[01]" 200"*) exit 0 ;;
esac
echo "mxtls-healthcheck: http://$addr$path: ${status:-no answer}" >&2
exit 1
