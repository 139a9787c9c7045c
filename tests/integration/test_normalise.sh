#!/bin/sh
# [proxy] bare_line_endings = normalise (docs/security.md section G: G-01,
# G-02): a message with bare LF or bare CR is delivered once, rewritten so
# that the upstream gets only CRLF lines (bare LF -> CRLF with dot-stuffing
# re-applied, bare CR -> space), the smuggled commands after a non-canonical
# end-of-data sequence stay message text, and the upstream's own reply
# reaches the client.  With the default (reject) the same messages get
# 550 5.6.0.  The upstream is the hostile sink of tests/hostile (it keeps
# the raw bytes of every message), and once a real Postfix MX.
#
#   sink.test -> 127.0.14.2:25  hostile sink (mandatory, verified TLS)
#   pf.test   -> 127.0.14.3:25  Postfix
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_attacks.sh"
IT_TIMEOUT=${IT_TIMEOUT:-90}
it_setup

at_spawn sink 127.0.14.2:25 sink
PF_OK=yes
pf_mx pfn 127.0.14.3:25 cert=valid hostname=mx.tls.test || {
	PF_OK=no
	fail "Postfix MX starts" "$(cat "$(pf_dir pfn)/master.out" 2>/dev/null)"
}
at_ready sink || finish

routes() {
	hostile_conf sink 127.0.14.2 mandatory
	cat <<EOF
[match pf.test]
profile = mandatory
nexthop = 127.0.14.3:25
mx = mx.tls.test
EOF
}
mxtls_start proxy='bare_line_endings = normalise' proxy='max_message_size = 1m' <<EOF || finish
$(routes)
EOF
NORM_LOG=$MXTLS_LOG
E="EHLO mta.test"
F="MAIL FROM:<s@sender.test>"
B=$W/bodies
mkdir -p "$B"

# The expected upstream bytes, worked out line by line (the C normaliser
# goes byte by byte): lines end at any LF; a CR before it is part of the
# ending, other CRs become spaces; a line after a bare LF that starts with
# "." gets a second one, as does a lone "." ended by a bare LF.
cat >"$W/norm.py" <<'EOF'
import re, sys

def expected(body):
    assert body.endswith(b"\r\n.\r\n")
    data, out, real = body[:-3], [], True
    for m in re.finditer(rb"([^\n]*)\n", data):
        line = m.group(1)
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        line = line.replace(b"\r", b" ")
        if line.startswith(b".") and (not real or (line == b"." and not crlf)):
            line = b"." + line
        out.append(line + b"\r\n")
        real = crlf
    return b"".join(out)

cmd = sys.argv[1]
if cmd == "body":  # FILE NAME SEQ: a smuggling body, as docs/security.md G-01
    path, name, seq = sys.argv[2], sys.argv[3], sys.argv[4]
    seq = seq.encode().decode("unicode_escape").encode("latin-1")
    body = (b"From: a@sender.test\r\nSubject: smuggle " + name.encode() +
            b"\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <" +
            name.encode() + b"@sender.test>\r\n\r\nhello" + seq +
            b"MAIL FROM:<spoof@bank.test>\r\nRCPT TO:<victim@sink.test>\r\n"
            b"DATA\r\nFrom: ceo@bank.test\r\nSubject: smuggled\r\n\r\npay\r\n.\r\n")
    open(path, "wb").write(body)
elif cmd == "big":  # FILE N: N lines ".\n" (each doubles), then the end
    open(sys.argv[2], "wb").write(b"Subject: big\r\n\r\n" + b".\n" * int(sys.argv[3]) +
                                  b"end\r\n.\r\n")
elif cmd == "long":  # FILE: after a bare LF a 998-byte line starting "."
    open(sys.argv[2], "wb").write(b"Subject: long\r\n\r\nx\n." + b"a" * 997 + b"\r\n.\r\n")
elif cmd == "nul":  # FILE: a bare LF (normalised) and a NUL (refused)
    open(sys.argv[2], "wb").write(b"Subject: nul\r\n\r\na\nb\x00c\r\n.\r\n")
elif cmd == "hygiene":  # RAW...: no bare CR, bare LF or NUL (an aborted DATA
    # may end between CR and LF)
    bad = []
    for f in sys.argv[2:]:
        d = open(f, "rb").read()
        if "aborted-" in f and d.endswith(b"\r"):
            d = d[:-1]
        if re.search(rb"\r(?!\n)|(?<!\r)\n|\x00", d):
            bad.append(f)
    if bad:
        print("stray CR, LF or NUL in: " + " ".join(bad))
        sys.exit(1)
elif cmd == "check":  # BODY RAW: the sink got exactly the normalised body
    body, raw = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
    want = expected(body)
    if re.search(rb"\r(?!\n)|(?<!\r)\n", raw) or raw != want:
        print("sink got %d bytes, expected %d" % (len(raw), len(want)))
        print("got:  %r" % raw[-300:])
        print("want: %r" % want[-300:])
        sys.exit(1)
elif cmd == "stuffed":  # MSG FILE: MSG (LF lines) as smtpx's DATA= sends it
    lines = open(sys.argv[2], "rb").read().split(b"\n")[:-1]
    open(sys.argv[3], "wb").write(b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                                          for l in lines) + b".\r\n")
elif cmd == "delivered":  # BODY WANTFILE: what a receiver keeps (unstuffed, LF)
    lines = expected(open(sys.argv[2], "rb").read()).split(b"\r\n")[:-1]
    open(sys.argv[3], "wb").write(b"".join((l[1:] if l.startswith(b".") else l) + b"\n"
                                          for l in lines))
EOF

# sink_got RCPT BODY: the sink acknowledged exactly one message for RCPT,
# its raw bytes are BODY normalised and it counted no bare CR, LF or NUL.
sink_got() {
	_e=$(grep -lF "<$1>" "$(at_dir sink)"/[0-9]*.env 2>/dev/null)
	if [ "$(printf '%s\n' "$_e" | grep -c .)" != 1 ]; then
		echo "the sink acknowledged $(printf '%s\n' "$_e" | grep -c .) messages for $1, expected 1"
		return 1
	fi
	grep -E '^(bare_cr|bare_lf|nul): [1-9]' "$_e" && return 1
	python3 "$W/norm.py" check "$2" "${_e%.env}.raw"
}

# log_norm RCPT ERE: mxtls logged event=normalised with ERE in the session
# that relayed RCPT (the log has one sid per session).
log_norm() {
	_sid=$(grep -F "$1" "$NORM_LOG" | grep -oE '(^| )sid=[0-9]+' | head -n 1 | tr -d ' ')
	if [ -n "$_sid" ] && grep -E "(^| )$_sid " "$NORM_LOG" | grep 'event=normalised' | grep -qE -- "$2"; then
		return 0
	fi
	echo "no event=normalised line matching /$2/ for $1 (${_sid:-no session}); normalised lines:"
	grep 'event=normalised' "$NORM_LOG" | sed 's/^/  /'
	return 1
}

no_log_norm() {
	_sid=$(grep -F "$1" "$NORM_LOG" | grep -oE '(^| )sid=[0-9]+' | head -n 1 | tr -d ' ')
	if [ -n "$_sid" ] && ! grep -E "(^| )$_sid " "$NORM_LOG" | grep -q 'event=normalised'; then
		return 0
	fi
	echo "session ${_sid:-(none)} of $1 logged event=normalised (or was not found)"
	return 1
}

# wait_jobs: wait for the smtpx sessions started in the background (only
# those: the servers are children too).
JOBS=""
wait_jobs() {
	for _j in $JOBS; do
		wait "$_j"
	done
	JOBS=""
}

SEQS='lf-dot-lf:\n.\n
lf-dot-crlf:\n.\r\n
crlf-dot-lf:\r\n.\n
cr-dot-crlf:\r.\r\n
crlf-dot-cr:\r\n.\r
cr-dot-cr:\r.\r
cr-dot-lf:\r.\n
lf-dot-cr:\n.\r
lf-dotdot-lf:\n..\n
crlf-dot-crcrlf:\r\n.\r\r\n
crcrlf-dot-crcrlf:\r\r\n.\r\r\n
bare-lf-line:\nx\n
bare-cr-line:\rx\r'
printf '%s\n' "$SEQS" | cut -d: -f1 >"$W/names"
printf '%s\n' "$SEQS" | while IFS=: read -r name seq; do
	python3 "$W/norm.py" body "$B/$name" "$name" "$seq"
done

# --- normalise: every sequence at once, one session each
S0=$(at_count sink saved)
while read -r name; do
	smtpx "$W/n-$name.out" mxtls "$E" "$F" "RCPT TO:<n-$name@sink.test>" 'RAW=DATA\r\n' \
		"RAWF=$B/$name" QUIET=0.5 NOOP QUIT &
	JOBS="$JOBS $!"
done <"$W/names"
# A clean, client dot-stuffed message passes byte for byte, not logged.
mkmsg "$W/clean.msg" "clean message through normalise"
smtpx "$W/n-clean.out" mxtls "$E" "$F" "RCPT TO:<n-clean@sink.test>" "DATA=$W/clean.msg" QUIT &
JOBS="$JOBS $!"
# A CR at the end of one read and its LF in the next is no bare CR: the
# body dripped one byte per read.
printf 'Subject: drip\r\n\r\na\r\nb\rc\n.\nMAIL FROM:<spoof@bank.test>\r\n..\r\n.\r\n' >"$B/drip"
smtpx "$W/n-drip.out" mxtls "$E" "$F" "RCPT TO:<n-drip@sink.test>" 'RAW=DATA\r\n' \
	'DRIP=0.005:10:Subject: drip\r\n\r\na\r\nb\rc\n.\nMAIL FROM:<spoof@bank.test>\r\n..\r\n.\r\n' QUIT &
JOBS="$JOBS $!"
wait_jobs

while read -r name; do
	check "G-02 normalise $name: delivered once, the upstream's 250" reply_is "$W/n-$name.out" RAW '250 ' 2
	check "G-01 normalise $name: one reply, in sync, nothing smuggled runs" sh -c \
		"grep -q '^QUIET => ok' '$W/n-$name.out' && grep -q '^NOOP => 250' '$W/n-$name.out' || { cat '$W/n-$name.out'; false; }"
	check "G-02 normalise $name: the sink got exactly the normalised bytes, no stray CR/LF" \
		sink_got "n-$name@sink.test" "$B/$name"
done <"$W/names"
check "G-02 normalise: the sink acknowledged one message per sequence, no more" \
	at_saved_is sink $((S0 + $(wc -l <"$W/names") + 2))
check "G-02 normalise: no smuggled message reached the sink as its own transaction (no RCPT victim@)" \
	at_not_saw sink '^C: (plain|tls) RCPT TO:<victim@'
check "G-02 normalise: no stray CR, LF or NUL reached the sink" at_hygiene sink
check "G-02 normalise: the smuggled commands arrived as message text" sh -c \
	"grep -lF 'MAIL FROM:<spoof@bank.test>' '$(at_dir sink)'/[0-9]*.eml | grep -c . | grep -qx $(($(wc -l <"$W/names") + 1)) || { grep -c 'spoof@' '$(at_dir sink)'/*.eml; false; }"
check "normalise: logged once per message (lf-dot-lf: bare_lf=2 bare_cr=0)" \
	log_norm "n-lf-dot-lf@sink.test" 'bare_lf=2 bare_cr=0 dots_added=1'
check "normalise: logged once per message (cr-dot-cr: bare_lf=0 bare_cr=2)" \
	log_norm "n-cr-dot-cr@sink.test" 'bare_lf=0 bare_cr=2 dots_added=0'
check "normalise: one event=normalised line per normalised message" sh -c \
	"[ \$(grep -c 'event=normalised' '$NORM_LOG') -eq $(($(wc -l <"$W/names") + 1)) ] || grep 'event=normalised' '$NORM_LOG'"
check "normalise: a clean message is delivered 250" reply_is "$W/n-clean.out" DOT '250 '
python3 "$W/norm.py" stuffed "$W/clean.msg" "$B/clean"
check "normalise: a clean dot-stuffed message passes byte for byte" \
	sink_got n-clean@sink.test "$B/clean"
check "normalise: a clean message is not logged as normalised" no_log_norm n-clean@sink.test
check "normalise: CR and LF in separate reads: 250" sh -c \
	"grep -qE '^DRIP => server spoke .*: 250 ' '$W/n-drip.out' || { cat '$W/n-drip.out'; false; }"
check "normalise: CR and LF in separate reads: a split CRLF stays CRLF, the rest normalised" \
	sink_got n-drip@sink.test "$B/drip"

# --- back-pressure: 200000 lines ".\n" grow from 400 kB to 800 kB upstream;
# SIZE counts the normalised bytes (max_message_size 1m: 300000 lines fit as
# sent, not as normalised).
python3 "$W/norm.py" big "$B/big" 200000
python3 "$W/norm.py" big "$B/huge" 300000
smtpx "$W/n-big.out" mxtls "$E" "$F" "RCPT TO:<n-big@sink.test>" 'RAW=DATA\r\n' "RAWF=$B/big" NOOP QUIT &
JOBS="$JOBS $!"
smtpx "$W/n-huge.out" mxtls "$E" "$F" "RCPT TO:<n-huge@sink.test>" 'RAW=DATA\r\n' "RAWF=$B/huge" NOOP QUIT &
JOBS="$JOBS $!"
python3 "$W/norm.py" long "$B/long"
python3 "$W/norm.py" nul "$B/nul"
smtpx "$W/n-long.out" mxtls "$E" "$F" "RCPT TO:<n-long@sink.test>" 'RAW=DATA\r\n' "RAWF=$B/long" NOOP QUIT &
JOBS="$JOBS $!"
smtpx "$W/n-nul.out" mxtls "$E" "$F" "RCPT TO:<n-nul@sink.test>" 'RAW=DATA\r\n' "RAWF=$B/nul" NOOP QUIT &
JOBS="$JOBS $!"
wait_jobs
check "normalise: 400 kB doubling to 800 kB: 250" reply_is "$W/n-big.out" RAW '250 ' 2
check "normalise: 400 kB doubling to 800 kB: no byte lost or repeated under back-pressure" \
	sink_got n-big@sink.test "$B/big"
check "normalise: SIZE counts the normalised bytes (600 kB sent, 1.2 MB normalised > 1m): 552 5.3.4" \
	reply_is "$W/n-huge.out" RAW '552 5\.3\.4' 2
check "normalise: a line that is 998 bytes as sent but 999 normalised (the added dot): 550 5.6.0" \
	reply_is "$W/n-long.out" RAW '550 5\.6\.0 Message has a line longer' 2
check "normalise: a NUL is still refused: 550 5.6.0" reply_is "$W/n-nul.out" RAW '550 5\.6\.0 Message contains a NUL' 2
check "normalise: the session goes on after each refusal" sh -c \
	"grep -q '^NOOP => 250' '$W/n-huge.out' && grep -q '^NOOP => 250' '$W/n-long.out' && grep -q '^NOOP => 250' '$W/n-nul.out'"
check "normalise: the sink acknowledged none of the refused messages" sh -c \
	"! grep -lE '<n-(huge|long|nul)@' '$(at_dir sink)'/[0-9]*.env"
# (at_hygiene cannot judge these: its bare_cr_inside counts the CR of a
# final CRLF of an aborted DATA.)
check "normalise: no stray CR, LF or NUL reached the sink, not even in aborted DATA" \
	python3 "$W/norm.py" hygiene "$(at_dir sink)"/*.raw

# --- a real Postfix MX: one message, the smuggled lines in its body
if [ "$PF_OK" = yes ]; then
	python3 "$W/norm.py" delivered "$B/lf-dot-lf" "$W/pf-want.msg"
	smtpx "$W/n-pf.out" mxtls "$E" "$F" "RCPT TO:<u@pf.test>" 'RAW=DATA\r\n' \
		"RAWF=$B/lf-dot-lf" NOOP QUIT
	check "G-02 normalise through Postfix: 250 from Postfix" reply_is "$W/n-pf.out" RAW '250 2\.0\.0 Ok: queued' 2
	check "G-02 normalise through Postfix: delivered, the smuggled commands are body text" \
		delivered pfn u@pf.test "$W/pf-want.msg"
	sleep 1
	check "G-02 normalise through Postfix: one message, none to victim@" sh -c \
		"[ \$(find '$(pf_dir pfn)/mail' -path '*/new/*' -type f | wc -l) -eq 1 ] && ! grep -q 'to=<victim@' '$(pf_log pfn)'"
fi

# --- the default: reject, the same messages refused
mxtls_start <<EOF || finish
$(routes)
EOF
S1=$(at_count sink saved)
while read -r name; do
	smtpx "$W/r-$name.out" mxtls "$E" "$F" "RCPT TO:<r-$name@sink.test>" 'RAW=DATA\r\n' \
		"RAWF=$B/$name" NOOP QUIT &
	JOBS="$JOBS $!"
done <"$W/names"
wait_jobs
while read -r name; do
	check "G-01 default reject $name: 550 5.6.0" reply_is "$W/r-$name.out" RAW '550 5\.6\.0 Message contains a bare CR or LF' 2
done <"$W/names"
check "G-02 default reject: the sink acknowledged none of them" at_saved_is sink "$S1"
check "default reject: nothing logged as normalised" no_grep_since "$MXTLS_LOG" 0 'event=normalised'

finish
