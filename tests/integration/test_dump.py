#!/usr/bin/env python3
# test_dump.py - key dumps and per-class stats through memcached's own tools:
# memcdump lists exactly the keys set while another client keeps writing
# (each once), watch shows another client's gets and sets, lru_crawler
# metadump streams a large dump while a second connection is answered,
# memcached-tool dump/display and memcstat --args=items show rows, and -X
# and -W refuse the dumps and watch. Python 3 stdlib and
# tests/integration/bcserver.py; skips (77) without memcdump.
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

NKEYS = 5000
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def load(srv, keys):
    s = srv.connect()
    req = b"".join(b"set %s 0 0 5 noreply\r\nvalue\r\n" % k for k in keys)
    s.sendall(req + b"mn\r\n")
    data, _ = bcserver.recv_until(s, [b"MN\r\n"])
    s.close()
    if data != b"MN\r\n":
        raise RuntimeError("load: %r" % data[:200])


def writer(srv, stop, written):
    s = srv.connect()
    i = 0
    while not stop.is_set():
        k = b"w:%d" % i
        s.sendall(b"set %s 0 0 1\r\nx\r\n" % k)
        data, _ = bcserver.recv_until(s, [b"\r\n"])
        if data != b"STORED\r\n":
            fail("writer: %r" % data)
            break
        written.add(k)
        i += 1
    s.close()


def main():
    binary = bcserver.binary()
    memcdump = shutil.which("memcdump")
    if memcdump is None:
        bcserver.skip("memcdump (libmemcached-tools) not installed")
    tool = "/usr/share/memcached/scripts/memcached-tool"
    keys = [b"key:%d" % i for i in range(NKEYS)]

    srv = bcserver.Server(binary, args=["--shards=4"])
    srv.start()
    try:
        # watch: another client's fetches and stores as memcached logs them
        w = srv.connect()
        w.sendall(b"watch fetchers mutations\r\n")
        ok, _ = bcserver.recv_until(w, [b"\r\n"])
        c = srv.connect()
        c.sendall(b"set wkey 0 0 1\r\nx\r\nget wkey\r\n")
        bcserver.recv_until(c, [b"END\r\n"])
        c.close()
        log, _ = bcserver.recv_until(w, [], quiet=0.5)
        w.close()
        for want in (rb"type=item_get key=wkey status=not_found clsid=0 cfd=\d+ size=0",
                     rb"type=item_store key=wkey status=stored cmd=set ttl=0 clsid=1 cfd=\d+ size=1",
                     rb"type=item_get key=wkey status=found clsid=1 cfd=\d+ size=1"):
            if ok != b"OK\r\n" or not re.search(rb"ts=\d+\.\d+ gid=\d+ " + want, log):
                fail("watch: no %r in %r" % (want, log))
        load(srv, keys)
        stop, written = threading.Event(), set()
        th = threading.Thread(target=writer, args=(srv, stop, written))
        th.start()
        time.sleep(0.1)
        out = subprocess.run([memcdump, "--servers=127.0.0.1:%d" % srv.port],
                             stdout=subprocess.PIPE, timeout=60).stdout
        # a large metadump on one connection, another client meanwhile
        s = srv.connect()
        s.sendall(b"lru_crawler metadump all\r\n")
        first = s.recv(100)
        t0 = time.monotonic()
        other = srv.connect()
        other.sendall(b"version\r\n")
        v, _ = bcserver.recv_until(other, [b"\r\n"])
        other.close()
        if not v.startswith(b"VERSION ") or time.monotonic() - t0 > 2:
            fail("a second client waited for a dump: %r" % v)
        rest, _ = bcserver.recv_until(s, [b"END\r\n"])
        s.close()
        stop.set()
        th.join()
        dumped = (first + rest).split(b"\n")
        got = [urllib.parse.unquote_to_bytes(l.split(b" ")[0][4:])
               for l in dumped if l.startswith(b"key=")]
        gs = set(got)
        missing = [k for k in keys if k not in gs]
        if missing or len(got) != len(gs):
            fail("metadump: %d base keys missing, %d duplicates"
                 % (len(missing), len(got) - len(gs)))
        lines = out.split()
        seen = set(lines)
        missing = [k for k in keys if k not in seen]
        extra = [k for k in seen
                 if k not in set(keys) and not k.startswith(b"w:") and k != b"wkey"]
        dups = len(lines) - len(seen)
        if missing or extra or dups:
            fail("memcdump: %d missing, %d unknown, %d duplicates"
                 % (len(missing), len(extra), dups))
        print("memcdump listed %d keys (%d written during the dump)"
              % (len(lines), len(written)))

        # the online prefix scan: exactly the keys that start with it,
        # while another client keeps writing keys that do not
        stop, written = threading.Event(), set()
        th = threading.Thread(target=writer, args=(srv, stop, written))
        th.start()
        time.sleep(0.05)
        s = srv.connect()
        s.sendall(b"lru_crawler metadump all prefix=key:1\r\n")
        data, _ = bcserver.recv_until(s, [b"END\r\n"])
        s.close()
        stop.set()
        th.join()
        got = [urllib.parse.unquote_to_bytes(l.split(b" ")[0][4:])
               for l in data.split(b"\n") if l.startswith(b"key=")]
        want = set(k for k in keys if k.startswith(b"key:1"))
        if set(got) != want or len(got) != len(want):
            fail("prefix scan: %d keys, want %d (%d unexpected)"
                 % (len(got), len(want), len(set(got) - want)))
        print("prefix scan listed %d keys (%d written meanwhile)"
              % (len(got), len(written)))

        # a dump far larger than the connection's output high-water mark
        # (4 MiB) to a fast reader: it must be resumed after each pause
        big = [b"big:%d" % i for i in range(120000)]
        for i in range(0, len(big), 20000):
            load(srv, big[i:i + 20000])
        s = srv.connect(timeout=20)
        s.sendall(b"lru_crawler metadump all\r\n")
        lines, tail = 0, b""
        while not tail.endswith(b"END\r\n"):
            try:
                chunk = s.recv(1 << 20)
            except OSError:
                fail("large metadump stalled after %d lines" % lines)
                break
            if not chunk:
                break
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-16:]
        s.close()
        if lines - 1 < len(big) + NKEYS:
            fail("large metadump: %d lines" % (lines - 1))

        if os.path.exists(tool) and shutil.which("perl"):
            addr = "127.0.0.1:%d" % srv.port
            d = subprocess.run(["perl", tool, addr, "dump"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=120).stdout
            if d.count(b"add key:") != NKEYS:
                fail("memcached-tool dump: %d keys" % d.count(b"add key:"))
            disp = subprocess.run(["perl", tool, addr, "display"],
                                  stdout=subprocess.PIPE, timeout=30).stdout
            rows = [l for l in disp.splitlines()[1:] if l.strip()]
            if not rows:
                fail("memcached-tool display: no rows: %r" % disp)
        memcstat = shutil.which("memcstat")
        if memcstat:
            st = subprocess.run([memcstat, "--servers=127.0.0.1:%d" % srv.port,
                                 "--args=items"], stdout=subprocess.PIPE,
                                timeout=30).stdout
            if b"items:1:number:" not in st:
                fail("memcstat --args=items: %r" % st[:300])
    finally:
        srv.close()

    srv = bcserver.Server(binary, args=["-X", "-W"])
    srv.start()
    try:
        s = srv.connect()
        s.sendall(b"lru_crawler metadump all\r\nstats cachedump 1 0\r\nwatch\r\n")
        data, _ = bcserver.recv_until(s, [b"allowed\r\n"], quiet=0.5)
        if data != (b"ERROR metadump not allowed\r\n"
                    b"CLIENT_ERROR stats cachedump not allowed\r\n"
                    b"CLIENT_ERROR watch commands not allowed\r\n"):
            fail("-X: %r" % data)
        s.close()
    finally:
        srv.close()
    if failures:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
