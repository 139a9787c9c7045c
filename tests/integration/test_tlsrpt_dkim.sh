#!/bin/sh
# TLS reports mailed with a DKIM signature (RFC 8460 section 3: "Reports
# sent via SMTP MUST contain a valid DomainKeys Identified Mail (DKIM)
# [RFC6376] signature by the reporting domain"), end to end: mxtls counts
# a day's delivery to good.test, mails the report to the mailto: rua of
# _smtp._tls.good.test through its own listener to a Postfix MX, and
# python3-dkim verifies what Postfix delivered, the key records served
# by the test's dnsmasq (SELECTOR._domainkey.sender.test, s=tlsrpt).
#
#	mxtls[1]  D 12:00        no key; a message to good.test (counted on D)
#	mxtls[2]  D+1 -40 s      no key; SIGHUP with the Ed25519 key: taken;
#	                         SIGHUP with a key only root can read: refused,
#	                         the Ed25519 key stays; midnight: the report of D
#	                         goes out signed ed25519-sha256; a message of D+1
#	mxtls[3]  D+2 -20 s      the RSA-2048 key from the start: the report of
#	                         D+1 goes out signed rsa-sha256
#	a config whose dkim_key is no key: mxtls -t and mxtls refuse it, FILE:LINE
#
# The unsigned case (no key: no DKIM-Signature) is in test_tlsrpt_send.sh.
# Needs: dnsmasq, Postfix, openssl, python3 with python3-dkim; root.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_retry.sh"
. "$(dirname "$0")/lib_policy.sh"
IT_TIMEOUT=${IT_TIMEOUT:-150}
it_setup

NOW=$(date -u +%s)
D=$(date -u -d "@$NOW" +%F)
next_day_at() { echo $(((NOW / 86400 + 1) * 86400 + $1 - $(date -u +%s))); }

# ---------------------------------------------------------------- keys, DNS

mkdir -p "$W/keys"
if ! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/keys/rsa.pem" 2>"$W/keys/err" ||
	! openssl genpkey -algorithm ed25519 -out "$W/keys/ed.pem" 2>>"$W/keys/err"; then
	fail "openssl makes the test keys" "$(cat "$W/keys/err")"
	finish
fi
# Readable by the user mxtls runs as (nobody), as the README asks.
chmod 644 "$W/keys/rsa.pem" "$W/keys/ed.pem"
cp "$W/keys/ed.pem" "$W/keys/root-only.pem"
chmod 600 "$W/keys/root-only.pem"
printf -- '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' >"$W/keys/junk.pem"
chmod 644 "$W/keys/junk.pem"
RSA_P=$(openssl pkey -in "$W/keys/rsa.pem" -pubout -outform DER | base64 -w0)
ED_P=$(openssl pkey -in "$W/keys/ed.pem" -pubout -outform DER | tail -c 32 | base64 -w0)
# TXT strings hold 255 bytes: the RSA record in two.
RSA_REC="v=DKIM1; k=rsa; s=tlsrpt; p=$RSA_P"
{
	echo 'txt-record=_smtp._tls.good.test,"v=TLSRPTv1; rua=mailto:tlsrpt@good.test"'
	printf 'txt-record=rsa._domainkey.sender.test,"%s","%s"\n' \
		"$(printf %s "$RSA_REC" | cut -c1-200)" "$(printf %s "$RSA_REC" | cut -c201-)"
	echo "txt-record=ed._domainkey.sender.test,\"v=DKIM1; k=ed25519; s=tlsrpt; p=$ED_P\""
} >"$W/txt.conf"
DNS_ARGS="$DNS_ARGS --conf-file=$W/txt.conf"
dns_mx good.test mx1.example.test
dns_a mx1.example.test 127.0.0.2
dns_start || finish
check "dnsmasq serves the RSA key record" dns_has rsa._domainkey.sender.test TXT "TXT $(printf %s "$RSA_REC" | cut -c1-200)"

pf_mx V 127.0.0.2:25 hostname=mx1.example.test || { fail "Postfix V starts"; finish; }

# One config for every start (rt_config: the same port and state_dir);
# dkim_config NAME [KEY SELECTOR] makes it $W/NAME.ini and RT_CONF, with
# the DKIM keys when KEY is given ([report] is its last section).
rt_config <<EOF
[report]
enabled = yes
organization_name = mxtls test org
contact_info = tls-reports@sender.test
submitter = mta.sender.test
EOF
cp "$RT_CONF" "$W/base.ini"
dkim_config() {
	cp "$W/base.ini" "$W/$1.ini"
	[ $# -gt 1 ] && printf 'dkim_key = %s\ndkim_selector = %s\ndkim_domain = sender.test\n' \
		"$W/keys/$2" "$3" >>"$W/$1.ini"
	cp "$W/$1.ini" "$RT_CONF"
}
# line_of FILE KEY: the line number of "KEY =" in FILE.
line_of() { grep -n "^$2 =" "$1" | cut -d: -f1; }

# dkim_check MAIL OFFSET ALG SELECTOR [ok|body|header|from]: python3-dkim
# verifies MAIL (as Postfix delivered it; its clock OFFSET seconds ahead,
# as mxtls's was, for the t= check), the key record asked of dnsmasq,
# strictly as a TLS report (the record must say s=tlsrpt).  ok: it must
# verify, with a=ALG, s=SELECTOR, d=sender.test, c=relaxed/relaxed and
# the report's fields in h=, From twice; body, header, from: changed the
# way a hostile relay could (a byte of the text part, TLS-Report-Domain,
# a second From on top), it must not.
cat >"$W/verify.py" <<'EOF'
import re, sys, time
import dkim, dns.resolver

mail, port, offset, alg, sel, mode = sys.argv[1:7]
res = dns.resolver.Resolver(configure=False)
res.nameservers = ["127.0.0.1"]
res.port = int(port)

def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    try:
        a = res.resolve(name, "TXT", lifetime=timeout)
    except Exception as e:
        print("DNS %s: %s" % (name, e))
        return None
    return b"".join(a[0].strings)

class Clock:  # mxtls signed with its clock moved: t= is ahead of ours
    @staticmethod
    def time():
        return time.time() + int(offset)
dkim.time = Clock

# Postfix stores LF line ends; the message went over SMTP with CRLF.
msg = open(mail, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
head = msg.split(b"\r\n\r\n", 1)[0].decode()
m = re.search(r"^DKIM-Signature:(.*?)\r\n(?![ \t])", head, re.M | re.S)
if not m:
    print("no DKIM-Signature field in", mail)
    sys.exit(1)
tags = dict((k.strip(), re.sub(r"\s+", "", v)) for k, v in
            (t.split("=", 1) for t in m.group(1).split(";") if "=" in t))
want = {"v": "1", "a": alg, "c": "relaxed/relaxed", "d": "sender.test", "s": sel,
        "h": "from:to:subject:date:message-id:mime-version:content-type:"
             "tls-report-domain:tls-report-submitter:from"}
bad = [(k, tags.get(k), v) for k, v in want.items() if tags.get(k) != v]
if bad or "l" in tags or "bh" not in tags or "b" not in tags or "t" not in tags:
    print("tags differ (tag, got, want):", bad, "all:", tags)
    sys.exit(1)
if mode == "body":
    msg = msg.replace(b"aggregate TLS report", b"aggregate TLS rep0rt", 1)
elif mode == "header":
    msg = msg.replace(b"TLS-Report-Domain: good.test", b"TLS-Report-Domain: evil.test", 1)
elif mode == "from":
    msg = b"From: <ceo@sender.test>\r\n" + msg
ok = dkim.verify(msg, dnsfunc=dnsfunc, tlsrpt="strict")
print("dkim.verify (%s): %s" % (mode, ok))
sys.exit(0 if ok == (mode == "ok") else 1)
EOF
dkim_check() {
	python3 "$W/verify.py" "$1" "$DNS_PORT" "$2" "$3" "$4" "${5:-ok}"
}

# ---------------------------------------------------------------- a bad key

dkim_config junk junk.pem tlsrpt
JUNK_LINE=$(line_of "$W/junk.ini" dkim_key)
"$MXTLS" -t -c "$W/junk.ini" >"$W/junk.out" 2>&1
rc=$?
check "mxtls -t: a dkim_key that is no key is an error of its line (exit $rc)" sh -c \
	"[ $rc -eq 1 ] && grep -qxF '$W/junk.ini:$JUNK_LINE: [report] dkim_key: $W/keys/junk.pem: not a PEM private key (unencrypted RSA or Ed25519)' '$W/junk.out' || { cat '$W/junk.out'; exit 1; }"
"$MXTLS" -c "$W/junk.ini" >"$W/junk.start" 2>&1
rc=$?
check "... and mxtls does not start with it (exit $rc)" sh -c \
	"[ $rc -eq 1 ] && grep -qF '$W/junk.ini:$JUNK_LINE: [report] dkim_key: ' '$W/junk.start' || { cat '$W/junk.start'; exit 1; }"

# ---------------------------------------------------------------- day D

dkim_config nokey
rt_mxtls_start "$(next_day_at -43200)" || finish
pol_send "$W/smtp.1" r1@good.test
check "D: good.test delivered over TLS (counted)" reply_is "$W/smtp.1" DOT '^250 '
sleep 2 # the counts reach the journal within a second

# ---------------------------------------------------------------- D+1

export MXTLS_TLSRPT_WINDOW=0 MXTLS_TLSRPT_RETRY=1
rt_mxtls_restart "$(next_day_at -40)" || finish
OFF2=$RT_OFFSET
check "without dkim_key nor submit: the unsigned warning" grep_since "$MXTLS_LOG" 0 \
	'level=warn event=tlsrpt-mailto-unsigned '
dkim_config ed ed.pem ed
M=$(log_mark "$MXTLS_LOG")
kill -HUP "$MXTLS_PID"
check "SIGHUP: the config with the Ed25519 key is taken" grep_since "$MXTLS_LOG" "$M" 'event=reloaded ' 10
dkim_config rootonly root-only.pem ed
ROOT_LINE=$(line_of "$W/rootonly.ini" dkim_key)
M=$(log_mark "$MXTLS_LOG")
kill -HUP "$MXTLS_PID"
check "SIGHUP: a key the mxtls user cannot read is refused at its line, the old config kept" \
	grep_since "$MXTLS_LOG" "$M" \
	"event=reload-failed .*$RT_CONF:$ROOT_LINE: \\[report\\] dkim_key: $W/keys/root-only\\.pem: Permission denied" 10
check "midnight: the report of $D is mailed" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-sent day=$D domain=good\\.test rua=mailto:tlsrpt@good\\.test attempt=1 via=127\\.0\\.0\\.1" 60
check "Postfix V got it" mx_wait_rcpt V tlsrpt@good.test 1 30
ED_MAIL=$(mx_mail V tlsrpt@good.test | sed -n 1p)
check "python3-dkim: the report of $D verifies, ed25519-sha256, s=ed, the key record of dnsmasq" \
	dkim_check "${ED_MAIL:-/nonexistent}" "$OFF2" ed25519-sha256 ed
check "... a byte of its text changed: it does not" dkim_check "${ED_MAIL:-/nonexistent}" "$OFF2" ed25519-sha256 ed body
check "... TLS-Report-Domain changed: it does not" dkim_check "${ED_MAIL:-/nonexistent}" "$OFF2" ed25519-sha256 ed header
check "... a second From on top: it does not" dkim_check "${ED_MAIL:-/nonexistent}" "$OFF2" ed25519-sha256 ed from
pol_send "$W/smtp.2" r2@good.test
check "D+1: good.test delivered (counted)" reply_is "$W/smtp.2" DOT '^250 '
sleep 2

# ---------------------------------------------------------------- D+2

D1=$(date -u -d "$D +1 day" +%F)
dkim_config rsa rsa.pem rsa
rt_mxtls_restart "$(next_day_at $((86400 - 20)))" || finish
OFF3=$RT_OFFSET
check "with dkim_key: no unsigned warning" no_grep_since "$MXTLS_LOG" 0 'event=tlsrpt-mailto-unsigned '
check "midnight: the report of $D1 is mailed" grep_since "$MXTLS_LOG" 0 \
	"event=tlsrpt-sent day=$D1 domain=good\\.test rua=mailto:tlsrpt@good\\.test attempt=1 " 45
check "Postfix V got it" mx_wait_rcpt V tlsrpt@good.test 2 30
RSA_MAIL=$(mx_mail V tlsrpt@good.test | sed -n 2p)
check "python3-dkim: the report of $D1 verifies, rsa-sha256 (2048 bits), s=rsa" \
	dkim_check "${RSA_MAIL:-/nonexistent}" "$OFF3" rsa-sha256 rsa
check "... a byte of its text changed: it does not" dkim_check "${RSA_MAIL:-/nonexistent}" "$OFF3" rsa-sha256 rsa body
check "... TLS-Report-Domain changed: it does not" dkim_check "${RSA_MAIL:-/nonexistent}" "$OFF3" rsa-sha256 rsa header
mxtls_stop
finish
