// Reads a whole topic from the beginning up to the end offsets taken at start (no group).
// Prints "end <partition> <endOffset>" per partition, then either every record as
// "rec <partition> <offset> <key> <value>" or, with --summary, "sum <partition> <count> <crc32>"
// (CRC over offset, key and value of each record in order), and finally "done total=<n>".
// --isolation read_committed|read_uncommitted (default read_uncommitted).

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.zip.CRC32;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class Dump {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        Properties p = new Properties();
        p.put("bootstrap.servers", a.get("bootstrap"));
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", a.get("isolation", "read_uncommitted"));
        p.put("max.poll.records", "5000");
        p.putAll(a.props());
        String topic = a.get("topic");
        boolean summary = a.has("summary");
        long deadline = System.currentTimeMillis() + a.getLong("timeout-ms", 60000);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<PartitionInfo> infos = null;
            while (infos == null || infos.isEmpty()) {
                infos = c.partitionsFor(topic, Duration.ofSeconds(10));
                if ((infos == null || infos.isEmpty()) && System.currentTimeMillis() > deadline) {
                    Out.line("timeout no-metadata");
                    System.exit(2);
                }
            }
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo i : infos) tps.add(new TopicPartition(topic, i.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            for (TopicPartition tp : tps) Out.line("end " + tp.partition() + " " + end.get(tp));
            Map<Integer, CRC32> crcs = new TreeMap<>();
            Map<Integer, Long> counts = new TreeMap<>();
            for (TopicPartition tp : tps) {
                crcs.put(tp.partition(), new CRC32());
                counts.put(tp.partition(), 0L);
            }
            long total = 0;
            StringBuilder buf = new StringBuilder();
            while (true) {
                boolean caughtUp = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp)) caughtUp = false;
                }
                if (caughtUp) break;
                if (System.currentTimeMillis() > deadline) {
                    Map<Integer, Long> pos = new HashMap<>();
                    for (TopicPartition tp : tps) pos.put(tp.partition(), c.position(tp));
                    Out.line("timeout positions=" + pos + " end=" + end);
                    System.exit(2);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    total++;
                    String k = r.key() == null ? "-" : new String(r.key(), StandardCharsets.UTF_8);
                    if (summary) {
                        CRC32 crc = crcs.get(r.partition());
                        crc.update(Long.toString(r.offset()).getBytes(StandardCharsets.UTF_8));
                        if (r.key() != null) crc.update(r.key());
                        if (r.value() != null) crc.update(r.value());
                        counts.merge(r.partition(), 1L, Long::sum);
                    } else {
                        String v = r.value() == null ? "-" : new String(r.value(), StandardCharsets.UTF_8);
                        buf.append("rec ").append(r.partition()).append(' ').append(r.offset()).append(' ')
                                .append(k).append(' ').append(v).append('\n');
                    }
                }
                if (buf.length() > 0) {
                    System.out.print(buf);
                    System.out.flush();
                    buf.setLength(0);
                }
            }
            if (summary) {
                for (int part : crcs.keySet()) Out.line("sum " + part + " " + counts.get(part) + " " + crcs.get(part).getValue());
            }
            Out.line("done total=" + total);
        }
    }
}
