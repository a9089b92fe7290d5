#!/usr/bin/env python3
# test_bin_stat_groups.py - the binary protocol's stat "items" and "slabs"
# against Debian's memcached ($MEMCACHED): after the same stores, both
# servers send the same stat names, the same item counts per size class
# and the same chunk sizes, as clients that read per-class figures over the
# binary protocol (spymemcached's getStats("items")) see them. With more
# keys than one batch of the walk that counts them, a packet sent behind
# the stat request is answered after the stat's closing packet. Python 3
# stdlib and tests/integration/bcserver.py.
import os
import shutil
import socket
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = os.environ.get("MEMCACHED") or shutil.which("memcached") or "/usr/bin/memcached"
SET, NOOP, STAT = 0x01, 0x0A, 0x10


def packet(op, key=b"", ext=b"", val=b""):
    body = ext + key + val
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(ext), 0, 0,
                       len(body), 0, 0) + body


class Reader:
    """Response packets off a socket, in order."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def packet(self):
        """(opcode, status, key, value) of the next packet."""
        self._need(24)
        _, op, klen, elen, _, status, blen, _, _ = struct.unpack(">BBHBBHIIQ", self.buf[:24])
        self._need(24 + blen)
        body = self.buf[24:24 + blen]
        self.buf = self.buf[24 + blen:]
        return op, status, body[elen:elen + klen].decode(), body[elen + klen:].decode()

    def stats(self):
        """The packets of one stat reply, up to its empty closing packet
        (other replies before it skipped): [(status, key, value)]."""
        out = []
        while True:
            op, status, key, val = self.packet()
            if op != STAT:
                continue
            out.append((status, key, val))
            if status != 0 or not key:
                return out


def groups(srv):
    """{group: {name: value}} of stat items and slabs after the stores."""
    sock = srv.connect()
    try:
        for i in range(20):
            sock.sendall(packet(SET, b"small%d" % i, struct.pack(">II", 0, 0), b"v" * 10))
        for i in range(5):
            sock.sendall(packet(SET, b"mid%d" % i, struct.pack(">II", 0, 0), b"m" * 3000))
        sock.sendall(b"".join(packet(SET, b"many%d" % i, struct.pack(">II", 0, 0), b"v" * 100)
                              for i in range(5000)))
        sock.sendall(packet(NOOP))
        res = {}
        r = Reader(sock)
        for group in (b"items", b"slabs"):
            sock.sendall(packet(STAT, group) + packet(NOOP))
            res[group.decode()] = {k: v for st, k, v in r.stats() if k}
            res[group.decode() + " then"] = r.packet()[0]
        return res
    finally:
        sock.close()


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    ref = bcserver.Server(MEMCACHED, "memcached")
    ours = bcserver.Server(BITCACHED, "bitcached")
    try:
        ref.start()
        ours.start()
        want = groups(ref)
        got = groups(ours)
    finally:
        ref.close()
        ours.close()
    check = bcserver.check
    for group in ("items", "slabs"):
        check("stat %s: memcached sends stats" % group, len(want[group]) > 0, "none")
        check("stat %s: the same names" % group, sorted(got[group]) == sorted(want[group]),
              "missing %s, extra %s" % (sorted(set(want[group]) - set(got[group]))[:5],
                                        sorted(set(got[group]) - set(want[group]))[:5]))
    for group in ("items", "slabs"):
        check("stat %s: the packet behind it is answered after it" % group,
              got[group + " then"] == NOOP, "opcode 0x%02x" % got[group + " then"])
    # The keys stored, by class: memcached's classes of them in order of
    # size hold the 20 small, 5000 100-byte and 5 3000-byte values (its own
    # figure is not used: it has counted 2 more in a sanitizer run).
    classes = sorted((int(k.split(":")[1]) for k in want["items"]
                      if k.endswith(":number")))
    counts = {"items:%d:number" % c: str(n) for c, n in zip(classes, (20, 5000, 5))}
    check("stat items: items per class %s" % counts,
          {k: got["items"].get(k) for k in counts} == counts,
          "bitcached %s" % {k: got["items"].get(k) for k in counts})
    sizes = {k: v for k, v in want["slabs"].items()
             if k.endswith(":chunk_size") or k.endswith(":used_chunks")}
    check("stat slabs: chunk sizes and used chunks %s" % sizes,
          {k: got["slabs"].get(k) for k in sizes} == sizes,
          "bitcached %s" % {k: got["slabs"].get(k) for k in sizes})
    return bcserver._run.finish()


if __name__ == "__main__":
    sys.exit(main())
