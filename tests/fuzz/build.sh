#!/bin/sh
# Build the libFuzzer harnesses of tests/fuzz/ into build/fuzz/ (clang,
# ASan + UBSan).  Usage: build.sh [NAME...]  (default: all of them).
# Prints the names built to stdout, one a line; a build error fails.
# Rebuilds a harness only when one of its sources is newer than it.
set -eu
cd "$(dirname "$0")/../.."

CLANG=${CLANG:-clang}
BSSL_INC=/usr/include/android
# The multiarch directory of Debian's BoringSSL, as in the Makefile.
BSSL_LIB=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch)/android
OUT=build/fuzz
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
 -Iproxy -Ipolicy -Itests/fuzz -isystem $BSSL_INC"

# NAME: the C files besides tests/fuzz/fuzz_NAME.c, then the libraries.
srcs() {
	case $1 in
	smtp_reply | smtp_command | smtp_data | smtp_normalise)
		echo "proxy/smtp.c" ;;
	config)
		echo "proxy/config.c policy/inireader.c policy/sections.c policy/seen.c policy/policy.c policy/dane.c policy/dnssec.c
		    policy/failure.c policy/dkim.c proxy/dkimsign.c -lidn2 -lcrypto" ;;
	document)
		echo "policy/document.c policy/inireader.c policy/sections.c policy/seen.c policy/policy.c policy/dane.c policy/dnssec.c -lidn2" ;;
	mtasts_txt | mtasts_policy)
		echo "policy/mtasts.c policy/policy.c policy/dane.c policy/dnssec.c -lidn2" ;;
	fetchproto_request | fetchproto_response)
		echo "policy/fetchproto.c" ;;
	state)
		echo "proxy/state.c policy/failure.c policy/policy.c policy/dane.c policy/dnssec.c -lidn2
		    -lpthread" ;;
	sts_record)
		echo "policy/stsdecide.c policy/mtasts.c policy/policy.c policy/dane.c
		    policy/dnssec.c policy/fetchproto.c -lidn2" ;;
	policy_domain)
		echo "policy/policy.c policy/dane.c policy/dnssec.c -lidn2" ;;
	tlsrpt_txt)
		echo "policy/tlsrpt.c policy/tlsrptmsg.c policy/dane.c -lz" ;;
	journal)
		echo "proxy/journal.c -lev" ;;
	*)
		echo "build.sh: unknown harness $1" >&2
		return 1 ;;
	esac
}

ALL="smtp_reply smtp_command smtp_data smtp_normalise config document
 mtasts_txt mtasts_policy fetchproto_request fetchproto_response state
 sts_record policy_domain journal tlsrpt_txt"

command -v "$CLANG" >/dev/null || {
	echo "build.sh: $CLANG not found (apt-get install clang)" >&2
	exit 1
}
mkdir -p "$OUT"
# shellcheck disable=SC2086 # a list of words
[ $# -gt 0 ] || set -- $ALL
for name in "$@"; do
	list=$(srcs "$name")
	files="tests/fuzz/fuzz_$name.c"
	libs=""
	for w in $list; do
		case $w in
		-l*) libs="$libs $w" ;;
		*) files="$files $w" ;;
		esac
	done
	bin=$OUT/$name
	stale=0
	if [ ! -x "$bin" ]; then
		stale=1
	else
		for f in $files tests/fuzz/*.h proxy/*.h policy/*.h \
		    tests/fuzz/build.sh; do
			[ -n "$(find "$f" -newer "$bin")" ] && stale=1 && break
		done
	fi
	if [ $stale -eq 1 ]; then
		# shellcheck disable=SC2086
		$CLANG $FLAGS -o "$bin.tmp" $files -L"$BSSL_LIB" \
		    -Wl,-rpath,"$BSSL_LIB" $libs
		mv "$bin.tmp" "$bin"
	fi
	echo "$name"
done
