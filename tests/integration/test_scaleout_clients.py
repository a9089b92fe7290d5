#!/usr/bin/env python3
# test_scaleout_clients.py - the client configurations README "Scaling out"
# gives put every key on the same node of a three-server pool, so that
# clients of different languages (and nutcracker) can share it:
#   - pylibmc (libmemcached) with behaviors {"ketama_weighted": True};
#   - pymemcache's HashClient with uhashring's HashRing(hash_fn="ketama"),
#     and README's wrapper for servers on port 11211 (checked on the ring
#     alone, as that port cannot be taken here);
# each checked against tests/integration/ketama.py by asking the nodes
# directly where each key went. Also measures, and prints, how far pylibmc's
# plain {"ketama": True} (100 points per server) is from them.
# Skips (77) without pylibmc, or pymemcache and uhashring (Debian:
# python3-pylibmc, python3-pymemcache, python3-uhashring).
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402
import ketama  # noqa: E402

try:
    import pylibmc
    from pymemcache.client.hash import HashClient
    from uhashring import HashRing
except ImportError:
    # A python3 other than Debian's does not see Debian's packages.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import pylibmc
        from pymemcache.client.hash import HashClient
        from uhashring import HashRing
    except ImportError:
        bcserver.skip("needs pylibmc, pymemcache and uhashring "
                      "(Debian: python3-pylibmc python3-pymemcache python3-uhashring)")

NKEYS = 300
fails = 0


class LibmemcachedKetama(HashRing):
    """README's hasher for pymemcache: names a server on port 11211 by its
    host alone, as libmemcached, twemproxy and spymemcached's LIBMEMCACHED
    format do, and maps the name back for HashClient."""

    def __init__(self):
        super().__init__(hash_fn="ketama")

    def add_node(self, key):
        super().add_node(key[:-6] if key.endswith(":11211") else key)

    def remove_node(self, key):
        super().remove_node(key[:-6] if key.endswith(":11211") else key)

    def get_node(self, key):
        node = super().get_node(key)
        return node if node is None or ":" in node else node + ":11211"


def check(cond, what):
    global fails
    if not cond:
        print("FAIL: " + what)
        fails += 1


def holders(direct, key):
    return [i for i, c in enumerate(direct) if c.get(key) is not None]


def placement(name, client, nodes, direct, ring, prefix):
    """Set keys through client (which must wait for each reply: pymemcache
    sends noreply by default) and count those not where ring says."""
    off = 0
    for i in range(NKEYS):
        key = "%s:%d" % (prefix, i)
        client.set(key, b"v")
        if holders(direct, key) != [ring.node(key)]:
            off += 1
    print("%s: %d of %d keys off the ketama ring" % (name, off, NKEYS))
    return off


def main():
    binary = bcserver.binary()
    nodes = [bcserver.Server(binary) for _ in range(3)]
    try:
        for n in nodes:
            n.start()
        addrs = ["127.0.0.1:%d" % n.port for n in nodes]
        ring = ketama.Ring([ketama.point_name("127.0.0.1", n.port) for n in nodes])
        direct = [pylibmc.Client([a]) for a in addrs]

        mc = pylibmc.Client(addrs, behaviors={"ketama_weighted": True})
        check(placement("pylibmc ketama_weighted", mc, nodes, direct, ring, "a") == 0,
              "pylibmc ketama_weighted follows the ketama ring")
        hc = HashClient([("127.0.0.1", n.port) for n in nodes],
                        hasher=lambda: HashRing(hash_fn="ketama"), default_noreply=False)
        check(placement("pymemcache HashClient + uhashring", hc, nodes, direct, ring, "b") == 0,
              "pymemcache with uhashring follows the ketama ring")
        hc.close()
        hw = HashClient([("127.0.0.1", n.port) for n in nodes], hasher=LibmemcachedKetama,
                        default_noreply=False)
        check(placement("pymemcache HashClient + README wrapper", hw, nodes, direct, ring, "c") == 0,
              "the wrapper changes nothing off port 11211")
        hw.close()
        plain = pylibmc.Client(addrs, behaviors={"ketama": True})
        off = placement("pylibmc ketama (not weighted, 100 points)", plain, nodes, direct, ring, "d")
        check(off > 0, "plain pylibmc ketama is a different ring (README says so)")

        # Port 11211: the ring alone (HashClient's hasher, no connections).
        hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        ring11211 = ketama.Ring([ketama.point_name(h, 11211) for h in hosts])
        wrapped = LibmemcachedKetama()
        bare = HashRing(hash_fn="ketama")
        for h in hosts:
            wrapped.add_node(h + ":11211")
            bare.add_node(h + ":11211")
        keys = ["user:%d" % i for i in range(5000)]
        w_off = sum(1 for k in keys if wrapped.get_node(k) != hosts[ring11211.node(k)] + ":11211")
        b_off = sum(1 for k in keys if bare.get_node(k) != hosts[ring11211.node(k)] + ":11211")
        print("port 11211: uhashring with host:port names puts %d of %d keys elsewhere; "
              "with README's wrapper %d" % (b_off, len(keys), w_off))
        check(w_off == 0, "wrapper matches libmemcached on port 11211")
        check(b_off > 0, "unwrapped uhashring differs on port 11211 (README says so)")
        for n in nodes:
            check(n.alive(), "node alive at the end")
    finally:
        for n in nodes:
            n.close()
    print("clients: %d failures" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
