#!/usr/bin/env python3
"""Reproduce the post-handshake delayed-ACK stall that mxtls hits with full
(not resumed) upstream TLS handshakes against Postfix.

The client goes through EHLO and STARTTLS, then does a full TLS handshake and
sends EHLO straight after its Finished (as mxtls does), and times the reply
to that EHLO. Postfix writes its session ticket and its EHLO reply as two
segments. Nagle holds the second until the client ACKs the first, and the
client's kernel delays that ACK by 40 ms, because the client has already
sent what it had to send. With "quickack", TCP_QUICKACK is set before every
read and the stall goes away.

Usage: stall_probe.py PORT CA_FILE [COUNT]
Against the benchmark's Postfix sink: BENCH_HOLD=1 sh tests/bench/run.sh
prints its port; CA_FILE is build/bench/pki/test-root-ca.pem.
"""
import socket
import ssl
import statistics
import sys
import time


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def once(port, ctx, quick):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO probe.test\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\n")
    reply(f)
    f.close()
    t0 = time.perf_counter()
    ts = ctx.wrap_socket(s, server_hostname="mx.example.test")
    ts.sendall(b"EHLO probe.test\r\n")
    buf = b""
    while b"\r\n250 " not in b"\r\n" + buf:
        if quick:
            ts.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        d = ts.recv(4096)
        if not d:
            raise ConnectionError("connection closed")
        buf += d
    ms = (time.perf_counter() - t0) * 1000
    ts.close()
    return ms


def main():
    port, ca = int(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for quick in (False, True):
        ms = [once(port, ctx, quick) for _ in range(n)]
        print("%-9s handshake + EHLO: median %.1f ms, max %.1f ms, %d of %d over 30 ms" % (
            "quickack" if quick else "plain", statistics.median(ms), max(ms),
            sum(1 for x in ms if x > 30), n))


if __name__ == "__main__":
    main()
