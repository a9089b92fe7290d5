#!/usr/bin/env python3
# test_touch_read_error.py - a get-and-touch whose value cannot be read (EIO
# from the disk) answers memcached's error and keeps the connection, for
# small and large values, in the text (gat, gats, mg T v) and binary (GAT)
# protocols, under --sync=interval and always: its reply waits behind its
# own touch, so a large value must not be read late, while the reply is
# released, where an error could only cut the connection. Once the disk
# reads again the same commands answer the value. Needs the crash shim
# (skipped without it, or against a sanitizer build).
import os
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

check = bcserver.check
SIZES = (100, 5000, 20000, 300000)
READS = "read,pread,pread64,preadv,preadv64,preadv2"


def text(port, line):
    """One request on a new connection: the first reply line, b'' when the
    connection was closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(line)
        got = b""
        while b"\r\n" not in got:
            b = s.recv(65536)
            if not b:
                break
            got += b
        return got.split(b"\r\n", 1)[0]


def bin_gat(port, key):
    """A binary GAT: the status of its reply, or None when the connection
    was closed without one."""
    hdr = struct.pack(">BBHBBHIIQ", 0x80, 0x1d, len(key), 4, 0, 0,
                      4 + len(key), 7, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(hdr + struct.pack(">I", 100) + key)
        got = b""
        while len(got) < 24:
            b = s.recv(65536)
            if not b:
                return None
            got += b
        return struct.unpack(">H", got[6:8])[0]


def requests(size):
    k = b"k%d" % size
    return [("gat", b"gat 100 " + k + b"\r\n", b"VALUE " + k),
            ("gats", b"gats 100 " + k + b"\r\n", b"VALUE " + k),
            ("mg T v", b"mg " + k + b" T100 v\r\n", b"VA %d" % size)]


def run(binary, shim, sync):
    tmp = bcserver.mkdtemp("bc-touchrerr.")
    flag = os.path.join(tmp, "fail")
    srv = bcserver.ShimServer(binary, shim, [
        "--sync=" + sync, "--io-engine=threads", "--shards=2", "-t", "2"],
        {"CRASHSHIM_FAIL": READS + ":1:EIO", "CRASHSHIM_FAIL_WHILE": flag})
    srv.start()
    try:
        with srv.connect() as s:
            for size in SIZES:
                s.sendall(b"set k%d 0 0 %d\r\n%s\r\n" % (size, size,
                                                         b"v" * size))
                check("%s: set %d" % (sync, size),
                      bcserver.recv_lines(s, 1) == [b"STORED"])
        open(flag, "w").close()
        for size in SIZES:
            for name, req, _ in requests(size):
                r = text(srv.port, req)
                check("%s: %s of %d bytes the disk cannot read" % (
                    sync, name, size),
                    r == b"SERVER_ERROR Input/output error", repr(r))
            st = bin_gat(srv.port, b"k%d" % size)
            check("%s: binary GAT of %d bytes the disk cannot read" % (
                sync, size), st is not None and st != 0, repr(st))
        os.unlink(flag)
        for size in SIZES:
            for name, req, want in requests(size):
                r = text(srv.port, req)
                check("%s: %s of %d bytes once the disk reads" % (
                    sync, name, size), r.startswith(want), repr(r[:40]))
            st = bin_gat(srv.port, b"k%d" % size)
            check("%s: binary GAT of %d bytes once the disk reads" % (
                sync, size), st == 0, repr(st))
    finally:
        srv.stop()


def main():
    binary = bcserver.binary()
    shim = cm.usable_shim(binary)
    if shim is None:
        bcserver.skip("needs the crash shim and a build without sanitizers")
    for sync in ("interval", "always"):
        run(binary, shim, sync)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
