#!/usr/bin/env python3
"""A TCP forwarder that adds a fixed one-way delay to every chunk, in both directions.

This sandbox's kernel has no `netem` qdisc (`tc qdisc add dev lo root netem delay 2ms`
fails with "Specified qdisc kind is unknown", and there is no modprobe), so latency for
the network-destination benchmark is injected here instead: sshfs -> this proxy -> sshd.
Each chunk is forwarded `delay` seconds after it arrived, order preserved, so the added
round-trip time is 2 x delay while throughput is not capped.

Usage: delayproxy.py LISTEN_PORT TARGET_PORT DELAY_MS
       delayproxy.py --exec DELAY_MS [--rate KB_PER_S] COMMAND [ARGS...]

The second form needs no port and no sshd: it runs COMMAND (e.g. `sftp-server`) and
forwards its standard input and output with the delay, so sshfs can use it as its
`ssh_command` (the integration tests do: a share with round trips as slow as a NAS's).
With --rate, each direction also carries at most KB_PER_S kilobytes (1,000 bytes) a
second: a slow link, on which a large file takes a while.
"""
import asyncio
import os
import queue
import subprocess
import sys
import threading
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def sender():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.close()
        except Exception:
            pass

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except Exception:
        pass
    queue.put_nowait((0, None))
    await task


async def main():
    listen, target, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = delay_ms / 1000.0

    async def handle(cr, cw):
        sr, sw = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pump(cr, sw, delay), pump(sr, cw, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


def exec_main(delay_ms, command, rate_kb=None):
    """Runs `command`, forwarding stdin -> its stdin and its stdout -> stdout with the delay
    (and at most `rate_kb` kilobytes a second each way)."""
    delay = delay_ms / 1000.0
    rate = rate_kb * 1000.0 if rate_kb else None
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def forward(src, dst):
        q = queue.Queue()

        def send():
            while True:
                due, data = q.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    while data:
                        data = data[os.write(dst, data):]
                except OSError:
                    break
            try:
                os.close(dst)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # When the link is free again (with --rate): each chunk leaves once those before it
        # have had their time on the link.
        free_at = 0.0
        while True:
            try:
                data = os.read(src, 1 << 20)
            except OSError:
                data = b""
            if not data:
                break
            due = time.monotonic() + delay
            if rate:
                free_at = max(free_at, time.monotonic()) + len(data) / rate
                due = max(due, free_at)
            q.put((due, data))
        q.put((0, None))
        sender.join()

    up = threading.Thread(
        target=forward, args=(sys.stdin.fileno(), child.stdin.fileno()), daemon=True
    )
    up.start()
    forward(child.stdout.fileno(), sys.stdout.fileno())
    child.wait()


def usage(problem):
    """Says what is wrong with the command line, and how to use it (exit 2)."""
    usage_lines = __doc__[__doc__.index("Usage:") : __doc__.index("The second form")].rstrip()
    print(f"delayproxy.py: {problem}\n{usage_lines}", file=sys.stderr)
    sys.exit(2)


def number(text, what):
    try:
        value = float(text)
    except ValueError:
        usage(f"{what} must be a number, not {text!r}")
    if value < 0:
        usage(f"{what} must not be negative, not {text!r}")
    return value


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
    elif args[:1] == ["--exec"]:
        rate = None
        if args[2:3] == ["--rate"]:
            if len(args) < 4:
                usage("--rate needs KB_PER_S")
            rate = number(args[3], "KB_PER_S")
            if rate == 0:
                usage("KB_PER_S must be more than 0")
            args = args[:2] + args[4:]
        if len(args) < 3:
            usage("--exec needs DELAY_MS and a COMMAND")
        exec_main(number(args[1], "DELAY_MS"), args[2:], rate)
    elif len(args) == 3:
        for port in args[:2]:
            if not port.isdigit() or not 0 < int(port) < 65536:
                usage(f"a port must be a number from 1 to 65535, not {port!r}")
        number(args[2], "DELAY_MS")
        asyncio.run(main())
    else:
        usage("expected LISTEN_PORT TARGET_PORT DELAY_MS, or --exec DELAY_MS COMMAND")
