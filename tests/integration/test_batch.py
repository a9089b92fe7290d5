#!/usr/bin/env python3
# test_batch.py - write batching per event-loop pass (issue 8, item 1),
# against the real binary, in every sync mode:
#   - a pipelined burst of N sets sent in one write is written to the
#     shard's segment with fewer than N writes (counted by the crash shim),
#     and every set survives a SIGKILL sent right after the replies came;
#   - a failed batched write (EIO injected on pwrite by the shim) answers
#     every set of the burst with SERVER_ERROR, and none of them is
#     readable after a SIGKILL and a restart (keys written before are);
#   - sets and deletes of the same keys from two connections, run in the
#     same passes, end in the order they were acknowledged, live and after
#     a SIGKILL and a restart;
#   - a multi-get larger than the output cap behind a held write completes;
#   - under --sync=always with slow syncs, a parked connection that is sent
#     more than its read-ahead limit runs it all, in order.
# Without the shim (or against a sanitizer build, which cannot preload it)
# the write count comes from `stats storage` (batch_writes) and the EIO
# part is skipped.
import os
import sys

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

N = 200
check = bcserver.check
recv_lines = bcserver.recv_lines
ShimServer = bcserver.ShimServer


def get_all(srv, keys):
    """{key: value or None} through one multi-get per 50 keys."""
    out = {}
    s = srv.connect(timeout=15)
    for i in range(0, len(keys), 50):
        part = keys[i:i + 50]
        s.sendall(b"get " + b" ".join(part) + b"\r\n")
        data, _ = bcserver.recv_until(s, [b"END\r\n"])
        got = {}
        rest = data
        while rest.startswith(b"VALUE "):
            head, rest = rest.split(b"\r\n", 1)
            _, k, _flags, n = head.split(b" ")
            got[k] = rest[:int(n)]
            rest = rest[int(n) + 2:]
        for k in part:
            out[k] = got.get(k)
    s.close()
    return out


def value(mode, i):
    return b"%s-v%d-" % (mode.encode(), i) + b"x" * (20 + i % 50)


def burst(srv, mode, prefix):
    keys = [b"%s%d" % (prefix, i) for i in range(N)]
    req = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(value(mode, i)),
                                                  value(mode, i))
                   for i, k in enumerate(keys))
    s = srv.connect(timeout=15)
    s.sendall(req)
    lines = recv_lines(s, N)
    s.close()
    return keys, lines


def write_calls(srv, mode):
    """Writes to the data dir so far: the shim's count, or the store's
    own count of batch writes when there is no shim."""
    if srv.shim:
        return cm.group_count(cm.read_stats(srv.shim_env["CRASHSHIM_STATS"]),
                              "write")
    return int(srv.stats(b"storage").get("batch_writes", "0"))


def test_burst(binary, shim, mode):
    srv = ShimServer(binary, shim, ["--sync=" + mode, "-t", "1",
                                    "--shards=1"], {})
    srv.shim_env = {"CRASHSHIM_STATS": os.path.join(srv.tmp, "shim.stats")}
    srv.start()
    try:
        # a first set opens the segment and reserves a cas block
        s = srv.connect(timeout=15)
        s.sendall(b"set warm 0 0 1\r\nw\r\n")
        check("%s: a set answers" % mode, recv_lines(s, 1) == [b"STORED"])
        s.close()
        before = write_calls(srv, mode)
        keys, lines = burst(srv, mode, b"b")
        # the replies are all there: SIGKILL before anything else runs
        srv.kill()
        check("%s: %d pipelined sets answer STORED" % (mode, N),
              lines == [b"STORED"] * N, lines[:3])
        after = write_calls(srv, mode) if srv.shim else None
        srv.start()
        if after is None:
            # without the shim: the counter survives only in this run, so
            # count in a second burst on the restarted server
            before = write_calls(srv, mode)
            keys2, lines2 = burst(srv, mode, b"c")
            after = write_calls(srv, mode)
            check("%s: second burst answers" % mode,
                  lines2 == [b"STORED"] * N, lines2[:3])
        writes = after - before
        # the journal (always) writes too: still far fewer than N
        check("%s: %d sets written with fewer than %d writes (%d)" % (
            mode, N, N, writes), 0 < writes < N, writes)
        got = get_all(srv, keys)
        lost = [k for i, k in enumerate(keys) if got[k] != value(mode, i)]
        check("%s: every acknowledged set survives SIGKILL" % mode,
              not lost, "%d lost, e.g. %s" % (len(lost), lost[:3]))
    finally:
        srv.close()


def test_eio(binary, shim, mode):
    # --write-map=no: the failure is injected at pwrite (the mapped path's
    # faults: tests/unit/test_cask_mapwrite.c)
    srv = ShimServer(binary, shim, ["--sync=" + mode, "-t", "1",
                                    "--shards=1", "--write-map=no"], {})
    flag = os.path.join(srv.tmp, "fail")
    srv.shim_env = {"CRASHSHIM_FAIL": "pwrite:1:EIO",
                    "CRASHSHIM_FAIL_WHILE": flag}
    srv.start()
    try:
        keys0, lines0 = burst(srv, mode, b"ok")
        check("%s: sets before the fault answer STORED" % mode,
              lines0 == [b"STORED"] * N, lines0[:3])
        open(flag, "w").close()
        keys, lines = burst(srv, mode, b"bad")
        srv.kill()  # with the fault still on: nothing retried it
        errs = [ln for ln in lines if ln.startswith(b"SERVER_ERROR")]
        check("%s: every set of the failed batch answers SERVER_ERROR" % mode,
              len(errs) == N, lines[:3])
        os.unlink(flag)
        srv.shim = None
        srv.start()
        got = get_all(srv, keys0 + keys)
        kept = [k for i, k in enumerate(keys0) if got[k] != value(mode, i)]
        check("%s: the sets before the fault survive" % mode, not kept,
              "%d lost" % len(kept))
        back = [k for k in keys if got[k] is not None]
        check("%s: none of the failed batch is readable after restart" %
              mode, not back, "%d readable, e.g. %s" % (len(back), back[:3]))
        s = srv.connect(timeout=15)
        s.sendall(b"set after 0 0 1\r\na\r\n")
        check("%s: writes work after the restart" % mode,
              recv_lines(s, 1) == [b"STORED"])
        s.close()
    finally:
        srv.close()


def test_order(binary, shim, mode):
    srv = ShimServer(binary, None, ["--sync=" + mode, "-t", "1"], {})
    srv.start()
    try:
        rounds = 5
        keys = [b"o%d" % i for i in range(N)]
        sets = b"".join(b"set %s 0 0 2\r\nv1\r\n" % k for k in keys)
        dels = b"".join(b"delete %s\r\n" % k for k in keys)
        want = {}
        for r in range(rounds):
            # From no key: then a delete's reply tells the order (a key
            # left by the round before would answer DELETED either way).
            c = srv.connect(timeout=15)
            c.sendall(dels)
            lc = recv_lines(c, N)
            c.close()
            check("%s round %d: clearing deletes answer" % (mode, r),
                  len(lc) == N and all(ln in (b"DELETED", b"NOT_FOUND")
                                       for ln in lc), lc[:3])
            a = srv.connect(timeout=15)
            b = srv.connect(timeout=15)
            # both before the server can run either: their requests share
            # passes of the worker's loop
            first, second = (a, b) if r % 2 == 0 else (b, a)
            first.sendall(sets if first is a else dels)
            second.sendall(sets if second is a else dels)
            la = recv_lines(a, N)
            lb = recv_lines(b, N)
            a.close()
            b.close()
            check("%s round %d: sets answer" % (mode, r),
                  la == [b"STORED"] * N, la[:3])
            ok = all(ln in (b"DELETED", b"NOT_FOUND") for ln in lb)
            check("%s round %d: deletes answer" % (mode, r), ok and
                  len(lb) == N, lb[:3])
            for k, ln in zip(keys, lb):
                # DELETED: the set came first and the delete last;
                # NOT_FOUND: the delete came first
                want[k] = None if ln == b"DELETED" else b"v1"
            got = get_all(srv, keys)
            bad = [k for k in keys if got[k] != want[k]]
            check("%s round %d: live state in acknowledged order" % (mode, r),
                  not bad, "%d differ, e.g. %s" % (len(bad), bad[:3]))
        srv.kill()
        srv.start()
        got = get_all(srv, keys)
        bad = [k for k in keys if got[k] != want[k]]
        check("%s: acknowledged order survives SIGKILL" % mode, not bad,
              "%d differ, e.g. %s" % (len(bad), bad[:3]))
    finally:
        srv.close()


def test_multiget_behind_write(binary, mode):
    """A multi-get larger than the output cap, pipelined behind a write
    whose reply is held for its batch: it pauses while the replies wait
    and must still complete."""
    srv = ShimServer(binary, None, ["--sync=" + mode, "-t", "1"], {})
    srv.start()
    try:
        big = b"B" * 100000
        s = srv.connect(timeout=15)
        s.sendall(b"".join(b"set big%d 0 0 %d\r\n%s\r\n" % (i, len(big), big)
                           for i in range(8)))
        check("%s: large sets answer" % mode,
              recv_lines(s, 8) == [b"STORED"] * 8)
        # just over the output cap: a socket that takes it all at once
        # sends no write event to resume a paused multi-get
        keys = b" ".join(b"big%d" % i for i in range(3))
        for r in range(3):
            s.sendall(b"set small 0 0 1\r\nx\r\nget " + keys + b"\r\n")
            s.settimeout(5)
            try:
                data, _ = bcserver.recv_until(s, [b"END\r\n"])
            except OSError:
                data = b""
            ok = data.startswith(b"STORED\r\n") and \
                data.count(b"VALUE big") == 3 and len(data) > 3 * len(big)
            check("%s: multi-get behind a held write completes (%d)" % (
                mode, r), ok, "%d bytes" % len(data))
        s.close()
    finally:
        srv.close()


def test_parked_readahead(binary, shim):
    """--sync=always with every fdatasync slowed down (the shim): a
    connection parked for its commit keeps reading ahead, stops past its
    read-ahead limit, and once its commits are done runs everything in
    order."""
    srv = ShimServer(binary, shim, ["--sync=always", "-t", "1"], {})
    slow = os.path.join(srv.tmp, "slow")
    srv.shim_env = {"CRASHSHIM_DELAY": "fdatasync:100",
                    "CRASHSHIM_DELAY_WHILE": slow}
    srv.start(timeout=30)
    try:
        s = srv.connect(timeout=30)
        s.sendall(b"set warm 0 0 1\r\nw\r\n")
        check("always: a set answers", recv_lines(s, 1) == [b"STORED"])
        open(slow, "w").close()
        s.sendall(b"set first 0 0 1\r\nf\r\n")
        # while it is parked: about 300 KB more, past the read-ahead limit
        n = 1500
        val = b"p" * 180
        s.sendall(b"".join(b"set p%d 0 0 %d\r\n%s\r\n" % (i, len(val), val)
                           for i in range(n)) + b"get p%d\r\n" % (n - 1))
        lines = recv_lines(s, n + 4, timeout=60)
        os.unlink(slow)
        check("always: a parked connection's read-ahead runs in order",
              lines[:n + 1] == [b"STORED"] * (n + 1) and
              lines[n + 1].startswith(b"VALUE p%d " % (n - 1)) and
              lines[n + 3] == b"END", lines[:2] + lines[-4:])
        s.close()
    finally:
        srv.close()


def main():
    binary = cm.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        print("no crash shim (or a sanitizer build): counting batch_writes, "
              "no injected EIO")
    for mode in ("interval", "always", "never"):
        test_burst(binary, shim, mode)
        test_order(binary, shim, mode)
        test_multiget_behind_write(binary, mode)
    test_parked_readahead(binary, shim)
    if shim:
        test_eio(binary, shim, "interval")
        test_eio(binary, shim, "never")
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
