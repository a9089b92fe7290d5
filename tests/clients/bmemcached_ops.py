# bmemcached_ops.py - a fixed sequence of python-binary-memcached
# (bmemcached, binary protocol, no SASL) calls against HOST:PORT, one line
# per outcome, for test_clients.py to compare between memcached and
# bitcached. Values that differ between servers by design (cas numbers,
# stats figures) are printed as their shape only; an exception prints its
# class and message, so the servers' error texts are compared too.
import sys

import bmemcached

from ops_lines import attempt, expiry


def gets_shape(c, key):
    val, cas = c.gets(key)
    return val, isinstance(cas, int) and cas > 0


def cas_sequence(c, stale):
    _, cas = c.gets("a")
    if stale:
        c.set("a", "newer")
    return c.cas("a", "stale" if stale else "via-cas", cas)


def main():
    c = bmemcached.Client([sys.argv[1]], socket_timeout=5)
    # compression only over 1 KiB: a level of 0 keeps values as they are
    attempt("flush_all", lambda: c.flush_all())
    attempt("set", lambda: c.set("a", "one"))
    attempt("get", lambda: c.get("a"))
    attempt("get missing", lambda: c.get("nope"))
    attempt("get default", lambda: c.get("nope", default="dflt"))
    attempt("set empty", lambda: c.set("empty", ""))
    attempt("get empty", lambda: c.get("empty"))
    attempt("set bytes", lambda: c.set("by", b"\x00\x01\r\n\xff"))
    attempt("get bytes", lambda: c.get("by"))
    attempt("set int", lambda: c.set("i", 42))
    attempt("get int", lambda: c.get("i"))
    attempt("set object", lambda: c.set("o", {"x": [1, 2, 3], "y": None}))
    attempt("get object", lambda: c.get("o"))
    attempt("add existing", lambda: c.add("a", "two"))
    attempt("add new", lambda: c.add("b", "two"))
    attempt("replace missing", lambda: c.replace("nope", "x"))
    attempt("replace", lambda: c.replace("b", "three"))
    attempt("get b", lambda: c.get("b"))
    attempt("gets shape", lambda: gets_shape(c, "a"))
    attempt("gets missing", lambda: c.gets("nope"))
    attempt("get with cas shape", lambda: (lambda v: (v[0], v[1] > 0))(c.get("a", get_cas=True)))
    attempt("cas current", lambda: cas_sequence(c, False))
    attempt("cas stale", lambda: cas_sequence(c, True))
    attempt("get a", lambda: c.get("a"))
    attempt("cas missing", lambda: c.cas("nope", "x", 12345))
    attempt("incr missing, default 10", lambda: c.incr("ctr", 1, default=10, time=0))
    attempt("incr", lambda: c.incr("ctr", 5))
    attempt("decr", lambda: c.decr("ctr", 100))
    attempt("decr missing, default 7", lambda: c.decr("ctr2", 1, default=7, time=0))
    attempt("decr after default", lambda: c.decr("ctr2", 3))
    attempt("get ctr2", lambda: c.get("ctr2"))
    # the library's default expiry for a created counter (1000000 s) is an
    # absolute time in 1970: the counter is made already expired
    attempt("incr library default expiry", lambda: c.incr("ctr3", 1, default=3))
    attempt("incr it again", lambda: c.incr("ctr3", 1, default=3))
    attempt("get it", lambda: c.get("ctr3"))
    attempt("incr wrap", lambda: (c.set("w", "18446744073709551615"), c.incr("w", 2)))
    attempt("incr non-numeric", lambda: c.incr("a", 1))
    attempt("decr non-numeric", lambda: c.decr("a", 1))
    attempt("set_multi", lambda: c.set_multi({"m%d" % i: "v%d" % i * 3 for i in range(300)}))
    attempt("get_multi many",
            lambda: (lambda got: (len(got), all(got["m%d" % i] == "v%d" % i * 3 for i in range(300))))(
                c.get_multi(["m%d" % i for i in range(300)])))
    attempt("get_multi", lambda: sorted(c.get_multi(["a", "b", "nope", "i"]).items()))
    attempt("get_multi with cas shape",
            lambda: sorted((k, v[0], v[1] > 0) for k, v in
                           c.get_multi(["a", "b", "nope"], get_cas=True).items()))
    attempt("set_multi with expiry", lambda: c.set_multi({"x1": "1", "x2": "2"}, time=100))
    attempt("delete", lambda: c.delete("b"))
    attempt("delete missing", lambda: c.delete("b"))
    attempt("get deleted", lambda: c.get("b"))
    attempt("delete stale cas", lambda: c.delete("a", cas=1))
    attempt("delete_multi", lambda: c.delete_multi(["m1", "m2", "nope"]))
    attempt("get_multi after delete_multi", lambda: sorted(c.get_multi(["m1", "m2", "m3"]).items()))
    attempt("expiry", lambda: expiry(c))
    attempt("key of 250 bytes", lambda: (c.set("k" * 250, "long key"), c.get("k" * 250)))
    attempt("key of 251 bytes", lambda: c.set("k" * 251, "x"))
    attempt("get key of 251 bytes", lambda: c.get("k" * 251))
    big = "x" * (900 * 1024)
    attempt("value of 900 KiB", lambda: (c.set("big", big, compress_level=0), c.get("big") == big))
    mib1 = b"y" * (1024 * 1024 - 1)
    attempt("value of 1 MiB-1", lambda: c.set("mib", mib1, compress_level=0))
    attempt("get 1 MiB-1", lambda: (lambda v: None if v is None else len(v))(c.get("mib")))
    attempt("value over 1 MiB", lambda: c.set("big", b"z" * (1024 * 1024 + 1), compress_level=0))
    attempt("get after too large", lambda: (lambda v: None if v is None else len(v))(c.get("big")))
    attempt("add over 1 MiB", lambda: c.add("huge", b"z" * (2 * 1024 * 1024), compress_level=0))
    attempt("compressed", lambda: (c.set("z", "compress me " * 500), c.get("z") == "compress me " * 500))
    attempt("compressed 1 MiB-1", lambda: (c.set("zm", mib1), c.get("zm") == mib1))
    attempt("stats shape",
            lambda: sorted(k for k in next(iter(c.stats().values()))
                           if k in ("pid", "uptime", "curr_items", "cmd_get", "get_hits", "version")))
    attempt("stats settings shape", lambda: "item_size_max" in next(iter(c.stats("settings").values())))
    attempt("flush_all again", lambda: c.flush_all())
    attempt("get after flush", lambda: c.get("a"))
    attempt("get_multi after flush", lambda: c.get_multi(["i", "o"]))
    c.disconnect_all()


if __name__ == "__main__":
    main()
