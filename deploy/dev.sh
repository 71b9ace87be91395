#!/usr/bin/env bash
# The main job on a fresh machine: start the local Kafka pool and a sluice gateway in
# front of it with SASL, a TLS listener (SNI) and sluice's own OAuth2 issuer
# (deploy/examples/sluice-demo.toml),
# create OAuth client credentials for the demo tenant in the tenant store (the pool's
# __sluice_tenants topic, with `sluice client create`), do a round trip through the
# gateway with Kafka's own tools, and print ready client configs (Java, librdkafka, kcat).
# The gateway runs in the foreground; Ctrl-C stops it (`deploy/pool.sh stop` stops the pool).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${SLUICE_CONFIG:-deploy/examples/sluice-demo.toml}
BOOTSTRAP=127.0.0.1:9092
TOKEN_URL=http://127.0.0.1:9480/oauth2/token
POOL=127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093
DEMO=deploy/.pool/demo
mkdir -p "$DEMO"

command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
deploy/pool.sh start
cargo build --release -p sluice-gateway
SLUICE=target/release/sluice

# A demo CA and a certificate for *.sluice.test, and the names in /etc/hosts, for the
# TLS listener (SNI routing needs one name per broker).
TLS=$DEMO/tls
if [ ! -s "$TLS/cert.pem" ]; then
  mkdir -p "$TLS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=sluice demo CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bootstrap.sluice.test" \
    -keyout "$TLS/key.pem" -out "$TLS/leaf.csr" 2>/dev/null
  printf 'subjectAltName=DNS:*.sluice.test,DNS:bootstrap.sluice.test\n' > "$TLS/leaf.ext"
  openssl x509 -req -in "$TLS/leaf.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial -days 825 \
    -extfile "$TLS/leaf.ext" -out "$TLS/cert.pem" 2>/dev/null
fi
HOSTS_LINE="127.0.0.1 bootstrap.sluice.test broker-1.sluice.test broker-2.sluice.test broker-3.sluice.test broker-4.sluice.test"
if ! getent hosts broker-3.sluice.test >/dev/null; then
  if [ -w /etc/hosts ]; then
    echo "$HOSTS_LINE" >> /etc/hosts
    echo "added the sluice.test names to /etc/hosts"
  else
    echo "note: for TLS, add this line to /etc/hosts:  $HOSTS_LINE" >&2
  fi
fi

for port in 9092 9094 9480; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is already in use (another sluice?); stop it first" >&2
    exit 1
  fi
done
$SLUICE serve --config "$CONFIG" > "$DEMO/sluice.log" 2>&1 &
GATEWAY_PID=$!
trap 'kill $GATEWAY_PID 2>/dev/null || true; wait $GATEWAY_PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/9101) 2>/dev/null; then break; fi
  kill -0 $GATEWAY_PID 2>/dev/null || { cat "$DEMO/sluice.log" >&2; exit 1; }
  sleep 0.2
done

# OAuth client credentials for tenant "demo" (seeded at the gateway's start). The client
# lives in the tenant store as demo.app; its secret is shown only at creation, so it is
# kept in $DEMO/client.env, and the client is made again if either is missing.
client_id=
if [ -s "$DEMO/client.env" ]; then
  # shellcheck disable=SC1091
  . "$DEMO/client.env"
fi
LISTED=$($SLUICE client list --bootstrap "$POOL" --tenant demo)
# The client is also the tenant's admin on the /v1 API (scope sluice:admin); one made by
# an older dev.sh without that scope is made again.
if [ -z "$client_id" ] || ! grep -qF "\"client_id\":\"$client_id\"" <<<"$LISTED" || ! grep -qF 'sluice:admin' <<<"$LISTED"; then
  $SLUICE client delete --bootstrap "$POOL" demo.app >/dev/null 2>&1 || true
  CREATED=$($SLUICE client create --bootstrap "$POOL" --tenant demo --name app --subject demo-app --scope sluice:admin)
  (umask 077; python3 -c 'import json, sys; c = json.loads(sys.argv[1]); print("client_id=%s\nclient_secret=%s" % (c["client_id"], c["client_secret"]))' \
    "$CREATED" > "$DEMO/client.env")
  # shellcheck disable=SC1091
  . "$DEMO/client.env"
fi

# Kafka 4.1+ names the client credentials in these configs; clients before 4.1 put
# clientId="..." clientSecret="..." into the JAAS line instead.
cat > "$DEMO/client.properties" <<PROPS
bootstrap.servers=$BOOTSTRAP
security.protocol=SASL_PLAINTEXT
sasl.mechanism=OAUTHBEARER
sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler
sasl.oauthbearer.token.endpoint.url=$TOKEN_URL
sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
sasl.oauthbearer.client.credentials.client.id=$client_id
sasl.oauthbearer.client.credentials.client.secret=$client_secret
PROPS
sed -e "s|^bootstrap.servers=.*|bootstrap.servers=bootstrap.sluice.test:9094|" \
    -e "s|^security.protocol=.*|security.protocol=SASL_SSL|" "$DEMO/client.properties" > "$DEMO/client-tls.properties"
printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$TLS/ca.pem" >> "$DEMO/client-tls.properties"
# Kafka 4 clients fetch tokens only from URLs allowed by this JVM property.
export KAFKA_TOOL_OPTS="-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$TOKEN_URL"

deploy/kafka-tool.sh kafka-topics --bootstrap-server "$BOOTSTRAP" --command-config "$DEMO/client.properties" \
  --create --if-not-exists --topic demo --partitions 3 --replication-factor 3
MARK="hello from sluice $(date -u +%FT%TZ) $RANDOM"
echo "$MARK" | deploy/kafka-tool.sh kafka-console-producer \
  --bootstrap-server "$BOOTSTRAP" --producer.config "$DEMO/client.properties" --topic demo
# Read it back over TLS (SNI) with an OAuth token.
if deploy/kafka-tool.sh kafka-console-consumer --bootstrap-server bootstrap.sluice.test:9094 \
     --consumer.config "$DEMO/client-tls.properties" --topic demo --from-beginning --timeout-ms 10000 2>/dev/null \
     | grep -qF "$MARK"; then
  echo "--- round trip OK: produced on the plain port, read back over TLS: \"$MARK\""
else
  echo "--- round trip FAILED: \"$MARK\" was not read back over TLS; see $DEMO/sluice.log" >&2
fi

cat <<MSG

sluice is running (pid $GATEWAY_PID, log $DEMO/sluice.log); tenant "demo" has an OAuth client
(in the tenant store; see \`$SLUICE client list --bootstrap $POOL --tenant demo\`):
  client_id=$client_id
  client_secret=$client_secret        (also in $DEMO/client.env)
  token endpoint $TOKEN_URL

Java client / Kafka tools: $DEMO/client.properties, and run the JVM with
  -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$TOKEN_URL
  e.g. KAFKA_TOOL_OPTS=-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$TOKEN_URL \\
       deploy/kafka-tool.sh kafka-console-consumer --bootstrap-server $BOOTSTRAP \\
       --consumer.config $DEMO/client.properties --topic demo --from-beginning

librdkafka (confluent-kafka and others built with OIDC support):
  security.protocol=SASL_PLAINTEXT sasl.mechanism=OAUTHBEARER sasl.oauthbearer.method=oidc
  sasl.oauthbearer.client.id=$client_id sasl.oauthbearer.client.secret=<secret>
  sasl.oauthbearer.token.endpoint.url=$TOKEN_URL

Over TLS (one port, SNI-routed; the demo CA is $TLS/ca.pem): the same configs with
  bootstrap.servers=bootstrap.sluice.test:9094 and security.protocol=SASL_SSL, plus
  Java: ssl.truststore.type=PEM ssl.truststore.location=$TLS/ca.pem
        (ready-made: $DEMO/client-tls.properties)
  librdkafka/kcat: ssl.ca.location=$TLS/ca.pem

kcat over TLS with an OAuth token (PLAIN, the token as password):
  TOKEN=\$(curl -s -u "$client_id:$client_secret" -d grant_type=client_credentials $TOKEN_URL \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  kcat -b bootstrap.sluice.test:9094 -X security.protocol=SASL_SSL -X ssl.ca.location=$TLS/ca.pem \\
       -X sasl.mechanism=PLAIN -X sasl.username=demo -X sasl.password="\$TOKEN" -t demo -C -e

kcat on the plain port (PLAIN, the token as password):
  TOKEN=\$(curl -s -u "$client_id:$client_secret" -d grant_type=client_credentials $TOKEN_URL \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  kcat -b $BOOTSTRAP -X security.protocol=SASL_PLAINTEXT -X sasl.mechanism=PLAIN \\
       -X sasl.username=demo -X sasl.password="\$TOKEN" -t demo -C -e

Admin API (http://127.0.0.1:9480/v1, OpenAPI at /v1/openapi.json) as tenant demo's admin:
  ADMIN=\$(curl -s -u "$client_id:$client_secret" -d grant_type=client_credentials -d scope=sluice:admin $TOKEN_URL \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer \$ADMIN" http://127.0.0.1:9480/v1/tenants/demo/topics
  curl -s -H "Authorization: Bearer \$ADMIN" "http://127.0.0.1:9480/v1/tenants/demo/usage?granularity=hour"
As the operator (whoever holds the issuer key can mint operator tokens):
  OP=\$($SLUICE token mint --key $DEMO/issuer.pem --issuer http://127.0.0.1:9480 --scope sluice:operator --subject ops)
  curl -s -H "Authorization: Bearer \$OP" http://127.0.0.1:9480/v1/tenants
Without HTTP: $SLUICE tenant create|set-limits|usage ... --bootstrap $POOL
Metrics: http://127.0.0.1:9480/metrics (Grafana dashboard: deploy/grafana/sluice.json)

Ctrl-C stops the gateway; deploy/pool.sh stop stops the pool.
MSG
wait $GATEWAY_PID
