#!/usr/bin/env python3
"""A scripted SMTP server that misbehaves on demand (mxtls is its client).

Usage:
  smtpd.py --listen 127.0.0.2:25 --mode MODE [--cert CHAIN.pem --key KEY.pem]
           [--maildir DIR] [--log FILE] [--pidfile FILE] [--hostname NAME]
           [--drip-interval SECONDS] [--only-after-tls] [--idle-timeout SECONDS]
           [--reply KEY=VALUE ...] [--weak-ciphers LIST]

Python 3 standard library only.  One thread per connection.  SIGTERM or
SIGINT stops it cleanly (exit 0).  Exit 2: usage error, 3: the requested
TLS configuration is not supported by the local OpenSSL, 1: other start-up
failure (e.g. the address is in use).  See README.md for the modes.

Event log (--log, default stdout), one line per event, flushed at once:
  listening ADDR mode MODE
  connect N from ADDR
  command VERB
  tls established VERSION CIPHER
  tls details sni=NAME resumed=yes|no
  tls failed REASON
  clienthello N bytes
  misbehave WHAT
  message saved FILE          (FILE is DIR/NNN.eml)
  message discarded N bytes   (no --maildir)
  close N
  stopped
"""

import argparse
import errno
import os
import re
import select
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
import warnings

# TLS 1.0/1.1 are deprecated in the ssl module; the tls1x-only modes use them
# on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)

MODES = {
    # name: (starttls offered: 'yes' | 'no' | 'cert' (iff --cert), cert required)
    "normal": ("yes", True),
    "no-starttls": ("no", False),
    "starttls-refused-454": ("yes", False),
    "starttls-refused-554": ("yes", False),
    "starttls-garbage": ("yes", False),
    "starttls-silent": ("yes", False),
    "inject-same-segment": ("yes", True),
    "inject-later": ("yes", True),
    "handshake-stall": ("yes", False),
    "alert": ("yes", False),
    "close-mid-handshake": ("yes", False),
    "tls10-only": ("yes", True),
    "tls11-only": ("yes", True),
    "close-after-354": ("cert", False),
    "close-after-dot": ("cert", False),
    "drip": ("cert", False),
    "endless-continuation": ("cert", False),
    "huge-line": ("cert", False),
    "nul-in-reply": ("cert", False),
    "bad-code": ("cert", False),
    "tls-close-notify-then-talk": ("yes", True),
    # Added for the attack suite (tests/integration/test_attacks_*.sh):
    "sink": ("cert", False),
    "scripted": ("cert", False),
    "weak-cipher": ("yes", True),
}

# Tokens inside a --reply value (see README.md, mode "scripted").
SCRIPT_TOKEN = re.compile(rb"@(sleep:[0-9.]+|close|silent|read:[0-9]+|file:[^@]+)@")

# Every mode is a well-behaved server up to the point where it misbehaves:
# for the STARTTLS modes, a connection without STARTTLS delivers normally.
MAX_COMMAND_LINE = 4096
MAX_MESSAGE = 100 * 1024 * 1024
STALL_SECONDS = 600
TLS_ALERT_HANDSHAKE_FAILURE = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])

args = None
stop = threading.Event()
log_lock = threading.Lock()
log_fh = None
msg_lock = threading.Lock()
msg_next = 1
conn_lock = threading.Lock()
conn_count = 0
active = {}  # N -> socket
tls_ctx = None


def log(line):
    with log_lock:
        log_fh.write(line + "\n")
        log_fh.flush()


def printable(b, limit=300):
    """bytes -> one printable line (for the log and transcripts)."""
    s = b[:limit].decode("latin-1")
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append("\\x%02x" % o)
    if len(b) > limit:
        out.append("...[%d bytes]" % len(b))
    return "".join(out)


class Closed(Exception):
    """The peer went away (or we were told to stop)."""


# ------------------------------------------------------------------ transports


class RawTransport:
    tls = False

    def __init__(self, sock):
        self.sock = sock

    def recv(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise Closed("idle timeout")
        except OSError as e:
            raise Closed(str(e))
        return d

    def send(self, data):
        """One sendall() call: small data leaves in one send() system call."""
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed(str(e))


class TLSTransport:
    """Server-side TLS over a blocking socket through memory BIOs, so that we
    control every byte on the wire (close_notify followed by plaintext, one
    record per dripped byte, what happens to bytes buffered before TLS)."""

    tls = True

    def __init__(self, sock, ctx, early=b""):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.sni = None
        if early:
            self.inc.write(early)

    def _flush(self):
        data = self.out.read()
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise Closed(str(e))

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise Closed("timeout")
        except OSError as e:
            raise Closed(str(e))
        if d:
            self.inc.write(d)
        elif self.inc.eof:
            raise Closed("eof")
        else:
            self.inc.write_eof()
        return d

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()  # at EOF OpenSSL reports SSLEOFError next round
            except ssl.SSLError:
                try:
                    self._flush()  # send our alert, if any
                except Closed:
                    pass
                raise

    def recv(self):
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as e:
                raise Closed("tls: %s" % e)

    def send(self, data):
        try:
            while data:
                n = self.obj.write(data)
                data = data[n:]
        except ssl.SSLError as e:
            raise Closed("tls: %s" % e)
        self._flush()

    def close_notify(self):
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self._flush()


def sni_callback(obj, server_name, ctx):
    # obj is the SSLObject; remember the name for the log.
    try:
        obj._hostile_sni = server_name
    except AttributeError:
        pass
    return None


def make_tls_context(mode):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.sni_callback = sni_callback
    if mode in ("tls10-only", "tls11-only"):
        v = ssl.TLSVersion.TLSv1 if mode == "tls10-only" else ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = v
            ctx.maximum_version = v
        except (ssl.SSLError, ValueError) as e:
            fatal_unsupported("%s: OpenSSL refuses the settings: %s" % (mode, e))
        if not self_test(ctx, v):
            fatal_unsupported(
                "%s: a local %s handshake fails with this OpenSSL (%s); "
                "the test cannot run here" % (mode, v.name, ssl.OPENSSL_VERSION))
    elif mode == "weak-cipher":
        try:
            ctx.set_ciphers(args.weak_ciphers)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        except (ssl.SSLError, ValueError) as e:
            fatal_unsupported("weak-cipher: OpenSSL refuses %r: %s" % (args.weak_ciphers, e))
        if not self_test(ctx, ssl.TLSVersion.TLSv1_2, args.weak_ciphers):
            fatal_unsupported(
                "weak-cipher: a local TLS 1.2 handshake with only %r fails with this "
                "OpenSSL (%s, certificate %s); the test cannot run here"
                % (args.weak_ciphers, ssl.OPENSSL_VERSION, args.cert))
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def fatal_unsupported(msg):
    sys.stderr.write("smtpd.py: UNSUPPORTED: %s\n" % msg)
    if log_fh is not None:
        log("unsupported %s" % msg)
    sys.exit(3)


def self_test(server_ctx, version, ciphers="DEFAULT:@SECLEVEL=0"):
    """Does a handshake at exactly VERSION work in memory with this OpenSSL?"""
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    try:
        cctx.set_ciphers(ciphers)
        cctx.minimum_version = version
        cctx.maximum_version = version
    except (ssl.SSLError, ValueError):
        return False
    ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = cctx.wrap_bio(ci, co, server_side=False)
    s = server_ctx.wrap_bio(si, so, server_side=True)
    cdone = sdone = False
    for _ in range(20):
        try:
            if not cdone:
                c.do_handshake()
                cdone = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            return False
        si.write(co.read())
        try:
            if not sdone:
                s.do_handshake()
                sdone = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            return False
        ci.write(so.read())
        if cdone and sdone:
            return c.version() == s.version() and s.version() == {
                ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1",
                ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
    return False


# ------------------------------------------------------------------ session


class Session:
    def __init__(self, n, sock, peer):
        self.n = n
        self.sock = sock
        self.peer = peer
        self.tr = RawTransport(sock)
        self.buf = b""
        self.mode = args.mode
        self.helo = None
        self.mail = None
        self.rcpts = []
        self.tls_version = None
        self.tls_cipher = None
        self.tls_sni = None
        self.counts = {}  # scripted: how often each command came, per key
        self.transcript = None
        if args.maildir:
            try:
                self.transcript = open(os.path.join(args.maildir, "conn-%d.log" % n), "a")
            except OSError:
                self.transcript = None

    # -- plumbing

    def note(self, direction, data):
        if self.transcript:
            self.transcript.write("%s %s %s\n" % (
                direction, "tls" if self.tr.tls else "plain", printable(data)))
            self.transcript.flush()

    def misbehave_now(self):
        return not args.only_after_tls or self.tr.tls

    def send(self, data, drip=None):
        """Send a reply.  In drip mode (when active) one byte per interval."""
        if stop.is_set():
            raise Closed("stopping")
        self.note("S:", data)
        if drip is None:
            drip = self.mode == "drip" and self.misbehave_now()
        if drip:
            for i in range(len(data)):
                self.tr.send(data[i:i + 1])
                if i + 1 < len(data) and stop.wait(args.drip_interval):
                    raise Closed("stopping")
        else:
            self.tr.send(data)

    def fill(self):
        if stop.is_set():
            raise Closed("stopping")
        d = self.tr.recv()
        if not d:
            raise Closed("eof")
        self.buf += d

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                self.note("C:", line)
                return line
            if len(self.buf) > MAX_COMMAND_LINE:
                self.send(b"500 5.5.0 Line too long\r\n")
                raise Closed("command line too long")
            self.fill()

    def read_exact(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_client_hello(self):
        """Read one TLS record (normally the ClientHello) in raw form."""
        try:
            hdr = self.read_exact(5, 60)
            length = (hdr[3] << 8) | hdr[4]
            body = self.read_exact(length, 60)
        except Closed as e:
            log("clienthello none (%s)" % e)
            return False
        if hdr[0] != 0x16:
            log("clienthello bad record type %d (%s)" % (hdr[0], printable(hdr + body[:40])))
        else:
            log("clienthello %d bytes" % (5 + length))
        return True

    def hold_open(self, seconds):
        """Keep the socket open, reading and discarding, until EOF/stop/timeout."""
        deadline = time.monotonic() + seconds
        n = 0
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(min(left, 1.0))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            n += len(d)
        if n:
            log("misbehave ignored %d bytes" % n)

    # -- SMTP

    def offers_starttls(self):
        if self.tr.tls:
            return False
        how = MODES[self.mode][0]
        return how == "yes" or (how == "cert" and tls_ctx is not None)

    def ehlo_lines(self):
        lines = [args.hostname, "PIPELINING", "SIZE %d" % MAX_MESSAGE, "8BITMIME",
                 "ENHANCEDSTATUSCODES", "SMTPUTF8"] + args.ehlo_extra
        if self.offers_starttls():
            lines.append("STARTTLS")
        out = []
        for i, l in enumerate(lines):
            out.append("250%s%s\r\n" % (" " if i == len(lines) - 1 else "-", l))
        return "".join(out).encode()

    def run(self):
        self.sock.settimeout(args.idle_timeout)
        greeting = self.script_value("greeting")
        if greeting is not None:
            if not self.perform("greeting", greeting):
                return
        else:
            self.send(b"220 %s ESMTP hostile-smtpd %s\r\n" % (
                args.hostname.encode(), self.mode.encode()))
        while True:
            line = self.readline()
            stripped = line.rstrip(b"\r\n")
            verb = stripped.split(b" ", 1)[0].upper()
            log("command %s" % (printable(verb, 20) if verb else "(empty)"))
            v = verb.decode("latin-1")
            if self.mode == "scripted":
                done = self.scripted_command(v, stripped)
                if done is False:
                    return
                if done:
                    continue
            if v in ("EHLO", "HELO"):
                self.do_helo(v, stripped)
            elif v == "MAIL":
                self.do_mail(stripped)
            elif v == "RCPT":
                self.do_rcpt(stripped)
            elif v == "DATA":
                if not self.do_data():
                    return
            elif v == "RSET":
                self.mail = None
                self.rcpts = []
                self.send(b"250 2.0.0 Ok\r\n")
            elif v == "NOOP":
                self.send(b"250 2.0.0 Ok\r\n")
            elif v == "QUIT":
                self.send(b"221 2.0.0 Bye\r\n")
                return
            elif v == "VRFY":
                self.send(b"252 2.5.2 Cannot VRFY user\r\n")
            elif v == "STARTTLS":
                if not self.do_starttls():
                    return
            else:
                self.send(b"502 5.5.2 Error: command not recognized\r\n")

    # -- mode "scripted": replies from --reply KEY=VALUE (see README.md)

    def script_value(self, key, count=False):
        """The --reply value for KEY on this connection, or None.  Lookup:
        KEY#N_tls / KEY#N_plain, KEY#N, KEY_tls / KEY_plain, KEY (N: the
        how-manyeth time KEY comes on this connection, from 1)."""
        if self.mode != "scripted":
            return None
        n = self.counts.get(key, 0) + (1 if count else 0)
        if count:
            self.counts[key] = n
        side = "tls" if self.tr.tls else "plain"
        for k in ("%s#%d_%s" % (key, n, side), "%s#%d" % (key, n),
                  "%s_%s" % (key, side), key):
            if k in args.replies:
                return args.replies[k]
        return None

    def perform(self, key, value):
        """Send VALUE, obeying its @...@ tokens.  False: close the connection."""
        log("misbehave scripted %s" % key)
        parts = SCRIPT_TOKEN.split(value)
        for i, part in enumerate(parts):
            if i % 2 == 0:
                if part:
                    self.send(part, drip=False)
                continue
            tok = part.decode("latin-1")
            if tok.startswith("sleep:"):
                if stop.wait(float(tok[6:])):
                    raise Closed("stopping")
                waiting = len(self.buf)
                try:
                    # No wait at all (a socket timeout would make recv wait).
                    r, _, _ = select.select([self.sock], [], [], 0)
                    if r:
                        waiting += len(self.sock.recv(65536, socket.MSG_PEEK))
                except OSError:
                    pass
                log("misbehave slept %s, %d bytes were waiting" % (tok[6:], waiting))
            elif tok == "close":
                log("misbehave scripted close")
                return False
            elif tok == "silent":
                log("misbehave scripted silent")
                self.hold_open(STALL_SECONDS)
                return False
            elif tok.startswith("read:"):
                want = int(tok[5:])
                got = 0
                while got < want:
                    if not self.buf:
                        self.fill()
                    take = self.buf[:want - got]
                    self.buf = self.buf[len(take):]
                    got += len(take)
                    self.note("C: (data)", take)
                log("misbehave read %d bytes" % got)
            elif tok.startswith("file:"):
                with open(tok[5:], "rb") as f:
                    self.send(f.read(), drip=False)
        return True

    def scripted_command(self, v, line):
        """True: handled; None: not overridden (default handling); False: close."""
        key = v.lower() if v in ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
                                 "QUIT", "STARTTLS", "VRFY") else "other"
        value = self.script_value(key, count=True)
        if key == "data":
            return self.do_data()
        if value is None:
            return None
        if key in ("ehlo", "helo"):
            self.helo = line.decode("latin-1")
            self.mail = None
            self.rcpts = []
        elif key == "mail":
            self.mail = line[5:].decode("latin-1").strip()
            self.rcpts = []
        elif key == "rcpt":
            self.rcpts.append(line[5:].decode("latin-1").strip())
        elif key == "rset":
            self.mail = None
            self.rcpts = []
        if not self.perform(key, value):
            return False
        if key == "quit":
            return False
        if key == "starttls" and value.startswith(b"220") and not self.tr.tls:
            return self.start_tls()
        return True

    def do_helo(self, v, line):
        self.helo = line.decode("latin-1")
        self.mail = None
        self.rcpts = []
        if v == "HELO":
            self.send(b"250 %s\r\n" % args.hostname.encode())
            return
        if self.mode == "endless-continuation" and self.misbehave_now():
            log("misbehave endless continuation")
            self.endless()
            raise Closed("endless continuation ended")
        if self.mode == "huge-line" and self.misbehave_now():
            log("misbehave huge line")
            self.send(b"250-" + args.hostname.encode() + b"\r\n250-" + b"A" * (1 << 20)
                      + b"\r\n250 PIPELINING\r\n")
            return
        self.send(self.ehlo_lines())

    def endless(self):
        deadline = time.monotonic() + STALL_SECONDS
        sent = 0
        i = 0
        self.note("S:", b"250-continuation ... (endless)")
        try:
            while not stop.is_set() and time.monotonic() < deadline and sent < (1 << 30):
                chunk = b"".join(b"250-continuation %d\r\n" % (i + k) for k in range(2000))
                i += 2000
                self.tr.send(chunk)
                sent += len(chunk)
        finally:
            log("misbehave endless sent %d bytes" % sent)

    def nul(self, text):
        if self.mode == "nul-in-reply" and self.misbehave_now():
            return text + b"\x00\x1b[2J hidden after NUL"
        return text

    def do_mail(self, line):
        if self.helo is None:
            self.send(b"503 5.5.1 Error: send HELO/EHLO first\r\n")
            return
        if self.mail is not None:
            self.send(b"503 5.5.1 Error: nested MAIL command\r\n")
            return
        if self.mode == "bad-code" and self.misbehave_now():
            log("misbehave bad code 650")
            self.send(b"650 what\r\n")
            return
        self.mail = line[5:].decode("latin-1").strip()
        self.rcpts = []
        self.send(self.nul(b"250 2.1.0 Ok") + b"\r\n")

    def do_rcpt(self, line):
        if self.mail is None:
            self.send(b"503 5.5.1 Error: need MAIL command\r\n")
            return
        self.rcpts.append(line[5:].decode("latin-1").strip())
        self.send(self.nul(b"250 2.1.5 Ok") + b"\r\n")

    def do_data(self):
        override = self.script_value("data")
        if override is not None:
            if not self.perform("data", override):
                return False
            if not SCRIPT_TOKEN.sub(b"", override).startswith(b"354"):
                return True
        else:
            if self.mail is None or not self.rcpts:
                self.send(b"503 5.5.1 Error: need RCPT command\r\n")
                return True
            self.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        if self.mode == "close-after-354" and self.misbehave_now():
            log("misbehave close after 354")
            return False
        body = self.script_value("body")
        if body is not None and not self.perform("body", body):
            return False
        raw = self.read_data()
        closing = None
        dot = self.script_value("dot", count=True)
        if self.mode == "close-after-dot" and self.misbehave_now():
            closing = "none (closed after the dot)"
        elif self.mode == "tls-close-notify-then-talk" and self.tr.tls:
            closing = "none (close_notify, then plaintext)"
        elif dot is not None and not SCRIPT_TOKEN.sub(b"", dot).startswith(b"2"):
            closing = "scripted %s" % printable(SCRIPT_TOKEN.sub(b"", dot).split(b"\r\n")[0], 80)
        if dot is not None:
            self.save(raw, closing)
            self.mail = None
            self.rcpts = []
            return self.perform("dot", dot)
        name = self.save(raw, closing)
        if closing is None:
            self.send(self.nul(b"250 2.0.0 Ok: queued as %s" % name.encode()) + b"\r\n")
            self.mail = None
            self.rcpts = []
            return True
        if self.mode == "close-after-dot":
            log("misbehave close after dot")
            return False
        # tls-close-notify-then-talk
        log("misbehave close_notify then plaintext")
        self.tr.close_notify()
        plain = RawTransport(self.sock)
        try:
            msg = b"250 2.0.0 Ok: queued in plaintext after close_notify\r\n"
            self.note("S: (plain, raw socket)", msg)
            plain.send(msg)
            deadline = time.monotonic() + 60
            k = 0
            while not stop.wait(1.0) and time.monotonic() < deadline:
                k += 1
                plain.send(b"250 2.0.0 Ok plaintext %d\r\n" % k)
        except Closed:
            pass
        return False

    def read_data(self):
        """Raw bytes up to and including the CRLF before the final '.CRLF'."""
        self.buf = b"\r\n" + self.buf  # so that '.CRLF' as the first line ends it
        pos = 0
        while True:
            i = self.buf.find(b"\r\n.\r\n", pos)
            if i >= 0:
                raw = self.buf[2:i + 2]
                self.buf = self.buf[i + 5:]
                self.note("C: (data)", raw)
                self.note("C:", b".\r\n")
                return raw
            if len(self.buf) > MAX_MESSAGE:
                self.send(b"552 5.3.4 Message too big\r\n")
                raise Closed("message too big")
            pos = max(0, len(self.buf) - 4)
            try:
                self.fill()
            except Closed:
                if self.mode in ("sink", "scripted"):
                    self.save_aborted(self.buf[2:])
                raise

    def save_aborted(self, raw):
        """Modes sink and scripted: DATA that never ended (the client went
        away or we stopped) goes to DIR/aborted-NNN.raw and .env, with the
        same byte counts as a message, so that a test can check what was
        passed on before the abort."""
        global msg_next
        if not args.maildir:
            log("message aborted %d bytes" % len(raw))
            return
        with msg_lock:
            k = msg_next
            msg_next += 1
        base = os.path.join(args.maildir, "aborted-%03d" % k)
        env = [
            "conn: %d" % self.n,
            "mode: %s" % self.mode,
            "mail: %s" % self.mail,
        ] + ["rcpt: %s" % r for r in self.rcpts] + [
            "tls: %s" % ("yes" if self.tr.tls else "no"),
            "raw_bytes: %d" % len(raw),
            "bare_cr: %d" % len(re.findall(rb"\r(?!\n)", raw)),
            # A CR at the very end may be half of a CRLF cut off by the abort.
            "bare_cr_inside: %d" % (len(re.findall(rb"\r(?!\n)", raw)) - raw.endswith(b"\r")),
            "bare_lf: %d" % len(re.findall(rb"(?<!\r)\n", raw)),
            "nul: %d" % raw.count(b"\x00"),
            "final_reply: none (aborted)",
        ]
        for suffix, data in ((".raw", raw), (".env", ("\n".join(env) + "\n").encode())):
            with open(base + suffix + ".tmp", "wb") as f:
                f.write(data)
            os.rename(base + suffix + ".tmp", base + suffix)
        log("message aborted %s.raw %d bytes" % (base, len(raw)))

    def save(self, raw, closing):
        """Write DIR/NNN.raw, NNN.eml, NNN.env; return the queue name.

        A message we will not acknowledge (closing is set) goes to
        DIR/unacked-NNN.* instead, so that NNN.eml files are exactly the
        messages this server answered 250 to."""
        global msg_next
        unstuffed = b"\r\n".join(l[1:] if l.startswith(b".") else l
                                 for l in raw.split(b"\r\n"))
        bare_lf = len(re.findall(rb"(?<!\r)\n", raw))
        bare_cr = len(re.findall(rb"\r(?!\n)", raw))
        nul = raw.count(b"\x00")
        if not args.maildir:
            log("message %s %d bytes" % ("unacked" if closing else "discarded", len(raw)))
            return "DISCARDED"
        with msg_lock:
            k = msg_next
            msg_next += 1
        base = os.path.join(args.maildir, ("unacked-%03d" if closing else "%03d") % k)
        env = [
            "conn: %d" % self.n,
            "peer: %s" % self.peer,
            "mode: %s" % self.mode,
            "helo: %s" % self.helo,
            "mail: %s" % self.mail,
        ]
        env += ["rcpt: %s" % r for r in self.rcpts]
        env += [
            "tls: %s" % ("yes" if self.tr.tls else "no"),
            "tls_version: %s" % (self.tls_version or "-"),
            "tls_cipher: %s" % (self.tls_cipher or "-"),
            "tls_sni: %s" % (self.tls_sni or "-"),
            "raw_bytes: %d" % len(raw),
            "bytes: %d" % len(unstuffed),
            "bare_cr: %d" % bare_cr,
            "bare_lf: %d" % bare_lf,
            "nul: %d" % nul,
            "final_reply: %s" % (closing or "250"),
        ]
        for suffix, data in ((".raw", raw), (".eml", unstuffed),
                             (".env", ("\n".join(env) + "\n").encode("utf-8", "replace"))):
            tmp = base + suffix + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, base + suffix)
        log("message %s %s.eml" % ("unacked" if closing else "saved", base))
        return "%03d" % k

    # -- STARTTLS and the TLS misbehaviours

    def do_starttls(self):
        """Returns False when the connection is to be closed."""
        if self.tr.tls:
            self.send(b"503 5.5.1 Error: TLS already active\r\n")
            return True
        if not self.offers_starttls():
            self.send(b"502 5.5.1 Error: command not implemented\r\n")
            return True
        m = self.mode
        if m == "starttls-refused-454":
            log("misbehave starttls refused 454")
            self.send(b"454 4.7.0 TLS not available due to temporary reason\r\n")
            return True
        if m == "starttls-refused-554":
            log("misbehave starttls refused 554")
            self.send(b"554 5.7.3 TLS not available\r\n")
            return True
        if m == "starttls-garbage":
            log("misbehave starttls garbage")
            self.send(b"* OK IMAP4rev1 this is not an SMTP reply\r\n")
            return True
        if m == "starttls-silent":
            log("misbehave starttls silent")
            self.hold_open(STALL_SECONDS)
            return False
        if m == "inject-same-segment":
            log("misbehave inject same segment")
            # ONE send() call: the 220 and the injected lines share a segment.
            self.send(b"220 2.0.0 go ahead\r\n250-injected\r\n250 PIPELINING\r\n", drip=False)
            return self.start_tls()
        if m == "inject-later":
            log("misbehave inject later")
            self.send(b"220 go ahead\r\n", drip=False)
            if stop.wait(0.05):
                raise Closed("stopping")
            self.send(b"250 injected\r\n", drip=False)
            return self.start_tls()
        if m in ("handshake-stall", "alert", "close-mid-handshake"):
            self.send(b"220 2.0.0 Ready to start TLS\r\n")
            if not self.read_client_hello():
                return False
            if m == "handshake-stall":
                log("misbehave handshake stall")
                self.hold_open(STALL_SECONDS)
            elif m == "alert":
                log("misbehave alert handshake_failure")
                self.note("S: (raw)", TLS_ALERT_HANDSHAKE_FAILURE)
                self.tr.send(TLS_ALERT_HANDSHAKE_FAILURE)
            else:
                log("misbehave close mid handshake")
            return False
        if tls_ctx is None:
            self.send(b"454 4.7.0 TLS not available (no --cert)\r\n")
            return True
        self.send(b"220 2.0.0 Ready to start TLS\r\n")
        return self.start_tls()

    def start_tls(self):
        early, self.buf = self.buf, b""
        if early:
            log("misbehave client sent %d bytes after STARTTLS before our 220 (fed to TLS)"
                % len(early))
        t = TLSTransport(self.sock, tls_ctx, early)
        self.sock.settimeout(60)
        try:
            t.handshake()
        except (ssl.SSLError, Closed, OSError) as e:
            log("tls failed %s" % printable(str(e).encode(), 200))
            return False
        self.sock.settimeout(args.idle_timeout)
        self.tr = t
        self.tls_version = t.obj.version()
        self.tls_cipher = t.obj.cipher()[0]
        self.tls_sni = getattr(t.obj, "_hostile_sni", None)
        log("tls established %s %s" % (self.tls_version, self.tls_cipher))
        log("tls details sni=%s resumed=%s" % (
            self.tls_sni or "-", "yes" if t.obj.session_reused else "no"))
        # RFC 3207: forget everything from before TLS.
        self.helo = None
        self.mail = None
        self.rcpts = []
        hello = self.script_value("tls_hello")
        if hello is not None:
            return self.perform("tls_hello", hello)
        return True


# ------------------------------------------------------------------ server


def handle(n, sock, peer):
    s = Session(n, sock, peer)
    try:
        s.run()
    except Closed:
        pass
    except Exception as e:  # keep serving other connections
        log("error %d %s" % (n, printable(repr(e).encode(), 200)))
    finally:
        try:
            sock.close()
        except OSError:
            pass
        if s.transcript:
            s.transcript.close()
        with conn_lock:
            active.pop(n, None)
        log("close %d" % n)


def parse_listen(spec):
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", spec)
    if not m:
        raise argparse.ArgumentTypeError("expected HOST:PORT or [V6]:PORT")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    return host, port


def main():
    global args, log_fh, tls_ctx, msg_next, conn_count
    ap = argparse.ArgumentParser(description="Scripted hostile SMTP server.")
    ap.add_argument("--listen", required=True, type=parse_listen, metavar="HOST:PORT")
    ap.add_argument("--mode", required=True, choices=sorted(MODES))
    ap.add_argument("--cert", help="certificate chain (PEM), leaf first")
    ap.add_argument("--key", help="private key (PEM)")
    ap.add_argument("--maildir", help="where messages (NNN.eml/.raw/.env) and transcripts go")
    ap.add_argument("--log", help="event log (default: stdout)")
    ap.add_argument("--pidfile")
    ap.add_argument("--hostname", default="mx.hostile.test", help="name in greeting and EHLO")
    ap.add_argument("--drip-interval", type=float, default=1.0,
                    help="seconds between bytes in drip mode (default 1)")
    ap.add_argument("--only-after-tls", action="store_true",
                    help="reply misbehaviours (drip, huge-line, ...) only once TLS is up")
    ap.add_argument("--idle-timeout", type=float, default=600.0,
                    help="seconds to wait for a command (default 600)")
    ap.add_argument("--reply", action="append", default=[], metavar="KEY=VALUE",
                    help="mode scripted: the reply for KEY (greeting, ehlo, helo, starttls, "
                         "tls_hello, mail, rcpt, data, body, dot, rset, noop, quit, vrfy, other; "
                         "KEY#N, KEY_tls, KEY_plain), VALUE with Python escapes and @...@ tokens")
    ap.add_argument("--ehlo-extra", action="append", default=[], metavar="KEYWORD",
                    help="one more EHLO keyword (e.g. REQUIRETLS); may be repeated")
    ap.add_argument("--weak-ciphers", default="NULL-SHA256:NULL-SHA:@SECLEVEL=0",
                    help="mode weak-cipher: the only TLS 1.2 cipher suites offered "
                         "(default NULL-SHA256:NULL-SHA:@SECLEVEL=0, needs an RSA certificate)")
    args = ap.parse_args()
    args.replies = {}
    for kv in args.reply:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            ap.error("--reply wants KEY=VALUE, got %r" % kv)
        try:
            args.replies[k] = v.encode("latin-1").decode("unicode_escape").encode("latin-1")
        except (UnicodeError, ValueError) as e:
            ap.error("--reply %s: bad escape: %s" % (k, e))
    if args.replies and args.mode != "scripted":
        ap.error("--reply needs --mode scripted")

    if args.log:
        log_fh = open(args.log, "a", buffering=1)
    else:
        log_fh = sys.stdout

    needs_cert = MODES[args.mode][1]
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    if needs_cert and args.cert is None:
        ap.error("mode %s needs --cert and --key" % args.mode)
    if args.cert:
        try:
            tls_ctx = make_tls_context(args.mode)
        except (OSError, ssl.SSLError) as e:
            sys.stderr.write("smtpd.py: cannot load %s / %s: %s\n" % (args.cert, args.key, e))
            sys.exit(1)

    if args.maildir:
        os.makedirs(args.maildir, exist_ok=True)
        nums = [int(m.group(1)) for m in (re.fullmatch(r"(?:unacked-)?(\d+)\.env", f)
                                          for f in os.listdir(args.maildir)) if m]
        msg_next = max(nums, default=0) + 1

    host, port = args.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind((host, port))
        lsock.listen(64)
    except OSError as e:
        sys.stderr.write("smtpd.py: cannot listen on %s:%d: %s\n" % (host, port, e))
        sys.exit(1)
    lsock.setblocking(False)

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.pidfile:
        tmp = args.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(tmp, args.pidfile)
    log("listening %s:%d mode %s" % (host, port, args.mode))

    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    threads = []
    while not stop.is_set():
        if not sel.select(timeout=0.2):
            continue
        try:
            sock, addr = lsock.accept()
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)
                continue
            raise
        sock.setblocking(True)
        with conn_lock:
            conn_count += 1
            n = conn_count
            active[n] = sock
        peer = "%s:%d" % (addr[0], addr[1])
        log("connect %d from %s" % (n, peer))
        t = threading.Thread(target=handle, args=(n, sock, peer), daemon=True)
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]

    # Stop: no new connections; wake up every session and let it finish.
    sel.close()
    lsock.close()
    with conn_lock:
        socks = list(active.values())
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    deadline = time.monotonic() + 3
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass
    log("stopped")
    sys.exit(0)


if __name__ == "__main__":
    main()
