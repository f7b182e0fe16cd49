#!/usr/bin/env python3
"""Loads a dataset over raw RESP with deep pipelining (for bench/memory.sh).

Usage: load.py PORT hash|set|zset|list KEYS MEMBERS
"""
import socket, sys

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def main():
    port, kind, keys, members = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.create_connection(("127.0.0.1", port))
    batch, pending = [], 0
    def flush():
        nonlocal batch, pending
        s.sendall(b"".join(batch))
        # Each command gets exactly one short reply line.
        got = 0
        buf = b""
        while got < pending:
            buf += s.recv(1 << 20)
            got = buf.count(b"\r\n")
        batch, pending = [], 0
    for k in range(keys):
        key = "%s:%d" % (kind, k)
        if kind == "hash":
            args = ["HSET", key]
            for f in range(members):
                args += ["field%d" % f, "value%d" % (k + f)]
        elif kind == "set":
            args = ["SADD", key] + [str(k * members + m) for m in range(members)]
        elif kind == "zset":
            args = ["ZADD", key]
            for m in range(members):
                args += [str(m * 1.5), "member%d" % m]
        else:
            args = ["RPUSH", key] + ["item%d" % m for m in range(members)]
        batch.append(cmd(*args))
        pending += 1
        if pending >= 1000:
            flush()
    if pending:
        flush()

main()
