#!/bin/sh
# make bench: mxtls against stunnel, Postfix as a relay and the plaintext
# floor, on loopback.  Installs what the benchmark needs when it is missing
# (Debian packages), raises the descriptor limit, then runs bench.py, which
# prints the table and writes it to build/bench/bench.md.
# Settings: see the top of tests/bench/bench.py (BENCH_* variables).
set -eu
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (private Postfix instances; mxtls drops to nobody)" >&2
	exit 1
fi

# What the benchmark needs beyond the build: Postfix (smtpd, smtp-source,
# smtp-sink), stunnel, Python, openssl for the test PKI.
missing=""
for p in postfix stunnel4 python3 openssl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bench: installing:$missing" >&2
	# Postfix must not ask questions nor start a system instance of its own.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

# W3 holds up to 10,000 sessions: two descriptors each in a proxy, one in
# the client and one in the sink.  Without CAP_SYS_RESOURCE the hard limit
# stays, and bench.py scales N down to what fits (and says so).
# shellcheck disable=SC3045
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || :

exec python3 tests/bench/bench.py "$@"
