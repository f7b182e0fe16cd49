#!/usr/bin/env bash
# Resident memory of one stream of N entries (default 1M), each with three
# small fields, in Cinnabar and in genuine Redis 7.0 side by side: RSS after
# loading minus RSS when empty, and the ratio Cinnabar / Redis (issue 4's
# target: at most 1.2).
#
# Entries are added with XADD * over a deeply pipelined connection, so IDs
# come from each server's clock as in production; both servers use the
# default stream-node-max-bytes (4096) and stream-node-max-entries (100).
#
# Usage: bench/stream_memory.sh [entries]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
cargo build --release --quiet -p cinnabar-net

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

load() { # port entries
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
batch, pending, buf = [], 0, b""
def flush():
    global batch, pending, buf
    s.sendall(b"".join(batch))
    # Each XADD answers with one bulk ID: two line ends per reply.
    while buf.count(b"\r\n") < 2 * pending:
        buf += s.recv(1 << 20)
    if b"-" in buf.split(b"\r\n")[0][:1]:
        sys.exit("error reply: %r" % buf[:200])
    batch, pending, buf = [], 0, b""
for i in range(n):
    batch.append(cmd("XADD", "events", "*", "sensor", i % 100, "temp", 20 + i % 15, "status", "ok"))
    pending += 1
    if pending >= 1000:
        flush()
if pending:
    flush()
PY
}

rp=7581 cp=7582
redis-server --port $rp --save '' --appendonly no >/dev/null &
rpid=$!
./target/release/cinnabar-server --port $cp --save '' >/dev/null 2>&1 &
cpid=$!
trap 'kill $rpid $cpid 2>/dev/null || true' EXIT
for p in $rp $cp; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done
r0=$(rss_kb $rpid); c0=$(rss_kb $cpid)
load $rp "$N"
load $cp "$N"
sleep 1
r1=$(rss_kb $rpid); c1=$(rss_kb $cpid)
rl=$(redis-cli -p $rp xlen events); cl=$(redis-cli -p $cp xlen events)
rn=$(redis-cli -p $rp xinfo stream events | sed -n '4p'); cn=$(redis-cli -p $cp xinfo stream events | sed -n '4p')
printf '%-34s %10s %12s %8s\n' dataset redis_MB cinnabar_MB ratio
awk -v n="1 stream, $N entries x3 fields" -v r=$((r1 - r0)) -v c=$((c1 - c0)) \
  -v rl="$rl" -v cl="$cl" -v rn="$rn" -v cn="$cn" \
  'BEGIN { printf "%-34s %10.1f %12.1f %8.2f   (entries: %s / %s, nodes: %s / %s)\n", n, r/1024, c/1024, c/r, rl, cl, rn, cn }'
