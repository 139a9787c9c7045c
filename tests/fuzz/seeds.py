#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/corpus/NAME/ (small, meaningful
inputs: real replies, commands, messages, policies, configs, frames).
Files are named after what they are; existing files (crash reproducers
added by hand, named crash-*) are left alone.  Usage: seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, fname, data):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# ---- smtp_reply: what upstream servers send -------------------------
R = {
    "greeting-postfix": "220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n",
    "greeting-multiline": "220-mx.example.net ESMTP Exim 4.96\r\n"
                          "220-We do not authorize the use of this system\r\n"
                          "220 to transport unsolicited mail\r\n",
    "ehlo-postfix": "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                    "250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
                    "250-SMTPUTF8\r\n250 CHUNKING\r\n",
    "ehlo-exim": "250-mx.example.net Hello relay.example.org [192.0.2.7]\r\n"
                 "250-SIZE 52428800\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
                 "250-PIPE_CONNECT\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
                 "250-PRDR\r\n250 HELP\r\n",
    "ehlo-o365": "250-AM0PR01CA0001.outlook.office365.com Hello [192.0.2.7]\r\n"
                 "250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n"
                 "250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n"
                 "250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n",
    "ehlo-after-tls": "250-mx.example.com\r\n250-PIPELINING\r\n"
                      "250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n"
                      "250 8BITMIME\r\n",
    "ehlo-starttls-lower": "250-mx\r\n250-starttls\r\n250-STARTTLSX\r\n"
                           "250-X-STARTTLS\r\n250 AUTH STARTTLS\r\n",
    "ehlo-size-overflow": "250-mx\r\n250-SIZE 18446744073709551616\r\n"
                          "250-SIZE -1\r\n250 SIZE abc\r\n",
    "starttls-220": "220 2.0.0 Ready to start TLS\r\n",
    "starttls-injected": "220 2.0.0 Ready to start TLS\r\n250-evil.example\r\n"
                         "250 AUTH LOGIN\r\n",
    "starttls-454": "454 4.7.0 TLS not available due to local problem\r\n",
    "mail-ok": "250 2.1.0 Ok\r\n",
    "pipelined": "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.com>: "
                 "Recipient address rejected: User unknown\r\n"
                 "354 End data with <CR><LF>.<CR><LF>\r\n",
    "queued": "250 2.0.0 Ok: queued as 4F1E2C0A3B\r\n",
    "reject-multiline": "550-5.7.1 Service unavailable; client [192.0.2.7] "
                        "blocked\r\n550-5.7.1 using zen.spamhaus.org\r\n"
                        "550 5.7.1 https://www.spamhaus.org/query/ip/192.0.2.7\r\n",
    "short-lines-cve-2020-8794": "250-mx.example\r\n250\r\n",
    "short-continuation": "250-a\r\n25\r\n",
    "empty-continuation": "250-\r\n250 \r\n",
    "inconsistent-codes": "250-first\r\n550 second\r\n",
    "bad-separator": "250xOK\r\n",
    "tab-separator": "250\tOK\r\n",
    "four-digits": "2500 OK\r\n",
    "out-of-range": "600 x\r\n",
    "leading-space": " 250 OK\r\n",
    "bare-lf": "250-mx\n250 ok\n",
    "bare-cr-inside": "250 ok\rX-Injected: 1\r\n",
    "nul-byte": "550 5.1.1 <x> unknown\x00\x1b[2J\r\n",
    "incomplete": "250-mx.example.com\r\n250-PIPE",
    "quit": "221 2.0.0 Bye\r\n",
    "421": "421 4.3.2 Service shutting down\r\n",
}
for k, v in R.items():
    put("smtp_reply", k, v)
put("smtp_reply", "many-lines", "250-x\r\n" * 70 + "250 end\r\n")
put("smtp_reply", "long-line", "250 " + "A" * 2100 + "\r\n")

# ---- smtp_command: what the MTA (or anyone) sends -------------------
C = {
    "ehlo": "EHLO client.example.org\r\n",
    "helo": "HELO client\r\n",
    "mail": "MAIL FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME\r\n",
    "mail-null": "MAIL FROM:<>\r\n",
    "mail-space": "mail from: <alice@example.org>\r\n",
    "mail-smtputf8": "MAIL FROM:<jöran@exämple.org> SMTPUTF8\r\n",
    "rcpt": "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n",
    "rcpt-source-route": "RCPT TO:<@relay.one,@relay.two:bob@example.com>\r\n",
    "rcpt-percent-hack": "RCPT TO:<bob%example.com@relay.example>\r\n",
    "rcpt-quoted-at": "RCPT TO:<\"bob@evil.example\"@example.com>\r\n",
    "rcpt-quoted-escape": "RCPT TO:<\"a\\\"b>c\"@example.com>\r\n",
    "rcpt-literal": "RCPT TO:<postmaster@[192.0.2.1]>\r\n",
    "rcpt-ipv6-literal": "RCPT TO:<postmaster@[IPv6:2001:db8::1]>\r\n",
    "rcpt-no-brackets": "RCPT TO:bob@example.com\r\n",
    "rcpt-postmaster": "RCPT TO:<Postmaster>\r\n",
    "data": "DATA\r\n",
    "bdat": "BDAT 1000 LAST\r\n",
    "starttls": "STARTTLS\r\n",
    "auth": "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
    "rset": "RSET\r\n",
    "noop-args": "NOOP   a b  \r\n",
    "quit-bare-lf": "QUIT\n",
    "vrfy": "VRFY bob\r\n",
    "ctrl": "MAIL FROM:<a\x01b@example.org>\r\n",
    "long-path": "RCPT TO:<" + "a" * 250 + "@example.com>\r\n",
}
for k, v in C.items():
    put("smtp_command", k, v)

# ---- smtp_data: message bytes after 354 -----------------------------
D = {
    "simple": "Subject: hello\r\nFrom: a@example.org\r\n\r\nbody\r\n.\r\n",
    "pipelined-after": "Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@b.example>\r\n"
                       "RCPT TO:<c@d.example>\r\nDATA\r\n",
    "empty": ".\r\n",
    "dot-stuffed": "Subject: dots\r\n\r\n..leading dot\r\n...\r\n.\r\n",
    "smuggle-lf-dot-lf": "Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@example>\n.\r\n",
    "smuggle-lf-dot-crlf": "hi\n.\r\nMAIL FROM:<evil@example>\r\n\r\n.\r\n",
    "smuggle-crlf-dot-lf": "hi\r\n.\nMAIL FROM:<evil@example>\r\n.\r\n",
    "smuggle-cr-dot-cr": "hi\r.\rMAIL FROM:<evil@example>\r\n.\r\n",
    "smuggle-crlf-dot-cr": "hi\r\n.\rRCPT TO:<x@y>\r\n.\r\n",
    "bare-cr": "line\rmore\r\n.\r\n",
    "bare-lf": "line\nmore\r\n.\r\n",
    "no-end": "Subject: x\r\n\r\nunfinished\r\n.",
    "no-end-cr": "Subject: x\r\n\r\nunfinished\r\n.\r",
    "crlf-only": "\r\n\r\n\r\n.\r\n",
}
for k, v in D.items():
    put("smtp_data", k, v)
put("smtp_data", "long-line", "X" * 1200 + "\r\n.\r\n")
put("smtp_data", "line-998", "Y" * 998 + "\r\n" + "Z" * 999 + "\r\n.\r\n")

# ---- smtp_normalise: message bytes rewritten (bare_line_endings) ----
for k, v in D.items():
    put("smtp_normalise", k, v)
for k, v in {
    "lone-dot-lf": "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
    "bare-lf-dot-line": "a\n.x\n..\n.\r\n.\r\n",
    "dot-cr-dot": ".\r.\r\n\r.\r\n.\r\n",
    "cr-runs": "a\r\r\r\nb\r\r\n\n\r\n.\r\n",
    "held-cr": "x\r\n.\r",
    "dot-held-cr": "x\n.\r",
    "two-messages": "a\r\n.\r\n.\r\nb\n.\n\r\n.\r\n",
}.items():
    put("smtp_normalise", k, v)
put("smtp_normalise", "line-998-stuffed", "x\r\n." + "a" * 997 + "\r\n.\r\n")
put("smtp_normalise", "line-999-dot-added", "xx\n." + "a" * 997 + "\r\n.\r\n")
put("smtp_normalise", "long-no-end", "x\r\n." + "a" * 1000 + "\r")
put("smtp_normalise", "long-by-bare-cr",
    "x\r\n." + "a" * 996 + "\r\rb\r\n.\r\n")
for k, v in {"cr": "\r", "lf-lf": "\n\n", "lf-nul": "\n\x00",
             "ctl": "\x1f\t"}.items():
    put("smtp_normalise", k, v)

# ---- config ---------------------------------------------------------
put("config", "example", """; mxtls example configuration
[proxy]
listen = 127.0.0.1:10025
allow_clients = 127.0.0.0/8, ::1/128
max_sessions = 1000
state_dir = state
log_format = logfmt
log_level = info
mode = relay
admin_listen = 127.0.0.1:9925
max_sessions_per_client = 100
drain_timeout = 30

[dns]
; servers = 127.0.0.1:53

[tls]
ca_bundle = ca.pem
min_version = 1.2
max_version = 1.3

[policy]
default = opportunistic
retry_delay = 300
fallback_ttl = 3600
""")
put("config", "full", """; every key, with a value other than its default
[proxy]
listen = [::1]:2525
hostname = relay.example.org
allow_clients = 10.0.0.0/8 192.168.1.7,
    2001:db8::/32 ; the office
    ; a comment inside the list

    172.16.0.0/12,
max_sessions = 50
state_dir = state
log_format = json
log_level = debug
max_bad_commands = 3
max_message_size = 10m
connect_timeout = 1.5
greeting_timeout = 2
command_timeout = 3
tls_timeout = 4
data_init_timeout = 5
data_block_timeout = 6
data_done_timeout = 7
client_timeout = 8

[dns]
servers = 192.0.2.53, [2001:db8::53]:5353
  2001:db8::54 198.51.100.53:5300
timeout = 2.5

[tls]
ca_bundle = ca.pem
min_version = 1.1
max_version = 1.2
ciphers = ECDHE+AESGCM:ECDHE+CHACHA20

[policy]
default = partners
retry_delay = 60
fallback_ttl = 7200
mta_sts = on
mta_sts_wait = 5
mta_sts_ca_bundle = ca.pem
policy_url = https://policy.example.org/mxtls.ini
https_ca_bundle = ca.pem
signing_key = 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
policy_refresh = 600

[match partner.example]
profile = partners
nexthop = [2001:db8::25]:2525
mx = mx1.partner.example,
     *.mx.partner.example

[profile partners]
tls = mandatory
verify = strict
min_version = 1.2
ciphers = ECDHE+AESGCM
ca_bundle = sub/../ca.pem

[profile opportunistic]
verify = none

[match Someone@Example.COM]
profile = mandatory

[match bücher.example]
profile = mandatory
mx = mx.bücher.example
""")
put("config", "errors", """[proxy]
listen = localhost:10025
allow_clients = 10.1.2.3/8
max_sessions = ten
[tls]
min_version = 1.3
max_version = 1.2
[match *]
profile = nonexistent
[bogus]
key = value
""")
put("config", "crlf-bom", "\ufeff[tls]\r\nca_bundle = ca.pem\r\n[match *]\r\nprofile: mandatory\r\n")

# ---- document -------------------------------------------------------
put("document", "valid", """; the central policy
[document]
serial = 2024061501

[profile bank]
tls = mandatory
min_version = 1.3
mx = mx1.bank.example,
     mx2.bank.example ; inline comment
\t*.mx.bank.example
# a comment between sections
[match bank.example]
profile = bank
[match User@Example.COM.]
profile: mandatory
nexthop = relay.example:2525
""")
put("document", "crlf-bom", "\ufeff[document]\r\nserial: 7\r\n\r\n[ profile  p ]\r\n"
    "verify=none\r\n[match *]\r\nprofile = p")
put("document", "downgrade-attempt", """[document]
serial = 9
[profile weak]
tls = opportunistic
verify = none
[match bank.example]
profile = weak
[profile mandatory]
tls = off
""")
put("document", "errors", """[document]
serial = 99999999999999999999
[profile]
[match ]
profile = x
key outside
[document]
serial = 1
""")
put("document", "idn", """[document]
serial = 3
[match bücher.example]
profile = mandatory
[match *.xn--bcher-kva.example]
profile = mandatory
""")

# ---- mtasts_txt: TXT records, one per line --------------------------
T = {
    "valid": "v=STSv1; id=20160831085700Z;",
    "valid-ext": "v=STSv1;id=abc123;ext-name=some.value",
    "two-records": "v=STSv1; id=1\nv=STSv1; id=2",
    "other-records": "v=spf1 -all\ngoogle-site-verification=abc\nv=STSv1; id=x1",
    "no-id": "v=STSv1;",
    "long-id": "v=STSv1; id=" + "a" * 33,
    "bad-id": "v=STSv1; id=abc-def",
    "not-sts": "v=STSv10; id=1",
    "spaces": "v=STSv1 ;  id=20190429T010101 ;  ",
}
for k, v in T.items():
    put("mtasts_txt", k, v)

# ---- tlsrpt_txt: _smtp._tls TXT records, one per line ---------------
T = {
    "valid": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
    "two-uris": "v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/v1;",
    "spaces-ext": "v=TLSRPTv1 ;\trua=mailto:a@example.com , https://r.example/ ; x.y-1=v ;",
    "other-scheme": "v=TLSRPTv1; rua=ftp://x.example/r,MAILTO:b@example.com",
    "only-other-scheme": "v=TLSRPTv1; rua=ftp://x.example/r",
    "two-records": "v=TLSRPTv1; rua=mailto:a@x.example\nv=TLSRPTv1; rua=mailto:b@x.example",
    "other-records": "v=spf1 -all\nv=TLSRPTv1; rua=mailto:a@x.example",
    "no-rua": "v=TLSRPTv1;",
    "two-rua": "v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example",
    "not-tlsrpt": "v=TLSRPTv10; rua=mailto:a@x.example",
    "empty-uri": "v=TLSRPTv1; rua=mailto:a@x.example,",
    "many-uris": "v=TLSRPTv1; rua=" + ",".join("mailto:r%d@x.example" % i for i in range(12)),
    "mailto-escapes": "v=TLSRPTv1; rua=mailto:a%0D%0ARCPT%20TO:%3Cx@y%3E@b.test,"
                      "mailto:r%2Bx@example.com?subject=x,mailto:%40@x,mailto:a@b@c",
}
for k, v in T.items():
    put("tlsrpt_txt", k, v)

# ---- mtasts_policy --------------------------------------------------
P = {
    "enforce": "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
               "mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
    "testing-crlf": "version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\n"
                    "max_age: 86400\r\n",
    "none": "version: STSv1\nmode: none\nmax_age: 0\n",
    "capped": "version: STSv1\nmode: enforce\nmx: MX.Example.COM.\n"
              "max_age: 9999999999\n",
    "idn": "version: STSv1\nmode: enforce\nmx: mx.bücher.example\nmax_age: 3600\n",
    "repeated": "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\n"
                "mx: a.example\nmax_age: 1\nmax_age: 2\nextension: yes\n",
    "bad-wildcard": "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 1\n",
    "no-mx": "version: STSv1\nmode: enforce\nmax_age: 86400\n",
    "whitespace": "  version :  STSv1  \n\n\tmode:enforce\nmx:\t*.example.com \nmax_age: 86400",
}
for k, v in P.items():
    put("mtasts_policy", k, v)

# ---- fetchproto: payloads (the harness adds the length prefix) ------
def field(tag, val):
    return struct.pack(">BI", tag, len(val)) + val


def u32(v):
    return struct.pack(">I", v)


req = (b"\x01\x01" + field(1, u32(7)) +
       field(2, b"https://mta-sts.example.com/.well-known/mta-sts.txt") +
       field(3, bytes([192, 0, 2, 10])) +
       field(3, bytes.fromhex("20010db8000000000000000000000010")) +
       field(5, u32(65536)) + field(6, u32(10000)) + field(7, u32(30000)) +
       field(10, u32(1)))
put("fetchproto_request", "mta-sts", req)
req2 = (b"\x01\x01" + field(1, u32(8)) +
        field(2, b"https://policy.example.org/mxtls.ini") +
        field(3, bytes([198, 51, 100, 7])) +
        field(4, b"/etc/mxtls/policy-ca.pem") + field(5, u32(4194304)) +
        field(6, u32(5000)) + field(7, u32(60000)) +
        field(8, b'"5f3e-1a2b"') +
        field(9, b"Sat, 15 Jun 2024 10:00:00 GMT"))
put("fetchproto_request", "central-conditional", req2)
put("fetchproto_request", "header-injection",
    b"\x01\x01" + field(1, u32(9)) + field(2, b"https://p.example/x") +
    field(3, bytes(4)) + field(5, u32(1)) + field(6, u32(1)) +
    field(7, u32(1)) + field(8, b"a\r\nX-Evil: 1"))
put("fetchproto_request", "post-report",
    b"\x01\x01" + field(1, u32(10)) + field(2, b"https://r.example/v1") +
    field(3, bytes([192, 0, 2, 11])) + field(5, u32(65536)) +
    field(6, u32(10000)) + field(7, u32(60000)) +
    field(11, bytes.fromhex("1f8b0800000000000003abae050043bfa6a302000000")) +
    field(12, b"application/tlsrpt+gzip"))
rsp = (b"\x01\x02" + field(1, u32(7)) + field(2, u32(0)) +
       field(3, u32(200)) + field(4, b"text/plain; charset=utf-8") +
       field(5, b'"abc"') + field(6, b"Sat, 15 Jun 2024 10:00:00 GMT") +
       field(9, u32(123)) +
       field(7, b"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n"))
put("fetchproto_response", "ok", rsp)
put("fetchproto_response", "not-modified",
    b"\x01\x02" + field(1, u32(8)) + field(2, u32(1)) + field(3, u32(304)))
put("fetchproto_response", "tls-error",
    b"\x01\x02" + field(1, u32(9)) + field(2, u32(8)) +
    field(8, b"SSL certificate problem: unable to get local issuer certificate"))
put("fetchproto_response", "redirect",
    b"\x01\x02" + field(1, u32(10)) + field(2, u32(3)) + field(3, u32(301)))
put("fetchproto_response", "body-with-error",
    b"\x01\x02" + field(1, u32(11)) + field(2, u32(2)) + field(3, u32(404)) +
    field(7, b"not found"))

# ---- state: retry-state files ---------------------------------------
put("state", "two-records", "mxtls-retry-state 1\n"
    "mx.example.com 192.0.2.1 failed-once 1795428000 0 handshake x\n"
    "mx.example.com 192.0.2.2 broken 1795428000 1795431900 certificate "
    "certificate%20verify%20failed:%20unable%20to%20get%20local%20issuer\n")
put("state", "literal-nexthop", "mxtls-retry-state 1\n"
    "- 2001:db8::25 broken 1795428000 1795431900 no-starttls -\n"
    "MX2.Example.COM fe80::1%eth0 failed-once 1795428000 0 handshake %2D\n")
put("state", "empty", "mxtls-retry-state 1\n")
put("state", "bad-version", "mxtls-retry-state 2\n")
put("state", "duplicate", "mxtls-retry-state 1\n"
    "a 192.0.2.1 failed-once 1 0 handshake x\n"
    "A 192.0.2.1 failed-once 1 0 handshake y\n")
put("state", "truncated", "mxtls-retry-state 1\n"
    "a 192.0.2.1 failed-once 1 0 handshake x")
# Snapshot, then from the "mxtls-retry-journal" line on, the journal.
put("state", "v2-and-journal", "mxtls-retry-state 2\n"
    "mx.example.com 192.0.2.1 25 strict 0123abcd failed-once 1795428000 0 "
    "handshake x\n"
    "- 2001:db8::25 587 lax * broken 1795428000 1795431900 no-starttls -\n"
    "mxtls-retry-journal 1\n"
    "del mx.example.com 192.0.2.1 25 strict 0123abcd\n"
    "put mx2.example.com 192.0.2.2 25 strict 0123abcd broken 1795428000 "
    "1795431900 certificate %2D\n"
    "put mx.example.com 192.0.2.1 25 strict 0123abcd failed-once 17954")
put("state", "journal-only", "mxtls-retry-journal 1\n"
    "put a 192.0.2.1 25 p 0a failed-once 1 0 handshake x\n"
    "garbage\n"
    "put A 192.0.2.1 25 p 0a broken 1 2 handshake y\n"
    "del b 192.0.2.2 25 p 0a\n")

# ---- sts_record: MTA-STS cache files --------------------------------
put("sts_record", "enforce", "mxtls-mta-sts-cache 1\ndomain example.com\n"
    "id 20180907T090909\nfetched-at 1700000000\nexpires 1700086400\n"
    "mode enforce\nmax_age 86400\nmx mail.example.com\nmx *.example.net\n")
put("sts_record", "none", "mxtls-mta-sts-cache 1\ndomain example.org\n"
    "id a1\nfetched-at 1700000000\nexpires 1700000000\nmode none\n"
    "max_age 0\n")
put("sts_record", "bad-expires", "mxtls-mta-sts-cache 1\ndomain example.com\n"
    "id x\nfetched-at 1700000000\nexpires 1700000001\nmode testing\n"
    "max_age 0\nmx a.example\n")
put("sts_record", "idn-mx", "mxtls-mta-sts-cache 1\ndomain xn--bcher-kva.example\n"
    "id 1\nfetched-at 1\nexpires 31557601\nmode enforce\nmax_age 31557600\n"
    "mx mx.xn--bcher-kva.example\nmx MX.Example.COM.\n")

# ---- journal: state journals (proxy/journal.c) ----------------------
def jrec(op, key, value):
    fnv = 14695981039346656037
    head = ("%s %s %d" % (op, key, len(value))).encode()
    for b in head + value.encode():
        fnv = ((fnv ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%s %016x\n%s\n" % (head.decode(), fnv, value)


J = "mxtls-journal 1 mta-sts\n"
STS = ("mxtls-mta-sts-cache 1\ndomain example.com\nid 1\n"
       "fetched-at 1700000000\nexpires 1700086400\nmode enforce\n"
       "max_age 86400\nmx mail.example.com\n")
put("journal", "empty", J)
put("journal", "put-del", J + jrec("P", "example.com", STS)
    + jrec("D", "example.com", "") + jrec("P", "a.example", "x"))
put("journal", "torn", J + jrec("P", "example.com", STS)
    + jrec("P", "b.example", STS)[:40])
put("journal", "zeros", J + jrec("P", "a.example", "v") + "\0" * 64)

# ---- policy_domain: recipient domains -------------------------------
for k, v in {
    "ascii": "Example.COM", "idn": "bücher.example",
    "alabel": "xn--bcher-kva.example", "bad-alabel": "xn--zz.example",
    "mixed": "xn--bcher-kva.bücher.example", "sharp-s": "straße.example",
    "emoji": "☃.example", "trailing-dot": "example.com.",
    "fullwidth-dot": "example\uff0ecom", "long": ("a" * 63 + ".") * 4 + "com",
    "zwj": "a\u200db.example", "literal": "[192.0.2.1]",
}.items():
    put("policy_domain", k, v)
