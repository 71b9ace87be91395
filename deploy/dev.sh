#!/usr/bin/env bash
# The main job on a fresh machine: start the local Kafka pool, start a sluice gateway
# in front of it (open development listener, deploy/examples/sluice-dev.toml), create
# a demo topic through the gateway, prove a round trip, and print a ready client config.
# The gateway runs in the foreground; Ctrl-C stops it (the pool keeps running:
# `deploy/pool.sh stop` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${SLUICE_CONFIG:-deploy/examples/sluice-dev.toml}
BOOTSTRAP=127.0.0.1:9092
LOG_DIR=deploy/.pool
mkdir -p "$LOG_DIR"

command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
deploy/pool.sh start
cargo build --release -p sluice-gateway

if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  echo "port 9092 is already in use (another sluice?); stop it first" >&2
  exit 1
fi
target/release/sluice serve --config "$CONFIG" > "$LOG_DIR/sluice-dev.log" 2>&1 &
GATEWAY_PID=$!
trap 'kill $GATEWAY_PID 2>/dev/null || true; wait $GATEWAY_PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/9101) 2>/dev/null; then break; fi
  kill -0 $GATEWAY_PID 2>/dev/null || { cat "$LOG_DIR/sluice-dev.log" >&2; exit 1; }
  sleep 0.2
done

deploy/kafka-tool.sh kafka-topics --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
  --topic demo --partitions 3 --replication-factor 3
echo "hello from sluice $(date -u +%FT%TZ)" | deploy/kafka-tool.sh kafka-console-producer \
  --bootstrap-server "$BOOTSTRAP" --topic demo
echo "--- last record of topic demo, read back through the gateway:"
deploy/kafka-tool.sh kafka-console-consumer --bootstrap-server "$BOOTSTRAP" --topic demo \
  --from-beginning --timeout-ms 8000 2>/dev/null | tail -n 1 || true

cat <<MSG

sluice is running (pid $GATEWAY_PID, log $LOG_DIR/sluice-dev.log).
Client config (any Kafka client, unmodified):

  bootstrap.servers=$BOOTSTRAP
  security.protocol=PLAINTEXT      # open development listener; SASL comes with tenants

kcat:
  echo hi | kcat -b $BOOTSTRAP -t demo -P
  kcat -b $BOOTSTRAP -t demo -C -e
Kafka's own tools:
  deploy/kafka-tool.sh kafka-console-consumer --bootstrap-server $BOOTSTRAP --topic demo --from-beginning

Ctrl-C stops the gateway; deploy/pool.sh stop stops the pool.
MSG
wait $GATEWAY_PID
