#!/usr/bin/env python3
"""test_repl_newer.py - the replication state file (DIR/replication) of a
newer format version (issue 8): a server started with replication on a
data directory whose state file says version 2 with a good checksum does
not start (exit 73, the file named on stderr) and leaves the file byte for
byte as it was, where an older build took it for damage, started, and
wrote a new one over it. Version 1 with the same checksum rule still
starts.
"""
import ctypes
import ctypes.util
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402


def xxh3_hex(data):
    name = ctypes.util.find_library("xxhash")
    if name is None:
        bcserver.skip("no libxxhash to compute the file's checksum")
    lib = ctypes.CDLL(name)
    fn = lib.XXH3_64bits
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return "%016x" % fn(data, len(data))


def state_text(version):
    body = ("bitcached-replication %d\nstore_id 00000000000000aa\n"
            "primary_id 0000000000000000\n" % version)
    if version > 1:
        body += "a_newer_field 1\n"
    return (body + "checksum %s\n" % xxh3_hex(body.encode())).encode()


def main():
    bc = bcserver.binary()
    check = bcserver.Checks()
    srv = bcserver.Server(bc, args=["--shards=1", "--repl-port",
                                    str(bcserver.free_port())])
    try:
        os.makedirs(srv.data)
        path = os.path.join(srv.data, "replication")
        newer = state_text(2)
        with open(path, "wb") as f:
            f.write(newer)
        srv.port = bcserver.free_port()
        proc = subprocess.Popen(srv.argv(), stderr=subprocess.PIPE)
        try:
            _, errb = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # it started: stop it
            proc.kill()
            _, errb = proc.communicate()
        err = errb.decode(errors="replace")
        check.that("a newer replication state file: exit 73",
                   proc.returncode == 73, "%r: %s" % (proc.returncode, err))
        check.that("the file is named", "written by a newer bitcached" in err
                   and path in err, err)
        with open(path, "rb") as f:
            check.that("the file is left as it is", f.read() == newer)

        with open(path, "wb") as f:
            f.write(state_text(1))
        srv.start()
        st = srv.stats(b"replication")
        check.that("version 1 starts, its store id read",
                   st.get("store_id") == "00000000000000aa", repr(st))
    finally:
        srv.close()
    sys.exit(check.finish())


if __name__ == "__main__":
    main()
