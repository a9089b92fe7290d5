#!/usr/bin/env python3
# test_memjs_sasl.py - memjs (Node.js, binary protocol) through SASL PLAIN
# against bitcached -S: the right user and password get in, a wrong password,
# an unknown user and no credentials at all are refused with the binary
# "auth error" status, and a refused client changes nothing. Debian's
# memcached reads no MEMCACHED_SASL_PWDB (it has no pwdb support), so it
# cannot be the reference here; tests/clients/test_clients.py compares the
# rest of memjs with it. memjs is not a Debian package: install it with npm
# outside the source tree and name its node_modules in MEMJS_MODULES (or
# NODE_PATH), e.g.
#   npm install --prefix "$HOME/memjs" memjs
#   MEMJS_MODULES="$HOME/memjs/node_modules" make check TESTS=tests/integration/test_memjs_sasl.py
# Skips (77) without node, memjs or the server binary.
import json
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

# The outcomes as one JSON object. A reply of status 0x20 (auth error) is
# what makes memjs fail a request with its own "authentication failed"
# string (it has no message for 0x20 in its status table), so a refusal is
# seen as that string; requests go through perform() to show the status of
# any other reply.
SCRIPT = r"""
const memjs = require("memjs");
const port = process.argv[1];
function raw(mc, opcode, key, extras, value) {
  return new Promise((resolve) => {
    mc.incrSeq();
    const req = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, mc.seq);
    mc.perform(key, req, mc.seq, (err, rsp) => resolve(err ? "error " + (err.message || err) :
      [rsp.header.status, rsp.val.toString()]));
  });
}
async function one(creds, call) {
  const mc = memjs.Client.create(creds + "127.0.0.1:" + port,
    { retries: 1, timeout: 2, logger: { log() {} } });
  let v;
  try {
    v = await call(mc);
  } catch (e) {
    v = "raised " + e.message;
  }
  mc.close();
  return v;
}
(async () => {
  const set = Buffer.alloc(8);
  const out = {};
  out.good_set = await one("alice:s3cret@", (mc) => mc.set("s", "1", {}));
  out.good_get = await one("alice:s3cret@", async (mc) => (await mc.get("s")).value.toString());
  out.wrong_password = await one("alice:nope@", (mc) => raw(mc, 0x01, "s", set, "2"));
  out.unknown_user = await one("bob:s3cret@", (mc) => raw(mc, 0x00, "s", "", ""));
  out.no_credentials = await one("", (mc) => raw(mc, 0x01, "s", set, "3"));
  out.version_without = await one("", async (mc) => (await raw(mc, 0x0b, "", "", ""))[0]);
  out.after_refusals = await one("alice:s3cret@", async (mc) => (await mc.get("s")).value.toString());
  out.incr = await one("alice:s3cret@", (mc) => mc.increment("n", 2, { initial: 5 }));
  process.stdout.write(JSON.stringify(out) + "\n");
})().then(() => process.exit(0), (e) => { process.stderr.write(String(e) + "\n"); process.exit(1); });
"""

AUTH_ERROR = "error Memcached server authentication failed!"


def main():
    bc = bcserver.binary()
    if shutil.which("node") is None:
        bcserver.skip("needs node (nodejs)")
    paths = [p for p in (os.environ.get("MEMJS_MODULES"), os.environ.get("NODE_PATH")) if p]
    env = dict(os.environ, NODE_PATH=os.pathsep.join(paths))
    if subprocess.run(["node", "-e", "require('memjs')"], env=env,
                      capture_output=True).returncode != 0:
        bcserver.skip("memjs not installed; npm install memjs and name its "
                      "node_modules in MEMJS_MODULES or NODE_PATH")
    tmp = bcserver.mkdtemp("bc-memjs-sasl.")
    pwdb = os.path.join(tmp, "pwdb")
    with open(pwdb, "w") as f:
        f.write("alice:s3cret\n")
    srv = bcserver.Server(bc, "bitcached", ["-S"])
    srv.env = dict(os.environ, MEMCACHED_SASL_PWDB=pwdb)
    checks = bcserver.Checks()
    try:
        srv.start()
        r = subprocess.run(["node", "-e", SCRIPT, str(srv.port)], env=env,
                           capture_output=True, timeout=60)
        checks.that("memjs ran", r.returncode == 0, r.stderr.decode(errors="replace")[-300:])
        got = json.loads(r.stdout.decode() or "{}")
        print(got)
        checks.that("right password: set", got.get("good_set") is True, got.get("good_set"))
        checks.that("right password: get", got.get("good_get") == "1", got.get("good_get"))
        for what in ("wrong_password", "unknown_user", "no_credentials"):
            checks.that(what + " refused", got.get(what) == AUTH_ERROR, got.get(what))
        checks.that("version needs no auth", got.get("version_without") == 0,
                    got.get("version_without"))
        checks.that("refused clients changed nothing", got.get("after_refusals") == "1",
                    got.get("after_refusals"))
        checks.that("incr with initial", got.get("incr") == {"success": True, "value": 5},
                    got.get("incr"))
        checks.that("server alive", srv.alive())
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
