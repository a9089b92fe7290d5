#!/usr/bin/env python3
"""test_input_budget.py - --input-budget bounds the values announced and
still arriving on all connections together, the way memcached's -m bounds
the items it receives values into: a value that would pass it is answered
as memcached answers a value it has no memory for (text `SERVER_ERROR out
of memory storing object`, binary status 0x82 with body `Out of memory
allocating item`), its bytes are dropped as they come, and a set's old
value is dropped too (memcached unlinks it rather than keep stale data).
The budget comes back when a value is whole or its connection goes, and a
value alone is always admitted, whatever its size.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
OOM = b"SERVER_ERROR out of memory storing object\r\n"
BIG = 600 * 1024  # two of them pass a 1 MiB budget


def cmd(sock, data, ends=(b"\r\n",)):
    sock.sendall(data)
    return bcserver.recv_until(sock, list(ends))[0]


def own_stat(srv, name):
    st = srv.stats(b"bitcached")
    return int(st[name]) if name in st else None


def stat(srv, name):
    return int(srv.stats()[name])


def settle(srv, name, want, secs=5.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if own_stat(srv, name) == want:
            return True
        time.sleep(0.05)
    return own_stat(srv, name) == want


def bin_set(key, value, opcode=0x01):
    extras = struct.pack(">II", 0, 0)
    body = len(extras) + len(key) + len(value)
    hdr = struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                      body, 0xABCD, 0)
    return hdr + extras + key + value


def bin_reply(sock):
    hdr = bcserver.recv_n(sock, 24)
    magic, op, klen, elen, _, status, blen, opaque, _ = struct.unpack(
        ">BBHBBHIIQ", hdr)
    body = bcserver.recv_n(sock, blen) if blen else b""
    return op, status, body[elen + klen:], opaque


def text(bc):
    srv = bcserver.Server(bc, args=["--input-budget=1m"])
    srv.start()
    try:
        a, b, c = srv.connect(), srv.connect(), srv.connect()
        check(cmd(c, b"set old 0 0 3\r\nabc\r\n") == b"STORED\r\n", "old set")
        check(own_stat(srv, "input_budget") == 1 << 20, "input_budget shown")
        # a holds 600 KiB of the budget while its value arrives
        a.sendall(b"set a 0 0 %d\r\n" % BIG + b"x" * 1000)
        check(settle(srv, "input_bytes", len(b"set a 0 0 %d\r\n" % BIG) + BIG + 2),
              "the pending value holds its size")
        oom0 = stat(srv, "store_no_memory")
        # b's value would pass the budget: refused, and its bytes dropped
        # (answered once the value is all in, as memcached answers it)
        b.sendall(b"set old 0 0 %d\r\n" % BIG)
        time.sleep(0.1)
        b.sendall(b"y" * BIG + b"\r\n")
        check(bcserver.recv_until(b, [b"\r\n"])[0] == OOM,
              "a value past the budget gets memcached's out of memory")
        check(cmd(b, b"get old\r\n", (b"END\r\n",)) == b"END\r\n",
              "the value was dropped, and the refused set dropped the old one")
        check(stat(srv, "store_no_memory") == oom0 + 1, "store_no_memory counts it")
        check(own_stat(srv, "input_budget_refusals") == 1, "refusals counted")
        # a noreply set is refused silently, an ms in any mode answers
        b.sendall(b"set n 0 0 %d noreply\r\n" % BIG + b"z" * BIG + b"\r\n")
        b.sendall(b"ms k %d MA\r\n" % BIG)
        time.sleep(0.1)
        b.sendall(b"w" * BIG + b"\r\n")
        check(bcserver.recv_until(b, [b"\r\n"])[0] == OOM, "ms refused too")
        check(cmd(b, b"mn\r\n") == b"MN\r\n", "the noreply set said nothing")
        # small values that arrive whole take nothing
        check(cmd(b, b"set s 0 0 1\r\n1\r\n") == b"STORED\r\n", "small value stored")
        # a finishes: its share comes back, and b's big value goes in
        a.sendall(b"x" * (BIG - 1000) + b"\r\n")
        check(bcserver.recv_until(a, [b"\r\n"])[0] == b"STORED\r\n", "a stored")
        check(settle(srv, "input_bytes", 0), "the budget is back once whole")
        b.sendall(b"set b 0 0 %d\r\n" % BIG + b"y" * 1000)
        time.sleep(0.1)
        # a connection that goes mid-value gives its share back
        c.sendall(b"set c 0 0 %d\r\n" % BIG + b"c" * 10)
        time.sleep(0.1)
        c.sendall(b"c" * (BIG - 10) + b"\r\n")
        check(bcserver.recv_until(c, [b"\r\n"])[0] == OOM, "c refused while b holds")
        b.close()
        check(settle(srv, "input_bytes", 0), "a closed connection gives its share back")
        c.close()
        # one value alone is always admitted, past the budget
        d = srv.connect()
        huge = 1000 * 1024
        srv2 = bcserver.Server(bc, args=["--input-budget=64k", "-I", "2m"])
        srv2.start()
        try:
            e = srv2.connect()
            e.sendall(b"set h 0 0 %d\r\n" % huge)
            time.sleep(0.05)
            e.sendall(b"h" * huge + b"\r\n")
            check(bcserver.recv_until(e, [b"\r\n"])[0] == b"STORED\r\n",
                  "a value alone is admitted past the budget")
            e.close()
        finally:
            srv2.close()
        check(cmd(d, b"get a\r\n", (b"END\r\n",)).startswith(b"VALUE a 0 %d" % BIG),
              "a readable")
        d.close()
        a.close()
    finally:
        srv.close()


def binary(bc):
    srv = bcserver.Server(bc, args=["--input-budget=1m"])
    srv.start()
    try:
        a, b = srv.connect(), srv.connect()
        b.sendall(bin_set(b"old", b"abc"))
        check(bin_reply(b)[1] == 0, "old set")
        pkt = bin_set(b"a", b"x" * BIG)
        a.sendall(pkt[:5000])
        check(settle(srv, "input_bytes", len(pkt)), "the pending packet holds its size")
        pkt2 = bin_set(b"old", b"y" * BIG)
        b.sendall(pkt2[:40])
        time.sleep(0.1)
        b.sendall(pkt2[40:])
        op, status, body, opaque = bin_reply(b)
        check(status == 0x82 and body == b"Out of memory allocating item"
              and opaque == 0xABCD,
              "binary: ENOMEM and memcached's body (%#x %r)" % (status, body))
        # the value was swallowed: a get of the old key misses (unlinked)
        get = struct.pack(">BBHBBHIIQ", 0x80, 0x00, 3, 0, 0, 0, 3, 7, 0) + b"old"
        b.sendall(get)
        check(bin_reply(b)[1] == 0x01, "binary: the set dropped the old value")
        a.sendall(pkt[5000:])
        check(bin_reply(a)[1] == 0, "binary: a stored")
        check(settle(srv, "input_bytes", 0), "binary: the budget is back")
        a.close()
        b.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    text(bc)
    binary(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
