// Committed offsets: writes 20 records to each partition of --topic, commits
// --offsets "p:offset,..." with metadata "meta-<p>" for --group (manual assignment), then with a
// fresh consumer and Admin prints:
//   "committed <p> <offset> <metadata>|none"     consumer.committed()
//   "admin <p> <offset> <metadata>"              Admin.listConsumerGroupOffsets
//   "after-delete <p> <offset>|none"             after Admin.deleteConsumerGroupOffsets(--delete p)
//   "after-alter <p> <offset>|none"              after Admin.alterConsumerGroupOffsets(--alter p:offset)
//   "first <p> <offset>"                          first record each partition yields after subscribe
// then "done".

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Offsets {
    static void print(String tag, List<TopicPartition> tps, Map<TopicPartition, OffsetAndMetadata> m) {
        for (TopicPartition tp : tps) {
            OffsetAndMetadata o = m.get(tp);
            Out.line(tag + " " + tp.partition() + " " + (o == null ? "none" : o.offset() + " " + (o.metadata().isEmpty() ? "-" : o.metadata())));
        }
    }

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        String group = a.get("group");
        Properties base = new Properties();
        base.put("bootstrap.servers", a.get("bootstrap"));

        Properties pp = new Properties();
        pp.putAll(base);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        pp.put("acks", "all");
        List<TopicPartition> tps = new ArrayList<>();
        try (KafkaProducer<String, String> pr = new KafkaProducer<>(pp)) {
            for (PartitionInfo i : pr.partitionsFor(topic)) tps.add(new TopicPartition(topic, i.partition()));
            tps.sort((x, y) -> Integer.compare(x.partition(), y.partition()));
            for (TopicPartition tp : tps) {
                for (int i = 0; i < 20; i++) pr.send(new ProducerRecord<>(topic, tp.partition(), "k", "p" + tp.partition() + "-" + i));
            }
            pr.flush();
        }

        Properties cp = new Properties();
        cp.putAll(base);
        cp.put("group.id", group);
        cp.put("group.protocol", a.get("protocol", "classic"));
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");

        Map<TopicPartition, OffsetAndMetadata> want = new HashMap<>();
        for (String kv : a.get("offsets").split(",")) {
            String[] x = kv.split(":");
            int part = Integer.parseInt(x[0]);
            want.put(new TopicPartition(topic, part), new OffsetAndMetadata(Long.parseLong(x[1]), "meta-" + part));
        }
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            c.assign(tps);
            c.commitSync(want, Duration.ofSeconds(30));
        }

        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp); Admin admin = Admin.create(base)) {
            print("committed", tps, c.committed(Set.copyOf(tps), Duration.ofSeconds(30)));
            print("admin", tps, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS));
            TopicPartition del = new TopicPartition(topic, a.getInt("delete", 1));
            admin.deleteConsumerGroupOffsets(group, Set.of(del)).all().get(30, TimeUnit.SECONDS);
            print("after-delete", tps, c.committed(Set.copyOf(tps), Duration.ofSeconds(30)));
            String[] alt = a.get("alter", "2:9").split(":");
            admin.alterConsumerGroupOffsets(group,
                    Map.of(new TopicPartition(topic, Integer.parseInt(alt[0])), new OffsetAndMetadata(Long.parseLong(alt[1]))))
                    .all().get(30, TimeUnit.SECONDS);
            print("after-alter", tps, c.committed(Set.copyOf(tps), Duration.ofSeconds(30)));

            c.subscribe(List.of(topic));
            Map<Integer, Long> first = new TreeMap<>();
            long deadline = System.currentTimeMillis() + 60000;
            while (first.size() < tps.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) first.putIfAbsent(r.partition(), r.offset());
            }
            for (var e : first.entrySet()) Out.line("first " + e.getKey() + " " + e.getValue());
        }
        Out.line("done");
    }
}
