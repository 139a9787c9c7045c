#!/usr/bin/env python3
"""mxtls benchmark (`make bench`): mxtls against stunnel, Postfix as a relay
and the plaintext floor, on loopback.  See docs/bench.md for what is measured
and how.  Started by tests/bench/run.sh (which installs what is missing and
raises the descriptor limit).

Environment (defaults in brackets):
  BENCH_ROUNDS [5]       rounds of W1, W2 and W4 (contenders alternate)
  BENCH_W1_MSGS [2000]   W1 messages (1 per connection, BENCH_PAR parallel)
  BENCH_W2_MSGS [1000]   W2 messages (BENCH_PAR sessions of ~100 messages)
  BENCH_PAR [10]         parallel sessions of W1 and W2
  BENCH_SIZE [2048]      message payload, bytes
  BENCH_W4_MSGS [200]    W4 messages per contender and round (one at a time)
  BENCH_W3_N [100 1000 10000]  W3 session counts
  BENCH_W3_ROUNDS [1]    rounds of W3
  BENCH_W5_RECORDS [0 10000 100000]  W5: retry records in state_dir at start
  BENCH_W5_FAILURES [300]  W5: deliveries that each record a TLS failure
  BENCH_W5_ROUNDS [3]    rounds of W5 (a fresh mxtls each)
  BENCH_WORKLOADS [W1 W2 W3 W4 W5]  the workloads to run
  BENCH_MXTLS [build/mxtls]  the mxtls to measure (another build: an
                         earlier commit, for before/after figures)
  BENCH_BUDGET [540]     seconds: no new round of W1/W2/W4 starts when the
                         rest would not fit (W3 keeps its share)
  BENCH_ONLY             contenders to run, e.g. "floor mxtls stunnel"
  BENCH_OUT [build/bench/bench.md]  where the Markdown table goes
  BENCH_HOLD             set: only start the sink and the contenders, print
                         their ports and wait (until Ctrl-C), to look at one
  BENCH_MXTLS_PROXY      extra [proxy] lines for mxtls, ";"-separated, e.g.
                         "connection_cache_time = 0" to measure without
                         the connection cache
  BENCH_MXTLS_WRAP       a command put before mxtls, e.g. "valgrind
                         --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
"""
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(ROOT, "build", "bench")
PKI = os.path.join(B, "pki")
PIDS = os.path.join(B, "pids")
MXTLS = os.path.abspath(os.environ.get("BENCH_MXTLS", os.path.join(ROOT, "build", "mxtls")))
STORM = os.path.join(ROOT, "tests", "integration", "files", "storm.py")
HERE = os.path.dirname(os.path.abspath(__file__))
CERT_NAME = "mx.example.test"


def env_int(name, default):
    return int(os.environ.get(name, default))


ROUNDS = env_int("BENCH_ROUNDS", 5)
W1_MSGS = env_int("BENCH_W1_MSGS", 2000)
W2_MSGS = env_int("BENCH_W2_MSGS", 1000)
PAR = env_int("BENCH_PAR", 10)
SIZE = env_int("BENCH_SIZE", 2048)
W4_MSGS = env_int("BENCH_W4_MSGS", 200)
W3_NS = [int(x) for x in os.environ.get("BENCH_W3_N", "100 1000 10000").split()]
W3_ROUNDS = env_int("BENCH_W3_ROUNDS", 1)
W5_RECORDS = [int(x) for x in os.environ.get("BENCH_W5_RECORDS", "0 10000 100000").split()]
W5_FAILURES = env_int("BENCH_W5_FAILURES", 300)
W5_ROUNDS = env_int("BENCH_W5_ROUNDS", 3)
WORKLOADS = os.environ.get("BENCH_WORKLOADS", "W1 W2 W3 W4 W5").split()
BUDGET = env_int("BENCH_BUDGET", 540)
ONLY = os.environ.get("BENCH_ONLY", "floor mxtls stunnel postfix").split()
MXTLS_PROXY = "".join("\n" + l.strip() for l in os.environ.get("BENCH_MXTLS_PROXY", "").split(";") if l.strip())
MXTLS_WRAP = os.environ.get("BENCH_MXTLS_WRAP", "").split()
OUT = os.environ.get("BENCH_OUT", os.path.join(B, "bench.md"))
RUN_TIMEOUT = 180  # seconds for one workload run of one contender
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
T_START = time.monotonic()
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

PF_SBIN = "/usr/lib/postfix/sbin"
try:
    _d = subprocess.run(["postconf", "-h", "daemon_directory"], capture_output=True,
                        text=True, timeout=10).stdout.strip()
    if _d and os.path.isdir(_d):
        PF_SBIN = _d
except (OSError, subprocess.SubprocessError):
    pass


def log(msg):
    print("# [%5.0fs] %s" % (time.monotonic() - T_START, msg), flush=True)


# ------------------------------------------------------------ processes

PROCS = []  # (name, Popen), in start order


def starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(name, argv, **kw):
    """Start a process, record its PID (and start time, to recognise it
    after an interrupted run) so that it is stopped by PID."""
    p = subprocess.Popen(argv, **kw)
    PROCS.append((name, p))
    with open(PIDS, "a") as f:
        f.write("%d %s %s\n" % (p.pid, starttime(p.pid), name))
    return p


def stop_pid(pid, wait=5.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t = time.monotonic() + wait
    while alive(pid) and time.monotonic() < t:
        time.sleep(0.02)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop(p):
    """Stop one process we started (TERM, then KILL after 5 s), reap it."""
    stop_pid(p.pid)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for i, (_, q) in enumerate(PROCS):
        if q is p:
            del PROCS[i]
            break


def stop_all():
    while PROCS:
        stop(PROCS[-1][1])
    try:
        os.unlink(PIDS)
    except OSError:
        pass


def stop_leftovers():
    """Processes of an earlier run that was killed before it could clean up."""
    try:
        lines = open(PIDS).read().split("\n")
    except OSError:
        return
    for line in reversed(lines):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and starttime(int(parts[0])) == parts[1]:
            log("stopping a leftover of an earlier run: %s (pid %s)" % (parts[2], parts[0]))
            stop_pid(int(parts[0]))
    os.unlink(PIDS)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, secs=15, proc=None):
    t = time.monotonic() + secs
    while time.monotonic() < t:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    | " + l[:300] for l in lines[-n:])
    except OSError:
        return "    | (no %s)" % path


# ------------------------------------------------------------ /proc

def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, cstime field 17.
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14])}


def busy_ticks():
    """(busy, total) ticks of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def SINK_TICKS():
    """CPU ticks of the receiving side: the Postfix sink and smtp-sink
    (set in main)."""
    return 0


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if proc_stat(int(d))["ppid"] == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------ the sink

class Sink:
    """Postfix's smtp-sink, its running counter (-c) read from a pipe."""

    def __init__(self):
        self.port = free_port()
        self.count = 0
        self.cond = threading.Condition()
        self.proc = start("smtp-sink", ["smtp-sink", "-c", "-u", "nobody", "-m", "2000",
                                        "127.0.0.1:%d" % self.port, "1024"],
                          stdout=subprocess.PIPE, stderr=open(os.path.join(B, "smtp-sink.err"), "w"))
        threading.Thread(target=self._read, daemon=True).start()
        if not wait_port(self.port, proc=self.proc):
            raise SystemExit("smtp-sink did not start:\n" + tail(os.path.join(B, "smtp-sink.err")))

    def _read(self):
        fd = self.proc.stdout.fileno()
        rest = b""
        while True:
            try:
                d = os.read(fd, 65536)
            except OSError:
                return
            if not d:
                return
            m = re.findall(rb"mesg=(\d+)", rest + d)
            rest = d[-64:]
            if m:
                with self.cond:
                    self.count = max(self.count, int(m[-1]))
                    self.cond.notify_all()

    def get(self):
        with self.cond:
            return self.count

    def wait(self, n, secs):
        """Until the sink has received at least n messages in all; the time
        it happened, or None."""
        t = time.monotonic() + secs
        with self.cond:
            while self.count < n:
                left = t - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))
            return time.monotonic()

    def connections_ok(self):
        return self.proc.poll() is None


# ------------------------------------------------------------ Postfix

MASTER_CF_SERVICES = """\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def pf_queue(d):
    """The queue layout of postfix-files, made by hand (as tests/integration/lib.sh)."""
    pf = pwd.getpwnam("postfix")
    import grp
    postdrop = grp.getgrnam("postdrop").gr_gid
    q = os.path.join(d, "queue")
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    for sub in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                "incoming", "private", "saved", "trace"):
        os.makedirs(os.path.join(q, sub), exist_ok=True)
        os.chmod(os.path.join(q, sub), 0o700)
        os.chown(os.path.join(q, sub), pf.pw_uid, 0)
    for sub in ("maildrop", "public", "pid"):
        os.makedirs(os.path.join(q, sub), exist_ok=True)
    os.chown(os.path.join(q, "maildrop"), pf.pw_uid, postdrop)
    os.chown(os.path.join(q, "public"), pf.pw_uid, postdrop)
    os.chmod(os.path.join(q, "maildrop"), 0o730)
    os.chmod(os.path.join(q, "public"), 0o710)
    os.chown(q, 0, 0)
    os.chown(os.path.join(q, "pid"), 0, 0)
    os.chmod(q, 0o755)
    os.chmod(os.path.join(q, "pid"), 0o755)
    os.chown(os.path.join(d, "data"), pf.pw_uid, pf.pw_gid)
    os.chmod(os.path.join(d, "data"), 0o700)


def pf_main_common(d, hostname):
    return """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {h}
mydomain = {dom}
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtpd_banner = $myhostname ESMTP bench
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_relay_restrictions = permit_mynetworks, reject
local_header_rewrite_clients =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
message_size_limit = 52428800
smtp_dns_support_level = disabled
smtp_host_lookup = native
default_process_limit = 200
""".format(d=d, h=hostname, dom=hostname.split(".", 1)[1])


class Postfix:
    """A private Postfix instance, its master in the foreground of a child
    process (no `postfix start`), stopped by the master's PID."""

    def __init__(self, name, listen_port, hostname, extra_main, files=None):
        self.d = os.path.join(B, "pf-" + name)
        shutil.rmtree(self.d, ignore_errors=True)
        os.makedirs(self.d)
        pf_queue(self.d)
        for fname, text in (files or {}).items():
            with open(os.path.join(self.d, fname), "w") as f:
                f.write(text)
        with open(os.path.join(self.d, "main.cf"), "w") as f:
            f.write(pf_main_common(self.d, hostname) + extra_main)
        with open(os.path.join(self.d, "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % listen_port + MASTER_CF_SERVICES)
        # Postfix re-reads a main.cf younger than a second: backdate it.
        old = time.time() - 60
        for fname in os.listdir(self.d):
            if fname.endswith(".cf") or fname in (files or {}):
                os.utime(os.path.join(self.d, fname), (old, old))
        self.log = os.path.join(self.d, "maillog")
        open(self.log, "w").close()
        self.proc = start("postfix " + name, [os.path.join(PF_SBIN, "master"), "-c", self.d],
                          stdout=open(os.path.join(self.d, "master.out"), "w"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.port = listen_port
        if not wait_port(listen_port, proc=self.proc):
            raise SystemExit("postfix %s did not start:\n%s\n%s" % (
                name, tail(os.path.join(self.d, "master.out")), tail(self.log)))

    def cpu_ticks(self):
        """CPU of the whole instance: the master with its reaped children,
        plus the live children.  postlogd is left out: it stands in for
        syslogd, which a deployed Postfix leaves the logging to."""
        return tree_ticks(self.pid, skip=("postlogd",))

    def alive(self):
        return self.proc.poll() is None


# ------------------------------------------------------------ contenders

def tree_ticks(pid, skip=()):
    """CPU ticks of a process, its reaped children and its live children
    (mxtls runs mxtls-fetch beside it; Postfix is a family of daemons)."""
    s = proc_stat(pid)
    t = s["utime"] + s["stime"] + s["cutime"] + s["cstime"]
    for c in children(pid):
        if proc_comm(c) in skip:
            continue
        try:
            cs = proc_stat(c)
            t += cs["utime"] + cs["stime"]
        except (OSError, IndexError):
            pass
    return t


class Floor:
    name = "floor"
    label = "plaintext floor (smtp-source -> smtp-sink)"

    def __init__(self, sink):
        self.port = sink.port
        self.log = None

    def cpu_ticks(self):
        return None

    def alive(self):
        return True


class Mxtls:
    name = "mxtls"

    def __init__(self, upstream_port, tag, matches=None, records=0):
        """matches: the [match] sections (default: everything to the
        sink at upstream_port); records: retry records to start with."""
        self.d = os.path.join(B, "mxtls-" + tag)
        shutil.rmtree(self.d, ignore_errors=True)
        os.makedirs(os.path.join(self.d, "state"))
        if records:
            subprocess.run([sys.executable, STORM, "seed", os.path.join(self.d, "state"), str(records),
                            str(int(time.time()))], check=True)
        os.chmod(self.d, 0o755)
        # Owned by the user mxtls runs as, so that BENCH_MXTLS_WRAP may
        # start it as nobody already (a profiler writing its output).
        nobody = pwd.getpwnam("nobody")
        os.chown(os.path.join(self.d, "state"), nobody.pw_uid, nobody.pw_gid)
        self.port = free_port()
        self.conf = os.path.join(self.d, "mxtls.ini")
        with open(self.conf, "w") as f:
            f.write("""\
[proxy]
listen = 127.0.0.1:{port}
hostname = mxtls.bench.test
allow_clients = 127.0.0.0/8
max_sessions = {maxs}
max_sessions_per_client = 0
state_dir = state
log_level = warn
user = nobody
admin_listen = off{extra}

[tls]
ca_bundle = {pki}/test-root-ca.pem
min_version = 1.2

[policy]
default = mandatory

{matches}""".format(port=self.port, maxs=min(max(W3_NS + [1000]) + 500, (NOFILE - 64) // 2), pki=PKI,
                    extra=MXTLS_PROXY, matches=matches or "[match *]\nprofile = mandatory\nnexthop = 127.0.0.1:%d\n"
                    "mx = %s\n" % (upstream_port, CERT_NAME)))
        self.log = os.path.join(self.d, "mxtls.log")
        chk = subprocess.run([MXTLS, "-t", "-c", self.conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise SystemExit("mxtls -t rejects the bench config:\n" + chk.stdout + chk.stderr)
        self.proc = start("mxtls " + tag, MXTLS_WRAP + [MXTLS, "-c", self.conf], stdout=subprocess.DEVNULL,
                          stderr=open(self.log, "w"))
        self.pid = self.proc.pid
        if not wait_port(self.port, proc=self.proc):
            raise SystemExit("mxtls did not start:\n" + tail(self.log))

    def cpu_ticks(self):
        return tree_ticks(self.pid)

    def alive(self):
        return self.proc.poll() is None


class Stunnel:
    name = "stunnel"

    def __init__(self, upstream_port, tag):
        self.d = os.path.join(B, "stunnel-" + tag)
        shutil.rmtree(self.d, ignore_errors=True)
        os.makedirs(self.d)
        self.port = free_port()
        self.conf = os.path.join(self.d, "stunnel.conf")
        # debug = warning: the level mxtls runs at (log_level = warn); at
        # the default (notice) stunnel logs every connection.
        with open(self.conf, "w") as f:
            f.write("""\
foreground = yes
syslog = no
debug = warning
pid =

[smtp-out]
client = yes
accept = 127.0.0.1:{port}
connect = 127.0.0.1:{up}
protocol = smtp
verifyChain = yes
CAfile = {pki}/test-root-ca.pem
checkHost = {mx}
sslVersionMin = TLSv1.2
""".format(port=self.port, up=upstream_port, pki=PKI, mx=CERT_NAME))
        self.log = os.path.join(self.d, "stunnel.log")
        self.proc = start("stunnel " + tag, ["stunnel", self.conf], stdout=subprocess.DEVNULL,
                          stderr=open(self.log, "w"))
        self.pid = self.proc.pid
        if not wait_port(self.port, proc=self.proc):
            raise SystemExit("stunnel did not start:\n" + tail(self.log))

    def cpu_ticks(self):
        s = proc_stat(self.pid)
        return s["utime"] + s["stime"]

    def alive(self):
        return self.proc.poll() is None


class PostfixRelay:
    name = "postfix"

    def __init__(self, upstream_port):
        self.port = free_port()
        policy = "[127.0.0.1]:%d secure match=%s\n" % (upstream_port, CERT_NAME)
        self.pf = Postfix("relay", self.port, "relay.bench.test", """\
relayhost = [127.0.0.1]:{up}
relay_domains =
smtpd_tls_security_level = none
smtp_tls_security_level = secure
smtp_tls_policy_maps = texthash:{d}/tls_policy
smtp_tls_CAfile = {pki}/test-root-ca.pem
smtp_tls_protocols = >=TLSv1.2
smtp_tls_mandatory_protocols = >=TLSv1.2
smtp_tls_session_cache_database = btree:$data_directory/smtp_scache
smtp_tls_loglevel = 1
smtp_helo_name = relay.bench.test
notify_classes =
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
""".format(up=upstream_port, d=os.path.join(B, "pf-relay"), pki=PKI), files={"tls_policy": policy})
        self.pid = self.pf.pid
        self.log = self.pf.log

    def cpu_ticks(self):
        return self.pf.cpu_ticks()

    def alive(self):
        return self.pf.alive()


# ------------------------------------------------------------ workloads

ERRORS = []  # (contender, workload, text)


def error(c, wl, what, logpath=None):
    """A failed run: listed under Errors; a failure of mxtls makes `make
    bench` exit non-zero (a bug to look at)."""
    text = what + ("\n  log %s:\n%s" % (logpath, tail(logpath)) if logpath else "")
    ERRORS.append((c.name, wl, text))
    log("ERROR %s %s: %s" % (c.name, wl, what))


def run_source(c, sink, wl, msgs, keep):
    """One run of smtp-source through contender c.  Returns (messages/s,
    contender CPU ms per message or None, sink CPU ms per message, percent of
    all CPUs busy), or None when the run failed."""
    argv = ["smtp-source", "-s", str(PAR), "-m", str(msgs), "-l", str(SIZE),
            "-f", "bench@sender.test", "-t", "rcpt@example.test", "-M", "client.bench.test"]
    if keep:
        argv.append("-d")
    argv.append("127.0.0.1:%d" % c.port)
    base = sink.get()
    cpu0 = c.cpu_ticks()
    sink0, busy0 = SINK_TICKS(), busy_ticks()
    errf = os.path.join(B, "smtp-source.err")
    t0 = time.monotonic()
    p = start("smtp-source", argv, stdout=subprocess.DEVNULL, stderr=open(errf, "w"))
    try:
        rc = p.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = None
    t_exit = time.monotonic()
    stop(p)
    if rc is None:
        error(c, wl, "smtp-source did not finish within %d s; the sink has %d of %d messages "
              "(reproduce: sh tests/bench/run.sh with BENCH_ONLY=%s)" % (
                  RUN_TIMEOUT, sink.get() - base, msgs, c.name), c.log)
        return None
    if rc != 0:
        error(c, wl, "smtp-source exited %d after %.1f s, the sink has %d of %d messages; "
              "smtp-source said:\n%s" % (rc, t_exit - t0, sink.get() - base, msgs, tail(errf, 5)), c.log)
        return None
    # Postfix queues: it is done when the sink has everything.  The proxies
    # relay the sink's own reply, so the sink has it all already.
    t_end = sink.wait(base + msgs, RUN_TIMEOUT if c.name == "postfix" else 5)
    if t_end is None:
        error(c, wl, "the sink has %d of %d messages %s s after smtp-source ended" % (
            sink.get() - base, msgs, RUN_TIMEOUT if c.name == "postfix" else 5), c.log)
        return None
    if c.name != "postfix":
        t_end = t_exit
    if sink.get() != base + msgs:
        error(c, wl, "the sink got %d messages, %d were sent" % (sink.get() - base, msgs), c.log)
    if not c.alive():
        error(c, wl, "the %s process died" % c.name, c.log)
        return None
    cpu1 = c.cpu_ticks()
    sink1, busy1 = SINK_TICKS(), busy_ticks()
    cpu = None if cpu0 is None else (cpu1 - cpu0) * 1000.0 / CLK / msgs
    busy = 100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    return msgs / (t_end - t0), cpu, (sink1 - sink0) * 1000.0 / CLK / msgs, busy


def smtp_reply(f):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return line


def make_message():
    body, n = [], 0
    head = ("From: <bench@sender.test>\r\nTo: <rcpt@example.test>\r\nSubject: w4\r\n"
            "Message-ID: <w4@sender.test>\r\n\r\n")
    size = len(head)
    while size < SIZE:
        line = "%08d %s" % (n, "abcdefghijklmnopqrstuvwxyz0123456789" * 2)
        body.append(line)
        size += len(line) + 2
        n += 1
    return (head + "\r\n".join(body) + "\r\n.\r\n").encode()


W4_MSG = None


def one_message(c, sink):
    """One SMTP session with one message; the latency from connect to the
    reply to the final dot (to the sink's count going up, for Postfix)."""
    base = sink.get()
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=30)
    try:
        f = s.makefile("rb")
        for cmd, want in ((None, b"220"), (b"EHLO client.bench.test\r\n", b"250"),
                          (b"MAIL FROM:<bench@sender.test>\r\n", b"250"),
                          (b"RCPT TO:<rcpt@example.test>\r\n", b"250"),
                          (b"DATA\r\n", b"354"), (W4_MSG, b"250")):
            if cmd is not None:
                s.sendall(cmd)
            r = smtp_reply(f)
            if not r.startswith(want):
                raise RuntimeError("%s: %r" % ((cmd or b"banner")[:20], r))
        t1 = time.perf_counter()
        if c.name == "postfix":
            if sink.wait(base + 1, 30) is None:
                raise RuntimeError("the sink did not get the message within 30 s")
            t1 = time.perf_counter()
        s.sendall(b"QUIT\r\n")
        smtp_reply(f)
    finally:
        s.close()
    return t1 - t0


def run_w4(c, sink, n):
    lat = []
    cpu0 = c.cpu_ticks()
    try:
        for _ in range(3):  # warm-up, not counted
            one_message(c, sink)
        for _ in range(n):
            lat.append(one_message(c, sink))
    except (OSError, RuntimeError, ConnectionError) as e:
        error(c, "W4", "message %d of %d failed: %s" % (len(lat) + 1, n, e), c.log)
        return None
    cpu1 = c.cpu_ticks()
    return lat, (None if cpu0 is None else (cpu1 - cpu0) * 1000.0 / CLK / (n + 3))


def run_w3(make, n, w3port):
    """A fresh contender; N idle relayed sessions; its VmRSS growth per
    session.  Returns a dict, or None when it did not hold N sessions."""
    c = make(w3port, "w3-%d" % n)
    try:
        time.sleep(0.5)
        rss0 = status_kib(c.pid, "VmRSS")
        cl = start("w3client", [sys.executable, os.path.join(HERE, "w3client.py"), str(c.port), str(n),
                                "100", str(RUN_TIMEOUT)],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(B, "w3client.err"), "w"))
        t0 = time.monotonic()
        line = cl.stdout.readline().decode().strip()
        secs = time.monotonic() - t0
        ok = line.startswith("ready")
        time.sleep(1.0)  # let the proxy settle (handshakes finished, buffers released)
        res = None
        if c.alive():
            rss1 = status_kib(c.pid, "VmRSS")
            res = {"n": n, "rss0": rss0, "rss1": rss1, "per": (rss1 - rss0) / n,
                   "threads": status_kib(c.pid, "Threads"), "secs": secs, "line": line}
        if not ok or not c.alive():
            last = tail(c.log, 1).replace("    | ", "").strip()
            error(c, "W3 N=%d" % n, "%s%s; its log ends: %s" % (
                line or "(w3client printed nothing: %s)" % tail(os.path.join(B, "w3client.err"), 5),
                "" if c.alive() else "; the %s process died (exit %s)" % (c.name, c.proc.poll()),
                last or "(empty)"), c.log)
            res = None
        cl.stdin.close()
        try:
            cl.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        stop(cl)
        return res
    finally:
        stop(c.proc)


def run_w5(n, sport, matches):
    """A fresh mxtls with n retry records; W5_FAILURES deliveries, 10 at a
    time, each recording a TLS failure, while a healthy session's NOOPs
    are timed (storm.py).  Its figures, or None."""
    c = Mxtls(None, "w5-%d" % n, matches=matches, records=n)
    jpath = os.path.join(c.d, "storm.json")
    try:
        time.sleep(0.5)
        cpu0 = c.cpu_ticks()
        try:
            r = subprocess.run([sys.executable, STORM, "run", "127.0.0.1:%d" % c.port, "0", str(W5_FAILURES),
                                "10", jpath], capture_output=True, text=True, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            error(c, "W5 %d records" % n, "the storm did not end within %d s" % RUN_TIMEOUT, c.log)
            return None
        if r.returncode != 0 or not c.alive():
            error(c, "W5 %d records" % n, "storm.py exited %d%s: %s" % (
                r.returncode, "" if c.alive() else ", mxtls died", (r.stdout + r.stderr).strip()[-400:]),
                c.log)
            return None
        with open(jpath) as f:
            fig = json.load(f)
        # Its threads' CPU (the writer's too), the prober's second of
        # quiet included.
        fig["cpu_ms"] = (c.cpu_ticks() - cpu0) * 1000.0 / CLK / W5_FAILURES
        return fig
    finally:
        stop(c.proc)


# ------------------------------------------------------------ report

def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    """(max - min) / median, percent."""
    if len(xs) < 2 or not med(xs):
        return None
    return 100.0 * (max(xs) - min(xs)) / med(xs)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    i = int(k)
    return xs[i] if i + 1 >= len(xs) else xs[i] + (xs[i + 1] - xs[i]) * (k - i)


def fmt(x, f="%.0f"):
    return "–" if x is None else f % x


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    def ver(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            out = (r.stdout + r.stderr).strip().split("\n")
            return ([l for l in out if l.startswith(argv[0])] or out)[0]
        except (OSError, subprocess.SubprocessError):
            return "?"
    rev = ver(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem": "%.1f GiB" % (mem / 1048576.0),
        "kernel": platform.release(),
        "mxtls": rev + (" (with uncommitted changes)" if dirty else ""),
        "stunnel": ver(["stunnel", "-version"]).replace("\t", " "),
        "postfix": "Postfix " + ver(["postconf", "-d", "-h", "mail_version"]),
    }


def main():
    global W4_MSG
    os.makedirs(B, exist_ok=True)
    stop_leftovers()
    # The logs of an earlier run's proxies would be reported as this run's.
    for d in os.listdir(B):
        if d.startswith("mxtls-"):
            shutil.rmtree(os.path.join(B, d), ignore_errors=True)
    if not os.access(MXTLS, os.X_OK):
        raise SystemExit("%s missing: make all" % MXTLS)
    if subprocess.run(["sh", os.path.join(ROOT, "tests/integration/pki.sh"), PKI]).returncode != 0:
        raise SystemExit("test PKI: tests/integration/pki.sh failed")
    for f in os.listdir(PKI):
        os.chmod(os.path.join(PKI, f), 0o644 if not f.endswith(".key") else 0o640)
    W4_MSG = make_message()
    # A proxy holds two descriptors per relayed session (mxtls refuses to
    # start with max_sessions above (limit - 64) / 2).
    cap = (NOFILE - 136) // 2 // 100 * 100
    ns = sorted(set(min(n, cap) for n in W3_NS))
    notes = []
    if "W3" in WORKLOADS and W3_NS and max(W3_NS) > cap:
        notes.append("W3: N = %d is %d here: the descriptor limit is %d (ulimit -n; raising the hard "
                     "limit needs CAP_SYS_RESOURCE) and a proxy needs two per session" % (
                         max(W3_NS), cap, NOFILE))

    m = machine()
    if "BENCH_MXTLS" in os.environ:
        m["mxtls"] = MXTLS
    log("machine: %(nproc)s x %(cpu)s, %(mem)s, Linux %(kernel)s; mxtls %(mxtls)s; %(stunnel)s; %(postfix)s" % m)

    sink = Sink()
    pf_sink = Postfix("sink", free_port(), CERT_NAME, """\
smtpd_proxy_filter = 127.0.0.1:{sp}
smtpd_tls_security_level = may
smtpd_tls_chain_files = {pki}/valid.key, {pki}/valid.chain.pem
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 1
""".format(sp=sink.port, pki=PKI))
    global SINK_TICKS
    SINK_TICKS = lambda: tree_ticks(pf_sink.pid, skip=("postlogd",)) + tree_ticks(sink.proc.pid)  # noqa: E731
    log("sink: Postfix smtpd with STARTTLS on 127.0.0.1:%d -> smtpd_proxy_filter -> smtp-sink on 127.0.0.1:%d"
        % (pf_sink.port, sink.port))

    cs = []
    for name in ONLY:
        if name == "floor":
            cs.append(Floor(sink))
        elif name == "mxtls":
            cs.append(Mxtls(pf_sink.port, "main"))
        elif name == "stunnel":
            cs.append(Stunnel(pf_sink.port, "main"))
        elif name == "postfix":
            cs.append(PostfixRelay(pf_sink.port))
        else:
            raise SystemExit("BENCH_ONLY: unknown contender %s" % name)
    for c in cs:
        log("contender %s on 127.0.0.1:%d" % (c.name, c.port))

    # Each contender relays one message first, and the sink must have
    # logged a TLS connection for it (the floor excepted).
    for c in cs:
        base = sink.get()
        mark = os.path.getsize(pf_sink.log)
        try:
            lat = one_message(c, sink)
        except (OSError, RuntimeError, ConnectionError) as e:
            error(c, "check", "a first message through %s failed: %s" % (c.name, e), c.log)
            continue
        if sink.wait(base + 1, 30) is None:
            error(c, "check", "a first message through %s never reached the sink" % c.name, c.log)
            continue
        tls = None
        t = time.monotonic() + 5
        while c.name != "floor" and tls is None and time.monotonic() < t:
            with open(pf_sink.log, errors="replace") as f:
                f.seek(mark)
                mt = re.search(r"TLS connection established from [^ ]*: (\S+) with cipher (\S+)", f.read())
            if mt:
                tls = "%s %s" % (mt.group(1), mt.group(2))
            else:
                time.sleep(0.1)
        if c.name != "floor" and tls is None:
            error(c, "check", "the sink logged no TLS connection for the first message through %s" % c.name,
                  pf_sink.log)
            continue
        if c.name == "postfix":
            t = time.monotonic() + 5
            while "Verified TLS connection established" not in open(c.log, errors="replace").read():
                if time.monotonic() > t:
                    error(c, "check", "the Postfix relay logged no verified TLS connection", c.log)
                    break
                time.sleep(0.1)
        log("check: %s relays (%.1f ms)%s" % (c.name, lat * 1000, ", sink saw " + tls if tls else ""))

    if os.environ.get("BENCH_HOLD"):
        signal.alarm(0)
        log("holding (BENCH_HOLD): Postfix sink 127.0.0.1:%d; %s; Ctrl-C stops everything" % (
            pf_sink.port, ", ".join("%s 127.0.0.1:%d" % (c.name, c.port) for c in cs)))
        while True:
            time.sleep(3600)

    res = {c.name: {k: [] for k in ("W1", "W1cpu", "W1sink", "W1busy", "W2", "W2cpu", "W2sink", "W2busy",
                                    "W4", "W4cpu")} for c in cs}
    round_secs = []
    rounds_done = 0
    # Kept for W3 and W5.  W3 takes about 3 ms per session and contender
    # here, plus start-up.
    reserve = 0 if not ns or "W3" not in WORKLOADS else (20 + 0.003 * sum(ns) * 2) * W3_ROUNDS
    # W5: about 8 s per run here (start, a quiet second, the failures).
    if "W5" in WORKLOADS:
        reserve += 8 * len(W5_RECORDS) * W5_ROUNDS
    for r in range(ROUNDS if {"W1", "W2", "W4"} & set(WORKLOADS) else 0):
        elapsed = time.monotonic() - T_START
        if r > 0 and elapsed + max(round_secs) + reserve > BUDGET:
            notes.append("W1/W2/W4: %d of %d rounds (time budget BENCH_BUDGET=%d s)" % (r, ROUNDS, BUDGET))
            break
        t_r = time.monotonic()
        order = cs[r % len(cs):] + cs[:r % len(cs)]
        for wl in [x for x in ("W1", "W2", "W4") if x in WORKLOADS]:
            for c in order:
                if wl == "W4":
                    out = run_w4(c, sink, W4_MSGS)
                    if out:
                        res[c.name]["W4"].append(out[0])
                        if out[1] is not None:
                            res[c.name]["W4cpu"].append(out[1])
                    continue
                out = run_source(c, sink, wl, W1_MSGS if wl == "W1" else W2_MSGS, wl == "W2")
                if out:
                    res[c.name][wl].append(out[0])
                    if out[1] is not None:
                        res[c.name][wl + "cpu"].append(out[1])
                    res[c.name][wl + "sink"].append(out[2])
                    res[c.name][wl + "busy"].append(out[3])
                    log("round %d %s %-8s %7.0f msg/s  %s ms CPU/msg  (sink %.3f ms/msg, CPUs %.0f%% busy)" % (
                        r + 1, wl, c.name, out[0], fmt(out[1], "%.3f"), out[2], out[3]))
        round_secs.append(time.monotonic() - t_r)
        rounds_done = r + 1
        log("round %d done in %.0f s" % (r + 1, round_secs[-1]))

    # W3: fresh proxies behind the W3 sink, N idle relayed sessions each.
    w3 = {}
    w3_contenders = [(Mxtls, "mxtls"), (Stunnel, "stunnel")]
    w3_contenders = [x for x in w3_contenders if x[1] in ONLY]
    if ns and w3_contenders and "W3" in WORKLOADS:
        w3port = free_port()
        w3s = start("w3sink", [sys.executable, os.path.join(HERE, "w3sink.py"), str(w3port),
                               os.path.join(PKI, "valid.chain.pem"), os.path.join(PKI, "valid.key")],
                    stdout=subprocess.PIPE, stderr=open(os.path.join(B, "w3sink.err"), "w"))
        if w3s.stdout.readline().strip() != b"listening":
            raise SystemExit("w3sink did not start:\n" + tail(os.path.join(B, "w3sink.err")))
        for make, name in w3_contenders:
            w3[name] = {}
        for rr in range(W3_ROUNDS):
            for n in ns:
                for make, name in (w3_contenders if rr % 2 == 0 else w3_contenders[::-1]):
                    if w3[name].get(n) == "failed" or any(
                            w3[name].get(k) == "failed" for k in ns if k < n):
                        continue
                    if time.monotonic() - T_START > BUDGET + 60:
                        notes.append("W3: %s N=%d skipped (time budget)" % (name, n))
                        continue
                    out = run_w3(make, n, w3port)
                    if out is None:
                        w3[name][n] = "failed"
                        continue
                    w3[name].setdefault(n, []).append(out)
                    log("W3 %-8s N=%5d  %6.1f KiB/session  (VmRSS %d -> %d KiB, threads: %d, set up in %.1f s)" % (
                        name, n, out["per"], out["rss0"], out["rss1"], out["threads"], out["secs"]))
        if not w3s.poll() is None:
            notes.append("W3: the W3 sink died")
        stop(w3s)

    # W5: TLS failures recorded at 0 / 10k / 100k retry records.
    w5 = {}
    if "W5" in WORKLOADS and "mxtls" in ONLY and W5_RECORDS:
        sport = free_port()
        srv = start("storm server", [sys.executable, STORM, "server", str(W5_FAILURES), str(sport)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(B, "storm.err"), "w"))
        if srv.stdout.readline().strip() != b"listening":
            raise SystemExit("the storm server did not start:\n" + tail(os.path.join(B, "storm.err")))
        matches = "".join("[match d%d.storm.test]\nprofile = mandatory\nnexthop = 127.0.%d.%d:%d\n"
                          "mx = mx.storm.test\n\n" % (i, 1 + i // 250, 1 + i % 250, sport)
                          for i in range(W5_FAILURES))
        for rr in range(W5_ROUNDS):
            for n in W5_RECORDS:
                out = run_w5(n, sport, matches)
                if out is None:
                    continue
                w5.setdefault(n, []).append(out)
                log("W5 %6d records: %d failures in %.2f s, %.2f ms CPU each, delivery median %.1f ms; "
                    "NOOP median %.2f ms, p99 %.2f ms, max %.2f ms (%d)" % (
                        n, out["failures"], out["storm_s"], out["cpu_ms"], out["delivery_median_ms"],
                        out["noop_median_ms"], out["noop_p99_ms"], out["noop_max_ms"], out["noop_n"]))
        stop(srv)

    report(m, cs, res, w3, ns, rounds_done, notes, w5)


def report(m, cs, res, w3, ns, rounds, notes, w5):
    names = [c.name for c in cs]
    L = []
    L.append("Machine: %(nproc)s CPUs (%(cpu)s), %(mem)s RAM, Linux %(kernel)s; taken %(date)s." % m)
    L.append("Versions: mxtls %(mxtls)s; %(stunnel)s; %(postfix)s." % m)
    L.append("Workloads: %s. " % " ".join(WORKLOADS) +
             "Rounds: %d of W1/W2/W4 (contenders alternate, order rotated each round), %d of W3, %d of W5. "
             "Figures: median [min–max] over rounds. "
             "Sink CPU: the Postfix sink and smtp-sink; CPUs busy: all CPUs of the machine during the run, "
             "load generator and anything else running included." % (rounds, W3_ROUNDS, W5_ROUNDS))
    L.append("")

    def mm(xs, f):
        if not xs:
            return "failed"
        if len(xs) == 1:
            return f % xs[0]
        return (f + " [" + f + "–" + f + "]") % (med(xs), min(xs), max(xs))

    for wl, title in (("W1", "W1: one message per connection (%d × %d B, %d parallel)" % (W1_MSGS, SIZE, PAR)),
                      ("W2", "W2: long sessions (%d × %d B, %d parallel sessions of ~%d messages)" % (
                          W2_MSGS, SIZE, PAR, W2_MSGS // PAR))):
        if wl not in WORKLOADS:
            continue
        L.append("### " + title)
        L.append("")
        L.append("| contender | messages/s | spread | CPU ms/message | sink CPU ms/message | CPUs busy |")
        L.append("|---|---|---|---|---|---|")
        for n in names:
            xs, cpu = res[n][wl], res[n][wl + "cpu"]
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                n, mm(xs, "%.0f"), fmt(spread(xs), "%.0f%%"), mm(cpu, "%.3f") if cpu else "–",
                fmt(med(res[n][wl + "sink"]), "%.3f"), fmt(med(res[n][wl + "busy"]), "%.0f%%")))
        L.append("")

    fl = [x for rr in res.get("floor", {}).get("W4", []) for x in rr]
    fmed, fp99 = (med(fl), pct(fl, 99)) if fl else (None, None)
    if "W4" in WORKLOADS:
        L.append("### W4: latency, one message at a time (%d per contender and round, %d B)" % (W4_MSGS, SIZE))
        L.append("")
        L.append("| contender | median ms | p99 ms | p99/median | added median ms | added p99 ms | CPU ms/message |")
        L.append("|---|---|---|---|---|---|---|")
        for n in names:
            lat = [x for rr in res[n]["W4"] for x in rr]
            if not lat:
                L.append("| %s | failed | | | | | |" % n)
                continue
            md, p99 = med(lat) * 1000, pct(lat, 99) * 1000
            add_m = None if fmed is None or n == "floor" else md - fmed * 1000
            add_p = None if fp99 is None or n == "floor" else p99 - fp99 * 1000
            L.append("| %s | %.2f | %.2f | %.1f | %s | %s | %s |" % (
                n, md, p99, p99 / md, fmt(add_m, "%.2f"), fmt(add_p, "%.2f"),
                mm(res[n]["W4cpu"], "%.3f") if res[n]["W4cpu"] else "–"))
        if "postfix" in names:
            L.append("")
            L.append("Postfix's latency is taken until smtp-sink has the message (it queues); the others' "
                     "until the reply to the final dot, which is the sink's own.")
        L.append("")

    if w3:
        L.append("### W3: idle relayed sessions (EHLO, MAIL, RCPT done; upstream TLS session open)")
        L.append("")
        L.append("| contender | " + " | ".join("N = %d" % n for n in ns) + " |")
        L.append("|---|" + "---|" * len(ns))
        for name, byn in w3.items():
            cells = []
            for n in ns:
                v = byn.get(n)
                if v == "failed":
                    cells.append("**failed** (see Errors)")
                elif not v:
                    cells.append("–")
                else:
                    per = [x["per"] for x in v]
                    cells.append("%.1f KiB/session (%d thread%s)" % (
                        med(per), v[0]["threads"], "" if v[0]["threads"] == 1 else "s"))
            L.append("| %s | %s |" % (name, " | ".join(cells)))
        L.append("")
        L.append("Resident memory growth of the proxy process (VmRSS with N sessions held minus VmRSS "
                 "before, fresh process) divided by N.  Postfix: not measured (a store-and-forward relay "
                 "keeps no upstream session for an idle client, and runs one smtpd process per client).")
        L.append("")

    if w5:
        L.append("### W5: TLS failures recorded while the retry records grow (%d deliveries, 10 at a time, "
                 "each a new record; %d round%s)" % (W5_FAILURES, W5_ROUNDS, "" if W5_ROUNDS == 1 else "s"))
        L.append("")
        L.append("| records at start | failures took s | mxtls CPU ms/failure | delivery median ms | "
                 "delivery p99 ms | healthy NOOP median ms | NOOP p99 ms | NOOP max ms |")
        L.append("|---|---|---|---|---|---|---|---|")
        for n in W5_RECORDS:
            v = w5.get(n)
            if not v:
                L.append("| %d | **failed** (see Errors) | | | | | | |" % n)
                continue

            def col(k, f="%.1f"):
                return mm([x[k] for x in v], f)
            L.append("| %d | %s | %s | %s | %s | %s | %s | %s |" % (
                n, col("storm_s", "%.2f"), col("cpu_ms", "%.2f"), col("delivery_median_ms"),
                col("delivery_p99_ms"),
                col("noop_median_ms", "%.2f"), col("noop_p99_ms", "%.2f"), col("noop_max_ms", "%.2f")))
        L.append("")
        L.append("Each delivery ends at RCPT: the next hop offers no STARTTLS under a mandatory profile "
                 "(451 4.7.5 and a new retry record; at 100,000 records each one evicts the oldest).  "
                 "CPU: the mxtls process (both threads), utime + stime.  "
                 "Delivery: connect to the RCPT reply.  NOOP: one healthy session's replies, one NOOP "
                 "every 2 ms during the failures (tests/integration/files/storm.py; the failures run at "
                 "nice 10).")
        L.append("")

    if rounds:
        L.append("### Ratios (mxtls : other; median of per-round ratios)")
        L.append("")
        L.append("| figure | mxtls : stunnel | mxtls : postfix | target |")
        L.append("|---|---|---|---|")

        def ratio(key, other, invert=False):
            a, b = res.get("mxtls", {}).get(key, []), res.get(other, {}).get(key, [])
            k = min(len(a), len(b))
            if k == 0:
                return None
            return med([a[i] / b[i] for i in range(k) if b[i]])

        def rs(x, f="%.2f"):
            return "–" if x is None else f % x
        L.append("| W1 messages/s | %s | %s | ≥ 3 vs stunnel |" % (rs(ratio("W1", "stunnel")), rs(ratio("W1", "postfix"))))
        L.append("| W1 CPU/message | %s | %s | ≤ 0.33 vs stunnel |" % (rs(ratio("W1cpu", "stunnel")), rs(ratio("W1cpu", "postfix"))))
        L.append("| W2 messages/s | %s | %s | ≥ 2 vs stunnel |" % (rs(ratio("W2", "stunnel")), rs(ratio("W2", "postfix"))))
        L.append("| W2 CPU/message | %s | %s | |" % (rs(ratio("W2cpu", "stunnel")), rs(ratio("W2cpu", "postfix"))))

        def w4added(name):
            lat = [x for rr in res.get(name, {}).get("W4", []) for x in rr]
            if not lat or fmed is None:
                return None
            return med(lat) - fmed
        a = w4added("mxtls")
        st, pf = w4added("stunnel"), w4added("postfix")
        L.append("| W4 added median latency | %s | %s | ≤ 1 vs stunnel |" % (
            rs(a / st if a is not None and st else None), rs(a / pf if a is not None and pf else None)))
        if w3.get("mxtls") and w3.get("stunnel"):
            cells = []
            for n in ns:
                x, y = w3["mxtls"].get(n), w3["stunnel"].get(n)
                if isinstance(x, list) and isinstance(y, list):
                    cells.append("N=%d: %.2f" % (n, med([v["per"] for v in x]) / med([v["per"] for v in y])))
            L.append("| W3 memory/session | %s | – | ≤ 32 KiB/session |" % ("; ".join(cells) or "–"))
        L.append("")
    if notes:
        L.append("Notes: " + "; ".join(notes) + ".")
        L.append("")
    if ERRORS:
        L.append("### Errors")
        L.append("")
        for name, wl, text in ERRORS:
            L.append("- %s, %s: %s" % (name, wl, text.split("\n")[0]))
        L.append("")

    # What mxtls logged at log_level = warn (nothing, when all is well).
    for d in sorted(os.listdir(B)):
        lp = os.path.join(B, d, "mxtls.log")
        if d.startswith("mxtls-") and os.path.exists(lp):
            lines = open(lp, errors="replace").read().splitlines()
            if lines:
                L.append("mxtls logged %d lines in %s, the first: `%s`" % (
                    len(lines), os.path.relpath(lp, ROOT), lines[0][:200]))
                L.append("")
    text = "\n".join(L)
    print()
    print(text)
    if ERRORS:
        print("Error details:")
        for name, wl, text2 in ERRORS:
            print("--- %s %s\n%s" % (name, wl, text2))
    with open(OUT, "w") as f:
        f.write(text + "\n")
    with open(os.path.join(B, "results.json"), "w") as f:
        json.dump({"machine": m, "res": res, "w3": {k: {str(n): v for n, v in d.items()} for k, d in w3.items()},
                   "w5": {str(n): v for n, v in w5.items()},
                   "errors": ERRORS, "notes": notes}, f, indent=1, default=str)
    log("table written to %s (raw figures: %s)" % (OUT, os.path.join(B, "results.json")))


def on_signal(sig, frame):
    raise SystemExit("interrupted by signal %d" % sig)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(BUDGET + 420)  # the whole run is bounded in time
    rc = 1
    try:
        main()
        rc = 1 if any(e[0] == "mxtls" for e in ERRORS) else 0
    finally:
        stop_all()
    sys.exit(rc)
