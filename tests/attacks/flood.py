#!/usr/bin/env python3
"""Open many SMTP connections and leave them idle (connection flood, I-03).

usage: flood.py HOST:PORT N [--hold S] [--greet-wait S] [--ready FILE]

Opens N connections (sequentially, each connect bounded by 3 s, all of
them within 150 s: a busy machine is slow), then waits up to --greet-wait seconds (default 5) for
the first line on each and classifies it.  Then it writes FILE (--ready)
and keeps every connection open and silent for --hold seconds (default 0),
noting which ones the server closes and what it said before closing.
Prints (one line each):
  connected=K refused=R
  greeting 220=A 421=B 554=C other=D none=E closed=F   (first line on each)
  first-421: TEXT                                        (an example)
  hold S s: closed_by_server=G timeout_421=H still_open=I
Loopback only; every socket is closed at the end.
"""
import os
import resource
import selectors
import socket
import sys
import time


def main():
    a = sys.argv[1:]
    if len(a) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    host, _, port = a[0].rpartition(":")
    n = int(a[1])
    hold = 0.0
    greet_wait = 5.0
    ready = None
    i = 2
    while i < len(a):
        if a[i] == "--hold":
            hold = float(a[i + 1])
        elif a[i] == "--greet-wait":
            greet_wait = float(a[i + 1])
        elif a[i] == "--ready":
            ready = a[i + 1]
        else:
            print(__doc__, file=sys.stderr)
            return 64
        i += 2
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        print("flood.py: loopback only", file=sys.stderr)
        return 64
    # One descriptor per connection: take what the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks = []
    refused = 0
    t_end = time.monotonic() + 150
    for _ in range(n):
        if time.monotonic() > t_end:
            break
        try:
            s = socket.create_connection((host, int(port)), timeout=3)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    print("connected=%d refused=%d" % (len(socks), refused), flush=True)

    sel = selectors.DefaultSelector()
    bufs = {}
    closed = set()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""

    def pump(until, stop_when_all_have_line):
        while time.monotonic() < until:
            if stop_when_all_have_line and all(b"\n" in bufs[s] or s in closed for s in socks):
                return
            ev = sel.select(timeout=min(0.5, max(0.0, until - time.monotonic())))
            for key, _ in ev:
                s = key.fileobj
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if d:
                    bufs[s] += d
                else:
                    closed.add(s)
                    sel.unregister(s)

    pump(time.monotonic() + greet_wait, True)
    cls = {"220": 0, "421": 0, "554": 0, "other": 0, "none": 0, "closed": 0}
    first421 = None
    greeted = {}
    for s in socks:
        b = bufs[s]
        if b"\n" in b:
            code = b[:3].decode("latin-1")
            if code == "421" and first421 is None:
                first421 = b.split(b"\r\n")[0].decode("latin-1", "replace")
            cls[code if code in cls else "other"] += 1
            greeted[s] = code
        elif s in closed:
            cls["closed"] += 1
        else:
            cls["none"] += 1
    print("greeting " + " ".join("%s=%d" % kv for kv in cls.items()), flush=True)
    if first421:
        print("first-421: %s" % first421, flush=True)
    if ready:
        with open(ready + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(ready + ".tmp", ready)
    if hold > 0:
        before = set(closed)
        for s in socks:
            bufs[s] = b"" if greeted.get(s) else bufs[s]
        pump(time.monotonic() + hold, False)
        newly = [s for s in socks if s in closed and s not in before]
        t421 = sum(1 for s in newly if b"421" in bufs[s])
        print("hold %g s: closed_by_server=%d timeout_421=%d still_open=%d" % (
            hold, len(newly), t421, sum(1 for s in socks if s not in closed)), flush=True)
        ex = [bufs[s] for s in newly if bufs[s]]
        if ex:
            print("first-close-text: %s" % ex[0].split(b"\r\n")[0].decode("latin-1", "replace"),
                  flush=True)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
