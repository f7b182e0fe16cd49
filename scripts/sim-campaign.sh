#!/usr/bin/env bash
# A long simulation campaign: runs seeds A..B of a scenario in release, in
# chunks, until the seeds or the time run out, and prints seeds/hour and
# simulated time per wall second. Failing seeds are printed with their replay
# command and collected in the log.
#
#   scripts/sim-campaign.sh [--scenario crash-disk] [--seeds 0..100000]
#                           [--minutes 10] [--chunk 500] [--log FILE]
#                           [-- extra cinnabar-sim options, e.g. --persistence always]
#
# Exit status 1 if any seed failed.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=crash-disk
seeds=0..100000
minutes=10
chunk=500
log=target/sim-campaign.log
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) scenario=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --chunk) chunk=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
lo=${seeds%..*}
hi=${seeds#*..}

cargo build --release --quiet -p cinnabar-sim
bin=target/release/cinnabar-sim
mkdir -p "$(dirname "$log")"
: > "$log"

start=$(date +%s)
deadline=$((start + minutes * 60))
ran=0
failed=0
sim_s=0
seed=$lo
while [ "$seed" -lt "$hi" ] && [ "$(date +%s)" -lt "$deadline" ]; do
  end=$((seed + chunk))
  [ "$end" -gt "$hi" ] && end=$hi
  out=$("$bin" --seeds "$seed..$end" --scenario "$scenario" "${extra[@]}" || true)
  printf '%s\n' "$out" >> "$log"
  printf '%s\n' "$out" | grep -A1 ' FAILED ' || true
  summary=$(printf '%s\n' "$out" | tail -1)
  # "<n> seeds, <f> failed; <s> simulated s in ..."
  n=$(echo "$summary" | awk '{print $1}')
  f=$(echo "$summary" | awk '{print $3}')
  s=$(echo "$summary" | awk '{print $5}')
  ran=$((ran + n))
  failed=$((failed + f))
  sim_s=$((sim_s + s))
  seed=$end
done
wall=$(( $(date +%s) - start ))
[ "$wall" -lt 1 ] && wall=1
echo "campaign: scenario $scenario, seeds $lo..$seed: $ran seeds, $failed failed in ${wall}s wall;" \
  "$((ran * 3600 / wall)) seeds/hour, $((sim_s / wall))x real time (log: $log)"
[ "$failed" -eq 0 ]
