#!/usr/bin/env python3
# gen_golden.py - regenerate the golden transcripts in tests/golden/cases/.
#
# Each case below is a byte string of requests. For every case this script
# writes NAME.req (the requests, followed by a final END_REQ whose reply
# END_RSP marks the end), starts a fresh memcached on 127.0.0.1 and a free port with
# the same item size limit test_golden.c passes as item_max, sends the bytes
# on one connection and writes the reply bytes to NAME.rsp.
#
#   python3 tests/golden/gen_golden.py [path/to/memcached]
#
# Run it from the top of the source tree after changing a case, and check in
# both files. Uses only the python3 standard library.
import os
import random
import shutil
import socket
import subprocess
import sys
import time

END_REQ = b"mg golden-end k\r\n"
END_RSP = b"EN kgolden-end\r\n"
ITEM_MAX = 65536  # keep in step with ITEM_MAX in test_golden.c
BIG = ITEM_MAX + 1000
K250 = b"k" * 250
K251 = b"k" * 251

CASES = {
    "get_set": b"set a 0 0 5\r\nhello\r\nget a\r\nget b\r\nget a b a\r\n"
               b"set b 42 0 0\r\n\r\ngets b\r\nset c 1 0 3\r\nabc\r\n"
               b"get   a   c  \r\n  get c\r\nget c\n",
    "flags": b"set a 4294967295 0 1\r\nx\r\nget a\r\nset a 4294967297 0 1\r\n"
             b"x\r\nget a\r\nset a -1 0 1\r\nx\r\nset a x 0 1\r\nx\r\n",
    "numbers": b"set q1 0 0 4294967297\r\nx\r\nget q1\r\nincr q1 -0\r\n"
               b"set q2 0 0 1\r\n5\r\nincr q2 -0\r\nincr q2 1\t\r\n"
               b"incr q2 \t1\r\nincr q2 -1\r\nincr q2 +2\r\n"
               b"set q3 -0 0 1\r\nx\r\nms q4 4294967297\r\ny\r\n"
               b"mg q4 v\r\nmg q4 T-0 v\r\nincr q2 5\r\r\n"
               b"ms q5 1 F4294967297\r\nz\r\nmg q5 f\r\n"
               b"set q6 0 4294967301 1\r\nx\r\nmg q6 t\r\n"
               b"ma q7 N0 J18446744073709551615 v\r\nma q7 D-0 v\r\n"
               b"gets q1\r\ncas q1 0 0 1 -0\r\nx\r\n",
    "storage_modes": b"add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nreplace a 0 0 1\r\n3\r\n"
                     b"replace zz 0 0 1\r\n3\r\nappend a 0 0 2\r\n45\r\n"
                     b"prepend a 0 0 2\r\n01\r\nget a\r\nappend zz 0 0 1\r\nx\r\n"
                     b"prepend zz 0 0 1\r\nx\r\n",
    "cas": b"set a 0 0 1\r\nx\r\ngets a\r\ncas a 0 0 1 999\r\ny\r\n"
           b"cas a 0 0 1 1\r\nz\r\ngets a\r\ncas zz 0 0 1 5\r\nx\r\n"
           b"cas a 0 0 1\r\nx\r\ncas a 0 0 1 abc\r\nx\r\ncas a 0 0 1 0\r\nx\r\n"
           b"cas a 0 0 1 2 noreply\r\nq\r\nget a\r\n",
    "noreply": b"set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\n"
               b"replace a 0 0 1 noreply\r\nz\r\nappend a 0 0 1 noreply\r\n1\r\n"
               b"get a\r\ndelete a noreply\r\ndelete a 0 noreply\r\n"
               b"incr n 1 noreply\r\ntouch a 1 noreply\r\nflush_all noreply\r\n"
               b"verbosity 1 noreply\r\nset a 0 0 -1 noreply\r\n"
               b"set a 0 0 1 noreply\r\nxyz\r\nget a\r\n",
    "delete": b"set a 0 0 1\r\nx\r\ndelete a\r\ndelete a\r\nset a 0 0 1\r\nx\r\n"
              b"delete a 0\r\ndelete a 1\r\ndelete a x y\r\ndelete a x\r\n"
              b"delete a b c d\r\ndelete\r\ndelete " + K251 + b"\r\n",
    "incr_decr": b"set n 5 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n x\r\n"
                 b"incr n -1\r\nincr n 18446744073709551616\r\nincr n\r\n"
                 b"incr nn 1\r\nget n\r\nincr n 1 2\r\nincr n 1 noreply x\r\n"
                 b"set s 0 0 2\r\nab\r\nincr s 1\r\ndecr s 1\r\n"
                 b"set p 0 0 3\r\n100\r\ndecr p 1\r\nget p\r\n"
                 b"set q 0 0 20\r\n18446744073709551615\r\nincr q 2\r\n"
                 b"set t 0 0 3\r\n12 \r\nincr t 1\r\nset u 0 0 3\r\n-12\r\n"
                 b"incr u 1\r\nincr n 18446744073709551615\r\ngets n\r\n",
    "touch_gat": b"set n 0 0 1\r\n1\r\ntouch n 10\r\ntouch zz 10\r\ntouch n x\r\n"
                 b"touch n\r\ntouch n 10 foo\r\ntouch n 10 1 2\r\n"
                 b"gat 100 n zz\r\ngats 100 n\r\ngat n\r\ngat x n\r\ngat\r\n"
                 b"touch n -1\r\nget n\r\ngat 10\r\ngats 10  \r\n",
    "expiry": b"set a 0 -1 1\r\nx\r\nget a\r\nset b 0 4294967301 1\r\nx\r\n"
              b"get b\r\nset c 0 2147483648 1\r\nx\r\nget c\r\n"
              b"set d 0 100 1\r\nx\r\nget d\r\nset e 0 1000000000 1\r\nx\r\nget e\r\n",
    "misc": b"version\r\nversion x\r\nverbosity\r\nverbosity 1\r\n"
            b"verbosity x\r\nverbosity 1 2 3\r\nverbosity 1 2\r\n"
            b"flush_all x\r\nflush_all 1 2 3\r\nflush_all noreply 1\r\n"
            b"shutdown\r\n",
    "flush": b"set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\nset a 0 0 1\r\ny\r\n"
             b"flush_all 0\r\nflush_all -1\r\nget a\r\n",
    "unknown": b"foo\r\n\r\nx\r\nGET a\r\nget\r\nset a 0 0\r\n"
               b"set a 0 0 1 2 3\r\nmx\r\nme\r\nmg\r\n\x00\x01\r\n"
               b"x HTTP/1.1\r\nGET\r\nfoo bar HTTP\r\n",
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "keys": b"set " + K250 + b" 0 0 1\r\nx\r\nget " + K250 + b"\r\n"
            b"set " + K251 + b" 0 0 1\r\nx\r\n"
            b"set a\tb 0 0 1\r\nx\r\nget a\tb\r\nget a\r\r\n",
    "get_long_key": b"get a " + K251 + b"\r\n",
    "bad_chunk": b"set a 0 0 1\r\nx\r\nset a 0 0 1\r\nxyzw\r\nget a\r\n"
                 b"set a 0 0 1\r\nx\rget a\r\n",
    "too_large": b"set e 0 0 5\r\nhello\r\nset e 0 0 %d\r\n" % BIG + b"x" * BIG +
                 b"\r\nget e\r\nset f 0 0 %d noreply\r\n" % BIG + b"x" * BIG +
                 b"\r\nset f 0 0 %d\r\n" % BIG + b"x" * BIG + b"zz\r\n"
                 b"set e 0 0 1\r\ny\r\nadd e 0 0 %d\r\n" % BIG + b"x" * BIG +
                 b"\r\nget e\r\nms g %d\r\n" % BIG + b"x" * BIG + b"\r\n"
                 b"set f 0 0 2147483647\r\nget f\r\n",
    "multiget": b"set a 0 0 1\r\n1\r\nset c 0 0 1\r\n3\r\nget " +
                b" ".join(b"k%d" % i for i in range(600)) + b" a c\r\n" +
                b"get " + b" ".join(b"c" for i in range(40)) + b"\r\n",
    "pipeline": b"".join(b"set k%d 0 0 %d\r\n%s\r\nget k%d\r\n" %
                         (i, len(b"v%d" % i), b"v%d" % i, i) for i in range(50)) +
                b"delete k3\r\nincr k4 1\r\n",
    "meta_get": b"set m 3 0 2\r\nhi\r\nmg m v f t c s k\r\nmg m\r\nmg zz v\r\n"
                b"mg zz v q\r\nmg m k O123 q\r\nmg m v T30\r\nmg m x\r\n"
                b"mg m v v\r\nmg zz v k Oa\r\nmg m v s f t\r\nmg m f f\r\n"
                b"mg m N\r\nmg m Tx\r\nmg m O12345678901234567890123456789012345 k\r\n"
                b"mg m a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n"
                b"mg m Oabc k c\r\nmg zz q k\r\nmg m q\r\n",
    # win/stale state: W once, then Z; md I and ms I mark stale (X); a
    # store or delete clears it. No mg of an item is pipelined before an
    # incr of it: memcached then copies the item instead of changing it in
    # place, and drops the bits.
    "meta_state": b"mg a N30 v c\r\nmg a v\r\nmg a s t q\r\nmg a N30 k\r\n"
                  b"mg a T60 N30 t\r\nms a 1 T100\r\nx\r\nmg a v\r\n"
                  b"mg a R50 v\r\nmg a R200 v t\r\nmg a R200\r\nmg a v\r\n"
                  b"mg a T10 R50 O1\r\nmd a I\r\nmg a c\r\nmg a v\r\n"
                  b"md a I T30 q\r\nmg a t k O1\r\nmg a\r\nget a\r\n"
                  b"ms a 1 I C1\r\ny\r\nmg a v t\r\nadd a 0 0 1\r\nz\r\n"
                  b"md a I\r\nms a 1 MA I C1\r\nz\r\nms a 1 MR I C1 T5\r\nw\r\n"
                  b"mg a v t\r\nms a 1 I\r\nw\r\nmg a v\r\n"
                  b"md a I\r\ndelete a\r\nmg a N10\r\nmg a\r\n"
                  b"md a I\r\nmd a\r\nmg a\r\nmg a N10 q\r\nmg a q\r\n"
                  b"set b 0 0 1\r\nx\r\nmd b I\r\ntouch b 100\r\nmg b T50\r\n"
                  b"mg b\r\nmd b I\r\nmg b q v\r\nmg b q v\r\nmg b R5000 k\r\n"
                  b"set c 0 0 2\r\n10\r\nmd c I\r\nincr c 1\r\nma c\r\n"
                  b"decr c 5\r\nmg c v\r\nincr c 100\r\nmg c\r\n"
                  b"set d 0 0 1\r\n9\r\nmd d I\r\nincr d 1\r\nmg d v\r\n"
                  b"mg e R30\r\nmg e R30 N30\r\nmg e R30\r\n"
                  b"set f 0 0 1\r\nx\r\nmg f R30\r\nmd f I\r\n"
                  b"flush_all\r\nmg f N30\r\nmg f\r\n",
    "meta_set": b"ms m 2\r\nhi\r\nms m 2 T0 F5 I\r\nhi\r\nmg m f v\r\n"
                b"ms m S2\r\nhi\r\nms m 2 MA\r\nzz\r\nmg m v\r\n"
                b"ms m 2 q\r\nyo\r\nms m 2 MX\r\nhi\r\nms m 2 x\r\nhi\r\n"
                b"ms m 2 F1 F1\r\nhi\r\nms m\r\nhi\r\nms m x\r\nhi\r\n"
                b"ms m -1\r\nhi\r\nms m 2\r\nhiX\r\nms m 2 k Oa c\r\nhi\r\n"
                b"ms zz 2 C1\r\nhi\r\nms m 2 ME\r\nhi\r\nms zz 2 MR\r\nhi\r\n"
                b"ms zz 2 MP\r\nhi\r\nms zz 2 ME\r\nhi\r\nmg zz v\r\n"
                b"ms m 2 noreply\r\nhi\r\nms m 2 Mq\r\nhi\r\n"
                b"ms m 2 T-1\r\nhi\r\nmg m v\r\n",
    "meta_cas": b"ms m 2 c\r\nhi\r\nms m 2 C999\r\nho\r\nmg m c v\r\n"
                b"ms m 2 C2\r\nho\r\nmg m v c\r\nmd m C999\r\nmd m C3 q\r\nmg m\r\n",
    "meta_set_modes_cas": b"ms c1 1 ME C1\r\na\r\nms c1 1 ME C1\r\na\r\n"
                          b"ms c1 1 MA C1\r\nb\r\nms c1 1 MP C999\r\nc\r\n"
                          b"ms c1 1 MR C999\r\nd\r\nmg c1 v c\r\n"
                          b"ms c2 1 MA C1\r\nb\r\nms c3 1 MR C1\r\nb\r\n"
                          b"ms c1 1 MS C999\r\ne\r\nms c1 1 MR C0\r\nf\r\n"
                          b"ms c1 1 MA C0\r\nf\r\nms c1 1 MS C0\r\ng\r\n"
                          b"ms c4 1 C0\r\ng\r\nms c1 1 MR C1\r\nh\r\n"
                          b"mg c1 v\r\n",
    "meta_order": b"set a 0 0 2\r\n10\r\nmg a O1 u t T30\r\nmg a t\r\n"
                  b"mg a T60 t\r\nmg a t T90 t\r\nma a q c v\r\nmg a v\r\n"
                  b"ma a t T10\r\nma a T20 t\r\nma z q N30 v\r\n",
    "meta_delete": b"set m 0 0 2\r\nhi\r\nmd m\r\nmd m q\r\nmd m\r\nmd m x\r\n"
                   b"md zz k Oa\r\nmd zz q\r\nset m 0 0 2\r\nhi\r\nmd m q\r\nmg m\r\n",
    "meta_arith": b"ma n\r\nma n N0 J5\r\nma n MD D10\r\nma n v\r\nma n q\r\n"
                  b"mg n v\r\nma n MI D7 v\r\nma n M- v\r\nma n M+ D3 v k Oz\r\n"
                  b"ma zz J5\r\nma zz k Oa\r\nset s 0 0 2\r\nhi\r\nma s\r\n"
                  b"ma n x\r\nma n D1 D1\r\nma n D\r\nma n Dx\r\nma n MX\r\n"
                  b"ma n N\r\nma n c t v\r\nma new N0 J42 v t\r\n",
    "meta_b64": b"mg bWtleQ== b k v\r\nmg bWtleQ b k v\r\nmg m! b\r\n"
                b"ms bWtleQ== 2 b k\r\nhi\r\nmg bWtleQ== b k v\r\nget mkey\r\n"
                b"md bWtleQ== b\r\nmg bWtleQ== b v\r\n",
    "meta_more": b"ms bWtleQ== 2 b\r\nhi\r\nmg bWtleQ== b v\r\n"
                 b"mg bWtleQ== b O1 s\r\nma zz q\r\nma zz q O1\r\n"
                 b"ms " + K251 + b" 2\r\nhi\r\nmd " + K251 + b"\r\n"
                 b"ms k 2 S2\r\nhi\r\nms k 2 I\r\nho\r\nmg k v\r\n"
                 b"mg k v u\r\nmg k E5\r\nmg k R30 v\r\nmg zz N30 v\r\n"
                 b"ma k\r\nms n 1 T0\r\n5\r\nma n T30 t v\r\n"
                 b"ms k 1 MS F1 T0 b\r\nx\r\nms k 2 E5\r\nhi\r\n"
                 b"md k E5\r\nma k E5\r\nms k 2 s\r\nhi\r\nmg k E\r\n"
                 b"ms k 2 N5\r\nhi\r\nma k q N5 J1\r\nmd k x\r\n"
                 b"ms v 2 MA N30\r\nhi\r\nmg v v\r\nmg w N30 c v\r\n",
    "meta_noop": b"mn\r\nmn x\r\nme zz\r\n",
    "quit": b"set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n",
    "quit_args": b"quit x\r\nget a\r\n",
    "long_line": b"set a 0 0 1 " + b"x" * 3000 + b"\r\nget a\r\n",
    "long_get": b"get k " + b"k" * 3000 + b"\r\nset k 0 0 1\r\nx\r\n"
                b"get " + b"k " * 1500 + b"\r\n",
}


def random_case(seed, n=40):
    """A stream of n random, mostly valid commands over a few keys: mixes
    every classic command with meta commands, odd flags and numbers, wrong
    data lengths and noreply. Deterministic for a given seed."""
    rnd = random.Random(seed)
    keys = [b"a", b"b", b"n", b"k1", b"bWtleQ==", b"mkey", K250]

    def num():
        return rnd.choice([b"0", b"1", b"5", b"10", b"-1", b"abc", b"",
                           b"18446744073709551615", b"18446744073709551616",
                           b"4294967296", b"007", b"+3", b"2592001", b"1000"])

    def val():
        return rnd.choice([b"", b"1", b"10", b"hi", b"99 ", b" 5", b"x" * 200,
                           b"18446744073709551615", b"abc", b"99 abc"])

    def line():
        c = rnd.randrange(20)
        k = rnd.choice(keys)
        nr = rnd.choice([b"", b"", b" noreply"])
        if c < 5:
            cmd = rnd.choice([b"set", b"add", b"replace", b"append",
                              b"prepend", b"cas"])
            v = val()
            n = len(v) if rnd.random() < 0.9 else rnd.choice([0, 1, 3])
            extra = b" " + num() if cmd == b"cas" else b""
            exp = rnd.choice([b"0", b"-1", b"1000", b"2592001", b"0"])
            fl = rnd.choice([b"0", b"5", b"4294967295"])
            return b"%s %s %s %s %d%s%s\r\n%s\r\n" % (cmd, k, fl, exp, n,
                                                     extra, nr, v)
        if c < 8:
            cmd = rnd.choice([b"get", b"gets", b"gat 1000", b"gats 0",
                              b"gat -1"])
            ks = [rnd.choice(keys[:6]) for _ in range(rnd.randrange(1, 4))]
            return cmd + b" " + b" ".join(ks) + b"\r\n"
        if c < 10:
            return b"%s %s %s%s\r\n" % (rnd.choice([b"incr", b"decr"]), k,
                                         num(), nr)
        if c == 10:
            return b"delete %s%s%s\r\n" % (k, rnd.choice([b"", b" 0", b" 1"]),
                                           nr)
        if c == 11:
            return b"touch %s %s%s\r\n" % (
                k, rnd.choice([b"0", b"1000", b"-1"]), nr)
        if c == 12:
            return rnd.choice([b"flush_all\r\n", b"flush_all 0\r\n",
                               b"flush_all noreply\r\n", b"version\r\n",
                               b"verbosity 1\r\n", b"mn\r\n"])
        mflags = {b"mg": b"bcfkOqstuvT", b"ms": b"bcCFIkOqsTM",
                  b"md": b"bCIkOqT", b"ma": b"bCkOqtcvNJDTM"}
        cmd = rnd.choice(list(mflags))
        fl = []
        for _ in range(rnd.randrange(0, 5)):
            f = bytes([rnd.choice(mflags[cmd] + b"xE")])
            if f in b"CFTNJD":
                f += rnd.choice([b"0", b"1", b"30", b"x", b""])
            elif f == b"O":
                f += rnd.choice([b"1", b"abc", b""])
            elif f == b"M":
                modes = ([b"E", b"A", b"P", b"R", b"S", b"X"] if cmd == b"ms"
                         else [b"I", b"D", b"+", b"-", b"X"])
                f += rnd.choice(modes)
            fl.append(f)
        flags = b"".join(b" " + f for f in fl)
        if cmd == b"ms":
            v = val()
            return b"ms %s %d%s\r\n%s\r\n" % (k, len(v), flags, v)
        return b"%s %s%s\r\n" % (cmd, k, flags)

    # a few harmless lines at the end, in case a short data block eats some
    return b"".join(line() for _ in range(n)) + b"version\r\n" * 4


for seed in range(1, 9):
    CASES["random_%d" % seed] = random_case(seed)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(memcached):
    port = free_port()
    args = [memcached, "-l", "127.0.0.1", "-p", str(port), "-U", "0",
            "-I", str(ITEM_MAX), "-o", "slab_chunk_max=%d" % (ITEM_MAX // 2)]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    proc = subprocess.Popen(args)
    for _ in range(100):
        try:
            return proc, socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("memcached did not start")


def run_case(memcached, data):
    proc, s = start(memcached)
    try:
        s.sendall(data)
        s.settimeout(5)
        out = b""
        while not out.endswith(END_RSP):
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out
    finally:
        s.close()
        proc.terminate()
        proc.wait()


def main():
    memcached = sys.argv[1] if len(sys.argv) > 1 else shutil.which("memcached")
    if memcached is None:
        sys.exit("memcached not found")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
    os.makedirs(here, exist_ok=True)
    for name, data in sorted(CASES.items()):
        data += END_REQ
        with open(os.path.join(here, name + ".req"), "wb") as f:
            f.write(data)
        with open(os.path.join(here, name + ".rsp"), "wb") as f:
            f.write(run_case(memcached, data))
        print(name)


if __name__ == "__main__":
    main()
