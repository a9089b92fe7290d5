#!/usr/bin/env python3
"""test_disk_limit.py - --disk-limit (issue 9): a steady writer fills far past
the limit and every set is STORED while the data directory stays within the
limit plus the documented slack (the segment each shard writes, its space
reserve, and what the evictor is behind by); and on a full file system (a
size-limited tmpfs, mounted when run as root, else skipped) writes fail with
a SERVER_ERROR, reads keep working, and space comes back without a restart
once keys are deleted; with --disk-limit below its size it never fills.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
VALUE = b"x" * 1000
MIB = 1024 * 1024


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def at_rest(path, bound, secs=30.0):
    """The directory's size once the evictor has brought it within bound
    (or after secs): a fixed pause after the writes is too short when a
    loaded machine holds the evictor back; polling costs nothing when it is
    done early, and the deadline only matters when it never is."""
    deadline = time.monotonic() + secs
    while True:
        n = du(path)
        if n <= bound or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def set_batch(sock, lo, hi):
    sock.sendall(b"".join(b"set k%d 0 0 %d\r\n%s\r\n" % (i, len(VALUE), VALUE)
                          for i in range(lo, hi)))
    data = b""
    while data.count(b"\r\n") < hi - lo:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk
    out = {}
    for line in data.split(b"\r\n")[:hi - lo]:
        out[line] = out.get(line, 0) + 1
    return out


def fill(sock, data, n):
    """Sets k0..k(n-1), 500 pipelined at a time, measuring the data
    directory every 2500: (its peak size, the count of each reply)."""
    peak, replies = 0, {}
    for lo in range(0, n, 500):
        for k, v in set_batch(sock, lo, lo + 500).items():
            replies[k] = replies.get(k, 0) + v
        if lo % 2500 == 0:
            peak = max(peak, du(data))
    return peak, replies


def cmd(sock, line):
    sock.sendall(line)
    return bcserver.recv_until(sock, [b"\r\n"])[0]


def bounded(bc):
    limit = 8 * MIB
    srv = bcserver.Server(bc, args=["--disk-limit", "8m", "--shards", "4"])
    srv.start()
    try:
        data = os.path.join(srv.tmp, "data")
        s = srv.connect(timeout=30)
        n = 60000
        peak, replies = fill(s, data, n)
        end = at_rest(data, limit + 1 * MIB)
        s.sendall(b"stats\r\n")
        st, _ = bcserver.recv_until(s, [b"END\r\n"])
        ev = [int(l.split()[2]) for l in st.split(b"\r\n")
              if l.startswith(b"STAT evictions ")]
        print("--disk-limit 8m: %d MB written, directory peak %.1f MiB, "
              "%.1f MiB at rest, evictions %s" % (
                  n * len(VALUE) // 1000000, peak / MIB, end / MIB, ev))
        check(replies == {b"STORED": n}, "every set STORED: %r" % replies)
        check(ev and ev[0] > n // 2, "keys were evicted (%s)" % ev)
        # slack: 4 shards x (a 128 KiB segment being written + its 32..64
        # KiB reserve), and while the writer runs what the evictor is
        # behind by
        check(end <= limit + 1 * MIB, "at rest within the limit + 1 MiB "
              "(%.1f MiB)" % (end / MIB))
        # writers wait for an evictor that is behind by more than 1/8 of a
        # shard's share (9.5 to 11.4 MiB peaks under load before they did,
        # 8.5 to 8.9 MiB since)
        check(peak <= limit + 2 * MIB,
              "while writing within the limit + 2 MiB (%.1f MiB)"
              % (peak / MIB))
        check(cmd(s, b"get k%d\r\n" % (n - 1)).startswith(b"VALUE "),
              "the newest key is there")
        s.close()
    finally:
        srv.close()


def full_fs(bc):
    if os.geteuid() != 0:
        print("SKIP part: mounting a tmpfs needs root")
        return False
    mnt = tempfile.mkdtemp(prefix="bc-tmpfs.")
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                        mnt], stderr=subprocess.DEVNULL) != 0:
        os.rmdir(mnt)
        print("SKIP part: mount -t tmpfs is not allowed here")
        return False
    try:
        for args, fills in (([], True), (["--disk-limit", "6m"], False)):
            data = os.path.join(mnt, "data")
            shutil.rmtree(data, ignore_errors=True)
            port = bcserver.free_port()
            proc = subprocess.Popen([bc, "--data-dir=" + data, "-l",
                                     "127.0.0.1", "-p", str(port),
                                     "--shards", "2"] + args)
            try:
                s = None
                for _ in range(200):
                    try:
                        s = socket.create_connection(("127.0.0.1", port), 5)
                        break
                    except OSError:
                        time.sleep(0.02)
                replies = {}
                for lo in range(0, 12000, 500):
                    for k, v in set_batch(s, lo, lo + 500).items():
                        replies[k] = replies.get(k, 0) + v
                stored = replies.get(b"STORED", 0)
                errors = {k: v for k, v in replies.items() if k != b"STORED"}
                print("tmpfs 8m %s: %d stored, %r" % (" ".join(args) or
                                                      "(no limit)", stored,
                                                      errors))
                if not fills:
                    check(stored == 12000, "with --disk-limit below the file "
                          "system's size every set is stored")
                    continue
                check(stored > 3000 and errors and
                      all(k.startswith(b"SERVER_ERROR") for k in errors),
                      "a full file system answers SERVER_ERROR")
                check(cmd(s, b"get k1\r\n").startswith(b"VALUE "),
                      "reads keep working on a full disk")
                s.sendall(b"".join(b"delete k%d noreply\r\n" % i
                                   for i in range(12000)))
                check(cmd(s, b"mn\r\n") == b"MN\r\n", "deletes done")
                # Space comes back as compaction retires the segments of
                # deleted keys: a deadline, not a count of tries, so that
                # a loaded machine that holds compaction back (once seen
                # past 10 s in a parallel make check) still passes.
                ok = False
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if cmd(s, b"set after 0 0 %d\r\n%s\r\n" % (
                            len(VALUE), VALUE)) == b"STORED\r\n" and \
                            set_batch(s, 0, 2000) == {b"STORED": 2000}:
                        ok = True
                        break
                    time.sleep(0.2)
                check(ok, "space comes back without a restart once keys "
                      "are deleted")
                s.close()
            finally:
                proc.terminate()
                proc.wait(10)
        return True
    finally:
        subprocess.call(["umount", mnt])
        os.rmdir(mnt)


def main():
    bc = bcserver.binary()
    bounded(bc)
    full_fs(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
