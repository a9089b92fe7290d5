#!/usr/bin/env python3
# test_compare_counters.py - differential test of what `stats` counts:
# Debian's memcached ($MEMCACHED) and the server under test ($BITCACHED)
# get the same request sequences (text, meta and binary), each case on
# its own keys and connection; the change of each of memcached's request
# counters over the case (cmd_get, get_hits, get_misses, get_expired,
# get_flushed, cmd_set, total_items, the incr/decr/cas/touch/delete
# hits and misses, cmd_touch, cmd_flush, cmd_meta) must be the same on
# both, and so must the replies, cas values masked. A set whose data
# block is not ended by CRLF counts (memcached made its item first).
import os
import re
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = bcserver.memcached_binary()
COUNTERS = ("cmd_get", "get_hits", "get_misses", "get_expired", "get_flushed",
            "cmd_set", "total_items", "delete_hits", "delete_misses",
            "incr_hits", "incr_misses", "decr_hits", "decr_misses",
            "cas_hits", "cas_misses", "cas_badval", "cmd_touch",
            "touch_hits", "touch_misses", "cmd_flush", "cmd_meta")
CAS = re.compile(rb"(cas=| c|^VALUE \S+ \d+ \d+ )(\d+)", re.M)


def b(op, key=b"", extras=b"", value=b"", cas=0):
    """A binary request."""
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                       len(body), 0, cas) + body


def arith(op, key, delta, initial, exp):
    return b(op, key, struct.pack(">QQI", delta, initial, exp))


CASES = [
    ("get hit miss", b"set {k} 0 0 1\r\n1\r\nget {k} {k}x\r\ngets {k}\r\n"),
    ("incr decr", b"set {k} 0 0 2\r\n10\r\nincr {k} 5\r\ndecr {k} 1\r\n"
                  b"incr {k}x 1\r\ndecr {k}x 1\r\n"),
    ("touch gat", b"set {k} 0 0 1\r\n1\r\ntouch {k} 10\r\ntouch {k}x 10\r\n"
                  b"gat 10 {k} {k}x\r\ngats 10 {k}\r\n"),
    ("cas", b"set {k} 0 0 1\r\n1\r\ncas {k} 0 0 1 1\r\n2\r\n"
            b"cas {k}x 0 0 1 1\r\n2\r\n"),
    ("delete", b"set {k} 0 0 1\r\n1\r\ndelete {k}\r\ndelete {k}\r\n"),
    ("store modes", b"add {k} 0 0 1\r\n1\r\nadd {k} 0 0 1\r\n1\r\n"
                    b"replace {k}x 0 0 1\r\n1\r\nappend {k} 0 0 1\r\n2\r\n"
                    b"prepend {k}x 0 0 1\r\n2\r\n"),
    ("expired", b"set {k} 0 -1 1\r\n1\r\nget {k}\r\n"),
    ("meta basics", b"ms {k} 1\r\n1\r\nmg {k} v\r\nmg {k}x v\r\nmn\r\n"
                    b"md {k}\r\nmd {k}\r\nma {k}x\r\n"),
    ("me", b"ms {k} 1\r\n1\r\nme {k}\r\nme {k}x\r\n"),
    ("me exp", b"ms {k} 1 T100\r\n1\r\nme {k}\r\n"),
    ("mg N makes", b"mg {k} N30 v\r\nmg {k} v\r\n"),
    ("mg N T makes", b"mg {k} N30 T30\r\n"),
    ("ma N makes", b"ma {k} N0 J5 v\r\nma {k} N0 v\r\n"),
    ("ma hit miss", b"ms {k} 1\r\n5\r\nma {k}\r\nma {k} MD\r\nma {k}x\r\n"),
    ("mg T touch", b"ms {k} 1\r\n1\r\nmg {k} T30 v\r\nmg {k}x T30\r\n"),
    ("binary get", lambda k: b(0x01, k, struct.pack(">II", 0, 0), b"v") +
     b(0x00, k) + b(0x00, k + b"x") + b(0x0d, k) + b(0x0a)),
    ("binary touch gat", lambda k: b(0x01, k, struct.pack(">II", 0, 0),
                                     b"v") +
     b(0x1c, k, struct.pack(">I", 10)) + b(0x1c, k + b"x",
                                           struct.pack(">I", 10)) +
     b(0x1d, k, struct.pack(">I", 10)) + b(0x0a)),
    # an item a binary incr/decr makes from its initial value counts in
    # total_items, not as an incr/decr hit
    ("binary incr makes", lambda k: arith(0x05, k, 1, 5, 0) +
     arith(0x05, k, 1, 5, 0) + arith(0x06, k + b"d", 1, 5, 0) +
     arith(0x05, k + b"x", 1, 5, 0xffffffff) + b(0x0a)),
    # made with a cas given, and with an expiry already past
    ("binary incr makes cas", lambda k: b(0x05, k, struct.pack(
        ">QQI", 1, 7, 0), cas=12345) + b(0x06, k + b"p", struct.pack(
            ">QQI", 1, 7, 2592001), cas=0) + b(0x0a)),
    # a result longer than the value it replaces is a new item
    # (total_items); one that fits is rewritten in place
    ("incr grows", b"set {k} 0 0 1\r\n9\r\nincr {k} 1\r\nincr {k} 1\r\n"),
    ("binary incr grows", lambda k: b(0x01, k, struct.pack(">II", 0, 0),
                                      b"9") + arith(0x05, k, 1, 0, 0) +
     b(0x0a)),
    ("ma grows", b"ms {k} 1\r\n9\r\nma {k}\r\nma {k} MD D20\r\n"
                 b"ma {k} N0 J99\r\n"),
    # memcached makes the item before it reads the block: a block not
    # ended by CRLF counts as a set
    ("bad data chunk", b"set {k} 0 0 1\r\nabc\r\nappend {k} 0 0 2\r\nxyz\r\n"
                       b"cas {k} 0 0 1 5\r\nab\r\nadd {k} 0 0 1\r\n1\r\n"),
    ("ms bad data chunk", b"ms {k} 1\r\nabc\r\nms {k} 2 MA\r\nxyz\r\n"),
]


def talk(port, data):
    """Send data, read until the server has been quiet for 0.3 s."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(data)
        out, _ = bcserver.recv_until(s, [], quiet=0.3)
    return out


def run(cases):
    check = bcserver.Checks(verbose=False)
    ref = bcserver.Server(MEMCACHED, "memcached", ["-U", "0"])
    ours = bcserver.Server(BITCACHED, "bitcached")
    ref.start()
    ours.start()
    try:
        for i, (name, seq) in enumerate(cases):
            key = b"cnt%d_%d" % (i, time.time_ns() % 1000000)
            data = seq(key) if callable(seq) else seq.replace(b"{k}", key)
            got = {}
            for srv in (ref, ours):
                before = bcserver.stats_at(srv.port)
                reply = talk(srv.port, data)
                after = bcserver.stats_at(srv.port)
                deltas = {c: int(after[c]) - int(before[c])
                          for c in COUNTERS if c in after and c in before}
                got[srv.kind] = (CAS.sub(rb"\1N", reply)
                                 if not callable(seq) else reply[:0], deltas)
            (wr, wd), (gr, gd) = got["memcached"], got["bitcached"]
            check.that("%s: replies" % name, wr == gr,
                       "memcached %r, bitcached %r" % (wr[:300], gr[:300]))
            diff = ["%s %+d vs %+d" % (c, wd[c], gd.get(c, 0))
                    for c in sorted(wd) if wd[c] != gd.get(c, 0)]
            check.that("%s: counters" % name, not diff,
                       "memcached vs bitcached: " + ", ".join(diff))
    finally:
        ref.close()
        ours.close()
    print("%d cases compared" % len(cases))
    return check.finish()


def main(cases=CASES):
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    return run(cases)


if __name__ == "__main__":
    sys.exit(main())
