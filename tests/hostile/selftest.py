#!/usr/bin/env python3
"""Self-test of smtpd.py: checks every mode at the byte level with a raw
socket client (TLS through memory BIOs, so every byte is visible).

Usage: python3 tests/hostile/selftest.py [--port-base N] [--keep DIR]
Prints "ok  NAME" / "FAIL NAME" / "skip NAME: WHY" lines and ends with
"N passed, N failed".  Needs only python3 and the openssl command (for a
throwaway self-signed certificate).  Listens on 127.0.0.1, ports from
--port-base (default 2650) upwards.
"""

import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.0/1.1 on purpose

HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(HERE, "smtpd.py")
ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])

passed = failed = 0
servers = []  # every server started, stopped (by PID) at the end


def result(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok  %s" % name)
    else:
        failed += 1
        print("FAIL %s" % name)
        if detail:
            for l in str(detail).splitlines()[:20]:
                print("    " + l)
    sys.stdout.flush()


def skip(name, why):
    print("skip %s: %s" % (name, why))
    sys.stdout.flush()


class Server:
    def __init__(self, work, mode, port, extra=()):
        self.dir = os.path.join(work, mode + "-%d" % port)
        os.makedirs(self.dir)
        self.port = port
        self.log = os.path.join(self.dir, "log")
        self.md = os.path.join(self.dir, "md")
        self.pidfile = os.path.join(self.dir, "pid")
        self.p = subprocess.Popen(
            [sys.executable, SMTPD, "--listen", "127.0.0.1:%d" % port, "--mode", mode,
             "--maildir", self.md, "--log", self.log, "--pidfile", self.pidfile] + list(extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline and not os.path.exists(self.pidfile):
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.rc = self.p.poll()
        servers.append(self)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return False
        return self.p.returncode == 0

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def env(self, name):
        with open(os.path.join(self.md, name)) as f:
            return f.read()

    def files(self):
        return sorted(os.listdir(self.md)) if os.path.isdir(self.md) else []


class Client:
    """SMTP client on a raw socket; line-exact reads; TLS via memory BIOs."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.tls = None

    def recv_raw(self, timeout):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1 << 20)
        except socket.timeout:
            return None

    def _fill(self):
        if self.tls:
            while True:
                try:
                    d = self.tls.read(65536)
                    if not d:
                        raise EOFError("close_notify")
                    self.buf += d
                    return
                except ssl.SSLWantReadError:
                    self._pump()
                    d = self.s.recv(65536)
                    if not d:
                        raise EOFError("eof")
                    self.inc.write(d)
        d = self.s.recv(65536)
        if not d:
            raise EOFError("eof")
        self.buf += d

    def line(self, limit=1 << 22):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def send(self, data):
        if self.tls:
            self.tls.write(data)
            self._pump()
        else:
            self.s.sendall(data)

    def cmd(self, c):
        self.send(c + b"\r\n")
        return self.reply()

    def _pump(self):
        d = self.out.read()
        if d:
            self.s.sendall(d)

    def start_tls_objects(self, ctx=None):
        if ctx is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        return ctx.wrap_bio(self.inc, self.out, server_hostname="mx.example.test")

    def handshake(self, ctx=None, early=b""):
        """Returns (ok, error text).  `early` bytes are fed to TLS first."""
        o = self.start_tls_objects(ctx)
        if early:
            self.inc.write(early)
        self.s.settimeout(5)
        try:
            while True:
                try:
                    o.do_handshake()
                    self._pump()
                    break
                except ssl.SSLWantReadError:
                    self._pump()
                    d = self.s.recv(65536)
                    if not d:
                        self.inc.write_eof()
                    else:
                        self.inc.write(d)
        except (ssl.SSLError, OSError) as e:
            return False, str(e)
        self.tls = o
        self.buf = b""
        return True, o.version()

    def client_hello_only(self):
        """Send a ClientHello and nothing else (for the mid-handshake modes)."""
        o = self.start_tls_objects()
        try:
            o.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self._pump()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


MSG = b"Subject: selftest\r\n\r\n.leading dot\r\nbody\r\n"


def deliver(c, helo=True):
    if helo:
        c.cmd(b"EHLO client.test")
    r1 = c.cmd(b"MAIL FROM:<s@sender.test>")
    r2 = c.cmd(b"RCPT TO:<r@example.test>")
    r3 = c.cmd(b"DATA")
    c.send(b"Subject: selftest\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
    r4 = c.reply()
    return [r1[-1], r2[-1], r3[-1], r4[-1]]


def plain_fallback(srv, name):
    """A fresh connection that does not use STARTTLS must deliver."""
    try:
        c = Client(srv.port)
        c.reply()
        r = deliver(c)
        c.cmd(b"QUIT")
        c.close()
        time.sleep(0.2)
        emls = [f for f in srv.files() if f.endswith(".eml") and f[0].isdigit()]
        ok = r[3].startswith(b"250 ") and emls
        env = srv.env(emls[-1][:-4] + ".env") if emls else ""
        eml = open(os.path.join(srv.md, emls[-1]), "rb").read() if emls else b""
        raw = open(os.path.join(srv.md, emls[-1][:-4] + ".raw"), "rb").read() if emls else b""
        ok = ok and "tls: no" in env and eml == MSG and raw == MSG.replace(b"\r\n.", b"\r\n..")
        result("%s: plaintext delivery on a fresh connection is saved" % name, ok,
               "replies %r files %r env %r eml %r" % (r, srv.files(), env, eml))
    except Exception as e:
        result("%s: plaintext delivery on a fresh connection is saved" % name, False, repr(e))


def begin(port, want_starttls=True):
    c = Client(port)
    c.reply()
    ehlo = c.cmd(b"EHLO client.test")
    has = any(l[4:].upper() == b"STARTTLS" for l in ehlo)
    return c, has


def run(args, work, cert, key):
    port = args.port_base
    tlsargs = ["--cert", cert, "--key", key]

    def start(mode, extra=()):
        nonlocal port
        port += 1
        return Server(work, mode, port, extra)

    def finish(srv, name):
        ok = srv.stop()
        result("%s: SIGTERM stops it (exit 0, 'stopped', pidfile gone)" % name,
               ok and "stopped" in srv.logtext()
               and not os.path.exists(srv.pidfile), srv.logtext()[-500:])

    # ---- normal
    srv = start("normal", tlsargs)
    c, has = begin(srv.port)
    r = c.cmd(b"STARTTLS")
    ok, ver = c.handshake()
    e2 = c.cmd(b"EHLO client.test") if ok else []
    r = deliver(c, helo=False) if ok else []
    c.cmd(b"QUIT") if ok else None
    c.close()
    time.sleep(0.2)
    env = srv.env("001.env") if "001.env" in srv.files() else ""
    result("normal: STARTTLS offered, TLS 1.2-1.3 works, message saved with tls: yes",
           has and ok and ver in ("TLSv1.2", "TLSv1.3") and b"250 STARTTLS" not in b"".join(e2)
           and r and r[3].startswith(b"250 ") and "tls: yes" in env
           and "tls established %s" % ver in srv.logtext(), (ver, r, env))
    c = Client(srv.port)
    c.reply()
    c.cmd(b"EHLO x")
    c.cmd(b"STARTTLS")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pass
    ok, err = c.handshake(ctx)
    c.close()
    result("normal: refuses TLS 1.1", not ok, err)
    plain_fallback(srv, "normal")
    cnt = subprocess.run(["sh", os.path.join(HERE, "count.sh"), srv.log],
                         capture_output=True, text=True).stdout.strip()
    result("count.sh counts connections", cnt == "3", cnt)
    finish(srv, "normal")

    # ---- no-starttls
    srv = start("no-starttls", tlsargs)
    c, has = begin(srv.port)
    r = c.cmd(b"STARTTLS")
    c.close()
    result("no-starttls: EHLO without STARTTLS, STARTTLS -> 502", not has and r[-1][:3] == b"502", r)
    plain_fallback(srv, "no-starttls")
    finish(srv, "no-starttls")

    # ---- refusals and garbage
    for mode, want in (("starttls-refused-454", b"454 "), ("starttls-refused-554", b"554 ")):
        srv = start(mode)
        c, has = begin(srv.port)
        r = c.cmd(b"STARTTLS")
        c.close()
        result("%s: STARTTLS offered, answered %s" % (mode, want.decode().strip()),
               has and r[-1].startswith(want), r)
        plain_fallback(srv, mode)
        finish(srv, mode)

    srv = start("starttls-garbage")
    c, has = begin(srv.port)
    c.send(b"STARTTLS\r\n")
    l = c.line()
    c.close()
    result("starttls-garbage: answers a non-SMTP line",
           has and not l[:3].isdigit(), l)
    plain_fallback(srv, "starttls-garbage")
    finish(srv, "starttls-garbage")

    srv = start("starttls-silent")
    c, has = begin(srv.port)
    c.send(b"STARTTLS\r\n")
    d = c.recv_raw(2.0)
    result("starttls-silent: no answer in 2 s, connection still open", has and d is None, d)
    plain_fallback(srv, "starttls-silent")
    finish(srv, "starttls-silent")  # with the silent connection still open
    c.close()

    # ---- injection
    srv = start("inject-same-segment", tlsargs)
    c, has = begin(srv.port)
    c.send(b"STARTTLS\r\n")
    time.sleep(0.3)
    d = c.recv_raw(2.0)
    result("inject-same-segment: 220 and injected lines arrive in one segment",
           d == b"220 2.0.0 go ahead\r\n250-injected\r\n250 PIPELINING\r\n", d)
    ok, ver = c.handshake()  # a client that discards the injection can still do TLS
    c.close()
    result("inject-same-segment: then TLS is attempted", ok, ver)
    plain_fallback(srv, "inject-same-segment")
    finish(srv, "inject-same-segment")

    srv = start("inject-later", tlsargs)
    c, has = begin(srv.port)
    c.send(b"STARTTLS\r\n")
    t0 = time.time()
    d1 = c.recv_raw(2.0)
    d2 = c.recv_raw(2.0)
    dt = time.time() - t0
    result("inject-later: '220 go ahead' then, separately, '250 injected'",
           d1 == b"220 go ahead\r\n" and d2 == b"250 injected\r\n" and dt >= 0.04, (d1, d2, dt))
    ok, err = c.handshake(early=d2)  # a client that reads the injection as TLS
    c.close()
    result("inject-later: the injected bytes break the handshake", not ok, err)
    plain_fallback(srv, "inject-later")
    finish(srv, "inject-later")

    # ---- mid-handshake
    srv = start("handshake-stall")
    c, has = begin(srv.port)
    r = c.cmd(b"STARTTLS")
    c.client_hello_only()
    d = c.recv_raw(2.0)
    result("handshake-stall: 220, then nothing after the ClientHello",
           has and r[-1][:3] == b"220" and d is None, d)
    plain_fallback(srv, "handshake-stall")
    finish(srv, "handshake-stall")
    c.close()

    srv = start("alert")
    c, has = begin(srv.port)
    c.cmd(b"STARTTLS")
    c.client_hello_only()
    d = b""
    while True:
        x = c.recv_raw(3.0)
        if not x:
            break
        d += x
    c.close()
    result("alert: exactly 15 03 03 00 02 02 28, then EOF", d == ALERT and x == b"", (d, x))
    plain_fallback(srv, "alert")
    finish(srv, "alert")

    srv = start("close-mid-handshake")
    c, has = begin(srv.port)
    c.cmd(b"STARTTLS")
    c.client_hello_only()
    x = c.recv_raw(3.0)
    c.close()
    result("close-mid-handshake: EOF right after the ClientHello", x == b"", x)
    plain_fallback(srv, "close-mid-handshake")
    finish(srv, "close-mid-handshake")

    # ---- old TLS versions
    for mode, v, name in (("tls10-only", ssl.TLSVersion.TLSv1, "TLSv1"),
                          ("tls11-only", ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
        srv = start(mode, tlsargs)
        if srv.rc == 3:
            skip(mode, srv.p.stderr.read().decode().strip())
            continue
        c, has = begin(srv.port)
        c.cmd(b"STARTTLS")
        ok, err = c.handshake()
        c.close()
        result("%s: a TLS 1.2+ client fails" % mode, not ok, err)
        c, has = begin(srv.port)
        c.cmd(b"STARTTLS")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = v
        ok, ver = c.handshake(ctx)
        c.close()
        result("%s: a %s client succeeds" % (mode, name), ok and ver == name, ver)
        plain_fallback(srv, mode)
        finish(srv, mode)

    # ---- reply misbehaviours (plaintext, and over TLS with --only-after-tls)
    srv = start("close-after-354")
    c, has = begin(srv.port)
    c.cmd(b"MAIL FROM:<a@b>")
    c.cmd(b"RCPT TO:<c@d>")
    r = c.cmd(b"DATA")
    x = c.recv_raw(3.0)
    c.close()
    result("close-after-354: 354 then EOF", not has and r[-1][:3] == b"354" and x == b"", (r, x))
    finish(srv, "close-after-354")

    srv = start("close-after-dot")
    c, has = begin(srv.port)
    c.cmd(b"MAIL FROM:<a@b>")
    c.cmd(b"RCPT TO:<c@d>")
    c.cmd(b"DATA")
    c.send(MSG + b".\r\n")
    x = c.recv_raw(3.0)
    c.close()
    time.sleep(0.2)
    f = srv.files()
    result("close-after-dot: EOF without a reply; saved as unacked-001 only",
           x == b"" and "unacked-001.eml" in f and "001.eml" not in f, (x, f))
    finish(srv, "close-after-dot")

    srv = start("drip", ["--drip-interval", "0.05"])
    c = Client(srv.port)
    t0 = time.time()
    chunks = []
    while not b"".join(chunks).endswith(b"\r\n"):
        chunks.append(c.s.recv(100))
    dt = time.time() - t0
    g = b"".join(chunks)
    c.close()
    result("drip: greeting arrives one byte per interval",
           all(len(x) == 1 for x in chunks) and dt >= (len(g) - 1) * 0.05 * 0.8, (len(chunks), dt))
    finish(srv, "drip")

    srv = start("endless-continuation")
    c = Client(srv.port)
    c.reply()
    c.send(b"EHLO x\r\n")
    n = 0
    bad = None
    for _ in range(50000):
        l = c.line()
        if not l.startswith(b"250-"):
            bad = l
            break
        n += 1
    c.close()
    result("endless-continuation: 50000 '250-' lines and no end", bad is None and n == 50000, bad)
    finish(srv, "endless-continuation")

    srv = start("huge-line")
    c = Client(srv.port)
    c.reply()
    r = c.cmd(b"EHLO x")
    m = c.cmd(b"MAIL FROM:<a@b>")
    c.close()
    result("huge-line: a reply line of 1 MiB to EHLO, session continues",
           max(len(l) for l in r) >= (1 << 20) and m[-1][:3] == b"250", [len(l) for l in r])
    finish(srv, "huge-line")

    srv = start("nul-in-reply")
    c, has = begin(srv.port)
    r = c.cmd(b"MAIL FROM:<a@b>")
    c.close()
    result("nul-in-reply: NUL (and ESC) in the reply to MAIL", b"\x00" in r[-1] and b"\x1b" in r[-1], r)
    finish(srv, "nul-in-reply")

    srv = start("bad-code")
    c, has = begin(srv.port)
    r = c.cmd(b"MAIL FROM:<a@b>")
    c.close()
    result("bad-code: MAIL answered '650 what'", r == [b"650 what"], r)
    finish(srv, "bad-code")

    srv = start("bad-code", tlsargs + ["--only-after-tls"])
    c, has = begin(srv.port)
    c.cmd(b"STARTTLS")
    ok, ver = c.handshake()
    c.cmd(b"EHLO x")
    r = c.cmd(b"MAIL FROM:<a@b>")
    c.close()
    result("bad-code --only-after-tls: STARTTLS offered with --cert, 650 over TLS",
           has and ok and r == [b"650 what"], (has, ver, r))
    plain_fallback(srv, "bad-code --only-after-tls")
    finish(srv, "bad-code --only-after-tls")

    # ---- close_notify then plaintext
    srv = start("tls-close-notify-then-talk", tlsargs)
    c, has = begin(srv.port)
    c.cmd(b"STARTTLS")
    ok, ver = c.handshake()
    c.cmd(b"EHLO x")
    c.cmd(b"MAIL FROM:<a@b>")
    c.cmd(b"RCPT TO:<c@d>")
    c.cmd(b"DATA")
    c.send(MSG + b".\r\n")
    got_cn = False
    try:
        c.reply()
    except EOFError as e:
        got_cn = str(e) == "close_notify"
    rest = c.inc.read()
    t0 = time.time()
    while time.time() - t0 < 2.5:
        x = c.recv_raw(0.5)
        if x == b"":
            break
        if x:
            rest += x
    c.close()
    result("tls-close-notify-then-talk: close_notify, then plaintext 250 lines",
           ok and got_cn and rest.startswith(b"250 2.0.0 Ok: queued in plaintext")
           and rest.count(b"\r\n250 ") >= 1, (got_cn, rest[:200]))
    plain_fallback(srv, "tls-close-notify-then-talk")
    finish(srv, "tls-close-notify-then-talk")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-base", type=int, default=2650)
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="hostile-selftest.")
    os.makedirs(work, exist_ok=True)
    cert = os.path.join(work, "cert.pem")
    key = os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=mx.example.test",
                    "-addext", "subjectAltName=DNS:mx.example.test"],
                   check=True, capture_output=True)
    try:
        run(a, work, cert, key)
    except Exception as e:
        import traceback
        result("selftest crashed", False, traceback.format_exc())
    finally:
        for srv in servers:
            srv.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
