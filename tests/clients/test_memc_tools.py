#!/usr/bin/env python3
# test_memc_tools.py - libmemcached's command-line tools (Debian's
# libmemcached-tools: memccp, memccat, memcrm, memcflush, memcexist,
# memctouch, memcping, memcdump, memcstat, memcslap) against bitcached and
# Debian's memcached side by side, over the text protocol and with
# --binary: the same fixed sequence of tool runs goes to each server, and
# every step's exit status and output (with the client-side pointer in
# libmemcached's error messages and the port taken out) must be equal.
# memcstat's figures differ between any two servers, so only its exit
# status and its first line are compared (memcdump's keys sorted), and
# that it lists pid, uptime and curr_items; memcslap's timings differ, so
# only its exit status, and afterwards that a get of what it stored still
# works.
# Skips (77) without the tools or memcached.
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
TOOLS = ("memccp", "memccat", "memcrm", "memcflush", "memcexist",
         "memctouch", "memcping", "memcdump", "memcstat", "memcslap")
# libmemcached prints the address of its memcached_st in error messages
POINTER = re.compile(rb"\(0x[0-9a-f]+\)")


def tool(name, port, tmp, *args, stdin=None):
    """(exit status, output) of one tool run against port, in tmp."""
    argv = [shutil.which(name), "--servers=127.0.0.1:%d" % port] + list(args)
    p = subprocess.run(argv, cwd=tmp, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = POINTER.sub(b"(PTR)", p.stdout).replace(b"%d" % port, b"PORT")
    return p.returncode, out


def script(port, tmp, binary):
    """The fixed sequence of tool runs; one (label, outcome) a step."""
    b = ["--binary"] if binary else []
    steps = []

    def step(label, name, *args):
        rc, out = tool(name, port, tmp, *(b + list(args)))
        if name == "memcdump":  # the order of the keys is each server's
            out = b"".join(sorted(out.splitlines(True)))
        steps.append((label, (rc, out)))

    for name, body in (("small", b"hello\n"), ("k3000", b"x" * 3000),
                       ("bin", bytes(range(256)) * 4),
                       ("empty", b""), ("fresh", b"new\n")):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(body)
    step("cp three files", "memccp", "small", "k3000", "bin")
    step("cp empty file", "memccp", "empty")
    step("cat three", "memccat", "small", "k3000", "bin")
    step("cat empty", "memccat", "empty")
    step("cat missing", "memccat", "nokey")
    step("cat one present one missing", "memccat", "small", "nokey")
    step("cp --add existing", "memccp", "--add", "small")
    step("cp --replace missing", "memccp", "--replace", "fresh")
    step("cp --add new", "memccp", "--add", "fresh")
    step("cp --replace present", "memccp", "--replace", "fresh")
    step("cp --flag --expire", "memccp", "--flag=77", "--expire=100",
         "small")
    step("cat --flag", "memccat", "--flag", "small")
    step("exist present", "memcexist", "small")
    step("exist missing", "memcexist", "nokey")
    step("touch present", "memctouch", "--expire=500", "small")
    step("touch missing", "memctouch", "--expire=500", "nokey")
    step("touch to past", "memctouch", "--expire=-1", "k3000")
    step("cat touched to past", "memccat", "k3000")
    step("rm present", "memcrm", "small")
    step("rm again", "memcrm", "small")
    step("rm missing", "memcrm", "nokey")
    step("cp --expire=-1", "memccp", "--expire=-1", "k3000")
    step("cat expired", "memccat", "k3000")
    if not binary:  # memcdump and memcping have no --binary
        step("dump", "memcdump")
        step("ping", "memcping")
    step("flush", "memcflush")
    step("cat after flush", "memccat", "bin")
    if not binary:
        step("dump after flush", "memcdump")
    for test in ("set", "get", "mget"):
        rc, _ = tool("memcslap", port, tmp, *(b + [
            "--concurrency=2", "--execute-number=300", "--test=" + test]))
        steps.append(("slap " + test, (rc, b"")))
    rc, out = tool("memcstat", port, tmp, *b)
    names = set(re.findall(rb"^\t(\w+):", out, re.M))
    steps.append(("stat", (rc, out.split(b"\n", 1)[0] + b" " + b",".join(
        sorted(names & {b"pid", b"uptime", b"curr_items"})))))
    rc, out = tool("memcstat", port, tmp, *(b + ["--args=settings"]))
    steps.append(("stat settings has maxbytes",
                  (rc, b"maxbytes" in out)))
    step("cp after slap", "memccp", "small")
    step("cat after slap", "memccat", "small")
    return steps


def main():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        bcserver.skip("libmemcached-tools not installed (%s)" %
                      " ".join(missing))
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    check = bcserver.Checks(verbose=False)
    tmp = bcserver.mkdtemp("memc-tools-")
    for binary in (False, True):
        ref = bcserver.Server(MEMCACHED, "memcached", ["-U", "0"])
        ours = bcserver.Server(BITCACHED, "bitcached")
        ref.start()
        ours.start()
        try:
            want = script(ref.port, tmp, binary)
            got = script(ours.port, tmp, binary)
        finally:
            ref.close()
            ours.close()
        proto = "binary" if binary else "text"
        for (label, w), (_, g) in zip(want, got):
            same = w == g
            if label == "dump after flush":
                # Flushed keys not read since stay listed until a crawler
                # reclaims them, in each server on its own schedule
                # (bitcached's within about a second, so a slow run of
                # the steps before sees fewer): none may be listed that
                # memcached does not list.
                same = w[0] == g[0] and set(g[1].splitlines()) <= set(
                    w[1].splitlines())
            check.that("%s %s" % (proto, label), same,
                       "memcached %r, bitcached %r" % (w, g))
        print("%s: %d steps compared" % (proto, len(want)))
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
