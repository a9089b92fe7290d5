#!/usr/bin/env python3
# test_admin.py - bitcached-admin on data directories built by the real
# server ($BITCACHED): check on a clean directory, one held by a running
# server (error names its PID), one with a byte flipped mid-segment, one with
# a torn tail and one with a hint removed; dump | load round-trips every key,
# flag, expiry and value exactly, in text and JSON, into other shard counts,
# and a server started on the loaded directory serves them; dump --prefix
# returns exactly the keys with that prefix; stats agrees with check and
# compact reclaims space and keeps every item; repair makes each damaged
# directory check clean, keeps what a server would serve from it and saves
# the bytes it removes. Python 3 stdlib and bcserver.py.
import glob
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BIN = os.environ.get("BITCACHED", "")
ADMIN = os.environ.get("BITCACHED_ADMIN", "")
if not bcserver.executable(BIN) or not bcserver.executable(ADMIN):
    bcserver.skip("no $BITCACHED or $BITCACHED_ADMIN")

failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def admin(*args, stdin=None):
    p = subprocess.run([ADMIN, "--quiet"] + list(args), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def cmd(sock, data, ends=(b"\r\n",)):
    sock.sendall(data)
    out, _ = bcserver.recv_until(sock, ends)
    return out


def parse_dump(out):
    """{key: (flags, exp, value)} from a text dump."""
    lines = out.split(b"\n")
    assert lines[0] == b"bitcached-dump 1", lines[0]
    items = {}
    import base64

    def field(f):
        return f[2:] if f.startswith(b"t:") else base64.b64decode(f[2:])
    for line in lines[1:]:
        if not line:
            continue
        k, flags, exp, _cas, size, v = line.split(b" ", 5)
        v = field(v)
        assert len(v) == int(size)
        items[field(k)] = (int(flags), int(exp), v)
    return items


def parse_json(out):
    import base64
    items = {}
    for line in out.decode().splitlines():
        o = json.loads(line)
        k = o["key"].encode() if "key" in o else base64.b64decode(o["key_b64"])
        v = o["value"].encode() if "value" in o else base64.b64decode(o["value_b64"])
        assert len(v) == o["size"]
        items[k] = (o["flags"], o["exp"], v)
    return items


# ---- build a directory with the real server -------------------------------
srv = bcserver.Server(BIN, args=["--shards", "4", "--segment-size=64k", "--compact-ratio=1"])
srv.start()
s = srv.connect()
model = {}
# Older values first, so that segments roll over and hold dead records.
for rnd in range(2):
    for i in range(400):
        key = b"user:%d" % i if i % 2 else b"session:%d" % i
        r = cmd(s, b"set %s 1 0 500\r\n%s\r\n" % (key, b"o" * 500))
        expect(r == b"STORED\r\n", "set old %r: %r" % (key, r))
for i in range(400):
    key = b"user:%d" % i if i % 2 else b"session:%d" % i
    val = bytes((i + j) % 256 for j in range(i % 300)) if i % 5 == 0 else b"v %d x" % i
    flags = i * 7919 % 4294967296
    exp = 3600 if i % 4 == 0 else 0
    r = cmd(s, b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exp, len(val), val))
    expect(r == b"STORED\r\n", "set %r: %r" % (key, r))
    model[key] = (flags, exp, val)
for key in (b"user:1", b"session:2"):
    expect(cmd(s, b"delete %s\r\n" % key) == b"DELETED\r\n", "delete")
    del model[key]
expect(cmd(s, b"touch user:3 7200\r\n") == b"TOUCHED\r\n", "touch")
model[b"user:3"] = (model[b"user:3"][0], 7200, model[b"user:3"][2])
odd = "ключ:1".encode()
expect(cmd(s, b"set %s 5 0 3\r\n\x00\r\n\r\n" % odd) == b"STORED\r\n", "odd key")
model[odd] = (5, 0, b"\x00\r\n")

data = os.path.join(srv.tmp, "data")
rc, out, err = admin("check", data)
expect(rc == 2, "check on a locked directory exits 2, got %d" % rc)
expect(str(srv.proc.pid) in err, "locked: message names PID %d: %s" % (srv.proc.pid, err))
rc, out, err = admin("dump", data)
expect(rc == 2 and str(srv.proc.pid) in err, "dump on a locked directory: %d %s" % (rc, err))
s.close()
expect(srv.stop() == 0, "server stopped cleanly")

work = bcserver.mkdtemp("bc-admin.")
try:
    # ---- check: clean ----------------------------------------------------
    rc, out, err = admin("check", data)
    text = out.decode()
    expect(rc == 0, "check clean: rc %d: %s %s" % (rc, text, err))
    expect(text.rstrip().endswith("clean"), "check says clean")
    expect("total: %d keys," % len(model) in text, "check counts %d keys: %s" % (len(model), text))
    expect("4 segments" in text or "segments" in text, "segments reported")

    # ---- dump | load round trip -----------------------------------------
    rc, dump, err = admin("dump", data)
    expect(rc == 0, "dump rc %d %s" % (rc, err))
    got = parse_dump(dump)
    expect(set(got) == set(model), "dump has every key")
    for k, (flags, exp, val) in model.items():
        g = got.get(k)
        if g is None:
            continue
        expect(g[0] == flags and g[2] == val, "dump %r flags/value" % k)
        expect((g[1] == 0) == (exp == 0), "dump %r expiry set" % k)
    t1 = os.path.join(work, "t1")
    rc, out, err = admin("load", t1, "--shards", "3", stdin=dump)
    expect(rc == 0, "load text rc %d %s" % (rc, err))
    rc, dump2, err = admin("dump", t1)
    expect(rc == 0 and parse_dump(dump2) == got,
           "text round trip into 3 shards: keys, flags, expiry, values equal")
    rc, out, err = admin("check", t1)
    expect(rc == 0 and "3 shards" in out.decode(), "loaded directory checks clean")

    rc, jdump, err = admin("dump", data, "--format", "json")
    expect(rc == 0 and parse_json(jdump) == got, "json dump equals text dump")
    t2 = os.path.join(work, "t2")
    rc, out, err = admin("load", t2, "--shards", "1", stdin=jdump)
    expect(rc == 0, "load json rc %d %s" % (rc, err))
    rc, dump3, err = admin("dump", t2)
    expect(rc == 0 and parse_dump(dump3) == got, "json round trip into 1 shard")
    rc, out, err = admin("load", t2, "--shards", "2", stdin=jdump)
    expect(rc == 2 and "1 shards" in err, "load refuses another shard count: %s" % err)

    # A server started on a loaded directory serves every item.
    srv2 = bcserver.Server(BIN, args=["--shards", "3"])
    try:
        rc, out, err = admin("load", os.path.join(srv2.tmp, "data"), "--shards", "3", stdin=dump)
        expect(rc == 0, "load for server")
        srv2.start()
        s2 = srv2.connect()
        for k, (flags, exp, val) in model.items():
            r = cmd(s2, b"get %s\r\n" % k, (b"END\r\n",))
            want = b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (k, flags, len(val), val)
            expect(r == want, "server on loaded dir: get %r: %r" % (k, r[:80]))
        s2.close()
    finally:
        srv2.close()

    # ---- stats and compact ------------------------------------------------
    comp = os.path.join(work, "comp")
    shutil.copytree(data, comp)
    rc, out, err = admin("stats", comp)
    text = out.decode()
    expect(rc == 0 and text.count("shard-") == 4, "stats: a line per shard: %s" % text)
    expect("total: %d keys," % len(model) in text and "keydir bytes per key" in text,
           "stats total: %s" % text)
    live = re.search(r"total: \d+ keys, (\d+) live bytes, (\d+) dead", text).groups()
    rc, out, err = admin("check", comp)
    clive = re.search(r"total: \d+ keys, (\d+) live bytes, (\d+) dead", out.decode()).groups()
    expect(live == clive, "check and stats agree on live/dead bytes: %s %s" % (live, clive))
    rc, out, err = admin("compact", comp)
    text = out.decode()
    expect(rc == 0 and "reclaimed" in text, "compact: %d %s %s" % (rc, text, err))
    before, after = [int(x) for x in text.split(": ")[1].split(" disk bytes before, ")[0:1]
                     + [text.split(" disk bytes before, ")[1].split(" after")[0]]]
    expect(after < before, "compact reclaims space: %d -> %d" % (before, after))
    rc, dump4, err = admin("dump", comp)
    expect(rc == 0 and parse_dump(dump4) == got, "compact keeps every item")
    rc, out, err = admin("check", comp)
    expect(rc == 0, "compacted directory checks clean: %s" % out)

    # ---- prefix and keys-only ---------------------------------------------
    rc, out, err = admin("dump", data, "--prefix", "user:", "--keys-only")
    lines = out.split(b"\n")[1:]
    keys = {ln.split(b" ")[0][2:] for ln in lines if ln}
    want = {k for k in model if k.startswith(b"user:")}
    expect(rc == 0 and keys == want, "dump --prefix user: gives exactly those keys")
    expect(all(len(ln.split(b" ")) == 5 for ln in lines if ln), "keys-only has no value")
    rc, out, err = admin("load", os.path.join(work, "t3"), stdin=out)
    expect(rc == 2, "a keys-only dump is refused by load")

    # ---- damage ----------------------------------------------------------
    def copy(name):
        d = os.path.join(work, name)
        shutil.copytree(data, d)
        os.unlink(os.path.join(d, "LOCK"))
        return d

    def largest_segment(d):
        return max(glob.glob(os.path.join(d, "shard-*", "*.seg")), key=os.path.getsize)

    flip = copy("flip")
    seg = largest_segment(flip)
    with open(seg, "r+b") as f:
        size = os.path.getsize(seg)
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x40]))
    rc, out, err = admin("check", flip)
    text = out.decode()
    expect(rc == 1, "flipped byte: check exits 1, got %d" % rc)
    expect("damaged bytes at offset" in text and os.path.basename(seg) in text,
           "flipped byte: names the segment and offset: %s" % text)

    torn = copy("torn")
    seg = largest_segment(torn)
    with open(seg, "r+b") as f:
        f.truncate(os.path.getsize(seg) - 3)
    for h in glob.glob(os.path.join(torn, "shard-*", "*.hint")):
        os.unlink(h)
    rc, out, err = admin("check", torn)
    expect(rc == 1 and "torn tail" in out.decode(), "torn tail found: %d %s" % (rc, out))

    nohint = copy("nohint")
    def closed_hints(d):
        out = []
        for sd in glob.glob(os.path.join(d, "shard-*")):
            newest = max(glob.glob(os.path.join(sd, "*.seg")))
            out += [h for h in glob.glob(os.path.join(sd, "*.hint"))
                    if h[:-5] + ".seg" != newest]
        return sorted(out)
    hints = closed_hints(nohint)
    expect(len(hints) > 0, "the server wrote hints of closed segments")
    os.unlink(hints[0])
    rc, out, err = admin("check", nohint)
    text = out.decode()
    expect(rc == 0 and "1 missing" in text.splitlines()[-2],
           "missing hint: clean, counted: %s" % text)

    lost = copy("lost")
    seg = closed_hints(lost)[0][:-5] + ".seg"
    os.unlink(seg)
    os.unlink(seg[:-4] + ".hint")
    rc, out, err = admin("check", lost)
    expect(rc == 1 and "missing (listed in the manifest)" in out.decode(),
           "segment lost with its hint found: %d %s" % (rc, out))

    badhint = copy("badhint")
    hint = closed_hints(badhint)[0]
    with open(hint, "r+b") as f:
        f.seek(30)
        b = f.read(1)
        f.seek(30)
        f.write(bytes([b[0] ^ 1]))
    rc, out, err = admin("check", badhint)
    expect(rc == 1 and ".hint: damaged" in out.decode(), "damaged hint found: %s" % out)

    state = copy("state")
    with open(os.path.join(state, "state"), "r+b") as f:
        f.write(b"X")
    rc, out, err = admin("check", state)
    expect(rc == 1 and "state: slot 0 is damaged" in out.decode(), "damaged state slot found")

    # ---- repair ----------------------------------------------------------
    def served(d):
        """What a server (the store's own recovery) makes of d: dump a copy."""
        c = d + ".served"
        shutil.copytree(d, c)
        rc, out, err = admin("dump", c)
        expect(rc == 0, "dump of %s" % c)
        return parse_dump(out)

    rc, out, err = admin("repair", data)
    expect(rc == 0 and b"repair: 0 changes" in out and out.endswith(b"clean\n"),
           "repair of a clean directory changes nothing: %s" % out)
    for name, what in (("torn", b"torn tail of "),
                       ("flip", b"damaged bytes"),
                       ("nohint", b"missing, rebuilt"),
                       ("badhint", b"damaged, rebuilt")):
        d = os.path.join(work, name)
        want = served(d)
        rc, out, err = admin("repair", d)
        expect(rc == 0 and what in out and out.endswith(b"clean\n"),
               "repair %s: rc %d: %s %s" % (name, rc, out, err))
        rc, out, err = admin("check", d)
        expect(rc == 0 and " 0 bad," in out.decode().splitlines()[-2],
               "repaired %s checks clean: %s" % (name, out))
        for sd in glob.glob(os.path.join(d, "shard-*")):
            segs = sorted(glob.glob(os.path.join(sd, "*.seg")))
            expect(all(os.path.exists(g[:-4] + ".hint") for g in segs[:-1]),
                   "repaired %s: every closed segment of %s has a hint" % (name, sd))
        rc, out, err = admin("dump", d)
        expect(rc == 0 and parse_dump(out) == want,
               "repair %s keeps what the server would serve" % name)
        if name in ("torn", "flip"):
            q = glob.glob(os.path.join(d, "quarantine", "shard-*", "*"))
            expect(len(q) == 1, "repair %s saved the removed bytes: %s" % (name, q))
            if name == "torn":
                expect(os.path.getsize(q[0]) > 0 and ".tail-at-" in q[0], "tail saved")
finally:
    srv.close()
    shutil.rmtree(work, ignore_errors=True)

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("ok")
