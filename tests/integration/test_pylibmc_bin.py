#!/usr/bin/env python3
# test_pylibmc_bin.py - pylibmc (libmemcached) with binary=True against the
# server under test: the common client calls must work over the binary
# protocol, and its SASL against -S. Skips (77) when pylibmc or the server
# binary is missing.
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

try:
    import pylibmc
except ImportError:
    # A python3 other than Debian's (a virtualenv, say) does not see
    # Debian's python3-pylibmc; try its directory before skipping.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import pylibmc
    except ImportError:
        bcserver.skip("no pylibmc (Debian: python3-pylibmc)")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def fails(call):
    """False, or one of pylibmc's errors (it raises for some misses in
    binary mode, as against memcached)."""
    try:
        return not call()
    except pylibmc.Error:
        return True


def exercise(mc):
    check(mc.set("k1", "v1"), "set")
    check(mc.get("k1") == "v1", "get")
    check(mc.get("missing") is None, "get miss")
    check(fails(lambda: mc.add("k1", "x")), "add existing")
    check(mc.add("k2", b"\x00\r\nflush_all\r\n"), "add new")
    check(mc.get("k2") == b"\x00\r\nflush_all\r\n", "binary-safe value")
    check(mc.replace("k1", "v2"), "replace")
    check(fails(lambda: mc.replace("nope", "x")), "replace missing")
    check(mc.append("k1", "+"), "append")
    check(mc.prepend("k1", "-"), "prepend")
    check(mc.get("k1") == "-v2+", "append/prepend result")
    check(mc.set("n", 10), "set int")
    check(mc.incr("n", 5) == 15, "incr")
    check(mc.decr("n", 20) == 0, "decr floors at 0")
    try:
        mc.incr("absent")
        check(False, "incr on a missing key must fail")
    except pylibmc.NotFound:
        pass
    check(mc.delete("k2"), "delete")
    check(fails(lambda: mc.delete("k2")), "delete missing")
    val, cas = mc.gets("k1")
    check(val == "-v2+" and cas, "gets")
    check(mc.cas("k1", "new", cas), "cas ok")
    check(fails(lambda: mc.cas("k1", "newer", cas)), "cas stale")
    check(mc.get("k1") == "new", "cas result")
    check(mc.touch("k1", 100), "touch")
    check(fails(lambda: mc.touch("absent", 100)), "touch missing")
    data = {"m%d" % i: "val%d" % i for i in range(50)}
    check(mc.set_multi(data) == [], "set_multi")
    got = mc.get_multi(list(data) + ["absent"])
    check(got == data, "get_multi")
    big = "x" * 500000
    check(mc.set("big", big), "set big")
    check(mc.get("big") == big, "get big")
    stats = mc.get_stats()
    check(stats and "pid" in stats[0][1], "stats")
    check(mc.flush_all(), "flush_all")
    check(mc.get("k1") is None, "flushed")


def sasl(bc):
    """-S with a password file: libmemcached's SASL PLAIN gets in with the
    right password and is refused with a wrong one."""
    tmp = bcserver.mkdtemp("bc-pylibmc.")
    pwdb = os.path.join(tmp, "pwdb")
    with open(pwdb, "w") as f:
        f.write("alice:s3cret\n")
    os.environ["MEMCACHED_SASL_PWDB"] = pwdb
    srv = bcserver.Server(bc, "bitcached", ["-S"])
    try:
        srv.start()
        addr = ["127.0.0.1:%d" % srv.port]
        mc = pylibmc.Client(addr, binary=True, username="alice", password="s3cret")
        check(mc.set("s", "1") and mc.get("s") == "1", "SASL accepted")
        bad = pylibmc.Client(addr, binary=True, username="alice", password="nope")
        check(fails(lambda: bad.set("s", "2")), "SASL refused")
        check(mc.get("s") == "1", "refused client changed nothing")
    finally:
        srv.close()
        os.environ.pop("MEMCACHED_SASL_PWDB", None)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    bc = bcserver.binary()
    srv = bcserver.Server(bc, "bitcached")
    try:
        srv.start()
        mc = pylibmc.Client(["127.0.0.1:%d" % srv.port], binary=True,
                            behaviors={"cas": True})
        exercise(mc)
        check(srv.alive(), "server alive")
    finally:
        srv.close()
    print("ok: pylibmc binary=True")
    if pylibmc.support_sasl:
        sasl(bc)
        print("ok: pylibmc SASL (-S) accepted and refused")
    else:
        print("note: this pylibmc has no SASL; -S not tried")
    return 0


if __name__ == "__main__":
    sys.exit(main())
