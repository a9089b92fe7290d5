#!/usr/bin/env python3
# test_roll_held_sync.py - roll-over under --sync=interval and never with
# the disk's syncs held: the LD_PRELOAD shim (crashshim.c) holds every
# fdatasync and fsync on the data dir (CRASHSHIM_HOLD_WHILE) while clients
# set values of mixed sizes, delete and touch on 64 KiB segments with a low
# compaction ratio, with and without a disk limit, so that many segments roll over and
# wait for their sync while compaction, eviction and the hint pass want
# them. Each client owns its keys, so the last acknowledged reply of each
# key says what it must read as (a miss allowed where eviction may have
# dropped it under the disk limit, never an older value nor a deleted
# one).
#
# Without a disk limit the writes must go on while the syncs are held (a
# roll-over leaves the closed segment's sync to the sync thread): several
# roll-overs happen meanwhile. Two endings per mode:
#   - "term": SIGTERM while the syncs are still held, released a moment
#     later: the stop must sync everything and exit 0, and the restarted
#     server must hold every acknowledged write; or it exits non-zero and
#     says in its log what was lost (no sync fails here, so only 0 passes);
#   - "kill": the syncs released, then SIGKILL: a process crash loses
#     nothing acknowledged.
# Under --sync=always (no disk limit) a write is answered only once its
# journal commit is synced, so none is while the syncs are held; the
# segments its roll-overs closed before (every write in them committed)
# wait for the sync thread, and both endings must still lose nothing
# acknowledged.
# The shim cannot run under a sanitizer build: skipped there (77).
#
# Environment: BITCACHED, CRASH_SEED (replay), HOLD_S (how long the syncs
# are held, default 1.5).
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

CLIENTS = 6
KEYS_PER = 40
SIZES = (20, 300, 2500, 9000)
HOLD_S = float(os.environ.get("HOLD_S", "1.5") or 1.5)
# Segments a held sync may see made: per shard (2 here) the closed ones
# allowed to wait for the sync thread (4, cask_log.c CASK_UNSYNCED_MAX)
# and the one each roll-over starts, with room for a compaction's output.
UNSYNCED_BOUND = 2 * (4 + 1) + 4


def args(mode, limit):
    a = ["--sync=" + mode, "--segment-size=64k", "--compact-ratio=0.1",
         "--shards=2", "--sync-interval-ms=100", "-t", "2"]
    return a + ["--disk-limit=4m"] if limit else a


class Client(threading.Thread):
    """Writes its own keys; model[key] is ("v", value) or ("gone",)
    after each acknowledged reply; "maybe" when a reply did not come."""

    def __init__(self, port, idx, rnd, stop, go):
        super().__init__(daemon=True)
        self.port = port
        self.idx = idx
        self.rnd = rnd
        self.stop = stop
        self.go = go  # cleared: pause before the next request
        self.model = {}
        self.unsure = set()
        self.acked = 0
        self.errors = 0

    def key(self, i):
        return b"c%dk%d" % (self.idx, i)

    def settle(self, k, r, acks, state):
        """Count answer r to a change of k: one of acks is acknowledged (k
        becomes state, unless that is None), a SERVER_ERROR is an error;
        False for any other answer."""
        if r in acks:
            if state is not None:
                self.model[k] = state
            self.unsure.discard(k)
            self.acked += 1
        elif r.startswith(b"SERVER_ERROR"):
            self.errors += 1
        else:
            return False
        return True

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), 5)
        except OSError:
            return
        s.settimeout(30)
        f = s.makefile("rb")
        seq = 0
        try:
            while not self.stop.is_set():
                self.go.wait()
                k = self.key(self.rnd.randrange(KEYS_PER))
                op = self.rnd.random()
                seq += 1
                self.unsure.add(k)
                if op < 0.7:
                    n = self.rnd.choice(SIZES)
                    tag = b"%s:%d:" % (k, seq)
                    v = (tag * (n // len(tag) + 1))[:n]
                    s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, n, v))
                    ok = self.settle(k, f.readline(), (b"STORED\r\n",), ("v", v))
                elif op < 0.9:
                    s.sendall(b"delete %s\r\n" % k)
                    ok = self.settle(
                        k, f.readline(), (b"DELETED\r\n", b"NOT_FOUND\r\n"), ("gone",)
                    )
                else:
                    s.sendall(b"touch %s 0\r\n" % k)
                    ok = self.settle(
                        k, f.readline(), (b"TOUCHED\r\n", b"NOT_FOUND\r\n"), None
                    )
                if not ok:
                    return
        except OSError:
            return
        finally:
            s.close()


def get(sock, f, key):
    sock.sendall(b"get " + key + b"\r\n")
    line = f.readline()
    if line == b"END\r\n":
        return None
    n = int(line.split()[3])
    v = f.read(n + 2)[:-2]
    f.readline()
    return v


def check(srv, clients, what, failures, strict):
    s = srv.connect()
    f = s.makefile("rb")
    bad = 0
    try:
        for c in clients:
            for k, want in c.model.items():
                if k in c.unsure:
                    continue
                got = get(s, f, k)
                if want[0] == "gone" and got is not None:
                    bad += 1
                    failures.append("%s: %s deleted, reads %r..." % (
                        what, k.decode(), got[:24]))
                elif want[0] == "v" and got is not None and got != want[1]:
                    bad += 1
                    failures.append("%s: %s reads %r..., last stored %r..." % (
                        what, k.decode(), got[:24], want[1][:24]))
                elif want[0] == "v" and got is None and strict:
                    # without a disk limit nothing is evicted
                    bad += 1
                    failures.append("%s: %s lost" % (what, k.decode()))
    finally:
        s.close()
    return bad


def count_segs(d):
    n = 0
    for _, _, files in os.walk(d):
        n += sum(1 for x in files if x.endswith(".seg"))
    return n


def new_ids(d, before):
    """Segment ids made since before (per shard directory: its highest
    id then), and the highest ids now. Counts roll-overs where the number
    of files does not: compaction removes files meanwhile."""
    now, made = {}, 0
    for root, _, files in os.walk(d):
        ids = [int(x[:-4], 16) for x in files if x.endswith(".seg")]
        if ids:
            now[root] = max(ids)
            made += max(0, now[root] - before.get(root, now[root]))
    return made, now


def settle_syncs(port):
    """Wait, writers paused, until the server's sync count stays still."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        last = None
        still_since = time.monotonic()
        while time.monotonic() - start < 20:
            n = bcserver.stats_on(s, b"storage").get("syncs")
            now = time.monotonic()
            if n != last:
                last, still_since = n, now
            elif now - still_since >= 0.5 and now - start >= 1.0:
                return
            time.sleep(0.1)


def one(binary, shim, tmp, mode, limit, ending, rnd, failures):
    hold = os.path.join(tmp, "hold-%s-%s-%d" % (mode, ending, limit))
    srv = bcserver.ShimServer(binary, shim, args(mode, limit),
                              {"CRASHSHIM_DELAY": "fdatasync,fsync:5",
                               "CRASHSHIM_DELAY_WHILE": hold,
                               "CRASHSHIM_HOLD_WHILE": hold})
    srv.start()
    stop = threading.Event()
    go = threading.Event()
    go.set()
    clients = [Client(srv.port, i, cm.random.Random(rnd.randrange(1 << 30)),
                      stop, go) for i in range(CLIENTS)]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 20
    while (sum(c.acked for c in clients) == 0 and
           time.monotonic() < deadline):
        time.sleep(0.01)
    time.sleep(0.3)
    # Hold the syncs once the sync thread has caught up: the writers pause
    # until it has made no sync for half a second (a second at least, 20
    # at most). Otherwise, on a loaded machine, a shard may already have
    # its four closed segments waiting when the hold begins, and its
    # writers wait for their syncs at once, as they must (seen in a loaded
    # make check: a fixed second's pause, 64 segments, one write answered
    # while the syncs were held).
    go.clear()
    settle_syncs(srv.port)
    open(hold, "w").close()
    go.set()
    t0 = time.monotonic()
    segs0 = count_segs(srv.data)
    _, ids0 = new_ids(srv.data, {})
    acked0 = sum(c.acked for c in clients)
    time.sleep(HOLD_S)
    segs1 = count_segs(srv.data)
    made, _ = new_ids(srv.data, ids0)
    held_acks = sum(c.acked for c in clients) - acked0
    line = "%-8s %-8s %-4s" % (mode, "limit" if limit else "no-limit",
                               ending)
    rc = None
    if ending == "term":
        srv.proc.send_signal(15)
        time.sleep(0.5)
        still = srv.proc.poll() is None
        os.unlink(hold)
        try:
            rc = srv.proc.wait(30)
        except Exception:
            srv.kill()
            failures.append("%s: the stop did not end within 30 s of the "
                            "syncs' release" % line)
            rc = srv.proc.returncode
        stop.set()
        line += " held %.1fs, waited for the syncs: %s, exit %s" % (
            time.monotonic() - t0, "yes" if still else "no", rc)
        if not still and rc == 0:
            failures.append("%s: exit 0 while its syncs were held" % line)
    else:
        os.unlink(hold)
        time.sleep(0.3)
        stop.set()
        for c in clients:
            c.join(30)
        srv.kill()
        line += " held %.1fs, released, SIGKILL" % (time.monotonic() - t0)
    stop.set()
    for c in clients:
        c.join(30)
    acked = sum(c.acked for c in clients)
    errs = sum(c.errors for c in clients)
    line += ", acked %d (%d while held), segments %d -> %d while held, " \
        "SERVER_ERROR %d" % (acked, held_acks, segs0, segs1, errs)
    if not limit and mode != "always" and made < 2:
        # nothing waits for a closed segment's sync: without a disk limit
        # (eviction syncs its inputs first) the writes roll on
        failures.append("%s: only %d segments made while the syncs were "
                        "held" % (line, made))
    if segs1 > segs0 + UNSYNCED_BOUND:
        # but only so far: past a few closed segments a shard's writer
        # waits for their syncs, so the unsynced data stays bounded
        failures.append("%s: %d segments made while the syncs were held"
                        % (line, segs1 - segs0))
    if ending == "term" and rc != 0:
        # nothing failed here: the syncs were only slow
        failures.append("%s: exit %s after the syncs came back" % (line, rc))
    # restart without the shim on the same data dir
    srv.shim = None
    srv.start()
    bad = check(srv, clients, line[:24], failures, not limit)
    line += ", wrong after restart %d" % bad
    srv.close()
    cm.say(line)


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        cm.say("SKIP: no crash shim, or a sanitizer build")
        return 77
    seed = cm.seed()
    cm.say("held-sync roll-over test: %s, seed %d (CRASH_SEED=%d replays)" % (
        binary, seed, seed))
    rnd = cm.random.Random(seed)
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-heldsync."))
    failures = []
    try:
        for mode in ("interval", "never"):
            for limit in (False, True):
                for ending in ("term", "kill"):
                    one(binary, shim, tmp, mode, limit, ending, rnd,
                        failures)
        for ending in ("term", "kill"):
            one(binary, shim, tmp, "always", False, ending, rnd, failures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures[:30]:
        cm.say("FAIL " + f)
    cm.say("%s (seed %d)" % ("FAIL" if failures else "PASS", seed))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
