#!/usr/bin/env python3
"""Regenerates the Redis-made seed corpora under fuzz/corpus/.

Starts its own redis-server 7.0 (port 7420 by default, a temporary --dir),
builds datasets of every type and encoding, and copies what Redis wrote:

- rdb_load/:        dump.rdb files (SAVE), with and without compression
- restore_payload/: DUMP payloads, one per type and encoding
- aof_load/:        multi-part AOF directories (manifest + base + incr),
                    packed in the aof_load container format (see
                    fuzz/core/src/aof_load.rs: manifest, then each file,
                    separated by FILE_SEP)
- resp_reply/:      raw reply bytes Redis sent, in RESP2 and RESP3
- resp_request/:    request samples (multibulk, inline, pipelined, broken)

The server is stopped by its PID. Usage: make_corpus.py [PORT]
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7420
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")
FILE_SEP = b"\x00\x00FILE\x00\x00"


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _need(self, n):
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)

    def _read_value(self):
        line = self._line()
        self.raw_log += line + b"\r\n"
        t, rest = line[:1], line[1:]
        if t in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return None
            self._need(n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            self.raw_log += data + b"\r\n"
            return data
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = int(rest)
            if t in (b"%", b"|"):
                n *= 2
            items = [self._read_value() for _ in range(max(n, 0))]
            if t == b"|":
                return self._read_value()
            return items
        if t == b"-":
            return Exception(rest.decode())
        return rest

    def call(self, *args):
        self.raw_log = b""
        self.s.sendall(enc(*args))
        return self._read_value()

    def call_raw(self, *args):
        self.raw_log = b""
        self.s.sendall(enc(*args))
        self._read_value()
        return self.raw_log


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def populate(c, big):
    c.call("FLUSHALL")
    c.call("SET", "int", "12345")
    c.call("SET", "neg", "-9223372036854775808")
    c.call("SET", "short", "hello")
    c.call("SET", "long", "x" * 200)
    c.call("SET", "random", os.urandom(40))
    c.call("SET", "ttl", "v", "PX", "100000000")
    c.call("RPUSH", "list", "a", "b", "1", "-7", "z" * 70)
    c.call("HSET", "hash", "f1", "v1", "f2", "2", "f3", "y" * 30)
    c.call("SADD", "intset", "1", "2", "3", "-70000", "9223372036854775807")
    c.call("SADD", "set", "a", "b", "c")
    c.call("ZADD", "zset", "1", "a", "2.5", "b", "-inf", "c", "inf", "d")
    c.call("SELECT", "3")
    c.call("SET", "in3", "yes")
    c.call("SELECT", "0")
    if big:
        c.call("RPUSH", "biglist", *[str(i) * (i % 7 + 1) for i in range(600)])
        c.call("HSET", "bighash", *sum(([f"f{i}", f"v{i}"] for i in range(600)), []))
        c.call("SADD", "bigset", *[f"m{i}" for i in range(600)])
        c.call("SADD", "bigintset", *[str(i * 1000) for i in range(600)])
        c.call("ZADD", "bigzset", *sum(([str(i / 3), f"m{i}"] for i in range(300)), []))
        c.call("SET", "biglong", "abc" * 3000)


def main():
    tmp = tempfile.mkdtemp(prefix="cinnabar-corpus-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(PORT), "--dir", tmp, "--save", "",
         "--appendonly", "no", "--enable-debug-command", "yes",
         "--logfile", os.path.join(tmp, "redis.log")],
    )
    try:
        for _ in range(100):
            try:
                c = Conn()
                break
            except OSError:
                time.sleep(0.05)
        c.call("FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() return 1 end)")

        # RDB files.
        for name, big, comp in [("small.rdb", False, "yes"), ("big.rdb", True, "yes"),
                                ("big-nocompress.rdb", True, "no")]:
            c.call("CONFIG", "SET", "rdbcompression", comp)
            populate(c, big)
            c.call("SAVE")
            with open(os.path.join(tmp, "dump.rdb"), "rb") as f:
                write("rdb_load", name, f.read())
        c.call("CONFIG", "SET", "rdbcompression", "yes")
        c.call("CONFIG", "SET", "list-compress-depth", "1")
        c.call("CONFIG", "SET", "list-max-listpack-size", "4")
        populate(c, True)
        c.call("SAVE")
        with open(os.path.join(tmp, "dump.rdb"), "rb") as f:
            write("rdb_load", "compressed-quicklist.rdb", f.read())
        c.call("CONFIG", "SET", "list-compress-depth", "0")
        c.call("CONFIG", "SET", "list-max-listpack-size", "-2")
        c.call("FLUSHALL")
        c.call("SAVE")
        with open(os.path.join(tmp, "dump.rdb"), "rb") as f:
            write("rdb_load", "empty.rdb", f.read())

        # DUMP payloads.
        populate(c, True)
        for key in ["int", "neg", "short", "long", "random", "list", "hash", "intset",
                    "set", "zset", "biglist", "bighash", "bigset", "bigintset",
                    "bigzset", "biglong"]:
            write("restore_payload", key, c.call("DUMP", key))

        # Replies, RESP2 then RESP3.
        queries = [
            ("PING",), ("GET", "short"), ("GET", "missing"), ("INCR", "short"),
            ("LRANGE", "list", "0", "-1"), ("HGETALL", "hash"), ("SMEMBERS", "set"),
            ("ZRANGE", "zset", "0", "-1", "WITHSCORES"), ("ZSCORE", "zset", "b"),
            ("OBJECT", "ENCODING", "list"), ("COMMAND", "INFO", "get", "set"),
            ("CONFIG", "GET", "maxmemory*"), ("SCAN", "0"), ("LPOP", "missing", "2"),
            ("EXISTS", "a", "b"), ("DEBUG", "PROTOCOL", "attrib"), ("DEBUG", "PROTOCOL", "bignum"),
            ("DEBUG", "PROTOCOL", "true"), ("DEBUG", "PROTOCOL", "verbatim"),
            ("DEBUG", "PROTOCOL", "double"), ("DEBUG", "PROTOCOL", "null"),
            ("XADD",), ("CLIENT", "INFO"),
        ]
        for proto in (2, 3):
            c.call("HELLO", str(proto))
            stream = b""
            for q in queries:
                raw = c.call_raw(*q)
                stream += raw
            write("resp_reply", f"replies-resp{proto}", stream)
        c.call("HELLO", "3")
        c.call("SUBSCRIBE", "ch")
        c2 = Conn()
        c2.call("PUBLISH", "ch", "hello")
        c.raw_log = b""
        c._read_value()
        write("resp_reply", "push-resp3", c.raw_log)

        # AOF directories. No function library: aof_load skips inputs that
        # mention Lua (finding F-1), and the base would carry it.
        c = Conn()
        c.call("FUNCTION", "FLUSH")
        for preamble, ts in [("yes", "no"), ("no", "no"), ("yes", "yes")]:
            c.call("CONFIG", "SET", "appendonly", "no")
            shutil.rmtree(os.path.join(tmp, "appendonlydir"), ignore_errors=True)
            c.call("CONFIG", "SET", "aof-use-rdb-preamble", preamble)
            c.call("CONFIG", "SET", "aof-timestamp-enabled", ts)
            populate(c, False)
            c.call("CONFIG", "SET", "appendonly", "yes")
            for _ in range(100):
                info = c.call("INFO", "persistence")
                if b"aof_rewrite_in_progress:0" in info and b"aof_rewrite_scheduled:0" in info:
                    break
                time.sleep(0.05)
            c.call("SET", "after", "rewrite", "EX", "1000")
            c.call("INCRBYFLOAT", "f", "1.5")
            c.call("MULTI")
            c.call("LPUSH", "list", "x")
            c.call("SPOP", "set")
            c.call("EXEC")
            c.call("SELECT", "2")
            c.call("HSET", "h2", "a", "b")
            c.call("SELECT", "0")
            c.call("DEL", "short")
            time.sleep(1.2)  # everysec
            d = os.path.join(tmp, "appendonlydir")
            with open(os.path.join(d, "appendonly.aof.manifest"), "rb") as f:
                manifest = f.read()
            parts = [manifest]
            for line in manifest.decode().splitlines():
                t = line.split()
                if len(t) >= 6 and t[5] in ("b", "i"):
                    with open(os.path.join(d, t[1]), "rb") as f:
                        parts.append(f.read())
            write("aof_load", f"preamble-{preamble}-ts-{ts}", FILE_SEP.join(parts))
        c.call("CONFIG", "SET", "appendonly", "no")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    # Request samples (no server needed).
    write("resp_request", "multibulk", enc("SET", "k", "v") + enc("GET", "k") + enc("PING"))
    write("resp_request", "inline", b"SET k \"a\\x41\\n\" 'it''s'\r\nPING\n\r\n  GET   k  \r\n")
    write("resp_request", "mixed", enc("MSET", "a", "1", "b", "2") + b"GET a\r\n*0\r\n*-1\r\n" + enc("DEL", "a"))
    write("resp_request", "big-count", b"*1000000\r\n$1\r\na\r\n")
    write("resp_request", "bad-dollar", b"*2\r\n$3\r\nGET\r\n:1\r\n")
    write("resp_request", "bad-quotes", b"SET \"a b\r\n")
    write("resp_request", "long-bulk", enc("SET", "k", "x" * 20000))


if __name__ == "__main__":
    main()
