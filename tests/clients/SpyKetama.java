// SpyKetama.java - README's spymemcached pool configuration (a
// KetamaConnectionFactory with KETAMA_HASH, the LIBMEMCACHED node key
// format and a weight of 1 per server), as README gives it, against the
// servers HOST:PORT ...: sets the keys "spy:0" to "spy:N-1" through it,
// waiting for each reply, and prints "stored KEY" for each;
// test_spy_ketama.py then asks each server which keys it holds.
// Arguments: MODE N HOST:PORT...; MODE "named" builds the addresses with
// README's named() (the server keeps the name given), "addrutil" with
// AddrUtil.getAddresses alone (an address is named by its reverse lookup).
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;
import net.spy.memcached.AddrUtil;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.DefaultHashAlgorithm;
import net.spy.memcached.KetamaConnectionFactory;
import net.spy.memcached.KetamaNodeKeyFormatter;
import net.spy.memcached.MemcachedClient;

public class SpyKetama {
    // README's named(), as it is there.
    static InetSocketAddress named(String host, int port) throws UnknownHostException {
        byte[] ip = InetAddress.getByName(host).getAddress();
        return new InetSocketAddress(InetAddress.getByAddress(host, ip), port);
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("net.spy.log.LoggerImpl", "net.spy.memcached.compat.log.SunLogger");
        Logger.getLogger("net.spy.memcached").setLevel(Level.OFF);
        boolean useNamed = args[0].equals("named");
        int nkeys = Integer.parseInt(args[1]);
        StringBuilder servers = new StringBuilder();
        List<InetSocketAddress> addrs = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            servers.append(i > 2 ? " " : "").append(args[i]);
            int colon = args[i].lastIndexOf(':');
            addrs.add(named(args[i].substring(0, colon), Integer.parseInt(args[i].substring(colon + 1))));
        }
        if (!useNamed) {
            addrs = AddrUtil.getAddresses(servers.toString());
        }

        Map<InetSocketAddress, Integer> weights = new HashMap<>(); // 1 for each server
        for (InetSocketAddress a : addrs) {
            weights.put(a, 1);
        }
        ConnectionFactory cf = new KetamaConnectionFactory(
            DefaultConnectionFactory.DEFAULT_OP_QUEUE_LEN,
            DefaultConnectionFactory.DEFAULT_READ_BUFFER_SIZE,
            DefaultConnectionFactory.DEFAULT_OP_QUEUE_MAX_BLOCK_TIME,
            DefaultHashAlgorithm.KETAMA_HASH,
            KetamaNodeKeyFormatter.Format.LIBMEMCACHED, weights);
        MemcachedClient client = new MemcachedClient(cf, addrs);
        for (int i = 0; i < nkeys; i++) {
            String key = "spy:" + i;
            if (client.set(key, 0, "v").get()) {
                System.out.println("stored " + key);
            }
        }
        client.shutdown();
        System.exit(0);
    }
}
