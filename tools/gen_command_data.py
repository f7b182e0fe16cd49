#!/usr/bin/env python3
"""Regenerate engine/data/commands.resp3 and docs.resp3 from a genuine Redis 7.0.

Redis's command table (arity, flags, key specs, ACL categories, docs) is Redis's own
specification, published as src/commands/*.json. Rather than retyping 240 entries
by hand, we ask the oracle for them once (in RESP3, which keeps sets and maps
distinct) and embed the raw replies. Cinnabar only exposes the entries for which
it has a handler.

Usage: redis-server --port 7379 --save '' --daemonize yes --enable-debug-command yes
       python3 tools/gen_command_data.py 7379
"""
import socket, sys

def send(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)

class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""
    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk
    def line(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            self._fill()
    def frame_end(self, pos=0):
        """Return the end offset of the complete RESP3 frame starting at pos."""
        eol = self.line(pos)
        t, body = self.buf[pos:pos + 1], self.buf[pos + 1:eol]
        nxt = eol + 2
        if t in b"+-:_,#(":
            return nxt
        if t in b"$=!":
            n = int(body)
            if n < 0:
                return nxt
            while len(self.buf) < nxt + n + 2:
                self._fill()
            return nxt + n + 2
        if t in b"*~>%|":
            n = int(body)
            if t in b"%|":
                n *= 2
            for _ in range(max(n, 0)):
                nxt = self.frame_end(nxt)
            return nxt
        raise ValueError("unexpected type %r" % t)
    def read(self):
        end = self.frame_end(0)
        frame, self.buf = self.buf[:end], self.buf[end:]
        return frame

def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7379
    s = socket.create_connection(("127.0.0.1", port))
    r = Reader(s)
    send(s, "HELLO", "3"); r.read()
    send(s, "COMMAND"); info = r.read()
    send(s, "COMMAND", "DOCS"); docs = r.read()
    # HELP texts of container commands, as one RESP3 map name -> reply.
    helps = []
    for name in ["debug", "config", "client", "object", "command", "memory", "xinfo", "xgroup",
                 "pubsub", "script", "function", "acl", "cluster", "slowlog", "latency", "module"]:
        send(s, name, "HELP"); helps.append((name, r.read()))
    help_map = b"%%%d\r\n" % len(helps) + b"".join(
        b"$%d\r\n%s\r\n" % (len(n), n.encode()) + h for n, h in helps)
    open("engine/data/help.resp3", "wb").write(help_map)
    open("engine/data/commands.resp3", "wb").write(info)
    open("engine/data/docs.resp3", "wb").write(docs)
    print("commands: %d bytes, docs: %d bytes" % (len(info), len(docs)))

main()
