#!/usr/bin/env bash
# Pub/sub throughput, Cinnabar next to genuine Redis in one run: deliveries
# per second for 50 subscribers on one channel (fanout) and for 1000
# channels with 10 pattern subscribers (patterns); prints the ratio
# (Cinnabar / Redis). Usage: bench/pubsub.sh [messages] [rounds]
#
# Each round runs both servers back to back per scenario (alternating which
# goes first); the table shows the best round of each, the way
# redis-benchmark users read peak throughput on a shared machine, and the
# load average seen. REDIS_PORT / CIN_PORT override the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
ROUNDS="${2:-3}"
REDIS_PORT="${REDIS_PORT:-7481}"
CIN_PORT="${CIN_PORT:-7482}"

[ -n "${CIN_BIN:-}" ] || cargo build --release --quiet -p cinnabar-net -p cinnabar-tests --bin pubsub_bench
redis-server --port $REDIS_PORT --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!
"${CIN_BIN:-./target/release/cinnabar-server}" --port $CIN_PORT --save '' >/dev/null 2>&1 &
CIN_PID=$!
trap 'kill $REDIS_PID $CIN_PID 2>/dev/null || true' EXIT
for p in $REDIS_PORT $CIN_PORT; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# Deliveries/s of one run, and the server's CPU time per delivery in ns
# (user+system, from /proc): a figure the machine's load disturbs less than
# wall-clock throughput.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
rate() {
  local before after line
  before=$(ticks "$3")
  line=$(./target/release/pubsub_bench "$1" "$2" "$N")
  after=$(ticks "$3")
  echo "$line" | awk -v d=$((after - before)) -v hz="$HZ" \
    '{ printf "%s %.0f\n", $5, d / hz * 1e9 / $3 }'
}
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }

printf '%-10s %9s %13s %13s %6s %11s %11s %9s\n' scenario messages redis_deliv/s cin_deliv/s ratio redis_ns/dl cin_ns/dl cpu_ratio
for scenario in fanout patterns; do
  best_r=0
  best_c=0
  cpu_r=1e18
  cpu_c=1e18
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
      read -r r rn < <(rate $REDIS_PORT $scenario $REDIS_PID)
      read -r c cn < <(rate $CIN_PORT $scenario $CIN_PID)
    else
      read -r c cn < <(rate $CIN_PORT $scenario $CIN_PID)
      read -r r rn < <(rate $REDIS_PORT $scenario $REDIS_PID)
    fi
    echo "  round $round $scenario: redis $r/s ${rn}ns cinnabar $c/s ${cn}ns" >&2
    best_r=$(max "$best_r" "$r")
    best_c=$(max "$best_c" "$c")
    cpu_r=$(min "$cpu_r" "$rn")
    cpu_c=$(min "$cpu_c" "$cn")
  done
  # cpu_ratio: Redis's CPU per delivery over Cinnabar's (above 1: cheaper).
  awk -v s="$scenario" -v n="$N" -v r="$best_r" -v c="$best_c" -v rn="$cpu_r" -v cn="$cpu_c" \
    'BEGIN { printf "%-10s %9d %13.0f %13.0f %6.2f %11.0f %11.0f %9.2f\n", s, n, r, c, c / r, rn, cn, (cn > 0 ? rn / cn : 0) }'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
