#!/usr/bin/env python3
"""test_value_cache.py - hot small gets answered from the shards' value
caches (storage/cask_vcache.c; issues 8, 16) never answer with a value the
key no longer holds, through the server, as memcached would answer:
  - a key read twice is served from the cache (stats storage:
    value_cache_hits rises, value_cache_bytes and value_cache_fills
    nonzero, per shard and in total);
  - after a set on another connection (another worker), an append, an
    incr, a delete, a touch, a gat, flush_all, an expiry, an mg with a
    new value set by ms: the next get answers what memcached would;
  - a writer that sets increasing versions on one connection and reads
    each back on another, while a third pipelines gets of the same keys
    to keep them cached, never reads an older version than the one just
    acknowledged.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)


def cmd(s, line, ends=(b"\r\n",)):
    s.sendall(line)
    data, _ = bcserver.recv_until(s, list(ends))
    return data


def get(s, key):
    """The value of key (bytes), or None for a miss."""
    data = cmd(s, b"get " + key + b"\r\n", (b"END\r\n",))
    if data == b"END\r\n":
        return None
    head, _, rest = data.partition(b"\r\n")
    n = int(head.split(b" ")[3])
    return rest[:n]


def setv(s, key, val, exp=0):
    r = cmd(s, b"set %s 0 %d %d\r\n%s\r\n" % (key, exp, len(val), val))
    check(r == b"STORED\r\n", "set %r: %r" % (key, r))


def hits(s):
    return int(bcserver.stats_on(s, b"storage").get("value_cache_hits", -1))


def twice(s, key, val, what):
    h0 = hits(s)
    check(get(s, key) == val, "%s: first get of %r" % (what, key))
    check(get(s, key) == val, "%s: second get of %r" % (what, key))
    check(hits(s) > h0, "%s: the second get came from the cache" % what)


def semantics(a, b):
    setv(a, b"k", b"one")
    twice(a, b"k", b"one", "set")
    setv(b, b"k", b"two")  # another connection, maybe another worker
    check(get(a, b"k") == b"two", "a set on another connection is seen")
    twice(a, b"k", b"two", "after the set")
    check(cmd(b, b"append k 0 0 1\r\n!\r\n") == b"STORED\r\n", "append")
    check(get(a, b"k") == b"two!", "append seen")
    twice(a, b"k", b"two!", "after the append")
    setv(b, b"n", b"41")
    twice(a, b"n", b"41", "number")
    check(cmd(b, b"incr n 1\r\n") == b"42\r\n", "incr")
    check(get(a, b"n") == b"42", "incr seen")
    check(cmd(b, b"touch k 100\r\n") == b"TOUCHED\r\n", "touch")
    twice(a, b"k", b"two!", "after a touch (same value)")
    r = cmd(b, b"gat 100 k\r\n", (b"END\r\n",))
    check(r == b"VALUE k 0 4\r\ntwo!\r\nEND\r\n", "gat: %r" % r)
    check(cmd(b, b"delete k\r\n") == b"DELETED\r\n", "delete")
    check(get(a, b"k") is None, "a deleted key misses")
    setv(b, b"k", b"three")
    twice(a, b"k", b"three", "after a delete and set")
    r = cmd(b, b"ms k 4\r\nfour\r\n")
    check(r == b"HD\r\n", "ms: %r" % r)
    r = cmd(a, b"mg k v\r\n")
    check(r == b"VA 4\r\nfour\r\n", "mg after ms: %r" % r)
    twice(a, b"k", b"four", "after ms")
    check(cmd(b, b"flush_all\r\n") == b"OK\r\n", "flush_all")
    check(get(a, b"k") is None and get(a, b"n") is None,
          "flushed keys miss")
    setv(b, b"e", b"short-lived", exp=1)
    twice(a, b"e", b"short-lived", "before expiry")
    time.sleep(2.1)
    check(get(a, b"e") is None, "an expired key misses")


def race(srv, a, b):
    keys = [b"race%d" % i for i in range(4)]
    noise = srv.connect(timeout=30)
    batch = b"".join(b"get %s\r\n" % k for k in keys) * 8
    for n in range(1, 301):
        k = keys[n % len(keys)]
        setv(a, k, b"%d:" % n + b"p" * (n % 50))
        got = get(b, k)
        v = int(got.split(b":")[0]) if got else -1
        check(v == n, "read after an acknowledged set: %d, got %d" % (n, v))
        noise.sendall(batch)  # keep the keys cached meanwhile
        if n % 10 == 0:
            bcserver.recv_until(noise, [b"END\r\n"], quiet=0.05)
    noise.close()


def main():
    bc = bcserver.binary()
    srv = bcserver.Server(bc, args=["-t", "2", "--shards", "2"])
    srv.start()
    try:
        a = srv.connect(timeout=30)
        b = srv.connect(timeout=30)
        semantics(a, b)
        race(srv, a, b)
        st = bcserver.stats_on(a, b"storage")
        check(int(st.get("value_cache_bytes", 0)) > 0, "value_cache_bytes")
        check(int(st.get("value_cache_fills", 0)) > 0, "value_cache_fills")
        per = sum(int(st.get("shard%d:value_cache_hits" % i, 0))
                  for i in range(2))
        check(per == int(st.get("value_cache_hits", -1)),
              "value_cache_hits is the shards' sum")
        a.close()
        b.close()
    except socket.timeout:
        check(False, "timed out")
    finally:
        srv.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
