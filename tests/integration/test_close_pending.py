#!/usr/bin/env python3
# test_close_pending.py - a client that pipelines writes with noreply and
# closes at once (fire and forget) has every one of them run, as memcached
# runs all it read before it sees the end, in every sync mode, also when
# its connection waits meanwhile: under --sync=always for the commit of
# its earlier writes, and at the roll-overs that 64 KiB segments bring
# every few writes (write_parks grows). Before, a connection that read the
# end while it waited was closed with the rest of its requests unrun.
# Every connection is closed in the end (curr_connections back to one).
#
# Environment: BITCACHED.
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

CONNS = 6
SETS = 300
VALUE = b"x" * 3000


def count_stored(srv):
    s = srv.connect(timeout=30)
    got = 0
    for c in range(CONNS):
        for i in range(0, SETS, 100):
            keys = b" ".join(b"f%d_%d" % (c, j)
                             for j in range(i, min(SETS, i + 100)))
            s.sendall(b"get " + keys + b"\r\n")
            data, _ = bcserver.recv_until(s, [b"END\r\n"])
            got += data.count(b"VALUE ")
    s.close()
    return got


def run(binary, mode, check):
    srv = bcserver.Server(binary, args=["--sync=" + mode, "-t", "2",
                                        "--segment-size=64k"])
    srv.start()
    try:
        conns = []
        for c in range(CONNS):
            s = srv.connect(timeout=30)
            s.sendall(b"".join(b"set f%d_%d 0 0 %d noreply\r\n%s\r\n" % (
                c, i, len(VALUE), VALUE) for i in range(SETS)))
            conns.append(s)
        for s in conns:
            s.close()
        deadline = time.monotonic() + 30
        got = 0
        while time.monotonic() < deadline:
            got = count_stored(srv)
            if got == CONNS * SETS:
                break
            time.sleep(0.2)
        check("%s: every set of the closed connections ran (%d of %d)"
              % (mode, got, CONNS * SETS), got == CONNS * SETS)
        st = srv.stats(b"storage")
        check("%s: writes parked meanwhile (write_parks %s)"
              % (mode, st.get("write_parks")),
              int(st.get("write_parks", "0")) > 0)
        curr = None
        while time.monotonic() < deadline:
            curr = srv.stats().get("curr_connections")
            if curr == "1":
                break
            time.sleep(0.1)
        check("%s: the closed connections are gone (curr_connections %s)"
              % (mode, curr), curr == "1")
        check("%s: the server lives" % mode, srv.alive())
    finally:
        srv.close()


def main():
    binary = bcserver.binary()
    check = bcserver.check
    for mode in ("always", "interval", "never"):
        run(binary, mode, check)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
