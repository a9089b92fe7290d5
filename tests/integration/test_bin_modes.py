#!/usr/bin/env python3
# test_bin_modes.py - how a connection's protocol is chosen and guarded:
# -B binary and -B ascii compared with memcached ($MEMCACHED) on the same
# bytes, and -S (SASL PLAIN against a MEMCACHED_SASL_PWDB file): refused
# before authentication, accepted after, text connections closed, and the
# start-up refusals memcached gives (-S with ascii, -S with UDP). Python 3
# stdlib and bcserver.py.
import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

GET, SET, NOOP, VERSION = 0x00, 0x01, 0x0A, 0x0B
SASL_LIST, SASL_AUTH, SASL_STEP = 0x20, 0x21, 0x22
AUTH_ERROR = 0x20

check = bcserver.Checks(verbose=True)


def pkt(op, key=b"", ext=b"", val=b"", opaque=7):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(ext), 0, 0,
                       len(ext) + len(key) + len(val), opaque, 0) + ext + key + val


def read_all(sock, quiet=0.5):
    data, closed = bcserver.recv_until(sock, (), quiet=quiet)
    if not closed:
        # quiet period over: see whether the peer has closed meanwhile
        sock.settimeout(0.2)
        try:
            closed = sock.recv(1) == b""
        except OSError:
            pass
    return data, closed


def packets(data):
    out = []
    while len(data) >= 24:
        n = struct.unpack(">I", data[8:12])[0]
        h = struct.unpack(">BBHBBHIIQ", data[:24])
        out.append((h[1], h[5], data[24 + h[3] + h[2]:24 + n]))
        data = data[24 + n:]
    return out


def exchange(srv, payload, quiet=0.5):
    s = srv.connect()
    try:
        s.sendall(payload)
        return read_all(s, quiet)
    finally:
        s.close()


def compare_modes(mc, bc):
    probes = [
        ("text on -B binary", ["-B", "binary"], b"version\r\n"),
        ("long text on -B binary", ["-B", "binary"], b"get a b c d e f g h i j k\r\n"),
        ("binary on -B binary", ["-B", "binary"], pkt(NOOP)),
        ("binary on -B ascii", ["-B", "ascii"], pkt(NOOP) + b"\r\n"),
        ("text on -B ascii", ["-B", "ascii"], b"set k 0 0 1\r\na\r\nget k\r\n"),
    ]
    for name, args, payload in probes:
        got = []
        for binary, kind in ((mc, "memcached"), (bc, "bitcached")):
            srv = bcserver.Server(binary, kind, args)
            try:
                srv.start()
                # a reply in two parts must not look like two replies on a
                # loaded machine: wait longer for silence here
                got.append(exchange(srv, payload, quiet=1.5))
            finally:
                srv.close()
        check(got[0] == got[1], "%s like memcached: %r / %r" % (name, got[0], got[1]))


def start_exit(bc, args, env=None):
    tmp = bcserver.mkdtemp("bc-modes.")
    p = subprocess.run([bc, "--data-dir=" + tmp + "/d", "-l", "127.0.0.1",
                        "-p", str(bcserver.free_port())] + args,
                       env=env, capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode(errors="replace")


def sasl(bc):
    tmp = bcserver.mkdtemp("bc-sasl.")
    pwdb = os.path.join(tmp, "pwdb")
    with open(pwdb, "w") as f:
        f.write("alice:s3cret\nbob:hunter2:extra\n")
    env = dict(os.environ, MEMCACHED_SASL_PWDB=pwdb)

    rc, err = start_exit(bc, ["-S", "-B", "ascii"], env)
    check(rc == 64 and "ASCII protocol while using SASL" in err, "-S -B ascii refused")
    rc, err = start_exit(bc, ["-S", "-B", "auto"], env)
    check(rc == 64, "-S -B auto refused")
    noenv = dict(os.environ)
    noenv.pop("MEMCACHED_SASL_PWDB", None)
    rc, err = start_exit(bc, ["-S"], noenv)
    check(rc == 78 and "MEMCACHED_SASL_PWDB" in err, "-S without a password file refused")

    old = os.environ.get("MEMCACHED_SASL_PWDB")
    os.environ["MEMCACHED_SASL_PWDB"] = pwdb
    srv = bcserver.Server(bc, "bitcached", ["-S"])
    try:
        srv.start()
        # text is refused: closed without a reply once a header's worth of
        # bytes is in (memcached waits for 24 bytes before it looks)
        data, closed = exchange(srv, b"get a b c d e f g h i j k\r\n")
        check(data == b"" and closed, "text connection closed under -S")
        # before auth: version and list-mechs work; get is refused and closes
        data, closed = exchange(srv, pkt(VERSION) + pkt(SASL_LIST) + pkt(GET, b"k") + pkt(NOOP))
        p = packets(data)
        check(len(p) == 3 and p[0][1] == 0 and p[1] == (SASL_LIST, 0, b"PLAIN")
              and p[2] == (GET, AUTH_ERROR, b"Auth failure.") and closed,
              "unauthenticated: version, mechs, then auth error and close: %r" % (p,))
        data, closed = exchange(srv, pkt(SET, b"k", b"\0" * 8, b"v"))
        check(packets(data) == [(SET, AUTH_ERROR, b"Auth failure.")] and closed,
              "unauthenticated set refused")
        # wrong password: refused, connection kept; then the right one
        s = srv.connect()
        try:
            s.sendall(pkt(SASL_AUTH, b"PLAIN", val=b"\0alice\0wrong") + pkt(NOOP))
            p = packets(read_all(s)[0])
            check(p == [(SASL_AUTH, AUTH_ERROR, b"Auth failure."), (NOOP, AUTH_ERROR, b"Auth failure.")],
                  "wrong password refused: %r" % (p,))
        finally:
            s.close()
        s = srv.connect()
        try:
            s.sendall(pkt(SASL_AUTH, b"PLAIN", val=b"\0alice\0wron") + pkt(VERSION))
            p = packets(read_all(s)[0])
            check(len(p) == 2 and p[0][1] == AUTH_ERROR and p[1][1] == 0,
                  "failed auth keeps the connection: %r" % (p,))
            s.sendall(pkt(SASL_AUTH, b"CRAM-MD5", val=b"\0alice\0s3cret"))
            p = packets(read_all(s)[0])
            check(p == [(SASL_AUTH, AUTH_ERROR, b"Auth failure.")], "unknown mechanism refused")
            s.sendall(pkt(SASL_AUTH, b"PLAIN", val=b"\0alice\0s3cret"))
            p = packets(read_all(s)[0])
            check(p == [(SASL_AUTH, 0, b"Authenticated")], "right password accepted: %r" % (p,))
            s.sendall(pkt(SET, b"k", b"\0" * 8, b"v") + pkt(GET, b"k"))
            p = packets(read_all(s)[0])
            check(p == [(SET, 0, b""), (GET, 0, b"v")], "authenticated set and get: %r" % (p,))
        finally:
            s.close()
        s = srv.connect()
        try:
            s.sendall(pkt(SASL_AUTH, b"PLAIN", val=b"bob\0bob\0hunter2") + pkt(GET, b"k"))
            p = packets(read_all(s)[0])
            check(len(p) == 2 and p[0][1] == 0 and p[1][1] == 0,
                  "authzid equal to user, extra field in the file: %r" % (p,))
        finally:
            s.close()
        check(srv.alive(), "server alive")
    finally:
        srv.close()
        if old is None:
            os.environ.pop("MEMCACHED_SASL_PWDB", None)
        else:
            os.environ["MEMCACHED_SASL_PWDB"] = old


def main():
    bc = bcserver.binary()
    mc = os.environ.get("MEMCACHED", "")
    if bcserver.executable(mc):
        compare_modes(mc, bc)
    else:
        print("note: no memcached; -B comparisons not run")
    sasl(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
