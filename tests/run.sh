#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, starts the
# shared Kafka pool, runs the Rust unit and wire tests, the real-client suite
# (Java, Kafka tools, librdkafka/kcat, confluent-kafka, kafka-python, franz-go),
# a fuzz smoke run and a loadtest smoke run, then stops the pool.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_POOL_BOOTSTRAP=${SLUICE_POOL_BOOTSTRAP:-127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093}
started_at=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - started_at ))s)"; }

step "installing test dependencies"
tests/setup.sh

step "building"
cargo build --workspace --all-targets

step "starting the Kafka pool"
stop_pool() { deploy/pool.sh stop || true; }
[ "${SLUICE_KEEP_POOL:-0}" = 1 ] || trap stop_pool EXIT
deploy/pool.sh start

step "Rust unit and wire tests"
cargo test --workspace

step "real-client suite (pytest)"
python3 -m pytest tests -v --durations=15 "$@"

if [ -x fuzz/smoke.sh ]; then
  step "fuzz smoke run"
  fuzz/smoke.sh
fi

if [ -d loadtest ]; then
  step "loadtest smoke run"
  cargo build --release -p sluice-gateway -p loadtest
  smoke_out=$(mktemp -d)
  cargo run --release -q -p loadtest -- proxy-bench --smoke --gateway-bin target/release/sluice --out "$smoke_out"
  cargo run --release -q -p loadtest -- auth-bench --smoke --gateway-bin target/release/sluice --out "$smoke_out"
  cargo run --release -q -p loadtest -- quota-bench --smoke --gateway-bin target/release/sluice --out "$smoke_out"
  # librdkafka scenarios direct, through sluice and through Kroxylicious (fetched from
  # Maven Central into the git-ignored deploy/.cache on first use).
  cargo run --release -q -p loadtest -- compare --smoke --scenario produce,consume --gateway-bin target/release/sluice --out "$smoke_out"
  for f in scenarios.json scenarios.md scenarios-produce.png scenarios-consume.png; do
    test -s "$smoke_out/$f" || { echo "loadtest compare did not write $f" >&2; exit 1; }
  done
  ls "$smoke_out"
fi

step "done"
