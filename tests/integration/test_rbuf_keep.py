#!/usr/bin/env python3
"""test_rbuf_keep.py - a connection's read buffer grown for large requests
(issue 16): it stays grown while the connection keeps sending them (no
realloc and second read per 64 KiB set), shrinks back after enough passes
without one, and what a worker keeps so is bounded (many connections that
each sent one large set do not all keep their buffers), while a buffer
grown for a 1 MiB value shrinks at once. `stats` read_buf_bytes counts
every connection's buffer (16 KiB when not grown).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
KIB = 1024
INITIAL = 16 * KIB  # a buffer not grown
KEPT_MAX = 4096 * KIB  # what one worker keeps at most
VALUE = b"v" * (64 * KIB)


def set_value(s, key, value):
    s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
    line, _ = bcserver.recv_until(s, [b"\r\n"])
    return line


def rbuf_bytes(st):
    """The stats connection's own buffer is a plain one."""
    return int(st.stats()["read_buf_bytes"]) - INITIAL


def main():
    srv = bcserver.Server(bcserver.binary(), args=["-t", "1"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        for i in range(4):
            check(set_value(s, b"k%d" % i, VALUE) == b"STORED\r\n",
                  "64 KiB set stored")
        kept = rbuf_bytes(srv)
        print("after four 64 KiB sets: %d bytes of read buffer" % kept)
        check(kept > 64 * KIB, "the grown buffer is kept (%d)" % kept)
        for i in range(80):
            s.sendall(b"get k0\r\n")
            bcserver.recv_until(s, [b"END\r\n"])
        cooled = rbuf_bytes(srv)
        print("after 80 gets: %d bytes" % cooled)
        check(cooled == INITIAL, "shrunk after passes without a large "
              "request (%d)" % cooled)

        big = b"b" * (1024 * KIB - 512)
        check(set_value(s, b"big", big) == b"STORED\r\n", "1 MiB set stored")
        after_big = rbuf_bytes(srv)
        check(after_big == INITIAL,
              "a 1 MiB buffer shrinks at once (%d)" % after_big)
        s.close()

        conns = [srv.connect(timeout=30) for _ in range(48)]
        for i, c in enumerate(conns):
            check(set_value(c, b"m%d" % i, VALUE) == b"STORED\r\n",
                  "64 KiB set stored")
        total = rbuf_bytes(srv)
        print("48 connections after one 64 KiB set each: %d bytes" % total)
        check(total <= KEPT_MAX + len(conns) * INITIAL,
              "kept buffers bounded per worker (%d)" % total)
        check(total > len(conns) * INITIAL, "some buffers kept (%d)" % total)
        for c in conns:
            c.close()
    finally:
        srv.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
