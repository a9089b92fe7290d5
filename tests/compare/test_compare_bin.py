#!/usr/bin/env python3
# test_compare_bin.py - differential test of the binary protocol: Debian's
# memcached ($MEMCACHED) and the server under test ($BITCACHED) get the same
# raw binary packets, every opcode and its quiet variant, good and malformed;
# the response packets must be identical once cas values (nonzero vs zero is
# kept), stat bodies and version strings are masked, and so must be whether
# the connection was closed. Each case runs on a fresh connection with its
# own keys. Python 3 stdlib and tests/integration/bcserver.py.
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH, GETQ, NOOP, VERSION = range(12)
GETK, GETKQ, APPEND, PREPEND, STAT, SETQ, ADDQ, REPLACEQ, DELETEQ = range(0x0C, 0x15)
INCRQ, DECRQ, QUITQ, FLUSHQ, APPENDQ, PREPENDQ, VERBOSITY = range(0x15, 0x1C)
TOUCH, GAT, GATQ = 0x1C, 0x1D, 0x1E
SASL_LIST, SASL_AUTH, SASL_STEP = 0x20, 0x21, 0x22
GATK, GATKQ = 0x23, 0x24
CAS = object()  # placeholder: the cas of the last response that had one


def req(op, key=b"", ext=b"", val=b"", cas=0, opaque=0xA1B2C3D4, bodylen=None, magic=0x80,
        pad=False):
    """pad: follow the packet with filler bytes for the extras and key
    length: after an unknown command memcached swallows the whole body
    length past extras and key, so that much more than the packet."""
    return [magic, op, key, ext, val, cas, opaque, bodylen, pad]


def render(r, last_cas):
    magic, op, key, ext, val, cas, opaque, body, pad = r
    if cas is CAS:
        cas = last_cas
    if body is None:
        body = len(ext) + len(key) + len(val)
    hdr = struct.pack(">BBHBBHIIQ", magic, op, len(key), len(ext), 0, 0, body, opaque, cas)
    return hdr + ext + key + val + (b"\xee" * (len(ext) + len(key)) if pad else b"")


def setx(flags=0, exp=0):
    return struct.pack(">II", flags, exp)


def incx(delta=1, initial=0, exp=0):
    return struct.pack(">QQI", delta, initial, exp)


def u32(v):
    return struct.pack(">I", v)


NOOP_REQ = req(NOOP, opaque=0x5E5E5E5E)

# (name, [request, ...], expect_close). "K" and "K2" in keys and values
# become the case's own keys.
CASES = [
    # memcached's binary stat serves items and slabs (whole names), reset,
    # settings and detail by their first bytes, and nothing else (not
    # conns, extstore or cachedump). The general stat's names are compared
    # too (the key of each packet is kept). First: memcached keeps listing
    # a slab class in stat slabs once it had items, bitcached lists the
    # classes that have items now (README), so no other case's items yet.
    ("stat groups", [req(SET, b"K", setx(), b"v"), req(SET, b"K2", setx(), b"x" * 3000),
                     req(STAT), req(STAT, b"items"), req(STAT, b"slabs"), req(STAT, b"conns"),
                     req(STAT, b"extstore"), req(STAT, b"cachedump 1 0"),
                     req(STAT, b"items x"), req(STAT, b"slabsx"), req(STAT, b"resetx"),
                     req(STAT, b"reset"), req(STAT, b"sizes x"), req(STAT, b"detail onx"),
                     req(STAT, b"detail off"), req(STAT, b"detail dumpx")], False),
    ("get miss", [req(GET, b"K")], False),
    ("getq miss silent", [req(GETQ, b"K")], False),
    ("getk miss", [req(GETK, b"K")], False),
    ("getkq miss silent", [req(GETKQ, b"K")], False),
    ("set get", [req(SET, b"K", setx(7), b"hello"), req(GET, b"K"), req(GETK, b"K"),
                 req(GETQ, b"K"), req(GETKQ, b"K")], False),
    ("setq silent", [req(SETQ, b"K", setx(1), b"v"), req(GET, b"K")], False),
    ("set empty value", [req(SET, b"K", setx(), b""), req(GET, b"K")], False),
    ("set binary key", [req(SET, b"K\x00 \r\n", setx(), b"x"), req(GET, b"K\x00 \r\n")], False),
    ("set holds text commands", [req(SET, b"K2", setx(), b"keep"),
                                 req(SET, b"K", setx(), b"\r\nflush_all\r\ndelete K2\r\n"),
                                 req(GET, b"K2")], False),
    ("add", [req(ADD, b"K", setx(), b"a"), req(ADD, b"K", setx(), b"b"),
             req(ADDQ, b"K", setx(), b"c"), req(ADDQ, b"K2", setx(), b"d"), req(GET, b"K2")], False),
    ("replace", [req(REPLACE, b"K", setx(), b"a"), req(REPLACEQ, b"K", setx(), b"a"),
                 req(SET, b"K", setx(), b"a"), req(REPLACE, b"K", setx(3), b"b"),
                 req(REPLACEQ, b"K", setx(4), b"c"), req(GET, b"K")], False),
    ("cas set", [req(SET, b"K", setx(), b"a"), req(SET, b"K", setx(), b"b", cas=CAS),
                 req(SET, b"K", setx(), b"c", cas=12345678), req(GET, b"K")], False),
    ("cas missing", [req(SET, b"K", setx(), b"a", cas=99), req(SETQ, b"K", setx(), b"a", cas=99)], False),
    ("cas add replace", [req(SET, b"K", setx(), b"a"), req(ADD, b"K", setx(), b"b", cas=CAS),
                         req(REPLACE, b"K", setx(), b"c", cas=CAS), req(GET, b"K"),
                         req(ADD, b"K2", setx(), b"x", cas=5)], False),
    ("append prepend", [req(APPEND, b"K", b"", b"x"), req(PREPENDQ, b"K", b"", b"x"),
                        req(SET, b"K", setx(9), b"m"), req(APPEND, b"K", b"", b">>"),
                        req(PREPEND, b"K", b"", b"<<"), req(APPENDQ, b"K", b"", b"!"),
                        req(PREPENDQ, b"K", b"", b"^"), req(GET, b"K")], False),
    ("append cas", [req(SET, b"K", setx(), b"a"), req(APPEND, b"K", b"", b"b", cas=CAS),
                    req(APPEND, b"K", b"", b"c", cas=1), req(APPEND, b"K2", b"", b"c", cas=1),
                    req(GET, b"K")], False),
    ("delete", [req(DELETE, b"K"), req(DELETEQ, b"K"), req(SET, b"K", setx(), b"a"),
                req(DELETE, b"K"), req(SET, b"K", setx(), b"a"), req(DELETEQ, b"K"),
                req(GET, b"K")], False),
    ("delete cas", [req(SET, b"K", setx(), b"a"), req(DELETE, b"K", cas=1),
                    req(DELETE, b"K", cas=CAS), req(GET, b"K")], False),
    ("incr create", [req(INCR, b"K", incx(5, 10)), req(INCR, b"K", incx(5, 10)),
                     req(DECR, b"K", incx(100, 0)), req(GET, b"K")], False),
    ("incr no create", [req(INCR, b"K", incx(1, 0, 0xFFFFFFFF)),
                        req(DECRQ, b"K", incx(1, 0, 0xFFFFFFFF))], False),
    # found by test_compare_fuzz.py
    ("incr create expired", [req(INCR, b"K", incx(5, 10, 2592001)), req(GET, b"K"),
                             req(DECRQ, b"K2", incx(1, 7, 2592001)), req(GET, b"K2"),
                             req(INCR, b"K", incx(5, 10, 0))], False),
    ("incr create ignores cas", [req(INCR, b"K", incx(5, 10, 100000), cas=987654321012),
                                 req(INCRQ, b"K2", incx(1, 3, 100000), cas=5),
                                 req(DECR, b"K2", incx(1, 3, 100000), cas=5),
                                 req(GET, b"K"), req(GET, b"K2")], False),
    # an empty or chunked value is non-numeric before the cas is compared
    ("incr cas on an empty or chunked value",
     [req(SET, b"K", setx(), b""), req(INCR, b"K", incx(1, 0, 0xFFFFFFFF), cas=987654321012),
      req(SET, b"K2", setx(), b" " * 600000 + b"1"),
      req(DECR, b"K2", incx(1, 0, 0xFFFFFFFF), cas=987654321012),
      req(SET, b"K2", setx(), b"x"), req(DECR, b"K2", incx(1, 0, 0xFFFFFFFF), cas=987654321012)],
     False),
    ("incr quiet", [req(INCRQ, b"K", incx(3, 7)), req(INCRQ, b"K", incx(3, 7)),
                    req(DECRQ, b"K", incx(1, 7)), req(GET, b"K")], False),
    ("incr wrap", [req(SET, b"K", setx(), b"18446744073709551615"), req(INCR, b"K", incx(2))], False),
    ("incr non-numeric", [req(SET, b"K", setx(), b"abc"), req(INCR, b"K", incx(1)),
                          req(INCRQ, b"K", incx(1))], False),
    ("incr cas", [req(SET, b"K", setx(), b"5"), req(INCR, b"K", incx(1), cas=1),
                  req(INCR, b"K", incx(1), cas=CAS)], False),
    ("decr shorter", [req(SET, b"K", setx(), b"100"), req(DECR, b"K", incx(95)), req(GET, b"K")], False),
    ("touch", [req(TOUCH, b"K", u32(10)), req(SET, b"K", setx(3), b"abc"),
               req(TOUCH, b"K", u32(100)), req(GET, b"K")], False),
    ("gat family", [req(GAT, b"K", u32(10)), req(GATQ, b"K", u32(10)), req(GATK, b"K", u32(10)),
                    req(GATKQ, b"K", u32(10)), req(SET, b"K", setx(5), b"v"),
                    req(GAT, b"K", u32(100)), req(GATQ, b"K", u32(100)),
                    req(GATK, b"K", u32(100)), req(GATKQ, b"K", u32(100))], False),
    ("gat expire", [req(SET, b"K", setx(), b"v"), req(GAT, b"K", u32(0xFFFFFFFF)),
                    req(GAT, b"K", u32(0))], False),
    ("negative-like set exptime", [req(SET, b"K", setx(0, 0xFFFFFFFF), b"v"), req(GET, b"K")], False),
    ("flush", [req(SET, b"K", setx(), b"v"), req(FLUSH), req(GET, b"K"),
               req(SET, b"K", setx(), b"v"), req(FLUSHQ), req(GET, b"K")], False),
    ("flush delay", [req(SET, b"K", setx(), b"v"), req(FLUSH, ext=u32(1000)), req(GET, b"K"),
                     req(FLUSH, ext=u32(0)), req(GET, b"K")], False),
    ("noop version", [req(NOOP), req(VERSION)], False),
    ("stat unknown group", [req(STAT, b"nosuchgroup")], False),
    ("stat detail", [req(STAT, b"detail on"), req(SET, b"p:K", setx(), b"v"),
                     req(GET, b"p:K"), req(STAT, b"detail dump"), req(STAT, b"detail off"),
                     req(STAT, b"detail foo"), req(STAT, b"detail")], False),
    ("verbosity unknown", [req(VERBOSITY, ext=u32(1), pad=True)], False),
    ("unknown opcode", [req(0x42), req(0x42, b"K", val=b"xy", pad=True), req(GET, b"K")], False),
    ("sasl off", [req(SASL_LIST), req(SASL_AUTH, b"PLAIN", val=b"\0u\0p"), req(GET, b"K")], False),
    ("too large set", [req(SET, b"K", setx(), b"v"),
                       req(SET, b"K", setx(), b"z" * (1024 * 1024 + 1)), req(GET, b"K")], False),
    ("too large setq", [req(SETQ, b"K", setx(), b"z" * (1024 * 1024 + 1)), req(GET, b"K")], False),
    ("too large append", [req(SET, b"K", setx(), b"v"),
                          req(APPEND, b"K", b"", b"z" * (1024 * 1024 + 1)), req(GET, b"K")], False),
    ("quit", [req(QUIT)], True),
    ("quitq", [req(QUITQ)], True),
    ("quit with body", [req(QUIT, b"K")], True),
    ("bad magic", [req(NOOP), req(GET, b"K", magic=0x81)], True),
    ("get with extras", [req(GET, b"K", ext=u32(0))], True),
    ("get with value", [req(GET, b"K", val=b"x")], True),
    ("set without extras", [req(SET, b"K", val=b"x")], True),
    ("set without key", [req(SET, b"", setx(), b"x")], True),
    ("incr short extras", [req(INCR, b"K", ext=u32(1))], True),
    ("key over 250", [req(GET, b"k" * 251)], True),
    ("key max 250", [req(SET, b"k" * 250, setx(), b"x"), req(GET, b"k" * 250)], False),
    ("key longer than body", [req(GET, b"K", bodylen=1)], True),
    ("flush with key", [req(FLUSH, b"K")], True),
    ("noop with body", [req(NOOP, val=b"x")], True),
    ("touch no extras", [req(TOUCH, b"K")], True),
]


# Cases run against both servers started with -C (no cas): responses
# carry cas 0, stores ignore a request's cas, and delete and increment
# compare it with 0 (found by test_compare_fuzz.py, FUZZ_ARGS=-C).
CASES_NO_CAS = [
    ("set cas under -C", [req(SET, b"K", setx(), b"1"), req(SET, b"K", setx(), b"2", cas=12345),
                          req(GET, b"K"), req(GETK, b"K"), req(GAT, b"K", u32(0)),
                          req(TOUCH, b"K", u32(0))], False),
    ("add replace append cas under -C", [req(SET, b"K", setx(), b"1"),
                                         req(ADD, b"K", setx(), b"2", cas=12345),
                                         req(ADD, b"K2", setx(), b"2", cas=12345),
                                         req(REPLACE, b"K", setx(), b"3", cas=12345),
                                         req(APPEND, b"K", b"", b"4", cas=12345),
                                         req(PREPENDQ, b"K", b"", b"5", cas=12345),
                                         req(GET, b"K")], False),
    ("delete incr cas under -C", [req(SET, b"K", setx(), b"1"), req(DELETE, b"K", cas=12345),
                                  req(INCR, b"K", incx(1, 5), cas=12345), req(INCR, b"K", incx(1, 5)),
                                  req(INCR, b"K2", incx(1, 5), cas=12345),
                                  req(SET, b"K", setx(), b""), req(DECR, b"K", incx(1, 5), cas=7),
                                  req(DELETE, b"K", cas=0)], False),
]


def read_packets(sock, until_noop, limit=10.0):
    """Read response packets. Stop after the NOOP sentinel's response (when
    until_noop) or when the peer closes. Returns (packets, closed)."""
    sock.settimeout(limit)
    buf = b""
    packets = []
    closed = False
    while True:
        while len(buf) >= 24:
            body = struct.unpack(">I", buf[8:12])[0]
            if len(buf) < 24 + body:
                break
            packets.append(buf[:24 + body])
            buf = buf[24 + body:]
            if until_noop and packets[-1][1] == NOOP and packets[-1][12:16] == b"\x5e" * 4:
                return packets, False
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            closed = True
            break
        buf += chunk
    if buf:
        packets.append(b"PARTIAL:" + buf)
    return packets, closed


def mask(p, opcode_of_stat=STAT):
    if p.startswith(b"PARTIAL:"):
        return p
    hdr = bytearray(p[:24])
    cas = struct.unpack(">Q", hdr[16:24])[0]
    hdr[16:24] = b"CAS=1..." if cas else bytes(8)
    body = p[24:]
    if hdr[1] in (VERSION, opcode_of_stat) and hdr[6:8] == b"\0\0":
        # a stat's name stays, its value is masked
        klen = struct.unpack(">H", bytes(hdr[2:4]))[0] if hdr[1] == opcode_of_stat else 0
        body = body[hdr[4]:hdr[4] + klen] + b"<masked %d>" % (len(body) > klen)
        hdr[8:12] = b"...."
    return bytes(hdr) + body


def run_case(server, steps, expect_close, tag):
    k = ("bk%s" % tag).encode()
    k2 = ("bk%s2" % tag).encode()
    sock = server.connect()
    out = []
    last_cas = 0
    closed = False
    try:
        for r in steps:
            r = list(r)
            if r[2][:1] == b"K":
                r[2] = r[2].replace(b"K2", k2).replace(b"K", k)
            r[4] = r[4].replace(b"K2", k2)
            sock.sendall(render(r, last_cas))
            if expect_close:
                continue
            sock.sendall(render(NOOP_REQ, 0))
            pkts, closed = read_packets(sock, True)
            for p in pkts:
                if len(p) >= 24 and not p.startswith(b"PARTIAL:"):
                    c = struct.unpack(">Q", p[16:24])[0]
                    if c:
                        last_cas = c
            out.append([mask(p) for p in pkts])
            if closed:
                break
        if expect_close:
            pkts, closed = read_packets(sock, False, limit=3.0)
            out.append([mask(p) for p in pkts])
    finally:
        sock.close()
    return out, closed


def main():
    mc = os.environ.get("MEMCACHED", "")
    bc = bcserver.binary()
    if not bcserver.executable(mc):
        bcserver.skip("no memcached to compare with")
    failures = run_cases(mc, bc, CASES, [])
    failures += run_cases(mc, bc, CASES_NO_CAS, ["-C"])
    print("%d cases, %d failed" % (len(CASES) + len(CASES_NO_CAS), failures))
    return 1 if failures else 0


def run_cases(mc, bc, cases, args):
    ref = bcserver.Server(mc, "memcached", args=args)
    sut = bcserver.Server(bc, "bitcached", args=args)
    failures = 0
    try:
        ref.start()
        sut.start()
        for i, (name, steps, expect_close) in enumerate(cases):
            a = run_case(ref, steps, expect_close, "%d" % i)
            b = run_case(sut, steps, expect_close, "%d" % i)
            if a != b:
                failures += 1
                print("FAIL: %s" % name)
                print("  memcached: %r" % (a,))
                print("  bitcached: %r" % (b,))
            else:
                print("ok: %s" % name)
        if not sut.alive():
            print("FAIL: server died")
            failures += 1
    finally:
        ref.close()
        sut.close()
    return failures


if __name__ == "__main__":
    sys.exit(main())
