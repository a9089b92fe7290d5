#!/usr/bin/env python3
# test_clients.py - real client libraries of other languages against
# bitcached and Debian's memcached side by side: the same fixed sequence of
# calls runs against both servers (at the same time, each its own server)
# and every outcome line must be equal. One op script per client library:
#   dalli_ops.rb      Ruby's Dalli, binary protocol
#   php_ops.php       php-memcached over text and binary, and php-memcache
#   SpyOps.java       spymemcached (Java), text and binary connection factory
#   bmemcached_ops.py python-binary-memcached, binary protocol
#   python_memcached_ops.py python-memcached (module memcache), text protocol
#   pylibmc_ops.py    pylibmc (libmemcached), text and binary, with behaviours
#   pymemcache_ops.py pymemcache's Client and HashClient, text protocol
#   (ops_lines.py: what those four Python scripts share)
#   perl_ops.pl       Cache::Memcached::Fast and Cache::Memcached, text
#   gomemcache_ops.go bradfitz/gomemcache (Go), text protocol
#   memjs_ops.js      memjs (Node.js), binary protocol
# memjs is not packaged by Debian: it runs when node finds the module memjs,
# through NODE_PATH or a node_modules directory named by MEMJS_MODULES, e.g.
#   npm install --prefix "$HOME/memjs" memjs
#   MEMJS_MODULES="$HOME/memjs/node_modules" make check TESTS=tests/clients/test_clients.py
# Where bitcached deliberately does better, the line is listed in OWN_BETTER
# with the outcome bitcached must give. A client whose runtime or library is
# not installed is skipped with a message (Debian packages in
# .ci/debian-packages); all of them missing skips the test (77). Client
# names given as arguments run only those.
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
# Debian's Python modules, when python3 is not Debian's own
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
SPY_JAR = "/usr/share/java/spymemcached.jar"
GOCODE = "/usr/share/gocode"

# memcached 1.6.18 answers libmemcached's key dump (stats cachedump) with
# nothing usable, so php-memcached's getAllKeys() returns false there; the
# dump is served here (issue: key dumps), so the keys must be listed.
OWN_BETTER = {("php-memcached ascii", "getAllKeys shape"): "true"}
# -I limits the value here, not memcached's item (its 48-byte header, key,
# cas and flags counted too), so a value of 1 MiB - 1 byte under -I 1m is
# stored where memcached refuses it as too large (README, "-I").
for name, stored, length in (("spymemcached text", "true", "1048575"),
                             ("spymemcached binary", "true", "1048575"),
                             ("bmemcached binary", "True", "1048575"),
                             ("python-memcached text", "True", "1048575"),
                             ("Cache::Memcached::Fast", "1", "1048575"),
                             ("Cache::Memcached", "1", "1048575"),
                             ("gomemcache text", "ok", "1048575 bytes")):
    OWN_BETTER[(name, "value of 1 MiB-1")] = stored
    OWN_BETTER[(name, "get 1 MiB-1")] = length
# the same for memjs, whose value of exactly 1 MiB (the -I limit) is a value
# within the limit here
OWN_BETTER[("memjs binary", "value of 1 MiB-1")] = "true"
OWN_BETTER[("memjs binary", "value of 1 MiB")] = "true"
for name in ("pylibmc text", "pylibmc binary", "pymemcache text"):
    OWN_BETTER[(name, "value of 1 MiB-1")] = "True"
    OWN_BETTER[(name, "get 1 MiB-1")] = "1048575"
OWN_BETTER[("pymemcache text", "hash value of 1 MiB-1")] = "True"
OWN_BETTER[("pymemcache text", "hash get 1 MiB-1")] = "1048575"
# memcached 1.6.18 queues its "Unknown command" for an unknown binary opcode
# with a key and then waits to swallow the request's whole body again, so
# the reply comes only when a later request's bytes arrive (and are eaten);
# bitcached answers at once and loses nothing.
OWN_BETTER[("memjs binary", "unknown opcode with key")] = '[129,"Unknown command"]'


def runs(argv, env=None):
    try:
        return subprocess.run(argv, capture_output=True, env=env, timeout=120).returncode == 0
    except OSError:
        return False


def have_python_module(mod):
    env = dict(os.environ, PYTHONPATH=DIST_PACKAGES)
    return runs([sys.executable, "-c", "import " + mod], env)


def have_php_ext(ext):
    if shutil.which("php") is None:
        return False
    return runs(["php", "-r", "exit(extension_loaded('%s') ? 0 : 1);" % ext])


def have_perl_module(mod):
    return shutil.which("perl") is not None and runs(["perl", "-M" + mod, "-e", "1"])


def build_spy(tmp):
    """SpyOps.java compiled against Debian's spymemcached jar into tmp, or
    None with a message why not."""
    if shutil.which("javac") is None or shutil.which("java") is None:
        return "needs java and javac (default-jdk-headless)"
    if not os.path.exists(SPY_JAR):
        return "needs libspymemcached-java"
    r = subprocess.run(["javac", "-nowarn", "-cp", SPY_JAR, "-d", tmp,
                        os.path.join(HERE, "SpyOps.java")], capture_output=True, timeout=300)
    if r.returncode != 0:
        return "javac failed: " + r.stderr.decode(errors="replace")[-500:]
    return None


def build_go(tmp):
    """gomemcache_ops.go built offline against Debian's gomemcache source
    (GOPATH mode, no module download) into tmp, or a message why not."""
    if shutil.which("go") is None:
        return "needs golang-go"
    if not os.path.isdir(os.path.join(GOCODE, "src/github.com/bradfitz/gomemcache/memcache")):
        return "needs golang-github-bradfitz-gomemcache-dev"
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOCODE, GOFLAGS="", GOPROXY="off",
               GOCACHE=os.path.join(tmp, "gocache"), CGO_ENABLED="0")
    r = subprocess.run(["go", "build", "-o", os.path.join(tmp, "gomemcache_ops"),
                        os.path.join(HERE, "gomemcache_ops.go")],
                       capture_output=True, env=env, timeout=300)
    if r.returncode != 0:
        return "go build failed: " + r.stderr.decode(errors="replace")[-500:]
    return None


def clients(tmp):
    """(name, argv_of(port), env) for every installed client library."""
    out = []
    if shutil.which("ruby") and runs(["ruby", "-e", "require 'dalli'"]):
        out.append(("dalli binary",
                    lambda port: ["ruby", os.path.join(HERE, "dalli_ops.rb"),
                                  "127.0.0.1:%d" % port], None))
    else:
        print("SKIP dalli: needs ruby and ruby-dalli")
    php = os.path.join(HERE, "php_ops.php")
    if have_php_ext("memcached"):
        for mode in ("ascii", "binary"):
            out.append(("php-memcached " + mode,
                        lambda port, m=mode: ["php", php, "127.0.0.1", str(port), m], None))
    else:
        print("SKIP php-memcached: needs php-cli and php-memcached")
    if have_php_ext("memcache"):
        out.append(("php-memcache",
                    lambda port: ["php", php, "127.0.0.1", str(port), "memcache"], None))
    else:
        print("SKIP php-memcache: needs php-cli and php-memcache")
    why = build_spy(tmp)
    if why is None:
        cp = SPY_JAR + os.pathsep + tmp
        for mode in ("text", "binary"):
            out.append(("spymemcached " + mode,
                        lambda port, m=mode: ["java", "-Xss4m", "-cp", cp, "SpyOps",
                                              "127.0.0.1", str(port), m], None))
    else:
        print("SKIP spymemcached: " + why)
    pyenv = dict(os.environ, PYTHONPATH=DIST_PACKAGES)
    if have_python_module("bmemcached"):
        out.append(("bmemcached binary",
                    lambda port: [sys.executable, os.path.join(HERE, "bmemcached_ops.py"),
                                  "127.0.0.1:%d" % port], pyenv))
    else:
        print("SKIP bmemcached: needs python3-binary-memcached")
    if have_python_module("memcache"):
        out.append(("python-memcached text",
                    lambda port: [sys.executable, os.path.join(HERE, "python_memcached_ops.py"),
                                  "127.0.0.1:%d" % port], pyenv))
    else:
        print("SKIP python-memcached: needs python3-memcache")
    if have_python_module("pylibmc"):
        for mode in ("text", "binary"):
            out.append(("pylibmc " + mode,
                        lambda port, m=mode: [sys.executable, os.path.join(HERE, "pylibmc_ops.py"),
                                              "127.0.0.1:%d" % port, m], pyenv))
    else:
        print("SKIP pylibmc: needs python3-pylibmc")
    if have_python_module("pymemcache"):
        out.append(("pymemcache text",
                    lambda port: [sys.executable, os.path.join(HERE, "pymemcache_ops.py"),
                                  "127.0.0.1:%d" % port], pyenv))
    else:
        print("SKIP pymemcache: needs python3-pymemcache")
    perl = os.path.join(HERE, "perl_ops.pl")
    for mod, pkg in (("Cache::Memcached::Fast", "libcache-memcached-fast-perl"),
                     ("Cache::Memcached", "libcache-memcached-perl")):
        if have_perl_module(mod):
            out.append((mod, lambda port, m=mod: ["perl", perl, "127.0.0.1:%d" % port, m], None))
        else:
            print("SKIP %s: needs perl and %s" % (mod, pkg))
    why = build_go(tmp)
    if why is None:
        exe = os.path.join(tmp, "gomemcache_ops")
        out.append(("gomemcache text", lambda port: [exe, "127.0.0.1:%d" % port], None))
    else:
        print("SKIP gomemcache: " + why)
    nodeenv = node_env()
    if shutil.which("node") is None:
        print("SKIP memjs: needs nodejs")
    elif not runs(["node", "-e", "require('memjs')"], nodeenv):
        print("SKIP memjs: not installed; npm install memjs and name its "
              "node_modules in MEMJS_MODULES or NODE_PATH")
    else:
        out.append(("memjs binary",
                    lambda port: ["node", os.path.join(HERE, "memjs_ops.js"),
                                  "127.0.0.1:%d" % port], nodeenv))
    return out


def node_env():
    """The environment for node with MEMJS_MODULES put first on NODE_PATH."""
    paths = [p for p in (os.environ.get("MEMJS_MODULES"), os.environ.get("NODE_PATH")) if p]
    return dict(os.environ, NODE_PATH=os.pathsep.join(paths))


def parse(r):
    lines = r.stdout.decode(errors="replace").splitlines()
    res = []
    for line in lines:
        num, _, rest = line.partition(" ")
        what, _, val = rest.partition(": ")
        res.append((what, val))
    if r.returncode != 0:
        res.append(("exit", "%d %s" % (r.returncode, r.stderr.decode(errors="replace")[-300:])))
    return res


def both(argv_of, env, ref, ours):
    """The op script against both servers at once (each waits out its own
    expiry sleeps): (memcached's outcomes, bitcached's outcomes)."""
    procs = [subprocess.Popen(argv_of(srv.port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for srv in (ref, ours)]
    res = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += b" (timed out)"
        res.append(parse(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    return res


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    tmp = bcserver.mkdtemp("clients-")
    todo = clients(tmp)
    only = sys.argv[1:]
    if only:
        todo = [c for c in todo if any(o in c[0] for o in only)]
    if not todo:
        bcserver.skip("no client library installed")
    fails = 0
    checks = 0
    for name, argv_of, env in todo:
        started = time.monotonic()
        ref = bcserver.Server(MEMCACHED, "memcached", ["-I", "1m"])
        ours = bcserver.Server(BITCACHED, "bitcached", ["-I", "1m"])
        try:
            ref.start()
            ours.start()
            want, got = both(argv_of, env, ref, ours)
        finally:
            ref.close()
            ours.close()
        if not want or want[-1][0] == "exit":
            print("FAIL %s: memcached run did not finish: %s" % (name, want[-1:] or "no outcome"))
            fails += 1
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else ("(missing)", "")
            g = got[i] if i < len(got) else ("(missing)", "")
            checks += 1
            expect = OWN_BETTER.get((name, w[0]), w[1])
            if g[0] != w[0] or g[1] != expect:
                fails += 1
                print("FAIL %s #%d %s: memcached %s, bitcached %s%s"
                      % (name, i + 1, w[0], w[1], g[0] + " " if g[0] != w[0] else "", g[1]))
        print("%s: %d outcomes compared (%.1f s)" % (name, len(want), time.monotonic() - started))
    print("%d outcomes compared, %d differ" % (checks, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
