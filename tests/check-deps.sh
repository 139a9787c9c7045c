#!/bin/sh
# The include directions of README.md, "Layout": proxy/ may use policy/,
# never the reverse; policy/ sees no libev, libunbound or BoringSSL; only
# policy/fetch.c includes curl; only proxy/conn.c, proxy/tls.c,
# proxy/sign.c, proxy/dkimsign.c and proxy/dane.c include BoringSSL.
fail=0
bad() { echo "check-deps: $1" >&2; fail=1; }

for f in policy/*.c policy/*.h; do
	[ -e "$f" ] || continue
	grep -nE '#include *[<"](ev\.h|ares\.h|unbound\.h|openssl/|proxy/|conn\.h|session\.h|config\.h|tls\.h|dns\.h|log\.h)' "$f" |
		while IFS= read -r l; do echo "check-deps: $f:$l: policy/ must not include this" >&2; done
	grep -qE '#include *[<"](ev\.h|ares\.h|unbound\.h|openssl/|proxy/|conn\.h|session\.h|config\.h|tls\.h|dns\.h|log\.h)' "$f" && fail=1
	if [ "$f" != policy/fetch.c ] && grep -qE '#include *<curl/' "$f"; then
		bad "$f: only policy/fetch.c may include curl"
	fi
done
for f in proxy/*.c proxy/*.h; do
	[ -e "$f" ] || continue
	case "$f" in proxy/conn.c | proxy/tls.c | proxy/sign.c | proxy/dkimsign.c | proxy/dane.c) continue ;; esac
	if grep -qE '#include *<openssl/' "$f"; then
		bad "$f: only proxy/conn.c, proxy/tls.c, proxy/sign.c, proxy/dkimsign.c and proxy/dane.c may include BoringSSL"
	fi
	if grep -qE '#include *<curl/' "$f"; then
		bad "$f: curl must never be linked into mxtls (docs/behaviour.md section 1)"
	fi
done
# The session drives the MX-facing client and hears from it through a
# callback: the client never sees the session.
for f in proxy/upstream.c proxy/upstream.h; do
	if grep -qE '#include *"session\.h"' "$f"; then
		bad "$f: the upstream must not include session.h (it reports to its owner through a callback)"
	fi
done
# The SMTP submission client serves the notices and the reports and
# knows neither: each hears from it through a callback.
for f in proxy/submit.c proxy/submit.h; do
	if grep -qE '#include *"(dsnq|tlsrptsend)\.h"' "$f"; then
		bad "$f: submit must not include dsnq.h or tlsrptsend.h (it reports to its owner through a callback)"
	fi
done
# The repository stands on its own: comments, tests and docs cite docs/
# (behaviour.md, security.md), never the design notes that were never in
# it.  The pattern is written so that this line does not match itself.
cited=$(git ls-files 2>/dev/null | grep -v '^build/' |
	xargs grep -nE 'SPEC[.]md|SPEC[ ]§|SPEC [0-9]|ATTACK[S]' 2>/dev/null)
if [ -n "$cited" ]; then
	printf '%s\n' "$cited" | sed 's/^/check-deps: cites a document outside the repository: /' >&2
	fail=1
fi
# And in the binaries: no process may load both BoringSSL and libcurl.
if [ -x build/mxtls ] && ldd build/mxtls | grep -q libcurl; then
	bad "build/mxtls links libcurl"
fi
if [ -x build/mxtls-fetch ] && ldd build/mxtls-fetch | grep -q android/; then
	bad "build/mxtls-fetch links BoringSSL"
fi
# libev also exports libevent's event_* names: libunbound's resolver thread
# must bind to the real libevent, so libevent comes first in the binary.
if [ -x build/mxtls ]; then
	needed=$(readelf -d build/mxtls | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
	ev=$(echo "$needed" | grep -n '^libev\.so' | cut -d: -f1)
	le=$(echo "$needed" | grep -n '^libevent-' | cut -d: -f1)
	if [ -z "$le" ] || [ -z "$ev" ] || [ "$le" -gt "$ev" ]; then
		bad "build/mxtls: libevent must be linked before libev (libunbound would run on libev's event_* emulation)"
	fi
fi
[ $fail -eq 0 ] && echo "check-deps: ok"
exit $fail
