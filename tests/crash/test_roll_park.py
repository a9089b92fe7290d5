#!/usr/bin/env python3
# test_roll_park.py - a write whose roll-over would wait parks its own
# connection, not the worker. One worker thread (-t 1), one shard, 64 KiB
# segments; the LD_PRELOAD shim (crashshim.c) holds every fdatasync and
# fsync on the data directory (CRASHSHIM_HOLD_WHILE) while a client
# pipelines 20 KB sets, so that roll-overs come every three sets:
#   - interval: the sync thread takes the first closed segment and hangs
#     in its sync; four more wait for it (CASK_UNSYNCED_MAX), and the next
#     roll-over would wait for the sync thread;
#   - always: no commit ends, so the first roll-over finds writes of the
#     full segment not committed (a filler connection's three sets, parked
#     for their commit), and would sync it itself.
# Either wait used to hold the worker, and with it every other connection
# it serves. Here, while the syncs are held:
#   - a get and `stats` on a second connection are answered;
#   - the writer's replies stop at the parked request (some come, not all),
#     and `writes_parked` says one is parked;
#   - a third connection whose write parks too closes meanwhile: its
#     write is still made (memcached runs what it read before the end).
# Once the syncs are released, every reply of the writer comes, in order:
# the sets' STORED (one is noreply and answers nothing), an ms's HD, and
# the get pipelined behind them with the values it stored. The server
# lives on, nothing parked, and a noreply write parked is stored.
# Then the same with a kill -9 while the writer is parked: the restarted
# server holds every write acknowledged before, with its value, and a key
# deleted (acknowledged) before stays deleted.
# The shim cannot run under a sanitizer build: skipped there (77).
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

N = 40          # pipelined sets, 20 KB each: a roll-over every 3
VLEN = 20000
NOREPLY = 7     # the set sent with noreply
ANSWER_S = 5.0  # a get on the other connection must be answered by then


def args(mode):
    return ["-t", "1", "--shards=1", "--segment-size=64k", "--sync=" + mode,
            "--sync-interval-ms=600000", "--compact-ratio=0.99"]


def value(i):
    return (b"%06d" % i) * (VLEN // 6) + b"v" * (VLEN % 6)


def pipeline():
    """The writer's requests, and the replies they must get in order."""
    req = b""
    want = []
    for i in range(N):
        nr = b" noreply" if i == NOREPLY else b""
        req += b"set w%d 0 0 %d%s\r\n" % (i, VLEN, nr) + value(i) + b"\r\n"
        if i != NOREPLY:
            want.append(b"STORED\r\n")
    req += b"ms m1 5 T0\r\nhello\r\n"
    want.append(b"HD\r\n")
    req += b"get w0 w%d\r\n" % (N - 1)
    want.append(b"VALUE w0 0 %d\r\n" % VLEN + value(0) + b"\r\n" +
                b"VALUE w%d 0 %d\r\n" % (N - 1, VLEN) + value(N - 1) +
                b"\r\nEND\r\n")
    return req, b"".join(want)


def start(binary, shim, tmp, name):
    hold = os.path.join(tmp, "hold-" + name)
    srv = bcserver.ShimServer(binary, shim, args(name.split("-")[0]),
                              {"CRASHSHIM_DELAY": "fdatasync,fsync:5",
                               "CRASHSHIM_DELAY_WHILE": hold,
                               "CRASHSHIM_HOLD_WHILE": hold})
    srv.start()
    s = srv.connect(timeout=15)
    # Keys written before the hold: they must read back as written after
    # the kill below, and the deleted one stay deleted.
    s.sendall(b"set small 0 0 5\r\nhello\r\nset gone 0 0 4\r\ngone\r\n"
              b"delete gone\r\nset keep 0 0 4\r\nkeep\r\n")
    data, _ = bcserver.recv_until(s, [b"STORED\r\nDELETED\r\nSTORED\r\n"])
    ok = data == b"STORED\r\nSTORED\r\nDELETED\r\nSTORED\r\n"
    return srv, hold, s, ok


def fill(srv):
    """Three sets on a connection of their own, before the writer's: under
    always they wait for their commit (held), and fill the segment the
    writer's first set rolls over."""
    f = srv.connect(timeout=30)
    for i in range(3):
        f.sendall(b"set f%d 0 0 %d\r\n" % (i, VLEN) + value(i) + b"\r\n")
    time.sleep(0.3)
    return f


def parked_now(sock):
    return int(bcserver.stats_on(sock, b"storage").get("writes_parked", "0"))


def wait_parked(sock, n=1, timeout=ANSWER_S, done=None):
    """Until n connections are parked (or done(count) holds); their
    count, or -1 when the server did not answer `stats` in time (its
    worker is stuck)."""
    done = done or (lambda p: p >= n)
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while True:
        try:
            p = parked_now(sock)
        except OSError:
            return -1
        if done(p) or time.monotonic() > deadline:
            return p
        time.sleep(0.05)


def wait_unparked(sock):
    """Until no connection is parked: the count left (-1: no answer)."""
    return wait_parked(sock, done=lambda p: p == 0)


def answered_get(sock):
    """A get on another connection of the same worker, answered in time?"""
    sock.settimeout(ANSWER_S)
    try:
        sock.sendall(b"get small\r\n")
        data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    except OSError:
        return False
    return data == b"VALUE small 0 5\r\nhello\r\nEND\r\n"


def check_parked(srv, hold, name, check):
    """Writer parked with the syncs held; the others served; release."""
    w = srv.connect(timeout=30)
    g = srv.connect(timeout=30)
    req, want = pipeline()
    open(hold, "w").close()
    f = fill(srv)
    w.sendall(req)
    p = wait_parked(g)
    check("%s: the writer parks (writes_parked %d)" % (name, p), p >= 1)
    check("%s: a get on another connection is answered while the writer "
          "waits" % name, answered_get(g))
    # Its replies stop at the parked request: some came, not all.
    got, _ = bcserver.recv_until(w, [], quiet=0.3)
    check("%s: the writer's replies stop at the parked request (%d of %d "
          "bytes)" % (name, len(got), len(want)),
          len(got) < len(want) and want.startswith(got))
    # A client that closes while parked: its write is still made.
    x = srv.connect(timeout=30)
    x.sendall(b"set closer 0 0 %d\r\n" % (3 * VLEN) + b"c" * (3 * VLEN) +
              b"\r\n")
    p2 = wait_parked(g, 2)
    x.close()
    check("%s: a second writer parks too (writes_parked %d)" % (name, p2),
          p2 >= 2)
    time.sleep(0.2)
    os.unlink(hold)
    w.settimeout(30)
    rest, _ = bcserver.recv_until(w, [b"\r\nEND\r\n"])
    got += rest
    check("%s: once released every reply comes, in order" % name,
          got == want)
    check("%s: the noreply write is stored" % name,
          bcserver.get_text(g, b"w%d" % NOREPLY) ==
          b"VALUE w%d 0 %d\r\n" % (NOREPLY, VLEN) + value(NOREPLY) +
          b"\r\nEND\r\n")
    check("%s: nothing stays parked" % name, wait_unparked(g) == 0)
    check("%s: the closed connection's write is made" % name,
          bcserver.get_text(g, b"closer") ==
          b"VALUE closer 0 %d\r\n" % (3 * VLEN) + b"c" * (3 * VLEN) +
          b"\r\nEND\r\n")
    st = bcserver.stats_on(g, b"storage")
    check("%s: parks counted (write_parks %s)" % (name, st.get("write_parks")),
          int(st.get("write_parks", "0")) >= 2)
    f.settimeout(30)
    fr, _ = bcserver.recv_until(f, [b"STORED\r\n" * 3])
    check("%s: the filler's sets are answered" % name,
          fr == b"STORED\r\n" * 3)
    check("%s: the server lives" % name, srv.alive())
    for s in (w, g, f):
        s.close()


def check_kill(binary, shim, tmp, name, check):
    """kill -9 while a writer is parked: nothing acknowledged lost,
    nothing deleted back."""
    srv, hold, s, ok = start(binary, shim, tmp, name)
    check("%s: set up" % name, ok)
    w = srv.connect(timeout=30)
    req, want = pipeline()
    open(hold, "w").close()
    f = fill(srv)
    w.sendall(req)
    p = wait_parked(s)
    check("%s: the writer parks (writes_parked %d)" % (name, p), p >= 1)
    got, _ = bcserver.recv_until(w, [], quiet=0.3)
    srv.kill()
    os.unlink(hold)
    acked = []
    i = 0
    for line in got.split(b"\r\n")[:-1]:
        while i == NOREPLY:
            i += 1
        if line == b"STORED":
            acked.append(i)
        i += 1
    srv.start()
    c = srv.connect(timeout=15)
    lost = [k for k in acked
            if bcserver.get_text(c, b"w%d" % k) !=
            b"VALUE w%d 0 %d\r\n" % (k, VLEN) + value(k) + b"\r\nEND\r\n"]
    check("%s: every write acknowledged before the kill holds its value "
          "(%d acknowledged; lost %s)" % (name, len(acked), lost), not lost)
    check("%s: written before the hold, still there" % name,
          bcserver.get_text(c, b"keep") == b"VALUE keep 0 4\r\nkeep\r\nEND\r\n"
          and bcserver.get_text(c, b"small") ==
          b"VALUE small 0 5\r\nhello\r\nEND\r\n")
    check("%s: a deleted key stays deleted" % name,
          bcserver.get_text(c, b"gone") == b"END\r\n")
    for x in (c, w, s, f):
        x.close()
    srv.close()


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        bcserver.skip("no crash shim, or a sanitizer build")
    tmp = bcserver.mkdtemp("rollpark.")
    check = bcserver.check
    for mode in ("interval", "always"):
        srv, hold, s, ok = start(binary, shim, tmp, mode)
        check("%s: set up" % mode, ok)
        check_parked(srv, hold, mode, check)
        s.close()
        srv.close()
        check_kill(binary, shim, tmp, mode + "-kill", check)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
