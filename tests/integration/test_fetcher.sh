#!/bin/sh
# proxy/fetcher.c, the supervisor of mxtls-fetch, driven by
# tests/integration/fetcher_probe.c on a libev loop: real fetches through
# the real (ASan) mxtls-fetch from a private nginx on loopback with the
# test PKI of lib.sh; the child killed with a request pending (the call
# fails with "fetcher died", the child is restarted, the next request
# works); fake fetchers (a small C program under several names) that send
# garbage, hang, or report what they inherited; cancel; fetcher_free with
# calls pending; the write queue's limit.  Everything is built with
# AddressSanitizer + UBSan, and any sanitizer report is a failure.
#
# Needs: nginx (Debian's "nginx"), python3, cc, libev-dev,
# libcurl4-gnutls-dev.  Environment: MXTLS_FETCH=PATH tests that binary
# instead of an ASan build made here.
. "$(dirname "$0")/lib.sh"
it_setup

NG=$W/nginx
WWW=$W/www
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS_T="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -g -O1"

# ---------------------------------------------------------------- build

FETCH=${MXTLS_FETCH:-$W/mxtls-fetch}
case $FETCH in /*) ;; *) FETCH=$IT_ROOT/$FETCH ;; esac
if [ -z "${MXTLS_FETCH:-}" ]; then
	# shellcheck disable=SC2086
	cc $CFLAGS_T $SAN_FLAGS -Ipolicy -o "$FETCH" policy/fetch.c policy/fetchproto.c -lcurl \
		>"$W/build.out" 2>&1 || { fail "build mxtls-fetch" "$(cat "$W/build.out")"; finish; }
fi
# shellcheck disable=SC2086
cc $CFLAGS_T $SAN_FLAGS -Iproxy -Ipolicy -isystem /usr/include/android -o "$W/probe" \
	tests/integration/fetcher_probe.c proxy/fetcher.c proxy/log.c proxy/metrics.c \
	policy/fetchproto.c -lev -lm >"$W/build.out" 2>&1 ||
	{ fail "build fetcher_probe" "$(cat "$W/build.out")"; finish; }

# The fake fetchers: one program, its behaviour chosen by the name it is
# started under (the supervisor passes no arguments).
mkdir -p "$W/fake"
cat >"$W/fake/fake.c" <<'EOF'
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static void
drain(void)
{
	char b[65536];

	while (read(3, b, sizeof(b)) > 0)
		;
}

int
main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char **e;

	(void)argc;
	if (strcmp(name, "garbage") == 0) {
		/* A length prefix far over the frame limit. */
		(void)!write(3, "garbage!", 8);
		drain();
	} else if (strcmp(name, "badframe") == 0) {
		/* Well framed (4 bytes), but a response cut inside a field. */
		(void)!write(3, "\0\0\0\4\1\2\143\0", 8);
		drain();
	} else if (strcmp(name, "hang") == 0) {
		drain(); /* reads every request, answers none */
	} else if (strcmp(name, "stuck") == 0) {
		for (;;)
			pause(); /* reads nothing: the socket fills up */
	} else if (strcmp(name, "report") == 0) {
		/* The fds first: the report's own would be one more. */
		static char fds[65536];
		size_t len = 0;
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		FILE *out, *st;
		char line[256];

		if (d == NULL)
			return 1;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d)) {
				char p[64], t[256];
				ssize_t n;

				snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
				n = readlink(p, t, sizeof(t) - 1);
				t[n < 0 ? 0 : n] = '\0';
				len += (size_t)snprintf(fds + len, sizeof(fds) - len,
				    "fd %s %s\n", de->d_name,
				    strncmp(t, "socket:", 7) == 0 ? "socket" : t);
				if (len >= sizeof(fds))
					return 1;
			}
		closedir(d);
		if ((out = fopen(REPORT, "w")) == NULL)
			return 1;
		for (e = environ; *e != NULL; e++)
			fprintf(out, "env %s\n", *e);
		fputs(fds, out);
		if ((st = fopen("/proc/self/status", "r")) != NULL) {
			while (fgets(line, sizeof(line), st) != NULL)
				if (strncmp(line, "SigBlk:", 7) == 0 ||
				    strncmp(line, "SigIgn:", 7) == 0)
					fputs(line, out);
			fclose(st);
		}
		fclose(out);
		drain();
	}
	return 0;
}
EOF
# shellcheck disable=SC2086
cc -std=c11 -D_GNU_SOURCE -O1 -DREPORT="\"$W/fake/report.out\"" -o "$W/fake/fake" "$W/fake/fake.c" \
	>"$W/build.out" 2>&1 || { fail "build the fake fetcher" "$(cat "$W/build.out")"; finish; }
for n in garbage badframe hang stuck report; do ln -sf fake "$W/fake/$n"; done

# ---------------------------------------------------------------- servers

command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { fail "nginx installed" "apt-get install nginx"; finish; }
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
mkdir -p "$WWW" "$NG/tmp"
printf '[document]\nserial = 1\n\n[match example.test]\nprofile = mandatory\n' >"$WWW/policy.txt"
chmod -R a+rX "$WWW"
P_GOOD=$(free_port)
P_HOLE=$(free_port)
cat >"$NG/nginx.conf" <<EOF
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log info;
events { worker_connections 64; }
http {
	access_log $NG/access.log;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	types { text/plain txt; }
	server {
		listen 127.0.0.1:$P_GOOD ssl;
		ssl_certificate $PKI/valid.chain.pem;
		ssl_certificate_key $PKI/valid.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		root $WWW;
	}
}
EOF
"$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/out" 2>&1 &
it_track nginx $! -
wait_for_port "127.0.0.1:$P_GOOD" tcp 10 || { fail "nginx starts" "$(cat "$NG/out" "$NG/error.log")"; finish; }
# A listener that never accepts: a request to it stays pending.
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
time.sleep(3600)' "$P_HOLE" >"$W/hole.out" 2>&1 &
it_track hole $! -
wait_for_port "127.0.0.1:$P_HOLE" tcp 10 || { fail "hole listener starts" "$(cat "$W/hole.out")"; finish; }

# ---------------------------------------------------------------- helpers

GOOD=get:https://mx.example.test:$P_GOOD/policy.txt
HOLE=get:https://mx.example.test:$P_HOLE/never
N=0
# probe [-x PROGRAM] STEP...: run the probe; transcript in $OUT, log and
# sanitizer output in $OUT.err, exit status in $RC.
probe() {
	N=$((N + 1))
	OUT=$W/probe.$N
	mkdir -p "$OUT.d"
	_x=$FETCH
	if [ "$1" = -x ]; then
		_x=$2
		shift 2
	fi
	"$W/probe" -x "$_x" -c "$PKI/test-root-ca.pem" -o "$OUT.d" -t 20 "$@" >"$OUT" 2>"$OUT.err"
	RC=$?
}
show() { sed 's/^/  /' "$OUT"; sed 's/^/  | /' "$OUT.err" | tail -n 30; }
# has FILE ERE: a line of FILE matches.
has() {
	grep -qE -- "$2" "$1" && return 0
	echo "no line matches /$2/ in $1:"
	show
	return 1
}
hasnt() {
	grep -E -- "$2" "$1" || return 0
	echo "(lines above match /$2/ in $1)"
	show
	return 1
}
# count FILE ERE N: exactly N lines match.
count() {
	_c=$(grep -cE -- "$2" "$1")
	[ "$_c" -eq "$3" ] && return 0
	echo "$_c lines match /$2/ in $1, expected $3:"
	show
	return 1
}
# clean: the probe exited 0, kept every promise, no sanitizer report.
clean() {
	if [ "$RC" -ne 0 ]; then
		echo "the probe exited $RC:"
		show
		return 1
	fi
	hasnt "$OUT" '^BAD ' && has "$OUT" '^summary .* bad=0$' && sanitizer_clean "$OUT.err"
}
all() { for _c in "$@"; do eval "$_c" || return 1; done; }

# ---------------------------------------------------------------- cases

probe "$GOOD" wait:1
check "a fetch end to end through the supervisor: ok 200" all clean \
	"has $OUT '^cb 1 result=ok status=200 bytes=$(wc -c <"$WWW/policy.txt") *$'"
check "... the body byte for byte" cmp "$OUT.d/1.body" "$WWW/policy.txt"
check "... the start logged" has "$OUT.err" 'event=fetcher-started pid=[0-9]+ program='

probe "$GOOD" wait:1 timeout:20000 "$HOLE" sleep:300 kill wait:2 "$GOOD" wait:3 up "$GOOD" wait:4
PID1=$(sed -n 's/^start pid=//p' "$OUT")
check "kill -9 with a request pending: it fails with 'fetcher died'" all clean \
	"has $OUT '^cb 2 result=internal status=0 bytes=0 error=fetcher died$'"
check "... a request while it is down: 'fetcher not running', from the loop" \
	has "$OUT" '^cb 3 result=internal status=0 bytes=0 error=fetcher not running$'
check "... the death logged, restart after 1 s" \
	has "$OUT.err" "event=fetcher-exited pid=$PID1 signal=9 restart_in=1s"
check "... restarted (a new pid), and the next request works" all \
	"has $OUT '^up pid=[0-9]+ starts=2$'" "hasnt $OUT '^up pid=$PID1 '" \
	"has $OUT '^cb 4 result=ok status=200'"

probe -x "$W/fake/garbage" "$GOOD" wait:1 sleep:3500
check "a fetcher sending an unframeable stream: logged, killed, no crash" all clean \
	"has $OUT '^cb 1 result=internal .*error=fetcher died$'" \
	"has $OUT.err 'event=fetcher-protocol-error .*cannot be framed'"
check "... restarted with back-off doubling (1 s, 2 s)" all \
	"has $OUT.err 'fetcher-exited .*signal=9 restart_in=1s'" \
	"has $OUT.err 'fetcher-exited .*signal=9 restart_in=2s'" \
	"test \$(grep -c 'event=fetcher-started' $OUT.err) -ge 2"

probe -x "$W/fake/badframe" "$GOOD" wait:1 sleep:1500
check "a fetcher sending a well-framed malformed response: logged, killed, restarted" all clean \
	"has $OUT '^cb 1 result=internal .*error=fetcher died$'" \
	"has $OUT.err 'event=fetcher-protocol-error .*error=\"truncated field\"'" \
	"test \$(grep -c 'event=fetcher-started' $OUT.err) -ge 2"

probe -x "$W/fake/hang" timeout:500 "$GOOD" timeout:30000 "$GOOD" wait:2 up
check "a fetcher that never answers: the call fails at its deadline" all clean \
	"has $OUT '^cb 1 result=internal .*error=fetcher did not answer in time$'" \
	"has $OUT '^cb 2 result=internal .*error=fetcher died$'" \
	"has $OUT.err 'event=fetcher-hung'" "has $OUT '^up pid=[0-9]+ starts=2$'"

probe timeout:3000 "$HOLE" cancel:1 "$GOOD" wait:1 sleep:4000 kill down "$GOOD" cancel:3 sleep:200
check "cancel: no callback, before or after its answer came" all clean \
	"hasnt $OUT '^cb 1 '" "has $OUT '^cb 2 result=ok'" "hasnt $OUT '^cb 3 '" \
	"has $OUT '^summary calls=3 callbacks=1 bad=0$'" "hasnt $OUT.err 'fetcher-unknown-id'"

probe timeout:20000 "$HOLE" "$HOLE" "$HOLE" cancel:2 sleep:300 free sleep:100
check "fetcher_free with calls pending: each gets 'fetcher stopped' once, cancelled dropped" all clean \
	"count $OUT '^cb [13] result=internal .*error=fetcher stopped$' 2" "hasnt $OUT '^cb 2 '" \
	"has $OUT '^summary calls=3 callbacks=2 bad=0$'"

probe -x "$W/fake/stuck" timeout:60000 flood:2000 sleep:300 free
check "past 8 MiB queued: busy, from the loop; the rest stopped at free" all clean \
	"test \$(grep -c '^cb [0-9]* result=busy .*error=fetcher queue full$' $OUT) -ge 1" \
	"test \$(grep -c '^cb [0-9]* result=busy' $OUT) -le 900" \
	"test \$(grep -cE '^cb [0-9]* result=(busy|internal)' $OUT) -eq 2000"

probe bad "$GOOD" wait:1
check "F-13 a request that cannot be encoded: NULL, logged" all clean \
	"has $OUT '^get 1 refused$'" "has $OUT.err 'event=fetcher-request-refused .*not https'" \
	"has $OUT '^cb 2 result=ok'"

rm -f "$W/fake/report.out"
N=$((N + 1))
OUT=$W/probe.$N
# An ignored signal and an inherited fd (7) the child must not get.
(
	trap '' USR1 PIPE
	exec "$W/probe" -x "$W/fake/report" sleep:3000 7<"$WWW/policy.txt"
) >"$OUT" 2>"$OUT.err"
RC=$?
R=$W/fake/report.out
# Signals 1-31 must be back to default; 32 and up are glibc's own or
# real-time ones a parent may leave ignored (CI does) and libc cannot reset.
check "F-13 the child gets PATH only, fds 0-3 (stdin /dev/null), default signals" all clean \
	"count $R '^env ' 1" "has $R '^env PATH='" \
	"count $R '^fd ' 4" "has $R '^fd 0 /dev/null$'" "has $R '^fd 3 socket$'" \
	"has $R '^SigBlk:[[:space:]]+0+$'" "has $R '^SigIgn:[[:space:]]+[0-9a-f]{8}[08]0{7}$'"

probe -x "$W/nonexistent" "$GOOD"
check "a fetcher that cannot be executed: fetcher_new fails and says why" all \
	"test $RC -eq 1" "has $OUT '^fetcher_new: .*nonexistent: No such file or directory$'" \
	"sanitizer_clean $OUT.err"

finish
