#!/usr/bin/env python3
"""test_memory_limit.py - -m with -M: once the index of keys would outgrow
-m, a new key is refused with memcached's SERVER_ERROR out of memory storing
object, and so is every new key after it (as memcached's -M once a slab
class is full), while overwrites, reads and deletes go on (and a deleted
key's room takes a new one); the server's own memory (RssAnon) stays near -m; without
-M the same load is stored. A small -m keeps it fast.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
OOM = b"SERVER_ERROR out of memory storing object\r\n"
KEY = b"key:%016d"
VALUE = b"v" * 100


def cmd(sock, line):
    sock.sendall(line)
    data, _ = bcserver.recv_until(sock, [b"\r\n"])
    return data


def stat(sock, name):
    sock.sendall(b"stats\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    for line in data.split(b"\r\n"):
        if line.startswith(b"STAT " + name + b" "):
            return line.split()[2]
    return None


def fill(sock, n, batch=500):
    """set keys 0..n-1 in pipelined batches; returns (stored, first refused
    index or -1, the refusal line)."""
    stored, refused, why = 0, -1, b""
    for start in range(0, n, batch):
        req = b"".join(b"set " + KEY % i + b" 0 0 100\r\n" + VALUE + b"\r\n"
                       for i in range(start, min(n, start + batch)))
        sock.sendall(req)
        want = min(n, start + batch) - start
        data = b""
        while data.count(b"\r\n") < want:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("closed")
            data += chunk
        for j, line in enumerate(data.split(b"\r\n")[:want]):
            if line == b"STORED":
                stored += 1
            elif refused < 0:
                refused, why = start + j, line + b"\r\n"
        if refused >= 0:
            break
    return stored, refused, why


def limited(bc):
    srv = bcserver.Server(bc, args=["-m", "2", "-M", "--shards", "4"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        rss0 = bcserver.rss_anon_kib(srv.proc.pid)
        stored, refused, why = fill(s, 200000)
        print("-m 2 -M: %d keys stored, then %r" % (stored, why))
        check(refused > 0, "a new key is refused once -m is used up")
        check(why == OOM, "the refusal is memcached's text: %r" % why)
        # 2 MiB at ~35 bytes a key, less the empty tables of 4 shards
        check(stored > 20000, "-m 2 holds > 20000 keys (%d)" % stored)
        rss = bcserver.rss_anon_kib(srv.proc.pid)
        print("RssAnon %d kB at start, %d kB full" % (rss0, rss))
        # documented slack: buffers and libraries beside the 2 MiB index
        if bcserver.sanitized(srv.proc.pid):
            print("note: AddressSanitizer build, RssAnon bound not checked")
        else:
            check(rss - rss0 < 2048 + 4096, "RssAnon grew %d kB" % (rss - rss0))
        check(cmd(s, b"set " + KEY % refused + b" 0 0 1\r\nx\r\n") == OOM,
              "still refused")
        # as memcached's -M once a slab class is full: every new key after
        # the first refusal is refused too, whichever shard it falls in
        # (room left at the end of other shards' keydir chunks is not used)
        before = int(stat(s, b"store_no_memory"))
        later = [cmd(s, b"set " + KEY % (refused + i) + b" 0 0 1\r\nx\r\n")
                 for i in range(1, 201)]
        check(later == [OOM] * 200, "the next 200 new keys are refused: %d"
              % later.count(OOM))
        after = int(stat(s, b"store_no_memory"))
        check(after - before == 200,
              "store_no_memory counts each refusal: %d" % (after - before))
        # as memcached's, each refusal counts in its size's class too
        s.sendall(b"stats items\r\n")
        items = bcserver.recv_until(s, [b"END\r\n"])[0]
        oom = {}
        for line in items.split(b"\r\n"):
            f = line.split()
            if len(f) == 3 and f[1].endswith(b":outofmemory"):
                oom[f[1]] = int(f[2])
        # the 1-byte refusals share a class with nothing stored: the 100-byte
        # ones' class is listed and counts the first refusal of the fill
        check(sum(oom.values()) >= 1,
              "items:N:outofmemory counts refusals: %r" % oom)
        check(cmd(s, b"set " + KEY % 0 + b" 0 0 1\r\nx\r\n") == b"STORED\r\n",
              "an overwrite is stored")
        check(cmd(s, b"get " + KEY % 0 + b"\r\n").startswith(b"VALUE "),
              "reads go on")
        check(cmd(s, b"delete " + KEY % 1 + b"\r\n") == b"DELETED\r\n",
              "deletes go on")
        # room in every shard and stripe: the refused key's included
        s.sendall(b"".join(b"delete " + KEY % i + b" noreply\r\n"
                           for i in range(2, 8000)))
        check(cmd(s, b"mn\r\n") == b"MN\r\n", "deletes done")
        check(cmd(s, b"set " + KEY % refused + b" 0 0 1\r\nx\r\n") ==
              b"STORED\r\n", "a deleted key's room takes a new key")
        st = cmd(s, b"stats\r\n")
        st += bcserver.recv_until(s, [b"END\r\n"])[0]
        check(b"STAT limit_maxbytes 2097152\r\n" in st, "limit_maxbytes")
        st = cmd(s, b"stats storage\r\n")
        st += bcserver.recv_until(s, [b"END\r\n"])[0]
        check(b"STAT memory_limit 2097152\r\n" in st, "memory_limit")
        check(b"STAT memory_limit_enforced 1\r\n" in st, "enforced")
        per = [float(l.split()[2]) for l in st.split(b"\r\n")
               if l.startswith(b"STAT keydir_bytes_per_item ")]
        print("keydir bytes per item: %s" % per)
        # -m holds the shards' append buffers too (up to 128 KiB each):
        # where the last stripe table growth no longer fits, the tables
        # are sized for more keys than stored (about 43 to 49 bytes)
        check(len(per) == 1 and 0 < per[0] < 52, "keydir bytes per item")
        s.close()
    finally:
        srv.close()


def unlimited(bc):
    srv = bcserver.Server(bc, args=["-m", "2", "--shards", "4"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        stored, refused, why = fill(s, 60000)
        check(refused < 0 and stored == 60000,
              "without -M every key is stored (%d, %r)" % (stored, why))
        s.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    limited(bc)
    unlimited(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
