#!/usr/bin/env bash
# Runs a libFuzzer campaign on one target.
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Without a sanitizer it
# builds on the default (stable) toolchain; SANITIZER=address (or memory,
# thread) turns one on and needs nightly. The default, none, is faster and
# enough for Rust code: panics, overflow checks (--debug-assertions) and
# libFuzzer's RSS limit and timeout still fire. New inputs go to
# fuzz/work/TARGET/ (ignored by git); the checked-in seeds in
# fuzz/corpus/TARGET/ are only read. Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
sanitizer="${SANITIZER:-none}"
toolchain=()
if [ "$sanitizer" != none ]; then
  toolchain=(+nightly)
fi
mkdir -p "work/$target" "corpus/$target"
exec cargo "${toolchain[@]}" fuzz run -s "$sanitizer" --debug-assertions -O "$target" \
  "work/$target" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$@"
