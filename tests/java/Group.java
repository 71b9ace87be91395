// One consumer group member. Subscribes to --topic in --group with --protocol classic|consumer,
// commits synchronously after every poll and when partitions are revoked, and prints:
//   "assigned <p,p>" / "revoked <p,p>" / "lost <p,p>"   rebalance callbacks
//   "assignment <p,p>"                                  the full assignment after a change
//   "rec <partition> <offset> <value>"                 every record
//   "commitfail <error>"                               a commit that failed
//   "closed"                                           after a graceful close (LeaveGroup)
// Stops on "stop" or EOF on stdin, or after --max-seconds.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Group {
    static String parts(Collection<TopicPartition> tps) {
        Set<Integer> s = new TreeSet<>();
        for (TopicPartition tp : tps) s.add(tp.partition());
        return Out.csv(s);
    }

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        Properties p = new Properties();
        p.put("bootstrap.servers", a.get("bootstrap"));
        p.put("group.id", a.get("group"));
        p.put("group.protocol", a.get("protocol", "classic"));
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("client.id", a.get("name", "member"));
        p.put("max.poll.records", "200");
        if (a.get("protocol", "classic").equals("classic")) {
            p.put("session.timeout.ms", "10000");
            p.put("heartbeat.interval.ms", "1000");
        }
        p.putAll(a.props());
        long deadline = System.currentTimeMillis() + 1000L * a.getLong("max-seconds", 120);
        AtomicBoolean stop = new AtomicBoolean();
        KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in))) {
                String line;
                while ((line = r.readLine()) != null && !line.trim().equals("stop")) { }
            } catch (Exception e) { }
            stop.set(true);  // the poll loop notices within one poll (500 ms); no wakeup() needed
        });
        stdin.setDaemon(true);
        stdin.start();
        c.subscribe(List.of(a.get("topic")), new ConsumerRebalanceListener() {
            @Override public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                Out.line("revoked " + parts(tps));
                try {
                    c.commitSync(Duration.ofSeconds(15));
                } catch (Exception e) {
                    Out.line("commitfail " + Out.err(e));
                }
            }
            @Override public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                Out.line("assigned " + parts(tps));
                Out.line("assignment " + parts(c.assignment()));
            }
            @Override public void onPartitionsLost(Collection<TopicPartition> tps) {
                Out.line("lost " + parts(tps));
            }
        });
        try {
            while (!stop.get() && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(500));
                StringBuilder b = new StringBuilder();
                for (ConsumerRecord<String, String> r : recs) {
                    b.append("rec ").append(r.partition()).append(' ').append(r.offset()).append(' ').append(r.value()).append('\n');
                }
                if (b.length() > 0) {
                    synchronized (System.out) {
                        System.out.print(b);
                        System.out.flush();
                    }
                    try {
                        c.commitSync(Duration.ofSeconds(15));
                    } catch (Exception e) {
                        Out.line("commitfail " + Out.err(e));
                    }
                }
            }
        } finally {
            try {
                c.close(Duration.ofSeconds(20));
                Out.line("closed");
            } catch (Exception e) {
                Out.line("closefail " + Out.err(e));
            }
        }
    }
}
