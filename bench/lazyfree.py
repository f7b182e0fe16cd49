#!/usr/bin/env python3
"""UNLINK vs DEL of a huge set while another client PINGs, Cinnabar next to
Redis 7.0: how long the deleting command takes and the worst PING latency
meanwhile (the event loop must not stall on UNLINK).

Usage: bench/lazyfree.py [members]   (default 10,000,000)
"""
import os, socket, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CINNABAR = os.environ.get("CINNABAR_BIN", os.path.join(ROOT, "target/release/cinnabar-server"))


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def reply(s):
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(65536)
    return buf


def fill(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    batch = 1000
    pending = 0
    for start in range(0, n, batch):
        s.sendall(enc("SADD", "big", *range(start, min(n, start + batch))))
        pending += 1
        if pending == 50:
            got = b""
            while got.count(b"\r\n") < pending:
                got += s.recv(65536)
            pending = 0
    got = b""
    while got.count(b"\r\n") < pending:
        got += s.recv(65536)
    s.sendall(enc("SCARD", "big"))
    return int(reply(s)[1:])


def measure(port, cmd, n):
    size = fill(port, n)
    stop = threading.Event()
    worst = [0.0]

    def pinger():
        p = socket.create_connection(("127.0.0.1", port))
        p.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set():
            t = time.perf_counter()
            p.sendall(b"PING\r\n")
            reply(p)
            worst[0] = max(worst[0], time.perf_counter() - t)

    th = threading.Thread(target=pinger)
    th.start()
    time.sleep(0.5)
    worst[0] = 0.0
    s = socket.create_connection(("127.0.0.1", port))
    t = time.perf_counter()
    s.sendall(enc(cmd, "big"))
    r = reply(s)
    took = time.perf_counter() - t
    time.sleep(1.0)
    stop.set()
    th.join()
    return size, r.strip().decode(), took * 1000, worst[0] * 1000


def start(kind, port):
    exe = "redis-server" if kind == "redis" else CINNABAR
    p = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(kind + " did not start")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    print("%-9s %-7s %10s %8s %12s %14s" % ("server", "command", "members", "reply", "command_ms", "max_ping_ms"))
    for kind, port in (("redis", 7426), ("cinnabar", 7427)):
        for cmd in ("UNLINK", "DEL"):
            p = start(kind, port)
            try:
                size, r, took, worst = measure(port, cmd, n)
                print("%-9s %-7s %10d %8s %12.1f %14.1f" % (kind, cmd, size, r, took, worst), flush=True)
            finally:
                p.terminate()
                p.wait()


if __name__ == "__main__":
    main()
