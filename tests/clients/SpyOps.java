// SpyOps.java - a fixed sequence of spymemcached (Java) calls against
// HOST PORT MODE, one line per outcome, for test_clients.py to compare
// between memcached and bitcached. MODE is "text" or "binary" (the
// connection factory's protocol). Values that differ between servers by
// design (cas numbers, stats figures) are printed as their shape only; a
// failed operation prints its status message, so error strings are
// compared too.
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.logging.Level;
import java.util.logging.Logger;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.ConnectionFactoryBuilder;
import net.spy.memcached.MemcachedClient;
import net.spy.memcached.internal.OperationFuture;
import net.spy.memcached.transcoders.SerializingTranscoder;

public class SpyOps {
    static int n = 0;
    static String port;

    static void out(String what, Object val) {
        n++;
        System.out.println(n + " " + what + ": " + show(val));
    }

    static String show(Object v) {
        if (v instanceof byte[]) {
            return "bytes" + Arrays.toString((byte[]) v);
        }
        if (v instanceof Map) {
            return new TreeMap<Object, Object>((Map<?, ?>) v).toString();
        }
        return String.valueOf(v);
    }

    // The outcome of a call, or what it raised: the cause's class and
    // message (the server's port taken out, it differs by run).
    static void attempt(String what, Callable<Object> call) {
        Object v;
        try {
            v = call.call();
        } catch (Exception e) {
            Throwable t = e;
            while ((t instanceof ExecutionException || t instanceof RuntimeException) &&
                   t.getCause() != null) {
                t = t.getCause();
            }
            String msg = String.valueOf(t.getMessage()).replace(port, "PORT");
            v = "raised " + t.getClass().getSimpleName() + " " + msg;
        }
        out(what, v);
    }

    // A storage or delete future: its result and, when it failed, the
    // status message the client made of the server's reply.
    static Object done(OperationFuture<Boolean> f) throws Exception {
        Boolean ok = f.get();
        if (ok) {
            return true;
        }
        return "false " + f.getStatus().getMessage();
    }

    static String repeat(String s, int times) {
        StringBuilder b = new StringBuilder(s.length() * times);
        for (int i = 0; i < times; i++) {
            b.append(s);
        }
        return b.toString();
    }

    static MemcachedClient client(String host, boolean binary, int compressAbove)
        throws Exception {
        SerializingTranscoder tc = new SerializingTranscoder(4 * 1024 * 1024);
        tc.setCompressionThreshold(compressAbove);
        ConnectionFactoryBuilder b = new ConnectionFactoryBuilder()
                                         .setProtocol(binary ? ConnectionFactoryBuilder.Protocol.BINARY
                                                             : ConnectionFactoryBuilder.Protocol.TEXT)
                                         .setTranscoder(tc)
                                         .setOpTimeout(5000)
                                         .setFailureMode(net.spy.memcached.FailureMode.Retry);
        List<InetSocketAddress> addrs = new ArrayList<InetSocketAddress>();
        addrs.add(new InetSocketAddress(host, Integer.parseInt(port)));
        return new MemcachedClient(b.build(), addrs);
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("net.spy.log.LoggerImpl", "net.spy.memcached.compat.log.SunLogger");
        Logger.getLogger("net.spy.memcached").setLevel(Level.OFF);
        final String host = args[0];
        port = args[1];
        final boolean binary = args[2].equals("binary");
        // Compression off (a threshold no value reaches) so sizes are exact;
        // a second client compresses anything over 100 bytes.
        final MemcachedClient c = client(host, binary, Integer.MAX_VALUE);
        final MemcachedClient cz = client(host, binary, 100);

        attempt("flush", () -> c.flush().get());
        attempt("set", () -> done(c.set("a", 0, "one")));
        attempt("get", () -> c.get("a"));
        attempt("get missing", () -> c.get("nope"));
        attempt("set empty", () -> done(c.set("empty", 0, "")));
        attempt("get empty", () -> "[" + c.get("empty") + "]");
        attempt("set int", () -> done(c.set("i", 0, 42)));
        attempt("get int", () -> c.get("i"));
        attempt("set long", () -> done(c.set("l", 0, 1L << 40)));
        attempt("get long", () -> c.get("l"));
        attempt("set bytes", () -> done(c.set("by", 0, new byte[] {0, 1, 13, 10, -1})));
        attempt("get bytes", () -> c.get("by"));
        attempt("set object", () -> done(c.set("o", 0, new ArrayList<Integer>(Arrays.asList(1, 2, 3)))));
        attempt("get object", () -> c.get("o"));
        attempt("add existing", () -> done(c.add("a", 0, "two")));
        attempt("add new", () -> done(c.add("b", 0, "two")));
        attempt("replace missing", () -> done(c.replace("nope", 0, "x")));
        attempt("replace", () -> done(c.replace("b", 0, "three")));
        attempt("get b", () -> c.get("b"));
        attempt("append", () -> {
            c.set("s", 0, "mid").get();
            return done(c.append("s", "-end"));
        });
        attempt("prepend", () -> done(c.prepend("s", "start-")));
        attempt("get s", () -> c.get("s"));
        attempt("append missing", () -> done(c.append("nope", "x")));
        attempt("prepend missing", () -> done(c.prepend("nope", "x")));
        attempt("append cas stale", () -> {
            CASValue<Object> g = c.gets("s");
            c.set("s", 0, "mid").get();
            return done(c.append(g.getCas(), "s", "-late"));
        });
        attempt("get s again", () -> c.get("s"));
        attempt("gets shape", () -> {
            CASValue<Object> g = c.gets("a");
            return g.getValue() + " " + (g.getCas() > 0);
        });
        attempt("gets missing", () -> c.gets("nope"));
        attempt("cas current", () -> {
            CASValue<Object> g = c.gets("a");
            return c.cas("a", g.getCas(), "via-cas");
        });
        attempt("cas stale", () -> {
            CASValue<Object> g = c.gets("a");
            c.set("a", 0, "newer").get();
            return c.cas("a", g.getCas(), "stale");
        });
        attempt("get a", () -> c.get("a"));
        attempt("cas missing", () -> c.cas("nope", 12345, "x"));
        attempt("cas with expiry", () -> {
            CASValue<Object> g = c.gets("a");
            return c.cas("a", g.getCas(), 100, "cas-exp");
        });
        attempt("incr missing", () -> c.incr("ctr", 1));
        attempt("decr missing", () -> c.decr("ctr", 1));
        attempt("incr with default", () -> c.incr("ctr", 5, 10));
        attempt("incr", () -> c.incr("ctr", 5));
        attempt("decr", () -> c.decr("ctr", 100));
        attempt("decr with default", () -> c.decr("ctr2", 1, 7, 0));
        attempt("decr after default", () -> c.decr("ctr2", 3, 7, 0));
        attempt("get ctr", () -> c.get("ctr"));
        attempt("incr after set", () -> {
            c.set("n", 0, "41").get();
            return c.incr("n", 1);
        });
        attempt("get n", () -> c.get("n"));
        attempt("incr wrap", () -> {
            c.set("w", 0, "18446744073709551615").get();
            return c.incr("w", 2);
        });
        attempt("incr non-numeric", () -> c.incr("a", 1));
        attempt("asyncIncr", () -> c.asyncIncr("n", 10).get());
        attempt("asyncDecr missing", () -> c.asyncDecr("nope", 10).get());
        attempt("touch", () -> done(c.touch("a", 100)));
        attempt("touch missing", () -> done(c.touch("nope", 100)));
        attempt("getAndTouch", () -> {
            CASValue<Object> g = c.getAndTouch("a", 200);
            return g == null ? null : g.getValue();
        });
        attempt("getAndTouch missing", () -> c.getAndTouch("nope", 200));
        attempt("getBulk", () -> c.getBulk("a", "b", "nope", "s"));
        attempt("getBulk none", () -> c.getBulk("nope1", "nope2"));
        attempt("getBulk many", () -> {
            List<String> keys = new ArrayList<String>();
            for (int i = 1; i <= 300; i++) {
                keys.add("m" + i);
                c.set("m" + i, 0, repeat("m" + i, 3));
            }
            Map<String, Object> got = c.getBulk(keys);
            boolean same = true;
            for (String k : keys) {
                same &= repeat(k, 3).equals(got.get(k));
            }
            return got.size() + " " + same;
        });
        attempt("async sets", () -> {
            // Fire without waiting on any reply (what callers do for
            // noreply-style writes), then read them all back.
            List<Future<Boolean>> fs = new ArrayList<Future<Boolean>>();
            for (int i = 1; i <= 100; i++) {
                fs.add(c.set("q" + i, 0, Integer.valueOf(i)));
            }
            c.delete("q50");
            Map<String, Object> got = c.getBulk(Arrays.asList("q1", "q49", "q50", "q100"));
            int ok = 0;
            for (Future<Boolean> f : fs) {
                ok += f.get() ? 1 : 0;
            }
            return got + " " + ok;
        });
        attempt("delete", () -> done(c.delete("b")));
        attempt("delete missing", () -> done(c.delete("b")));
        attempt("get deleted", () -> c.get("b"));
        attempt("expiry", () -> {
            c.set("e", 1, "soon").get();
            Thread.sleep(2100);
            return c.get("e");
        });
        attempt("key of 250 bytes", () -> {
            String k = repeat("k", 250);
            return done(c.set(k, 0, "long key")) + " " + c.get(k);
        });
        attempt("key of 251 bytes", () -> done(c.set(repeat("k", 251), 0, "x")));
        attempt("key with space", () -> done(c.set("has space", 0, "x")));
        final String mib1 = repeat("x", 1024 * 1024 - 1);
        attempt("value of 900 KiB", () -> {
            String v = repeat("v", 900 * 1024);
            return done(c.set("big", 0, v)) + " " + v.equals(c.get("big"));
        });
        attempt("value of 1 MiB-1", () -> done(c.set("mib", 0, mib1)));
        attempt("get 1 MiB-1", () -> {
            Object v = c.get("mib");
            return v == null ? null : ((String) v).length();
        });
        attempt("value over 1 MiB", () -> done(c.set("huge", 0, repeat("y", 1024 * 1024 + 1))));
        attempt("get over 1 MiB", () -> c.get("huge"));
        attempt("set over 1 MiB on a key", () -> {
            c.set("old", 0, "old value").get();
            return done(c.set("old", 0, repeat("y", 1024 * 1024 + 1)));
        });
        attempt("get old", () -> c.get("old"));
        attempt("replace over 1 MiB", () -> done(c.replace("a", 0, repeat("y", 2 * 1024 * 1024))));
        attempt("get a after", () -> c.get("a"));
        attempt("compressed", () -> {
            String v = repeat("compress me ", 500);
            return done(cz.set("z", 0, v)) + " " + v.equals(cz.get("z")) + " " + v.equals(c.get("z"));
        });
        attempt("compressed 1 MiB-1", () -> done(cz.set("zm", 0, mib1)) + " " + mib1.equals(c.get("zm")));
        attempt("stats shape", () -> {
            Map<String, String> s = c.getStats().values().iterator().next();
            return s.containsKey("pid") && s.containsKey("uptime") && s.containsKey("curr_items") &&
                   s.containsKey("cmd_get") && s.containsKey("get_hits") && s.containsKey("version");
        });
        attempt("stats items empty", () -> c.getStats("items").values().iterator().next().isEmpty());
        attempt("stats settings shape",
                () -> c.getStats("settings").values().iterator().next().containsKey("item_size_max"));
        attempt("version shape", () -> c.getVersions().values().iterator().next().matches("\\d+\\.\\d+\\.\\d+.*"));
        attempt("flush delayed", () -> c.flush(2).get());
        attempt("get before delayed flush", () -> c.get("a"));
        attempt("flush again", () -> c.flush().get());
        attempt("get after flush", () -> c.get("a"));
        attempt("getBulk after flush", () -> c.getBulk(Collections.singletonList("s")));
        c.shutdown();
        cz.shutdown();
        System.exit(0);
    }
}
