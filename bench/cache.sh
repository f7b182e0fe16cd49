#!/usr/bin/env bash
# A cache under memory pressure, Cinnabar next to genuine Redis 7.0:
# maxmemory 100mb, allkeys-lru, redis-benchmark SET/GET over 1M random keys
# with 100-byte values (about twice what fits), so most SETs evict.
# Prints requests/s for each and the ratio, then memory: used_memory
# (what maxmemory is compared with), RSS, RSS / maxmemory, evicted keys.
# Usage: [ROUNDS=3] bench/cache.sh [requests per round] [clients] [pipeline]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
C="${2:-50}"
P="${3:-16}"
KEYS=1000000
MAXMEM=100mb
REDIS_PORT="${REDIS_PORT:-7424}"
CIN_PORT="${CIN_PORT:-7425}"

cargo build --release --quiet -p cinnabar-net
redis-server --port $REDIS_PORT --save '' --appendonly no --daemonize no \
  --maxmemory $MAXMEM --maxmemory-policy allkeys-lru >/dev/null &
REDIS_PID=$!
./target/release/cinnabar-server --port $CIN_PORT --save '' \
  --maxmemory $MAXMEM --maxmemory-policy allkeys-lru >/dev/null 2>&1 &
CIN_PID=$!
trap 'kill $REDIS_PID $CIN_PID 2>/dev/null || true' EXIT
for p in $REDIS_PORT $CIN_PORT; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

run() {
  redis-benchmark -p "$1" -t set,get -n "$N" -r $KEYS -d 100 -c "$C" -P "$P" --csv 2>/dev/null |
    awk -F'","' 'NR>1 { gsub(/"/, "", $1); print $1, $2 }'
}

field() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'; }

# Warm up: fill past the limit once so both measure steady-state eviction.
redis-benchmark -p $REDIS_PORT -t set -n $KEYS -r $KEYS -d 100 -c "$C" -P "$P" -q >/dev/null 2>&1
redis-benchmark -p $CIN_PORT -t set -n $KEYS -r $KEYS -d 100 -c "$C" -P "$P" -q >/dev/null 2>&1

# ROUNDS rounds (default 3), the order of the two servers alternating, so
# a load change on the shared machine hits both; then the median ratio.
ROUNDS="${ROUNDS:-3}"
printf '%-5s %-6s %12s %12s %8s\n' round test redis_rps cinnabar_rps ratio
: > /tmp/cache_ratios.$$
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    run $REDIS_PORT > /tmp/cache_redis.$$
    run $CIN_PORT > /tmp/cache_cin.$$
  else
    run $CIN_PORT > /tmp/cache_cin.$$
    run $REDIS_PORT > /tmp/cache_redis.$$
  fi
  join <(sort /tmp/cache_redis.$$) <(sort /tmp/cache_cin.$$) | while read -r t r c; do
    awk -v n="$round" -v t="$t" -v r="$r" -v c="$c" \
      'BEGIN { printf "%-5s %-6s %12.0f %12.0f %8.2f\n", n, t, r, c, c / r }'
    echo "$t $(awk -v r="$r" -v c="$c" 'BEGIN { print c / r }')" >> /tmp/cache_ratios.$$
  done
done
for t in GET SET; do
  grep "^$t " /tmp/cache_ratios.$$ | awk '{ print $2 }' | sort -n |
    awk -v t="$t" '{ v[NR] = $1 } END { printf "median %-6s ratio %.2f (min %.2f, max %.2f)\n", t, v[int((NR + 1) / 2)], v[1], v[NR] }'
done
rm -f /tmp/cache_redis.$$ /tmp/cache_cin.$$ /tmp/cache_ratios.$$

MAXB=$((100 * 1024 * 1024))
printf '\n%-9s %12s %12s %10s %10s %10s\n' server used_memory rss rss/max keys evicted
for pair in redis:$REDIS_PORT cinnabar:$CIN_PORT; do
  name=${pair%%:*}; port=${pair##*:}
  used=$(field "$port" memory used_memory)
  rss=$(field "$port" memory used_memory_rss)
  keys=$(redis-cli -p "$port" dbsize)
  ev=$(field "$port" stats evicted_keys)
  awk -v n="$name" -v u="$used" -v r="$rss" -v m=$MAXB -v k="$keys" -v e="$ev" \
    'BEGIN { printf "%-9s %12d %12d %10.2f %10d %10d\n", n, u, r, r / m, k, e }'
done
