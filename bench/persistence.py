#!/usr/bin/env python3
"""Persistence benchmarks, Cinnabar and genuine Redis side by side in one run.

Prints, for each server and the ratio Cinnabar / Redis:
  1. SAVE time and start-up load time of a mixed dataset (default 1M keys:
     70% strings, 10% each hashes, lists, sets);
  2. SET latency (p50, p99, max) from redis-benchmark while BGSAVE runs back
     to back, against the same run without snapshots (Redis forks; Cinnabar
     snapshots incrementally in its event loop);
  3. SET throughput with appendonly yes and appendfsync everysec / always.

Usage: [PHASES=save,bgsave,aof,kill] [REPS=3] bench/persistence.py [keys]
(run from anywhere; builds the release
server first). Needs redis-server, redis-cli and redis-benchmark.
"""
import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# $CINNABAR_BIN runs that binary as is (a copy, so builds during a long run
# do not swap it); otherwise the release build, built first.
CIN = os.environ.get("CINNABAR_BIN") or os.path.join(ROOT, "target", "release", "cinnabar-server")
KEYS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


# Ports come from a fixed range (BENCH_PORTS="first-last", default
# 7440-7449) so the run never lands on ports another process on a shared
# machine was given; the first one free is used.
_PORTS = [int(x) for x in os.environ.get("BENCH_PORTS", "7440-7449").split("-")]


def free_port():
    for p in range(_PORTS[0], _PORTS[-1] + 1):
        s = socket.socket()
        # As the servers bind: a port whose old connections linger in
        # TIME_WAIT is free for a listener.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit(f"no free port in {_PORTS}")


def cli(port, *args, timeout=600):
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout.strip()


class Server:
    def __init__(self, kind, d, extra=()):
        self.kind, self.dir, self.port = kind, d, free_port()
        base = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", d, *extra]
        if kind == "redis":
            cmd = ["redis-server", *base, "--daemonize", "no"]
        else:
            cmd = [CIN, *base]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.ready_s = self.wait_ready()

    def wait_ready(self):
        """Seconds until the server answers DBSIZE (not -LOADING)."""
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.kind} exited")
            try:
                out = cli(self.port, "DBSIZE", timeout=5)
                if out and not out.startswith("LOADING") and "refused" not in out:
                    return time.monotonic() - self.t0
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.01)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def cpu_s(pid):
    """User + system CPU seconds of a process, all its threads: less
    sensitive than wall time to other load on a shared machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dataset_file(n):
    path = os.path.join(tempfile.gettempdir(), f"cinnabar-bench-dataset-{n}.resp")
    if os.path.exists(path):
        return path

    def enc(*args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    with open(path, "wb") as f:
        for i in range(n):
            kind = i % 10
            if kind < 7:
                f.write(enc("SET", f"str:{i}", f"value-{i}-" + "x" * (i % 40)))
            elif kind == 7:
                f.write(enc("HSET", f"hash:{i}", "a", i, "b", "bee", "c", "sea", "d", i * 2, "e", "e"))
            elif kind == 8:
                f.write(enc("RPUSH", f"list:{i}", "one", "two", "three", i, "five"))
            else:
                f.write(enc("SADD", f"set:{i}", 1, 2, 3, i, i + 1))
    return path


def load_dataset(port, path):
    with open(path, "rb") as f:
        subprocess.run(
            ["redis-cli", "-p", str(port), "--pipe"],
            stdin=f,
            stdout=subprocess.DEVNULL,
            check=True,
        )


def bench_set(port, n=200_000, clients=50, pipeline=1):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n), "-c", str(clients),
         "-P", str(pipeline), "-r", "100000", "--csv"],
        capture_output=True,
        text=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    r = rows[0]
    return {
        "rps": float(r["rps"]),
        "p50": float(r["p50_latency_ms"]),
        "p99": float(r["p99_latency_ms"]),
        "max": float(r["max_latency_ms"]),
    }


def bgsave_loop(port, stop_file):
    """Shell loop issuing BGSAVE whenever none is running, until stop_file exists."""
    script = (
        f"while [ ! -e {stop_file} ]; do "
        f"redis-cli -p {port} BGSAVE >/dev/null 2>&1; sleep 0.05; done"
    )
    return subprocess.Popen(["bash", "-c", script])


def loss_on_kill9(kind, fsync, rounds=5):
    """Acknowledged INCRs lost when the server is killed with -9 while a
    client writes (the OS keeps what was written; the page cache survives).
    Returns (max writes lost, writes per second)."""
    d = tempfile.mkdtemp(prefix=f"cinnabar-bench-kill-{kind}-")
    extra = ["--save", "", "--appendonly", "yes", "--appendfsync", fsync]
    worst, rates = 0, []
    for _ in range(rounds):
        s = Server(kind, d, extra)
        start = int(cli(s.port, "GET", "n") or 0)
        sock = socket.create_connection(("127.0.0.1", s.port))
        acked, t0 = start, time.monotonic()
        buf = b""
        while time.monotonic() - t0 < 0.5:
            sock.sendall(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n")
            while b"\r\n" not in buf:
                buf += sock.recv(4096)
            line, buf = buf.split(b"\r\n", 1)
            acked = int(line[1:])
        rates.append((acked - start) / (time.monotonic() - t0))
        s.proc.kill()
        s.proc.wait()
        s = Server(kind, d, extra)
        have = int(cli(s.port, "GET", "n") or 0)
        worst = max(worst, acked - have)
        s.stop()
    shutil.rmtree(d, ignore_errors=True)
    return worst, sum(rates) / len(rates)


def row(name, r, c, unit, fmt="{:.3f}"):
    ratio = c / r if r else float("nan")
    print(f"{name:<40} {fmt.format(r):>12} {fmt.format(c):>12} {ratio:>8.2f}  {unit}", flush=True)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


KINDS = ("redis", "cinnabar")


def save_and_load(data, reps):
    """SAVE and start-up load, both servers holding the dataset at once and
    measured alternately, `reps` times each; medians."""
    dirs = {k: tempfile.mkdtemp(prefix=f"cinnabar-bench-{k}-") for k in KINDS}
    servers = {k: Server(k, dirs[k], ["--save", ""]) for k in KINDS}
    for k in KINDS:
        load_dataset(servers[k].port, data)
        assert int(cli(servers[k].port, "DBSIZE")) == KEYS, cli(servers[k].port, "DBSIZE")
    saves = {k: [] for k in KINDS}
    save_cpu = {k: [] for k in KINDS}
    for _ in range(reps):
        for k in KINDS:
            c0 = cpu_s(servers[k].proc.pid)
            t = time.monotonic()
            assert cli(servers[k].port, "SAVE") == "OK"
            saves[k].append(time.monotonic() - t)
            save_cpu[k].append(cpu_s(servers[k].proc.pid) - c0)
    for k in KINDS:
        servers[k].stop()
    size = {k: os.path.getsize(os.path.join(dirs[k], "dump.rdb")) for k in KINDS}
    loads = {k: [] for k in KINDS}
    load_cpu = {k: [] for k in KINDS}
    for _ in range(reps):
        for k in KINDS:
            s = Server(k, dirs[k], ["--save", ""])
            loads[k].append(s.ready_s)
            load_cpu[k].append(cpu_s(s.proc.pid))
            assert int(cli(s.port, "DBSIZE")) == KEYS
            s.stop()
    print(f"  SAVE runs (s): redis {['%.2f' % x for x in saves['redis']]} "
          f"cinnabar {['%.2f' % x for x in saves['cinnabar']]}", flush=True)
    print(f"  load runs (s): redis {['%.2f' % x for x in loads['redis']]} "
          f"cinnabar {['%.2f' % x for x in loads['cinnabar']]}", flush=True)
    row("SAVE (s, median)", median(saves["redis"]), median(saves["cinnabar"]), "lower is better")
    row("SAVE CPU (s, median)", median(save_cpu["redis"]), median(save_cpu["cinnabar"]),
        "lower is better")
    row("load at start-up (s, median)", median(loads["redis"]), median(loads["cinnabar"]),
        "lower is better")
    row("start-up CPU incl. load (s, median)", median(load_cpu["redis"]),
        median(load_cpu["cinnabar"]), "lower is better")
    row("RDB size (MB)", size["redis"] / 1e6, size["cinnabar"] / 1e6, "")
    return dirs


def bgsave_latency(dirs):
    """SET latency without and with back-to-back BGSAVEs, per server."""
    res = {}
    for k in KINDS:
        s = Server(k, dirs[k], ["--save", ""])
        quiet = bench_set(s.port)
        stop = os.path.join(dirs[k], "stop")
        loop = bgsave_loop(s.port, stop)
        time.sleep(0.2)
        busy = bench_set(s.port)
        open(stop, "w").close()
        loop.wait()
        os.remove(stop)
        info = cli(s.port, "INFO", "persistence")
        s.stop()
        n = [l for l in info.splitlines() if l.startswith("rdb_saves:")]
        res[k] = dict(quiet=quiet, busy=busy, saves=n[0].split(":")[1] if n else "?")
    r, c = res["redis"], res["cinnabar"]
    for phase in ("quiet", "busy"):
        label = "no snapshot" if phase == "quiet" else "BGSAVE back to back"
        for q in ("p50", "p99", "max"):
            row(f"SET {q} ms, {label}", r[phase][q], c[phase][q], "lower is better")
        row(f"SET rps, {label}", r[phase]["rps"], c[phase]["rps"], "higher is better", "{:.0f}")
    print(f"{'snapshots completed during busy run':<40} {r['saves']:>12} {c['saves']:>12}")


def aof_throughput(reps):
    """SET throughput and p99 with appendfsync everysec / always,
    alternating servers, `reps` runs each; medians."""
    for fsync in ("everysec", "always"):
        runs = {k: [] for k in KINDS}
        for _ in range(reps):
            for k in KINDS:
                d = tempfile.mkdtemp(prefix=f"cinnabar-bench-aof-{k}-")
                s = Server(k, d, ["--save", "", "--appendonly", "yes", "--appendfsync", fsync])
                runs[k].append(bench_set(s.port, n=100_000 if fsync == "always" else 200_000))
                s.stop()
                shutil.rmtree(d, ignore_errors=True)
        for q, unit, fmt in (("rps", "higher is better", "{:.0f}"), ("p99", "lower is better", "{:.3f}")):
            row(f"SET {q}, appendfsync {fsync}", median([x[q] for x in runs["redis"]]),
                median([x[q] for x in runs["cinnabar"]]), unit, fmt)


def kill9_loss(rounds):
    for fsync in ("everysec", "always"):
        (rl, _), (cl, _) = (loss_on_kill9(k, fsync, rounds) for k in KINDS)
        row(f"acked writes lost on kill -9, {fsync}", rl, cl, f"max over {rounds} kills", "{:.0f}")


def fsync_window(kind, seconds=8):
    """Under appendfsync everysec, how long an acknowledged write can sit
    in the page cache only (what a power loss would take): fsync and
    fdatasync calls of the server are traced (strace, all threads) while
    redis-benchmark writes, and the window is, over consecutive syncs,
    the end of the next sync minus the start of this one (a write landing
    just after a sync began is covered only by the next). Returns
    (max window s, median gap between syncs s, syncs)."""
    d = tempfile.mkdtemp(prefix=f"cinnabar-bench-window-{kind}-")
    s = Server(kind, d, ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"])
    log = os.path.join(d, "strace.log")
    tr = subprocess.Popen(
        ["strace", "-f", "--seccomp-bpf", "-e", "trace=fsync,fdatasync", "-ttt", "-T",
         "-o", log, "-p", str(s.proc.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    b = subprocess.Popen(
        ["redis-benchmark", "-p", str(s.port), "-t", "set", "-n", "100000000", "-c", "20",
         "-r", "100000", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    b.kill()
    b.wait()
    tr.terminate()
    tr.wait()
    s.stop()
    syncs = []
    pat = re.compile(r"(\d+\.\d+) f(?:data)?sync\(.*<(\d+\.\d+)>")
    with open(log) as f:
        for line in f:
            m = pat.search(line)
            if m:
                start = float(m.group(1))
                syncs.append((start, start + float(m.group(2))))
    shutil.rmtree(d, ignore_errors=True)
    syncs.sort()
    if len(syncs) < 2:
        return float("nan"), float("nan"), len(syncs)
    window = max(b[1] - a[0] for a, b in zip(syncs, syncs[1:]))
    gap = median([b[0] - a[0] for a, b in zip(syncs, syncs[1:])])
    return window, gap, len(syncs)


def loss_window():
    res = {k: fsync_window(k) for k in KINDS}
    (rw, rg, rn), (cw, cg, cn) = res["redis"], res["cinnabar"]
    row("everysec: max unsynced window (s)", rw, cw, "power-loss exposure, lower is better")
    row("everysec: median gap between fsyncs (s)", rg, cg, "")
    row("everysec: fsyncs traced", rn, cn, "", "{:.0f}")


PHASES = os.environ.get("PHASES", "save,bgsave,aof,kill,window").split(",")
REPS = int(os.environ.get("REPS", "3"))


def main():
    if not os.environ.get("CINNABAR_BIN"):
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cinnabar-net"],
                       cwd=ROOT, check=True)
    data = dataset_file(KEYS)
    load1 = os.getloadavg()[0]
    print(f"dataset: {KEYS} keys (70% strings, 10% hashes, lists, sets); "
          f"phases {','.join(PHASES)}; {REPS} runs each, alternating")
    print(f"{'measure':<40} {'redis':>12} {'cinnabar':>12} {'ratio':>8}", flush=True)
    dirs = None
    if "save" in PHASES or "bgsave" in PHASES:
        dirs = save_and_load(data, REPS if "save" in PHASES else 1)
    if "bgsave" in PHASES:
        bgsave_latency(dirs)
    for d in (dirs or {}).values():
        shutil.rmtree(d, ignore_errors=True)
    if "aof" in PHASES:
        aof_throughput(REPS)
    if "kill" in PHASES:
        kill9_loss(5)
    if "window" in PHASES:
        loss_window()
    print(f"load average: {load1:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
