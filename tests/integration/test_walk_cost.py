#!/usr/bin/env python3
"""test_walk_cost.py - what the walks over every key read from disk.
`stats items` and `stats slabs` add up the sizes and access times the
keydir holds and read no record per key: with 100,000 keys they take a
handful of read system calls (/proc/PID/io syscr), where a walk that read
each key from disk took one per key (2.6 s for a million keys, past the
timeout of libmemcached's memcstat on a loaded machine); their per-class
numbers still count every live key. `stats cachedump` of a class and
`lru_crawler metadump` of a class list read only the keys they list: one
cachedump of an empty class read all 100,000, so memcdump, which asks for
each class in turn, took 17 s here.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
NKEYS = 100000


def syscr(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    return None


def stats(sock, group):
    sock.sendall(b"stats " + group + b"\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    out = {}
    for line in data.split(b"\r\n"):
        f = line.split(b" ")
        if len(f) == 3 and f[0] == b"STAT":
            out[f[1].decode()] = int(f[2])
    return out


def main():
    bc = os.environ.get("BITCACHED", "./bitcached")
    if not bcserver.executable(bc):
        bcserver.skip("BITCACHED not found: %s" % bc)
    srv = bcserver.Server(bc, args=["--shards", "4"])
    srv.start()
    try:
        if syscr(srv.proc.pid) is None:
            bcserver.skip("/proc/PID/io not readable here")
        s = srv.connect(timeout=60)
        for lo in range(0, NKEYS, 5000):
            s.sendall(b"".join(b"set item:%d 0 0 10 noreply\r\n0123456789\r\n"
                               % i for i in range(lo, lo + 5000)))
        s.sendall(b"mn\r\n")
        bcserver.recv_until(s, [b"MN\r\n"])
        for group in (b"items", b"slabs"):
            before = syscr(srv.proc.pid)
            t0 = time.monotonic()
            st = stats(s, group)
            secs = time.monotonic() - t0
            reads = syscr(srv.proc.pid) - before
            print("stats %s: %d read calls, %.3f s, %d keys"
                  % (group.decode(), reads, secs, NKEYS))
            check(reads < 1000, "stats %s reads no record per key (%d read "
                  "calls for %d keys)" % (group.decode(), reads, NKEYS))
            if group == b"items":
                number = sum(v for k, v in st.items()
                             if k.startswith("items:") and k.endswith(":number"))
            else:
                number = sum(v for k, v in st.items()
                             if k.endswith(":used_chunks"))
            check(number == NKEYS, "stats %s counts every key (%d of %d)"
                  % (group.decode(), number, NKEYS))
        for what, line, end in (
                (b"stats cachedump of an empty class",
                 b"stats cachedump 40 0\r\n", b"END\r\n"),
                (b"metadump of an empty class", b"lru_crawler metadump 40\r\n",
                 b"END\r\n")):
            before = syscr(srv.proc.pid)
            s.sendall(line)
            data, _ = bcserver.recv_until(s, [end])
            reads = syscr(srv.proc.pid) - before
            print("%s: %d read calls, %r" % (what.decode(), reads, data[:40]))
            check(reads < 1000, "%s reads no key (%d read calls for %d keys)"
                  % (what.decode(), reads, NKEYS))
        # the class that holds them: each key listed is read once
        before = syscr(srv.proc.pid)
        s.sendall(b"lru_crawler metadump 1\r\n")
        data, _ = bcserver.recv_until(s, [b"END\r\n"])
        reads = syscr(srv.proc.pid) - before
        listed = data.count(b"key=item")
        print("metadump of the keys' class: %d keys, %d read calls"
              % (listed, reads))
        check(listed == NKEYS, "metadump lists every key of its class")
        s.close()
    finally:
        srv.stop()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
