#!/usr/bin/env python3
"""A raw-socket SMTP client for the attack tests (hostile downstream input).

usage: smtpx.py [--timeout S] [--bind ADDR] [--no-greeting] HOST:PORT STEP...

Unlike tests/integration/files/smtpc.py it can send exact bytes, drip them,
send before the greeting, and check that nothing more (or a close) comes.
It prints one line per result, "LABEL => TEXT", as smtpc does, so lib.sh's
reply_is works on its transcripts.  Reply bytes are shown escaped: \\r, \\n,
\\xNN for anything outside printable ASCII, so a NUL shows as \\x00.

Steps (ESC is a string with Python escapes: \\r \\n \\x00 ...):
  TEXT             send TEXT + CRLF, read one reply (label TEXT)
  DATA=FILE        DATA; on 354 FILE's lines as CRLF, dot-stuffed, then "."
                   (labels DATA and DOT)
  SEND=ESC         send the bytes, read nothing
  SENDF=FILE       send FILE's bytes, read nothing
  RAW=ESC          send the bytes, read one reply (label RAW)
  RAWF=FILE        send FILE's bytes, read one reply (label RAW)
  RECV=LABEL       read one reply
  SLEEP=S          wait S seconds
  QUIET=S          nothing may arrive for S seconds: "QUIET => ok", else
                   "QUIET => !!! got ..." or "QUIET => !!! closed"
  EOF=S            the server must close within S s: "EOF => closed after X s"
                   (with any bytes that came first), else "EOF => !!! open"
  DRIP=I:MAX:ESC   send ESC one byte every I seconds for at most MAX seconds
                   (all sent, wait for a reply until MAX seconds are over);
                   stops when the server says something or closes:
                   "DRIP => server spoke after X s (N bytes sent): REPLY; closed|open"
                   or "DRIP => !!! still open after X s (N bytes sent)"
  PIPE=N:ESC       ESC (a command line, CRLF added) N times in one write, from
                   a thread; then read N replies: "PIPE => replies=K codes=250:N
                   ... order=ok|... end=open|closed"
  PIPEX=ESC        send the bytes in one write, then read replies until 1.5 s
                   of quiet: one "PIPEX#k => reply" line each, then
                   "PIPEX => replies=K end=open|closed"
The greeting is labelled CONNECT (with --no-greeting it is read only by an
explicit RECV=CONNECT).  Exit 0 when the script ran to its end, 2 on a
connection error or timeout ("LABEL => !!! why").
"""
import select
import socket
import sys
import threading
import time


def esc(s):
    return s.encode("latin-1").decode("unicode_escape").encode("latin-1")


def printable(b, limit=600):
    out = []
    for c in b[:limit]:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        else:
            out.append("\\x%02x" % c)
    if len(b) > limit:
        out.append("...[%d bytes]" % len(b))
    return "".join(out)


class Conn:
    def __init__(self, sock, timeout):
        self.s = sock
        self.buf = b""
        self.timeout = timeout
        self.eof = False

    def fill(self, timeout):
        r, _, _ = select.select([self.s], [], [], timeout)
        if not r:
            return False
        try:
            d = self.s.recv(1 << 20)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                raise EOFError("connection closed by server")
            left = end - time.monotonic()
            if left <= 0 or not self.fill(left):
                if self.eof:
                    raise EOFError("connection closed by server")
                if time.monotonic() >= end:
                    raise TimeoutError("timed out")
        i = self.buf.index(b"\n")
        l, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return l

    def reply(self, timeout=None):
        lines = []
        while True:
            l = self.line(timeout or self.timeout)
            lines.append(l)
            t = l.rstrip(b"\r\n")
            if len(t) < 4 or t[3:4] != b"-" or len(lines) > 10000:
                return lines


def show(label, lines):
    first = printable(lines[0].rstrip(b"\r\n"))
    rest = " / ".join(printable(l.rstrip(b"\r\n")[4:]) for l in lines[1:])
    print("%s => %s" % (label, first + (" / " + rest if rest else "")), flush=True)
    return lines[0][:3].decode("latin-1")


def stuff(data):
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    out = []
    for line in data.split(b"\r\n")[:-1]:
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out) + b".\r\n"


def sender(sock, data, err):
    try:
        sock.sendall(data)
    except OSError as e:
        err.append(str(e))


def main():
    args = sys.argv[1:]
    timeout = 10.0
    bind = None
    greeting = True
    while args and args[0].startswith("--"):
        if args[0] == "--timeout":
            timeout = float(args[1])
            args = args[2:]
        elif args[0] == "--bind":
            bind = args[1]
            args = args[2:]
        elif args[0] == "--no-greeting":
            greeting = False
            args = args[1:]
        else:
            print(__doc__, file=sys.stderr)
            return 64
    if not args:
        print(__doc__, file=sys.stderr)
        return 64
    host, _, port = args[0].rpartition(":")
    label = "CONNECT"
    try:
        s = socket.create_connection((host, int(port)), timeout=timeout,
                                     source_address=(bind, 0) if bind else None)
        c = Conn(s, timeout)
        if greeting:
            show(label, c.reply())
        for step in args[1:]:
            key, sep, val = step.partition("=")
            if not sep or key not in ("DATA", "SEND", "SENDF", "RAW", "RAWF", "RECV", "SLEEP",
                                      "QUIET", "EOF", "DRIP", "PIPE", "PIPEX"):
                label = step
                s.sendall(step.encode("utf-8") + b"\r\n")
                show(label, c.reply())
            elif key == "DATA":
                label = "DATA"
                s.sendall(b"DATA\r\n")
                if show(label, c.reply()) != "354":
                    continue
                label = "DOT"
                with open(val, "rb") as f:
                    s.sendall(stuff(f.read()))
                show(label, c.reply())
            elif key in ("SEND", "SENDF", "RAW", "RAWF"):
                label = "RAW" if key.startswith("RAW") else key
                if key.endswith("F"):
                    with open(val, "rb") as f:
                        data = f.read()
                else:
                    data = esc(val)
                s.sendall(data)
                if key.startswith("RAW"):
                    show(label, c.reply())
            elif key == "RECV":
                label = val
                show(label, c.reply())
            elif key == "SLEEP":
                time.sleep(float(val))
            elif key == "QUIET":
                label = "QUIET"
                end = time.monotonic() + float(val)
                while not c.buf and not c.eof and time.monotonic() < end:
                    c.fill(max(0.0, end - time.monotonic()))
                if c.buf:
                    print("QUIET => !!! got %s" % printable(c.buf), flush=True)
                    c.buf = b""
                elif c.eof:
                    print("QUIET => !!! closed", flush=True)
                else:
                    print("QUIET => ok", flush=True)
            elif key == "EOF":
                label = "EOF"
                t0 = time.monotonic()
                end = t0 + float(val)
                while not c.eof and time.monotonic() < end:
                    c.fill(max(0.0, end - time.monotonic()))
                got = (" after %s" % printable(c.buf)) if c.buf else ""
                c.buf = b""
                if c.eof:
                    print("EOF => closed after %.1f s%s" % (time.monotonic() - t0, got), flush=True)
                else:
                    print("EOF => !!! open after %.1f s%s" % (time.monotonic() - t0, got), flush=True)
            elif key == "DRIP":
                label = "DRIP"
                iv, mx, data = val.split(":", 2)
                data = esc(data)
                t0 = time.monotonic()
                n = 0
                spoke = False
                while n < len(data) and time.monotonic() - t0 < float(mx):
                    try:
                        s.sendall(data[n:n + 1])
                    except OSError:
                        break
                    n += 1
                    if c.fill(float(iv)) or c.eof:
                        spoke = True
                        break
                # All sent: the reply may take longer than one interval.
                if not spoke and not c.eof and n == len(data):
                    spoke = c.fill(max(0.0, float(mx) - (time.monotonic() - t0))) or c.eof
                if spoke or c.eof:
                    # Whatever else comes with it, and whether it closes.
                    end = time.monotonic() + 2
                    while not c.eof and time.monotonic() < end:
                        c.fill(max(0.0, end - time.monotonic()))
                    print("DRIP => server spoke after %.1f s (%d bytes sent): %s; %s" % (
                        time.monotonic() - t0, n, printable(c.buf) or "(nothing)",
                        "closed" if c.eof else "open"), flush=True)
                    c.buf = b""
                else:
                    print("DRIP => !!! still open after %.1f s (%d bytes sent), no reply" % (
                        time.monotonic() - t0, n), flush=True)
            elif key == "PIPE":
                label = "PIPE"
                k, _, line = val.partition(":")
                k = int(k)
                line = esc(line)
                if not line.endswith(b"\n"):
                    line += b"\r\n"
                err = []
                t = threading.Thread(target=sender, args=(s, line * k, err), daemon=True)
                t.start()
                codes = {}
                order = "ok"
                got = 0
                first = None
                try:
                    while got < k:
                        r = c.reply(timeout)
                        code = r[0][:3].decode("latin-1")
                        if first is None:
                            first = printable(r[0].rstrip(b"\r\n"))
                        codes[code] = codes.get(code, 0) + 1
                        got += 1
                except (EOFError, TimeoutError) as e:
                    order = "stopped: %s" % e
                t.join(5)
                # Anything beyond the K replies?
                extra = b""
                end = time.monotonic() + 1
                while not c.eof and time.monotonic() < end:
                    c.fill(max(0.0, end - time.monotonic()))
                extra, c.buf = c.buf, b""
                print("PIPE => replies=%d codes=%s first=%s %s end=%s%s%s" % (
                    got, ",".join("%s:%d" % kv for kv in sorted(codes.items())), first,
                    "order=ok" if order == "ok" else order, "closed" if c.eof else "open",
                    (" extra=" + printable(extra, 200)) if extra else "",
                    (" send-error=" + err[0]) if err else ""), flush=True)
            elif key == "PIPEX":
                data = esc(val)
                s.sendall(data)
                k = 0
                while True:
                    try:
                        r = c.reply(1.5)
                    except TimeoutError:
                        break
                    except EOFError:
                        break
                    k += 1
                    show("PIPEX#%d" % k, r)
                print("PIPEX => replies=%d end=%s" % (k, "closed" if c.eof else "open"), flush=True)
        s.close()
    except (OSError, EOFError, ValueError, TimeoutError) as e:
        print("%s => !!! %s" % (label, e), flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
