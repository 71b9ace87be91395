// Shared plumbing for the Java test helpers: argument parsing, client properties, output.
// Helpers print one event per line on stdout (space-separated fields, values never contain
// spaces) so the pytest side can parse them while the process is still running.

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

final class Args {
    private final Map<String, List<String>> m = new HashMap<>();

    Args(String[] a) {
        for (int i = 0; i < a.length; i++) {
            String k = a[i];
            if (!k.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + k);
            String v = (i + 1 < a.length && !a[i + 1].startsWith("--")) ? a[++i] : "true";
            m.computeIfAbsent(k.substring(2), x -> new ArrayList<>()).add(v);
        }
    }

    String get(String k) {
        List<String> v = m.get(k);
        if (v == null) throw new IllegalArgumentException("missing --" + k);
        return v.get(v.size() - 1);
    }

    String get(String k, String def) {
        List<String> v = m.get(k);
        return v == null ? def : v.get(v.size() - 1);
    }

    int getInt(String k, int def) { return Integer.parseInt(get(k, Integer.toString(def))); }

    long getLong(String k, long def) { return Long.parseLong(get(k, Long.toString(def))); }

    double getDouble(String k, double def) { return Double.parseDouble(get(k, Double.toString(def))); }

    boolean has(String k) { return m.containsKey(k); }

    /** Every `--prop key=value` as client properties (applied last, so they override defaults). */
    Properties props() {
        Properties p = new Properties();
        for (String kv : m.getOrDefault("prop", List.of())) {
            int eq = kv.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("--prop needs key=value: " + kv);
            p.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return p;
    }
}

final class Out {
    private static final PrintStream OUT = System.out;

    static void line(String s) {
        synchronized (OUT) {
            OUT.println(s);
            OUT.flush();
        }
    }

    /** An exception as one token-safe line: class name and message with whitespace squeezed. */
    static String err(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) root = root.getCause();
        String msg = String.valueOf(root.getMessage()).replaceAll("\\s+", "_");
        return root.getClass().getSimpleName() + ":" + msg;
    }

    static String csv(Iterable<?> xs) {
        StringBuilder b = new StringBuilder();
        for (Object x : xs) {
            if (b.length() > 0) b.append(',');
            b.append(x);
        }
        return b.length() == 0 ? "-" : b.toString();
    }
}
