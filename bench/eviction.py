#!/usr/bin/env python3
"""Eviction quality per policy, Cinnabar next to genuine Redis 7.0.

Redis's LRU test, in the shape of the "Redis as an LRU cache" simulation:
1. fill the server up to its maxmemory (capacity C keys, measured per server
   since each stores a key in a different number of bytes);
2. wait (the LRU clock has a one-second resolution), then access a hot set
   (a fixed random fifth of the keys) several times;
3. overflow: write C/2 new keys, so about a third of the data must go;
4. count the hot keys that are still there.

The hot-key hit rate is the share of hot keys kept. The random policies keep
about two thirds whatever the access pattern; LRU and LFU should keep nearly
all. Every key has a TTL (so volatile-* have candidates); TTLs are random
and unrelated to hotness, so volatile-ttl behaves like random here.

Usage: bench/eviction.py [maxmemory_mb] [value_bytes] [runs]
Prints one line per policy: hit rates, ratio (Cinnabar / Redis), the
capacity measured at the first eviction, the keys held at the end, and the
evictions during the overflow. With runs > 1 (default 1) each policy runs
that many times per server, the servers' order alternating and the
client's seed changing per run (hot set, TTLs); the line shows the means
and the range of the per-run ratios: one run's random-policy hit rate
varies by about +-0.005 (a binomial over ~13,000 hot keys). Both servers
are started here on the ports in EVICTION_PORTS (default 7420,7421) and
stopped by their PIDs.

Reading the random policies: uniform random eviction keeps a share
e^(-evicted/keys held) of the old keys, so their hit rate depends only on
how many keys a server evicts for the C/2 it is given, and so on the
memory that is not keys: a server whose first eviction coincides with its
key table doubling (both bucket arrays held during the incremental rehash;
Redis allows the growth only while it fits under maxmemory, and so does
Cinnabar) measures a capacity below what it holds once the rehash is done,
and evicts fewer keys than it writes afterwards (16 and 32 MB with 100-byte
values, on both servers); reply buffers kept after the hot-set reads take
room from the keys (see docs/operations.md).
"""
import os, random, subprocess, sys, time

from resp_client import Conn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CINNABAR = os.environ.get("CINNABAR_BIN", os.path.join(ROOT, "target/release/cinnabar-server"))
POLICIES = ["allkeys-lru", "allkeys-lfu", "allkeys-random",
            "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"]


def start(kind, port, maxmemory_mb, policy):
    args = ["--port", str(port), "--save", "", "--appendonly", "no",
            "--maxmemory", "%dmb" % maxmemory_mb, "--maxmemory-policy", policy]
    exe = "redis-server" if kind == "redis" else CINNABAR
    dirname = "/tmp/eviction-bench-%s-%d" % (kind, port)
    os.makedirs(dirname, exist_ok=True)
    p = subprocess.Popen([exe] + args + ["--dir", dirname],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = Conn(port)
            c.cmd("PING")
            return p, c
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("%s did not start" % kind)


def run(kind, port, maxmemory_mb, policy, value, seed=12345):
    proc, c = start(kind, port, maxmemory_mb, policy)
    try:
        rng = random.Random(seed)
        # 1. Fill until the first eviction: the capacity.
        n = 0
        while int(c.info("stats")["evicted_keys"]) == 0:
            c.pipeline([("SET", "key:%d" % i, value, "EX", 100000 + rng.randrange(100000))
                        for i in range(n, n + 5000)])
            n += 5000
        capacity = int(c.cmd("DBSIZE"))
        present = [k for k, e in zip(range(n), c.pipeline([("EXISTS", "key:%d" % i) for i in range(n)]))
                   if e == b"1"]
        # 2. The hot set: a fifth of the keys present, accessed 10 times
        #    each, after the LRU clock has moved on.
        hot = rng.sample(present, len(present) // 5)
        time.sleep(2.1)
        for _ in range(10):
            c.pipeline([("GET", "key:%d" % i) for i in hot])
        time.sleep(1.1)
        # 3. Overflow by half the capacity.
        evicted_before = int(c.info("stats")["evicted_keys"])
        c.pipeline([("SET", "new:%d" % i, value, "EX", 100000 + rng.randrange(100000))
                    for i in range(capacity // 2)])
        evicted = int(c.info("stats")["evicted_keys"]) - evicted_before
        # 4. Hot keys kept.
        final = int(c.cmd("DBSIZE"))
        kept = sum(1 for e in c.pipeline([("EXISTS", "key:%d" % i) for i in hot]) if e == b"1")
        mem = c.info("memory")
        return {
            "capacity": capacity,
            "final": final,
            "hot": len(hot),
            "hit_rate": kept / len(hot),
            "evicted": evicted,
            "used_memory": int(mem["used_memory"]),
            "rss": int(mem["used_memory_rss"]),
        }
    finally:
        proc.terminate()
        proc.wait()


def mean(runs, field):
    return sum(x[field] for x in runs) / len(runs)


def main():
    maxmemory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    value = b"v" * (int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    print("maxmemory %dmb, values of %d bytes; hot set = 1/5 of the keys, accessed 10x, "
          "then +50%% keys; %d run(s) per policy" % (maxmemory_mb, len(value), runs))
    ports = [int(p) for p in os.environ.get("EVICTION_PORTS", "7420,7421").split(",")]
    print("%-16s %9s %9s %6s %11s %9s %9s %9s %9s %9s %9s" % (
        "policy", "redis_hit", "cin_hit", "ratio", "range", "redis_cap", "cin_cap",
        "redis_end", "cin_end", "redis_ev", "cin_ev"))
    for policy in POLICIES:
        rs, cs = [], []
        for i in range(runs):
            seed = 12345 + i
            if i % 2 == 0:
                rs.append(run("redis", ports[0], maxmemory_mb, policy, value, seed))
                cs.append(run("cinnabar", ports[1], maxmemory_mb, policy, value, seed))
            else:
                cs.append(run("cinnabar", ports[1], maxmemory_mb, policy, value, seed))
                rs.append(run("redis", ports[0], maxmemory_mb, policy, value, seed))
        per_run = [c["hit_rate"] / r["hit_rate"] for r, c in zip(rs, cs) if r["hit_rate"]]
        rh, ch = mean(rs, "hit_rate"), mean(cs, "hit_rate")
        ratio = ch / rh if rh else float("nan")
        spread = "%.2f-%.2f" % (min(per_run), max(per_run)) if per_run else "-"
        print("%-16s %9.3f %9.3f %6.2f %11s %9d %9d %9d %9d %9d %9d" % (
            policy, rh, ch, ratio, spread, mean(rs, "capacity"), mean(cs, "capacity"),
            mean(rs, "final"), mean(cs, "final"), mean(rs, "evicted"), mean(cs, "evicted")),
            flush=True)


if __name__ == "__main__":
    main()
