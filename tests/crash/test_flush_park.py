#!/usr/bin/env python3
# test_flush_park.py - flush_all writes and syncs the state file on the
# store's roller thread, not on the worker: its connection parks until the
# flush is durable, and the worker goes on serving the others.
#
# One worker thread (-t 1). The LD_PRELOAD shim (crashshim.c) holds every
# fdatasync of the state file (and nothing else: its directory is the
# state file's path) while a hold file exists: a disk that does not
# answer. Rounds on one data directory:
#   - flush_all (text, binary FLUSH, then text over UDP): its connection
#     (or datagram) gets no reply while the sync is held; gets on another
#     connection keep being answered promptly, the items still there
#     (nothing changed until durable); once released the flush answers OK
#     and the items are gone;
#   - a delayed flush_all coming due while the sync is held: gets see the
#     items gone at once; a set on another connection parks (nothing is
#     acknowledged before the flush is persisted) and answers STORED once
#     released.
# After each round the server is killed with SIGKILL and restarted: the
# flushed items stay gone, the set after the flush is there.
# The shim cannot run under a sanitizer build: skipped there (77).
#
# Environment: BITCACHED.
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

ANSWER_S = 3.0  # a get on another connection must be answered by then
NKEYS = 50


class StateShimServer(bcserver.ShimServer):
    """The shim acts on the state file only (DIR/state). UDP is served on
    the TCP port's number."""

    def argv(self):
        return super().argv() + ["-U", str(self.port)]

    def start(self, timeout=20.0):
        os.makedirs(self.data, exist_ok=True)
        self.env = dict(os.environ, LD_PRELOAD=self.shim,
                        CRASHSHIM_DIR=os.path.join(self.data, "state"),
                        **self.shim_env)
        bcserver.Server.start(self, timeout)


def ask(sock, req, end):
    sock.sendall(req)
    data, _ = bcserver.recv_until(sock, [end])
    return data


def syncs(stats_path):
    return cm.read_stats(stats_path).get("fdatasync", 0)


def wait_syncs(stats_path, n, timeout=5.0):
    """Until the state file saw n fdatasyncs (the held one counts as it
    starts); False when it did not in time."""
    deadline = time.monotonic() + timeout
    while syncs(stats_path) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def fill(s, tag):
    ask(s, b"".join(b"set %s%d 0 0 2\r\nv%d\r\n" % (tag, i, i % 10)
                    for i in range(NKEYS)), b"STORED\r\n" * NKEYS)


def gets_answered(g, key, want, n=5):
    """n gets of key on g, each answered within ANSWER_S with want."""
    g.settimeout(ANSWER_S)
    for _ in range(n):
        t0 = time.monotonic()
        try:
            got = bcserver.get_text(g, key)
        except OSError:
            return False
        if got != want or time.monotonic() - t0 > ANSWER_S:
            return False
        time.sleep(0.05)
    return True


def all_gone(s, tag):
    return all(bcserver.get_text(s, b"%s%d" % (tag, i)) == b"END\r\n"
               for i in range(NKEYS))


def bin_flush(opaque):
    # magic, opcode FLUSH (0x08), key len, extras len, type, vbucket,
    # body len, opaque, cas
    return struct.pack(">BBHBBHIIQ", 0x80, 0x08, 0, 0, 0, 0, 0, opaque, 0)


def bin_ok(opaque):
    return struct.pack(">BBHBBHIIQ", 0x81, 0x08, 0, 0, 0, 0, 0, opaque, 0)


def udp_flush(port):
    """flush_all in one datagram (request id 0x4242); the socket."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(struct.pack(">HHHH", 0x4242, 0, 1, 0) + b"flush_all\r\n",
             ("127.0.0.1", port))
    return u


def udp_reply(u, timeout):
    """The payload of the next reply datagram, b"" when none came."""
    u.settimeout(timeout)
    try:
        d = u.recv(65536)
    except socket.timeout:
        return b""
    return d[8:] if d[:6] == struct.pack(">HHH", 0x4242, 0, 1) else d


def restart_check(srv, check, what, gone_tags, there):
    srv.kill()
    if os.path.exists(srv.hold):
        os.unlink(srv.hold)
    srv.start()
    s = srv.connect(timeout=15)
    for tag in gone_tags:
        check("%s: after SIGKILL and a restart the flushed %s* stay gone"
              % (what, tag.decode()), all_gone(s, tag))
    for key, val in there:
        check("%s: after SIGKILL and a restart %s is there"
              % (what, key.decode()),
              bcserver.get_text(s, key) ==
              b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(val), val))
    s.close()


def round_now(srv, check, proto):
    s = srv.connect(timeout=15)
    g = srv.connect(timeout=15)
    f = srv.connect(timeout=15)
    tag = {"text": b"t", "binary": b"b", "udp": b"u"}[proto]
    fill(s, tag)
    before = syncs(srv.stats_path)
    open(srv.hold, "w").close()
    u = None
    if proto == "text":
        f.sendall(b"flush_all\r\n")
        want = b"OK\r\n"
    elif proto == "binary":
        f.sendall(bin_flush(7))
        want = bin_ok(7)
    else:
        u = udp_flush(srv.port)
        want = b"OK\r\n"
    check("%s: the state file's fdatasync is held" % proto,
          wait_syncs(srv.stats_path, before + 1))
    check("%s: gets on another connection are answered promptly while "
          "flush_all waits for the disk, the items still there" % proto,
          gets_answered(g, tag + b"3", b"VALUE %s3 0 2\r\nv3\r\nEND\r\n"
                        % tag))
    if u is None:
        got, _ = bcserver.recv_until(f, [], quiet=0.3)
    else:
        got = udp_reply(u, 0.3)
    check("%s: flush_all is not answered before its write is durable (%r)"
          % (proto, got), got == b"")
    os.unlink(srv.hold)
    if u is None:
        f.settimeout(30)
        got, _ = bcserver.recv_until(f, [want])
    else:
        got = udp_reply(u, 30)
        u.close()
    check("%s: flush_all answers once durable (%r)" % (proto, got),
          got == want)
    check("%s: the items are gone" % proto, all_gone(g, tag))
    after = b"after-" + tag
    check("%s: a set after it is stored" % proto,
          ask(g, b"set %s 0 0 1\r\nz\r\n" % after, b"\r\n") == b"STORED\r\n")
    for c in (s, g, f):
        c.close()
    restart_check(srv, check, proto, [tag], [(after, b"z")])


def round_delayed(srv, check):
    s = srv.connect(timeout=15)
    g = srv.connect(timeout=15)
    w = srv.connect(timeout=15)
    fill(s, b"d")
    check("delayed: flush_all 2 answers OK",
          ask(s, b"flush_all 2\r\n", b"\r\n") == b"OK\r\n")
    check("delayed: the items are there before it is due",
          bcserver.get_text(g, b"d1") == b"VALUE d1 0 2\r\nv1\r\nEND\r\n")
    before = syncs(srv.stats_path)
    open(srv.hold, "w").close()
    time.sleep(3.2)
    t0 = time.monotonic()
    g.settimeout(ANSWER_S)
    gone = all_gone(g, b"d")
    check("delayed: once due the items are gone at once, while the state "
          "file's sync is held (%.2f s)" % (time.monotonic() - t0),
          gone and time.monotonic() - t0 < ANSWER_S)
    check("delayed: the roller thread's fdatasync of the flush is held",
          wait_syncs(srv.stats_path, before + 1))
    w.sendall(b"set late 0 0 1\r\nL\r\n")
    got, _ = bcserver.recv_until(w, [], quiet=0.5)
    check("delayed: a set is not acknowledged before the flush is "
          "persisted (%r)" % got, got == b"")
    check("delayed: gets are still answered meanwhile",
          gets_answered(g, b"d2", b"END\r\n"))
    os.unlink(srv.hold)
    w.settimeout(30)
    got, _ = bcserver.recv_until(w, [b"\r\n"])
    check("delayed: the set answers once it is (%r)" % got,
          got == b"STORED\r\n")
    check("delayed: the set is there",
          bcserver.get_text(g, b"late") == b"VALUE late 0 1\r\nL\r\nEND\r\n")
    for c in (s, g, w):
        c.close()
    restart_check(srv, check, "delayed", [b"d"], [(b"late", b"L")])


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        bcserver.skip("no crash shim, or a sanitizer build")
    tmp = bcserver.mkdtemp("flushpark.")
    hold = os.path.join(tmp, "hold")
    stats_path = os.path.join(tmp, "shimstats")
    srv = StateShimServer(binary, shim,
                          ["-t", "1", "--shards=2", "--sync=interval"],
                          {"CRASHSHIM_STATS": stats_path,
                           "CRASHSHIM_DELAY": "fdatasync:5",
                           "CRASHSHIM_DELAY_WHILE": hold,
                           "CRASHSHIM_HOLD_WHILE": hold})
    srv.hold = hold
    srv.stats_path = stats_path
    srv.start()
    check = bcserver.check
    round_now(srv, check, "text")
    round_now(srv, check, "binary")
    round_now(srv, check, "udp")
    round_delayed(srv, check)
    check("the server lives", srv.alive())
    srv.close()
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
