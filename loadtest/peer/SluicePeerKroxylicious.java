// Starts Kroxylicious from its runtime library (kroxylicious-runtime on Maven Central),
// as the project's own `kroxylicious-app` main does: the app module is not published
// there. Used only by `loadtest compare` as the peer proxy; compiled at benchmark time.
import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.internal.config.Features;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

public final class SluicePeerKroxylicious {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SluicePeerKroxylicious <config.yaml>");
            System.exit(2);
        }
        ConfigParser parser = new ConfigParser();
        try (InputStream in = Files.newInputStream(Path.of(args[0]))) {
            var config = parser.parseConfiguration(in);
            try (KafkaProxy proxy = new KafkaProxy(parser, config, Features.defaultFeatures())) {
                proxy.startup();
                proxy.block();
            }
        }
    }
}
