#!/usr/bin/env python3
# test_roll_park_touch.py - the requests that read and write (text gat and
# gats over several keys, mg with T or N, ma with T) and writes while
# someone watches park their own connection at a roll-over, as plain
# writes do (test_roll_park.py), instead of holding the worker.
#
# One worker thread (-t 1), two shards, 64 KiB segments. The LD_PRELOAD
# shim (crashshim.c) holds every open of a file in the data directory
# while a hold file exists; a writer's 20 KB sets to a key of shard 1 fill
# its segment, so the roller thread's roll-over hangs creating the next
# one and every write to shard 1 that may park parks behind it. Two
# rounds, each on a server of its own; while the opens are held:
#   - round 1: a gat of three keys (shard 0, shard 1, shard 0) answers its
#     first key and parks at the second; an mg with T, an mg with N (a
#     missing key) and a ma with T (all of shard 1) park too;
#   - round 2, a client watching (`watch fetchers mutations`): the writer
#     and a set on another connection park;
#   - round 3: a set, an ms and a binary set refused as too large park at
#     the delete of their key's old value (memcached drops it);
#   - round 4, over UDP (-U): a set and a touch park their datagrams;
#   - a get on another connection of the same worker is answered.
# Once the opens are released, every reply comes, in order, byte for byte
# as memcached 1.6.18 answers the same requests; the touches are counted
# once (cmd_touch, touch_hits), and the watcher sees the parked set's
# item_get and item_store lines once each, the too-large sets' keys are
# gone, and each UDP request gets its one reply, with its request id.
# The shim cannot run under a sanitizer build: skipped there (77).
#
# Environment: BITCACHED.
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

VLEN = 20000
BIG = 1024 * 1024 + 1  # one byte over the default -I
ANSWER_S = 5.0  # a get on another connection must be answered by then
OPENS = "open,open64,openat,openat64"


def args():
    return ["-t", "1", "--shards=2", "--segment-size=64k", "--sync=interval",
            "--sync-interval-ms=600000", "--compact-ratio=0.99"]


def stat(sock, name, group=b"storage"):
    return int(bcserver.stats_on(sock, group).get(name, "0"))


def ask(sock, req, end):
    sock.sendall(req)
    data, _ = bcserver.recv_until(sock, [end])
    return data


def keys_by_shard(s, n):
    """n keys of shard 0 and n of shard 1 (found through shard0:live_keys),
    each left set to a one-byte value."""
    found = {0: [], 1: []}
    for i in range(256):
        k = b"k%d" % i
        before = stat(s, "shard0:live_keys")
        ask(s, b"set %s 0 0 1\r\nx\r\n" % k, b"\r\n")
        shard = 0 if stat(s, "shard0:live_keys") > before else 1
        if len(found[shard]) < n:
            found[shard].append(k)
        else:
            ask(s, b"delete %s\r\n" % k, b"\r\n")
        if len(found[0]) == n and len(found[1]) == n:
            return found[0], found[1]
    raise RuntimeError("no keys of each shard")


def parked(sock, n, timeout=ANSWER_S):
    """Wait until n connections are parked: their count, -1 when `stats`
    was not answered in time (the worker is stuck)."""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while True:
        try:
            p = stat(sock, "writes_parked")
        except OSError:
            return -1
        if p >= n or time.monotonic() > deadline:
            return p
        time.sleep(0.05)


def held_server(cls, binary, shim, hold):
    """A started server of class cls whose opens in its data directory
    the shim holds while the file hold exists."""
    srv = cls(binary, shim, args(),
              {"CRASHSHIM_DELAY": OPENS + ":5", "CRASHSHIM_DELAY_WHILE": hold,
               "CRASHSHIM_HOLD_WHILE": hold})
    srv.start()
    return srv


def roll_parked(w, g, keys):
    """The writer w sends four sets of key wk (shard 1): the first three
    fill its segment and are answered; the fourth waits for the roll-over
    the shim holds: parked. (A park seen before the three replies may be
    a short one, for a disk reserve the roller makes at once.)"""
    w.sendall(b"".join(fill(b"set {wk} 0 0 %d\r\n" % VLEN, keys) +
                       b"v" * VLEN + b"\r\n" for _ in range(4)))
    w.settimeout(30)
    three, _ = bcserver.recv_until(w, [b"STORED\r\n" * 3])
    return three == b"STORED\r\n" * 3 and parked(g, 1) >= 1


def get_answered(g, keys):
    """A get of c0 (shard 0) on g is answered within ANSWER_S."""
    g.settimeout(ANSWER_S)
    try:
        return bcserver.get_text(g, keys["c0"]) == fill(
            b"VALUE {c0} 0 1\r\nz\r\nEND\r\n", keys)
    except OSError:
        return False


REQS = {  # name: (request, memcached's reply) over the keys of setup()
    "gat": (b"gat 100 {a0} {b1} {c0}\r\n",
            b"VALUE {a0} 0 1\r\nx\r\nVALUE {b1} 0 1\r\ny\r\n"
            b"VALUE {c0} 0 1\r\nz\r\nEND\r\n"),
    "mgt": (b"mg {b1} T30 t v\r\n", b"VA 1 t30\r\ny\r\n"),
    "mgn": (b"mg {vk} N30 s t\r\n", b"HD s0 t30 W\r\n"),
    "mat": (b"ma {n1} T100 t v\r\n", b"VA 2 t100\r\n11\r\n"),
    "set": (b"set {sk} 0 0 1\r\nq\r\n", b"STORED\r\n"),
    "big": (b"set {t1} 0 0 %d\r\n" % BIG + b"x" * BIG + b"\r\n",
            b"SERVER_ERROR object too large for cache\r\n"),
    "bigms": (b"ms {t2} %d T0\r\n" % BIG + b"x" * BIG + b"\r\n",
              b"SERVER_ERROR object too large for cache\r\n"),
    "bigbin": None,  # binary: bin_big()
}


def bin_big(key):
    """A binary SET of a value over -I, and memcached's E2BIG reply."""
    hdr = struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), 8, 0, 0,
                      8 + len(key) + BIG, 0xdead, 0)
    req = hdr + struct.pack(">II", 0, 0) + key + b"y" * BIG
    body = b"Too large."
    rep = struct.pack(">BBHBBHIIQ", 0x81, 0x01, 0, 0, 0, 3, len(body),
                      0xdead, 0) + body
    return req, rep


def request(n, keys):
    return bin_big(keys["t3"])[0] if n == "bigbin" else fill(REQS[n][0], keys)


def reply(n, keys):
    return bin_big(keys["t3"])[1] if n == "bigbin" else fill(REQS[n][1], keys)


def fill(text, keys):
    for k, v in keys.items():
        text = text.replace(b"{" + k.encode() + b"}", v)
    return text


def setup(s):
    """Keys of each shard, with their values set (a0 "x", b1 "y", c0 "z",
    n1 the number 10; vk missing; t1-t3 "x")."""
    z, o = keys_by_shard(s, 8)  # z: shard 0, o: shard 1
    keys = dict(zip(("a0", "c0"), z[:2]))
    keys.update(zip(("b1", "n1", "wk", "vk", "sk", "t1", "t2", "t3"), o))
    ask(s, fill(b"delete {vk}\r\nset {b1} 0 0 1\r\ny\r\n"
                b"set {c0} 0 0 1\r\nz\r\nset {n1} 0 0 2\r\n10\r\n", keys),
        b"DELETED\r\n" + b"STORED\r\n" * 3)
    return keys


def round_(binary, shim, tmp, names, watched, check):
    tag = ("watched " if watched else "") + names[0]
    hold = os.path.join(tmp, "hold-" + tag)
    srv = held_server(bcserver.ShimServer, binary, shim, hold)
    s = srv.connect(timeout=15)
    keys = setup(s)
    touches = stat(s, "cmd_touch", b"")
    hits = stat(s, "touch_hits", b"")
    wat = None
    if watched:
        wat = srv.connect(timeout=15)
        check("%s: watch accepted" % tag,
              ask(wat, b"watch fetchers mutations\r\n", b"\r\n") ==
              b"OK\r\n")
    g = srv.connect(timeout=15)
    w = srv.connect(timeout=30)
    conns = {n: srv.connect(timeout=30) for n in names}
    open(hold, "w").close()
    # the writer fills shard 1's segment: its roll-over hangs in the open
    check("%s: the writer parks at the roll-over" % tag,
          roll_parked(w, g, keys))
    for n in names:
        req = request(n, keys)
        if len(req) < 65536:
            conns[n].sendall(req)  # in order: they park in this order
            continue
        # a parked connection is not read: a megabyte waits in its socket
        threading.Thread(target=conns[n].sendall, args=(req,),
                         daemon=True).start()
        time.sleep(0.2)  # parked before the next one is sent
    p = parked(g, 1 + len(names))
    check("%s: %s park too (writes_parked %d)" % (tag, " ".join(names), p),
          p >= 1 + len(names))
    check("%s: a get on another connection is answered while they wait"
          % tag, get_answered(g, keys))
    got = {}
    for n in names:
        got[n], _ = bcserver.recv_until(conns[n], [], quiet=0.3)
    if "gat" in names:
        check("%s: the gat answered its first key and stopped at the parked "
              "one (%r)" % (tag, got["gat"]),
              got["gat"] == fill(b"VALUE {a0} 0 1\r\nx\r\n", keys))
    check("%s: the others answered nothing yet" % tag,
          all(got[n] == b"" for n in names if n != "gat"))
    os.unlink(hold)
    w.settimeout(30)
    wr, _ = bcserver.recv_until(w, [b"STORED\r\n"])
    check("%s: the writer's last set is answered" % tag,
          wr == b"STORED\r\n")
    for n in names:
        want = reply(n, keys)
        conns[n].settimeout(30)
        if got[n] != want:
            rest, _ = bcserver.recv_until(conns[n], [want[len(got[n]):]])
            got[n] += rest
        check("%s: %s: every reply, in order, as memcached's (%r)"
              % (tag, n, got[n]), got[n] == want)
    check("%s: nothing stays parked" % tag, parked(g, 0) == 0 and
          stat(g, "writes_parked") == 0)
    if "big" in names:
        g.sendall(fill(b"get {t1}\r\nget {t2}\r\nget {t3}\r\n", keys))
        got, _ = bcserver.recv_until(g, [b"END\r\n" * 3])
        check("the too-large sets dropped their keys' old values (%r)" % got,
              got == b"END\r\n" * 3)
    elif not watched:
        # gat: 3 touches, mg T: 1; each counted once
        check("touches counted once", stat(g, "cmd_touch", b"") - touches ==
              4 and stat(g, "touch_hits", b"") - hits == 4)
        # (the TTLs left: a second or two went by since)
        g.sendall(fill(b"mg {a0} t\r\nmg {n1} t\r\nmg {b1} t\r\n"
                       b"mg {vk} s\r\n", keys))
        ttl = bcserver.recv_lines(g, 4)
        check("the touches, the ma's TTL and the vivified item are there "
              "(%r)" % ttl, len(ttl) == 4 and
              all(x.startswith(b"HD t") for x in ttl[:3]) and
              90 <= int(ttl[0][4:]) <= 100 and
              90 <= int(ttl[1][4:]) <= 100 and
              20 <= int(ttl[2][4:]) <= 30 and ttl[3].startswith(b"HD s0"))
    else:
        lines, _ = bcserver.recv_until(wat, [], quiet=0.5)
        key = b"key=" + keys["sk"] + b" "
        seen = [ln for ln in lines.split(b"\n") if key in ln]
        check("the watcher saw the parked set's lookup and store once (%d)"
              % len(seen), len(seen) == 2 and b"item_get" in seen[0] and
              b"item_store" in seen[1])
        wat.close()
    check("%s: the server lives" % tag, srv.alive())
    for c in list(conns.values()) + [s, g, w]:
        c.close()
    srv.close()


class UdpShimServer(bcserver.ShimServer):
    """Under the shim, with -U on its TCP port number."""

    def argv(self):
        return super().argv() + ["-U", str(self.port)]


def udp_round(binary, shim, tmp, check):
    hold = os.path.join(tmp, "hold-udp")
    srv = held_server(UdpShimServer, binary, shim, hold)
    s = srv.connect(timeout=15)
    keys = setup(s)
    g = srv.connect(timeout=15)
    w = srv.connect(timeout=30)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(("127.0.0.1", srv.port))
    open(hold, "w").close()
    check("udp: the writer parks at the roll-over", roll_parked(w, g, keys))
    reqs = {0x71: (b"set {sk} 0 0 1\r\nq\r\n", b"STORED\r\n"),
            0x72: (b"touch {b1} 50\r\n", b"TOUCHED\r\n")}
    for rid, (req, _) in reqs.items():
        u.send(struct.pack(">HHHH", rid, 0, 1, 0) + fill(req, keys))
    p = parked(g, 3)
    check("udp: the set and the touch park (writes_parked %d)" % p, p >= 3)
    check("udp: a get on another connection is answered while they wait",
          get_answered(g, keys))
    u.settimeout(0.3)
    try:
        early = u.recv(65536)
    except socket.timeout:
        early = b""
    check("udp: no reply yet (%r)" % early, early == b"")
    os.unlink(hold)
    w.settimeout(30)
    wr, _ = bcserver.recv_until(w, [b"STORED\r\n"])
    check("udp: the writer's last set is answered", wr == b"STORED\r\n")
    got = {}
    u.settimeout(10)
    try:
        while len(got) < len(reqs):
            d = u.recv(65536)
            rid, seq, total, _ = struct.unpack(">HHHH", d[:8])
            got[rid] = ((seq, total), d[8:])
    except socket.timeout:
        pass
    for rid, (_, want) in reqs.items():
        check("udp: request %#x answered once, in one datagram (%r)"
              % (rid, got.get(rid)), got.get(rid) == ((0, 1), want))
    check("udp: the parked set is stored",
          bcserver.get_text(g, keys["sk"]) == fill(
              b"VALUE {sk} 0 1\r\nq\r\nEND\r\n", keys))
    check("udp: nothing stays parked", parked(g, 0) == 0 and
          stat(g, "writes_parked") == 0)
    check("udp: the server lives", srv.alive())
    for c in (s, g, w, u):
        c.close()
    srv.close()


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if not shim:
        bcserver.skip("no crash shim, or a sanitizer build")
    tmp = bcserver.mkdtemp("rollparktouch.")
    check = bcserver.check
    round_(binary, shim, tmp, ("gat", "mgt", "mgn", "mat"), False, check)
    round_(binary, shim, tmp, ("set",), True, check)
    round_(binary, shim, tmp, ("big", "bigms", "bigbin"), False, check)
    udp_round(binary, shim, tmp, check)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
