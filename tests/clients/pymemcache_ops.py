# pymemcache_ops.py - a fixed sequence of pymemcache calls (its Client and,
# with one server, its HashClient; text protocol) against HOST:PORT, one
# line per outcome, for test_clients.py to compare between memcached and
# bitcached. Values that differ between servers by design (cas numbers,
# stats figures, the version) are printed as their shape only; an
# exception prints its class and message, so the servers' error texts are
# compared too.
import sys
import time

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from ops_lines import attempt


def cas_sequence(c, stale):
    _, cas = c.gets("a")
    if stale:
        c.set("a", "newer")
    return c.cas("a", "stale" if stale else "via-cas", cas)


def stats_shape(c, *args):
    s = c.stats(*args)
    return sorted(k for k in (b"pid", b"uptime", b"curr_items", b"get_hits", b"cmd_set",
                              b"item_size_max", b"maxbytes", b"tcpport") if k in s)


def run(c, tag, hashed):
    def at(what, call):
        attempt(tag + what, call)

    at("flush_all", lambda: c.flush_all())
    at("set", lambda: c.set("a", "one"))
    at("set noreply off", lambda: c.set("a2", "one", noreply=False))
    at("get", lambda: c.get("a"))
    at("get missing", lambda: c.get("nope"))
    at("get default", lambda: c.get("nope", default="dflt"))
    at("set bytes", lambda: c.set("by", b"\x00\x01\r\nEND\r\n\xff", noreply=False))
    at("get bytes", lambda: c.get("by"))
    at("set flags", lambda: c.set("fl", "x", flags=3735928559, noreply=False))
    at("get flags", lambda: c.get("fl"))
    at("add existing", lambda: c.add("a", "two", noreply=False))
    at("add new", lambda: c.add("b", "two", expire=100, noreply=False))
    at("replace missing", lambda: c.replace("nope", "x", noreply=False))
    at("replace", lambda: c.replace("b", "three", expire=100, noreply=False))
    at("append", lambda: c.append("b", "-end", noreply=False))
    at("prepend", lambda: c.prepend("b", "start-", noreply=False))
    at("append missing", lambda: c.append("nope", "x", noreply=False))
    at("get b", lambda: c.get("b"))
    at("incr missing", lambda: c.incr("ctr", 1))
    at("incr", lambda: c.set("ctr", "10") and c.incr("ctr", 5))
    at("decr", lambda: c.decr("ctr", 100))
    at("incr noreply", lambda: c.incr("ctr", 7, noreply=True))
    at("get ctr", lambda: c.get("ctr"))
    at("incr non-numeric", lambda: c.incr("a", 1))
    at("incr wrap", lambda: c.set("w", "18446744073709551615") and c.incr("w", 2))
    at("incr huge delta", lambda: c.incr("ctr", 18446744073709551616))
    at("gets", lambda: (lambda v: (v[0], isinstance(v[1], bytes) and v[1].isdigit()))(c.gets("a")))
    at("gets missing", lambda: c.gets("nope"))
    at("gets_many", lambda: sorted((k, v[0]) for k, v in c.gets_many(["a", "b", "nope"]).items()))
    at("cas stale", lambda: cas_sequence(c, True))
    at("cas current", lambda: cas_sequence(c, False))
    at("cas missing", lambda: c.cas("nope", "x", b"123"))
    at("get after cas", lambda: c.get("a"))
    at("set_many noreply", lambda: c.set_many({"m%d" % i: "v%d" % i for i in range(100)}))
    at("set_many noreply off", lambda: c.set_many({"n%d" % i: "v%d" % i for i in range(100)},
                                                  noreply=False))
    at("get_many", lambda: len(c.get_many(["m%d" % i for i in range(100)] +
                                          ["n%d" % i for i in range(100)] + ["nope"])))
    at("get_many values", lambda: c.get_many(["m1", "n99", "nope"]))
    at("delete_many", lambda: c.delete_many(["m1", "m2", "nope"], noreply=False))
    at("delete_many noreply", lambda: c.delete_many(["m3", "m4"]))
    at("get_many after delete", lambda: c.get_many(["m1", "m2", "m3", "m4", "m5"]))
    at("set_many 1000", lambda: c.set_many({"thk%d" % i: "v%d" % i for i in range(0, 2000, 2)},
                                           noreply=False))
    at("get_many 1000", lambda: (lambda got: (len(got), all(
        v == b"v%d" % int(k[3:]) for k, v in got.items())))(
            c.get_many(["thk%d" % i for i in range(1000)])))
    at("delete", lambda: c.delete("b", noreply=False))
    at("delete missing", lambda: c.delete("b", noreply=False))
    at("touch", lambda: c.touch("a", 100, noreply=False))
    at("touch missing", lambda: c.touch("nope", 100, noreply=False))
    at("expiry", lambda: c.set("e", "soon", expire=1, noreply=False) and
       time.sleep(2.1) or c.get("e"))
    at("negative expire", lambda: c.set("neg", "x", expire=-1, noreply=False) and c.get("neg"))
    at("value of 1000000", lambda: c.set("big", "x" * 1000000, noreply=False) and
       len(c.get("big")))
    at("value of 1 MiB-1", lambda: c.set("big1", "w" * (1024 * 1024 - 1), noreply=False))
    at("get 1 MiB-1", lambda: len(c.get("big1") or b""))
    at("value of 2 MiB", lambda: c.set("big3", "y" * (2 * 1024 * 1024), noreply=False))
    at("after too large", lambda: c.get("a"))
    at("key of 250", lambda: c.set("k" * 250, "long", noreply=False) and c.get("k" * 250))
    at("key of 251", lambda: c.set("k" * 251, "x", noreply=False))
    at("key with space", lambda: c.get("has space"))
    at("after bad keys", lambda: c.get("a"))
    if not hashed:
        at("version shape", lambda: c.version()[:2].isdigit() or c.version()[:1].isdigit())
        at("stats shape", lambda: stats_shape(c))
        at("stats settings shape", lambda: stats_shape(c, "settings"))
        at("stats items type", lambda: type(c.stats("items")).__name__)
        at("stats bogus", lambda: c.stats("bogus"))
        at("after stats bogus", lambda: c.get("a"))
        at("cache_memlimit", lambda: c.cache_memlimit(100))
        at("stats limit_maxbytes", lambda: c.stats()[b"limit_maxbytes"])
        at("cache_memlimit back", lambda: c.cache_memlimit(64))
        at("flush_all delay", lambda: c.flush_all(delay=2, noreply=False))
        at("before delayed flush", lambda: c.get("a"))
        at("after delayed flush", lambda: time.sleep(3.1) or c.get("a"))
        at("flush_all noreply", lambda: c.set("x", "y") and c.flush_all() and c.get("x"))
        at("quit", lambda: c.quit())
        at("after quit", lambda: c.get("x"))
    else:
        at("flush_all", lambda: c.flush_all(noreply=False))
        at("get after flush", lambda: c.get("a"))
    at("close", lambda: c.close())
    at("after close", lambda: c.set("c", "reopened", noreply=False) and c.get("c"))


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    run(Client((host, int(port)), timeout=5, connect_timeout=5), "", False)
    run(HashClient([(host, int(port))], timeout=5, connect_timeout=5), "hash ", True)


if __name__ == "__main__":
    main()
