#!/usr/bin/env bash
# Runs a libFuzzer campaign on one target.
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# New inputs go to fuzz/work/TARGET/ (ignored by git); the checked-in seeds
# in fuzz/corpus/TARGET/ are only read. Crashes land in
# fuzz/artifacts/TARGET/. SANITIZER=address (or memory, thread) turns a
# sanitizer on; the default is none, which is ~2x faster and enough for
# Rust code (panics, overflow checks and libFuzzer's RSS limit still fire).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "work/$target" "corpus/$target"
exec cargo +nightly fuzz run -s "${SANITIZER:-none}" --debug-assertions -O "$target" \
  "work/$target" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$@"
