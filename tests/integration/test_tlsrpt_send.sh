#!/bin/sh
# TLS reporting (RFC 8460), part 2, end to end: mxtls counts a day of
# deliveries, then sends each domain's report to the rua of its
# _smtp._tls TXT record once the UTC day is over: https: as a POST of the
# gzipped JSON to a python3 collector (test PKI), mailto: as a
# multipart/report message through mxtls's own listener to a Postfix MX.
# The clock is moved (MXTLS_CLOCK_OFFSET) and the send window and first
# back-off shortened (MXTLS_TLSRPT_WINDOW=0, MXTLS_TLSRPT_RETRY=1), so
# nothing waits for hours.
#
#	V 127.0.0.2  mx1.example.test  valid certificate
#	E 127.0.0.3  mx2.example.test  expired certificate
#	N 127.0.0.4  mx3.example.test  certificate for wrong.example.net
#	P 127.0.0.5  mx.plain.test     no STARTTLS
#	  127.0.0.6  the collector, https://reports.good.test/...
#
#	domain      day D             rua
#	good.test   2 over TLS        https://.../v1, mailto:tlsrpt@good.test
#	exp.test    1 expired         https://.../fail-once (500, then 200)
#	bad.test    1 name mismatch   https://.../redirect (302: a failure)
#	plain.test  1 no STARTTLS     a hostile record: a CRLF mailto, then
#	                              h1..h9 with long paths (over 800 bytes)
#	intern.test 1 over TLS        https://internal.good.test/x at 127.0.0.9,
#	                              outside allow_private_mx (127.0.0.0/29)
#	old.test    D-3: 1, D-2: 2    https://.../old
#	good.test   D+1: 1 legit one  (from the reports' own sender address)
#
#	mxtls[1]  D-3 12:00:00        old.test counted on D-3
#	mxtls[2]  D-2 00:00:05        D-3 scheduled (4 h window), not sent; old.test counted on D-2
#	                              (mxtls is then down until D: D-3 and D-2 are missed)
#	mxtls[3]  D 12:00:00          the deliveries, counted on day D; at start-up the
#	                              missed D-3 and D-2 are sent, oldest first
#	                              (MXTLS_TLSRPT_JOBS=1: one report held at a time)
#	mxtls[4]  D+1 00:00:01        the report of D is scheduled (4 h window), not sent yet;
#	                              D-2 kept and already sent, D-3 dropped
#	mxtls[5]  D 23:59:45          crosses midnight while running; window 0: sends;
#	                              then the legit message to good.test (day D+1)
#	mxtls[6]  D+1 04:00:30        past the window: nothing sent twice
#	mxtls[7]  D+1 23:59:45        the day ends: what still fails is tried on (D is kept);
#	                              D+1's report of good.test counts the legit message only
#	mxtls[8]  D+2 00:00:01        4 h window; SIGUSR1 sends at once
#	mxtls[9]  D+3 23:59:45        D leaves the journal: what still fails is given up
#
# Needs: dnsmasq, Postfix, openssl, python3; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_setup

CA=$PKI/test-root-ca.pem
COL=127.0.0.6
NOW=$(date -u +%s)
D=$(date -u -d "@$NOW" +%F)
# Seconds to add to the wall clock to be at second S of the next UTC day.
next_day_at() { echo $(((NOW / 86400 + 1) * 86400 + $1 - $(date -u +%s))); }

pol_leaf col reports.good.test || { fail "collector certificate"; finish; }
mkdir -p "$W/posts"
cat >"$W/collector.py" <<'EOF'
# A TLS-RPT collector: every POST is kept (posts/N.body, and a line of
# posts/log: N path content-type status); /fail-once answers 500 the
# first time, /redirect 302, everything else 200.
import os, ssl, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

chain, key, addr, out = sys.argv[1:5]
lock = threading.Lock()
n = [0]
failed = set()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path
        if path == "/fail-once" and path not in failed:
            failed.add(path)
            status = 500
        elif path == "/redirect":
            status = 302
        else:
            status = 200
        with lock:
            n[0] += 1
            with open(os.path.join(out, "%d.body" % n[0]), "wb") as f:
                f.write(body)
            with open(os.path.join(out, "log"), "a") as f:
                f.write("%d %s %s %d\n" % (n[0], path,
                        self.headers.get("Content-Type", "-"), status))
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "https://reports.good.test/v1?redirected")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
srv = ThreadingHTTPServer((addr, 443), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
python3 "$W/collector.py" "$W/certs/col.chain.pem" "$W/certs/col.key" "$COL" "$W/posts" \
	>"$W/collector.out" 2>&1 &
it_track collector $! -
wait_for_port "$COL:443" tcp 10 || { fail "the collector listens on $COL:443" "$(cat "$W/collector.out")"; finish; }

dns_mx good.test mx1.example.test
dns_mx exp.test mx2.example.test
dns_mx bad.test mx3.example.test
dns_mx plain.test mx.plain.test
dns_mx intern.test mx1.example.test
dns_mx old.test mx1.example.test
dns_a internal.good.test 127.0.0.9
dns_a mx1.example.test 127.0.0.2
dns_a mx2.example.test 127.0.0.3
dns_a mx3.example.test 127.0.0.4
dns_a mx.plain.test 127.0.0.5
dns_a reports.good.test $COL
# The hostile record: a mailto: with an encoded CRLF first, then nine
# long https: URIs, in strings, over 800 bytes (a UDP answer of 512
# bytes cannot hold it; dnsmasq takes no longer line).
pad=$(printf '%050d' 0)
hostile='"v=TLSRPTv1; rua=mailto:evil%0D%0ARCPT%20TO:%3Cx@evil.test%3E@x.test"'
for i in 1 2 3 4 5 6 7 8 9; do
	hostile="$hostile,\",https://reports.good.test/h$i/$pad\""
done
{
	echo 'txt-record=_smtp._tls.good.test,"v=TLSRPTv1; rua=https://reports.good.test/v1,mailto:tlsrpt@good.test"'
	echo 'txt-record=_smtp._tls.exp.test,"v=TLSRPTv1; rua=https://reports.good.test/fail-once"'
	echo 'txt-record=_smtp._tls.bad.test,"v=TLSRPTv1; rua=https://reports.good.test/redirect"'
	echo 'txt-record=_smtp._tls.intern.test,"v=TLSRPTv1; rua=https://internal.good.test/x"'
	echo 'txt-record=_smtp._tls.old.test,"v=TLSRPTv1; rua=https://reports.good.test/old"'
	echo "txt-record=_smtp._tls.plain.test,$hostile"
} >"$W/txt.conf"
DNS_ARGS="$DNS_ARGS --conf-file=$W/txt.conf"
dns_start || finish

pf_mx V 127.0.0.2:25 hostname=mx1.example.test || { fail "Postfix V starts"; finish; }
pf_mx E 127.0.0.3:25 hostname=mx2.example.test cert=expired || { fail "Postfix E starts"; finish; }
pf_mx N 127.0.0.4:25 hostname=mx3.example.test cert=wrongname || { fail "Postfix N starts"; finish; }
pf_mx P 127.0.0.5:25 hostname=mx.plain.test tls=no || { fail "Postfix P starts"; finish; }

rt_config policy="mta_sts_ca_bundle = $CA" <<EOF
[report]
enabled = yes
organization_name = mxtls test org
contact_info = tls-reports@sender.test
submitter = mta.sender.test
EOF
# The MXs and the collector may be on loopback, 127.0.0.9 may not.
sed -i 's|^allow_private_mx = yes$|allow_private_mx = 127.0.0.0/29|' "$RT_CONF"

# send DOMAIN: one message to a new recipient of DOMAIN; OUT the transcript.
send() { pol_send_new "$1"; }
posts() { # PATH: how many POSTs to PATH the collector had
	awk -v p="$1" '$2 == p' "$W/posts/log" 2>/dev/null | wc -l | tr -d ' '
}
posts_are() { # PATH N
	[ "$(posts "$1")" = "$2" ] || { echo "$(posts "$1") POSTs to $1, want $2:"; cat "$W/posts/log"; return 1; }
}

# ---------------------------------------------------------------- missed days

# Counts on D-3 and on D-2, while the report of D-3 waits for its moment;
# then mxtls is down until D: both days are missed.
DM3=$(date -u -d "$D -3 day" +%F)
DM2=$(date -u -d "$D -2 day" +%F)
rt_mxtls_start "$(next_day_at $((-4 * 86400 + 43200)))" || finish
send old.test
check "D-3: old.test delivered" reply_is "$OUT" DOT '^250 '
sleep 2 # the counts reach the journal within a second
rt_mxtls_restart "$(next_day_at $((-3 * 86400 + 5)))" || finish
check "D-2 00:00:05: the report of $DM3 is scheduled in the 4 h window" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-scheduled day=$DM3 due=${DM2}T0[0-3]:"
send old.test
check "D-2: old.test delivered" reply_is "$OUT" DOT '^250 '
send old.test
check "D-2: old.test delivered again" reply_is "$OUT" DOT '^250 '
check "... the report of $DM3 is not sent before its moment" no_grep_since "$MXTLS_LOG" 0 'event=tlsrpt-(run|rua|sent|send-failed) '
sleep 2

# ---------------------------------------------------------------- day D

# At noon of day D: the real midnight may come while the test runs.
# One report held at a time: the missed days go strictly oldest first.
export MXTLS_TLSRPT_JOBS=1
rt_mxtls_restart "$(next_day_at -43200)" || finish
unset MXTLS_TLSRPT_JOBS
missed_ok() { # the runs of D-3 and D-2 in that order, each sent to /old
	awk -v a="$DM3" -v b="$DM2" '
		/event=tlsrpt-run / && index($0, "day=" a " ") && !ra { ra = NR }
		/event=tlsrpt-run / && index($0, "day=" b " ") && !rb { rb = NR }
		/event=tlsrpt-sent / && index($0, "day=" a " domain=old.test rua=https://reports.good.test/old ") && !sa { sa = NR }
		/event=tlsrpt-sent / && index($0, "day=" b " domain=old.test rua=https://reports.good.test/old ") && !sb { sb = NR }
		END {
			if (!ra || !rb || !sa || !sb || !(ra < sa && sa < rb && rb < sb)) {
				print "run " a " at line " ra ", sent at " sa "; run " b " at line " rb ", sent at " sb
				exit 1
			}
		}' "$MXTLS_LOG"
}
check "start-up on D: the missed $DM3 and $DM2 are sent at once, oldest first, one held at a time" wait_until 15 missed_ok
check "... two POSTs to /old" wait_until 5 posts_are /old 2
missed_json() { # the two reports: their days and counts, in that order
	python3 - "$W/posts" "$DM3" "$DM2" <<'PY'
import gzip, json, sys
posts, a, b = sys.argv[1:4]
got = []
for line in open(posts + "/log"):
    n, path, ctype, status = line.split()
    if path == "/old":
        r = json.loads(gzip.decompress(open("%s/%s.body" % (posts, n), "rb").read()))
        [p] = r["policies"]
        got.append((r["date-range"]["start-datetime"], p["policy"]["policy-domain"],
                    p["summary"]["total-successful-session-count"]))
want = [(a + "T00:00:00Z", "old.test", 1), (b + "T00:00:00Z", "old.test", 2)]
if got != want:
    print("got", got, "want", want)
    sys.exit(1)
PY
}
check "... the report of $DM3 (1 session) then of $DM2 (2 sessions)" missed_json
send good.test
check "good.test: delivered over TLS" reply_is "$OUT" DOT '^250 '
send good.test
check "good.test: delivered again" reply_is "$OUT" DOT '^250 '
send exp.test
check "exp.test: expired certificate deferred" reply_is "$OUT" "RCPT TO:<r$N@exp.test>" '^4'
send bad.test
check "bad.test: name mismatch deferred" reply_is "$OUT" "RCPT TO:<r$N@bad.test>" '^4'
send plain.test
check "plain.test: delivered in plaintext" reply_is "$OUT" DOT '^250 '
send intern.test
check "intern.test: delivered over TLS" reply_is "$OUT" DOT '^250 '
check "yesterday's run is scheduled at start" grep_since "$MXTLS_LOG" 0 'event=tlsrpt-scheduled '
check "without [report] submit, a warning: mailed reports go unsigned" grep_since "$MXTLS_LOG" 0 \
	'level=warn event=tlsrpt-mailto-unsigned '
sleep 2 # the counts reach the journal within a second

# ---------------------------------------------------------------- D+1, early

# After midnight, before the random moment of a 4 h window: scheduled,
# not sent; then stopped.  The next start must still send everything.
rt_mxtls_restart "$(next_day_at 1)" || finish
check "D+1 00:00:01: the report of $D is scheduled in the 4 h window" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-scheduled day=$D due=$(date -u -d "@$(((NOW / 86400 + 1) * 86400))" +%F)T0[0-3]:"
sleep 1
check "... and nothing of $D is sent before it" no_grep_since "$MXTLS_LOG" 0 "event=tlsrpt-(rua|sent|send-failed) day=$D "
check "$DM2 is still kept: looked at again, already sent (once across restarts)" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-already-sent day=$DM2 domain=old\\.test" 15
check "$DM3 has left the journal" grep_since "$MXTLS_LOG" 0 "event=tlsrpt result=day-dropped day=$DM3"
check "... no report sent again: two POSTs to /old in all" posts_are /old 2

# ---------------------------------------------------------------- midnight

export MXTLS_TLSRPT_WINDOW=0 MXTLS_TLSRPT_RETRY=1
rt_mxtls_restart "$(next_day_at -15)" || finish
PREV=$(date -u -d "$D -1 day" +%F)
# Started before midnight (it schedules the day before D first), it
# schedules D when midnight passes, with no send of D before that.
order_ok() {
	awk -v d="$D" -v p="$PREV" '
		/event=tlsrpt-scheduled / && index($0, "day=" p " ") && !prev { prev = NR }
		/event=tlsrpt-scheduled / && index($0, "day=" d " ") && !sched { sched = NR }
		/event=tlsrpt-(rua|sent|send-failed) / && index($0, "day=" d " ") && !first { first = NR }
		END {
			if (!prev || !sched || !first || !(prev < sched && sched < first)) {
				print "scheduled " p " at line " prev ", " d " at line " sched ", first send at line " first
				exit 1
			}
		}' "$MXTLS_LOG"
}
check "midnight passes: the report of $D is due at once" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-scheduled day=$D due=[0-9-]+T00:00:00Z" 25
check "... scheduled when the day changed, while running, and sent only then" wait_until 15 order_ok
check "good.test: rua found, DNSSEC standing logged" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-rua day=[0-9-]+ domain=good\.test rua="https://reports\.good\.test/v1 mailto:tlsrpt@good\.test" dnssec=insecure ignored=0' 15
check "good.test: POSTed to https://reports.good.test/v1" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-sent day=[0-9-]+ domain=good\.test rua=https://reports\.good\.test/v1 attempt=1' 15
check "good.test: mailto handed to mxtls's own listener" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-sent day=[0-9-]+ domain=good\.test rua=mailto:tlsrpt@good\.test attempt=1 via=127\.0\.0\.1' 15
check "exp.test: the first POST fails (500), logged with the back-off" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=exp\.test rua=https://reports\.good\.test/fail-once attempt=1 error="http-status: HTTP status 500" retry_in=1' 15
check "exp.test: the retry succeeds" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-sent day=[0-9-]+ domain=exp\.test rua=https://reports\.good\.test/fail-once attempt=2' 15
check "F-18 bad.test: the redirect is a failure, not followed" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=bad\.test rua=https://reports\.good\.test/redirect attempt=1 error="redirect-refused: HTTP 302 redirect to https://reports\.good\.test/v1\?redirected not followed"' 15
check "bad.test: retried with back-off (attempt 2 after 1 s)" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=bad\.test .*attempt=2 .*retry_in=2' 15
check "F-17 plain.test: the hostile record: 4 rua used, the rest ignored" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-rua day=[0-9-]+ domain=plain\.test rua="mailto:evil%0D%0ARCPT%20TO:%3Cx@evil\.test%3E@x\.test https://reports\.good\.test/h1/0+ https://reports\.good\.test/h2/0+ https://reports\.good\.test/h3/0+" dnssec=insecure ignored=[1-9]' 15
check "F-17 plain.test: the CRLF mailto is refused, never sent" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=plain\.test rua=mailto:evil.* error="not a plain mail address"' 15
check "F-19 intern.test: a rua on loopback (127.0.0.9) is refused like such an MX" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=intern\.test rua=https://internal\.good\.test/x attempt=1 error="internal\.good\.test: a loopback address, not allowed by \[dns\] allow_private_mx"' 15
check "plain.test: h1..h3 took it" wait_until 15 sh -c "[ \$(grep -c ' /h[123]/' '$W/posts/log') -eq 3 ]"
check "Postfix V got the mailto report" mx_wait_rcpt V tlsrpt@good.test 1 30
# RFC 8460 section 3: the session that delivered the report through
# mxtls's own listener is not counted (NEEDS session.c to pass its client
# address to tlsrpt_count: struct tlsrpt_attempt's client).  A message
# from the same sender on a connection of its own is counted.
check "the report's own session through the listener is not counted (needs session.c's a.client)" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt domain=good\.test result=ok counted=no reason=' 5
smtpc "$W/legit.out" mxtls "EHLO client.test" "MAIL FROM:<tls-reports@sender.test>" \
	"RCPT TO:<legit@good.test>" "DATA=$W/msg.txt" "QUIT"
check "D+1: a message from the reports' sender address is delivered" reply_is "$W/legit.out" DOT '^250 '
good_once() { # good.test was counted once by this mxtls: the legit message
	_n=$(grep -cE 'event=tlsrpt domain=good\.test policy=no-policy-found result=ok .*counted=yes' "$MXTLS_LOG")
	[ "$_n" -eq 1 ] && return 0
	echo "good.test counted $_n times:"
	grep -E 'event=tlsrpt domain=good' "$MXTLS_LOG"
	return 1
}
check "... and counted, the one count of good.test in this run (needs session.c's a.client)" good_once
check "the metric counts https reports sent" pol_metric_ge mxtls_tlsrpt_reports_total 1 'scheme="https"' 'result="sent"'
check "... and failed" pol_metric_ge mxtls_tlsrpt_reports_total 1 'scheme="https"' 'result="failed"'
check "... and mailto reports sent" pol_metric_ge mxtls_tlsrpt_reports_total 1 'scheme="mailto"' 'result="sent"'
sleep 3 # a few more back-offs of bad.test and plain.test
check "no redirect followed, h4..h9 never used" sh -c \
	"! grep -E ' /v1\\?redirected| /h[4-9]/' '$W/posts/log'"
check "exactly one POST to /v1 and to each of h1..h3 (sent ones are not repeated)" sh -c \
	"[ \$(grep -c ' /v1 ' '$W/posts/log') -eq 1 ] && [ \$(grep -c ' /h1/' '$W/posts/log') -eq 1 ]"
check "every POST is application/tlsrpt+gzip" sh -c "! awk '\$3 != \"application/tlsrpt+gzip\"' '$W/posts/log' | grep ."

# ---------------------------------------------------------------- the reports

MAIL=$(mx_mail V tlsrpt@good.test | head -n 1)
cat >"$W/check.py" <<'EOF'
# The reports against RFC 8460 section 4 (a schema by hand) and the
# counts this test caused; the mail against section 5.3.
import datetime, email, email.policy, gzip, ipaddress, json, re, sys

posts, mail, day = sys.argv[1:4]
RESULTS = {"starttls-not-supported", "certificate-host-mismatch",
           "certificate-expired", "certificate-not-trusted",
           "validation-failure", "tlsa-invalid", "dnssec-invalid",
           "dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
           "sts-webpki-invalid"}

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0

def schema(r):
    assert isinstance(r, dict)
    assert set(r) == {"organization-name", "date-range", "contact-info",
                      "report-id", "policies"}, list(r)
    for k in ("organization-name", "contact-info", "report-id"):
        assert isinstance(r[k], str) and r[k], k
    dr = r["date-range"]
    assert set(dr) == {"start-datetime", "end-datetime"}
    for k in dr:
        datetime.datetime.strptime(dr[k], "%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(r["policies"], list) and r["policies"]
    for p in r["policies"]:
        assert set(p) <= {"policy", "summary", "failure-details"}, p
        pol = p["policy"]
        assert set(pol) <= {"policy-type", "policy-string", "policy-domain",
                            "mx-host"} and "policy-domain" in pol, pol
        assert pol["policy-type"] in ("tlsa", "sts", "no-policy-found")
        for k in ("policy-string", "mx-host"):
            assert k not in pol or all(isinstance(s, str) for s in pol[k])
        s = p["summary"]
        assert set(s) == {"total-successful-session-count",
                          "total-failure-session-count"}
        assert all(is_int(v) for v in s.values())
        fails = p.get("failure-details", [])
        for f in fails:
            assert set(f) <= {"result-type", "sending-mta-ip",
                              "receiving-mx-hostname", "receiving-mx-helo",
                              "receiving-ip", "failed-session-count",
                              "additional-information",
                              "failure-reason-code"}, f
            assert f["result-type"] in RESULTS, f
            assert is_int(f["failed-session-count"])
            for k in ("sending-mta-ip", "receiving-ip"):
                if k in f:
                    ipaddress.ip_address(f[k])
        assert sum(f["failed-session-count"] for f in fails) == \
            s["total-failure-session-count"]

def counts(r, domain, ok, failed):
    schema(r)
    assert r["date-range"] == {"start-datetime": day + "T00:00:00Z",
                               "end-datetime": day + "T23:59:59Z"}, r
    assert r["organization-name"] == "mxtls test org"
    assert r["contact-info"] == "tls-reports@sender.test"
    assert r["report-id"] == day + "T00:00:00Z+" + domain + "@mta.sender.test"
    [p] = r["policies"]
    assert p["policy"] == {"policy-type": "no-policy-found",
                           "policy-domain": domain}, p
    assert p["summary"] == {"total-successful-session-count": ok,
                            "total-failure-session-count": sum(failed.values())}, p
    got = {(f["result-type"], f["receiving-mx-hostname"], f["receiving-ip"]):
           f["failed-session-count"] for f in p.get("failure-details", [])}
    assert got == failed, got

by_path = {}
for line in open(posts + "/log"):
    n, path, ctype, status = line.split()
    by_path.setdefault(re.sub(r"/0+$", "", path), []).append(
        json.loads(gzip.decompress(open("%s/%s.body" % (posts, n), "rb").read())))
good = by_path["/v1"][0]
counts(good, "good.test", 2, {})
counts(by_path["/fail-once"][-1], "exp.test", 0,
       {("certificate-expired", "mx2.example.test", "127.0.0.3"): 1})
assert by_path["/fail-once"][0] == by_path["/fail-once"][-1]
counts(by_path["/redirect"][0], "bad.test", 0,
       {("certificate-host-mismatch", "mx3.example.test", "127.0.0.4"): 1})
counts(by_path["/h1"][0], "plain.test", 0,
       {("starttls-not-supported", "mx.plain.test", "127.0.0.5"): 1})

m = email.message_from_bytes(open(mail, "rb").read(), policy=email.policy.default)
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "tlsrpt"
assert m["From"] == "<tls-reports@sender.test>" or m["From"].addresses[0].addr_spec == "tls-reports@sender.test"
assert m["To"].addresses[0].addr_spec == "tlsrpt@good.test"
assert m["TLS-Report-Domain"] == "good.test"
assert m["TLS-Report-Submitter"] == "mta.sender.test"
assert m["TLS-Required"] == "No"
assert m["MIME-Version"] == "1.0"
assert m["Date"] and m["Message-ID"]
assert " ".join(m["Subject"].split()) == ("Report Domain: good.test Submitter: "
    "mta.sender.test Report-ID: <%sT00:00:00Z+good.test@mta.sender.test>" % day), m["Subject"]
parts = list(m.iter_parts())
assert [p.get_content_type() for p in parts] == ["text/plain", "application/tlsrpt+gzip"]
att = parts[1]
assert att["Content-Transfer-Encoding"] == "base64"
start = int(datetime.datetime.strptime(day, "%Y-%m-%d").replace(
    tzinfo=datetime.timezone.utc).timestamp())
assert re.fullmatch(r"mta\.sender\.test!good\.test!%d!%d![0-9a-f]+\.json\.gz"
                    % (start, start + 86399), att.get_filename()), att.get_filename()
assert json.loads(gzip.decompress(att.get_content())) == good
print(json.dumps(good))
EOF
check "without [report] dkim_key the mailed report carries no DKIM-Signature (test_tlsrpt_dkim.sh signs)" \
	sh -c "[ -f '${MAIL:-/nonexistent}' ] && ! grep -qi '^DKIM-Signature:' '${MAIL:-/nonexistent}'"
check "the reports: RFC 8460 schema, the counts caused, the mail's MIME structure and attachment" \
	python3 "$W/check.py" "$W/posts" "${MAIL:-/nonexistent}" "$D"
python3 "$W/check.py" "$W/posts" "${MAIL:-/nonexistent}" "$D" 2>/dev/null | sed 's/^/# report: /'

# ---------------------------------------------------------------- restart

# Past the window: the reports already taken are not sent again; the
# failing rua (the redirect, the CRLF mailto) are tried again.
rt_mxtls_restart "$(next_day_at 14430)" || finish
check "after the restart: good.test and exp.test already sent" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-already-sent day=[0-9-]+ domain=exp\.test' 15
check "... bad.test is tried again" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=bad\.test rua=https://reports\.good\.test/redirect attempt=1' 15
check "... good.test neither POSTed nor mailed again" no_grep_since "$MXTLS_LOG" 0 'event=tlsrpt-sent .*domain=good\.test'
check "... one POST to /v1 in all" posts_are /v1 1
check "... the sent records are in state_dir/tlsrpt/journal" grep -q '^rua https://reports\.good\.test/v1$' "$RT_STATE_DIR/tlsrpt/journal"
"$MXTLS" -c "$RT_CONF" report --dry-run "$D" >"$W/dry.out" 2>&1
dry_sent_ok() {
	grep -qx 'sent https://reports.good.test/v1' "$W/dry.out" &&
		grep -qx 'sent mailto:tlsrpt@good.test' "$W/dry.out" &&
		grep -qx 'sent https://reports.good.test/fail-once' "$W/dry.out" &&
		! grep -q '^sent .*redirect' "$W/dry.out" && return 0
	cat "$W/dry.out"
	return 1
}
check "report --dry-run $D lists the rua that took the report" dry_sent_ok

# ---------------------------------------------------------------- D+2

# D+1 ends; D is still kept: what still fails of it is tried on, with
# D+1's reports (good.test: the legit message of D+1) at its run.
D1=$(date -u -d "$D +1 day" +%F)
rt_mxtls_restart "$(next_day_at 86385)" || finish
check "D+1 23:59:45: bad.test is still tried" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt-send-failed day=[0-9-]+ domain=bad\.test ' 15
check "midnight: the next day is scheduled" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-scheduled day=$D1 " 25
tried_on() { # a send of D's bad.test report after D+1's run was scheduled
	awk -v d="$D" -v d1="$D1" '
		/event=tlsrpt-scheduled / && index($0, "day=" d1 " ") { s = NR }
		s && /event=tlsrpt-send-failed / && index($0, "day=" d " domain=bad.test ") { ok = 1 }
		END { if (!ok) { print "no send of " d "/bad.test after line " s; exit 1 } }' "$MXTLS_LOG"
}
check "... $D is kept: bad.test's report of it is tried on, not given up" wait_until 10 tried_on
check "... nothing given up" no_grep_since "$MXTLS_LOG" 0 'event=tlsrpt-given-up '
check "... good.test's report of $D1 is POSTed" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-sent day=$D1 domain=good\\.test rua=https://reports\\.good\\.test/v1 " 15
d1_json() { # the report of D+1 to /v1: the legit message alone
	python3 - "$W/posts" "$D1" <<'PY'
import gzip, json, sys
posts, day = sys.argv[1:3]
for line in open(posts + "/log"):
    n, path, ctype, status = line.split()
    if path == "/v1":
        r = json.loads(gzip.decompress(open("%s/%s.body" % (posts, n), "rb").read()))
        if r["date-range"]["start-datetime"] == day + "T00:00:00Z":
            [p] = r["policies"]
            s = p["summary"]
            if s == {"total-successful-session-count": 1, "total-failure-session-count": 0}:
                sys.exit(0)
            print("the report of", day, "counts", s, "(want the legit message alone)")
            sys.exit(1)
print("no report of", day, "to /v1")
sys.exit(1)
PY
}
check "... counting the legit message alone, not the report's own delivery (needs session.c's a.client)" d1_json

# ---------------------------------------------------------------- SIGUSR1

# The 4 h window again: SIGUSR1 sends yesterday's reports (D+1) at once.
unset MXTLS_TLSRPT_WINDOW MXTLS_TLSRPT_RETRY
rt_mxtls_restart "$(next_day_at 86401)" || finish
check "D+2 00:00:01: the report of $D1 is scheduled" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-scheduled day=$D1 due=" 15
check "... not sent yet" no_grep_since "$MXTLS_LOG" 0 "event=tlsrpt-rua day=$D1"
kill -USR1 "$MXTLS_PID"
check "SIGUSR1 is logged" grep_since "$MXTLS_LOG" 0 'event=tlsrpt-send-now' 15
check "... good.test's report of $D1 goes out" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-rua day=$D1 domain=good\\.test " 15

# ---------------------------------------------------------------- D+4

# D leaves the journal at D+4's midnight: what still fails is given up.
rt_mxtls_restart "$(next_day_at $((2 * 86400 + 86385)))" || finish
check "D+3 23:59:45: $D is kept: bad.test's report of it is tried" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-send-failed day=$D domain=bad\\.test " 15
check "midnight: $D leaves the journal, bad.test's report of it is given up" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-given-up day=$D domain=bad\\.test attempts=[1-9][0-9]* reason=\"the day has left the journal\"" 25
once_each() { # every day's report went to /v1 and /old once, no more
	python3 - "$W/posts" "$DM3" "$DM2" <<'PY'
import collections, gzip, json, sys
posts, a, b = sys.argv[1:4]
seen = collections.Counter()
for line in open(posts + "/log"):
    n, path, ctype, status = line.split()
    if path in ("/v1", "/old"):
        r = json.loads(gzip.decompress(open("%s/%s.body" % (posts, n), "rb").read()))
        seen[path, r["date-range"]["start-datetime"][:10]] += 1
old = sorted(d for p, d in seen if p == "/old")
if any(c != 1 for c in seen.values()) or old != [a, b]:
    print("POSTs per (path, day):", dict(seen))
    sys.exit(1)
PY
}
check "... each day's report POSTed once to /v1 and to /old, in all" once_each
mxtls_stop
finish
