#!/usr/bin/env python3
"""A scripted SMTP client for the integration tests.

usage: smtpc.py [--timeout S] HOST:PORT STEP...

Reads the greeting, then runs each STEP and prints one line per reply:
    LABEL => CODE text[ / continuation lines]
STEP is
    a command line ("EHLO x", "MAIL FROM:<a@b>", "RSET", "QUIT"...):
        sent with CRLF; LABEL is the command itself
    DATA=FILE   DATA; if the reply is 354, FILE's bytes with every line ending
                turned into CRLF and dot-stuffed, then ".". Labels "DATA" and "DOT"
    RAW=FILE    FILE's bytes sent exactly as they are; then one reply is read
                (label "RAW")
    PIPE=CMD|CMD|...  several commands in one write (PIPELINING); one reply each
    WAITFOR=FILE  nothing sent: wait until FILE exists (the test changes the
                world in between), at most the timeout (label "WAITFOR")
The greeting is labelled CONNECT.  Exit 0 when the script ran to its end (any
reply codes), 2 on a connection error or timeout (printed as "LABEL => !!! why").
"""
import os
import socket
import sys
import time


def read_reply(f):
    lines = []
    while True:
        line = f.readline(65536)
        if not line:
            raise EOFError("connection closed by server")
        line = line.rstrip(b"\r\n").decode("utf-8", "replace")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def show(label, lines):
    text = " / ".join(l[4:] if len(l) > 4 else "" for l in lines[1:])
    first = lines[0]
    out = first if not text else first + " / " + text
    print("%s => %s" % (label, out), flush=True)
    return first[:3]


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


def main():
    args = sys.argv[1:]
    timeout = 30.0
    if len(args) >= 2 and args[0] == "--timeout":
        timeout = float(args[1])
        args = args[2:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 64
    host, _, port = args[0].rpartition(":")
    label = "CONNECT"
    try:
        s = socket.create_connection((host, int(port)), timeout=timeout)
        f = s.makefile("rb")
        show(label, read_reply(f))
        for step in args[1:]:
            if step.startswith("DATA="):
                with open(step[5:], "rb") as fh:
                    body = fh.read()
                label = "DATA"
                s.sendall(b"DATA\r\n")
                if show(label, read_reply(f)) != "354":
                    continue
                label = "DOT"
                s.sendall(stuff(body))
                show(label, read_reply(f))
            elif step.startswith("RAW="):
                with open(step[4:], "rb") as fh:
                    label = "RAW"
                    s.sendall(fh.read())
                show(label, read_reply(f))
            elif step.startswith("WAITFOR="):
                label = "WAITFOR"
                end = time.monotonic() + timeout
                while not os.path.exists(step[8:]):
                    if time.monotonic() > end:
                        raise OSError("%s never appeared" % step[8:])
                    time.sleep(0.05)
            elif step.startswith("PIPE="):
                cmds = step[5:].split("|")
                s.sendall(b"".join(c.encode() + b"\r\n" for c in cmds))
                for c in cmds:
                    label = c
                    show(label, read_reply(f))
            else:
                label = step
                s.sendall(step.encode("utf-8") + b"\r\n")
                show(label, read_reply(f))
        s.close()
    except (OSError, EOFError, ValueError) as e:
        print("%s => !!! %s" % (label, e), flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
