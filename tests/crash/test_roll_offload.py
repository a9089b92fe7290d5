#!/usr/bin/env python3
# test_roll_offload.py - a roll-over's file system calls run on the store's
# roller thread, not on the worker whose write filled the segment. One
# worker thread (-t 1), one shard, 64 KiB segments, 20 KB sets (a
# roll-over every three). The LD_PRELOAD shim (crashshim.c) holds every
# open of a file in the data directory (CRASHSHIM_HOLD_WHILE): the creation
# of the next segment hangs, as on a disk that does not answer. While it is
# held:
#   - a get and `stats` on a second connection of the same worker are
#     answered (the worker used to hang in the open itself);
#   - the writer's replies stop at its parked set, and `writes_parked`
#     says one is parked.
# Once released, every reply of the writer comes, in order;
# `rolls_handed` counts the roll-overs the roller made. A restart (kill
# -9) then finds every acknowledged set with its value. Under interval and
# always. The shim cannot run under a sanitizer build: skipped there (77).
#
# Environment: BITCACHED.
import os
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

N = 12          # pipelined sets, 20 KB each: a roll-over every 3
VLEN = 20000
ANSWER_S = 5.0  # a get on the other connection must be answered by then
OPENS = "open,open64,openat,openat64,creat"


def args(mode):
    return ["-t", "1", "--shards=1", "--segment-size=64k", "--sync=" + mode,
            "--compact-ratio=0.99"]


def value(i):
    return (b"%06d" % i) * (VLEN // 6) + b"v" * (VLEN % 6)


def stored(sock, want, timeout):
    sock.settimeout(timeout)
    data, _ = bcserver.recv_until(sock, [want])
    return data == want


def parked_now(sock):
    return int(bcserver.stats_on(sock, b"storage").get("writes_parked", "0"))


def wait_parked(sock, timeout=ANSWER_S):
    """Until a connection is parked: their count, or -1 when the server
    did not answer `stats` in time (its worker is stuck)."""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while True:
        try:
            p = parked_now(sock)
        except OSError:
            return -1
        if p >= 1 or time.monotonic() > deadline:
            return p
        time.sleep(0.05)


def answered_get(sock):
    sock.settimeout(ANSWER_S)
    try:
        sock.sendall(b"get small\r\n")
        data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    except OSError:
        return False
    return data == b"VALUE small 0 5\r\nhello\r\nEND\r\n"


def run(binary, shim, tmp, mode, check):
    hold = os.path.join(tmp, "hold-" + mode)
    srv = bcserver.ShimServer(binary, shim, args(mode),
                              {"CRASHSHIM_DELAY": OPENS + ":5",
                               "CRASHSHIM_DELAY_WHILE": hold,
                               "CRASHSHIM_HOLD_WHILE": hold})
    srv.start()
    g = srv.connect(timeout=15)
    g.sendall(b"set small 0 0 5\r\nhello\r\n")
    check("%s: set up" % mode, stored(g, b"STORED\r\n", 15))
    before = int(bcserver.stats_on(g, b"storage").get("rolls_handed", "0"))
    w = srv.connect(timeout=15)
    open(hold, "w").close()
    req = b"".join(b"set w%d 0 0 %d\r\n" % (i, VLEN) + value(i) + b"\r\n"
                   for i in range(N))
    w.sendall(req)
    p = wait_parked(g)
    check("%s: the writer parks at the roll-over (writes_parked %d)" %
          (mode, p), p >= 1)
    check("%s: a get on another connection is answered while the next "
          "segment's creation hangs" % mode, answered_get(g))
    got, _ = bcserver.recv_until(w, [], quiet=0.3)
    check("%s: the writer's replies stop at the parked set (%d of %d)" %
          (mode, got.count(b"STORED\r\n"), N),
          got.count(b"STORED\r\n") < N and got == b"STORED\r\n" *
          got.count(b"STORED\r\n"))
    os.unlink(hold)
    w.settimeout(30)
    rest, _ = bcserver.recv_until(w, [b"STORED\r\n" * (N - got.count(
        b"STORED\r\n"))])
    check("%s: once released every set is answered" % mode,
          got + rest == b"STORED\r\n" * N)
    st = bcserver.stats_on(g, b"storage")
    handed = int(st.get("rolls_handed", "0")) - before
    check("%s: the roller made the roll-overs (rolls_handed +%d)" %
          (mode, handed), handed >= N // 3 - 1)
    srv.kill()
    srv.start()
    c = srv.connect(timeout=15)
    lost = [i for i in range(N)
            if bcserver.get_text(c, b"w%d" % i) !=
            b"VALUE w%d 0 %d\r\n" % (i, VLEN) + value(i) + b"\r\nEND\r\n"]
    check("%s: after kill -9 every acknowledged set holds its value "
          "(lost %s)" % (mode, lost), not lost)
    for s in (c, g, w):
        s.close()
    srv.close()


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        bcserver.skip("no crash shim, or a sanitizer build")
    tmp = bcserver.mkdtemp("rolloffload.")
    for mode in ("interval", "always"):
        run(binary, shim, tmp, mode, bcserver.check)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
