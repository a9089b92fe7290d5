#!/usr/bin/env python3
# test_sync_always.py - --sync=always without stalling a worker (issue 8,
# item 2), against the real binary with the crash shim making every
# fdatasync slow (CRASHSHIM_DELAY) or fail (CRASHSHIM_FAIL):
#   - on a server with one worker (-t 1), a write waiting for its slow sync
#     does not hold up a get on another connection, and is itself answered
#     only after the sync;
#   - pipelined writes of one connection (text, meta with q and O, classic
#     noreply, binary quiet) are answered in order and share a few syncs;
#   - SIGKILL right after acknowledgements loses none of them;
#   - an EIO from fdatasync answers SERVER_ERROR (binary: status 0x84) to
#     the writes that waited for that sync, in their place in the reply
#     stream, and latches the shard (stats storage: failed 1);
#   - stats storage shows the commit cycle's figures (commit_sync_us long
#     with the slow syncs, commit_release_us once commits woke the worker).
# Without the shim, or against a sanitizer build (no preload), only the
# parts that need no slow or failing disk run (order, quiet modes, kill -9).
import os
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

DELAY_MS = 300
check = bcserver.check
recv_lines = bcserver.recv_lines
ShimServer = bcserver.ShimServer


def bin_req(opcode, key=b"", val=b"", extras=b"", opaque=0):
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0,
                       0, len(extras) + len(key) + len(val), opaque,
                       0) + extras + key + val


def bin_read(sock, timeout=10.0):
    """One response packet: (opcode, status, opaque, body)."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < 24:
        c = sock.recv(24 - len(buf))
        if not c:
            return None
        buf += c
    magic, op, _kl, _el, _dt, status, blen, opaque, _cas = struct.unpack(
        ">BBHBBHIIQ", buf)
    body = b""
    while len(body) < blen:
        c = sock.recv(blen - len(body))
        if not c:
            break
        body += c
    return op, status, opaque, body


def test_no_stall(binary, shim):
    """With shim None: the same requests without a slow disk, and no
    timing checks."""
    srv = ShimServer(binary, shim, ["--sync=always", "-t", "1"], {})
    slow = os.path.join(srv.tmp, "slow")
    srv.shim_env = {"CRASHSHIM_DELAY": "fdatasync:%d" % DELAY_MS,
                    "CRASHSHIM_DELAY_WHILE": slow}
    srv.start(timeout=30)
    try:
        a = srv.connect(timeout=10)
        b = srv.connect(timeout=10)
        a.sendall(b"set g 0 0 3\r\nold\r\n")  # also reserves a cas block
        check("a set answers", recv_lines(a, 1) == [b"STORED"])
        big = b"b" * 100000
        a.sendall(b"".join(b"set big%d 0 0 %d\r\n%s\r\n" % (i, len(big), big)
                           for i in range(8)))
        check("large sets answer", recv_lines(a, 8) == [b"STORED"] * 8)
        open(slow, "w").close()  # from now on every fdatasync is slow
        timed = shim is not None

        # A gat's touches are writes: not a byte of its reply (large enough
        # to pass the output cap between keys) before they are synced.
        t0 = time.monotonic()
        a.sendall(b"gat 0 " + b" ".join(b"big%d" % i for i in range(8)) +
                  b"\r\n")
        a.settimeout(10)
        first = a.recv(1)
        first_ms = (time.monotonic() - t0) * 1000
        rest, _ = bcserver.recv_until(a, [b"END\r\n"])
        check("gat of 8 large values answered whole",
              (first + rest).count(b"VALUE ") == 8 and
              (first + rest).endswith(b"END\r\n"), len(first + rest))
        if timed:
            check("no byte of the gat before its touches are synced "
                  "(%.0f ms)" % first_ms, first_ms >= DELAY_MS * 0.8,
                  first_ms)

        def beside_write(key):
            """A set of key on a, whose sync is slow, and once it is in (a
            get on b sees it), a get of g and of key on b: returns the get's
            lines and milliseconds, and the set's reply and milliseconds."""
            done = {}

            def writer():
                t0 = time.monotonic()
                a.sendall(b"set %s 0 0 1\r\nx\r\n" % key)
                done["reply"] = recv_lines(a, 1)
                done["ms"] = (time.monotonic() - t0) * 1000

            th = threading.Thread(target=writer)
            th.start()
            # the set is in, its sync under way: no fixed pause, which a
            # busy machine can outlast before the writer thread runs
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                b.sendall(b"get %s\r\n" % key)
                seen, _ = bcserver.recv_until(b, [b"END\r\n"])
                if seen.startswith(b"VALUE "):
                    break
                time.sleep(0.005)
            t0 = time.monotonic()
            b.sendall(b"get g\r\nget %s\r\n" % key)
            got = recv_lines(b, 6)
            get_ms = (time.monotonic() - t0) * 1000
            th.join()
            return got, get_ms, done.get("reply"), done.get("ms", 0)

        # A get held up by the sync would wait for it every time; one that
        # is not can still wait for the CPU on a loaded machine: a slow
        # measurement is taken again, up to three times.
        for n in range(3):
            key = b"slow%d" % n
            got, get_ms, reply, set_ms = beside_write(key)
            check("a get beside a waiting write is answered",
                  got == [b"VALUE g 0 3", b"old", b"END",
                          b"VALUE %s 0 1" % key, b"x", b"END"], got)
            check("the write is answered only after its sync (%.0f ms)"
                  % set_ms, reply == [b"STORED"] and
                  (not timed or set_ms >= DELAY_MS * 0.8), (reply, set_ms))
            if not timed or get_ms < DELAY_MS / 2:
                break
            print("a get beside a waiting write took %.0f ms: again"
                  % get_ms)
        if timed:
            check("that get is not held up by the %d ms sync (%.0f ms)"
                  % (DELAY_MS, get_ms), get_ms < DELAY_MS / 2, get_ms)

        # Pipelined on one connection: in order, few syncs.
        before = srv.stats(b"storage")
        req = b"set n 0 0 1\r\n1\r\n"
        req += b"incr n 1\r\n" * 20
        req += b"set q1 0 0 1 noreply\r\na\r\n"
        req += b"ms q2 1 q\r\nb\r\n"
        req += b"ms q3 1 O77\r\nc\r\n"
        req += b"md q1 q\r\n"
        req += b"get q2\r\nmn\r\n"
        t0 = time.monotonic()
        a.sendall(req)
        lines = recv_lines(a, 1 + 20 + 1 + 3 + 1)
        ms = (time.monotonic() - t0) * 1000
        want = [b"STORED"] + [str(i).encode() for i in range(2, 22)] + \
            [b"HD O77", b"VALUE q2 0 1", b"b", b"END", b"MN"]
        check("pipelined writes answered in order", lines == want, lines)
        after = srv.stats(b"storage")
        commits = int(after["commits"]) - int(before["commits"])
        # Up to four journal commits overlap, so a few more passes than
        # one sync after another would take.
        check("25 pipelined writes share a few commits (%d, %.0f ms)"
              % (commits, ms), 1 <= commits <= (8 if timed else 25) and
              (not timed or ms < 5 * DELAY_MS), commits)
        check("writes_per_sync is shown",
              float(after.get("writes_per_sync", "0")) > 0, after)
        # The commit cycle's figures: syncs of 300 ms since the slow file
        # (and only a few fast ones before) make the mean sync long; the
        # worker was woken by commits to release the replies.
        for name in ("commit_wait_us", "commit_delay_us", "commit_sync_us",
                     "commit_release_us"):
            check("%s is shown" % name, name in after, after)
        sync_us = float(after.get("commit_sync_us", "0"))
        check("commit_sync_us reflects the syncs (%.0f us)" % sync_us,
              sync_us >= (10000 if timed else 1), after)
        check("commit_release_us: commits woke the worker",
              float(after.get("commit_release_us", "0")) > 0, after)

        # Binary, quiet sets then a noop: only the noop answers, after the
        # sync.
        c = srv.connect(timeout=10)
        ext = struct.pack(">II", 0, 0)
        pkt = b"".join(bin_req(0x11, b"bq%d" % i, b"v", ext, opaque=i)
                       for i in range(10))
        t0 = time.monotonic()
        c.sendall(pkt + bin_req(0x0a, opaque=0xabc))
        r = bin_read(c)
        ms = (time.monotonic() - t0) * 1000
        check("binary quiet sets: only the noop answers, after the sync",
              r is not None and r[0] == 0x0a and r[2] == 0xabc and
              (not timed or ms >= DELAY_MS * 0.8), (r, ms))
        for s in (a, b, c):
            s.close()
    finally:
        if os.path.exists(slow):
            os.unlink(slow)  # the final syncs at stop need not be slow
        srv.close()


def test_kill9(binary, shim):
    srv = ShimServer(binary, shim, ["--sync=always", "-t", "2",
                                    "--segment-size=64k"],
                     {"CRASHSHIM_DELAY": "fdatasync:2"} if shim else {})
    srv.start(timeout=30)
    acked = {}
    lock = threading.Lock()
    stop = time.monotonic() + 0.8

    def client(cid):
        s = srv.connect(timeout=10)
        i = 0
        try:
            while time.monotonic() < stop:
                k = "c%dk%d" % (cid, i % 50)
                v = "v%d-%d" % (cid, i)
                s.sendall(("set %s 0 0 %d\r\n%s\r\n"
                           % (k, len(v), v)).encode())
                if recv_lines(s, 1, 5) != [b"STORED"]:
                    break
                with lock:
                    acked[k] = v
                i += 1
        except OSError:
            pass

    ths = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in ths:
        t.start()
    time.sleep(0.5)
    with lock:
        srv.kill()
        snapshot = dict(acked)
    for t in ths:
        t.join()
    # Acks that raced with the kill may be newer than the snapshot; the
    # value found must be the snapshot's or a later one of that client.
    plain = bcserver.Server(binary, "bitcached", ["--sync=always"])
    plain.tmp, srv.tmp = srv.tmp, plain.tmp
    try:
        plain.start(timeout=30)
        s = plain.connect(timeout=10)
        lost = []
        for k, v in snapshot.items():
            s.sendall(("get %s\r\n" % k).encode())
            data, _ = bcserver.recv_until(s, [b"END\r\n"])
            parts = data.split(b"\r\n")
            if len(parts) < 3:
                lost.append(k)
                continue
            have = parts[1].decode()
            if have != v and int(have.split("-")[1]) < int(v.split("-")[1]):
                lost.append(k)
        check("kill -9: none of %d acknowledged keys lost" % len(snapshot),
              not lost and len(snapshot) > 0, lost[:5])
        s.close()
    finally:
        plain.close()
        srv.close()


def test_sync_eio(binary, shim):
    srv = ShimServer(binary, shim, ["--sync=always", "-t", "1"], {})
    flag = os.path.join(srv.tmp, "fail-now")
    srv.shim_env = {"CRASHSHIM_DELAY": "fdatasync:300",
                    "CRASHSHIM_DELAY_WHILE": flag,
                    "CRASHSHIM_FAIL": "fdatasync:1:EIO",
                    "CRASHSHIM_FAIL_WHILE": flag}
    srv.start(timeout=30)
    try:
        a = srv.connect(timeout=10)
        b = srv.connect(timeout=10)
        a.sendall(b"set warm 0 0 1\r\nx\r\n")  # reserves a cas block
        check("a write before the fault succeeds",
              recv_lines(a, 1) == [b"STORED"])
        open(flag, "w").close()
        t0 = time.monotonic()
        a.sendall(b"set e1 0 0 1\r\nx\r\n"
                  b"set e2 0 0 1 noreply\r\ny\r\n"
                  b"version\r\n"
                  b"ms e3 1 q\r\nz\r\n"
                  b"mn\r\n")
        ext = struct.pack(">II", 0, 0)
        b.sendall(bin_req(0x01, b"e4", b"w", ext, opaque=0x1234) +
                  bin_req(0x11, b"e5", b"w", ext, opaque=0x5678) +
                  bin_req(0x0a, opaque=0x9abc))
        lines = recv_lines(a, 4)
        ms = (time.monotonic() - t0) * 1000
        # the journal's commit failed: the store recovers by itself unless
        # a segment sync fails too, which latches it read-only (here every
        # sync fails, and whether the latch came before a reply was made
        # depends on timing)
        err = b"SERVER_ERROR shard failed after an I/O error (read-only)"
        undone = b"SERVER_ERROR out of memory storing object"
        check("EIO on fdatasync: SERVER_ERROR for the waiting writes, in "
              "order, noreply silent",
              len(lines) == 4 and lines[0] in (err, undone) and
              lines[1].startswith(b"VERSION ") and lines[2] in (err, undone)
              and lines[3] == b"MN", lines)
        check("those errors came after the failed sync (%.0f ms)" % ms,
              ms >= 250, ms)
        r1, r2, r3 = bin_read(b), bin_read(b), bin_read(b)
        check("binary: status 0x84 with its opaque for set and setq, then "
              "the noop",
              r1 is not None and r1[:3] == (0x01, 0x84, 0x1234) and
              r2 is not None and r2[:3] == (0x11, 0x84, 0x5678) and
              r3 is not None and r3[:3] == (0x0a, 0, 0x9abc), (r1, r2, r3))
        st = srv.stats(b"storage")
        check("stats storage: failed 1", st.get("failed") == "1", st)
        # held while the store tries to recover, then latched: only then
        # does the reply say read-only
        t0 = time.monotonic()
        while True:
            a.sendall(b"set e1 0 0 1\r\nx\r\n")
            r = recv_lines(a, 1)
            if r != [undone] or time.monotonic() - t0 > 20:
                break
            time.sleep(0.05)
        check("a latched shard refuses the write at once, read-only",
              r == [err], r)
        a.close()
        b.close()
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
        srv.close()


def main():
    binary = cm.binary()
    shim = cm.usable_shim(binary)
    if shim is None:
        print("no crash shim, or a sanitizer build: no slow or failing "
              "disk; order, quiet modes and kill -9 only")
    test_no_stall(binary, shim)
    test_kill9(binary, shim)
    if shim is not None:
        test_sync_eio(binary, shim)
    sys.exit(bcserver.finish())


if __name__ == "__main__":
    main()
