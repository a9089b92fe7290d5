#!/usr/bin/env python3
"""test_direct_read.py - cold gets of a data set larger than the server's
memory cgroup (issue 16): the server runs in a memory cgroup of 48 MB
holding about 82 MB of 4 KB values, so the page cache cannot keep them and
the worker's ring reads the evicted records with O_DIRECT. Checks that
every value read back is right, that bytes read from disk per get stay
within twice the record size (/proc/PID/io read_bytes), and that the
server did read through O_DIRECT descriptors (/proc/PID/fdinfo flags and
cold_reads_direct), and that a get sent while another waits for its read
is answered after it.
Skips where no memory cgroup is writable (v1 or v2), /proc/PID/io is not
readable, the data directory is not on a block device, io_uring is
refused (the I/O threads read buffered), or in a sanitizer build (its
shadow memory would not fit the cgroup).
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402
from test_read_around import (KEY, REC, VLEN, fill, on_block_device,  # noqa
                              read_bytes, recv_n, value)

import test_read_around  # noqa: E402

NKEYS = 20000
NWARM = 3000
NGETS = 3000
LIMIT = 48 << 20
O_DIRECT = 0o40000  # x86, arm64 differ: read from the fcntl module below

checks = bcserver.Checks()


def o_direct():
    import fcntl
    return getattr(os, "O_DIRECT", getattr(fcntl, "O_DIRECT", O_DIRECT))


def make_cgroup():
    """A memory cgroup of LIMIT bytes: (dir, procs file), or skip."""
    name = "bc-direct-test.%d" % os.getpid()
    v1 = "/sys/fs/cgroup/memory"
    v2 = "/sys/fs/cgroup"
    try:
        if os.path.isdir(v1) and os.access(v1, os.W_OK):
            d = os.path.join(v1, name)
            os.mkdir(d)
            with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
                f.write(str(LIMIT))
            return d
        ctl = os.path.join(v2, "cgroup.subtree_control")
        if os.path.exists(ctl) and os.access(ctl, os.W_OK):
            with open(ctl) as f:
                if "memory" not in f.read().split():
                    bcserver.skip("no memory controller in %s" % ctl)
            d = os.path.join(v2, name)
            os.mkdir(d)
            with open(os.path.join(d, "memory.max"), "w") as f:
                f.write(str(LIMIT))
            return d
    except OSError as e:
        bcserver.skip("no writable memory cgroup: %s" % e)
    bcserver.skip("no writable memory cgroup")


def remove_cgroup(d):
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except OSError:
            time.sleep(0.1)


def direct_fds(pid):
    """How many of pid's descriptors are open with O_DIRECT."""
    n = 0
    flag = o_direct()
    base = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(base):
        try:
            with open(os.path.join(base, fd)) as f:
                for line in f:
                    if line.startswith("flags:"):
                        if int(line.split()[1], 8) & flag:
                            n += 1
                        break
        except OSError:
            pass
    return n


def split_pairs(sock, rnd, n):
    """n pairs of gets of cold keys, each sent in two writes so that the
    second often arrives while the first waits for its read (read ahead
    into the buffer, its event left registered); both answered, in
    order. Returns how many pairs were answered wrong."""
    bad = 0
    for _ in range(n):
        a, b = rnd.randrange(NKEYS), rnd.randrange(NKEYS)
        want = b"".join(b"VALUE " + KEY % i + b" 0 %d\r\n" % VLEN +
                        value(i) + b"\r\nEND\r\n" for i in (a, b))
        sock.sendall(b"get " + KEY % a + b"\r\n")
        sock.sendall(b"get " + KEY % b + b"\r\n")
        if recv_n(sock, len(want)) != want:
            bad += 1
    return bad


def gets(sock, keys):
    bad = 0
    for i in keys:
        sock.sendall(b"get " + KEY % i + b"\r\n")
        want = b"VALUE " + KEY % i + b" 0 %d\r\n" % VLEN + value(i) + \
            b"\r\nEND\r\n"
        if recv_n(sock, len(want)) != want:
            bad += 1
    return bad


def main():
    binary = bcserver.binary()
    if not bcserver.uring_available():
        bcserver.skip("io_uring refused here: cold reads go to I/O threads")
    srv = bcserver.Server(binary, args=["-t", "2", "--sync=never",
                                        "--io-engine=uring"])
    if not on_block_device(srv.tmp):
        bcserver.skip("%s is not on a block device" % srv.tmp)
    cg = None
    try:
        srv.start()
        if bcserver.sanitized(srv.proc.pid):
            bcserver.skip("a sanitizer's shadow memory does not fit the "
                          "cgroup")
        cg = make_cgroup()
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(srv.proc.pid))
        try:
            read_bytes(srv.proc.pid)
        except OSError as e:
            bcserver.skip("/proc/PID/io not readable: %s" % e)
        sock = srv.connect(timeout=60)
        test_read_around.NKEYS = NKEYS
        fill(sock)
        rnd = random.Random(1616)
        bad = gets(sock, [rnd.randrange(NKEYS) for _ in range(NWARM)])
        before = read_bytes(srv.proc.pid)
        bad += gets(sock, [rnd.randrange(NKEYS) for _ in range(NGETS)])
        after = read_bytes(srv.proc.pid)
        per_get = (after - before) / NGETS
        ndirect = direct_fds(srv.proc.pid)
        st = bcserver.stats_on(sock, b"storage")
        print("%d cold gets of %d-byte records in a %d MB cgroup: %.0f bytes "
              "read per get, %d O_DIRECT descriptors"
              % (NGETS, REC, LIMIT >> 20, per_get, ndirect))
        checks(bad == 0, "every value right (%d wrong)" % bad)
        checks(after - before > 0,
               "bytes read from disk (the data set is over the cgroup)")
        checks(per_get <= 2 * REC,
               "%.0f bytes read per get, at most twice the %d-byte record"
               % (per_get, REC))
        checks(ndirect > 0, "reads through O_DIRECT descriptors (%d open)"
               % ndirect)
        checks(int(st.get("cold_reads_direct", "0")) > 0,
               "cold_reads_direct counts them (%s of %s cold reads)"
               % (st.get("cold_reads_direct"), st.get("cold_reads")))
        bad = split_pairs(sock, rnd, 300)
        checks(bad == 0, "gets sent while another waits for its read are "
               "answered in order (%d of 300 pairs wrong)" % bad)
        sock.close()
    finally:
        srv.close()
        if cg is not None:
            remove_cgroup(cg)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
