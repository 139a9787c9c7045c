#!/usr/bin/env python3
"""The receiving TLS server of W3 (idle sessions): a minimal SMTP server with
STARTTLS that holds any number of sessions in one process.

Postfix smtpd, the sink of the other workloads, runs one process per session
and cannot hold 10,000 of them on a small machine; the figure W3 measures is
the proxy's memory, not the sink's.  Same certificate as the Postfix sink.

Usage: w3sink.py PORT CHAIN KEY
Prints "listening" once it accepts connections.  Stops on SIGTERM.
"""
import asyncio
import signal
import ssl
import sys

HOST = b"mx.example.test"


async def session(reader, writer, ctx):
    tls = False
    try:
        writer.write(b"220 " + HOST + b" ESMTP w3sink\r\n")
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                ext = b"" if tls else b"250-STARTTLS\r\n"
                writer.write(b"250-" + HOST + b"\r\n250-PIPELINING\r\n250-8BITMIME\r\n" + ext +
                             b"250 SIZE 52428800\r\n")
            elif verb == b"STAR" and not tls:
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(ctx)
                tls = True
                continue
            elif verb == b"DATA":
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                while True:
                    d = await reader.readline()
                    if not d:
                        return
                    if d == b".\r\n":
                        break
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                break
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 2.0.0 Ok\r\n")
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    port, chain, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(chain, key)
    server = await asyncio.start_server(lambda r, w: session(r, w, ctx), "127.0.0.1", port,
                                        backlog=4096, limit=65536)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print("listening", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
