#!/usr/bin/env python3
# test_spy_ketama.py - README's spymemcached pool configuration (section
# "Client-side ketama") puts every key on the server the classic ketama
# ring (tests/integration/ketama.py) names, as libmemcached, pylibmc and
# twemproxy do: SpyKetama.java, compiled against Debian's spymemcached,
# sets keys through three bitcached servers on free ports, and each key is
# then looked for on each server directly. Servers given as 127.0.0.1:
# with README's named() the ring is that of "127.0.0.1:PORT"; with
# AddrUtil alone spymemcached names each by the reverse lookup of the
# address ("localhost" here), another ring, as README warns. Skips (77)
# without java, javac or libspymemcached-java.
import os
import shutil
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402
import ketama  # noqa: E402

SPY_JAR = "/usr/share/java/spymemcached.jar"
NKEYS = 300


def placed(tmp, nodes, servers, mode, name):
    """Set keys through SpyKetama in mode and check each is on the server
    the ketama ring of the servers named NAME:PORT gives."""
    for n in nodes:
        s = n.connect()
        s.sendall(b"flush_all\r\n")
        bcserver.recv_until(s, [b"OK\r\n"])
        s.close()
    r = subprocess.run(["java", "-cp", SPY_JAR + os.pathsep + tmp, "SpyKetama", mode,
                        str(NKEYS)] + servers, capture_output=True, timeout=120)
    stored = [line.split()[1] for line in r.stdout.decode().splitlines()
              if line.startswith("stored ")]
    bcserver.check("%s: spymemcached stored every key" % mode,
                   r.returncode == 0 and len(stored) == NKEYS,
                   "exit %d, %d stored: %s" % (r.returncode, len(stored),
                                               r.stderr.decode(errors="replace")[-300:]))
    ring = ketama.Ring([ketama.point_name(name, n.port) for n in nodes])
    socks = [n.connect() for n in nodes]
    off = []
    for key in stored:
        held = [i for i, s in enumerate(socks)
                if bcserver.get_text(s, key.encode()).startswith(b"VALUE ")]
        if held != [ring.node(key)]:
            off.append((key, held, ring.node(key)))
    for s in socks:
        s.close()
    print("spymemcached KetamaConnectionFactory (LIBMEMCACHED), %s: %d of %d keys off the "
          "ketama ring of %s:PORT" % (mode, len(off), len(stored), name))
    bcserver.check("%s: the keys follow the ketama ring of %s:PORT" % (mode, name),
                   not off, "first: %s" % off[:3])
    spread = [sum(1 for k in stored if ring.node(k) == i) for i in range(3)]
    bcserver.check("%s: the keys spread over all three servers (%s)" % (mode, spread),
                   min(spread) > 0)


def main():
    if shutil.which("javac") is None or shutil.which("java") is None:
        bcserver.skip("needs java and javac (Debian: default-jdk-headless)")
    if not os.path.exists(SPY_JAR):
        bcserver.skip("needs libspymemcached-java")
    tmp = bcserver.mkdtemp("spyketama-")
    r = subprocess.run(["javac", "-nowarn", "-cp", SPY_JAR, "-d", tmp,
                        os.path.join(HERE, "SpyKetama.java")], capture_output=True, timeout=300)
    bcserver.check("SpyKetama.java compiles", r.returncode == 0,
                   r.stderr.decode(errors="replace")[-500:])
    if r.returncode != 0:
        return bcserver._run.finish()
    binary = bcserver.binary()
    nodes = [bcserver.Server(binary) for _ in range(3)]
    try:
        for n in nodes:
            n.start()
        servers = ["127.0.0.1:%d" % n.port for n in nodes]
        try:
            reverse = socket.gethostbyaddr("127.0.0.1")[0]
        except OSError:
            reverse = "127.0.0.1"
        placed(tmp, nodes, servers, "named", "127.0.0.1")
        placed(tmp, nodes, servers, "addrutil", reverse)
    finally:
        for n in nodes:
            n.close()
    return bcserver._run.finish()


if __name__ == "__main__":
    sys.exit(main())
