#!/usr/bin/env python3
"""test_repl.py - replication between two bitcached processes on loopback
(issue 14): a replica (--replica-of) follows a primary's writes (sets,
overwrites, deletes, touches, incr, append, flush_all) until every key is
equal, cas included; refuses writes with SERVER_ERROR (text, meta) and an
error status (binary); a replica killed mid-stream and restarted resumes
from its saved positions without a full copy; compaction on the primary
while it streams (tiny segments) costs no full copy either and loses
nothing; the primary killed, `replica_of none` promotes the replica, which
then holds every write the primary acknowledged before its reported lag
was 0, and takes writes.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

failures = []
SHARDS = "4"


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def cmd(sock, line):
    sock.sendall(line)
    data, _ = bcserver.recv_until(sock, [b"\r\n"])
    return data


def pipeline(sock, reqs, nreplies):
    """Send requests, read nreplies CRLF-terminated reply lines."""
    sock.sendall(b"".join(reqs))
    data = b""
    while data.count(b"\r\n") < nreplies:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data.split(b"\r\n")[:nreplies]


def stats(sock, sub=b"replication"):
    sock.sendall(b"stats " + sub + b"\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    out = {}
    for line in data.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def shard_compactions(sock):
    """Each shard's count of compactions run, from stats storage."""
    st = stats(sock, b"storage")
    return [int(st["shard%d:compactions" % i]) for i in range(int(SHARDS))]


def dump(sock, keys):
    """key -> (flags, cas, value) for the keys present, by gets."""
    out = {}
    for i in range(0, len(keys), 100):
        batch = keys[i:i + 100]
        sock.sendall(b"gets " + b" ".join(batch) + b"\r\n")
        data, _ = bcserver.recv_until(sock, [b"END\r\n"])
        pos = 0
        while True:
            nl = data.index(b"\r\n", pos)
            line = data[pos:nl]
            if line == b"END":
                break
            _, key, flags, n, cas = line.split(b" ")
            n = int(n)
            out[key] = (int(flags), int(cas), data[nl + 2:nl + 2 + n])
            pos = nl + 2 + n + 2
    return out


def start_primary(bc, extra=()):
    rport = bcserver.free_port()
    p = bcserver.Server(bc, args=["--shards=" + SHARDS, "--repl-port",
                                  str(rport)] + list(extra))
    p.start()
    return p, rport


def start_replica(bc, rport, tmp=None):
    r = bcserver.Server(bc, args=["--shards=" + SHARDS, "--replica-of",
                                  "127.0.0.1:%d" % rport])
    if tmp is not None:
        r.tmp = tmp  # same data directory as before
    r.start()
    return r


def wait_in_step(rs, ps, timeout=20.0):
    """Until the replica has applied every record the primary appended and
    its lag is 0 on every shard. Returns the replica's stats."""
    deadline = time.monotonic() + timeout
    st = {}
    while time.monotonic() < deadline:
        want = int(stats(ps)["records_appended"])
        st = stats(rs)
        if (st.get("primary_connected") == "1" and
                st.get("shards_in_step") == SHARDS and
                st.get("lag_records") == "0"):
            st2 = stats(ps)
            if int(st2["records_appended"]) == want:
                acked = int(st2.get("replica0:acked_records", "-1"))
                if acked == want or want == 0:
                    return st
        time.sleep(0.05)
    return st


def write_load(ps, lo, hi, seed):
    """Sets, overwrites, deletes, touches, incr and append over keys
    lo..hi-1; returns the keys touched."""
    keys = [b"k%06d" % i for i in range(lo, hi)]
    reqs = []
    for i, k in enumerate(keys):
        v = b"%d-%s" % (seed, k) * (1 + i % 7)
        reqs.append(b"set %s %d 0 %d\r\n%s\r\n" % (k, i % 5, len(v), v))
    pipeline(ps, reqs, len(reqs))
    reqs = []
    for i, k in enumerate(keys):
        if i % 5 == 0:
            reqs.append(b"delete " + k + b"\r\n")
        elif i % 5 == 1:
            reqs.append(b"touch " + k + b" 3600\r\n")
        elif i % 5 == 2:
            reqs.append(b"append " + k + b" 0 0 3\r\nabc\r\n")
        elif i % 5 == 3:
            reqs.append(b"set " + k + b" 7 0 2\r\n42\r\n")
        else:
            reqs.append(b"set " + k + b" 1 -1 1\r\nx\r\n")  # expired at once
    pipeline(ps, reqs, len(reqs))
    reqs = [b"incr " + k + b" 5\r\n" for i, k in enumerate(keys)
            if i % 5 == 3]
    pipeline(ps, reqs, len(reqs))
    return keys


def compare(ps, rs, keys, what):
    a, b = dump(ps, keys), dump(rs, keys)
    check(len(a) > 0, what + ": primary has keys")
    missing = [k for k in a if k not in b]
    extra = [k for k in b if k not in a]
    diff = [k for k in a if k in b and a[k] != b[k]]
    check(not missing and not extra and not diff,
          "%s: replica equal key by key (missing %d, extra %d, differ %d%s)"
          % (what, len(missing), len(extra), len(diff),
             (", e.g. %r %r %r" % (diff[0], a[diff[0]], b[diff[0]]))
             if diff else (", e.g. %r %r" % (missing[0], a[missing[0]])
                           if missing else "")))
    return a


def bin_set(sock, key, value):
    """Binary-protocol set; returns the response status."""
    extras = struct.pack(">II", 0, 0)
    hdr = struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), len(extras), 0, 0,
                      len(extras) + len(key) + len(value), 0, 0)
    sock.sendall(hdr + extras + key + value)
    resp = b""
    while len(resp) < 24:
        resp += sock.recv(1024)
    _, _, _, _, _, status, blen, _, _ = struct.unpack(">BBHBBHIIQ",
                                                       resp[:24])
    while len(resp) < 24 + blen:
        resp += sock.recv(1024)
    return status


def kill_under_load(bc):
    """The primary killed while a client writes: every write acknowledged
    before (last sample - lag_seconds) is on the promoted replica, but for
    at most lag_records of them (storage/REPLICATION.md, Lag)."""
    p, rport = start_primary(bc)
    r = start_replica(bc, rport)
    try:
        ps, rs = p.connect(), r.connect()
        wait_in_step(rs, ps)
        acked = []  # (time acknowledged, keys)
        sample = None
        n = 0
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            keys = [b"load%07d" % (n + i) for i in range(200)]
            n += 200
            pipeline(ps, [b"set %s 0 0 20\r\n%s\r\n" % (k, b"x" * 20)
                          for k in keys], len(keys))
            acked.append((time.time(), keys))
            if len(acked) % 5 == 0:
                st = stats(rs)
                sample = (time.time(), int(st["lag_records"]),
                          float(st["lag_seconds"]))
        p.kill()
        check(sample is not None and sample[2] >= 0, "lag sampled")
        check(cmd(rs, b"replica_of none\r\n") == b"OK\r\n",
              "promoted after the kill")
        t, lag_records, lag_s = sample
        old = [k for when, keys in acked if when < t - lag_s for k in keys]
        have = dump(rs, old)
        lost = len(old) - len(have)
        print("kill under load: %d writes acknowledged, %d older than the "
              "last lag sample (lag %d records, %.3f s): %d missing; "
              "%d of all missing" % (n, len(old), lag_records, lag_s, lost,
                                     n - len(dump(rs, [k for _, keys in acked
                                                       for k in keys]))))
        check(lost <= lag_records,
              "loss (%d) bounded by the lag reported before (%d)"
              % (lost, lag_records))
        rs.close()
        ps.close()
    finally:
        p.close()
        r.close()


def auth_case(bc):
    """With -Y on the primary a replica must log in (--replica-auth FILE
    with user:password); without it, or with a wrong password, it gets no
    data."""
    import tempfile
    tmp = bcserver.mkdtemp("bc-repl-auth.")
    pw = os.path.join(tmp, "users")
    with open(pw, "w") as f:
        f.write("alice:secret\n")
    good = os.path.join(tmp, "good")
    with open(good, "w") as f:
        f.write("alice:secret\n")
    bad = os.path.join(tmp, "bad")
    with open(bad, "w") as f:
        f.write("alice:wrong\n")
    p, rport = start_primary(bc, ["-Y", pw])
    reps = []
    try:
        ps = p.connect()
        check(cmd(ps, b"set x 0 0 12\r\nalice secret\r\n") == b"STORED\r\n",
              "client logs in to the primary")
        cmd(ps, b"set secret 0 0 2\r\nhi\r\n")
        for creds in (None, bad):
            r = start_replica(bc, rport)
            if creds is not None:
                r.args += ["--replica-auth", creds]
                r.stop()
                r.start()
            reps.append(r)
            time.sleep(0.5)
            st = stats(r.connect())
            check(st.get("primary_connected") == "0" and
                  int(st.get("records_applied", "1")) == 0,
                  "replica with %s credentials gets nothing"
                  % ("no" if creds is None else "wrong"))
            r.close()
        r = start_replica(bc, rport)
        r.args += ["--replica-auth", good]
        r.stop()
        r.start()
        reps.append(r)
        rs = r.connect()
        wait_in_step(rs, ps)
        check(cmd(rs, b"get secret\r\n") == b"VALUE secret 0 2\r\nhi\r\nEND\r\n",
              "replica with the right credentials copies the primary")
    finally:
        p.close()
        for r in reps:
            r.close()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def min_acks_case(bc):
    """--min-replicas-ack 1: the primary killed under load, every write it
    acknowledged is on the promoted replica; with no replica a write fails
    after --replica-ack-timeout."""
    p, rport = start_primary(bc, ["--min-replicas-ack", "1",
                                  "--replica-ack-timeout", "300"])
    r = None
    try:
        ps = p.connect()
        t0 = time.monotonic()
        got = cmd(ps, b"set lonely 0 0 1\r\nx\r\n")
        waited = time.monotonic() - t0
        check(got == b"SERVER_ERROR stored, but not acknowledged by enough "
              b"replicas in time\r\n" and waited >= 0.25,
              "no replica: the write fails after the timeout (%r, %.2f s)"
              % (got, waited))
        r = start_replica(bc, rport)
        rs = r.connect()
        wait_in_step(rs, ps)
        acked, n = [], 0
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            keys = [b"ack%07d" % (n + i) for i in range(50)]
            n += 50
            replies = pipeline(ps, [b"set %s 0 0 8\r\n%s\r\n" % (k, k[-8:])
                                    for k in keys], len(keys))
            acked += [k for k, rep in zip(keys, replies) if rep == b"STORED"]
        p.kill()
        check(cmd(rs, b"replica_of none\r\n") == b"OK\r\n",
              "promoted after the kill")
        have = dump(rs, acked)
        print("min-replicas-ack 1: %d writes acknowledged in 1 s, %d on the "
              "promoted replica" % (len(acked), len(have)))
        check(len(acked) > 0 and len(have) == len(acked),
              "every acknowledged write is on the replica (%d of %d)"
              % (len(have), len(acked)))
    finally:
        p.close()
        if r is not None:
            r.close()


def main():
    bc = bcserver.binary()

    # Small segments: the load rolls many, and compaction has work.
    p, rport = start_primary(bc, ["--segment-size=64k"])
    r = start_replica(bc, rport)
    r2 = None
    try:
        ps, rs = p.connect(), r.connect()
        keys = write_load(ps, 0, 3000, 1)
        cmd(ps, b"flush_all\r\n")
        keys += write_load(ps, 3000, 4000, 2)
        st = wait_in_step(rs, ps)
        check(st.get("lag_records") == "0", "replica in step: %r" % st)
        compare(ps, rs, keys, "after load")
        check(int(stats(ps)["full_syncs_served"]) == int(SHARDS),
              "a new replica gets one full copy per shard")

        # Writes are refused on the replica, in every protocol.
        ro = b"SERVER_ERROR read-only replica: writes go to the primary\r\n"
        check(cmd(rs, b"set a 0 0 1\r\nx\r\n") == ro, "text set refused")
        check(cmd(rs, b"delete k000001\r\n") == ro, "delete refused")
        check(cmd(rs, b"flush_all\r\n") == ro, "flush_all refused")
        check(cmd(rs, b"ms a 1\r\nx\r\n").startswith(b"SERVER_ERROR"),
              "meta set refused")
        rb = r.connect()
        check(bin_set(rb, b"a", b"x") != 0, "binary set refused")
        rb.close()
        check(cmd(rs, b"get k003003\r\n").startswith(b"VALUE"),
              "replica serves reads")

        # Replica killed mid-stream and restarted: it resumes.
        served = int(stats(ps)["full_syncs_served"])
        pipeline(ps, [b"set big%d 0 0 1000\r\n%s\r\n" % (i, b"b" * 1000)
                      for i in range(2000)], 2000)
        r.kill()
        keys2 = write_load(ps, 4000, 5000, 3)
        r = start_replica(bc, rport, r.tmp)
        rs = r.connect()
        st = wait_in_step(rs, ps)
        check(st.get("lag_records") == "0", "restarted replica in step")
        check(int(stats(ps)["full_syncs_served"]) == served,
              "restarted replica resumed without a full copy")
        compare(ps, rs, keys + keys2, "after replica restart")

        # Compaction on the primary while it streams.
        before = int(stats(ps, b"storage")["compactions"])
        keys3 = write_load(ps, 5000, 6000, 4)
        cmd(ps, b"lru_crawler crawl all\r\n")
        keys3 += write_load(ps, 5000, 6000, 5)
        cmd(ps, b"lru_crawler crawl all\r\n")
        deadline = time.monotonic() + 10
        while (int(stats(ps, b"storage")["compactions"]) == before and
               time.monotonic() < deadline):
            time.sleep(0.05)
        check(int(stats(ps, b"storage")["compactions"]) > before,
              "the primary compacted")
        st = wait_in_step(rs, ps)
        check(st.get("lag_records") == "0", "in step after compaction")
        check(int(stats(ps)["full_syncs_served"]) == served,
              "compaction cost the connected replica no full copy")
        every = compare(ps, rs, keys + keys2 + keys3, "after compaction")

        # Stopped while compaction removes the segments its positions are
        # in: those shards are copied whole, and nothing is lost.
        # The replica comes back only once every shard has compacted since
        # the request: a compaction that began before it (the background
        # one, while the writes run) may have left the positions' segments,
        # and the replica would pin them again before the requested one.
        r.kill()
        for seed in (6, 7, 8):
            keys3 += write_load(ps, 5000, 6000, seed)
        before = shard_compactions(ps)
        cmd(ps, b"lru_crawler crawl all\r\n")
        deadline = time.monotonic() + 30
        while (any(a <= b for a, b in zip(shard_compactions(ps), before)) and
               time.monotonic() < deadline):
            time.sleep(0.05)
        check(all(a > b for a, b in zip(shard_compactions(ps), before)),
              "every shard compacted while the replica was away")
        r = start_replica(bc, rport, r.tmp)
        rs = r.connect()
        st = wait_in_step(rs, ps)
        check(st.get("lag_records") == "0", "in step after a lost position")
        check(int(stats(ps)["full_syncs_served"]) > served,
              "a position compaction removed costs a full copy")
        served = int(stats(ps)["full_syncs_served"])
        every = compare(ps, rs, keys + keys2 + keys3, "after a lost position")

        # A second replica, started now: it copies the compacted store.
        r2 = start_replica(bc, rport)
        r2s = r2.connect()
        wait_in_step(r2s, ps)
        compare(ps, r2s, keys + keys2 + keys3, "late replica")
        r2s.close()
        # Started once without --replica-of it takes writes of its own, so
        # as a replica again it is copied whole: nothing of its own stays.
        r2.stop()
        r2.args = ["--shards=" + SHARDS]
        r2.start()
        r2s = r2.connect()
        check(cmd(r2s, b"set k005001 0 0 4\r\nmine\r\n") == b"STORED\r\n",
              "a former replica started alone takes writes")
        r2s.close()
        r2.stop()
        served = int(stats(ps)["full_syncs_served"])
        r2 = start_replica(bc, rport, r2.tmp)
        r2s = r2.connect()
        wait_in_step(r2s, ps)
        check(int(stats(ps)["full_syncs_served"]) == served + int(SHARDS),
              "a diverged former replica is copied whole")
        compare(ps, r2s, keys + keys2 + keys3, "former replica again")
        r2s.close()
        r2.close()
        r2 = None

        # Primary killed; the replica is promoted and has everything.
        p.kill()
        check(cmd(rs, b"replica_of none\r\n") == b"OK\r\n", "promoted")
        st = stats(rs)
        check(st.get("role") == "primary", "role after promotion")
        got = dump(rs, list(every))
        check(got == every, "promoted replica holds every acknowledged write"
              " (%d of %d)" % (len(got), len(every)))
        check(cmd(rs, b"set after 0 0 2\r\nok\r\n") == b"STORED\r\n",
              "promoted replica takes writes")
        rs.close()
        # A restart without --replica-of keeps it a primary.
        code = r.stop()
        check(code == 0, "promoted replica stops cleanly (%r)" % code)
        r.args = ["--shards=" + SHARDS]
        r.start()
        rs = r.connect()
        check(cmd(rs, b"get after\r\n").startswith(b"VALUE after"),
              "promoted replica's own write survives a restart")
        check(cmd(rs, b"set again 0 0 1\r\nx\r\n") == b"STORED\r\n",
              "still a primary after the restart")
        rs.close()
    finally:
        p.close()
        r.close()
        if r2 is not None:
            r2.close()
    kill_under_load(bc)
    auth_case(bc)
    min_acks_case(bc)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
