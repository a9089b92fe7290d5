#!/usr/bin/env python3
# test_fault_model.py - model-based fault test (issue 8): the workload and
# model of the crash test (crashmodel.py) while the LD_PRELOAD shim makes the
# server's file syscalls fail (EIO and ENOSPC on writes and syncs, EIO and
# ENOSPC on rename, EMFILE on open, EIO on reads) for about a second, and on a size-limited
# tmpfs data dir that fills up. Checked:
#   - no error acknowledged as success: a write that did not persist must not
#     have been answered STORED/DELETED/...; found after SIGKILL + restart as
#     LOST or RESURRECTED (SERVER_ERROR replies are fine; a failed flush_all
#     must change nothing);
#   - a SIGTERM while the fault lasts that exits 0 must have lost nothing;
#     one under always that exits non-zero must not log a loss (nothing
#     acknowledged is at risk there);
#   - the server restarts on the same data dir (a full disk included) and,
#     once the fault is gone, serves writes again without SERVER_ERROR.
#
# Environment: BITCACHED, CRASH_ITER=N (N rounds), CRASH_SEED (replay),
# FAULT_ONLY=group:errno:sync (run only that FAULTS entry, e.g.
# sync:EIO:always, and no tmpfs part), FAULT_TERM=1 or 0 (always or never
# stop with SIGTERM during the fault), CRASH_KEEP=1 (on a failure keep the
# temp dir: server logs, data dirs, and a copy of each data dir as the
# stop left it, before the restart that judged it).
# The shim part is skipped against a sanitizer build, the tmpfs part where
# mounting is not allowed; with both skipped the test exits 77.
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402

KEYS = 48
CLIENTS = 4
SIZES = [(80, 10, 400), (15, 400, 4000), (5, 4000, 20000)]
WARMUP_S = 0.3
FAULT_S = 1.0
AFTER_S = 0.5

# (syscall group, errno, --sync mode)
FAULTS = [
    ("write", "EIO", "interval"),
    ("write", "ENOSPC", "interval"),
    ("sync", "EIO", "interval"),
    ("rename", "EIO", "interval"),
    ("rename", "ENOSPC", "interval"),
    ("open", "EMFILE", "interval"),
    ("read", "EIO", "interval"),
    ("alloc", "ENOSPC", "interval"),
    ("write", "ENOSPC", "always"),
    ("sync", "EIO", "always"),
    ("write", "EIO", "never"),
    ("sync", "EIO", "never"),
]


def server_args(sync):
    # --io-engine=threads: the shim fails the reads a thread makes, not
    # those the kernel makes for an io_uring (the ring's own faults are
    # tested through the storage seam, tests/unit/test_cask_uring.c)
    return ["--sync=" + sync, "--segment-size=64k", "--journal-size=64k",
            "--compact-ratio=0.2", "--io-engine=threads",
            "--shards=2", "--sync-interval-ms=200", "-t", "2"]


class Faults:
    def __init__(self, binary, shim, tmp, rnd):
        self.binary = binary
        self.shim = shim
        self.tmp = tmp
        self.rnd = rnd
        self.hard = []  # failures other than model violations
        self.models = {}
        self.servers = {}

    def server(self, sync):
        if sync not in self.servers:
            d = os.path.join(self.tmp, sync)
            os.makedirs(d)
            self.servers[sync] = cm.Server(
                self.binary, os.path.join(d, "data"), server_args(sync),
                os.path.join(d, "server.log"))
            self.models[sync] = cm.Model(KEYS, SIZES, self.rnd,
                                         strict_flush=True)
        return self.servers[sync], self.models[sync]

    def restart_verify(self, srv, model, label):
        """Restart without faults and judge every key. False if it did not
        start."""
        if not srv.start():
            self.hard.append("%s: restart failed (status %s)\n%s" % (
                label, srv.proc.returncode, srv.log_tail()))
            return False
        try:
            model.verify(srv.port, label)
        except cm.Dead as e:
            self.hard.append("%s: %s (%s)\n%s" % (
                label, e, srv.reap(), srv.log_tail()))
            return False
        return True

    def serves_again(self, srv, model, label):
        """With the fault gone, writes must succeed: a short workload may
        see no SERVER_ERROR."""
        e0 = model.stats["server_error"]
        a0 = model.stats["acked"]
        t0 = time.monotonic()
        stop, threads = model.run(
            srv.port, CLIENTS, lambda: time.monotonic() - t0 > AFTER_S)
        cm.stop_clients(stop, threads)
        errs = model.stats["server_error"] - e0
        if errs or model.stats["acked"] == a0:
            self.hard.append("%s: after the fault stopped and a restart, %d "
                             "SERVER_ERROR in %d replies" % (
                                 label, errs, model.stats["acked"] - a0 + errs))
        return errs

    def one(self, group, err, sync, term):
        srv, model = self.server(sync)
        label = "%s %s on %s (%s), %s" % (
            sync, err, group, ",".join(cm.GROUPS[group][:3]),
            "SIGTERM during the fault" if term else "SIGKILL after it")
        flag = os.path.join(self.tmp, "fault.on")
        stats = os.path.join(self.tmp, "shim.stats")
        for f in (flag, stats):
            if os.path.exists(f):
                os.unlink(f)
        env = {"LD_PRELOAD": self.shim, "CRASHSHIM_DIR": self.tmp,
               "CRASHSHIM_STATS": stats,
               "CRASHSHIM_FAIL": "%s:1:%s" % (",".join(cm.GROUPS[group]), err),
               "CRASHSHIM_FAIL_WHILE": flag}
        before = len(model.errors)
        logpos = os.path.getsize(srv.log) if os.path.exists(srv.log) else 0
        if not srv.start(env):
            self.hard.append("%s: start failed (status %s)\n%s" % (
                label, srv.proc.returncode, srv.log_tail()))
            return
        t0 = time.monotonic()
        phase = {"on": None, "off": None, "status": "killed"}
        marks = {}

        def control():
            t = time.monotonic() - t0
            if phase["on"] is None and t >= WARMUP_S:
                open(flag, "w").close()
                phase["on"] = t
                marks["on"] = collections.Counter(model.stats)
            elif phase["on"] is not None and phase["off"] is None and \
                    t >= WARMUP_S + FAULT_S:
                marks["off"] = collections.Counter(model.stats)
                if term:
                    st = srv.stop()
                    phase["status"] = "exit %s" % st
                    phase["exit"] = st
                    return True
                os.unlink(flag)
                phase["off"] = t
            elif phase["off"] is not None and t >= WARMUP_S + FAULT_S + \
                    AFTER_S:
                marks["end"] = collections.Counter(model.stats)
                return True
            return not srv.alive()

        stop, threads = model.run(srv.port, CLIENTS, control)
        srv.kill()
        cm.stop_clients(stop, threads)
        if os.path.exists(flag):
            os.unlink(flag)
        if os.environ.get("CRASH_KEEP"):
            self.nsnap = getattr(self, "nsnap", 0) + 1
            shutil.copytree(srv.datadir, "%s.stopped.%d" % (
                srv.datadir, self.nsnap))
        failed_calls = cm.read_stats(stats).get("#failed", 0)
        if term and sync == "always" and phase.get("exit") not in (None, 0):
            # A stop that could not sync says what that leaves at risk:
            # under always nothing acknowledged (each reply waited for a
            # sync or a journal commit), not a loss.
            with open(srv.log, "rb") as f:
                f.seek(logpos)
                text = f.read().decode(errors="replace")
            for claim in ("may not be on disk", "are lost, and after a"):
                if claim in text:
                    self.hard.append("%s: the stop logs %r, though nothing "
                                     "acknowledged is at risk under always"
                                     "\n%s" % (label, claim, text[-2000:]))

        def delta(a, b, k):
            return marks.get(b, {}).get(k, 0) - marks.get(a, {}).get(k, 0)

        ok = self.restart_verify(srv, model, "after " + label)
        c = model.counts(model.errors[before:])
        line = ("%-58s %5d calls failed; during the fault %d ok, %d "
                "SERVER_ERROR" % (label, failed_calls,
                                  delta("on", "off", "acked"),
                                  delta("on", "off", "server_error")))
        if not term:
            line += "; after it %d ok, %d SERVER_ERROR" % (
                delta("off", "end", "acked"),
                delta("off", "end", "server_error"))
        else:
            line += "; stop: %s" % phase["status"]
        line += "; lost %d resurrected %d foreign %d" % (
            c["LOST"], c["RESURRECTED"], c["FOREIGN"])
        cm.say(line)
        # Only what the restart found counts against the clean stop; what
        # was seen live was wrong before the stop.
        after = [e for e in model.errors[before:]
                 if e[1].startswith("after ") and e[0] != "FOREIGN"]
        if term and phase.get("exit") == 0 and after:
            self.hard.append("%s: SIGTERM exited 0 but %d acknowledged "
                             "operations were undone after the restart" % (
                                 label, len(after)))
        if failed_calls == 0:
            cm.say("    (no %s call failed: the server made none)" % group)
        if not ok:
            return
        self.serves_again(srv, model, label)
        srv.kill()
        if self.restart_verify(srv, model, "after serving again, " + label):
            # A clean stop, so that what the verification wrote is not
            # charged to the next scenario.
            st = srv.stop()
            if st != 0:
                self.hard.append("%s: SIGTERM with no fault left: %s\n%s" % (
                    label, st, srv.log_tail()))
        srv.kill()

    def tmpfs(self):
        """A tmpfs data dir that fills up: errors are SERVER_ERROR, nothing
        acknowledged is lost, the server restarts on the full disk, and serves
        again once there is room."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            cm.say("SKIP tmpfs part: mounting a tmpfs needs root")
            return False
        mnt = os.path.join(self.tmp, "tmpfs")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                            mnt], capture_output=True)
        if r.returncode != 0:
            cm.say("SKIP tmpfs part: cannot mount a tmpfs here (%s)" %
                   r.stderr.decode(errors="replace").strip())
            return False
        srv = cm.Server(self.binary, os.path.join(mnt, "data"),
                        server_args("interval"),
                        os.path.join(self.tmp, "tmpfs-server.log"))
        model = cm.Model(160, [(50, 2000, 8000), (50, 8000, 30000)],
                         self.rnd, strict_flush=True)
        label = "tmpfs 2m full"
        try:
            if not srv.start():
                self.hard.append("%s: start failed (status %s)\n%s" % (
                    label, srv.proc.returncode, srv.log_tail()))
                return True
            t0 = time.monotonic()
            stop, threads = model.run(
                srv.port, CLIENTS, lambda: time.monotonic() - t0 > 2.5, 0.0)
            cm.stop_clients(stop, threads)
            full = collections.Counter(model.stats)
            srv.kill()
            cm.say("%s: %d ok, %d SERVER_ERROR (%d on set, %d on delete) "
                   "while filling" % (
                       label, full["acked"], full["server_error"],
                       full["server_error set"],
                       full["server_error delete"]))
            if full["server_error"] == 0:
                cm.say("    (the disk never filled)")
            if self.restart_verify(srv, model,
                                   "restart on the full disk, " + label):
                # Deletes must still work on the full disk (an operator
                # empties it that way): one pass over every key.
                e0 = model.stats["server_error delete"]
                conn = cm.Conn(srv.port)
                try:
                    for key in model.keys:
                        model.op(conn, self.rnd, key, "delete")
                except cm.Dead as e:
                    self.hard.append("%s: server gone while deleting on "
                                     "the full disk: %s (%s)" % (
                                         label, e, srv.reap()))
                finally:
                    conn.close()
                d = model.stats["server_error delete"] - e0
                cm.say("%s: after the restart on the full disk, %d of %d "
                       "deletes answered SERVER_ERROR" % (
                           label, d, len(model.keys)))
                if d:
                    self.hard.append("%s: %d deletes failed on a full disk" % (
                        label, d))
                srv.kill()
            subprocess.run(["mount", "-o", "remount,size=64m", mnt],
                           check=True)
            if self.restart_verify(srv, model, "after room returned, " +
                                   label):
                self.serves_again(srv, model, label + ", room returned")
                srv.kill()
                self.restart_verify(srv, model,
                                    "after serving again, " + label)
            srv.kill()
            c = model.counts()
            cm.say("%s: lost %d resurrected %d foreign %d" % (
                label, c["LOST"], c["RESURRECTED"], c["FOREIGN"]))
            if model.errors or model.other:
                cm.report_errors(model)
                self.hard.append("%s: model violations" % label)
        finally:
            srv.kill()
            subprocess.run(["umount", mnt], capture_output=True)
        return True


def main():
    t_start = time.monotonic()
    binary = cm.binary()
    seed = cm.seed()
    rounds = cm.iterations()
    sanitized = cm.is_sanitized(binary)
    shim = "" if sanitized else cm.shim_path()
    cm.say("fault model test: binary %s, seed %d (CRASH_SEED=%d replays)" % (
        binary, seed, seed))
    if sanitized:
        cm.say("SKIP injected faults: the LD_PRELOAD shim cannot run under "
               "ASan (sanitizer build)")
    elif not shim:
        cm.say("ERROR: crashshim.so not built (make check builds it)")
        return 99
    only = os.environ.get("FAULT_ONLY", "")
    faults = [x for x in FAULTS if not only or ":".join(x) == only]
    if not faults:
        cm.say("ERROR: FAULT_ONLY=%s names no FAULTS entry" % only)
        return 99
    force_term = os.environ.get("FAULT_TERM", "")
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-fault."))
    f = Faults(binary, shim, tmp, cm.random.Random(seed))
    ran = False
    failed = True
    try:
        if shim:
            for r in range(rounds):
                for group, err, sync in faults:
                    term = f.rnd.random() < 0.3
                    if force_term:
                        term = force_term == "1"
                    f.one(group, err, sync, term=term)
            ran = True
            for sync, model in f.models.items():
                if model.errors or model.other:
                    cm.say("--- %s" % sync)
                    cm.report_errors(model)
                    f.hard.append("%s: model violations" % sync)
                if model.stats["timeout"]:
                    f.hard.append("%s: %d requests got no reply within 15 s "
                                  "from a running server" % (
                                      sync, model.stats["timeout"]))
        if not only and f.tmpfs():
            ran = True
        failed = bool(f.hard)
    finally:
        for srv in f.servers.values():
            srv.kill()
        if failed and os.environ.get("CRASH_KEEP"):
            cm.say("data kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not ran:
        cm.say("SKIP: neither the shim nor a tmpfs mount is available")
        return 77
    for h in f.hard:
        cm.say("FAIL: " + h)
    cm.say("%s (seed %d, %.0f s)" % ("FAIL" if f.hard else "PASS", seed,
                                     time.monotonic() - t_start))
    return 1 if f.hard else 0


if __name__ == "__main__":
    sys.exit(cm.run_main(main))
