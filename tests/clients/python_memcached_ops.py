# python_memcached_ops.py - a fixed sequence of python-memcached (module memcache,
# text protocol) calls against HOST:PORT, one line per outcome, for
# test_clients.py to compare between memcached and bitcached. Values that
# differ between servers by design (cas numbers, stats figures) are printed
# as their shape only. get_slab_stats() and get_slabs() are left out: in
# 1.59 they fail on Python 3 before reading the reply (str and bytes mixed).
import sys

import memcache

from ops_lines import attempt, expiry


def cas_stale(c):
    c.gets("a")
    other.set("a", "newer")
    return c.cas("a", "stale")


def main():
    global other
    server = sys.argv[1]
    c = memcache.Client([server], socket_timeout=5, dead_retry=0, cache_cas=True)
    # a second connection, to change a key under the first one's cas
    other = memcache.Client([server], socket_timeout=5, dead_retry=0)
    # no client-side value limit, so the server's own refusal is seen
    unlimited = memcache.Client([server], socket_timeout=5, dead_retry=0,
                                server_max_value_length=8 * 1024 * 1024)
    attempt("flush_all", lambda: c.flush_all())
    attempt("set", lambda: c.set("a", "one"))
    attempt("get", lambda: c.get("a"))
    attempt("get missing", lambda: c.get("nope"))
    attempt("set empty", lambda: c.set("empty", ""))
    attempt("get empty", lambda: c.get("empty"))
    attempt("set bytes", lambda: c.set("by", b"\x00\x01\r\n\xff"))
    attempt("get bytes", lambda: c.get("by"))
    attempt("set int", lambda: c.set("i", 42))
    attempt("get int", lambda: c.get("i"))
    attempt("set pickled", lambda: c.set("o", {"x": [1, 2, 3], "y": None, "t": (1, "a")}))
    attempt("get pickled", lambda: c.get("o"))
    attempt("add existing", lambda: c.add("a", "two"))
    attempt("add new", lambda: c.add("b", "two"))
    attempt("replace missing", lambda: c.replace("nope", "x"))
    attempt("replace", lambda: c.replace("b", "three"))
    attempt("get b", lambda: c.get("b"))
    attempt("append", lambda: (c.set("s", "mid"), c.append("s", "-end")))
    attempt("prepend", lambda: c.prepend("s", "start-"))
    attempt("get s", lambda: c.get("s"))
    attempt("append missing", lambda: c.append("nope", "x"))
    attempt("gets", lambda: c.gets("a"))
    attempt("cas current", lambda: c.cas("a", "via-cas"))
    attempt("get a", lambda: c.get("a"))
    attempt("cas stale", lambda: cas_stale(c))
    attempt("get a again", lambda: c.get("a"))
    attempt("cas without gets", lambda: c.cas("nope", "x"))
    attempt("cas missing", lambda: (other.set("gone", "x"), c.gets("gone"), other.delete("gone"),
                                    c.cas("gone", "y")))
    attempt("incr missing", lambda: c.incr("ctr"))
    attempt("set ctr", lambda: c.set("ctr", "10"))
    attempt("incr", lambda: c.incr("ctr", 5))
    attempt("decr", lambda: c.decr("ctr", 100))
    attempt("decr missing", lambda: c.decr("nope"))
    attempt("incr int value", lambda: c.incr("i", 8))
    attempt("incr wrap", lambda: (c.set("w", "18446744073709551615"), c.incr("w", 2)))
    attempt("incr non-numeric", lambda: c.incr("a", 1))
    attempt("incr noreply", lambda: (c.incr("ctr", 7, noreply=True), c.get("ctr")))
    attempt("touch", lambda: c.touch("a", 100))
    attempt("touch missing", lambda: c.touch("nope", 100))
    attempt("set_multi", lambda: c.set_multi({"m%d" % i: "v%d" % i * 3 for i in range(300)}))
    attempt("get_multi many",
            lambda: (lambda got: (len(got), all(got["m%d" % i] == "v%d" % i * 3 for i in range(300))))(
                c.get_multi(["m%d" % i for i in range(300)])))
    attempt("get_multi", lambda: sorted(c.get_multi(["a", "b", "nope", "s"]).items()))
    attempt("get_multi prefix", lambda: sorted(c.get_multi(["1", "2", "3"], key_prefix="m").items()))
    attempt("set_multi noreply", lambda: (c.set_multi({"q1": 1, "q2": "2"}, noreply=True),
                                          sorted(c.get_multi(["q1", "q2"]).items())))
    attempt("delete", lambda: c.delete("b"))
    attempt("delete missing", lambda: c.delete("b"))
    attempt("get deleted", lambda: c.get("b"))
    attempt("delete_multi", lambda: c.delete_multi(["m1", "m2", "nope"]))
    attempt("get_multi after delete_multi", lambda: sorted(c.get_multi(["m1", "m2", "m3"]).items()))
    attempt("delete noreply", lambda: (c.delete("m3", noreply=True), c.get("m3")))
    attempt("set with flags", lambda: (c.set("f", 7), c.get("f"), c.set("f", 7.5), c.get("f")))
    attempt("expiry", lambda: expiry(c))
    attempt("key of 250 bytes", lambda: (c.set("k" * 250, "long key"), c.get("k" * 250)))
    attempt("key of 251 bytes", lambda: c.set("k" * 251, "x"))
    attempt("key with space", lambda: c.set("has space", "x"))
    big = "x" * (900 * 1024)
    attempt("value of 900 KiB", lambda: (c.set("big", big), c.get("big") == big))
    mib1 = b"y" * (1024 * 1024 - 1)
    attempt("value of 1 MiB-1", lambda: c.set("mib", mib1))
    attempt("get 1 MiB-1", lambda: (lambda v: None if v is None else len(v))(c.get("mib")))
    attempt("value over 1 MiB (client limit)", lambda: c.set("big", b"z" * (1024 * 1024 + 1)))
    attempt("value over 1 MiB", lambda: unlimited.set("big", b"z" * (1024 * 1024 + 1)))
    attempt("get after too large", lambda: (lambda v: None if v is None else len(v))(c.get("big")))
    attempt("compressed", lambda: (c.set("z", "compress me " * 500, min_compress_len=100),
                                   c.get("z") == "compress me " * 500))
    attempt("compressed 1 MiB-1", lambda: (c.set("zm", mib1, min_compress_len=100), c.get("zm") == mib1))
    attempt("stats shape",
            lambda: sorted(k for k in c.get_stats()[0][1]
                           if k in ("pid", "uptime", "curr_items", "cmd_get", "get_hits", "version")))
    attempt("stats items shape",
            lambda: sorted(set(k.split(":")[2] for k in c.get_stats("items")[0][1]))[:5])
    attempt("flush_all again", lambda: c.flush_all())
    attempt("get after flush", lambda: c.get("a"))
    attempt("get_multi after flush", lambda: c.get_multi(["i", "o"]))
    c.disconnect_all()


if __name__ == "__main__":
    main()
