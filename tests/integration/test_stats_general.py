#!/usr/bin/env python3
"""test_stats_general.py - the figures `stats` shows where memcached reports
parts bitcached does not have (tests/compare/test_compare.py checks the
field names and their order against memcached): each is what is true here.
connection_structures counts the most listeners and clients there were at
once; hash_power_level and
hash_bytes follow the keydirs' tables as they grow; the crawler's passes,
the entries it checked and the maintenance thread's passes count up;
reclaimed counts a store into a key whose item was flushed or had expired
(memcached's t/issue_183.t); and bitcached's own figures are in `stats
bitcached`, not in `stats`.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)


def stats(sock, group=b""):
    sock.sendall(b"stats " + group + b"\r\n" if group else b"stats\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    out = {}
    for line in data.split(b"\r\n"):
        f = line.split(b" ")
        if len(f) == 3 and f[0] == b"STAT":
            out[f[1].decode()] = f[2].decode()
    return out


def cmd(sock, line):
    sock.sendall(line)
    data, _ = bcserver.recv_until(sock, [b"\r\n"])
    return data


def main():
    bc = bcserver.binary()
    srv = bcserver.Server(bc, args=["--shards", "16"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        # the most connections there were at once (memcached keeps a
        # structure per connection for reuse); the start-up probe's
        # connection may have been open still when this one came
        st = stats(s)
        first = int(st.get("connection_structures", "0"))
        check(first in (2, 3),
              "a listener and one client (and the probe's): %d" % first)
        s2 = srv.connect(timeout=30)
        check(cmd(s2, b"mn\r\n") == b"MN\r\n", "second client served")
        st = stats(s)
        check(st.get("connection_structures") == str(max(first, 3)),
              "a second client: %r" % st.get("connection_structures"))
        s2.close()
        deadline = time.monotonic() + 10
        while (stats(s).get("curr_connections") != "1" and
               time.monotonic() < deadline):
            time.sleep(0.05)
        s3 = srv.connect(timeout=30)
        check(cmd(s3, b"mn\r\n") == b"MN\r\n", "third client served")
        check(stats(s).get("connection_structures") == str(max(first, 3)),
              "a client after one went is counted once")
        s3.close()
        check(st.get("response_obj_count") == st.get("curr_connections"),
              "one reply queue per client")
        check(st.get("reserved_fds") == "65", "reserved_fds")
        # 16 shards x 256 stripes x 16 slots of 6 bytes
        check(st.get("hash_power_level") == "16",
              "hash_power_level %r" % st.get("hash_power_level"))
        check(st.get("hash_bytes") == str(65536 * 6),
              "hash_bytes %r" % st.get("hash_bytes"))
        check(st.get("hash_is_expanding") == "0", "hash_is_expanding")
        for name in ("server", "get_corrupt", "output_bytes", "output_budget",
                     "output_budget_closes", "write_timeouts"):
            check(name not in st, "%s is not in stats" % name)
        own = stats(s, b"bitcached")
        check(own.get("server", "").startswith("bitcached-"),
              "stats bitcached names the server: %r" % own.get("server"))
        check(own.get("output_budget") == str(256 << 20),
              "stats bitcached: output_budget %r" % own.get("output_budget"))
        check(own.get("get_corrupt") == "0", "stats bitcached: get_corrupt")

        # 100000 keys: the tables grow past 2^17 slots
        for base in range(0, 100000, 5000):
            s.sendall(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % i
                               for i in range(base, base + 5000)))
        check(cmd(s, b"mn\r\n") == b"MN\r\n", "sets done")
        st = stats(s)
        level, hbytes = int(st["hash_power_level"]), int(st["hash_bytes"])
        print("100000 keys: hash_power_level %d, hash_bytes %d" % (level,
                                                                  hbytes))
        check(17 <= level <= 18 and (1 << level) * 6 <= hbytes <
              (2 << level) * 6, "the level follows the tables' growth")

        # memcached's t/issue_183.t: the store takes a flushed item's room
        r0 = int(stats(s)["reclaimed"])
        check(cmd(s, b"set rk 0 0 1\r\n1\r\n") == b"STORED\r\n", "stored")
        check(cmd(s, b"flush_all\r\n") == b"OK\r\n", "flushed")
        check(cmd(s, b"set rk 0 0 1\r\n1\r\n") == b"STORED\r\n", "stored")
        r1 = int(stats(s)["reclaimed"])
        # the crawler may have dropped some of the 100000 flushed keys
        # meanwhile (each counts too), so at least one more
        check(r1 >= r0 + 1, "reclaimed after flush_all and a store: %d -> %d"
              % (r0, r1))
        check(cmd(s, b"stats reset\r\n") == b"RESET\r\n", "reset")
        # the crawler drops the 100000 flushed keys meanwhile (each counts,
        # in passes): wait until only rk is left (slower under a sanitizer
        # or on a busy machine)
        deadline = time.monotonic() + 60
        while (stats(s)["curr_items"] != "1" and
               time.monotonic() < deadline):
            time.sleep(0.1)
        r2 = int(stats(s)["reclaimed"])
        check(cmd(s, b"set ek 0 1 1\r\n1\r\n") == b"STORED\r\n", "stored")
        time.sleep(1.1)
        # expired, and (most likely) not yet dropped by the crawler: either
        # the store or the crawler counts it, once
        check(cmd(s, b"set ek 0 0 1\r\n2\r\n") == b"STORED\r\n", "stored")
        st = stats(s)
        check(int(st["reclaimed"]) - r2 == 1,
              "a store into an expired key counts once: %d"
              % (int(st["reclaimed"]) - r2))
        check(int(st["lru_crawler_starts"]) > 0,
              "crawler passes: %s" % st["lru_crawler_starts"])
        check(int(st["crawler_items_checked"]) > 0,
              "entries checked: %s" % st["crawler_items_checked"])
        check(int(st["lru_maintainer_juggles"]) > 0,
              "maintenance passes: %s" % st["lru_maintainer_juggles"])
        check(st["lru_crawler_running"] in ("0", "1"), "lru_crawler_running")
        s.close()
    finally:
        srv.close()

    # without the crawler's switch on, memcached hides its figures
    srv = bcserver.Server(bc, args=["-o", "no_lru_crawler,no_lru_maintainer"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        st = stats(s)
        for name in ("lru_crawler_running", "lru_crawler_starts",
                     "lru_maintainer_juggles", "evicted_active",
                     "moves_to_cold"):
            check(name not in st, "%s hidden" % name)
        check(cmd(s, b"lru_crawler enable\r\n") == b"OK\r\n", "enabled")
        check("lru_crawler_starts" in stats(s), "shown once enabled")
        s.close()
    finally:
        srv.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
