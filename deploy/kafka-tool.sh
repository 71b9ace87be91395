#!/usr/bin/env bash
# Run an Apache Kafka CLI tool from the Maven-fetched jars (see deploy/pool.sh fetch).
#
#   deploy/kafka-tool.sh <tool> [args...]      e.g. kafka-topics --bootstrap-server 127.0.0.1:29091 --list
#   deploy/kafka-tool.sh <fully.qualified.Class> [args...]
#   deploy/kafka-tool.sh --classpath           print the ':'-joined jar list (kafka-clients etc.)
#   deploy/kafka-tool.sh --classpath-wildcard  print "<libs>/*" (for java -cp)
#   deploy/kafka-tool.sh --list                list the tool aliases
#
# Tools log at WARN to stderr. Heap: -Xmx256m (KAFKA_TOOL_HEAP_OPTS), extra JVM
# options: KAFKA_TOOL_OPTS. Kafka version: KAFKA_VERSION (default 4.1.1).
set -euo pipefail

# shellcheck source=kafka/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka/common.sh"

# alias -> candidate classes (first one present in the jars wins; classes move
# between packages across 4.x releases).
declare -A TOOLS=(
  [kafka-topics]="org.apache.kafka.tools.TopicCommand"
  [kafka-consumer-groups]="org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
  [kafka-share-groups]="org.apache.kafka.tools.consumer.group.ShareGroupCommand"
  [kafka-streams-groups]="org.apache.kafka.tools.streams.StreamsGroupCommand"
  [kafka-groups]="org.apache.kafka.tools.GroupsCommand"
  [kafka-configs]="org.apache.kafka.tools.ConfigCommand kafka.admin.ConfigCommand"
  [kafka-acls]="org.apache.kafka.tools.AclCommand"
  [kafka-producer-perf-test]="org.apache.kafka.tools.ProducerPerformance"
  [kafka-consumer-perf-test]="org.apache.kafka.tools.ConsumerPerformance"
  [kafka-share-consumer-perf-test]="org.apache.kafka.tools.ShareConsumerPerformance"
  [kafka-e2e-latency]="org.apache.kafka.tools.EndToEndLatency"
  [kafka-verifiable-producer]="org.apache.kafka.tools.VerifiableProducer"
  [kafka-verifiable-consumer]="org.apache.kafka.tools.VerifiableConsumer"
  [kafka-verifiable-share-consumer]="org.apache.kafka.tools.VerifiableShareConsumer"
  [kafka-transactions]="org.apache.kafka.tools.TransactionsCommand"
  [kafka-get-offsets]="org.apache.kafka.tools.GetOffsetShell"
  [kafka-broker-api-versions]="org.apache.kafka.tools.BrokerApiVersionsCommand"
  [kafka-metadata-quorum]="org.apache.kafka.tools.MetadataQuorumCommand"
  [kafka-features]="org.apache.kafka.tools.FeatureCommand"
  [kafka-cluster]="org.apache.kafka.tools.ClusterTool"
  [kafka-log-dirs]="org.apache.kafka.tools.LogDirsCommand"
  [kafka-reassign-partitions]="org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
  [kafka-leader-election]="org.apache.kafka.tools.LeaderElectionCommand"
  [kafka-delegation-tokens]="org.apache.kafka.tools.DelegationTokenCommand"
  [kafka-client-metrics]="org.apache.kafka.tools.ClientMetricsCommand"
  [kafka-console-producer]="org.apache.kafka.tools.ConsoleProducer"
  [kafka-console-consumer]="org.apache.kafka.tools.consumer.ConsoleConsumer"
  [kafka-console-share-consumer]="org.apache.kafka.tools.consumer.ConsoleShareConsumer"
  [kafka-replica-verification]="org.apache.kafka.tools.ReplicaVerificationTool"
  [kafka-jmx]="org.apache.kafka.tools.JmxTool"
  [kafka-storage]="org.apache.kafka.tools.StorageTool kafka.tools.StorageTool"
  [kafka-dump-log]="org.apache.kafka.tools.DumpLogSegments kafka.tools.DumpLogSegments"
)

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

[[ $# -ge 1 ]] || usage 2

case "$1" in
  -h|--help|help) usage 0 ;;
  --list)
    for k in $(printf '%s\n' "${!TOOLS[@]}" | sort); do
      if kafka_fetched; then
        # shellcheck disable=SC2086
        printf '%-34s %s\n' "$k" "$(kafka_pick_class ${TOOLS[$k]})"
      else
        printf '%-34s %s\n' "$k" "${TOOLS[$k]// / | }"
      fi
    done
    exit 0 ;;
  --classpath)
    ensure_kafka
    kafka_cp_list
    exit 0 ;;
  --classpath-wildcard)
    ensure_kafka
    kafka_cp_wildcard
    exit 0 ;;
esac

tool="$1"; shift
name="${tool##*/}"
name="${name%.sh}"
[[ "$name" == kafka-* ]] || [[ "$name" == *.* ]] || name="kafka-$name"   # "topics" -> "kafka-topics"

ensure_kafka   # (Java version is checked by pool.sh; not here, to keep tool start-up fast)

if [[ -n "${TOOLS[$name]:-}" ]]; then
  # shellcheck disable=SC2086
  class="$(kafka_pick_class ${TOOLS[$name]})"
elif [[ "$tool" == *.* && "$tool" != */* ]]; then
  class="$tool"                      # raw fully-qualified class name
else
  die "unknown tool '$tool' (see: $0 --list, or pass a fully-qualified class name)"
fi

mapfile -t JOPTS < <(kafka_tool_java_opts)
exec "$(java_bin)" "${JOPTS[@]}" -cp "$(kafka_cp_wildcard)" "$class" "$@"
