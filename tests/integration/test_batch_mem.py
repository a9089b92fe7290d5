#!/usr/bin/env python3
"""test_batch_mem.py - the append buffers write batching stages records in
(one per shard that staged any, issue 8) are memory -m bounds:
  - `stats storage` shows them (buffer_bytes, and per shard): none before
    a write, one buffer per shard a pipelined burst staged into, 128 KiB
    each under the default -m;
  - under a small -m each is 1/16 of the shard's share (so that many
    shards under a small -m cannot spend the budget on buffers);
  - with -M, a new key is refused once the keydirs and the buffers
    together would pass -m: both together stay within it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=False)
OOM = b"SERVER_ERROR out of memory storing object"
KEY = b"key:%016d"


def burst(s, start, n):
    """n pipelined sets in one send; returns their reply lines."""
    s.sendall(b"".join(b"set " + KEY % i + b" 0 0 10\r\n0123456789\r\n"
                       for i in range(start, start + n)))
    data = b""
    while data.count(b"\r\n") < n:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[:n]


def buffers(st, shards):
    return [int(st["shard%d:buffer_bytes" % i]) for i in range(shards)]


def default_limit(bc):
    srv = bcserver.Server(bc, args=["-t", "1", "--shards", "4"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        st = bcserver.stats_on(s, b"storage")
        check(st.get("buffer_bytes") == "0",
              "no buffer before a write (%s)" % st.get("buffer_bytes"))
        r = burst(s, 0, 200)
        check(r == [b"STORED"] * 200, "a burst of sets is stored")
        st = bcserver.stats_on(s, b"storage")
        per = buffers(st, 4)
        check(all(b in (0, 128 * 1024) for b in per) and sum(per) > 0,
              "one 128 KiB buffer per shard that staged (%s)" % per)
        check(int(st["buffer_bytes"]) == sum(per),
              "buffer_bytes is the shards' sum (%s)" % st["buffer_bytes"])
        s.close()
    finally:
        srv.close()


def small_limit(bc):
    limit = 2 << 20
    srv = bcserver.Server(bc, args=["-t", "1", "-m", "2", "-M",
                                    "--shards", "8"])
    srv.start()
    try:
        s = srv.connect(timeout=30)
        r = burst(s, 0, 200)
        check(r == [b"STORED"] * 200, "-m 2: a burst of sets is stored")
        st = bcserver.stats_on(s, b"storage")
        per = buffers(st, 8)
        # a share of 256 KiB: buffers of 16 KiB
        check(all(b in (0, 16 * 1024) for b in per) and sum(per) > 0,
              "-m 2: buffers of 1/16 of a shard's share (%s)" % per)
        why = b""
        i = 200
        while i < 200000:
            r = burst(s, i, 500)
            bad = [ln for ln in r if ln != b"STORED"]
            i += 500
            if bad:
                why = bad[0]
                break
        check(why == OOM, "-m 2 -M: new keys refused at last (%r)" % why)
        st = bcserver.stats_on(s, b"storage")
        kd = int(st["keydir_bytes"])
        buf = int(st["buffer_bytes"])
        print("-m 2 -M: %d keys, keydir %d + buffers %d bytes" %
              (int(st["live_keys"]), kd, buf))
        check(buf > 0, "buffers are counted (%d)" % buf)
        check(kd + buf <= limit,
              "keydirs and buffers within -m (%d + %d)" % (kd, buf))
        s.close()
    finally:
        srv.close()


def main():
    bc = bcserver.binary()
    default_limit(bc)
    small_limit(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
