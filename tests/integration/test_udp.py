#!/usr/bin/env python3
# test_udp.py - the UDP transport (-U) with a raw client: frame header,
# one-datagram and multi-datagram replies (reassembled by sequence number),
# text and binary requests, compared with memcached ($MEMCACHED) where the
# two agree by design; then bitcached's bounds: one request per datagram, a
# request split over datagrams dropped, short datagrams dropped, a reply
# above the cap replaced by one error datagram; -U alone moves TCP to its
# port as in memcached; -S with -U refused.
# Python 3 stdlib and bcserver.py.
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=True)


class UdpServer(bcserver.Server):
    """A server started with -U on its TCP port number."""

    def argv(self):
        return super().argv() + ["-U", str(self.port)]


def frame(rid, seq=0, total=1):
    return struct.pack(">HHHH", rid, seq, total, 0)


def ask(port, payload, rid=0x1234, hdr=None, wait=0.6):
    """Send one datagram, collect reply datagrams until quiet. Returns a list
    of (rid, seq, total, reserved, len, data)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    u.settimeout(wait)
    try:
        u.sendto((frame(rid) if hdr is None else hdr) + payload, ("127.0.0.1", port))
        out = []
        while True:
            try:
                d = u.recv(65536)
            except socket.timeout:
                break
            out.append(struct.unpack(">HHHH", d[:8]) + (len(d), d[8:]))
            u.settimeout(0.15)
        return out
    finally:
        u.close()


def reassemble(dgrams):
    """The reply bytes if the datagrams form one complete set, else None."""
    if not dgrams:
        return b""
    total = dgrams[0][2]
    by_seq = {d[1]: d[5] for d in dgrams}
    if len(dgrams) != total or sorted(by_seq) != list(range(total)):
        return None
    if any(d[2] != total or d[3] != 0 for d in dgrams):
        return None
    return b"".join(by_seq[i] for i in range(total))


def tcp(srv, payload):
    s = srv.connect()
    try:
        s.sendall(payload)
        data, _ = bcserver.recv_until(s, (b"STORED\r\n",))
        return data
    finally:
        s.close()


def binpkt(op, key=b"", ext=b"", val=b"", opaque=5):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(ext), 0, 0,
                       len(ext) + len(key) + len(val), opaque, 0) + ext + key + val


def mask_cas(dgrams):
    """Binary replies: zero the cas field (servers number items apart)."""
    out = []
    for d in dgrams:
        body = d[5]
        if body[:1] == b"\x81" and len(body) >= 24:
            body = body[:16] + b"\0" * 8 + body[24:]
        out.append(d[:5] + (body,))
    return out


COMMON = [
    ("get hit", b"get a\r\n"),
    ("get miss", b"get nope\r\n"),
    ("get multi-datagram", b"get big\r\n"),
    ("set", b"set u 0 0 1\r\nz\r\n"),
    ("set noreply", b"set v 0 0 1 noreply\r\nz\r\n"),
    ("delete", b"delete u\r\n"),
    ("incr", b"incr n 5\r\n"),
    ("bad command", b"bogus\r\n"),
    ("binary noop", binpkt(0x0A)),
    ("binary getk", binpkt(0x0C, b"a")),
    ("binary getq miss", binpkt(0x09, b"nope")),
    ("binary setq", binpkt(0x11, b"q", b"\0" * 8, b"v")),
    ("binary quit", binpkt(0x07)),
]


def seed(srv):
    big = b"x" * 100000
    tcp(srv, b"set a 3 0 3\r\nabc\r\nset n 0 0 2\r\n10\r\nset big 0 0 %d\r\n%s\r\n"
        % (len(big), big))


def compare(mc, bc):
    got = {}
    for binary, kind in ((mc, "memcached"), (bc, "bitcached")):
        srv = UdpServer(binary, kind)
        try:
            srv.start()
            seed(srv)
            got[kind] = [mask_cas(ask(srv.port, p)) for _, p in COMMON]
            got[kind].append(ask(srv.port, b"get a\r\n", hdr=frame(9, 0, 2)))
        finally:
            srv.close()
    names = [n for n, _ in COMMON] + ["request in two datagrams dropped"]
    for i, name in enumerate(names):
        a, b = got["memcached"][i], got["bitcached"][i]
        check(a == b, "%s like memcached (%d / %d datagrams)" % (name, len(a), len(b)))
    big = got["bitcached"][2]
    check(len(big) > 50 and reassemble(big) is not None
          and reassemble(big).startswith(b"VALUE big 0 100000\r\n")
          and reassemble(big).endswith(b"\r\nEND\r\n")
          and all(d[4] <= 1400 for d in big), "multi-datagram reply reassembles")


def own(bc):
    srv = UdpServer(bc, "bitcached", ["-I", "1m"])
    try:
        srv.start()
        seed(srv)
        r = ask(srv.port, b"version\r\n", rid=0xBEEF)
        check(len(r) == 1 and r[0][:4] == (0xBEEF, 0, 1, 0)
              and r[0][5].startswith(b"VERSION "), "version, request id echoed")
        r = ask(srv.port, b"get a\r\nget a\r\nget a\r\n")
        check(len(r) == 1 and reassemble(r) == b"VALUE a 3 3\r\nabc\r\nEND\r\n",
              "one request per datagram: the rest dropped")
        r = ask(srv.port, b"get a nope a\r\n")
        check(reassemble(r) == b"VALUE a 3 3\r\nabc\r\nVALUE a 3 3\r\nabc\r\nEND\r\n",
              "multi-key get in one datagram set")
        check(ask(srv.port, b"", hdr=frame(1)) == [], "header-only datagram dropped")
        check(ask(srv.port, b"", hdr=b"\0\1\0") == [], "short datagram dropped")
        check(ask(srv.port, b"get a", wait=0.5) == [], "incomplete request dropped")
        # a value of 1000000 bytes, asked for 9 times: past the 8 MiB cap
        tcp(srv, b"set huge 0 0 1000000\r\n" + b"h" * 1000000 + b"\r\n")
        r = ask(srv.port, b"get" + b" huge" * 9 + b"\r\n", wait=3.0)
        check(reassemble(r) == b"SERVER_ERROR out of memory writing get response\r\n",
              "reply over the cap: one error datagram")
        # stats items walks the store a batch of keys at a time: over UDP,
        # all of it before the one reply
        tcp(srv, b"".join(b"set w%d 0 0 1 noreply\r\nx\r\n" % i for i in range(3000)) +
            b"set w 0 0 1\r\nx\r\n")
        r = reassemble(ask(srv.port, b"stats items\r\n", wait=2.0)) or b""
        n = re.search(rb"STAT items:1:number (\d+)\r\n", r)
        check(r.endswith(b"END\r\n") and n and int(n.group(1)) >= 3001,
              "stats items over UDP: the whole walk")
        r = reassemble(ask(srv.port, binpkt(0x10, b"items"), wait=2.0)) or b""
        n = re.search(rb"items:1:number(\d+)", r)
        check(n and int(n.group(1)) >= 3001 and r[-24:-22] == b"\x81\x10" and
              r[-22:-20] == b"\0\0" and r[-16:-12] == b"\0\0\0\0",
              "binary stat items over UDP: the whole walk, then the empty packet")
        r = ask(srv.port, binpkt(0x01, b"k", b"\0" * 8, b"v"))
        check(len(r) == 1 and r[0][5][6:8] == b"\0\0", "binary set over UDP")
        r = ask(srv.port, b"get k\r\n")
        check(reassemble(r) == b"VALUE k 0 1\r\nv\r\nEND\r\n", "binary set visible to text")
        check(srv.alive(), "server alive")
    finally:
        srv.close()
    tmp = bcserver.mkdtemp("bc-udp.")
    # memcached: -U PORT without -p serves TCP on PORT as well
    port = bcserver.free_port()
    proc = subprocess.Popen([bc, "--data-dir=" + tmp + "/u", "-l", "127.0.0.1", "-U", str(port)],
                            stderr=subprocess.DEVNULL)
    try:
        ok = False
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                ok = True
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.02)
        r = ask(port, b"version\r\n") if ok else []
        check(ok and len(r) == 1, "-U without -p: TCP and UDP on the same port")
    finally:
        proc.kill()
        proc.wait()
    pw = os.path.join(tmp, "pw")
    with open(pw, "w") as f:
        f.write("u:p\n")
    p = subprocess.run([bc, "--data-dir=" + tmp + "/d", "-l", "127.0.0.1", "-p",
                        str(bcserver.free_port()), "-U", str(bcserver.free_port()), "-S"],
                       env=dict(os.environ, MEMCACHED_SASL_PWDB=pw),
                       capture_output=True, timeout=20)
    check(p.returncode == 64 and b"Cannot enable UDP" in p.stderr, "-S with -U refused")


def main():
    bc = bcserver.binary()
    mc = os.environ.get("MEMCACHED", "")
    if bcserver.executable(mc):
        compare(mc, bc)
    else:
        print("note: no memcached; comparisons not run")
    own(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
