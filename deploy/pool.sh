#!/usr/bin/env bash
# A real Apache Kafka 4.x KRaft pool on loopback, for sluice development and tests.
#
# usage: deploy/pool.sh <command> [args]
#   fetch                 download Kafka jars with Maven into deploy/.cache/ (idempotent)
#   start [--brokers 3|4] start the pool (fetch + format once), wait until it serves;
#                         no-op for nodes already running, restarts nodes that died
#   stop                  graceful stop of all nodes (SIGTERM, SIGKILL after a timeout)
#   status                per-node state, and whether the cluster answers (exit 1 if not)
#   start-broker N        start node N (1..4) and wait until it is back in the cluster
#   stop-broker N         stop node N gracefully
#   kill-broker N         kill -9 node N (fault tests)
#   wait                  wait until every running node is registered and serving
#   bootstrap             print the bootstrap list of the 3 base brokers
#   logs N                print the path of node N's server.log
#   clean                 stop, then delete all pool data and logs
#   secure-bootstrap sasl|mtls  print the bootstrap list of a secured listener
#   gateway-config sasl_ssl|ssl print a sluice.toml [pool] section for this pool
#
# Nodes 1..3: broker+controller, racks a/b/c, PLAINTEXT 127.0.0.1:29091..29093,
# CONTROLLER 127.0.0.1:29191..29193 (static quorum). Node 4: broker only,
# 127.0.0.1:29094, rack a. Secured listeners (certificates and the SCRAM user are made
# at start, under <pool dir>/secure): SASL_SSL with SCRAM-SHA-512/256 on 29291..29294,
# SSL with required client certificates (mTLS) on 29391..29394.
# See deploy/README.md for the environment variables.
set -euo pipefail

# shellcheck source=kafka/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka/common.sh"

POOL_DIR="${SLUICE_POOL_DIR:-$DEPLOY_DIR/.pool}"
HOST=127.0.0.1
PORT_BASE="${SLUICE_POOL_PORT_BASE:-29090}"                       # broker N listens on PORT_BASE+N
CONTROLLER_PORT_BASE="${SLUICE_POOL_CONTROLLER_PORT_BASE:-$((PORT_BASE + 100))}"
TIMEOUT="${SLUICE_POOL_TIMEOUT:-120}"
STOP_TIMEOUT="${SLUICE_POOL_STOP_TIMEOUT:-30}"
HEAP_OPTS="${SLUICE_POOL_HEAP_OPTS:--Xms256m -Xmx512m}"
NODE4_RACK="${SLUICE_POOL_NODE4_RACK:-a}"
WAIT_ISR="${SLUICE_POOL_WAIT_ISR:-1}"
DEADLINE=$((SECONDS + TIMEOUT))   # one overall limit per command (start-up + catch-up)
# Secured listeners for the gateway's own pool connection (SPEC 10, issue 9).
SECURE="${SLUICE_POOL_SECURE:-1}"                   # 0: PLAINTEXT only, as before
SECURE_ONLY="${SLUICE_POOL_SECURE_ONLY:-0}"         # 1: no PLAINTEXT client listener at all
SASL_PORT_BASE="${SLUICE_POOL_SASL_PORT_BASE:-$((PORT_BASE + 200))}"
MTLS_PORT_BASE="${SLUICE_POOL_MTLS_PORT_BASE:-$((PORT_BASE + 300))}"
SCRAM_USER="${SLUICE_POOL_SCRAM_USER:-sluice}"
SECURE_DIR="$POOL_DIR/secure"
[[ "$SECURE_ONLY" == 1 ]] && SECURE=1
CONTROLLER_NODES=(1 2 3)
ALL_NODES=(1 2 3 4)

# ---------------------------------------------------------------- helpers ---

node_dir()   { printf '%s\n' "$POOL_DIR/node-$1"; }
node_props() { printf '%s\n' "$POOL_DIR/node-$1/server.properties"; }
node_data()  { printf '%s\n' "$POOL_DIR/node-$1/data"; }
node_logs()  { printf '%s\n' "$POOL_DIR/node-$1/logs"; }
node_pidf()  { printf '%s\n' "$POOL_DIR/node-$1/pid"; }
broker_port()     { printf '%s\n' $((PORT_BASE + $1)); }
sasl_port()       { printf '%s\n' $((SASL_PORT_BASE + $1)); }
mtls_port()       { printf '%s\n' $((MTLS_PORT_BASE + $1)); }
# The port pool.sh's own tools use: PLAINTEXT, or the mTLS listener in secure-only mode.
client_port()     { if [[ "$SECURE_ONLY" == 1 ]]; then mtls_port "$1"; else broker_port "$1"; fi; }
controller_port() { printf '%s\n' $((CONTROLLER_PORT_BASE + $1)); }
is_controller()   { [[ "$1" =~ ^[123]$ ]]; }
node_roles()      { if is_controller "$1"; then echo broker,controller; else echo broker; fi; }
node_rack() {
  case "$1" in 1) echo a ;; 2) echo b ;; 3) echo c ;; *) echo "$NODE4_RACK" ;; esac
}
valid_node() { [[ "${1:-}" =~ ^[1-4]$ ]] || die "node id must be 1..4, got '${1:-}'"; }

voters() {
  local n out=()
  for n in "${CONTROLLER_NODES[@]}"; do out+=("$n@$HOST:$(controller_port "$n")"); done
  local IFS=,; printf '%s\n' "${out[*]}"
}

bootstrap_of() {   # bootstrap list (of the listener pool.sh's tools use) for the given node ids
  local n out=()
  for n in "$@"; do out+=("$HOST:$(client_port "$n")"); done
  local IFS=,; printf '%s\n' "${out[*]}"
}

secure_bootstrap_of() {   # secure_bootstrap_of sasl|mtls <node>...
  local kind="$1" n out=()
  shift
  for n in "$@"; do out+=("$HOST:$("${kind}_port" "$n")"); done
  local IFS=,; printf '%s\n' "${out[*]}"
}

# --command-config for pool.sh's own tool runs: none on PLAINTEXT; the brokers'
# certificate over mTLS in secure-only mode.
tool_auth() {
  [[ "$SECURE_ONLY" == 1 ]] && printf '%s\n' --command-config "$SECURE_DIR/tools-mtls.properties"
  return 0
}

# pid of node N if its JVM is alive (and really is that node), else fail.
node_pid() {
  local f pid state cmd
  f="$(node_pidf "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$(node_props "$1")"* ]] || return 1
  printf '%s\n' "$pid"
}

running_nodes() {
  local n
  for n in "${ALL_NODES[@]}"; do node_pid "$n" >/dev/null && printf '%s\n' "$n"; done
  return 0
}

port_open() {   # is something accepting connections on 127.0.0.1:$1 ?
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Run a Kafka CLI class quickly (C1 only: these probes are short-lived).
run_tool() {
  local class="$1"; shift
  local -a opts
  mapfile -t opts < <(kafka_tool_java_opts)
  timeout 60 "$(java_bin)" "${opts[@]}" -XX:TieredStopAtLevel=1 -cp "$(kafka_cp_wildcard)" "$class" "$@"
}

storage_tool_class() { kafka_pick_class kafka.tools.StorageTool org.apache.kafka.tools.StorageTool; }

log_tail() {   # show the interesting end of node N's logs
  local n="$1" lines="${2:-25}" logs f
  logs="$(node_logs "$n")"
  for f in "$logs/server.log" "$logs/stdout.log"; do
    if [[ -s "$f" ]]; then
      say "----- node $n: tail of $f -----"
      tail -n "$lines" "$f" >&2
    fi
  done
}

# Serialise mutating commands (concurrent `start` from parallel test runs).
# The lock fd is closed for the broker JVMs (see launch_node).
take_lock() {
  mkdir -p "$POOL_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$POOL_DIR/.lock"
    flock 9
  fi
  DEADLINE=$((SECONDS + TIMEOUT))   # waiting for the lock does not count
}

# ------------------------------------------------------------ configuration --

cluster_id() {
  local f="$POOL_DIR/cluster.id" id
  if [[ ! -s "$f" ]]; then
    id="$(run_tool "$(storage_tool_class)" random-uuid 2>/dev/null | tail -n 1 | tr -d '[:space:]')"
    [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (StorageTool random-uuid gave '$id')"
    printf '%s\n' "$id" >"$f"
  fi
  tr -d '[:space:]' <"$f"
}

write_props() {
  local n="$1" props listeners
  props="$(node_props "$n")"
  mkdir -p "$(node_dir "$n")" "$(node_data "$n")" "$(node_logs "$n")"
  local advertised="" inter=PLAINTEXT
  [[ "$SECURE_ONLY" == 1 ]] || advertised="PLAINTEXT://$HOST:$(broker_port "$n")"
  if [[ "$SECURE" == 1 ]]; then
    advertised="${advertised:+$advertised,}SASL_SSL://$HOST:$(sasl_port "$n"),MTLS://$HOST:$(mtls_port "$n")"
    # Secure-only: brokers replicate over the mTLS listener, with their own certificate.
    [[ "$SECURE_ONLY" == 1 ]] && inter=MTLS
  fi
  listeners="$advertised"
  is_controller "$n" && listeners="$listeners,CONTROLLER://$HOST:$(controller_port "$n")"
  cat >"$props.tmp" <<EOF
# Generated by deploy/pool.sh on every start; edits are overwritten.
# Extra settings: put them in a file and point SLUICE_POOL_EXTRA_CONFIG at it.
process.roles=$(node_roles "$n")
node.id=$n
broker.rack=$(node_rack "$n")
controller.quorum.voters=$(voters)
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=$inter
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
log.dirs=$(node_data "$n")

# Replication as on a real 3-AZ cluster.
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
auto.create.topics.enable=false
delete.topic.enable=true
unclean.leader.election.enable=false

# Groups: no join delay for tests; classic + KIP-848 consumer protocol.
group.initial.rebalance.delay.ms=0

# A killed broker is fenced by the controller within ~6-8 s.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=500
replica.lag.time.max.ms=10000

# Light on a small (2-core) machine.
num.network.threads=2
num.io.threads=4
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
  [[ "$SECURE" == 1 ]] && secure_props >>"$props.tmp"
  if [[ -n "${SLUICE_POOL_EXTRA_CONFIG:-}" ]]; then
    [[ -f "$SLUICE_POOL_EXTRA_CONFIG" ]] || die "SLUICE_POOL_EXTRA_CONFIG=$SLUICE_POOL_EXTRA_CONFIG is not a file"
    { printf '\n# From %s\n' "$SLUICE_POOL_EXTRA_CONFIG"; cat "$SLUICE_POOL_EXTRA_CONFIG"; } >>"$props.tmp"
  fi
  mv "$props.tmp" "$props"
}

format_node() {
  local n="$1" cid data
  data="$(node_data "$n")"
  [[ -f "$data/meta.properties" ]] && return 0
  cid="$(cluster_id)"
  say "node $n: formatting storage (cluster id $cid)"
  local -a scram=()
  if [[ "$SECURE" == 1 ]] && is_controller "$n"; then
    # The gateway's SCRAM user is part of a fresh cluster's bootstrap metadata.
    local pw
    pw="$(<"$SECURE_DIR/$SCRAM_USER.password")"
    scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,iterations=8192,password=$pw]"
           --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,iterations=8192,password=$pw]")
    SCRAM_FORMATTED=1
  fi
  if ! run_tool "$(storage_tool_class)" format --ignore-formatted -t "$cid" -c "$(node_props "$n")" "${scram[@]}" \
        >"$(node_logs "$n")/format.log" 2>&1; then
    cat "$(node_logs "$n")/format.log" >&2
    die "node $n: formatting $data failed"
  fi
}

# ------------------------------------------------------- secured listeners ---

# Every port node N listens on.
node_ports() {
  local n="$1"
  if [[ "$SECURE_ONLY" != 1 ]]; then broker_port "$n"; fi
  if [[ "$SECURE" == 1 ]]; then sasl_port "$n"; mtls_port "$n"; fi
  if is_controller "$n"; then controller_port "$n"; fi
}

# Broker settings of the secured listeners (appended to server.properties).
secure_props() {
  cat <<EOF

# Secured listeners (deploy/pool.sh, SLUICE_POOL_SECURE=1): TLS with the pool's own CA
# (PEM files in $SECURE_DIR). SASL_SSL takes SCRAM users only; MTLS takes only
# clients whose certificate the CA signed.
ssl.keystore.type=PEM
ssl.keystore.location=$SECURE_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECURE_DIR/ca.pem
ssl.endpoint.identification.algorithm=https
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.mtls.ssl.client.auth=required
EOF
}

# openssl req/x509 with a throw-away extensions file.
sign_cert() {   # sign_cert <name> <subject> <extensions>
  local name="$1" subj="$2" ext="$3" d="$SECURE_DIR"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/$name-key.pem" 2>/dev/null
  openssl req -new -key "$d/$name-key.pem" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
    -days 825 -sha256 -extfile "$d/$name.ext" -out "$d/$name-cert.pem" 2>/dev/null
  cat "$d/$name-key.pem" "$d/$name-cert.pem" >"$d/$name.pem"   # key + chain, for Kafka's PEM keystores
  rm -f "$d/$name.csr" "$d/$name.ext"
}

# The pool's CA, the brokers' certificate, the gateway's client certificate and the
# gateway's SCRAM password, made once per pool directory (kept across restarts; `clean`
# removes them). Files are private to the user (mode 0600).
ensure_secure_material() {
  local d="$SECURE_DIR"
  mkdir -p "$d"
  chmod 700 "$d"
  if [[ ! -s "$d/ca.pem" || ! -s "$d/broker.pem" || ! -s "$d/gateway.pem" ]]; then
    command -v openssl >/dev/null 2>&1 || die "openssl not found: it makes the certificates of the secured listeners (or set SLUICE_POOL_SECURE=0)"
    say "secured listeners: generating a CA and certificates in $d"
    (
      umask 077
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca-key.pem" -out "$d/ca.pem" -days 3650 \
        -subj "/CN=sluice dev pool CA" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
      sign_cert broker "/CN=sluice-pool-broker" \
        "subjectAltName=IP:$HOST,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
      sign_cert gateway "/CN=sluice-gateway" "extendedKeyUsage=clientAuth"
    ) || die "generating certificates in $d failed"
  fi
  if [[ ! -s "$d/$SCRAM_USER.password" ]]; then
    ( umask 077
      if [[ -n "${SLUICE_POOL_SCRAM_PASSWORD:-}" ]]; then printf '%s' "$SLUICE_POOL_SCRAM_PASSWORD"
      else openssl rand -hex 24 | tr -d '\n'; fi >"$d/$SCRAM_USER.password" )
  fi
  local pw
  pw="$(<"$d/$SCRAM_USER.password")"
  ( umask 077
    cat >"$d/tools-mtls.properties" <<EOF
# Kafka tools over the mTLS listener, as the brokers' identity (pool.sh's own probes).
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
ssl.keystore.type=PEM
ssl.keystore.location=$d/broker.pem
EOF
    cat >"$d/client-sasl.properties" <<EOF
# Kafka tools over the SASL_SSL listener as the gateway's SCRAM user.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SCRAM_USER" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
EOF
    cat >"$d/client-mtls.properties" <<EOF
# Kafka tools over the mTLS listener with the gateway's certificate.
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
ssl.keystore.type=PEM
ssl.keystore.location=$d/gateway.pem
EOF
  )
}

# Creates (or updates) the gateway's SCRAM credentials once the pool serves. A fresh
# pool got them at format time (--add-scram); a pool formatted before, or a changed
# password, gets them through kafka-configs. Idempotent; skipped when this pool already
# has this user with this password (a marker names the cluster id, user and a hash of
# the password).
SCRAM_FORMATTED=0
ensure_scram_user() {
  [[ "$SECURE" == 1 ]] || return 0
  # A pool started by an older pool.sh (or with SLUICE_POOL_SECURE=0) serves no secured
  # listener until its nodes restart: nothing to do, and `start` must still succeed.
  if ! grep -q '^advertised.listeners=.*SASL_SSL://' "$(node_props 1)" 2>/dev/null \
       || [[ ! -s "$SECURE_DIR/$SCRAM_USER.password" ]]; then
    say "note: this pool was started without the secured listeners; they appear when its nodes restart"
    return 0
  fi
  local d="$SECURE_DIR" pw want marker="$SECURE_DIR/.scram-user"
  local -a auth
  pw="$(<"$d/$SCRAM_USER.password")"
  want="$(cluster_id) $SCRAM_USER $(printf '%s' "$pw" | sha256sum | cut -d' ' -f1)"
  [[ -f "$marker" && "$(<"$marker")" == "$want" ]] && return 0
  if [[ "$SCRAM_FORMATTED" == 1 ]]; then
    printf '%s\n' "$want" >"$marker"
    return 0
  fi
  mapfile -t auth < <(tool_auth)
  local class live
  class="$(kafka_pick_class kafka.admin.ConfigCommand org.apache.kafka.tools.ConfigCommand)"
  mapfile -t live < <(running_nodes)
  # Brokers pick up a new SCRAM credential from the metadata log within moments; retried
  # while the controller settles right after start.
  # One mechanism per request: Kafka refuses two credentials of one user in one alter.
  local i mech done_mechs=0
  for mech in SCRAM-SHA-512 SCRAM-SHA-256; do
    for ((i = 0; i < 10; i++)); do
      if run_tool "$class" --bootstrap-server "$(bootstrap_of "${live[@]}")" "${auth[@]}" --alter \
           --add-config "$mech=[iterations=8192,password=$pw]" \
           --entity-type users --entity-name "$SCRAM_USER" >"$d/scram.log" 2>&1; then
        done_mechs=$((done_mechs + 1))
        break
      fi
      sleep 1
    done
  done
  if ((done_mechs != 2)); then
    cat "$d/scram.log" >&2
    die "could not create the SCRAM user '$SCRAM_USER'"
  fi
  printf '%s\n' "$want" >"$marker"
  say "secured listeners: SCRAM user '$SCRAM_USER' set (password in $d/$SCRAM_USER.password)"
}

# A sluice.toml [pool] section for this pool's secured listeners.
cmd_gateway_config() {
  local kind="${1:-sasl_ssl}" d="$SECURE_DIR"
  [[ -s "$d/ca.pem" ]] || die "no secured listeners yet: run deploy/pool.sh start first"
  case "$kind" in
    sasl_ssl)
      cat <<EOF
[pool]
bootstrap = [$(secure_bootstrap_of sasl 1 2 3 | sed 's/[^,]*/"&"/g; s/,/, /g')]
security = "sasl_ssl"
[pool.tls]
ca_file = "$d/ca.pem"
[pool.sasl]
mechanism = "SCRAM-SHA-512"
username = "$SCRAM_USER"
password_file = "$d/$SCRAM_USER.password"
EOF
      ;;
    ssl)
      cat <<EOF
[pool]
bootstrap = [$(secure_bootstrap_of mtls 1 2 3 | sed 's/[^,]*/"&"/g; s/,/, /g')]
security = "ssl"
[pool.tls]
ca_file = "$d/ca.pem"
cert_file = "$d/gateway-cert.pem"
key_file = "$d/gateway-key.pem"
EOF
      ;;
    *) die "gateway-config: sasl_ssl or ssl, got '$kind'" ;;
  esac
}

# ------------------------------------------------------------ start / stop ---

check_ports_free() {   # before launching node N: nothing else may listen on its ports
  local n="$1" port
  for port in $(node_ports "$n"); do
    if port_open "$port"; then
      die "node $n: port $HOST:$port is already in use by another process (not this pool's node $n)"
    fi
  done
}

launch_node() {
  local n="$1" logs pidf java
  logs="$(node_logs "$n")"
  pidf="$(node_pidf "$n")"
  check_ports_free "$n"
  [[ "$SECURE" == 1 ]] && ensure_secure_material
  write_props "$n"
  format_node "$n"
  rm -f "$pidf"
  java="$(java_bin)"
  # shellcheck disable=SC2206
  local -a jvm=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
                -XX:+ExplicitGCInvokesConcurrent -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1
                -XX:CICompilerCount=2
                "-Xlog:gc*:file=$logs/gc.log:time,tags:filecount=3,filesize=10M"
                -Djava.awt.headless=true
                "-Dkafka.logs.dir=$logs"
                "-Dlog4j2.configurationFile=$LOG4J_BROKER_CONFIG")
  # shellcheck disable=SC2206
  [[ -n "${SLUICE_POOL_JVM_OPTS:-}" ]] && jvm+=(${SLUICE_POOL_JVM_OPTS})
  {
    printf '\n===== %s starting node %d (Kafka %s) =====\n' "$(date -u +%FT%TZ)" "$n" "$KAFKA_VERSION"
  } >>"$logs/stdout.log"
  # New session: the JVM survives the caller's terminal/process group. The child
  # writes its own pid, then execs java (same pid). fd 9 (our lock) is closed.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" \
    "$java" "${jvm[@]}" -cp "$(kafka_cp_wildcard)" kafka.Kafka "$(node_props "$n")" \
    </dev/null >>"$logs/stdout.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    node_pid "$n" >/dev/null && break
    sleep 0.1
  done
  node_pid "$n" >/dev/null || { log_tail "$n"; die "node $n: JVM did not start"; }
  say "node $n: started (pid $(node_pid "$n"), $(node_roles "$n"), rack $(node_rack "$n"), $HOST:$(broker_port "$n"))"
}

# Terminate node N: signal TERM (graceful) or KILL; wait for the process to go.
terminate_node() {
  local n="$1" sig="$2" pid
  pid="$(node_pid "$n")" || { rm -f "$(node_pidf "$n")"; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
}

# Remember where node N's server.log ends before it is asked to stop, so that
# shutdown_granted can look only at what the node logged since.
declare -A LOG_MARK=()
mark_log() {
  local f
  f="$(node_logs "$1")/server.log"
  LOG_MARK[$1]="$( [[ -f "$f" ]] && wc -c <"$f" || echo 0)"
}
# Has node N's broker been told by the controller that it may shut down (or has it
# passed that point)? Only then can it finish without a controller quorum.
shutdown_granted() {
  local f mark size
  f="$(node_logs "$1")/server.log"
  [[ -f "$f" ]] || return 1
  mark="${LOG_MARK[$1]:-0}"
  size="$(wc -c <"$f")"
  ((size >= mark)) || mark=0   # rolled over
  tail -c +"$((mark + 1))" "$f" | grep -E 'BrokerLifecycleManager id=[0-9]+\] Transitioning from [A-Z_]+ to SHUTTING_DOWN|asked us to exit controlled shutdown|from SHUTTING_DOWN to SHUTDOWN|ControllerServer id=[0-9]+\] shutting down' >/dev/null   # no -q: with pipefail, SIGPIPE in tail would count as failure
}

# wait_gone <timeout-seconds> <node>...: wait for the nodes to exit; SIGKILL what is
# left after the timeout. A broker's controlled shutdown must be granted through the
# controller quorum: once fewer than 2 of the 3 controllers run, a node whose broker
# has not been granted yet would wait (up to 5 min) for a grant that can never come,
# so it is killed after QUORUM_GRACE s. (Nodes that were granted just need a few more
# seconds to exit and are left alone.)
QUORUM_GRACE="${SLUICE_POOL_QUORUM_GRACE:-5}"
wait_gone() {
  local secs="$1" limit=$((SECONDS + $1)) n left stuck controllers lost_at="" killed=0
  shift
  while :; do
    left=()
    for n in "$@"; do node_pid "$n" >/dev/null && left+=("$n"); done
    ((${#left[@]} == 0)) && break
    if ((killed == 0)); then
      controllers=0
      for n in "${CONTROLLER_NODES[@]}"; do node_pid "$n" >/dev/null && controllers=$((controllers + 1)); done
      if ((controllers < 2)); then
        [[ -n "$lost_at" ]] || lost_at=$SECONDS
        if ((SECONDS - lost_at >= QUORUM_GRACE)); then
          stuck=()
          for n in "${left[@]}"; do shutdown_granted "$n" || stuck+=("$n"); done
          if ((${#stuck[@]})); then
            say "node(s) ${stuck[*]}: no controller quorum left to grant a controlled shutdown; sending SIGKILL (logs are recovered on the next start)"
            for n in "${stuck[@]}"; do terminate_node "$n" KILL; done
            lost_at=$((SECONDS + 3600))   # once
          fi
        fi
      fi
      if ((SECONDS >= limit)); then
        say "node(s) ${left[*]}: still running after $secs s, sending SIGKILL"
        for n in "${left[@]}"; do terminate_node "$n" KILL; done
        killed=1
        limit=$((SECONDS + 10))
      fi
    elif ((SECONDS >= limit)); then
      die "node(s) ${left[*]}: still alive 10 s after SIGKILL"
    fi
    sleep 0.2
  done
  for n in "$@"; do rm -f "$(node_pidf "$n")"; done
}

stop_nodes() {   # graceful stop of the given nodes (brokers-only first)
  local n brokers=() controllers=()
  for n in "$@"; do
    node_pid "$n" >/dev/null || { rm -f "$(node_pidf "$n")"; continue; }
    if is_controller "$n"; then controllers+=("$n"); else brokers+=("$n"); fi
  done
  if ((${#brokers[@]})); then
    say "stopping node(s) ${brokers[*]} ..."
    for n in "${brokers[@]}"; do mark_log "$n"; terminate_node "$n" TERM; done
    wait_gone "$STOP_TIMEOUT" "${brokers[@]}"
  fi
  if ((${#controllers[@]})); then
    # Combined nodes are stopped together: each broker's controlled shutdown
    # needs a controller quorum, which stays up until the brokers are done.
    say "stopping node(s) ${controllers[*]} ..."
    for n in "${controllers[@]}"; do mark_log "$n"; terminate_node "$n" TERM; done
    wait_gone "$STOP_TIMEOUT" "${controllers[@]}"
  fi
}

# ---------------------------------------------------------------- readiness --

# Broker ids that the cluster reports as registered and unfenced (metadata),
# asking through the given bootstrap list. Each listed broker also answered ApiVersions.
online_broker_ids() {
  local bootstrap="$1" out
  local -a auth
  mapfile -t auth < <(tool_auth)
  out="$(run_tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$bootstrap" "${auth[@]}" 2>/dev/null)" || return 1
  # lines look like "127.0.0.1:29091 (id: 1 rack: a isFenced: false) -> (" (or "-> ERROR: ...")
  grep -E '\(id: [0-9]+ [^)]*\) -> \($' <<<"$out" | grep -v 'isFenced: true' \
    | grep -oE '\(id: [0-9]+' | grep -oE '[0-9]+' | sort -n | uniq | tr '\n' ' ' | sed 's/ $//'
}

# Wait until every node in "$@" is alive, listening, registered and unfenced.
wait_ready() {
  local deadline=$DEADLINE n want=("$@") live ids missing
  # phase 1: processes alive and listening (cheap, no JVM)
  while :; do
    missing=()
    for n in "${want[@]}"; do
      if ! node_pid "$n" >/dev/null; then
        log_tail "$n"
        die "node $n exited during start-up (logs: $(node_logs "$n"))"
      fi
      port_open "$(client_port "$n")" || missing+=("$n")
    done
    ((${#missing[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for n in "${missing[@]}"; do log_tail "$n"; done
      die "timed out after ${TIMEOUT}s: node(s) ${missing[*]} not listening"
    fi
    sleep 0.5
  done
  # phase 2: the cluster metadata lists every wanted broker as alive
  while :; do
    mapfile -t live < <(running_nodes)
    ids="$(online_broker_ids "$(bootstrap_of "${live[@]}")" || true)"
    missing=()
    for n in "${want[@]}"; do
      [[ " $ids " == *" $n "* ]] || missing+=("$n")
      node_pid "$n" >/dev/null || { log_tail "$n"; die "node $n exited during start-up (logs: $(node_logs "$n"))"; }
    done
    ((${#missing[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for n in "${missing[@]}"; do log_tail "$n"; done
      die "timed out after ${TIMEOUT}s: broker(s) ${missing[*]} not registered/unfenced (cluster reports: '${ids:-nothing}')"
    fi
    sleep 1
  done
  ONLINE_IDS="$ids"
}

# After a restart: wait until node N is back in the ISR of every partition it replicates.
wait_in_sync() {
  local n="$1" deadline=$DEADLINE live out lagging
  while :; do
    mapfile -t live < <(running_nodes)
    if out="$(run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap_of "${live[@]}")" \
                $(tool_auth) --describe 2>/dev/null)"; then
      lagging="$(awk -v id="$n" '
        /Partition:/ {
          rep = ""; isr = ""
          for (i = 1; i <= NF; i++) {
            if ($i == "Replicas:") rep = $(i + 1)
            if ($i == "Isr:") isr = $(i + 1)
          }
          if (("," rep ",") ~ ("," id ",") && ("," isr ",") !~ ("," id ",")) c++
        }
        END { print c + 0 }' <<<"$out")"
      [[ "$lagging" == 0 ]] && return 0
    else
      lagging="?"
    fi
    if ((SECONDS >= deadline)); then
      die "timed out after ${TIMEOUT}s: node $n is not yet in the ISR of $lagging partition(s)"
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- commands ---

cmd_fetch() {
  fetch_kafka
  check_java
}

cmd_start() {
  local brokers=3
  while (($#)); do
    case "$1" in
      --brokers) brokers="${2:-}"; shift 2 || die "--brokers needs a value" ;;
      --brokers=*) brokers="${1#*=}"; shift ;;
      *) die "start: unknown argument '$1' (usage: start [--brokers 3|4])" ;;
    esac
  done
  [[ "$brokers" == 3 || "$brokers" == 4 ]] || die "--brokers must be 3 or 4"
  ensure_kafka
  check_java
  take_lock
  local t0=$SECONDS n want=(1 2 3) started=()
  ((brokers == 4)) && want+=(4)
  # node 4 already running (from an earlier --brokers 4) stays and is checked too
  ((brokers == 3)) && node_pid 4 >/dev/null && want+=(4)
  for n in "${want[@]}"; do
    node_pid "$n" >/dev/null || check_ports_free "$n"   # fail before launching anything
  done
  for n in "${want[@]}"; do
    if node_pid "$n" >/dev/null; then
      say "node $n: already running (pid $(node_pid "$n"))"
    else
      [[ -f "$(node_pidf "$n")" ]] && say "node $n: not running (stale pid file), restarting"
      launch_node "$n"
      started+=("$n")
    fi
  done
  if ((${#started[@]} == 0)); then
    wait_ready "${want[@]}"
    ensure_scram_user
    say "pool already running: brokers $ONLINE_IDS online; bootstrap $(bootstrap_of 1 2 3)"
    return 0
  fi
  say "waiting for the pool to be ready (timeout ${TIMEOUT}s) ..."
  wait_ready "${want[@]}"
  ensure_scram_user
  say "pool ready in $((SECONDS - t0))s: brokers $ONLINE_IDS online; bootstrap $(bootstrap_of 1 2 3)"
}

cmd_start_broker() {
  valid_node "${1:-}"
  local n="$1" t0=$SECONDS
  ensure_kafka
  check_java
  take_lock
  if node_pid "$n" >/dev/null; then
    say "node $n: already running (pid $(node_pid "$n"))"
  else
    launch_node "$n"
  fi
  wait_ready "$n"
  if [[ "$WAIT_ISR" == 1 ]]; then
    wait_in_sync "$n"
  fi
  say "node $n: back in the cluster after $((SECONDS - t0))s (brokers online: $ONLINE_IDS)"
}

cmd_stop_broker() {
  valid_node "${1:-}"
  take_lock
  if node_pid "$1" >/dev/null; then
    stop_nodes "$1"
    say "node $1: stopped"
  else
    rm -f "$(node_pidf "$1")"
    say "node $1: not running"
  fi
}

cmd_kill_broker() {
  valid_node "${1:-}"
  take_lock
  local pid
  if pid="$(node_pid "$1")"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 10 "$1"
    say "node $1: killed (was pid $pid)"
  else
    rm -f "$(node_pidf "$1")"
    say "node $1: not running"
  fi
}

cmd_stop() {
  take_lock
  local running
  mapfile -t running < <(running_nodes)
  if ((${#running[@]} == 0)); then
    for n in "${ALL_NODES[@]}"; do rm -f "$(node_pidf "$n")"; done
    say "pool not running"
    return 0
  fi
  local t0=$SECONDS
  stop_nodes "${running[@]}"
  say "pool stopped in $((SECONDS - t0))s"
}

cmd_status() {
  local n pid state any=0 live
  printf '%-5s %-18s %-5s %-16s %-16s %-8s %s\n' NODE ROLES RACK LISTENER CONTROLLER STATE PID
  for n in "${ALL_NODES[@]}"; do
    [[ -d "$(node_dir "$n")" ]] || is_controller "$n" || continue
    if pid="$(node_pid "$n")"; then
      state=running; any=1
      port_open "$(client_port "$n")" || state=starting
    else
      pid=-
      if [[ -f "$(node_pidf "$n")" ]]; then state=dead; else state=stopped; fi
    fi
    printf '%-5s %-18s %-5s %-16s %-16s %-8s %s\n' "$n" "$(node_roles "$n")" "$(node_rack "$n")" \
      "$HOST:$(client_port "$n")" "$(is_controller "$n" && echo "$HOST:$(controller_port "$n")" || echo -)" \
      "$state" "$pid"
  done
  printf 'data: %s   kafka: %s (%s)\n' "$POOL_DIR" "$KAFKA_VERSION" \
    "$(kafka_fetched && echo "$KAFKA_LIBS_DIR" || echo 'not fetched')"
  if ((any == 0)) || ! kafka_fetched; then
    echo "cluster: not running"
    return 1
  fi
  mapfile -t live < <(running_nodes)
  local ids quorum
  ids="$(online_broker_ids "$(bootstrap_of "${live[@]}")" || true)"
  if [[ -z "$ids" ]]; then
    echo "cluster: NOT answering"
    return 1
  fi
  echo "cluster: answering; brokers online (registered, unfenced): $ids"
  quorum="$(run_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(bootstrap_of "${live[@]}")" \
              $(tool_auth) describe --status 2>/dev/null || true)"
  if [[ -n "$quorum" ]]; then
    awk '/^(ClusterId|LeaderId|LeaderEpoch|HighWatermark|CurrentVoters|CurrentObservers):/ {
      k = $1; v = $0; sub(/^[A-Za-z]+:[ \t]*/, "", v); printf "  %-17s %s\n", k, v }' <<<"$quorum"
  fi
}

cmd_wait() {
  ensure_kafka
  local want
  mapfile -t want < <(running_nodes)
  ((${#want[@]})) || die "pool not running"
  wait_ready "${want[@]}"
  say "pool ready: brokers $ONLINE_IDS online"
}

cmd_clean() {
  cmd_stop
  local n
  for n in "${ALL_NODES[@]}"; do rm -rf "$(node_dir "$n")"; done
  rm -rf "$SECURE_DIR"
  rm -f "$POOL_DIR/cluster.id" "$POOL_DIR/.lock"
  rmdir "$POOL_DIR" 2>/dev/null || true
  say "pool data removed ($POOL_DIR)"
}

usage() {
  sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

cmd="${1:-}"
(($#)) && shift
case "$cmd" in
  fetch)        cmd_fetch "$@" ;;
  start)        cmd_start "$@" ;;
  stop)         cmd_stop ;;
  status)       cmd_status ;;
  start-broker) cmd_start_broker "$@" ;;
  stop-broker)  cmd_stop_broker "$@" ;;
  kill-broker)  cmd_kill_broker "$@" ;;
  wait)         cmd_wait ;;
  bootstrap)    bootstrap_of 1 2 3 ;;
  secure-bootstrap)
    case "${1:-}" in sasl|mtls) secure_bootstrap_of "$1" 1 2 3 ;; *) die "secure-bootstrap: sasl or mtls" ;; esac ;;
  gateway-config) cmd_gateway_config "$@" ;;
  logs)         valid_node "${1:-}"; printf '%s\n' "$(node_logs "$1")/server.log" ;;
  clean)        cmd_clean ;;
  -h|--help|help) usage 0 ;;
  *)            usage 2 ;;
esac
