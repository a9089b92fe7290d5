#!/usr/bin/env python3
"""bench_repl.py - replication figures (issue 14), not part of make check.
Run from the build tree after `make`; prints name=value lines.

  set100_no_replica_ops_s    memaslap set-only throughput of a primary alone
  set100_one_replica_ops_s   the same with one replica attached (and ratio)
  set100_min_replicas_ack_1_ops_s  and with --min-replicas-ack 1
  repl_records_s, repl_mb_s  what the replica applied during that run
  repl_lag_s_median/max, repl_lag_records_median/max
                             the replica's lag sampled every 0.25 s
  repl_catch_up_s            from the end of the load to lag 0
  backlog_records_s          a replica restarted after missing NKEYS/2
                             sets applies the log it missed at this rate
  full_copy_s_<N>_keys       a new replica of a store of N keys (100-byte
                             values) until every shard is copied, and MB/s

Environment: BITCACHED (./bitcached), MEMASLAP (memcaslap or memaslap),
BENCH_LOAD (tests/bench/bench_load), SECS (8), CONC (64), THREADS (4),
NKEYS (1000000; 0 skips the full copy).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import bcserver  # noqa: E402
import test_repl as tr  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMASLAP = os.environ.get("MEMASLAP") or shutil.which("memcaslap") or \
    shutil.which("memaslap")
BENCH_LOAD = os.environ.get("BENCH_LOAD", "tests/bench/bench_load")
SECS = int(os.environ.get("SECS", "8"))
CONC = int(os.environ.get("CONC", "64"))
THREADS = os.environ.get("THREADS", "4")
NKEYS = int(os.environ.get("NKEYS", "1000000"))
SHARDS = "16"
tr.SHARDS = SHARDS


def server(args):
    s = bcserver.Server(BITCACHED, args=["-t", THREADS, "--shards=" + SHARDS]
                        + args)
    s.start()
    return s


def memaslap(port, cfg):
    out = subprocess.run([MEMASLAP, "-s", "127.0.0.1:%d" % port, "-F", cfg,
                          "-t", "%ds" % SECS, "-c", str(CONC), "-T", "2"],
                         capture_output=True, text=True).stdout
    tps = re.findall(r"TPS: (\d+)", out)
    return int(tps[-1]) if tps else 0


def set_only(cfg, with_replica, primary_args=()):
    rport = bcserver.free_port()
    p = server(["--repl-port", str(rport)] + list(primary_args))
    r = None
    samples = []
    stop = threading.Event()
    try:
        if with_replica:
            r = server(["--replica-of", "127.0.0.1:%d" % rport])
            rs, ps = r.connect(), p.connect()
            tr.wait_in_step(rs, ps)

        def sampler():
            while not stop.is_set():
                st = tr.stats(rs)
                samples.append((time.monotonic(),
                                int(st["records_applied"]),
                                int(st["bytes_received"]),
                                float(st["lag_seconds"]),
                                int(st["lag_records"])))
                time.sleep(0.25)
        if with_replica and not primary_args:
            th = threading.Thread(target=sampler)
            th.start()
        tps = memaslap(p.port, cfg)
        if with_replica and not primary_args:
            stop.set()
            th.join()
            t_load_end = time.monotonic()
            tr.wait_in_step(rs, ps, timeout=120)
            catch_up = time.monotonic() - t_load_end
            busy = samples[1:-1] or samples
            dt = busy[-1][0] - busy[0][0] or 1
            print("repl_records_s=%.0f" % ((busy[-1][1] - busy[0][1]) / dt))
            print("repl_mb_s=%.1f" % ((busy[-1][2] - busy[0][2]) / dt / 1e6))
            lags = [s[3] for s in busy]
            lrec = [s[4] for s in busy]
            print("repl_lag_s_median=%.3f" % statistics.median(lags))
            print("repl_lag_s_max=%.3f" % max(lags))
            print("repl_lag_records_median=%d" % statistics.median(lrec))
            print("repl_lag_records_max=%d" % max(lrec))
            print("repl_catch_up_s=%.2f" % catch_up)
        return tps
    finally:
        stop.set()
        p.close()
        if r is not None:
            r.close()


def backlog():
    """A replica stopped while NKEYS/2 sets land on the primary, then
    restarted: how fast it applies the log it missed (no full copy)."""
    rport = bcserver.free_port()
    p = server(["--repl-port", str(rport)])
    r = None
    try:
        r = server(["--replica-of", "127.0.0.1:%d" % rport])
        rs, ps = r.connect(), p.connect()
        tr.wait_in_step(rs, ps)
        rs.close()
        r.stop()
        n = max(NKEYS // 2, 1000)
        subprocess.run([BENCH_LOAD, "load", str(p.port), str(n), "100"],
                       check=True, stdout=subprocess.DEVNULL)
        full = int(tr.stats(ps)["full_syncs_served"])
        t0 = time.monotonic()
        r.start()
        rs = r.connect()
        st = tr.wait_in_step(rs, ps, timeout=600)
        t = time.monotonic() - t0
        applied = int(st["records_applied"])
        print("backlog_records=%d" % applied)
        print("backlog_catch_up_s=%.2f" % t)
        print("backlog_records_s=%.0f" % (applied / t))
        print("backlog_mb_s=%.1f" % (int(st["bytes_received"]) / t / 1e6))
        print("backlog_full_copies=%d"
              % (int(tr.stats(ps)["full_syncs_served"]) - full))
    finally:
        p.close()
        if r is not None:
            r.close()


def full_copy():
    rport = bcserver.free_port()
    p = server(["--repl-port", str(rport)])
    r = None
    try:
        subprocess.run([BENCH_LOAD, "load", str(p.port), str(NKEYS), "100"],
                       check=True)
        t0 = time.monotonic()
        r = server(["--replica-of", "127.0.0.1:%d" % rport])
        rs, ps = r.connect(), p.connect()
        st = tr.wait_in_step(rs, ps, timeout=600)
        t = time.monotonic() - t0
        print("full_copy_s_%d_keys=%.2f" % (NKEYS, t))
        print("full_copy_mb_s=%.1f" % (int(st["bytes_received"]) / t / 1e6))
        print("full_copy_syncs=%s" % st["full_syncs"])
    finally:
        p.close()
        if r is not None:
            r.close()


def main():
    for tool in (BITCACHED, MEMASLAP, BENCH_LOAD):
        if not bcserver.executable(tool):
            print("bench_repl.py: missing %r (make; libmemcached-tools)" % tool,
                  file=sys.stderr)
            return 77
    tmp = tempfile.mkdtemp(prefix="bc-bench-repl.")
    try:
        cfg = os.path.join(tmp, "set100.cfg")
        with open(cfg, "w") as f:
            f.write("key\n32 32 1\nvalue\n100 100 1\ncmd\n0 1.0\n1 0.0\n")
        alone = set_only(cfg, False)
        attached = set_only(cfg, True)
        acked = set_only(cfg, True, ["--min-replicas-ack", "1"])
        print("set100_no_replica_ops_s=%d" % alone)
        print("set100_one_replica_ops_s=%d" % attached)
        print("set100_one_replica_ratio=%.3f" % (attached / alone if alone
                                                 else 0))
        print("set100_min_replicas_ack_1_ops_s=%d" % acked)
        print("set100_min_replicas_ack_1_ratio=%.3f" % (acked / alone if alone
                                                        else 0))
        if NKEYS > 0:
            backlog()
            full_copy()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
