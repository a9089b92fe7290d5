#!/usr/bin/env python3
# test_crashshim.py - checks the LD_PRELOAD shim that the crash and fault
# tests rely on, so that they cannot pass because it silently does nothing:
# a child Python process does file calls under a directory with the shim
# preloaded; the test checks the counters, a kill at the Nth call (before,
# after, torn), failures with an errno from the Nth call on, the flag file
# that stops them, and that calls outside the directory are left alone.
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402

# The child: writes, syncs, renames, truncates, allocates, unlinks under
# DIR, one line of output per step so the parent sees how far it got.
CHILD = r'''
import errno, os, sys
d, out = sys.argv[1], sys.argv[2]
def step(name, fn):
    try:
        fn()
        print(name, "ok", flush=True)
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno), flush=True)
fd = os.open(os.path.join(d, "f"), os.O_RDWR | os.O_CREAT, 0o644)
ofd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
for i in range(5):
    step("write%d" % i, lambda: os.write(fd, b"0123456789"))
step("outside", lambda: os.write(ofd, b"x"))
step("pwrite", lambda: os.pwrite(fd, b"abcdefgh", 100))
step("fsync", lambda: os.fsync(fd))
step("fdatasync", lambda: os.fdatasync(fd))
step("ftruncate", lambda: os.ftruncate(fd, 50))
step("fallocate", lambda: os.posix_fallocate(fd, 0, 4096))
step("rename", lambda: os.rename(os.path.join(d, "f"), os.path.join(d, "g")))
step("open", lambda: os.close(os.open(os.path.join(d, "g"), os.O_RDONLY)))
step("pread", lambda: os.pread(fd, 4, 0))
step("unlink", lambda: os.unlink(os.path.join(d, "g")))
print("end .", flush=True)
'''

failures = []


def group(g):
    return ",".join(cm.GROUPS[g])


def run(tmp, env):
    d = os.path.join(tmp, "dir")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    stats = os.path.join(tmp, "stats")
    if os.path.exists(stats):
        os.unlink(stats)
    e = dict(os.environ, LD_PRELOAD=cm.shim_path(), CRASHSHIM_DIR=d,
             CRASHSHIM_STATS=stats)
    e.update(env)
    p = subprocess.run([sys.executable, "-c", CHILD, d,
                        os.path.join(tmp, "outside")],
                       env=e, capture_output=True, timeout=30)
    lines = p.stdout.decode().split("\n")
    steps = dict(ln.split(" ", 1) for ln in lines if " " in ln)
    size = -1
    f = os.path.join(d, "f")
    if os.path.exists(f):
        size = os.path.getsize(f)
    return p.returncode, steps, cm.read_stats(stats), size


def check(what, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", what,
                       (": " + str(detail)) if not cond else ""))
    if not cond:
        failures.append(what)


def main():
    if not cm.shim_path():
        print("ERROR: crashshim.so not built (make check builds it)")
        return 99
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-shim."))
    try:
        rc, steps, st, _ = run(tmp, {})
        check("counting run completes", rc == 0 and "end" in steps,
              (rc, steps))
        check("writes counted", st.get("write") == 5, st)
        check("every group counted", all(
            cm.group_count(st, g) >= 1 for g in cm.GROUPS), st)
        check("write outside the directory not counted",
              steps.get("outside") == "ok" and st.get("write") == 5, st)
        check("nothing fired or failed", st.get("#fired") == 0 and
              st.get("#failed") == 0, st)

        rc, steps, st, size = run(tmp, {"CRASHSHIM_KILL": "write:3"})
        check("kill before the 3rd write", rc == -signal.SIGKILL and
              steps.get("write1") == "ok" and "write2" not in steps and
              size == 20 and st.get("#fired") == 1, (rc, steps, size))
        rc, steps, st, size = run(tmp, {"CRASHSHIM_KILL": "write:3:after"})
        check("kill after the 3rd write", rc == -signal.SIGKILL and
              "write2" not in steps and size == 30, (rc, steps, size))
        rc, steps, st, size = run(tmp, {"CRASHSHIM_KILL": "write:3:torn"})
        check("torn 3rd write", rc == -signal.SIGKILL and size == 25,
              (rc, steps, size))
        for g in ("sync", "rename", "unlink", "truncate", "alloc"):
            rc, steps, st, _ = run(tmp, {"CRASHSHIM_KILL": group(g) + ":1"})
            check("kill at %s" % g, rc == -signal.SIGKILL and
                  st.get("#fired") == 1, (rc, steps, st))

        rc, steps, st, size = run(
            tmp, {"CRASHSHIM_FAIL": group("write") + ":2:EIO"})
        check("EIO from the 2nd write on",
              steps.get("write0") == "ok" and steps.get("write1") == "EIO"
              and steps.get("write4") == "EIO" and
              steps.get("pwrite") == "EIO" and steps.get("outside") == "ok",
              steps)
        rc, steps, st, _ = run(
            tmp, {"CRASHSHIM_FAIL": "write:1:ENOSPC:2"})
        check("ENOSPC for 2 calls only", steps.get("write1") == "ENOSPC" and
              steps.get("write2") == "ok" and st.get("#failed") == 2, steps)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL": group("sync") + ":1:EIO"})
        check("EIO on syncs", steps.get("fsync") == "EIO" and
              steps.get("fdatasync") == "EIO", steps)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL": "rename:1:EIO"})
        check("EIO on rename", steps.get("rename") == "EIO", steps)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL":
                                     group("open") + ":2:EMFILE"})
        check("EMFILE on open", steps.get("open") == "EMFILE", steps)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL":
                                     group("alloc") + ":1:ENOSPC"})
        check("ENOSPC on posix_fallocate", steps.get("fallocate") == "ENOSPC",
              steps)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL": group("read") + ":1:EIO"})
        check("EIO on pread", steps.get("pread") == "EIO", steps)

        flag = os.path.join(tmp, "flag")
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL": "write:1:EIO",
                                     "CRASHSHIM_FAIL_WHILE": flag})
        check("no failure while the flag file is absent",
              steps.get("write0") == "ok" and st.get("#failed") == 0, steps)
        open(flag, "w").close()
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_FAIL": "write:1:EIO",
                                     "CRASHSHIM_FAIL_WHILE": flag})
        check("failures while the flag file exists",
              steps.get("write0") == "EIO", steps)
        os.unlink(flag)
        rc, steps, st, _ = run(tmp, {"CRASHSHIM_KILL": "write:1",
                                     "CRASHSHIM_KILL_WHILE": flag})
        check("no kill count while the arming file is absent",
              rc == 0 and "end" in steps and st.get("#fired") == 0,
              (rc, steps))
        open(flag, "w").close()
        rc, steps, st, size = run(tmp, {"CRASHSHIM_KILL": "write:2",
                                        "CRASHSHIM_KILL_WHILE": flag})
        check("kill at the 2nd write once armed",
              rc == -signal.SIGKILL and size == 10 and
              st.get("#fired") == 1, (rc, steps, size))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d check(s) failed" % len(failures) if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cm.run_main(main))
