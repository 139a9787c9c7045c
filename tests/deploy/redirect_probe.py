#!/usr/bin/env python3
"""TCP endpoints for tests/deploy/test_redirect.sh (run inside a test netns).

  redirect_probe.py serve ADDR PORT LOG [SECONDS]
      Listen on ADDR:PORT (IPv6 only for an IPv6 ADDR); for every connection
      read one line (the client's token) and append to LOG
      "TOKEN local=ADDR:PORT peer=ADDR orig=ADDR:PORT", where orig is the
      original destination that SO_ORIGINAL_DST (IPv4) or
      IP6T_SO_ORIGINAL_DST (IPv6) gives, "-" when there is none.  Writes
      "ready" to LOG once listening; exits after SECONDS (default 300).
  redirect_probe.py connect ADDR PORT TOKEN [MARK]
      Connect (with SO_MARK = MARK if given), send TOKEN and a newline.
      Exit 0 when connected, 1 when not (2 s timeout).
  redirect_probe.py smtp ADDR PORT RCPT
      An SMTP client: greeting, EHLO, MAIL, RCPT TO:<RCPT>, QUIT; prints
      every reply line.  Exit 0 when it got through to QUIT's reply.
"""
import ipaddress
import socket
import struct
import sys
import time

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is 80 too
SO_MARK = 36


def fmt(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def original_dst(conn, v6):
    try:
        if v6:
            raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            port = struct.unpack("!H", raw[2:4])[0]
            return fmt(str(ipaddress.IPv6Address(raw[8:24])), port)
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port = struct.unpack("!H", raw[2:4])[0]
        return fmt(socket.inet_ntoa(raw[4:8]), port)
    except OSError:
        return "-"


def serve(addr, port, log, seconds):
    v6 = ":" in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(16)
    s.settimeout(1.0)
    with open(log, "a") as f:
        f.write("ready\n")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn, peer = s.accept()
        except socket.timeout:
            continue
        conn.settimeout(2.0)
        token = b""
        try:
            while b"\n" not in token and len(token) < 200:
                chunk = conn.recv(200)
                if not chunk:
                    break
                token += chunk
        except OSError:
            pass
        local = conn.getsockname()
        line = "%s local=%s peer=%s orig=%s\n" % (
            token.split(b"\n")[0].decode("ascii", "replace") or "-",
            fmt(local[0], local[1]), peer[0], original_dst(conn, v6))
        conn.close()
        with open(log, "a") as f:
            f.write(line)


def connect(addr, port, token, mark):
    v6 = ":" in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    if mark is not None:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    s.settimeout(2.0)
    try:
        s.connect((addr, port))
        s.sendall(token.encode("ascii") + b"\n")
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    except OSError as e:
        print("connect %s: %s" % (fmt(addr, port), e), file=sys.stderr)
        return 1
    finally:
        s.close()
    return 0


def smtp(addr, port, rcpt):
    v6 = ":" in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.settimeout(15.0)
    try:
        s.connect((addr, port))
        f = s.makefile("rb")

        def reply(cmd):
            if cmd:
                s.sendall(cmd.encode("ascii") + b"\r\n")
            while True:
                line = f.readline()
                print(line.decode("ascii", "replace").rstrip())
                if not line or line[3:4] != b"-":
                    return
        reply(None)
        reply("EHLO mta.example")
        reply("MAIL FROM:<sender@mta.example>")
        reply("RCPT TO:<%s>" % rcpt)
        reply("QUIT")
    except OSError as e:
        print("smtp %s: %s" % (fmt(addr, port), e), file=sys.stderr)
        return 1
    finally:
        s.close()
    return 0


def main(argv):
    if len(argv) >= 4 and argv[0] == "serve":
        serve(argv[1], int(argv[2]), argv[3],
              float(argv[4]) if len(argv) > 4 else 300.0)
        return 0
    if len(argv) in (4, 5) and argv[0] == "connect":
        mark = int(argv[4], 0) if len(argv) == 5 else None
        return connect(argv[1], int(argv[2]), argv[3], mark)
    if len(argv) == 4 and argv[0] == "smtp":
        return smtp(argv[1], int(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
