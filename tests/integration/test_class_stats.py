#!/usr/bin/env python3
"""test_class_stats.py - the per-class counters of `stats items` and `stats
slabs` are counted, not shown as 0:

- the server's (get_hits, cmd_set, delete_hits, incr_hits, decr_hits,
  cas_hits, cas_badval, touch_hits per class in `stats slabs`) equal
  memcached's after the same text, meta and binary commands, before and
  after `stats reset`, and a class whose items are all gone stays listed in
  `stats slabs` with used_chunks 0, as in memcached (skipped without
  memcached);
- a store over an expired item counts in items:N:reclaimed (memcached's
  issue_163);
- the crawler's drops count in items:N:crawler_reclaimed and the global
  crawler_reclaimed without memcached's LRU maintainer (-o no_modern), in
  reclaimed with it;
- evictions count in items:N:evicted, evicted_nonzero, evicted_unfetched
  and evicted_time, and the totals of `stats` are the sums of the classes.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)

SLAB_COUNTERS = ("get_hits", "cmd_set", "delete_hits", "incr_hits", "decr_hits",
                 "cas_hits", "cas_badval", "touch_hits")


def run(sock, data, ends):
    sock.sendall(data)
    out, _ = bcserver.recv_until(sock, ends)
    return out


def gets_cas(sock, key):
    out = run(sock, b"gets " + key + b"\r\n", (b"END\r\n",))
    return out.split(b"\r\n")[0].split(b" ")[4]


def bin_req(op, key=b"", extras=b"", value=b"", cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                       len(body), 0, cas) + body


def workload(srv):
    """The same commands on either server: two classes (small values and
    3000 bytes), hits and misses of each kind, one too large set."""
    s = srv.connect()
    small = b"x" * 10
    run(s, b"set a 0 0 10\r\n" + small + b"\r\nset n 0 0 2\r\n10\r\n",
        (b"STORED\r\nSTORED\r\n",))
    run(s, b"set big 0 0 3000\r\n" + b"y" * 3000 + b"\r\n", (b"STORED\r\n",))
    run(s, b"add a 0 0 10\r\n" + small + b"\r\n", (b"NOT_STORED\r\n",))
    run(s, b"get a big nope\r\n", (b"END\r\n",))
    run(s, b"gat 100 a\r\n", (b"END\r\n",))
    run(s, b"touch big 100\r\n", (b"TOUCHED\r\n",))
    run(s, b"incr n 5\r\n", (b"\r\n",))
    run(s, b"decr n 1\r\n", (b"\r\n",))
    cas = gets_cas(s, b"a")
    run(s, b"cas a 0 0 10 " + cas + b"\r\n" + small + b"\r\n", (b"STORED\r\n",))
    run(s, b"cas a 0 0 10 " + cas + b"\r\n" + small + b"\r\n", (b"EXISTS\r\n",))
    run(s, b"mg a v\r\n", (b"\r\n",))
    run(s, b"ms m 10\r\n" + small + b"\r\n", (b"HD\r\n",))
    # ms with C on set and replace is a cas command (C0 too); on append
    # it is not counted
    cas = gets_cas(s, b"a")
    run(s, b"ms a 10 C" + cas + b"\r\n" + small + b"\r\n", (b"HD\r\n",))
    run(s, b"ms a 10 C999999\r\n" + small + b"\r\n", (b"EX\r\n",))
    run(s, b"ms a 10 MR C0\r\n" + small + b"\r\n", (b"EX\r\n",))
    run(s, b"ms nope 10 MR C5\r\n" + small + b"\r\n", (b"NF\r\n",))
    run(s, b"ms a 10 MA C999999\r\n" + small + b"\r\n", (b"EX\r\n",))
    run(s, b"md m\r\n", (b"HD\r\n",))
    # md whose C does not match (C0 included) counts in delete_misses, as a
    # missing key does
    run(s, b"md a C999999\r\n", (b"EX\r\n",))
    run(s, b"md a C0\r\n", (b"EX\r\n",))
    run(s, b"md nope C5\r\n", (b"NF\r\n",))
    run(s, b"set huge 0 0 2000000\r\n" + b"z" * 2000000 + b"\r\n", (b"\r\n",))
    # binary, on a connection of its own: get (0x00), set (0x01), delete
    # (0x04)
    b = srv.connect()
    b.sendall(bin_req(0x01, b"bset", struct.pack(">II", 0, 0), b"q" * 40))
    bcserver.recv_n(b, 24)
    b.sendall(bin_req(0x00, b"bset"))
    hdr = bcserver.recv_n(b, 24)
    bcserver.recv_n(b, struct.unpack(">I", hdr[8:12])[0])
    b.sendall(bin_req(0x04, b"bset"))
    bcserver.recv_n(b, 24)
    b.close()
    run(s, b"delete big\r\n", (b"DELETED\r\n",))
    s.close()


def slab_counters(srv):
    st = srv.stats(b"slabs")
    return {k: v for k, v in st.items()
            if ":" in k and k.split(":")[1] in SLAB_COUNTERS + ("used_chunks",)}


def general(srv):
    st = srv.stats()
    return {k: st[k] for k in SLAB_COUNTERS + ("cas_misses", "delete_misses")}


def compare_memcached(bc, mc):
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"])
    sut = bcserver.Server(bc)
    try:
        ref.start()
        sut.start()
        for srv in (ref, sut):
            workload(srv)
        want, got = slab_counters(ref), slab_counters(sut)
        check(want == got, "stats slabs' per-class counters as memcached's:"
              "\n  memcached %r\n  bitcached %r" % (sorted(want.items()),
                                                     sorted(got.items())))
        check(general(ref) == general(sut), "stats' totals as memcached's: "
              "%r, %r" % (general(ref), general(sut)))
        check(any(k.endswith(":used_chunks") and v == "0" for k, v in got.items()),
              "the class of the deleted 3000-byte item stays listed: %r" % got)
        for srv in (ref, sut):
            s = srv.connect()
            run(s, b"stats reset\r\n", (b"RESET\r\n",))
            run(s, b"get a\r\n", (b"END\r\n",))
            s.close()
        want, got = slab_counters(ref), slab_counters(sut)
        check(want == got, "after stats reset, as memcached's:\n  memcached "
              "%r\n  bitcached %r" % (sorted(want.items()), sorted(got.items())))
    finally:
        ref.close()
        sut.close()


def items_sum(st, field):
    return sum(int(v) for k, v in st.items()
               if k.startswith("items:") and k.split(":")[2] == field)


def reclaimed_on_store(bc):
    srv = bcserver.Server(bc)
    try:
        srv.start()
        s = srv.connect()
        run(s, b"set key 0 1 5000\r\n" + b"A" * 5000 + b"\r\n", (b"STORED\r\n",))
        time.sleep(2.5)
        run(s, b"set key 0 0 5000\r\n" + b"B" * 5000 + b"\r\n", (b"STORED\r\n",))
        items = srv.stats(b"items")
        rec = {k: v for k, v in items.items() if k.endswith(":reclaimed")}
        check(list(rec.values()) == ["1"], "the expired item counts in its "
              "class's reclaimed: %r" % rec)
        check(srv.stats()["reclaimed"] == "1", "and in reclaimed")
        s.close()
    finally:
        srv.close()


def five_expire(srv, s):
    """Set five keys that expire in a second and one that stays, and wait
    (10 s at most) until only that one is left."""
    for i in range(5):
        run(s, b"set s%d 0 1 2\r\nok\r\n" % i, (b"STORED\r\n",))
    run(s, b"set keep 0 0 2\r\nok\r\n", (b"STORED\r\n",))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and srv.stats()["curr_items"] != "1":
        time.sleep(0.2)


def crawler(bc):
    srv = bcserver.Server(bc, args=["-o", "no_modern"])
    try:
        srv.start()
        s = srv.connect()
        five_expire(srv, s)
        items, st = srv.stats(b"items"), srv.stats()
        check(items.get("items:1:crawler_reclaimed") == "5",
              "items:1:crawler_reclaimed 5: %r" % items)
        check(items.get("items:1:expired_unfetched") == "5",
              "items:1:expired_unfetched 5")
        check(int(items.get("items:1:crawler_items_checked", "0")) >= 6,
              "items:1:crawler_items_checked")
        check(st["crawler_reclaimed"] == "5" and st["reclaimed"] == "0",
              "crawler_reclaimed 5, reclaimed 0: %s %s"
              % (st["crawler_reclaimed"], st["reclaimed"]))
        check(int(st["crawler_items_checked"]) == items_sum(items, "crawler_items_checked"),
              "crawler_items_checked is the classes' sum")
        run(s, b"stats reset\r\n", (b"RESET\r\n",))
        items, st = srv.stats(b"items"), srv.stats()
        check(items.get("items:1:crawler_reclaimed") == "0" and
              st["crawler_reclaimed"] == "0", "stats reset zeroes them")
        s.close()
    finally:
        srv.close()
    # with the LRU maintainer (the default) the same drops are reclaimed
    srv = bcserver.Server(bc)
    try:
        srv.start()
        s = srv.connect()
        five_expire(srv, s)
        items = srv.stats(b"items")
        check(items.get("items:1:reclaimed") == "5" and
              items.get("items:1:crawler_reclaimed") == "0",
              "with the LRU maintainer the crawler's drops are reclaimed: %r" % items)
        s.close()
    finally:
        srv.close()


def evictions(bc):
    srv = bcserver.Server(bc, args=["-m", "2", "--shards", "4"])
    try:
        srv.start()
        s = srv.connect(timeout=30)
        n = 120000
        for lo in range(0, n, 1000):
            s.sendall(b"".join(b"set key:%016d 0 3600 100 noreply\r\n%s\r\n"
                               % (i, b"v" * 100) for i in range(lo, lo + 1000)))
            run(s, b"mn\r\n", (b"MN\r\n",))
        ev = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = srv.stats()
            if int(st["evictions"]) == ev and ev > 0:
                break
            ev = int(st["evictions"])
            time.sleep(0.5)
        items, st = srv.stats(b"items"), srv.stats()
        ev = int(st["evictions"])
        check(ev > 0, "evictions under -m 2")
        check(items_sum(items, "evicted") == ev, "evicted summed over the "
              "classes is evictions (%d, %d)" % (items_sum(items, "evicted"), ev))
        check(items_sum(items, "evicted_nonzero") == ev,
              "every evicted item had an expiry: evicted_nonzero")
        check(items_sum(items, "evicted_unfetched") == int(st["evicted_unfetched"]) == ev,
              "evicted_unfetched")
        check(any(k.endswith(":evicted_time") for k in items), "evicted_time listed")
        s.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    mc = None
    try:
        mc = bcserver.memcached_binary()
    except SystemExit:
        print("memcached not found: the comparison is skipped")
    if mc is not None:
        compare_memcached(bc, mc)
    reclaimed_on_store(bc)
    crawler(bc)
    evictions(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
