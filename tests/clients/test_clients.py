#!/usr/bin/env python3
# test_clients.py - real client libraries of other languages against
# bitcached and Debian's memcached side by side: the same fixed sequence of
# calls (dalli_ops.rb: Ruby's Dalli, binary protocol; php_ops.php:
# php-memcached over the text and the binary protocol, and php-memcache)
# runs against both servers and every outcome line must be equal. Where
# bitcached deliberately does better, the line is listed in OWN_BETTER with
# the outcome bitcached must give. A client whose runtime or library is not
# installed is skipped with a message (Debian: ruby ruby-dalli php-cli
# php-memcached php-memcache); all of them missing skips the test (77).
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"

# memcached 1.6.18 answers libmemcached's key dump (stats cachedump) with
# nothing usable, so php-memcached's getAllKeys() returns false there; the
# dump is served here (issue: key dumps), so the keys must be listed.
OWN_BETTER = {("php-memcached ascii", "getAllKeys shape"): "true"}


def have_ruby_dalli():
    if shutil.which("ruby") is None:
        return False
    return subprocess.run(["ruby", "-e", "require 'dalli'"],
                          capture_output=True).returncode == 0


def have_php_ext(ext):
    if shutil.which("php") is None:
        return False
    r = subprocess.run(["php", "-r", "exit(extension_loaded('%s') ? 0 : 1);" % ext],
                       capture_output=True)
    return r.returncode == 0


def clients():
    out = []
    if have_ruby_dalli():
        out.append(("dalli binary",
                    lambda port: ["ruby", os.path.join(HERE, "dalli_ops.rb"),
                                  "127.0.0.1:%d" % port]))
    else:
        print("SKIP dalli: needs ruby and ruby-dalli")
    php = os.path.join(HERE, "php_ops.php")
    if have_php_ext("memcached"):
        for mode in ("ascii", "binary"):
            out.append(("php-memcached " + mode,
                        lambda port, m=mode: ["php", php, "127.0.0.1", str(port), m]))
    else:
        print("SKIP php-memcached: needs php-cli and php-memcached")
    if have_php_ext("memcache"):
        out.append(("php-memcache",
                    lambda port: ["php", php, "127.0.0.1", str(port), "memcache"]))
    else:
        print("SKIP php-memcache: needs php-cli and php-memcache")
    return out


def outcomes(argv):
    r = subprocess.run(argv, capture_output=True, timeout=120)
    lines = r.stdout.decode(errors="replace").splitlines()
    res = []
    for line in lines:
        num, _, rest = line.partition(" ")
        what, _, val = rest.partition(": ")
        res.append((what, val))
    if r.returncode != 0:
        res.append(("exit", "%d %s" % (r.returncode, r.stderr.decode(errors="replace")[-300:])))
    return res


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    todo = clients()
    if not todo:
        bcserver.skip("no client library installed")
    fails = 0
    checks = 0
    for name, argv_of in todo:
        ref = bcserver.Server(MEMCACHED, "memcached", ["-I", "1m"])
        ours = bcserver.Server(BITCACHED, "bitcached", ["-I", "1m"])
        try:
            ref.start()
            ours.start()
            want = outcomes(argv_of(ref.port))
            got = outcomes(argv_of(ours.port))
        finally:
            ref.close()
            ours.close()
        if not want:
            print("FAIL %s: no outcome against memcached" % name)
            fails += 1
            continue
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else ("(missing)", "")
            g = got[i] if i < len(got) else ("(missing)", "")
            checks += 1
            expect = OWN_BETTER.get((name, w[0]), w[1])
            if g[0] != w[0] or g[1] != expect:
                fails += 1
                print("FAIL %s #%d %s: memcached %s, bitcached %s%s"
                      % (name, i + 1, w[0], w[1], g[0] + " " if g[0] != w[0] else "", g[1]))
        print("%s: %d outcomes compared" % (name, len(want)))
    print("%d outcomes compared, %d differ" % (checks, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
