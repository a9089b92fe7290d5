#!/usr/bin/env python3
# bench_dump.py - how long `lru_crawler metadump all` takes over N keys, and
# the worst latency another client sees on `get` meanwhile (the dump walks a
# batch per turn, so other clients keep being served). Not part of make
# check. Usage: tests/bench/bench_dump.py [--keys N] [BINARY]
import argparse
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import bcserver  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=500000)
    ap.add_argument("binary", nargs="?", default="./bitcached")
    a = ap.parse_args()
    srv = bcserver.Server(a.binary, args=["-t", "2"])
    srv.start()
    try:
        s = srv.connect(timeout=60)
        t0 = time.monotonic()
        for base in range(0, a.keys, 10000):
            req = b"".join(b"set key:%d 0 0 10 noreply\r\n0123456789\r\n" % i
                           for i in range(base, min(base + 10000, a.keys)))
            s.sendall(req)
        s.sendall(b"mn\r\n")
        bcserver.recv_until(s, [b"MN\r\n"])
        print("loaded %d keys in %.2f s" % (a.keys, time.monotonic() - t0))
        worst = [0.0]
        stop = threading.Event()

        def prober():
            # two connections: one lands on the dumping worker's sibling,
            # the other (with -t 2, round robin) on the dumping worker
            conns = [srv.connect(), srv.connect()]
            while not stop.is_set():
                for c in conns:
                    t = time.monotonic()
                    c.sendall(b"get key:1\r\n")
                    bcserver.recv_until(c, [b"END\r\n"])
                    worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.001)

        d = srv.connect(timeout=120)
        th = threading.Thread(target=prober)
        th.start()
        t0 = time.monotonic()
        d.sendall(b"lru_crawler metadump all\r\n")
        n = 0
        buf = b""
        while not buf.endswith(b"END\r\n"):
            chunk = d.recv(1 << 20)
            if not chunk:
                break
            n += chunk.count(b"\n")
            buf = buf[-8:] + chunk
        el = time.monotonic() - t0
        stop.set()
        th.join()
        print("metadump: %d lines in %.2f s (%.0f keys/s); worst get latency "
              "meanwhile %.1f ms" % (n - 1, el, (n - 1) / el, worst[0] * 1000))
    finally:
        srv.close()


if __name__ == "__main__":
    main()
