#!/usr/bin/env python3
"""test_crawl.py - the background crawler (issue 9): flushed and expired keys
leave the index without being read, so curr_items and bytes drop within a
couple of seconds as memcached's do (memcached 1.6.18: unchanged right after
flush_all, 0 a second later), counted in reclaimed and expired_unfetched;
and a key the crawler dropped never comes back after kill -9 and a restart,
neither its value nor an older one kept in a segment compaction left alone.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
VALUE = b"v" * 100


def replies(sock, n):
    return bcserver.recv_lines(sock, n, None)


def sets(sock, keys, ttl=0, value=VALUE):
    sock.sendall(b"".join(b"set %s 0 %d %d\r\n%s\r\n" % (k, ttl, len(value),
                                                        value) for k in keys))
    return all(r == b"STORED" for r in replies(sock, len(keys)))


def values(sock, keys):
    """{key: value} of the keys a get finds."""
    found = {}
    for i in range(0, len(keys), 100):
        sock.sendall(b"get " + b" ".join(keys[i:i + 100]) + b"\r\n")
        data, _ = bcserver.recv_until(sock, [b"END\r\n"])
        lines = data.split(b"\r\n")
        for j, line in enumerate(lines):
            if line.startswith(b"VALUE "):
                found[line.split()[1]] = lines[j + 1]
    return found


def stats(sock):
    sock.sendall(b"stats\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    return {l.split()[1].decode(): int(l.split()[2])
            for l in data.split(b"\r\n")
            if l.startswith(b"STAT ") and l.split()[2].isdigit()}


def wait_for(sock, cond, secs=30.0):
    """Poll stats until cond holds; the crawler drops keys within about a
    second, but a loaded machine can hold its thread back for much longer,
    so the deadline is generous (it only costs time when cond never
    holds)."""
    deadline = time.monotonic() + secs
    while True:
        st = stats(sock)
        if cond(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def flushed_and_expired(bc):
    srv = bcserver.Server(bc, args=["--shards", "4"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        keys = [b"f:%d" % i for i in range(2000)]
        check(sets(s, keys), "stored")
        st = stats(s)
        check(st["curr_items"] == 2000, "2000 items")
        s.sendall(b"flush_all\r\n")
        check(replies(s, 1) == [b"OK"], "flush_all")
        st = wait_for(s, lambda st: st["curr_items"] == 0)
        print("flush_all: curr_items %d bytes %d reclaimed %d "
              "expired_unfetched %d" % (st["curr_items"], st["bytes"],
                                        st["reclaimed"],
                                        st["expired_unfetched"]))
        check(st["curr_items"] == 0 and st["bytes"] == 0,
              "flushed items leave curr_items and bytes unread")
        check(st["reclaimed"] == 2000 and st["expired_unfetched"] == 2000,
              "counted as reclaimed and expired_unfetched")

        short = [b"t:%d" % i for i in range(1000)]
        stay = [b"s:%d" % i for i in range(1000)]
        check(sets(s, short, ttl=2) and sets(s, stay), "stored again")
        check(len(values(s, short[:100])) == 100, "read before expiry")
        st = wait_for(s, lambda st: st["curr_items"] == 1000)
        print("ttl 2: curr_items %d reclaimed %d expired_unfetched %d" % (
            st["curr_items"], st["reclaimed"], st["expired_unfetched"]))
        check(st["curr_items"] == 1000, "expired items leave curr_items")
        check(st["reclaimed"] == 3000, "expired items reclaimed")
        check(st["expired_unfetched"] == 2900,
              "only the unread ones count as expired_unfetched")
        check(len(values(s, stay)) == 1000, "the others stay")
        s.close()
    finally:
        srv.close()


def no_older_value(bc):
    """k:i old (no ttl) sits among live keys in segments compaction leaves
    alone; k:i new (ttl 1) fills segments of its own, which the crawler
    empties and compaction then removes. Without the crawler's tombstones
    the old values would be back after a restart."""
    srv = bcserver.Server(bc, args=["--shards", "1", "--segment-size", "64k"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        keys = [b"k:%d" % i for i in range(500)]
        ok = True
        for i, k in enumerate(keys):
            ok = sets(s, [k], value=b"old" * 30) and ok
            ok = sets(s, [b"o:%d:%d" % (i, j) for j in range(4)]) and ok
        check(ok, "old values and others stored")
        check(sets(s, keys, ttl=1, value=b"new" * 30), "new values stored")
        check(sets(s, [b"fill:%d" % i for i in range(600)]), "filler stored")
        base = stats(s)["curr_items"]
        st = wait_for(s, lambda st: st["curr_items"] == base - 500)
        check(st["curr_items"] == base - 500, "the crawler dropped them")
        # a compaction pass or two: polled, not a fixed pause, which a
        # loaded machine can outlast
        deadline = time.monotonic() + 30
        while True:
            s.sendall(b"stats storage\r\n")
            sto, _ = bcserver.recv_until(s, [b"END\r\n"])
            comp = [int(l.split()[2]) for l in sto.split(b"\r\n")
                    if l.startswith(b"STAT compactions ")]
            if (comp and comp[0] > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        check(comp and comp[0] > 0, "compaction ran (%s)" % comp)
        s.close()
        srv.kill()
        srv.start()
        s = srv.connect(timeout=30)
        back = values(s, keys)
        print("restart: %d of 500 expired keys read back (%s)" % (
            len(back), sorted(set(back.values()))[:2]))
        check(not back, "no dropped key comes back after kill -9")
        others = values(s, [b"o:%d:%d" % (i, j) for i in range(500)
                            for j in range(4)])
        check(len(others) == 2000, "the other keys are there (%d)"
              % len(others))
        s.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    flushed_and_expired(bc)
    no_older_value(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
