#!/usr/bin/env python3
"""A storm of TLS failures against mxtls while a healthy session is timed.
Used by tests/integration/test_state_scale.sh and the bench (W5).

  storm.py seed DIR N NOW
      write DIR/retry-state (format version 2) with N records that do not
      expire for an hour after NOW (seconds since the epoch) and that no
      delivery of the storm touches
  storm.py config N PORT
      print the [match] sections of the storm: domain dI.storm.test
      (I = 0..N-1) goes to the literal next hop addr(I):PORT under the
      mandatory profile
  storm.py server N PORT
      an SMTP server without STARTTLS on addr(0..N-1):PORT (loopback
      addresses 127.0.1.1, 127.0.1.2, ...); prints "listening", serves
      until stdin closes; at nice 10, as the storm
  storm.py run HOST:PORT FIRST N PAR [JSON]
      a prober process keeps one session at HOST:PORT busy with NOOPs (one
      every 2 ms, each reply timed); meanwhile N deliveries, PAR at a time,
      to dI.storm.test (I = FIRST..FIRST+N-1) each end at RCPT, where mxtls finds no STARTTLS at
      the next hop (a TLS failure under mandatory: 451 and a new retry
      record).  The storm runs at nice 10 (the prober at the caller's
      priority).  Prints the figures; JSON: all of them to a file.  Exit 0
      when every RCPT got 451 4.7.x and every NOOP 250, 1 otherwise.

Each failure is a record of its own: the key holds the address.
"""
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

NOOP_EVERY = 0.002


def addr(i):
    return "127.0.%d.%d" % (1 + i // 250, 1 + i % 250)


def seed(d, n, now):
    with open(os.path.join(d, "retry-state"), "w") as f:
        f.write("mxtls-retry-state 2\n")
        for i in range(n):
            # 10.0.0.0/8 under a profile of their own: never a storm key;
            # failed-once a minute ago (expires after retry_delay +
            # fallback_ttl), the oldest evicted first.
            f.write("- 10.%d.%d.%d 25 seed 5eed5eed failed-once %d 0 handshake seeded\n" % (
                i >> 16, (i >> 8) & 255, i & 255, now - 60 - i % 600))


def config(n, port):
    for i in range(n):
        print("[match d%d.storm.test]\nprofile = mandatory\nnexthop = %s:%d\nmx = mx.storm.test\n" % (
            i, addr(i), port))


async def serve_one(r, w):
    w.write(b"220 storm.test ESMTP\r\n")
    try:
        while True:
            line = await r.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                w.write(b"250-storm.test\r\n250 8BITMIME\r\n")
            elif verb == b"QUIT":
                w.write(b"221 bye\r\n")
                await w.drain()
                break
            else:
                w.write(b"250 ok\r\n")
            await w.drain()
    except ConnectionError:
        pass
    w.close()


async def server(n, port):
    os.nice(10)
    for i in range(n):
        await asyncio.start_server(serve_one, addr(i), port, reuse_address=True)
    print("listening", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def probe(hp):
    """One session; a NOOP every NOOP_EVERY s until stdin closes; prints
    [[start, ms], ...] as JSON (start: CLOCK_MONOTONIC, shared by processes)."""
    host, port = hp.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO probe.test\r\n")
    reply(f)
    os.set_blocking(0, False)
    print("ready", flush=True)
    out, bad = [], 0
    while True:
        try:
            if os.read(0, 1) == b"":
                break
        except BlockingIOError:
            pass
        t0 = time.monotonic()
        s.sendall(b"NOOP\r\n")
        r = reply(f)
        out.append([t0, (time.monotonic() - t0) * 1000.0])
        if not r.startswith(b"250"):
            bad += 1
        time.sleep(NOOP_EVERY)
    s.sendall(b"QUIT\r\n")
    print(json.dumps({"samples": out, "bad": bad}), flush=True)


async def deliver(hp, i, res):
    host, port = hp.rsplit(":", 1)
    t0 = time.monotonic()
    code = "error"
    try:
        r, w = await asyncio.open_connection(host, int(port))

        async def rep():
            while True:
                line = await asyncio.wait_for(r.readline(), 60)
                if not line:
                    raise ConnectionError("connection closed")
                if line[3:4] != b"-":
                    return line.decode("ascii", "replace").strip()
        await rep()
        for cmd in (b"EHLO storm.test", b"MAIL FROM:<s@sender.test>",
                    b"RCPT TO:<u@d%d.storm.test>" % i):
            w.write(cmd + b"\r\n")
            code = await rep()
        w.write(b"QUIT\r\n")
        await rep()
        w.close()
    except (OSError, ConnectionError, asyncio.TimeoutError) as e:
        code = "error: %s" % e
    res[i] = (code, (time.monotonic() - t0) * 1000.0)


async def storm(hp, first, n, par):
    res = {}
    sem = asyncio.Semaphore(par)

    async def one(i):
        async with sem:
            await deliver(hp, i, res)
    await asyncio.gather(*(one(i) for i in range(first, first + n)))
    return res


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    i = int(k)
    return xs[i] if i + 1 >= len(xs) else xs[i] + (xs[i + 1] - xs[i]) * (k - i)


def run(hp, first, n, par, jpath):
    pr = subprocess.Popen([sys.executable, __file__, "probe", hp], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE)
    if pr.stdout.readline().strip() != b"ready":
        print("the prober could not start a session")
        return 1
    # The storm at a lower priority than the prober and the proxy: on a
    # small machine it would otherwise take their CPU, and the latency
    # measured would be its own.
    os.nice(10)
    time.sleep(1.0)  # a quiet second first, for comparison
    t0 = time.monotonic()
    res = asyncio.run(storm(hp, first, n, par))
    t1 = time.monotonic()
    time.sleep(0.2)
    pr.stdin.close()
    pd = json.loads(pr.stdout.readline())
    pr.wait()
    quiet = [ms for t, ms in pd["samples"] if t < t0]
    during = [ms for t, ms in pd["samples"] if t0 <= t <= t1]
    dl = [v[1] for v in res.values()]
    codes = {}
    for c, _ in res.values():
        k = c[:9] if c[:1] == "4" or c[:1] == "2" or c[:1] == "5" else c
        codes[k] = codes.get(k, 0) + 1
    fig = {
        "failures": n, "parallel": par, "storm_s": t1 - t0,
        "delivery_median_ms": statistics.median(dl), "delivery_p99_ms": pct(dl, 99),
        "delivery_max_ms": max(dl),
        "noop_n": len(during), "noop_median_ms": statistics.median(during) if during else None,
        "noop_p99_ms": pct(during, 99) if during else None, "noop_max_ms": max(during) if during else None,
        "quiet_n": len(quiet), "quiet_median_ms": statistics.median(quiet) if quiet else None,
        "quiet_p99_ms": pct(quiet, 99) if quiet else None,
        "replies": codes, "noop_bad": pd["bad"],
    }
    print("storm: %d failures, %d at a time, in %.2f s; RCPT replies %s" % (
        n, par, fig["storm_s"], ", ".join("%s x%d" % kv for kv in sorted(codes.items()))))
    print("storm: delivery (connect to RCPT reply) median %.1f ms, p99 %.1f ms, max %.1f ms" % (
        fig["delivery_median_ms"], fig["delivery_p99_ms"], fig["delivery_max_ms"]))
    if during:
        print("storm: healthy session NOOP during the storm (%d replies): median %.2f ms, p99 %.2f ms, "
              "max %.2f ms" % (len(during), fig["noop_median_ms"], fig["noop_p99_ms"], fig["noop_max_ms"]))
    if quiet:
        print("storm: the same before it (%d replies): median %.2f ms, p99 %.2f ms" % (
            len(quiet), fig["quiet_median_ms"], fig["quiet_p99_ms"]))
    if jpath:
        with open(jpath, "w") as f:
            json.dump(fig, f)
    ok = codes.get("451 4.7.5", 0) == n and pd["bad"] == 0 and during
    return 0 if ok else 1


def main():
    a = sys.argv[1:]
    if a[:1] == ["seed"] and len(a) == 4:
        seed(a[1], int(a[2]), int(a[3]))
    elif a[:1] == ["config"] and len(a) == 3:
        config(int(a[1]), int(a[2]))
    elif a[:1] == ["server"] and len(a) == 3:
        asyncio.run(server(int(a[1]), int(a[2])))
    elif a[:1] == ["probe"] and len(a) == 2:
        probe(a[1])
    elif a[:1] == ["run"] and len(a) in (5, 6):
        sys.exit(run(a[1], int(a[2]), int(a[3]), int(a[4]), a[5] if len(a) == 6 else None))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
