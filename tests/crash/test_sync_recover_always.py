#!/usr/bin/env python3
# test_sync_recover_always.py - test_sync_recover.py under --sync=always
# with the commit journal (issue 8): while the crash shim fails every
# sync of the server's files (segments, the journal, the state file,
# directories), writes are refused (SERVER_ERROR shard failed after an
# I/O error (read-only)) or answered with an error by a failed journal
# commit (SERVER_ERROR out of memory storing object, memcached's text for
# a set that did not happen); once the fault stops, the shards rewrite
# the segments whose sync failed, the journal switches to its other file
# only after that (its current generation holds those segments'
# acknowledged records until then), and the store takes writes again
# without a restart. Every key is checked against the model of
# crashmodel.py live, after kill -9 and a restart, and in the crash
# rounds killed at the Nth sync, rename, unlink, write or open of the
# recovery. Same environment variables as test_sync_recover.py.
import os
import sys

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402
import test_sync_recover as base  # noqa: E402

base.ARGS = ["--sync=always", "--journal-size=64k", "--segment-size=64k",
             "--compact-ratio=0.2", "--io-engine=threads", "--shards=2",
             "-t", "2"]
base.REFUSALS = {base.REFUSED,
                 b"SERVER_ERROR out of memory storing object"}

if __name__ == "__main__":
    sys.exit(cm.run_main(base.main))
