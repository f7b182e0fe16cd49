#!/usr/bin/env bash
# Runs Cinnabar and genuine Redis side by side and prints requests/s for each
# and the ratio (Cinnabar / Redis). Usage: bench/compare.sh [requests] [clients]
#
# Both servers run on this machine with persistence off; redis-benchmark runs
# the same workload against each, alternating, in one run. TESTS overrides
# the redis-benchmark tests (e.g. TESTS=lpush,rpush,lpop,rpop,lrange_100);
# ROUNDS (default 3) runs each side that many times, alternating which goes
# first, and prints the median; REDIS_PORT / CIN_PORT move the servers.
# PIPELINES (default "1 16") lists the -P values to run; CIN_BIN runs a
# given cinnabar-server binary instead of building target/release's (a copy
# stays still while others rebuild the shared target). Each server's CPU
# time (utime+stime from /proc) over its runs is printed as microseconds
# per request: steadier than requests/s when the client shares the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
C="${2:-50}"
TESTS="${TESTS:-set,get,incr,mset}"
ROUNDS="${ROUNDS:-3}"
PIPELINES="${PIPELINES:-1 16}"
CIN_BIN="${CIN_BIN:-}"
REDIS_PORT="${REDIS_PORT:-7479}"
CIN_PORT="${CIN_PORT:-7480}"

if [ -z "$CIN_BIN" ]; then
  cargo build --release --quiet -p cinnabar-net
  CIN_BIN=./target/release/cinnabar-server
fi
redis-server --port $REDIS_PORT --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!
"$CIN_BIN" --port $CIN_PORT --save '' >/dev/null 2>&1 &
CIN_PID=$!
# Waits for both to exit, so a following run can bind the same ports.
trap 'kill $REDIS_PID $CIN_PID 2>/dev/null; wait $REDIS_PID $CIN_PID 2>/dev/null || true' EXIT
for p in $REDIS_PORT $CIN_PORT; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done
for pid in $REDIS_PID $CIN_PID; do
  kill -0 "$pid" 2>/dev/null || { echo "a server did not start (ports $REDIS_PORT, $CIN_PORT in use?)" >&2; exit 1; }
done

# CPU nanoseconds the process has run so far, all its threads together
# (/proc/PID/task/*/schedstat's first field: finer than utime+stime's ticks).
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

# Prints "test rps cpu_ns" lines: each test of TESTS runs on its own so the
# server's CPU time is attributed to it. An LRANGE test's CPU includes the
# LPUSH preload redis-benchmark runs before it (the preload's line has none).
run() {
  local t before after
  for t in ${TESTS//,/ }; do
    before=$(cpu_ns "$2")
    redis-benchmark -p "$1" -t "$t" -n "$N" -c "$C" -P "$3" --csv 2>/dev/null >/tmp/bench_out.$$
    after=$(cpu_ns "$2")
    awk -F'","' -v cpu=$((after - before)) 'NR>1 {
        gsub(/"/, "", $1); gsub(/ /, "_", $1)
        print $1, $2, ($1 ~ /needed/) ? "-" : cpu }' /tmp/bench_out.$$
  done
}

# The median of each test's rounds: "test value" lines in, one per test out
# (column 2 = requests/s, column 3 = CPU ns; "-" values are skipped).
median() {
  awk -v col="$2" '$col != "-" { print $1, $col }' "$1" | sort -k1,1 -k2,2n | awk '
    { n[$1]++; v[$1, n[$1]] = $2 }
    END { for (t in n) { m = n[t]; print t, (m % 2) ? v[t, (m + 1) / 2] : (v[t, m / 2] + v[t, m / 2 + 1]) / 2 } }'
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %-3s %10s %10s %6s %9s %9s %6s\n' \
  test P redis_rps cin_rps ratio redis_us cin_us cpu_r
for P in $PIPELINES; do
  : > /tmp/bench_redis.$$
  : > /tmp/bench_cin.$$
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      run $REDIS_PORT $REDIS_PID $P >> /tmp/bench_redis.$$
      run $CIN_PORT $CIN_PID $P >> /tmp/bench_cin.$$
    else
      run $CIN_PORT $CIN_PID $P >> /tmp/bench_cin.$$
      run $REDIS_PORT $REDIS_PID $P >> /tmp/bench_redis.$$
    fi
  done
  # us columns: server CPU microseconds per request (median over rounds);
  # cpu_r = Redis's CPU per request / Cinnabar's (above 1: Cinnabar cheaper).
  join <(median /tmp/bench_redis.$$ 2 | sort) <(median /tmp/bench_cin.$$ 2 | sort) |
    join -a1 - <(join <(median /tmp/bench_redis.$$ 3 | sort) <(median /tmp/bench_cin.$$ 3 | sort)) |
    while read -r t r c rc cc; do
      awk -v t="$t" -v p="$P" -v r="$r" -v c="$c" -v rc="${rc:-}" -v cc="${cc:-}" -v n="$N" 'BEGIN {
        if (rc == "") printf "%-40s %-3s %10.0f %10.0f %6.2f %9s %9s %6s\n", t, p, r, c, c / r, "-", "-", "-"
        else printf "%-40s %-3s %10.0f %10.0f %6.2f %9.3f %9.3f %6.2f\n", t, p, r, c, c / r, rc / n / 1000, cc / n / 1000, rc / cc }'
    done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f /tmp/bench_redis.$$ /tmp/bench_cin.$$ /tmp/bench_out.$$
