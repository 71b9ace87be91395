# shellcheck shell=bash
# Shared helpers for deploy/pool.sh and deploy/kafka-tool.sh. Sourced, not run.
#
# Environment:
#   KAFKA_VERSION          Kafka version to fetch/run (default 4.1.1)
#   SLUICE_KAFKA_CACHE     cache root (default deploy/.cache); jars go to
#                          $SLUICE_KAFKA_CACHE/kafka-$KAFKA_VERSION/libs/
#   SLUICE_MAVEN_ARGS      extra arguments for mvn (e.g. -Dmaven.repo.local=...)
#   JAVA_HOME              if set, $JAVA_HOME/bin/java is used

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_POM_DIR="$DEPLOY_DIR/kafka"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
SLUICE_KAFKA_CACHE="${SLUICE_KAFKA_CACHE:-$DEPLOY_DIR/.cache}"
KAFKA_DIST_DIR="$SLUICE_KAFKA_CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIBS_DIR="$KAFKA_DIST_DIR/libs"
KAFKA_COMPLETE_MARKER="$KAFKA_DIST_DIR/.complete"
LOG4J_BROKER_CONFIG="$KAFKA_POM_DIR/log4j2-broker.xml"
LOG4J_TOOLS_CONFIG="$KAFKA_POM_DIR/log4j2-tools.xml"

# All progress/diagnostics go to stderr so stdout stays machine-readable
# (kafka-tool.sh --classpath, tool output).
say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "java not found (Kafka 4.x needs Java 17+); install it or set JAVA_HOME"
  fi
}

check_java() {
  local java out ver major
  java="$(java_bin)"
  out="$("$java" -version 2>&1)" || die "'$java -version' failed: $out"
  ver="$(awk -F'"' '/version/ {print $2; exit}' <<<"$out")"
  major="${ver%%.*}"
  [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
  if [[ ! "$major" =~ ^[0-9]+$ ]] || (( major < 17 )); then
    die "Kafka $KAFKA_VERSION needs Java 17 or newer, found '$ver' at $java"
  fi
}

kafka_base_fetched() {
  [[ -f "$KAFKA_COMPLETE_MARKER" ]] \
    && compgen -G "$KAFKA_LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
    && compgen -G "$KAFKA_LIBS_DIR/kafka-tools-$KAFKA_VERSION.jar" >/dev/null \
    && compgen -G "$KAFKA_LIBS_DIR/kafka-clients-$KAFKA_VERSION.jar" >/dev/null
}

# kafka-streams joined the jar set later: a cache fetched before that counts as
# incomplete and gets the missing jars added (see fetch_kafka).
kafka_fetched() {
  kafka_base_fetched && compgen -G "$KAFKA_LIBS_DIR/kafka-streams-$KAFKA_VERSION.jar" >/dev/null
}

# Download kafka_2.13 + kafka-tools + kafka-streams (+ transitive deps + log4j2 backend) with
# Maven into $KAFKA_LIBS_DIR. Idempotent; safe against concurrent callers.
fetch_kafka() {
  if kafka_fetched; then
    say "kafka $KAFKA_VERSION: already fetched ($KAFKA_LIBS_DIR)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found; it is needed to download Kafka $KAFKA_VERSION"
  [[ "$KAFKA_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$ ]] \
    || die "KAFKA_VERSION '$KAFKA_VERSION' does not look like a Kafka version (e.g. 4.1.1)"
  mkdir -p "$SLUICE_KAFKA_CACHE"
  local lock="$SLUICE_KAFKA_CACHE/.fetch-$KAFKA_VERSION.lock"
  (
    if command -v flock >/dev/null 2>&1; then
      exec 9>"$lock"
      flock 9
    fi
    if kafka_fetched; then exit 0; fi   # another caller finished while we waited
    local tmp="$KAFKA_DIST_DIR.tmp.$$" mvnlog
    rm -rf "$tmp"
    mkdir -p "$tmp/libs"
    mvnlog="$tmp/mvn.log"
    say "kafka $KAFKA_VERSION: resolving org.apache.kafka:kafka_2.13 + kafka-tools + kafka-streams from Maven Central ..."
    local -a extra=()
    # shellcheck disable=SC2206
    [[ -n "${SLUICE_MAVEN_ARGS:-}" ]] && extra=(${SLUICE_MAVEN_ARGS})
    # -U: re-check Central even if an earlier failed lookup was cached in ~/.m2
    if ! mvn -B -ntp -U -f "$KAFKA_POM_DIR/pom.xml" "${extra[@]}" \
          -Dkafka.version="$KAFKA_VERSION" \
          -DincludeScope=runtime \
          -DoutputDirectory="$tmp/libs" \
          dependency:copy-dependencies >"$mvnlog" 2>&1; then
      local keep="$SLUICE_KAFKA_CACHE/fetch-$KAFKA_VERSION.log"
      cp "$mvnlog" "$keep"
      rm -rf "$tmp"
      grep -E '^\[ERROR\] [^ ]' "$keep" | grep -vE 'Re-run Maven|To see the full|For more information' | head -n 3 >&2 || tail -n 20 "$keep" >&2
      if grep -q -E 'Could not (resolve|find artifact)|was not found in' "$keep"; then
        say "error: Kafka $KAFKA_VERSION could not be resolved from Maven Central (is KAFKA_VERSION a released version? network?); Maven log: $keep"
      else
        say "error: Maven failed; full log: $keep"
      fi
      exit 1
    fi
    for a in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" \
             "kafka-streams-$KAFKA_VERSION.jar"; do
      if [[ ! -f "$tmp/libs/$a" ]]; then
        cp "$mvnlog" "$SLUICE_KAFKA_CACHE/fetch-$KAFKA_VERSION.log"
        rm -rf "$tmp"
        say "error: $a missing after the Maven run (log: $SLUICE_KAFKA_CACHE/fetch-$KAFKA_VERSION.log)"
        exit 1
      fi
    done
    if kafka_base_fetched; then
      # An older cache that running brokers may use: only add the jars it lacks, each
      # renamed into place whole, so no reader ever sees a missing or partial jar.
      local j
      for j in "$tmp"/libs/*.jar; do
        [[ -e "$KAFKA_LIBS_DIR/${j##*/}" ]] && continue
        cp "$j" "$KAFKA_LIBS_DIR/.${j##*/}.part" && mv "$KAFKA_LIBS_DIR/.${j##*/}.part" "$KAFKA_LIBS_DIR/${j##*/}"
      done
      rm -rf "$tmp"
      say "kafka $KAFKA_VERSION: added the missing jars to $KAFKA_LIBS_DIR"
      exit 0
    fi
    rm -rf "$KAFKA_DIST_DIR"
    mv "$tmp" "$KAFKA_DIST_DIR"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$KAFKA_COMPLETE_MARKER"
    say "kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS_DIR" -name '*.jar' | wc -l) jars in $KAFKA_LIBS_DIR"
  ) || exit 1
}

ensure_kafka() {
  kafka_fetched || fetch_kafka
}

# Classpath as one Java wildcard entry (what java -cp needs).
kafka_cp_wildcard() { printf '%s\n' "$KAFKA_LIBS_DIR/*"; }

# Classpath as an explicit ':'-joined jar list (for javac, IDEs, other tools).
kafka_cp_list() {
  local IFS=:
  local -a jars=("$KAFKA_LIBS_DIR"/*.jar)
  printf '%s\n' "${jars[*]}"
}

# Is a class present in the fetched Kafka jars? Zip central directories store
# entry names uncompressed, so a binary grep finds them without unzip/jar.
kafka_class_exists() {
  local entry="${1//.//}.class" jar
  for jar in "$KAFKA_LIBS_DIR"/kafka*.jar; do
    LC_ALL=C grep -qaF "$entry" "$jar" && return 0
  done
  return 1
}

# First class of the arguments that exists in the jars (else the first one).
kafka_pick_class() {
  local c
  for c in "$@"; do
    if kafka_class_exists "$c"; then printf '%s\n' "$c"; return 0; fi
  done
  printf '%s\n' "$1"
}

# JVM options for short-lived CLI tools.
KAFKA_TOOL_HEAP_OPTS="${KAFKA_TOOL_HEAP_OPTS:--Xmx256m}"
kafka_tool_java_opts() {
  # shellcheck disable=SC2206
  local -a opts=($KAFKA_TOOL_HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true
                 "-Dlog4j2.configurationFile=$LOG4J_TOOLS_CONFIG")
  # shellcheck disable=SC2206
  [[ -n "${KAFKA_TOOL_OPTS:-}" ]] && opts+=(${KAFKA_TOOL_OPTS})
  printf '%s\n' "${opts[@]}"
}
