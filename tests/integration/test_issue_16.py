#!/usr/bin/env python3
# test_issue_16.py - large values against the real server ($BITCACHED):
# they come back byte for byte in the text, meta and binary protocols, on
# the path that sends them from their segment files (stats storage
# value_refs counts it) as on the copying one (--sync=always); and a byte
# flipped in a large value's record on disk, under the running server
# after the value was served (so it is marked checked and in the page
# cache; also once written back, on the next get), or before a restart, is
# never sent as a complete value: the text
# get answers the other keys and END without it, the binary get a miss, mg
# no VA. Python 3 stdlib and tests/integration/bcserver.py.
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BIG = 100000
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def value(seed, n=BIG):
    # distinct per key, with a marker the test finds in the segment file
    body = bytes((i * 7 + seed) % 251 for i in range(n))
    mark = b"MARK-%02d-" % seed
    mid = n // 2
    return body[:mid] + mark + body[mid + len(mark):]


def cmd(s, data, ends=(b"\r\n",)):
    s.sendall(data)
    out, _ = bcserver.recv_until(s, ends)
    return out


def stat(s, group, name):
    out = cmd(s, b"stats " + group + b"\r\n", (b"END\r\n",))
    for line in out.split(b"\r\n"):
        f = line.split()
        if len(f) == 3 and f[1] == name:
            return int(f[2])
    return None


def bin_get(s, key, opcode=0x00):
    # memcached binary GET (0x00) / GETK (0x0c); returns (status, value)
    hdr = struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), 0, 0, 0,
                      len(key), 0xabcd, 0)
    s.sendall(hdr + key)
    data = b""
    while len(data) < 24:
        chunk = s.recv(65536)
        if not chunk:
            return None, None
        data += chunk
    (_, _, klen, elen, _, status, blen, _, _) = struct.unpack(">BBHBBHIIQ", data[:24])
    while len(data) < 24 + blen:
        chunk = s.recv(262144)
        if not chunk:
            return None, None
        data += chunk
    body = data[24:24 + blen]
    return status, body[elen + klen:]


def find_in_segments(datadir, needle):
    for root, _, files in os.walk(datadir):
        for f in files:
            if f.endswith(".seg"):
                p = os.path.join(root, f)
                with open(p, "rb") as fp:
                    at = fp.read().find(needle)
                if at >= 0:
                    return p, at
    return None, -1


def flip(datadir, needle, sync=False):
    path, at = find_in_segments(datadir, needle)
    check(path is not None, "found %r in a segment" % needle)
    if path is None:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        b = os.pread(fd, 1, at)
        os.pwrite(fd, bytes([b[0] ^ 0x20]), at)
        if sync:
            os.fsync(fd)  # written back: no dirty page gives it away
    finally:
        os.close(fd)


def text_get(s, keys):
    return cmd(s, b"get " + b" ".join(keys) + b"\r\n", (b"END\r\n", b"ERROR\r\n"))


def expect_values(srv, s, items, what):
    want = b"".join(b"VALUE %s 5 %d\r\n%s\r\n" % (k, len(v), v) for k, v in items) + b"END\r\n"
    got = text_get(s, [k for k, _ in items])
    check(got == want, what + ": text get byte for byte (%d bytes, want %d)" % (len(got), len(want)))
    for k, v in items:
        got = cmd(s, b"mg " + k + b" v f\r\n", (b"\r\n",))
        head = b"VA %d f5\r\n" % len(v)
        while len(got) < len(head) + len(v) + 2:
            more, closed = bcserver.recv_until(s, (b"\r\n",))
            if closed or not more:
                break
            got += more
        check(got == head + v + b"\r\n", what + ": mg %s v f byte for byte" % k.decode())
        b = srv.connect()  # a connection speaks the protocol it starts with
        b.settimeout(10)
        st, body = bin_get(b, k)
        check(st == 0 and body == v, what + ": binary get %s byte for byte" % k.decode())
        st, body = bin_get(b, k, 0x0c)
        check(st == 0 and body == v, what + ": binary getk %s byte for byte" % k.decode())
        b.close()


def has_cachestat():
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 5)


def run(binary, args, zero_copy):
    srv = bcserver.Server(binary, args=args)
    srv.start()
    try:
        s = srv.connect()
        s.settimeout(10)
        items = [(b"big:%d" % i, value(i)) for i in range(1, 4)]
        for k, v in items:
            got = cmd(s, b"set %s 5 0 %d\r\n%s\r\n" % (k, len(v), v))
            check(got == b"STORED\r\n", "set " + k.decode())
        expect_values(srv, s, items, "fresh")
        refs = stat(s, b"storage", b"value_refs")
        if zero_copy and not has_cachestat():
            print("no cachestat(2) before Linux 6.5: every read is checked, "
                  "nothing is sent from the files")
        elif zero_copy:
            check(refs is not None and refs > 0,
                  "values were sent from their files (value_refs %s)" % refs)
        else:
            check(refs == 0, "--sync=always copies values (value_refs %s)" % refs)

        # big:2 has been served, so it is checked and cached: flip a byte
        # of it under the running server
        flip(srv.tmp, b"MARK-02-")
        corrupt0 = stat(s, b"bitcached", b"get_corrupt")
        got = text_get(s, [b"big:1", b"big:2", b"big:3"])
        want = b"".join(b"VALUE %s 5 %d\r\n%s\r\n" % (k, len(v), v)
                        for k, v in (items[0], items[2])) + b"END\r\n"
        check(got == want, "flipped byte: the text get leaves big:2 out (%d bytes)" % len(got))
        check(stat(s, b"bitcached", b"get_corrupt") == corrupt0 + 1, "get_corrupt counts it")
        b = srv.connect()
        b.settimeout(10)
        st, body = bin_get(b, b"big:2")
        b.close()
        check(st == 1, "flipped byte: binary get is a miss (status %s)" % st)
        got = cmd(s, b"mg big:2 v\r\n", (b"\r\n",))
        check(not got.startswith(b"VA"), "flipped byte: mg sends no value (%r)" % got[:40])
        # the others still come whole
        expect_values(srv, s, [items[0], items[2]], "beside the damage")

        # a change already written back (no dirty page gives it away) is
        # seen by the very next get: every get compares the change time
        got = text_get(s, [b"big:3"])  # compared just now, found equal
        flip(srv.tmp, b"MARK-03-", sync=True)
        got = text_get(s, [b"big:1", b"big:3"])
        want = b"VALUE big:1 5 %d\r\n%s\r\nEND\r\n" % (BIG, items[0][1])
        check(got == want, "flipped and written back: big:3 left out at once "
              "(%d bytes)" % len(got))
        flip(srv.tmp, b"mARK-03-", sync=True)
        s.close()

        # restored, then flipped again while the server is down
        flip(srv.tmp, b"mARK-02-")
        srv.stop()
        flip(srv.tmp, b"MARK-02-")
        srv.start()
        s = srv.connect()
        s.settimeout(10)
        got = text_get(s, [b"big:2", b"big:3"])
        want = b"VALUE big:3 5 %d\r\n%s\r\nEND\r\n" % (BIG, items[2][1])
        check(got == want, "after a restart: big:2 still never served whole")
        b = srv.connect()
        b.settimeout(10)
        st, _ = bin_get(b, b"big:2")
        b.close()
        check(st == 1, "after a restart: binary get is a miss")
        s.close()
    finally:
        srv.close()


def main():
    binary = bcserver.binary()
    run(binary, [], True)
    run(binary, ["--sync=always"], False)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("large values: byte-exact in text, meta and binary; a damaged one never served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
