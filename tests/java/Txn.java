// Transactions end to end with one transactional id:
//   c1-<i> (n records) committed; a-<i> (m records) flushed then aborted;
//   c2-<i> (n records) committed together with group offset partition 0 -> 42 ("txn-meta");
//   a2-0 aborted together with group offset partition 0 -> 99;
//   a second producer with the same transactional id fences the first ("fenced <error>"),
//   then commits c3-0.
// Prints one line per step and "groupoffset <partition> <offset> <metadata>" as the group's
// committed offsets after the aborted offset commit, then "done".

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

public class Txn {
    static KafkaProducer<String, String> producer(Args a) {
        Properties p = new Properties();
        p.put("bootstrap.servers", a.get("bootstrap"));
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("transactional.id", a.get("txid"));
        p.put("transaction.timeout.ms", "30000");
        p.put("max.block.ms", "30000");
        p.put("delivery.timeout.ms", "30000");
        p.put("request.timeout.ms", "15000");
        p.putAll(a.props());
        return new KafkaProducer<>(p);
    }

    static void send(KafkaProducer<String, String> pr, String topic, String prefix, int n) {
        for (int i = 0; i < n; i++) pr.send(new ProducerRecord<>(topic, "k-" + prefix + "-" + i, prefix + "-" + i));
    }

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        String group = a.get("group");
        int n = a.getInt("n", 100);
        int m = a.getInt("m", 50);
        TopicPartition tp0 = new TopicPartition(topic, 0);
        KafkaProducer<String, String> p1 = producer(a);
        p1.initTransactions();
        Out.line("init");

        p1.beginTransaction();
        send(p1, topic, "c1", n);
        p1.commitTransaction();
        Out.line("committed c1 " + n);

        p1.beginTransaction();
        send(p1, topic, "a", m);
        p1.flush();
        p1.abortTransaction();
        Out.line("aborted a " + m);

        p1.beginTransaction();
        send(p1, topic, "c2", n);
        p1.sendOffsetsToTransaction(Map.of(tp0, new OffsetAndMetadata(42, "txn-meta")), new ConsumerGroupMetadata(group));
        p1.commitTransaction();
        Out.line("committed c2 " + n);

        p1.beginTransaction();
        send(p1, topic, "a2", 1);
        p1.sendOffsetsToTransaction(Map.of(tp0, new OffsetAndMetadata(99, "aborted-meta")), new ConsumerGroupMetadata(group));
        p1.flush();
        p1.abortTransaction();
        Out.line("aborted a2 1");

        Properties ap = new Properties();
        ap.put("bootstrap.servers", a.get("bootstrap"));
        ap.putAll(a.props());  // the same security settings as the producers (SASL)
        try (Admin admin = Admin.create(ap)) {
            Map<TopicPartition, OffsetAndMetadata> offs =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            for (var e : offs.entrySet()) {
                Out.line("groupoffset " + e.getKey().partition() + " " + e.getValue().offset() + " " + e.getValue().metadata());
            }
        }

        KafkaProducer<String, String> p2 = producer(a);
        p2.initTransactions();
        Out.line("init2");
        try {
            p1.beginTransaction();
            p1.send(new ProducerRecord<>(topic, "k-z", "z-0")).get(30, TimeUnit.SECONDS);
            p1.commitTransaction();
            Out.line("notfenced");
        } catch (Exception e) {
            Out.line("fenced " + Out.err(e));
        }
        p1.close(Duration.ofSeconds(5));

        p2.beginTransaction();
        send(p2, topic, "c3", 1);
        p2.commitTransaction();
        Out.line("committed c3 1");
        p2.close(Duration.ofSeconds(10));
        Out.line("done");
    }
}
