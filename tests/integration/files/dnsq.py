#!/usr/bin/env python3
"""Ask a DNS server one question over UDP and print the answer, for checking
the test zone.  usage: dnsq.py SERVER:PORT NAME A|AAAA|MX|TXT

Prints "rcode=NAME" then one line per answer record: "MX 10 mx.example.test",
"A 127.0.0.2", "TXT ...".  Exit 2 when no answer came."""
import random
import socket
import struct
import sys

TYPES = {"A": 1, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def name_at(msg, off):
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = struct.unpack(">H", msg[off:off + 2])[0] & 0x3FFF
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    if not jumped:
        end = off
    return ".".join(labels) or ".", end


def main():
    server, name, qtype = sys.argv[1], sys.argv[2], sys.argv[3].upper()
    host, _, port = server.rpartition(":")
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", TYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(q, (host, int(port)))
        msg, _ = s.recvfrom(65535)
    except OSError as e:
        print("error=%s" % e)
        return 2
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    print("rcode=%s" % RCODES.get(flags & 15, str(flags & 15)))
    off = 12
    for _ in range(qd):
        _, off = name_at(msg, off)
        off += 4
    for _ in range(an):
        rname, off = name_at(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            print("A %s" % socket.inet_ntoa(rdata))
        elif rtype == 28:
            print("AAAA %s" % socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype == 15:
            pref = struct.unpack(">H", rdata[:2])[0]
            print("MX %d %s" % (pref, name_at(msg, off + 2)[0]))
        elif rtype == 16:
            print("TXT %s" % rdata[1:1 + rdata[0]].decode("utf-8", "replace"))
        else:
            print("TYPE%d %s" % (rtype, rdata.hex()))
        off += rdlen
    return 0


if __name__ == "__main__":
    sys.exit(main())
