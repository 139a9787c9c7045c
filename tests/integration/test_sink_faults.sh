#!/bin/sh
# docs/security.md I-04: fault injection with Postfix's smtp-sink as the upstream
# MX, mxtls driven by smtp-source and by a small client that records the
# reply to every step.  smtp-sink has no TLS: every domain is delivered in
# the clear under profile opportunistic (the sink offers no STARTTLS).
#
# One sink per fault, each on an address of its own (127.0.10.N:25) as the
# MX of domain NAME.test; smtp-sink's -d dump keeps every message whose
# final dot it received, and it answers that dot 250 unless the fault is on
# "." (-r/-f/-q/-Q .) or -A.  So for every run:
#   - the messages the client got 250 for at the final dot are exactly the
#     messages the sink accepted (the same Subjects, or the same count for
#     smtp-source);
#   - the fault shows at the client in the right step with the right class:
#     4xx for -r (soft reject), -q (disconnect without reply), -Q (421 and
#     disconnect), timeouts and a 5xx greeting, 5xx for -f (hard reject);
#     mxtls accepts MAIL locally and opens the upstream at the first RCPT,
#     so greeting, EHLO and MAIL faults show at RCPT.  -A (550 after 354,
#     out of turn, before the dot): never 250; mxtls answers 451 (a reply
#     while none is due is a broken connection to it), 5xx would be fine;
#   - the session stays in sync (QUIT 221);
#   - no leaks: mxtls's file descriptors go back to where they were, and
#     LeakSanitizer finds nothing when it stops.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-85}
it_setup
T0=$(date +%s)
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
if [ ! -x "$SINK" ] || [ ! -x "$SOURCE" ]; then
	fail "I-04 smtp-sink and smtp-source are installed (package postfix)" "$SINK / $SOURCE missing"
	finish
fi

# --- faults: NAME SINK-OPTIONS | EXPECTED (an ERE on the client's record)
# The record is "rcpt=C data=C dot=C quit=C", "-" for a step not reached.
OK='rcpt=250 data=354 dot=250 quit=221'
FAULTS=$W/faults
cat >"$FAULTS" <<EOF
normal||$OK
wshort|-w 1|$OK
wlate|-w 6|rcpt=250 data=4[0-9][0-9] dot=- quit=221
rconnect|-r CONNECT|rcpt=4[0-9][0-9] data=- dot=- quit=221
fconnect|-f CONNECT|rcpt=4[0-9][0-9] data=- dot=- quit=221
dropehlo|-q EHLO|rcpt=4[0-9][0-9] data=- dot=- quit=221
rmail|-r MAIL|rcpt=4[0-9][0-9] data=- dot=- quit=221
rrcpt|-r RCPT|rcpt=4[0-9][0-9] data=- dot=- quit=221
rdata|-r DATA|rcpt=250 data=4[0-9][0-9] dot=- quit=221
rdot|-r .|rcpt=250 data=354 dot=4[0-9][0-9] quit=221
fmail|-f MAIL|rcpt=5[0-9][0-9] data=- dot=- quit=221
frcpt|-f RCPT|rcpt=5[0-9][0-9] data=- dot=- quit=221
fdata|-f DATA|rcpt=250 data=5[0-9][0-9] dot=- quit=221
fdot|-f .|rcpt=250 data=354 dot=5[0-9][0-9] quit=221
dropmail|-q MAIL|rcpt=4[0-9][0-9] data=- dot=- quit=221
droprcpt|-q RCPT|rcpt=4[0-9][0-9] data=- dot=- quit=221
dropdata|-q DATA|rcpt=250 data=4[0-9][0-9] dot=- quit=221
dropdot|-q .|rcpt=250 data=354 dot=4[0-9][0-9] quit=221
c421mail|-Q MAIL|rcpt=4[0-9][0-9] data=- dot=- quit=221
c421rcpt|-Q RCPT|rcpt=4[0-9][0-9] data=- dot=- quit=221
c421data|-Q DATA|rcpt=250 data=4[0-9][0-9] dot=- quit=221
c421dot|-Q .|rcpt=250 data=354 dot=4[0-9][0-9] quit=221
abort|-A 0|rcpt=250 data=354 dot=[45][0-9][0-9] quit=221
EOF
# Faults smtp-source survives with -A (it gives up on a lost connection).
SOURCE_RUNS="normal wshort wlate rmail rrcpt rdata rdot fmail frcpt fdata fdot c421mail c421rcpt c421data c421dot"

# field NAME N: field N of fault NAME's line.
field() { awk -F'|' -v n="$1" -v f="$2" '$1 == n { print $f }' "$FAULTS"; }
# sink_accepts NAME: whether that sink answers the final dot 250.
sink_accepts() {
	case " $(field "$1" 2) " in
	*" -r . "* | *" -f . "* | *" -q . "* | *" -Q . "* | *" -A "*) return 1 ;;
	esac
	return 0
}

# --- DNS, sinks
n=10
while IFS='|' read -r name opts _; do
	n=$((n + 1))
	echo "$name 127.0.10.$n" >>"$W/addrs"
	dns_mx "$name.test" "mx.$name.test" 10
	dns_a "mx.$name.test" "127.0.10.$n"
done <"$FAULTS"
dns_start || finish

addr_of() { awk -v n="$1" '$1 == n { print $2 }' "$W/addrs"; }
while IFS='|' read -r name opts _; do
	d=$W/sink-$name
	mkdir -p "$d/dump"
	chown nobody "$d/dump"
	# shellcheck disable=SC2086
	"$SINK" -u nobody -h "mx.$name.test" -d "$d/dump/m." $opts "$(addr_of "$name"):25" 64 \
		>"$d/out" 2>&1 &
	it_track sink $! "$name"
done <"$FAULTS"
while IFS='|' read -r name _; do
	wait_for_port "$(addr_of "$name"):25" tcp 10 || fail "I-04 smtp-sink $name listens" "$(cat "$W/sink-$name/out")"
done <"$FAULTS"

# data_init_timeout 3: "-w 1" is within it, "-w 6" is not.
at_mxtls_start proxy='data_init_timeout = 3' <<EOF || finish
[policy]
default = opportunistic
mta_sts = off
EOF

# --- the client: SESSIONS threads, MSGS messages each (one per connection)
cat >"$W/drive.py" <<'EOF'
import socket, sys, threading
port, domain, tag, sessions, msgs, kib = sys.argv[1:7]
sessions, msgs, kib = int(sessions), int(msgs), int(kib)
out, lock = [], threading.Lock()

def reply(f):
    while True:
        l = f.readline(4096)
        if not l:
            raise EOFError
        if len(l) < 4 or l[3:4] != b"-":
            return l[:3].decode("latin-1")

def one(mid):
    rec = {"rcpt": "-", "data": "-", "dot": "-", "quit": "-"}
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
    f = s.makefile("rb")
    step = "greeting"
    try:
        reply(f)
        for step, line in (("ehlo", b"EHLO client.test"), ("mail", b"MAIL FROM:<s@sender.test>"),
                           ("rcpt", b"RCPT TO:<%s@%s>" % (mid.encode(), domain.encode())),
                           ("data", b"DATA")):
            s.sendall(line + b"\r\n")
            rec[step] = reply(f)
            if rec[step][0] not in "23":
                break
        if rec["data"] == "354":
            step = "dot"
            body = "Subject: %s\r\nMessage-ID: <%s@sender.test>\r\n\r\n" % (mid, mid)
            body += "".join("%05d %s\r\n" % (i, "x" * 58) for i in range(kib * 16))
            s.sendall(body.encode() + b".\r\n")
            rec["dot"] = reply(f)
        step = "quit"
        s.sendall(b"QUIT\r\n")
        rec["quit"] = reply(f)
    except (EOFError, OSError):
        rec[step] = "EOF"
    s.close()
    return "%s rcpt=%s data=%s dot=%s quit=%s" % (mid, rec["rcpt"], rec["data"], rec["dot"], rec["quit"])

def worker(t):
    for j in range(msgs):
        r = one("%s-%d-%d" % (tag, t, j))
        with lock:
            out.append(r)

ts = [threading.Thread(target=worker, args=(t,)) for t in range(sessions)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(sorted(out)))
EOF

FD0=$(fds "$MXTLS_PID")
NDRV=6 # messages per fault from the client: 2 sessions x 3
while IFS='|' read -r name _; do
	python3 "$W/drive.py" "$MXTLS_PORT" "$name.test" "drv-$name" 2 3 4 >"$W/drv-$name.out" 2>&1 &
	echo $! >>"$W/drivers"
done <"$FAULTS"
for name in $SOURCE_RUNS; do
	m=6
	[ "$name" = normal ] && m=50
	s=2
	[ "$name" = normal ] && s=5
	# -A: go on after a refusal; -c: "N\r" after each DATA completed
	# (any reply), -r 2: two recipients per message.
	"$SOURCE" -A -c -s "$s" -m "$m" -r 2 -l 4096 -M client.test -f s@sender.test \
		-t "u@$name.test" -S "src-$name" "127.0.0.1:$MXTLS_PORT" >"$W/src-$name.out" 2>&1 &
	echo $! >>"$W/drivers"
done
while read -r p; do wait "$p"; done <"$W/drivers"

# sink_subjects NAME PREFIX: the Subjects of the messages the sink received
# (its -d dumps) that start with PREFIX, sorted.
sink_subjects() {
	find "$W/sink-$1/dump" -type f -exec awk '/^Subject: / { print $2; exit }' {} \; |
		grep "^$2" | sort
}

# drv_ok NAME: every record of the client matches the fault's ERE, and the
# messages it got 250 for are the messages the sink accepted.
drv_ok() {
	_re=$(field "$1" 3)
	_f=$W/drv-$1.out
	if [ "$(grep -cE "^drv-$1-[0-9]+-[0-9]+ $_re\$" "$_f")" -ne $NDRV ]; then
		echo "expected $NDRV records matching '$_re', got:"
		sed 's/^/  /' "$_f"
		return 1
	fi
	return 0
}
drv_same() {
	_f=$W/drv-$1.out
	awk '$4 == "dot=250" { print $1 }' "$_f" | sort >"$_f.acked"
	# The sink writes its dump before its reply: nothing is still coming.
	if sink_accepts "$1"; then
		sink_subjects "$1" "drv-" >"$_f.sink"
	else
		: >"$_f.sink"
	fi
	if ! cmp -s "$_f.acked" "$_f.sink"; then
		echo "250 at the final dot for $(wc -l <"$_f.acked") messages, the sink accepted $(wc -l <"$_f.sink"):"
		diff "$_f.acked" "$_f.sink" | sed 's/^/  /'
		return 1
	fi
	return 0
}
# src_same NAME: smtp-source's 250s at the final dot (DATA completions less
# "end of data rejected") equal the messages the sink accepted.
src_same() {
	_f=$W/src-$1.out
	_done=$(tr '\r' '\n' <"$_f" | grep -E '^[0-9]+$' | sort -n | tail -n 1)
	_rej=$(grep -c 'end of data rejected' "$_f")
	_acked=$((${_done:-0} - _rej))
	if sink_accepts "$1"; then
		_sink=$(sink_subjects "$1" "src-" | wc -l)
	else
		_sink=0
	fi
	if [ "$_acked" -eq "$_sink" ] && ! grep -q 'fatal' "$_f"; then
		return 0
	fi
	echo "smtp-source: $_done DATA completed, $_rej refused at the dot => $_acked accepted; the sink accepted $_sink"
	tr '\r' '\n' <"$_f" | grep -v '^[0-9]*$' | sort | uniq -c | head -n 10 | sed 's/^/  /'
	return 1
}

while IFS='|' read -r name opts re; do
	check "I-04 ${opts:-no fault}: each step answered as expected ($re)" drv_ok "$name"
	check "I-04 ${opts:-no fault}: 250 at the final dot exactly for the messages the sink accepted" drv_same "$name"
done <"$FAULTS"
note "-A 0 (550 out of turn during DATA): the client got $(awk '{ print $4 }' "$W/drv-abort.out" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
for name in $SOURCE_RUNS; do
	check "I-04 smtp-source, $(field "$name" 2 | sed 's/^$/no fault/'): 250s at the dot = messages the sink accepted" src_same "$name"
done
check "I-04 smtp-source -s 5 -m 50 -r 2 -l 4096, no fault: all 50 accepted with both recipients" sh -c \
	"[ \$(grep -l '^Subject: src-normal' '$W'/sink-normal/dump/* | xargs grep -c '^X-Rcpt-Args: ' | grep -c ':2\$') -eq 50 ]"
check "I-04 smtp-source, -r .: refused at the dot, every message reached the sink (and was refused there)" sh -c \
	"[ \$(find '$W/sink-rdot/dump' -type f | xargs grep -l '^Subject: src-rdot' | wc -l) -eq 6 ] &&
	 [ \$(grep -c 'end of data rejected: 4' '$W/src-rdot.out') -eq 6 ]"
check "I-04 -q .: the sink got every message, the client none acknowledged (4xx)" sh -c \
	"[ \$(find '$W/sink-dropdot/dump' -type f | wc -l) -eq $NDRV ] &&
	 [ \$(grep -c 'dot=4' '$W/drv-dropdot.out') -eq $NDRV ]"

# --- no leaks: once the sessions are gone, the descriptors are back.
fds_back() {
	_t=$(($(date +%s) + 5))
	while [ "$(fds "$MXTLS_PID")" -gt "$FD0" ]; do
		[ "$(date +%s)" -ge $_t ] && { echo "mxtls has $(fds "$MXTLS_PID") fds, $FD0 before"; return 1; }
		sleep 0.1
	done
}
check "I-04 no leaks: mxtls's file descriptors are back to $FD0" fds_back
check "I-04 the sinks offer no STARTTLS: mxtls delivered in the clear (outcome=plaintext), never claimed TLS" sh -c \
	"grep 'event=delivery' '$MXTLS_LOG' | grep -q 'outcome=plaintext' && ! grep 'event=delivery' '$MXTLS_LOG' | grep -q 'tls=TLS'"
note "whole run $(($(date +%s) - T0)) s"
finish
