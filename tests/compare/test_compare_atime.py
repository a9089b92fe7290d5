#!/usr/bin/env python3
# test_compare_atime.py - items' last-access time against Debian's memcached
# ($MEMCACHED): mg's h and l flags, me's la= and fetch=, metadump's la=, over
# sequences with a pause in them. Both servers get each step at the same
# moment; replies must match except that times may differ by two seconds
# (memcached's clock ticks on its own timer, which a loaded machine
# delays), and bitcached's times must be within a second of the wall clock. Where memcached's own answer depends
# on its LRU thread (the access time a read bumps can land a moment later),
# only bitcached's answer is checked. Python 3 stdlib and bcserver.py.
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

PAUSE = 2.2
NUM_RE = re.compile(rb"( l|la=)(\d+)")
CAS_RE = re.compile(rb" cas=\d+")


def exchange(sock, cmd):
    sock.sendall(cmd + b"mn\r\n")
    reply, closed = bcserver.recv_until(sock, (b"MN\r\n",))
    if closed or not reply.endswith(b"MN\r\n"):
        raise RuntimeError("no reply to %r: %r" % (cmd, reply))
    return reply[:-4]


def times(reply):
    """The reply with its times masked, and the times."""
    return NUM_RE.sub(rb"\1<t>", CAS_RE.sub(b" cas=<cas>", reply)), \
        [int(m.group(2)) for m in NUM_RE.finditer(reply)]


class Pair:
    def __init__(self, mc, bc):
        self.socks = (mc.connect(timeout=3.0), bc.connect(timeout=3.0))
        self.fails = 0

    def both(self, cmd):
        return tuple(exchange(s, cmd) for s in self.socks)

    def same(self, cmd, want_t=None):
        """cmd's replies agree, times within two seconds of each other, and
        bitcached's within one of want_t (a list), when given."""
        mc, bc = self.both(cmd)
        (mm, mt), (bm, bt) = times(mc), times(bc)
        ok = mm == bm and len(mt) == len(bt) and \
            all(abs(a - b) <= 2 for a, b in zip(mt, bt))
        if ok and want_t is not None:
            ok = len(bt) == len(want_t) and \
                all(abs(a - b) <= 1 for a, b in zip(bt, want_t))
        if not ok:
            self.fails += 1
            print("FAIL %r:\n  memcached: %r\n  bitcached: %r (want times %r)"
                  % (cmd, mc, bc, want_t))
        return bc

    def ours(self, cmd, want):
        """Only bitcached's reply is checked (memcached's is shown); want is
        a pattern."""
        mc, bc = self.both(cmd)
        if not re.fullmatch(want, bc):
            self.fails += 1
            print("FAIL %r: bitcached %r, want %r (memcached %r)" % (cmd, bc, want, mc))


def metadump_la(sock, key):
    sock.sendall(b"lru_crawler metadump all\r\n")
    data, _ = bcserver.recv_until(sock, (b"END\r\n",))
    m = re.search(rb"^key=" + re.escape(key) + rb" .*?la=(\d+)", data, re.M)
    if m is None:
        print("no %r in metadump: %r" % (key, data))
    return int(m.group(1)) if m else None


def main():
    bc = bcserver.binary()
    mc = bcserver.memcached_binary()
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"])
    sut = bcserver.Server(bc)
    try:
        ref.start()
        sut.start()
        p = Pair(ref, sut)
        t0 = int(time.time())
        for k in (b"a", b"b", b"c", b"d", b"e", b"f", b"g"):
            p.same(b"set %s 0 0 1\r\n1\r\n" % k)
        p.same(b"get b\r\n")             # read once: fetched, time kept
        p.same(b"mg g h l\r\n", [0])     # just written
        p.same(b"me g\r\n", [0])
        time.sleep(PAUSE)
        late = int(time.time()) - t0
        p.same(b"mg a h l u\r\n", [late])   # u: no read counted
        p.same(b"mg a h l u\r\n", [late])
        p.same(b"mg a l h\r\n", [late])     # first read: h0, time kept
        p.same(b"mg a h l\r\n", [late])     # h1; this read moves the time
        p.same(b"mg b h l\r\n", [late])     # read at t0 did not move it
        p.same(b"me d\r\n", [late])         # me is no read
        p.same(b"me d\r\n", [late])
        p.same(b"touch e 0\r\n")            # a touch is a read
        p.same(b"mg e h l\r\n", [late])
        p.same(b"get c\r\n")
        p.same(b"mg c h l v\r\n", [late])
        p.same(b"set g 0 0 1\r\ny\r\n")     # a write starts over
        p.same(b"mg g h l\r\n", [0])
        p.same(b"ma d\r\n")                 # so does incr
        p.same(b"mg d l h s\r\n", [0])
        # f was only written: metadump's la is its unix time
        la = [metadump_la(s, b"f") for s in p.socks]
        if None in la or abs(la[0] - la[1]) > 2 or abs(la[1] - t0) > 1:
            p.fails += 1
            print("FAIL metadump la of f: memcached %r, bitcached %r, set at %d"
                  % (la[0], la[1], t0))
        # stats items: the class's age is its least recently accessed
        # item's (f's); memcached's is its cold tail's, wherever its LRU
        # thread has moved the items, so bitcached's alone is checked
        items = exchange(p.socks[1], b"stats items\r\n")
        ages = [int(a) for a in re.findall(rb"STAT items:\d+:age (\d+)", items)]
        if len(ages) != 1 or abs(ages[0] - late) > 1:
            p.fails += 1
            print("FAIL stats items age: %r, want %d" % (ages, late))
        # Reads that moved the time (under a second ago, against the
        # pause): memcached may do it a moment later (from its LRU thread),
        # bitcached does it at once.
        p.ours(b"mg a h l\r\n", rb"HD h1 l[01]\r\n")
        p.ours(b"mg b h l\r\n", rb"HD h1 l[01]\r\n")
        p.ours(b"mg c h l\r\n", rb"HD h1 l[01]\r\n")
        print("compare atime: %d failures" % p.fails)
        return 1 if p.fails else 0
    finally:
        ref.close()
        sut.close()


if __name__ == "__main__":
    sys.exit(main())
