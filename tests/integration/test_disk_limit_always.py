#!/usr/bin/env python3
"""test_disk_limit_always.py - --disk-limit under --sync=always (issue 8):
the commit journal's two files count against the limit. A steady writer
fills far past it and every set is STORED while the whole data directory,
journal files included, stays within the limit plus the slack
test_disk_limit.py allows; and a --journal-size whose two files would take
more than half of the limit is refused at start (exit 78, EX_CONFIG) with a
message naming it.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402
from test_disk_limit import MIB, at_rest, fill  # noqa: E402

check = bcserver.Checks(verbose=True)


def bounded(bc):
    limit = 8 * MIB
    srv = bcserver.Server(bc, args=["--sync=always", "--disk-limit", "8m",
                                    "--journal-size", "1m", "--shards", "4"])
    srv.start(timeout=30)
    try:
        data = os.path.join(srv.tmp, "data")
        s = srv.connect(timeout=30)
        n = 30000
        peak, replies = fill(s, data, n)
        end = at_rest(data, limit + 1 * MIB)
        journal = sum(os.stat(os.path.join(data, "journal.%d" % i)).st_blocks
                      * 512 for i in range(2))
        print("--sync=always --disk-limit 8m --journal-size 1m: %d MB "
              "written, directory peak %.1f MiB, %.1f MiB at rest "
              "(journal files %.1f MiB)" % (n // 1000, peak / MIB, end / MIB,
                                            journal / MIB))
        check(replies == {b"STORED": n}, "every set STORED: %r" % replies)
        check(journal == 2 * MIB, "the two journal files are there (%d)"
              % journal)
        check(end <= limit + 1 * MIB, "at rest, journal files included, "
              "within the limit + 1 MiB (%.1f MiB)" % (end / MIB))
        check(peak <= limit + 2 * MIB, "while writing within the limit + "
              "2 MiB (%.1f MiB)" % (peak / MIB))
        s.close()
    finally:
        srv.close()


def refused(bc):
    tmp = bcserver.mkdtemp("bc-pytest.")
    p = subprocess.run([bc, "--data-dir=" + os.path.join(tmp, "d"), "-l",
                        "127.0.0.1", "-p", str(bcserver.free_port()),
                        "--sync=always", "--disk-limit", "4m",
                        "--journal-size", "2m"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 78 and "journal" in err and "half" in err,
          "a journal of more than half the limit is refused (%d: %s)"
          % (p.returncode, err.strip()[-300:]))


def main():
    bc = bcserver.binary()
    bounded(bc)
    refused(bc)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
