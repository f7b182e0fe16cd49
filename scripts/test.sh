#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs genuine Redis 7.0
# (the differential oracle) if missing, builds the server, then runs format,
# lint and every test (engine units, black-box TCP, differential vs Redis).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools from Debian"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
redis-server --version

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build cinnabar-server (release: the black-box tests run this binary)"
cargo build --release --quiet -p cinnabar-net
export CINNABAR_BIN="$PWD/target/release/cinnabar-server"

# redis-py is a test dependency too (the TLS tests drive it).
if ! python3 -c "import redis" >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check redis
fi

echo "== tests"
# DIFF_CASES: random command sequences per differential property test.
export DIFF_CASES="${DIFF_CASES:-2000}"
cargo test --workspace --quiet

echo "== the net shim over madsim's simulated network (net/src/sim_test.rs)"
# --cfg madsim changes every crate, so it builds in a target dir of its own,
# without debug info to keep it small; only the library is built there (the
# binary needs real files, TLS and signals).
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
  cargo test -p cinnabar-net --lib --quiet

echo "== a real client: redis-py against cinnabar-server"
if ! python3 -c "import redis" >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check redis
fi
python3 tests/clients/redis_py_smoke.py "$CINNABAR_BIN"
