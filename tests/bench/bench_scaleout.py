#!/usr/bin/env python3
# bench_scaleout.py - informal side-by-side: the same memaslap load (90 % get,
# 10 % set, 100-byte values) against three bitcached nodes directly, then
# through nutcracker in a ketama pool over the same nodes. Prints ops/s of
# each and their ratio as name=value lines. Not part of make check; numbers
# depend on the host (client, proxy and servers share its cores).
#
#   BITCACHED=./bitcached tests/bench/bench_scaleout.py [SECONDS] [CONCURRENCY]
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import bcserver  # noqa: E402
import test_scaleout_nutcracker as nc  # noqa: E402


def memaslap(tool, servers, threads, conc, secs):
    argv = [tool, "-s", ",".join(servers), "-T", str(threads), "-c", str(conc),
            "-t", "%ds" % secs, "-X", "100"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60).stdout
    m = re.search(r"Run time:.*?Ops:\s*(\d+)\s+TPS:\s*(\d+)", out)
    if not m:
        sys.exit("memaslap output not understood:\n" + out)
    return int(m.group(2))


def main():
    secs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    binary = os.environ.get("BITCACHED", "./bitcached")
    tool = shutil.which("memcaslap") or shutil.which("memaslap")
    proxy_bin = nc.find_nutcracker()
    if not bcserver.executable(binary) or not tool or not proxy_bin:
        sys.exit("needs $BITCACHED, memcaslap (libmemcached-tools) and nutcracker")
    nodes = [bcserver.Server(binary) for _ in range(3)]
    proxy = None
    try:
        for n in nodes:
            n.start()
        proxy = nc.Proxy(proxy_bin, nodes, nodes[0].tmp, "bench")
        direct = memaslap(tool, ["127.0.0.1:%d" % n.port for n in nodes], 4, conc, secs)
        via = memaslap(tool, ["127.0.0.1:%d" % proxy.port], 4, conc, secs)
        print("scaleout_direct_ops=%d" % direct)
        print("scaleout_nutcracker_ops=%d" % via)
        print("scaleout_nutcracker_ratio=%.2f" % (via / direct))
    finally:
        if proxy is not None:
            proxy.stop()
        for n in nodes:
            n.close()


if __name__ == "__main__":
    main()
