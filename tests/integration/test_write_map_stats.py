#!/usr/bin/env python3
"""test_write_map_stats.py - what --write-map did is visible (issue 8):
  - `stats settings` reports the setting among bitcached's own fields
    (write_map yes|no), after memcached's;
  - `stats storage` counts the records copied into a segment's mapping
    (mapped_writes, in total and per shard): some once small sets were
    stored with the mapping on, none with --write-map=no.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)


def stats(s, group):
    s.sendall(b"stats " + group + b"\r\n")
    data, _ = bcserver.recv_until(s, [b"END\r\n"])
    out = {}
    order = []
    for line in data.decode().split("\r\n"):
        p = line.split(" ", 2)
        if len(p) == 3 and p[0] == "STAT":
            out[p[1]] = p[2]
            order.append(p[1])
    return out, order


def run(bc, mode):
    srv = bcserver.Server(bc, args=["-t", "1", "--shards", "2",
                                    "--sync", "interval",
                                    "--write-map", mode])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        st, order = stats(s, b"settings")
        check(st.get("write_map") == mode,
              "--write-map=%s: stats settings says %r" %
              (mode, st.get("write_map")))
        check("write_map" in order and "data_dir" in order and
              order.index("write_map") > order.index("data_dir"),
              "write_map is among bitcached's own settings")
        for i in range(20):
            s.sendall(b"set k%d 0 0 5\r\nvalue\r\n" % i)
            data, _ = bcserver.recv_until(s, [b"\r\n"])
            check(data == b"STORED\r\n", "set k%d: %r" % (i, data))
        st, _ = stats(s, b"storage")
        total = int(st.get("mapped_writes", "-1"))
        per = [int(st.get("shard%d:mapped_writes" % i, "-1"))
               for i in range(2)]
        if mode == "yes":
            check(0 < total <= 20,
                  "--write-map=yes: mapped_writes %d of 20 sets" % total)
        else:
            check(total == 0, "--write-map=no: mapped_writes %d" % total)
        check(sum(per) == total,
              "mapped_writes is the shards' sum (%s, %d)" % (per, total))
        s.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    run(bc, "yes")
    run(bc, "no")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
