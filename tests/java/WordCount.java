// A Kafka Streams word count: lines from --input are split into lower-case words, grouped
// by word (an internal repartition topic "<app-id>-words-repartition") and counted in the
// store "counts" (changelog topic "<app-id>-counts-changelog"); every count goes to --output
// as key = word, value = the count as a decimal string (so any client can read it).
//
// Options: --bootstrap, --app-id, --input, --output, --guarantee exactly_once_v2 (default,
// transactional) | at_least_once, --token <jwt> (SASL_PLAINTEXT + PLAIN with the token as
// password; also read from $WORDCOUNT_TOKEN), --max-seconds (default 300), --prop k=v.
// Internal topics are created by Streams itself with its own topic configs; the replication
// factor is left at Streams' default (-1, the broker's default).
//
// Prints "state <new> <old>" on every state change (and "RUNNING" once it first runs),
// "uncaught <error>" for a stream thread's fatal error, "closed <final state>" after the
// close. Stops on "stop" or EOF on stdin, SIGTERM/SIGINT, or after --max-seconds; exits 0
// unless the app went to ERROR.

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import sun.misc.Signal;

public class WordCount {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String input = a.get("input");
        String output = a.get("output");
        Path stateDir = Files.createTempDirectory("wordcount-");

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.get("guarantee", StreamsConfig.EXACTLY_ONCE_V2));
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass().getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass().getName());
        // Short commits so counts reach the output (and transactions end) within a second.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "500");
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        String token = a.get("token", System.getenv("WORDCOUNT_TOKEN"));
        if (token != null && !token.isEmpty()) {
            p.put("security.protocol", "SASL_PLAINTEXT");
            p.put("sasl.mechanism", "PLAIN");
            p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    + "username=\"wordcount\" password=\"" + token + "\";");
        }
        p.putAll(a.props());

        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
            .filter((k, w) -> !w.isEmpty())
            .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
            .count(Materialized.as("counts"))
            .toStream()
            .mapValues(n -> Long.toString(n))
            .to(output, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        AtomicBoolean ran = new AtomicBoolean();
        CountDownLatch stop = new CountDownLatch(1);
        streams.setStateListener((now, old) -> {
            Out.line("state " + now + " " + old);
            if (now == KafkaStreams.State.RUNNING && ran.compareAndSet(false, true)) Out.line("RUNNING");
            if (now == KafkaStreams.State.ERROR) stop.countDown();
        });
        streams.setUncaughtExceptionHandler(e -> {
            Out.line("uncaught " + Out.err(e));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in))) {
                String line;
                while ((line = r.readLine()) != null && !line.trim().equals("stop")) { }
            } catch (Exception e) { }
            stop.countDown();
        });
        stdin.setDaemon(true);
        stdin.start();
        // SIGTERM/SIGINT stop the app like "stop" does: it is closed (its offsets committed and
        // its transaction ended) and the process exits 0, instead of dying in a shutdown hook.
        for (String sig : new String[] {"TERM", "INT"}) Signal.handle(new Signal(sig), s -> stop.countDown());

        streams.start();
        stop.await(a.getLong("max-seconds", 300), TimeUnit.SECONDS);
        KafkaStreams.State last = streams.state();
        streams.close(Duration.ofSeconds(30));
        Out.line("closed " + streams.state() + " " + last);
        deleteTree(stateDir);
        System.exit(last == KafkaStreams.State.ERROR ? 1 : 0);
    }

    static void deleteTree(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (Exception e) {
            Out.line("cleanupfail " + Out.err(e));
        }
    }
}
