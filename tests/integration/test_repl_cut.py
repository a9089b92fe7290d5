#!/usr/bin/env python3
"""test_repl_cut.py - a replica's state save after its store found a
segment cut short (issue 8): the store's sync reports the cut once (EIO)
and syncs the rest; the save that met it fails (logged), and is made
again at the next frame of the stream (a heartbeat comes every 100 ms),
not a save interval later, nor by ending the session.

The replica runs with --sync=never, so that no background sync meets the
cut before the replica's own save does. Its active segment's file, which
the store extended ahead of its records for appends through a mapping, is
cut back inside that extension (no record lost: the copies of the records
that follow still land inside the file), which the store's next sync
finds and reports.
"""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

SHARDS = "1"


def start_primary(bc, rport):
    p = bcserver.Server(bc, args=["--shards=" + SHARDS, "--repl-port",
                                  str(rport)])
    p.start()
    return p


def records_end(path):
    """The length of the segment's records: the extension ahead of them
    is zeros (the values written here have no zero byte)."""
    with open(path, "rb") as f:
        data = f.read()
    return len(data.rstrip(b"\0"))


def set_keys(sock, prefix, n):
    for i in range(n):
        sock.sendall(b"set %s%04d 0 0 8\r\nvalue-%02d\r\n" %
                     (prefix, i, i % 100))
        data, _ = bcserver.recv_until(sock, [b"\r\n"])
        if data != b"STORED\r\n":
            raise RuntimeError("set: %r" % data)


def in_step(r, p, want_key, timeout=20.0):
    """Until the replica follows p (its primary_store_id) and serves
    want_key. Returns its replication stats."""
    deadline = time.monotonic() + timeout
    pid = p.stats(b"replication").get("store_id")
    st = {}
    while time.monotonic() < deadline:
        st = r.stats(b"replication")
        if (st.get("primary_connected") == "1" and
                st.get("primary_store_id") == pid):
            s = r.connect()
            try:
                s.sendall(b"get " + want_key + b"\r\n")
                data, _ = bcserver.recv_until(s, [b"END\r\n"])
            finally:
                s.close()
            if data.startswith(b"VALUE"):
                return st
        time.sleep(0.05)
    return st


def state_pos(path):
    """The position in the replica's state file ("pos 0 SEG OFF")."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("pos 0 "):
                    return line.strip()
    except OSError:
        pass
    return None


def main():
    bc = bcserver.binary()
    check = bcserver.Checks()
    rport = bcserver.free_port()
    p = start_primary(bc, rport)
    r = bcserver.Server(bc, args=["--shards=" + SHARDS, "--sync=never",
                                  "--replica-of", "127.0.0.1:%d" % rport])
    log_path = os.path.join(r.tmp, "replica.log")
    # The replica's log (stderr) goes to a file of its own.
    log = open(log_path, "w")
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        r.start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    state = os.path.join(r.data, "replication")
    try:
        ps = p.connect()
        set_keys(ps, b"a", 200)
        check.that("replica follows the primary",
                   in_step(r, p, b"a0199").get("primary_connected") == "1")
        time.sleep(1.2)  # its periodic save made: nothing left to sync

        segs = sorted(glob.glob(os.path.join(r.data, "shard-000", "*.seg")))
        check.that("replica has a segment", len(segs) > 0)
        seg = segs[-1]
        size, end = os.path.getsize(seg), records_end(seg)
        keep = (end // 4096 + 2) * 4096  # two pages past the records
        check.that("the active segment is extended ahead of its records",
                   size > keep, "size %d, records %d" % (size, end))
        os.truncate(seg, keep)
        before = state_pos(state)

        set_keys(ps, b"b", 20)
        ps.close()
        check.that("replica applies what follows",
                   in_step(r, p, b"b0019").get("primary_connected") == "1")
        # The save due a second after the last one meets the cut, fails,
        # and is made again at the next frame.
        deadline = time.monotonic() + 10
        failed_at = saved_at = None
        while time.monotonic() < deadline and saved_at is None:
            with open(log_path) as f:
                said = f.read()
            now = time.monotonic()
            if failed_at is None and "positions not saved" in said:
                failed_at = now
            pos = state_pos(state)
            if failed_at is not None and pos is not None and pos != before:
                saved_at = now
            time.sleep(0.02)
        with open(log_path) as f:
            said = f.read()
        check.that("the save that met the cut failed and was logged",
                   failed_at is not None, said)
        check.that("the positions were saved right after",
                   saved_at is not None and saved_at - failed_at < 0.6,
                   "failed at %r, saved at %r" % (failed_at, saved_at))
        st = r.stats(b"storage")
        check.that("the replica's store counted the cut",
                   st.get("segments_cut") == "1", repr(st.get("segments_cut")))
        check.that("the session did not end for it",
                   "lost primary" not in said, said)
        check.that("still connected",
                   r.stats(b"replication").get("primary_connected") == "1")
    finally:
        p.close()
        r.close()
        log.close()
    sys.exit(check.finish())


if __name__ == "__main__":
    main()
