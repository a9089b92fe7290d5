#!/usr/bin/env python3
"""test_touch_head.py - a request that needs an item but not its value
reads its record's header and key, not the value (issue 16): with the
segments' pages dropped from the page cache, a text touch, a binary touch,
an mg without v and an mg with T without v of a 1 MiB value each read
about a page from disk (/proc/PID/io read_bytes), where reading the value
would read a megabyte; a gat of another such value (which needs it) reads
the whole record, so the pages were really gone. The touches take effect
(the new TTL read back) and the values stay right. Runs with both cold
read engines. A verified value is then sent from a mapping of its
segment, and `stats storage` shows the mappings within their budget.
Skips where /proc/PID/io is not readable or the data directory sits on a
file system without a block device.
"""
import os
import struct
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bcserver  # noqa: E402
import test_read_around as ra  # noqa: E402

VLEN = 1 << 20
# a header and key read is a page, two when it straddles one; a value
# read would be 256 pages
HEAD_MAX = 4 * 4096
check = bcserver.Checks()


def key(i):
    return b"big:%02d" % i


def value(i):
    return bytes([0x41 + i]) * VLEN


def bin_touch(k, exptime, opaque):
    extras = struct.pack(">I", exptime)
    return struct.pack(">BBHBBHIIQ", 0x80, 0x1C, len(k), len(extras), 0, 0,
                       len(k) + len(extras), opaque, 0) + extras + k


class Conn:
    """A socket with a read buffer: lines and exact byte counts."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("closed after %r" % self.buf[-80:])
        self.buf += chunk

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def sendall(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


def maintenance_done(srv):
    """Wait for a whole pass of the store's maintenance thread from now on
    (its passes start at most a second apart; lru_maintainer_juggles
    counts the starts, so two more starts enclose one whole pass)."""
    def passes():
        return int(srv.stats().get("lru_maintainer_juggles", "0"))
    start = passes()
    deadline = time.monotonic() + 30
    while passes() < start + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    check(passes() >= start + 2, "a maintenance pass ran")


def bin_reply(conn):
    hdr = conn.exact(24)
    _m, op, _kl, _el, _dt, status, blen, opaque, _cas = struct.unpack(
        ">BBHBBHIIQ", hdr)
    body = conn.exact(blen) if blen else b""
    return op, status, opaque, body


def run(binary, engine):
    srv = bcserver.Server(binary, args=["-t", "2", "--sync=never", "-I", "2m",
                                        "--io-engine=" + engine])
    try:
        if not ra.on_block_device(srv.tmp):
            bcserver.skip("%s is not on a block device" % srv.tmp)
        srv.start()
        try:
            ra.read_bytes(srv.proc.pid)
        except OSError as e:
            bcserver.skip("/proc/PID/io not readable: %s" % e)
        pid = srv.proc.pid
        sock = Conn(srv.connect(timeout=30))
        for i in range(6):
            sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key(i), VLEN,
                                                      value(i)))
            check(sock.line() == b"STORED\r\n", "set %s" % key(i).decode())
        cas = {}
        for i in (2, 3):
            sock.sendall(b"mg %s c\r\n" % key(i))
            cas[i] = sock.line().split()[1]
        # A shard given two of the values rolls over, and the maintenance
        # thread writes the closed segment's hint, reading its records:
        # let it finish before the pages are dropped, else its reads land
        # in a measurement below when it runs late (seen under load).
        maintenance_done(srv)
        bcserver.drop_cache(srv.data)

        def cost(what, send, want):
            before = ra.read_bytes(pid)
            got = send()
            spent = ra.read_bytes(pid) - before
            print("--io-engine=%s: %s of a cold %d-byte value: %d bytes read"
                  % (engine, what, VLEN, spent))
            check(got == want, "%s answered %r" % (what, got))
            return spent

        def touch():
            sock.sendall(b"touch %s 100\r\n" % key(0))
            return sock.line()

        bsock = Conn(srv.connect(timeout=30))  # binary: a connection of its own

        def btouch():
            bsock.sendall(bin_touch(key(1), 200, 7))
            return bin_reply(bsock)[:3]

        def mg():
            sock.sendall(b"mg %s s c f\r\n" % key(2))
            return sock.line()

        def mg_t():
            sock.sendall(b"mg %s T300 c\r\n" % key(3))
            return sock.line()

        for what, fn, want in (
                ("touch", touch, b"TOUCHED\r\n"),
                ("binary touch", btouch, (0x1C, 0, 7)),
                ("mg without v", mg, b"HD s%d %s f0\r\n" % (VLEN, cas[2])),
                ("mg T without v", mg_t, b"HD %s\r\n" % cas[3])):
            spent = cost(what, fn, want)
            check(0 < spent <= HEAD_MAX,
                  "%s read %d bytes (at most %d)" % (what, spent, HEAD_MAX))

        def gat():
            sock.sendall(b"gat 100 %s\r\n" % key(4))
            want = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key(4), VLEN,
                                                        value(4))
            return b"right value" if sock.exact(len(want)) == want \
                else b"wrong value"

        spent = cost("gat", gat, b"right value")
        check(spent >= VLEN, "a gat reads the whole value (%d bytes): the "
              "pages were dropped" % spent)
        # the touches took: TTLs read back, values intact
        for i, ttl in ((0, 100), (1, 200), (3, 300), (4, 100)):
            sock.sendall(b"mg %s t v\r\n" % key(i))
            hdr = sock.line()
            t = int(hdr.split()[2][1:])
            body = sock.exact(VLEN + 2)
            check(ttl - 10 <= t <= ttl and body[:-2] == value(i),
                  "%s: ttl %d (want %d), value intact" % (key(i).decode(), t,
                                                          ttl))
        # a verified value is sent from a mapping of its segment, within
        # the mapping budget (a quarter of vm.max_map_count)
        for _ in range(2):
            sock.sendall(b"get %s\r\n" % key(5))
            want = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key(5), VLEN,
                                                        value(5))
            check(sock.exact(len(want)) == want, "get of a large value")
        sock.sendall(b"stats storage\r\n")
        st = {}
        while True:
            ln = sock.line()
            if ln == b"END\r\n":
                break
            p = ln.split()
            st[p[1].decode()] = p[2].decode()
        with open("/proc/sys/vm/max_map_count") as f:
            budget = int(f.read()) // 4
        check(st.get("segments_map_budget") == str(budget) and
              1 <= int(st.get("segments_mapped", "0")) <= budget,
              "stats storage: %s of %s segments mapped (budget %d)"
              % (st.get("segments_mapped"), st.get("segments_map_budget"),
                 budget))
        sock.close()
        bsock.close()
    finally:
        srv.close()


def main():
    binary = bcserver.binary()
    for engine in ("uring", "threads"):
        run(binary, engine)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
