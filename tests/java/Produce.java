// Produces --count records "<prefix>-<i>" with keys "k-<i>" (idempotent, acks=all by default)
// at an optional --rate (records/s). Prints "ack <partition> <offset> <value>" for every
// acknowledged record, "err <value> <error>" for every failed one, "leader <p> <host> <port>"
// per partition as the client's metadata has it, and finally "done sent=<n> acked=<n> errors=<n>".

import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.serialization.StringSerializer;

public class Produce {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        Properties p = new Properties();
        p.put("bootstrap.servers", a.get("bootstrap"));
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("linger.ms", "5");
        p.put("delivery.timeout.ms", "120000");
        p.putAll(a.props());
        String topic = a.get("topic");
        int count = a.getInt("count", 1000);
        String prefix = a.get("prefix", "v");
        double rate = a.getDouble("rate", 0);
        Integer partition = a.has("partition") ? Integer.valueOf(a.get("partition")) : null;
        AtomicLong acked = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            long start = System.nanoTime();
            for (int i = 0; i < count; i++) {
                if (rate > 0) {
                    long due = start + (long) (i * 1e9 / rate);
                    long now;
                    while ((now = System.nanoTime()) < due) Thread.sleep(Math.max(1, (due - now) / 1_000_000));
                }
                String v = prefix + "-" + i;
                producer.send(new ProducerRecord<>(topic, partition, "k-" + i, v), (md, ex) -> {
                    if (ex == null) {
                        acked.incrementAndGet();
                        Out.line("ack " + md.partition() + " " + md.offset() + " " + v);
                    } else {
                        errors.incrementAndGet();
                        Out.line("err " + v + " " + Out.err(ex));
                    }
                });
            }
            producer.flush();
            // Where the client was told each partition's leader lives (gateway ports, not the pool's).
            for (PartitionInfo i : producer.partitionsFor(topic)) {
                Node l = i.leader();
                Out.line("leader " + i.partition() + " " + (l == null ? "- -1" : l.host() + " " + l.port()));
            }
        }
        Out.line("done sent=" + count + " acked=" + acked.get() + " errors=" + errors.get());
    }
}
