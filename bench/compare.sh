#!/usr/bin/env bash
# Runs Cinnabar and genuine Redis side by side and prints requests/s for each
# and the ratio (Cinnabar / Redis). Usage: bench/compare.sh [requests] [clients]
#
# Both servers run on this machine with persistence off; redis-benchmark runs
# the same workload against each, alternating, in one run. TESTS overrides
# the redis-benchmark tests (e.g. TESTS=lpush,rpush,lpop,rpop,lrange_100);
# ROUNDS (default 3) runs each side that many times, alternating which goes
# first, and prints the median; REDIS_PORT / CIN_PORT move the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
C="${2:-50}"
TESTS="${TESTS:-set,get,incr,mset}"
ROUNDS="${ROUNDS:-3}"
REDIS_PORT="${REDIS_PORT:-7479}"
CIN_PORT="${CIN_PORT:-7480}"

cargo build --release --quiet -p cinnabar-net
redis-server --port $REDIS_PORT --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!
./target/release/cinnabar-server --port $CIN_PORT --save '' >/dev/null 2>&1 &
CIN_PID=$!
trap 'kill $REDIS_PID $CIN_PID 2>/dev/null || true' EXIT
for p in $REDIS_PORT $CIN_PORT; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# Prints "test rps" lines from redis-benchmark's CSV output.
run() {
  redis-benchmark -p "$1" -t "$TESTS" -n "$N" -c "$C" -P "$2" --csv 2>/dev/null |
    awk -F'","' 'NR>1 { gsub(/"/, "", $1); gsub(/ /, "_", $1); print $1, $2 }'
}

# The median of each test's rounds: "test rps" lines in, one per test out.
median() {
  sort -k1,1 -k2,2n "$1" | awk '
    { n[$1]++; v[$1, n[$1]] = $2 }
    END { for (t in n) { m = n[t]; print t, (m % 2) ? v[t, (m + 1) / 2] : (v[t, m / 2] + v[t, m / 2 + 1]) / 2 } }'
}

printf '%-14s %-4s %12s %12s %8s\n' test P redis_rps cinnabar_rps ratio
for P in 1 16; do
  : > /tmp/bench_redis.$$
  : > /tmp/bench_cin.$$
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      run $REDIS_PORT $P >> /tmp/bench_redis.$$
      run $CIN_PORT $P >> /tmp/bench_cin.$$
    else
      run $CIN_PORT $P >> /tmp/bench_cin.$$
      run $REDIS_PORT $P >> /tmp/bench_redis.$$
    fi
  done
  join <(median /tmp/bench_redis.$$ | sort) <(median /tmp/bench_cin.$$ | sort) | while read -r t r c; do
    awk -v t="$t" -v p="$P" -v r="$r" -v c="$c" \
      'BEGIN { printf "%-14s %-4s %12.0f %12.0f %8.2f\n", t, p, r, c, c / r }'
  done
done
rm -f /tmp/bench_redis.$$ /tmp/bench_cin.$$
