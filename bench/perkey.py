#!/usr/bin/env python3
"""Real memory per string key, Cinnabar next to genuine Redis 7.0.

Loads N keys ("key:<i>", values of V bytes) into a fresh server pair, once
without a TTL and once with one (SET ... EX), and prints per key:
- used_memory delta / N: what each server's maxmemory is compared with;
- RSS delta / N: what the process really took from the system;
and the ratio Cinnabar / Redis of each. The two servers load alternately,
one batch each, so a load change on the shared machine hits both.

The key count decides how full the bucket arrays are (both servers double
a table at a power of two), so the default, 100,000 keys, sits in the
middle between two doublings (131,072 buckets); 60,000 is near the bottom.

Usage: bench/perkey.py [keys] [value_bytes]
Ports: PERKEY_PORTS (default 7440,7441); servers stopped by their PIDs.
"""
import os, subprocess, sys, time

from resp_client import Conn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CINNABAR = os.environ.get("CINNABAR_BIN", os.path.join(ROOT, "target/release/cinnabar-server"))


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def start(kind, port):
    exe = "redis-server" if kind == "redis" else CINNABAR
    args = ["--port", str(port), "--save", "", "--appendonly", "no"]
    p = subprocess.Popen([exe] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd="/tmp")
    for _ in range(100):
        try:
            c = Conn(port)
            c.pipeline([("PING",)])
            return p, c
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("%s did not start" % kind)


def measure(keys, value, ttl, ports):
    servers = {k: start(k, p) for k, p in zip(("redis", "cinnabar"), ports)}
    try:
        time.sleep(0.3)
        before = {k: (int(c.info("memory")["used_memory"]), rss(p.pid))
                  for k, (p, c) in servers.items()}
        for i in range(0, keys, 2000):
            batch = [("SET", "key:%d" % j, value) + (("EX", 100000 + j % 1000) if ttl else ())
                     for j in range(i, min(i + 2000, keys))]
            for _, c in servers.values():
                c.pipeline(batch)
        time.sleep(1.2)  # a tick or two: rehashes finish, the shim reports RSS
        out = {}
        for k, (p, c) in servers.items():
            assert int(c.pipeline([("DBSIZE",)])[0]) == keys, k
            used = int(c.info("memory")["used_memory"])
            out[k] = ((used - before[k][0]) / keys, (rss(p.pid) - before[k][1]) / keys)
        return out
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait()


def main():
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    value = b"v" * (int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    ports = [int(p) for p in os.environ.get("PERKEY_PORTS", "7440,7441").split(",")]
    print("%d keys key:<i>, values of %d bytes; bytes per key (delta / keys)" % (keys, len(value)))
    print("%-8s %11s %11s %6s %11s %11s %6s" % (
        "ttl", "redis_used", "cin_used", "ratio", "redis_rss", "cin_rss", "ratio"))
    for ttl in (False, True):
        m = measure(keys, value, ttl, ports)
        (ru, rr), (cu, cr) = m["redis"], m["cinnabar"]
        print("%-8s %11.1f %11.1f %6.3f %11.1f %11.1f %6.3f" % (
            "with" if ttl else "without", ru, cu, cu / ru, rr, cr, cr / rr), flush=True)


if __name__ == "__main__":
    main()
