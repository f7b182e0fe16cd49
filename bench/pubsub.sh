#!/usr/bin/env bash
# Pub/sub throughput, Cinnabar next to genuine Redis in one run: deliveries
# per second for 50 subscribers on one channel (fanout) and for 1000
# channels with 10 pattern subscribers (patterns); prints the ratio
# (Cinnabar / Redis). Usage: bench/pubsub.sh [messages]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
REDIS_PORT=7481
CIN_PORT=7482

cargo build --release --quiet -p cinnabar-net -p cinnabar-tests --bin pubsub_bench
redis-server --port $REDIS_PORT --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!
./target/release/cinnabar-server --port $CIN_PORT --save '' >/dev/null 2>&1 &
CIN_PID=$!
trap 'kill $REDIS_PID $CIN_PID 2>/dev/null || true' EXIT
for p in $REDIS_PORT $CIN_PORT; do
  for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

printf '%-10s %10s %14s %14s %8s\n' scenario messages redis_deliv/s cinnabar_deliv/s ratio
for scenario in fanout patterns; do
  r=$(./target/release/pubsub_bench $REDIS_PORT $scenario "$N" | awk '{print $5}')
  c=$(./target/release/pubsub_bench $CIN_PORT $scenario "$N" | awk '{print $5}')
  awk -v s="$scenario" -v n="$N" -v r="$r" -v c="$c" \
    'BEGIN { printf "%-10s %10d %14.0f %14.0f %8.2f\n", s, n, r, c, c / r }'
done
