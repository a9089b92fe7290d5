// memjs_ops.js - a fixed sequence of memjs (Node.js, binary protocol) calls
// against HOST:PORT, one line per outcome, for test_clients.py to compare
// between memcached and bitcached. memjs is not a Debian package: install it
// with npm into a directory outside the source tree and point NODE_PATH at
// its node_modules (test_clients.py's header says how). Values that differ
// between servers by design (cas numbers, stats figures) are printed as their
// shape only; an error is printed as memjs's message, which carries the
// server's binary status.
"use strict";
const memjs = require("memjs");

const host = process.argv[2];
let n = 0;

function out(what, val) {
  n += 1;
  process.stdout.write(n + " " + what + ": " + JSON.stringify(val) + "\n");
}

// A call whose reply never comes (memjs leaves a request pending when the
// server closes the connection under it) is reported after 5 s; the timer
// also keeps node from exiting with that request unresolved.
async function attempt(what, call) {
  let val;
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve("no reply"), 5000);
  });
  try {
    val = await Promise.race([call(), late]);
  } catch (e) {
    val = "raised " + e.message;
  }
  clearTimeout(timer);
  out(what, val);
}

// A call on a client of its own, for requests after which both servers
// close the connection (a key over 250 bytes or none, extras a command does
// not take): memjs writes the next request into the closing socket, and
// whether that one is answered, fails or hangs depends on timing.
async function alone(call) {
  const c = memjs.Client.create(host, { retries: 1, timeout: 2, logger: { log() {} } });
  try {
    return await call(c);
  } finally {
    c.close();
  }
}

// memjs has no flags argument; its serializer hands the request's extras
// (flags then expiry) to a hook, so this one sets the flags it is given in
// the value's "flags:N|" prefix and returns the stored flags with a value.
const flagSerializer = {
  serialize(opcode, value, extras) {
    const m = /^flags:(\d+)\|/.exec(value.toString("latin1"));
    if (m && extras.length === 8) {
      extras = Buffer.from(extras);
      extras.writeUInt32BE(Number(m[1]) >>> 0, 0);
      value = value.slice(m[0].length);
    }
    return { value: value, extras: extras };
  },
  deserialize(opcode, value, extras) {
    return { value: value, extras: extras };
  },
};

function str(r) {
  return r.value === null ? null : r.value.toString("latin1");
}

function flags(r) {
  return r.flags === null ? null : r.flags.readUInt32BE(0);
}

// A request memjs can frame but has no method for (version, noop, a bad
// opcode): sent through the client's own perform(), the reply's status and
// body returned.
function raw(mc, opcode, key, extras, value) {
  return new Promise((resolve, reject) => {
    mc.incrSeq();
    const req = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, mc.seq);
    mc.perform(key, req, mc.seq, (err, rsp) => {
      if (err) {
        reject(err);
      } else {
        resolve(rsp);
      }
    });
  });
}

function statsOf(mc, key) {
  return new Promise((resolve, reject) => {
    mc.statsWithKey(key, (err, server, result) => {
      if (err) {
        reject(err);
      } else {
        resolve(result);
      }
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const quiet = { log() {} };
  const mc = memjs.Client.create(host, {
    retries: 1, timeout: 2, logger: quiet, serializer: flagSerializer,
  });

  await attempt("flush", async () => Object.values(await mc.flush()));
  await attempt("set", () => mc.set("a", "one", {}));
  await attempt("get", async () => str(await mc.get("a")));
  await attempt("get flags 0", async () => flags(await mc.get("a")));
  await attempt("get missing", async () => await mc.get("nope"));
  await attempt("set flags", () => mc.set("f", "flags:3735928559|flagged", {}));
  await attempt("get flags", async () => {
    const r = await mc.get("f");
    return [str(r), flags(r)];
  });
  await attempt("set buffer", () => mc.set("buf", Buffer.from([0, 1, 2, 13, 10, 255, 0]), {}));
  await attempt("get buffer", async () => [...(await mc.get("buf")).value]);
  await attempt("set empty", () => mc.set("empty", "", {}));
  await attempt("get empty", async () => str(await mc.get("empty")));
  await attempt("set utf-8", () => mc.set("u", "h\u00e9llo \u2603", {}));
  await attempt("get utf-8", async () => (await mc.get("u")).value.toString("utf8"));
  await attempt("add existing", () => mc.add("a", "two", {}));
  await attempt("add new", () => mc.add("b", "two", {}));
  await attempt("add with expiry", () => mc.add("ae", "x", { expires: 100 }));
  await attempt("replace missing", () => mc.replace("nope", "x", {}));
  await attempt("replace", () => mc.replace("b", "three", {}));
  await attempt("replace with expiry", () => mc.replace("b", "four", { expires: 100 }));
  await attempt("get b", async () => str(await mc.get("b")));
  await attempt("append", () => mc.append("b", "-end"));
  await attempt("append missing", () => mc.append("nope", "x"));
  // memjs 1.3 sends prepend as append (opcode 0x0e); both servers see the same
  await attempt("prepend", () => mc.prepend("b", "start-"));
  await attempt("prepend missing", () => mc.prepend("nope", "x"));
  await attempt("get b after", async () => str(await mc.get("b")));
  await attempt("delete", () => mc.delete("b"));
  await attempt("delete missing", () => mc.delete("b"));
  await attempt("get deleted", async () => await mc.get("b"));

  await attempt("incr missing initial", () => mc.increment("ctr", 5, { initial: 10 }));
  await attempt("incr", () => mc.increment("ctr", 5, {}));
  await attempt("decr", () => mc.decrement("ctr", 3, {}));
  await attempt("decr below zero", () => mc.decrement("ctr", 1000, {}));
  await attempt("get ctr", async () => str(await mc.get("ctr")));
  await attempt("decr missing initial", () => mc.decrement("dctr", 1, { initial: 7 }));
  await attempt("incr missing zero", () => mc.increment("zctr", 1, {}));
  await attempt("incr with expiry", () => mc.increment("ectr", 1, { initial: 4, expires: 1 }));
  await attempt("incr non-numeric", () => mc.increment("a", 1, {}));
  await attempt("incr wrap", async () => {
    await mc.set("w", "18446744073709551615", {});
    await mc.increment("w", 2, {});
    return str(await mc.get("w"));
  });
  await attempt("incr 20-digit value", async () => {
    await mc.set("w2", "18446744073709551610", {});
    await mc.increment("w2", 1, {});
    return str(await mc.get("w2"));
  });
  await attempt("incr spaces", async () => {
    await mc.set("sp", "12 ", {});
    return await mc.increment("sp", 1, {});
  });
  await attempt("touch", () => mc.touch("a", 100));
  await attempt("touch missing", () => mc.touch("nope", 100));
  await attempt("set with expiry", () => mc.set("e", "soon", { expires: 1 }));
  await attempt("touch to expire", () => mc.touch("a2", 1));
  await attempt("expiry", async () => {
    await mc.set("t", "touched", {});
    await mc.touch("t", 1);
    await sleep(2100);
    return [await mc.get("e"), await mc.get("t"), await mc.get("ectr"), str(await mc.get("a"))];
  });
  await attempt("add after expiry", () => mc.add("e", "again", {}));
  await attempt("set negative expiry", async () => {
    const c = memjs.Client.create(host, { retries: 1, logger: quiet, expires: 0 });
    const r = await c.set("neg", "gone", { expires: 0xffffffff });
    const g = await c.get("neg");
    c.close();
    return [r, g.value];
  });
  await attempt("set absolute expiry", async () => {
    const past = Math.floor(Date.now() / 1000) - 10;
    await mc.set("abs", "past", { expires: past });
    const future = Math.floor(Date.now() / 1000) + 100;
    await mc.set("abs2", "future", { expires: future });
    return [(await mc.get("abs")).value, str(await mc.get("abs2"))];
  });

  await attempt("pipelined gets", async () => {
    const keys = [];
    for (let i = 0; i < 200; i++) {
      keys.push("p" + i);
    }
    await Promise.all(keys.map((k) => mc.set(k, k.repeat(3), {})));
    const got = await Promise.all(keys.concat(["nope"]).map((k) => mc.get(k)));
    return [got.filter((r) => r.value !== null).length,
      got.every((r, i) => i === keys.length || str(r) === keys[i].repeat(3))];
  });
  await attempt("pipelined mixed", async () => {
    const res = await Promise.all([
      mc.set("m1", "x", {}), mc.add("m1", "y", {}), mc.get("m1"), mc.append("m1", "z"),
      mc.increment("m2", 1, { initial: 1 }), mc.delete("m1"), mc.get("m1"),
      mc.replace("m1", "q", {}), mc.touch("m2", 10),
    ]);
    return res.map((r) => (r && r.value !== undefined && Buffer.isBuffer(r.value) ? str(r) : r));
  });

  const limit = 1024 * 1024;
  await attempt("value of 1000000", async () => {
    const v = "v".repeat(1000000);
    return [await mc.set("big", v, {}), str(await mc.get("big")) === v];
  });
  await attempt("value of 1 MiB-1", () => mc.set("big1", "w".repeat(limit - 1), {}));
  await attempt("value of 1 MiB", () => mc.set("big2", "w".repeat(limit), {}));
  await attempt("value over 1 MiB", () => mc.set("big3", "w".repeat(limit + 100), {}));
  await attempt("too large leaves old", async () => {
    await mc.set("keep", "old", {});
    try {
      await mc.set("keep", "z".repeat(2 * limit), {});
    } catch (e) {
      /* the outcome is the value left behind */
    }
    return (await mc.get("keep")).value;
  });
  await attempt("append over limit", async () => {
    await mc.set("ap", "a".repeat(limit - 200), {});
    return await mc.append("ap", "b".repeat(400));
  });
  await attempt("key of 250", async () => {
    const k = "k".repeat(250);
    return [await mc.set(k, "long", {}), str(await mc.get(k))];
  });
  await attempt("set key of 251", () => alone((c) => c.set("k".repeat(251), "x", {})));
  await attempt("get key of 251", () => alone((c) => c.get("k".repeat(251))));
  await attempt("delete key of 251", () => alone((c) => c.delete("k".repeat(251))));
  await attempt("incr key of 251", () => alone((c) => c.increment("k".repeat(251), 1, {})));
  await attempt("touch key of 251", () => alone((c) => c.touch("k".repeat(251), 1)));
  await attempt("empty key set", () => alone((c) => c.set("", "x", {})));
  await attempt("empty key get", () => alone((c) => c.get("")));
  await attempt("key with space", async () => {
    await mc.set("has space", "sp", {});
    return str(await mc.get("has space"));
  });
  await attempt("key with newline", async () => {
    await mc.set("nl\r\nkey", "nl", {});
    return str(await mc.get("nl\r\nkey"));
  });
  await attempt("key with NUL", async () => {
    await mc.set("nul\u0000key", "nul", {});
    return [str(await mc.get("nul\u0000key")), (await mc.get("nul")).value];
  });
  await attempt("key utf-8", async () => {
    await mc.set("k\u00e9y\u2603", "uk", {});
    return str(await mc.get("k\u00e9y\u2603"));
  });
  await attempt("still connected", async () => str(await mc.get("a")));

  await attempt("version", async () => {
    const r = await raw(mc, 0x0b, "", "", "");
    return [r.header.status, /^\d+\.\d+\.\d+/.test(r.val.toString())];
  });
  await attempt("noop", async () => {
    const r = await raw(mc, 0x0a, "", "", "");
    return [r.header.status, r.header.totalBodyLength];
  });
  await attempt("unknown opcode", async () => {
    const r = await raw(mc, 0x3f, "", "", "");
    return [r.header.status, r.val.toString()];
  });
  // memcached 1.6.18 answers an unknown opcode with a key only once as many
  // more bytes as the request's body came (it swallows the body it has
  // already read), then eats them: bitcached answers at once.
  await attempt("unknown opcode with key", () => alone(async (c) => {
    const r = await raw(c, 0x3f, "k", "", "");
    return [r.header.status, r.val.toString()];
  }));
  await attempt("get with extras", () => alone(async (c) => {
    const r = await raw(c, 0x00, "a", "xxxx", "");
    return [r.header.status, r.val.toString()];
  }));
  await attempt("set without extras", () => alone(async (c) => {
    const r = await raw(c, 0x01, "nx", "", "v");
    return [r.header.status, r.val.toString()];
  }));
  await attempt("incr on 1000000 bytes", async () => {
    await mc.set("bign", "1".repeat(1000000), {});
    return await mc.increment("bign", 1, {});
  });
  await attempt("after errors", async () => str(await mc.get("a")));

  await attempt("stats shape", async () => {
    const s = await statsOf(mc, "");
    return ["pid", "uptime", "version", "curr_items", "total_items", "get_hits",
      "get_misses", "cmd_get", "cmd_set", "curr_connections"].filter((k) => !(k in s));
  });
  await attempt("stats settings shape", async () => {
    const s = await statsOf(mc, "settings");
    return ["maxbytes", "maxconns", "tcpport", "item_size_max", "num_threads"]
      .filter((k) => !(k in s));
  });
  await attempt("stats settings item_size_max", async () => (await statsOf(mc, "settings")).item_size_max);
  await attempt("stats items shape", async () => typeof (await statsOf(mc, "items")));
  await attempt("stats slabs shape", async () => "active_slabs" in (await statsOf(mc, "slabs")));
  await attempt("stats conns shape", async () => typeof (await statsOf(mc, "conns")));
  await attempt("stats bogus", async () => await statsOf(mc, "bogus"));
  await attempt("stats after bogus", async () => str(await mc.get("a")));
  await attempt("reset stats", async () => {
    await mc.get("a");
    await new Promise((resolve, reject) => mc.resetStats((err) => (err ? reject(err) : resolve())));
    const s = await statsOf(mc, "");
    return [s.get_hits, s.cmd_get, s.total_items];
  });
  await attempt("flush", async () => Object.values(await mc.flush()));
  await attempt("get after flush", async () => (await mc.get("a")).value);
  await attempt("add after flush", () => mc.add("a", "new", {}));
  await attempt("quit", async () => {
    mc.quit();
    await sleep(200);
    return str(await mc.get("a"));
  });
  await attempt("closed client", async () => {
    mc.close();
    return str(await mc.get("a"));
  });
  await attempt("new client", () => alone(async (c) => str(await c.get("a"))));
  mc.close();
  out("done", true);
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(String(e && e.stack) + "\n");
  process.exit(1);
});
