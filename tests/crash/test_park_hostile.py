#!/usr/bin/env python3
# test_park_hostile.py - hostile runs through the parking of writes at a
# roll-over, in each --sync mode: 64 KiB segments, two shards, two worker
# threads, and eight clients pipelining 1-9 KB writes on keys of their own
# (so that each reply and each key's value is known): text sets with some
# noreply, binary quiet sets (SETQ) closed by a NOOP, meta ms with q, and
# a client that closes with its batch half sent, likely parked. Roll-overs
# come every few writes, so writes park (write_parks must grow).
#   - Every batch's replies come complete and in order, as memcached gives
#     them for the same stream (STORED, HD, nothing for noreply and quiet
#     successes, the NOOP or mn ending the batch).
#   - Then the server is killed with SIGKILL while the clients pipeline,
#     restarted, and every key is read: its value is the one of its last
#     acknowledged write or of a write sent after it (no older one, and
#     nothing lost that was acknowledged), whatever the sync mode, or of
#     a write on a connection its client closed before the replies (the
#     server runs what it read, possibly after later connections'
#     writes, as memcached may).
# Several rounds per mode. Environment: BITCACHED, PARK_SEED (replay),
# PARK_ROUNDS (default 2), PARK_MODES (default always,interval,never).
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import crashmodel as cm  # noqa: E402

CLIENTS = 8
KEYS = 24  # per client
BATCH = 24


def args(mode):
    return ["--sync=" + mode, "--segment-size=64k", "--journal-size=64k",
            "--shards=2", "-t", "2", "--sync-interval-ms=200",
            "--compact-ratio=0.2"]


def value(cid, k, seq, size):
    head = b"%d:%d:%d:" % (cid, k, seq)
    return head + b"v" * (size - len(head))


def bin_set(key, val, quiet, opaque):
    extras = struct.pack(">II", 0, 0)
    body = extras + key + val
    return struct.pack(">BBHBBHIIQ", 0x80, 0x11 if quiet else 0x01, len(key),
                       len(extras), 0, 0, len(body), opaque, 0) + body


class Client:
    """One client's keys: per key the seq of its last acknowledged write
    and of every write sent (whose reply may not have come)."""

    def __init__(self, cid, kind, rnd):
        self.cid = cid
        self.kind = kind
        self.rnd = rnd
        self.seq = 0
        self.acked = {}  # k -> last acknowledged seq
        self.sent = {}   # k -> [seqs sent after the last acknowledged]
        # k -> seqs sent on a connection closed before its replies: they
        # may run at any time until the server restarts (as memcached runs
        # what it read), after later acknowledged writes too
        self.abandoned = {}
        self.errors = []
        self.batches = 0

    def key(self, k):
        return b"p%d_%d" % (self.cid, k)

    def batch(self):
        """Bytes of one batch; the replies it must get; the writes in it,
        (k, seq, acknowledged-by-reply)."""
        out = []
        want = []
        writes = []
        for i in range(BATCH):
            k = self.rnd.randrange(KEYS)
            self.seq += 1
            v = value(self.cid, k, self.seq, self.rnd.randint(1000, 9000))
            key = self.key(k)
            if self.kind == "text":
                quiet = self.rnd.random() < 0.3
                out.append(b"set %s 0 0 %d%s\r\n%s\r\n" % (
                    key, len(v), b" noreply" if quiet else b"", v))
                if not quiet:
                    want.append(b"STORED\r\n")
            elif self.kind == "meta":
                quiet = self.rnd.random() < 0.5
                out.append(b"ms %s %d%s\r\n%s\r\n" % (
                    key, len(v), b" q" if quiet else b"", v))
                if not quiet:
                    want.append(b"HD\r\n")
            else:
                quiet = self.rnd.random() < 0.7
                out.append(bin_set(key, v, quiet, self.seq))
                if not quiet:
                    want.append(struct.pack(">BBHBBHIIQ", 0x81, 0x01, 0, 0,
                                            0, 0, 0, self.seq, 0))
            writes.append((k, self.seq))
        if self.kind == "binary":
            out.append(struct.pack(">BBHBBHIIQ", 0x80, 0x0a, 0, 0, 0, 0, 0,
                                   7, 0))
            want.append(struct.pack(">BBHBBHIIQ", 0x81, 0x0a, 0, 0, 0, 0, 0,
                                    7, 0))
        else:
            out.append(b"mn\r\n")
            want.append(b"MN\r\n")
        return b"".join(out), want, writes

    def note_sent(self, writes):
        for k, seq in writes:
            self.sent.setdefault(k, []).append(seq)

    def note_acked(self, writes):
        # a batch answered to its end: all of it, quiet ones too, is done
        for k, seq in writes:
            self.acked[k] = seq
            self.sent[k] = []

    def run(self, port, stop, closer):
        while not stop.is_set():
            data, want, writes = self.batch()
            try:
                s = socket.create_connection(("127.0.0.1", port), 10)
            except OSError:
                return
            s.settimeout(20)
            self.note_sent(writes)
            try:
                if closer and self.rnd.random() < 0.5:
                    # half a batch, then gone: likely while parked
                    s.sendall(data[:len(data) // 2])
                    time.sleep(self.rnd.uniform(0, 0.02))
                    s.close()
                    for k, seq in writes:
                        self.abandoned.setdefault(k, []).append(seq)
                    continue
                s.sendall(data)
                expect = b"".join(want)
                got = b""
                while len(got) < len(expect):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if len(got) < len(expect):
                    return  # killed: the rest is judged after the restart
                if self.kind == "binary":
                    # a set's reply carries the item's cas: not compared
                    got = b"".join(got[i:i + 16] + bytes(8)
                                   for i in range(0, len(got), 24))
                if got != expect:
                    self.errors.append("client %d (%s): replies %r..., want "
                                       "%r..." % (self.cid, self.kind,
                                                  got[:80], expect[:80]))
                    return
                self.note_acked(writes)
                self.batches += 1
            except OSError:
                return
            finally:
                s.close()

    def judge(self, port, errors):
        c = cm.Conn(port)
        try:
            for k in range(KEYS):
                r = c.retrieve(b"get %s\r\n" % self.key(k))
                if isinstance(r, str):
                    errors.append("p%d_%d: get answered %r" % (self.cid, k,
                                                               r))
                    continue
                got = None if r is None else r[0]
                ok = ([self.acked.get(k)] + self.sent.get(k, []) +
                      self.abandoned.get(k, []))
                ok = [s for s in ok if s is not None]
                if got is None:
                    if self.acked.get(k) is not None:
                        errors.append("LOST p%d_%d: acknowledged seq %d" % (
                            self.cid, k, self.acked[k]))
                    continue
                try:
                    c_, k_, seq = (int(x) for x in got.split(b":")[:3])
                except ValueError:
                    errors.append("FOREIGN p%d_%d: %r" % (self.cid, k,
                                                          got[:40]))
                    continue
                if (c_, k_) != (self.cid, k) or seq not in ok:
                    errors.append("p%d_%d: seq %d, acknowledged %s, sent "
                                  "after %s" % (self.cid, k, seq,
                                                self.acked.get(k),
                                                self.sent.get(k)))
                elif not got == value(self.cid, k, seq, len(got)):
                    errors.append("p%d_%d: damaged value" % (self.cid, k))
                else:
                    # a write sent but never answered may be what the
                    # restart kept: from now on it is the value to keep
                    self.acked[k] = seq
        finally:
            c.close()
        # what is there now is acknowledged; the server that held the
        # abandoned requests is gone
        for k in range(KEYS):
            self.sent[k] = []
        self.abandoned = {}


def parks(port):
    c = cm.Conn(port)
    try:
        c.send(b"stats storage\r\n")
        n = -1
        while True:
            line = c.line()
            if line.startswith(b"END"):
                break
            if line.startswith(b"STAT write_parks "):
                n = int(line.split()[2])
        return n
    finally:
        c.close()


def round_(srv, clients, rnd, errors, label):
    stop = threading.Event()
    ths = []
    for i, cl in enumerate(clients):
        t = threading.Thread(target=cl.run,
                             args=(srv.port, stop, i == len(clients) - 1))
        t.start()
        ths.append(t)
    time.sleep(rnd.uniform(0.8, 2.0))
    n = parks(srv.port)
    srv.kill()
    stop.set()
    for t in ths:
        t.join(60)
    for cl in clients:
        errors.extend(cl.errors)
        cl.errors = []
    if not srv.start():
        errors.append("%s: restart failed\n%s" % (label, srv.log_tail()))
        return n
    for cl in clients:
        cl.judge(srv.port, errors)
    return n


def main():
    binary = cm.binary()
    seed = int(os.environ.get("PARK_SEED", str(random.randrange(1 << 30))))
    rounds = int(os.environ.get("PARK_ROUNDS", "2"))
    modes = os.environ.get("PARK_MODES", "always,interval,never").split(",")
    cm.say("parking hostile test: seed %d (PARK_SEED replays), %d rounds"
           % (seed, rounds))
    rnd = random.Random(seed)
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-park."))
    failed = False
    try:
        for mode in modes:
            d = os.path.join(tmp, mode)
            os.makedirs(d)
            srv = cm.Server(binary, os.path.join(d, "data"), args(mode),
                            os.path.join(d, "server.log"))
            if not srv.start():
                cm.say("FAIL: %s: start failed" % mode)
                failed = True
                continue
            kinds = ["text", "text", "binary", "binary", "meta", "meta",
                     "text", "text"]
            clients = [Client(i, kinds[i], random.Random(rnd.random()))
                       for i in range(CLIENTS)]
            errors = []
            total_parks = 0
            for r in range(rounds):
                n = round_(srv, clients, rnd, errors, "%s round %d" % (mode, r))
                total_parks += max(n, 0)
                if errors:
                    break
            batches = sum(c.batches for c in clients)
            srv.stop()
            cm.say("%-8s %d batches answered, write_parks seen %d, %d errors"
                   % (mode, batches, total_parks, len(errors)))
            for e in errors[:20]:
                cm.say("FAIL: %s: %s" % (mode, e))
            if errors:
                failed = True
            if total_parks == 0:
                cm.say("note: %s: no write parked in the rounds" % mode)
    finally:
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            cm.say("data kept in %s" % tmp)
    cm.say("%s (seed %d)" % ("FAIL" if failed else "PASS", seed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
