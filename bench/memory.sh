#!/usr/bin/env bash
# Loads the same datasets into Cinnabar and genuine Redis (a fresh pair of
# servers per dataset) and prints the resident memory each needs for it
# (RSS after loading minus RSS when empty) and the ratio Cinnabar / Redis.
#
# Usage: bench/memory.sh [scale]   (scale 1 = the issue's sizes; 0.1 for a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-1}"
cargo build --release --quiet -p cinnabar-net

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

measure() { # name python-generator-args...
  local name=$1; shift
  local rp=7430 cp=7431
  redis-server --port $rp --save '' --appendonly no >/dev/null &
  local rpid=$!
  ./target/release/cinnabar-server --port $cp --save '' >/dev/null 2>&1 &
  local cpid=$!
  for p in $rp $cp; do
    for _ in $(seq 50); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local r0 c0 r1 c1
  r0=$(rss_kb $rpid); c0=$(rss_kb $cpid)
  python3 bench/load.py $rp "$@"
  python3 bench/load.py $cp "$@"
  sleep 1
  r1=$(rss_kb $rpid); c1=$(rss_kb $cpid)
  local rk ck
  rk=$(redis-cli -p $rp dbsize); ck=$(redis-cli -p $cp dbsize)
  kill $rpid $cpid; wait $rpid $cpid 2>/dev/null || true
  awk -v n="$name" -v r=$((r1 - r0)) -v c=$((c1 - c0)) -v rk="$rk" -v ck="$ck" \
    'BEGIN { printf "%-28s %10.1f %12.1f %8.2f   (keys: %s / %s)\n", n, r/1024, c/1024, c/r, rk, ck }'
}

printf '%-28s %10s %12s %8s\n' dataset redis_MB cinnabar_MB ratio
n() { awk -v s="$SCALE" -v x="$1" 'BEGIN { printf "%d", x * s }'; }
measure "$(n 1000000) hashes x5 fields" hash "$(n 1000000)" 5
measure "$(n 1000000) sets x10 ints" set "$(n 1000000)" 10
measure "$(n 100000) zsets x100" zset "$(n 100000)" 100
measure "$(n 100000) lists x100" list "$(n 100000)" 100
