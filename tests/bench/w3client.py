#!/usr/bin/env python3
"""W3 client: open N SMTP sessions to a proxy, take each one through EHLO,
MAIL and RCPT (so that the proxy holds its upstream TLS session: mxtls opens
it at the first RCPT), then hold them all open, idle.

Usage: w3client.py PORT N [CONCURRENCY] [TIMEOUT]
Prints one line when every session is set up or the time is up:
    ready ok=N err=0 secs=S
    failed ok=K err=E secs=S first="what went wrong first"
then holds the sessions until its stdin is closed, sends nothing more, and
closes them all.
"""
import asyncio
import sys
import time


async def reply(reader):
    """One SMTP reply (possibly multiline); returns its last line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return line.decode("latin-1").rstrip()


async def setup(port, i, sem, held, errors):
    async with sem:
        step = "connect"
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
            step = "banner"
            r = await reply(reader)
            for cmd, want in ((b"EHLO client.bench.test", "250"),
                              (b"MAIL FROM:<bench@sender.test>", "250"),
                              (b"RCPT TO:<idle%d@example.test>" % i, "250")):
                step = cmd.split()[0].decode()
                if not r.startswith("250" if step != "EHLO" else "220"):
                    raise RuntimeError("unexpected reply %r" % r)
                writer.write(cmd + b"\r\n")
                await writer.drain()
                r = await reply(reader)
            if not r.startswith("250"):
                raise RuntimeError("RCPT: unexpected reply %r" % r)
            held.append(writer)
        except Exception as e:  # noqa: BLE001 - every failure is counted
            errors.append("session %d at %s: %s" % (i, step, e or type(e).__name__))


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 120
    sem = asyncio.Semaphore(conc)
    held, errors = [], []
    t0 = time.monotonic()
    tasks = [asyncio.create_task(setup(port, i, sem, held, errors)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for t in pending:
        t.cancel()
    secs = time.monotonic() - t0
    if len(held) == n:
        print("ready ok=%d err=0 secs=%.1f" % (n, secs), flush=True)
    else:
        first = errors[0] if errors else "%d sessions not set up within %.0f s" % (len(pending), limit)
        print("failed ok=%d err=%d secs=%.1f first=%r" % (len(held), n - len(held), secs, first),
              flush=True)
    # Hold until told to stop (stdin closed).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for w in held:
        try:
            w.close()
        except Exception:  # noqa: BLE001
            pass
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
