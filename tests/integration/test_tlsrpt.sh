#!/bin/sh
# TLS reporting (RFC 8460), part 1, end to end: mxtls with [report]
# enabled delivers to receiving Postfix MXs, counts each attempt, keeps
# the counts across a restart (state_dir/tlsrpt/journal), and
# `mxtls report --dry-run TODAY` prints each domain's rua (from its
# _smtp._tls TXT record in dnsmasq) and the report JSON, which python3
# checks field by field against RFC 8460 section 4.
#
#	V 127.0.0.2  mx1.example.test  valid certificate
#	E 127.0.0.3  mx2.example.test  expired certificate
#	P 127.0.0.4  mx3.example.test  no STARTTLS
#	  127.0.0.5  nginx: https://mta-sts.sts.test/.well-known/mta-sts.txt
#
#	domain      policy                   _smtp._tls     sent (before + after the restart)
#	good.test   none                     mailto, https  2 + 1 over TLS
#	exp.test    none                     mailto         1 (451: certificate expired)
#	plain.test  none                     (none)         1 + 1 in plaintext
#	sts.test    enforce mx1.example.test mailto         1 + 1 over TLS
#
# Needs: dnsmasq, Postfix, nginx, openssl, python3; root (port 443).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-120}
it_setup

CA=$PKI/test-root-ca.pem
NG_ADDR=127.0.0.5
TODAY=$(date -u +%F)

pol_sts_enforce sts.test mx1.example.test
pol_sts_serve "$NG_ADDR" sts.test || finish

dns_mx good.test mx1.example.test
dns_mx exp.test mx2.example.test
dns_mx plain.test mx3.example.test
dns_mx sts.test mx1.example.test
dns_a mx1.example.test 127.0.0.2
dns_a mx2.example.test 127.0.0.3
dns_a mx3.example.test 127.0.0.4
pol_sts_dns "$NG_ADDR" sts.test
# From a file, quoted: dnsmasq takes a "," of its command line for the
# end of a string, and mxtls joins a record's strings without one.
echo 'txt-record=_smtp._tls.good.test,"v=TLSRPTv1; rua=mailto:tlsrpt@good.test,https://reports.good.test/v1"' >"$W/txt.conf"
DNS_ARGS="$DNS_ARGS --conf-file=$W/txt.conf"
dns_txt _smtp._tls.exp.test 'v=TLSRPTv1;rua=mailto:tlsrpt@exp.test'
dns_txt _smtp._tls.sts.test 'v=TLSRPTv1;rua=mailto:tlsrpt@sts.test'
dns_start || finish

pf_mx V 127.0.0.2:25 hostname=mx1.example.test || { fail "Postfix V starts"; finish; }
pf_mx E 127.0.0.3:25 hostname=mx2.example.test cert=expired || { fail "Postfix E starts"; finish; }
pf_mx P 127.0.0.4:25 hostname=mx3.example.test tls=no || { fail "Postfix P starts"; finish; }

# The config of lib_retry.sh: one state_dir and port for both starts.
rt_config policy="mta_sts_ca_bundle = $CA" policy='mta_sts_wait = 10' <<EOF
[report]
enabled = yes
organization_name = mxtls "test" org
contact_info = tls-reports@sender.test
submitter = mta.sender.test
EOF

# send DOMAIN: one message to a new recipient of DOMAIN; OUT the transcript.
send() { pol_send_new "$1"; }
dot_ok() { reply_is "$OUT" DOT '^250 '; }

# ---------------------------------------------------------------- mxtls[1]

rt_mxtls_start 0 || finish
send good.test
check "good.test: delivered over TLS" dot_ok
send good.test
check "good.test: delivered again" dot_ok
send exp.test
check "exp.test: expired certificate deferred (451 4.7.5)" reply_is "$OUT" "RCPT TO:<r3@exp.test>" '^451 4\.7\.5 '
send plain.test
check "plain.test: delivered in plaintext" dot_ok
send sts.test
check "sts.test: delivered over TLS under its enforce policy" dot_ok
check "the counts are logged at debug level" grep_since "$MXTLS_LOG" 0 \
	'event=tlsrpt domain=exp\.test policy=no-policy-found result=certificate-expired mx=mx2\.example\.test addr=127\.0\.0\.3 .*counted=yes'
check "a metric counts sessions by policy and result" sh -c \
	"curl -s http://127.0.0.1:$MXTLS_ADMIN_PORT/metrics | grep -qxF 'mxtls_tlsrpt_sessions_total{policy=\"sts\",result=\"ok\"} 1'"

# ---------------------------------------------------------------- mxtls[2]

# The counts survive: the second mxtls adds to what the first wrote.
rt_mxtls_restart 0 || finish
send good.test
check "after the restart: good.test delivered" dot_ok
send plain.test
check "after the restart: plain.test delivered" dot_ok
send sts.test
check "after the restart: sts.test delivered" dot_ok
# The dirty counts reach the journal within a second.
sleep 2

report() { # OUT [DAY]: the dry run, with the clock of the running mxtls
	"$MXTLS" -c "$RT_CONF" report --dry-run ${2:+"$2"} >"$1" 2>"$1.err"
	_rc=$?
	if [ $_rc -ne 0 ] || ! sanitizer_clean "$1.err" >/dev/null; then
		echo "mxtls report exited $_rc:"
		cat "$1" "$1.err"
		return 1
	fi
}
check "mxtls report --dry-run $TODAY (mxtls running)" report "$W/report.out" "$TODAY"
sed 's/^/# /' "$W/report.out"

cat >"$W/check.py" <<'EOF'
import ipaddress, json, sys

out, today = sys.argv[1], sys.argv[2]
lines = open(out).read().splitlines()
assert lines[0] == "day " + today, lines[0]
reports, cur = {}, None
for l in lines[1:]:
    word, _, rest = l.partition(" ")
    if word == "domain":
        cur = reports[rest] = {}
    else:
        cur[word] = rest
assert sorted(reports) == ["exp.test", "good.test", "plain.test", "sts.test"], sorted(reports)

ids = set()
def report(domain):
    r = json.loads(reports[domain]["json"])
    assert list(r) == ["organization-name", "date-range", "contact-info",
                       "report-id", "policies"], list(r)
    assert r["organization-name"] == 'mxtls "test" org'
    assert r["date-range"] == {"start-datetime": today + "T00:00:00Z",
                               "end-datetime": today + "T23:59:59Z"}
    assert r["contact-info"] == "tls-reports@sender.test"
    assert r["report-id"].endswith("@mta.sender.test") and r["report-id"] not in ids
    ids.add(r["report-id"])
    for p in r["policies"]:
        assert set(p) <= {"policy", "summary", "failure-details"}, p
        assert p["policy"]["policy-domain"] == domain
        assert set(p["summary"]) == {"total-successful-session-count",
                                     "total-failure-session-count"}
        fails = p.get("failure-details", [])
        assert sum(f["failed-session-count"] for f in fails) == \
            p["summary"]["total-failure-session-count"]
        for f in fails:
            assert set(f) <= {"result-type", "sending-mta-ip", "receiving-mx-hostname",
                              "receiving-ip", "failed-session-count"}, f
            ipaddress.ip_address(f["sending-mta-ip"])
            ipaddress.ip_address(f["receiving-ip"])
    return r["policies"]

def only(domain, ptype, ok, failed):
    ps = report(domain)
    assert len(ps) == 1, ps
    p = ps[0]
    assert p["policy"]["policy-type"] == ptype, p
    assert p["summary"] == {"total-successful-session-count": ok,
                            "total-failure-session-count": failed}, p["summary"]
    return p

p = only("good.test", "no-policy-found", 3, 0)
assert "failure-details" not in p and "policy-string" not in p["policy"]
assert reports["good.test"]["rua"] == "mailto:tlsrpt@good.test https://reports.good.test/v1"
assert reports["good.test"]["dnssec"] == "insecure"

p = only("exp.test", "no-policy-found", 0, 1)
assert p["failure-details"] == [{"result-type": "certificate-expired",
    "sending-mta-ip": p["failure-details"][0]["sending-mta-ip"],
    "receiving-mx-hostname": "mx2.example.test", "receiving-ip": "127.0.0.3",
    "failed-session-count": 1}], p
assert reports["exp.test"]["rua"] == "mailto:tlsrpt@exp.test"

p = only("plain.test", "no-policy-found", 0, 2)
assert [(f["result-type"], f["receiving-mx-hostname"], f["receiving-ip"])
        for f in p["failure-details"]] == \
    [("starttls-not-supported", "mx3.example.test", "127.0.0.4")], p
assert reports["plain.test"]["rua"].startswith("none: _smtp._tls.plain.test"), reports["plain.test"]

p = only("sts.test", "sts", 2, 0)
assert p["policy"]["policy-string"] == ["version: STSv1", "mode: enforce",
    "mx: mx1.example.test", "max_age: 86400"], p
assert p["policy"]["mx-host"] == ["mx1.example.test"], p
assert reports["sts.test"]["rua"] == "mailto:tlsrpt@sts.test"
print("ok")
EOF
check "the report JSON: RFC 8460 fields, counts of both runs" python3 "$W/check.py" "$W/report.out" "$TODAY"

# Yesterday (the default) has nothing; a bad day is refused.
check "report --dry-run (yesterday): no sessions counted" sh -c \
	"'$MXTLS' -c '$RT_CONF' report --dry-run | grep -q '^no sessions counted on '"
check "report --dry-run 2024-02-30 is refused" sh -c \
	"! '$MXTLS' -c '$RT_CONF' report --dry-run 2024-02-30 >/dev/null 2>&1"

mxtls_stop
check "the counts are in state_dir/tlsrpt/journal" grep -q '^domain sts\.test$' "$RT_STATE_DIR/tlsrpt/journal"
finish
