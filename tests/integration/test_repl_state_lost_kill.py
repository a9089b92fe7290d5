#!/usr/bin/env python3
"""test_repl_state_lost_kill.py - a replica whose store lost its state file
is killed at start-up after the store wrote its new state file and before
the replication file that forgets the primary replaced the old one (the
LD_PRELOAD crash shim kills it before the Nth rename in its data
directory, N = 1 .. 4). Restarted, it must still be copied whole and serve
every key the primary serves, as test_repl_state_lost.py checks for a
start that is not interrupted.

The store leaves DIR/state.lost (made before its new state file) until
the server has saved the replication file that forgets the primary
(cask_state_lost_done), so a start cut short in between reports the loss
again at the next. Without that mark the restarted replica resumes from
its old positions and lacks what it held. Skipped (77)
without the shim or against a sanitizer build.
"""
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402
from test_repl_state_lost import serves, set_flush_set, until_served  # noqa: E402

SHARDS = "2"


def main():
    bc = bcserver.binary()
    shim = cm.usable_shim(bc)
    if not shim:
        print("SKIP: no crash shim, or a sanitizer build")
        return 77
    check = bcserver.Checks()
    rport = bcserver.free_port()
    p = bcserver.Server(bc, args=["--shards=" + SHARDS, "--repl-port",
                                  str(rport)])
    p.start()
    r = bcserver.ShimServer(bc, None, ["--shards=" + SHARDS, "--replica-of",
                                       "127.0.0.1:%d" % rport], {})
    r.start()
    old = [b"a%04d" % i for i in range(100)]
    new = [b"b%04d" % i for i in range(100)]
    try:
        set_flush_set(p)
        check.that("the replica serves the keys set after the flush",
                   until_served(r, p, new) == len(new))
        time.sleep(1.2)  # its positions saved
        check.that("the replica stops cleanly", r.stop() == 0)
        os.unlink(os.path.join(r.data, "state"))
        lost = os.path.join(r.tmp, "state-lost-copy")
        shutil.copytree(r.data, lost)
        for n in range(1, 5):
            shutil.rmtree(r.data)
            shutil.copytree(lost, r.data)
            r.shim = shim
            r.shim_env = {"CRASHSHIM_KILL": "rename:%d:before" % n}
            try:
                r.start()
            except RuntimeError:
                pass  # killed before it listened
            for _ in range(200):
                if not r.alive():
                    break
                time.sleep(0.05)
            died = not r.alive()
            r.kill()
            r.shim = None
            r.shim_env = {}
            r.start()
            got = until_served(r, p, new, timeout=10)
            check.that("killed before rename %d at start-up (%s), restarted: "
                       "the replica serves every key the primary serves" % (
                           n, "fired" if died else "not reached"),
                       got == len(new), "%d of %d" % (got, len(new)))
            check.that("and none the primary's flush_all invalidated",
                       serves(r, old) == 0)
            r.kill()
    finally:
        p.close()
        r.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
