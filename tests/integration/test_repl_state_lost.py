#!/usr/bin/env python3
"""test_repl_state_lost.py - a replica whose store lost its state file
(issue 8). Such a store treats everything on disk as flushed, since the
flush point went with the file. On a replica the primary's threshold is
the true one: the replica forgets its primary and is copied whole, so it
serves again what the primary serves (and still nothing the primary's
flush_all invalidated), instead of lacking those items until some later
full copy.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402
from test_repl_cut import set_keys  # noqa: E402

SHARDS = "2"


def set_flush_set(p):
    """On the primary p: set a0000..a0099, flush_all, set b0000..b0099.
    Returns the answer to the flush_all."""
    ps = p.connect()
    set_keys(ps, b"a", 100)
    ps.sendall(b"flush_all\r\n")
    data, _ = bcserver.recv_until(ps, [b"\r\n"])
    set_keys(ps, b"b", 100)
    ps.close()
    return data


def serves(r, keys):
    """How many of keys the server r answers with a value."""
    s = r.connect()
    try:
        n = 0
        for k in keys:
            if bcserver.get_text(s, k).startswith(b"VALUE"):
                n += 1
        return n
    finally:
        s.close()


def until_served(r, p, keys, timeout=20.0):
    """Until r follows p and serves every one of keys; how many it serves."""
    deadline = time.monotonic() + timeout
    pid = p.stats(b"replication").get("store_id")
    n = 0
    while time.monotonic() < deadline:
        st = r.stats(b"replication")
        if (st.get("primary_connected") == "1" and
                st.get("primary_store_id") == pid):
            n = serves(r, keys)
            if n == len(keys):
                return n
        time.sleep(0.05)
    return n


def main():
    bc = bcserver.binary()
    check = bcserver.Checks()
    rport = bcserver.free_port()
    p = bcserver.Server(bc, args=["--shards=" + SHARDS, "--repl-port",
                                  str(rport)])
    p.start()
    r = bcserver.Server(bc, args=["--shards=" + SHARDS,
                                  "--replica-of", "127.0.0.1:%d" % rport])
    r.start()
    old = [b"a%04d" % i for i in range(100)]
    new = [b"b%04d" % i for i in range(100)]
    try:
        data = set_flush_set(p)
        check.that("flush_all on the primary", data == b"OK\r\n", repr(data))
        check.that("the replica serves the keys set after the flush",
                   until_served(r, p, new) == len(new))
        check.that("and none flushed", serves(r, old) == 0)
        time.sleep(1.2)  # its positions saved
        check.that("the replica stops cleanly", r.stop() == 0)

        state = os.path.join(r.data, "state")
        check.that("the replica's store has a state file",
                   os.path.exists(state))
        os.unlink(state)
        r.start()
        got = until_served(r, p, new)
        check.that("after losing its state file the replica serves every "
                   "key the primary serves", got == len(new),
                   "%d of %d" % (got, len(new)))
        check.that("and none the primary's flush_all invalidated",
                   serves(r, old) == 0)
        st = r.stats(b"replication")
        check.that("it was copied whole", st.get("full_syncs", "0") != "0",
                   repr(st.get("full_syncs")))
    finally:
        p.close()
        r.close()
    sys.exit(check.finish())


if __name__ == "__main__":
    main()
