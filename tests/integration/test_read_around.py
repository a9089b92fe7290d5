#!/usr/bin/env python3
"""test_read_around.py - a get reads its record from disk, not the pages
around it: with the data set's pages dropped from the page cache (the test
writes the segments out and advises them away, so the data set is larger
than the cache it may use), random gets of 4 KB values read at most twice
the record size from disk per get (/proc/PID/io read_bytes), where the
kernel's default read-ahead would read tens of KB (or MBs) per get. Every
value read back is checked. Skips where /proc/PID/io is not readable or the
data directory sits on a file system without a block device (tmpfs counts
no reads).
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

NKEYS = 12000
NGETS = 1500
VLEN = 4096
KEY = b"cold:%08d"
REC = 44 + len(KEY % 0) + VLEN  # record header, key, value


check = bcserver.Checks(verbose=False)
recv_n = bcserver.recv_n
drop_cache = bcserver.drop_cache


def value(i):
    return (b"%08d" % i) * (VLEN // 8)


def read_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return -1


def fill(sock):
    batch = 200
    for start in range(0, NKEYS, batch):
        end = min(NKEYS, start + batch)
        sock.sendall(b"".join(b"set " + KEY % i + b" 0 0 %d\r\n" % VLEN +
                              value(i) + b"\r\n" for i in range(start, end)))
        recv_n(sock, len(b"STORED\r\n") * (end - start))


def on_block_device(path):
    with open("/proc/mounts") as f:
        mounts = [line.split() for line in f]
    best, dev = "", ""
    real = os.path.realpath(path)
    for m in mounts:
        mp = m[1]
        if (real == mp or real.startswith(mp.rstrip("/") + "/")) and \
                len(mp) >= len(best):
            best, dev = mp, m[0]
    return dev.startswith("/dev/")


def main():
    binary = bcserver.binary()
    for engine in ("uring", "threads"):
        run(binary, engine)
    return check.finish()


def io_engine(srv):
    return srv.stats(b"storage").get("io_engine")


def run(binary, engine):
    """Cold gets with the server's cold reads through engine."""
    srv = bcserver.Server(binary, args=["-t", "2", "--sync=never",
                                        "--io-engine=" + engine])
    try:
        if not on_block_device(srv.tmp):
            bcserver.skip("%s is not on a block device" % srv.tmp)
        srv.start()
        try:
            read_bytes(srv.proc.pid)
        except OSError as e:
            bcserver.skip("/proc/PID/io not readable: %s" % e)
        sock = srv.connect(timeout=30)
        fill(sock)
        datadir = os.path.join(srv.tmp, "data")
        drop_cache(datadir)

        keys = random.Random(16).sample(range(NKEYS), NGETS)
        before = read_bytes(srv.proc.pid)
        bad = 0
        for i in keys:
            sock.sendall(b"get " + KEY % i + b"\r\n")
            want = b"VALUE " + KEY % i + b" 0 %d\r\n" % VLEN + value(i) + \
                b"\r\nEND\r\n"
            got = recv_n(sock, len(want))
            if got != want:
                bad += 1
        after = read_bytes(srv.proc.pid)
        per_get = (after - before) / NGETS
        print("--io-engine=%s: %d cold gets of %d-byte records: %.0f bytes "
              "read per get" % (engine, NGETS, REC, per_get))
        want = engine
        if engine == "uring" and not bcserver.uring_available():
            want = "threads"
        check(io_engine(srv) == want, "cold reads not through %s" % want)
        check(bad == 0, "%d gets returned a wrong value" % bad)
        check(after - before > 0,
              "no bytes read from disk: the cache was not dropped")
        check(per_get <= 2 * REC,
              "%.0f bytes read per get, over twice the %d-byte record"
              % (per_get, REC))
        sock.close()
    finally:
        srv.close()


if __name__ == "__main__":
    sys.exit(main())
