"""A minimal RESP2 client for the bench scripts: pipelined commands, replies
as bytes (simple strings, integers and error lines without their type byte),
None for a null bulk, lists for arrays."""
import socket


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t = line[:1]
        if t in b"+-:":
            return line[1:]
        if t == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            return [self._reply() for _ in range(int(line[1:]))]
        if t == b"=":  # RESP3 verbatim (not used: RESP2 here)
            raise ValueError(line)
        raise ValueError(line)

    def pipeline(self, cmds, batch=2000):
        out = []
        for i in range(0, len(cmds), batch):
            part = cmds[i:i + batch]
            self.s.sendall(b"".join(enc(*c) for c in part))
            out.extend(self._reply() for _ in part)
        return out

    def cmd(self, *args):
        return self.pipeline([args])[0]

    def info(self, section):
        text = self.cmd("INFO", section).decode()
        return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
