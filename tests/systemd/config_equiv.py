#!/usr/bin/env python3
# config_equiv.py - a config file means the same as its flags: the server
# started with --config FILE and started with the same options on its command
# line reports the same `stats settings`; options on the command line win
# over the file; a missing config file exits 66 (EX_NOINPUT). Also checks
# that the shipped systemd/bitcached.conf starts the server. Skips (77) until
# the server binary is built.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

# Non-default values, so that an option the file failed to set shows up.
# Each entry: the config-file line, the equivalent argv words.
OPTIONS = [
    ("-l 127.0.0.1", ["-l", "127.0.0.1"]),
    ("-t 3", ["-t", "3"]),
    ("-c 77        # trailing comment", ["-c", "77"]),
    ("-I 2m", ["-I", "2m"]),
    ("-v", ["-v"]),
    ("-m 32", ["-m", "32"]),
    ("-M", ["-M"]),
    ("--shards=4", ["--shards=4"]),
    ("--sync always", ["--sync", "always"]),
    ("--sync-interval-ms=250", ["--sync-interval-ms=250"]),
    ("--segment-size 8m", ["--segment-size", "8m"]),
    ("--compact-ratio=0.25", ["--compact-ratio=0.25"]),
    ("--idle-timeout 60", ["--idle-timeout", "60"]),
]

# What those options must show as (memcached's names where it has them).
EXPECT = {
    "maxconns": "77",
    "num_threads": "3",
    "item_size_max": str(2 * 1024 * 1024),
    "verbosity": "1",
    "shards": "4",
    "sync": "always",
    "sync_interval_ms": "250",
    "segment_size": str(8 * 1024 * 1024),
    "idle_timeout": "60",
}


def settings_of(f, binary, tmp, name, args, port):
    server = lib.Server([binary] + args, tmp, name=name)
    try:
        if not f.check(lib.wait_port(server, port),
                       "%s: server up on port %d" % (name, port)):
            print(server.output())
            return None
        if not lib.speaks_protocol(port):
            server.stop()
            print("SKIP: this build's server does not answer `version` yet")
            sys.exit(lib.SKIP)
        st = lib.stats_settings(port)
        rc = server.stop()
        f.check(rc == 0, "%s: clean stop (exit %r)" % (name, rc))
        return st
    finally:
        server.kill()


def write(path, lines):
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def main():
    binary = lib.server_binary()
    f = lib.Failures()
    with lib.tempdir() as tmp:
        data = os.path.join(tmp, "data dir")  # a blank inside the value
        conf = os.path.join(tmp, "bitcached.conf")

        p1 = lib.free_port()
        write(conf, ["# test configuration", "", "-p %d" % p1,
                     "--data-dir %s" % data] + [o[0] for o in OPTIONS])
        from_file = settings_of(f, binary, tmp, "file", ["--config", conf], p1)

        p2 = lib.free_port()
        argv = ["-p", str(p2), "--data-dir", data]
        for o in OPTIONS:
            argv += o[1]
        from_flags = settings_of(f, binary, tmp, "flags", argv, p2)

        if from_file is not None and from_flags is not None:
            f.check(from_file.get("tcpport") == str(p1),
                    "file: tcpport %r" % from_file.get("tcpport"))
            f.check(from_flags.get("tcpport") == str(p2),
                    "flags: tcpport %r" % from_flags.get("tcpport"))
            for k in sorted(set(from_file) | set(from_flags)):
                if k == "tcpport":
                    continue
                f.check(from_file.get(k) == from_flags.get(k),
                        "%s: file %r, flags %r" % (k, from_file.get(k),
                                                   from_flags.get(k)))
            for k, v in sorted(EXPECT.items()):
                f.check(from_file.get(k) == v,
                        "file sets %s=%s (got %r)" % (k, v, from_file.get(k)))
            f.check(from_file.get("data_dir", "").endswith("data dir"),
                    "data_dir %r" % from_file.get("data_dir"))
            try:
                ratio = float(from_file.get("compact_ratio", "nan"))
            except ValueError:
                ratio = float("nan")
            f.check(abs(ratio - 0.25) < 1e-9,
                    "compact_ratio %r" % from_file.get("compact_ratio"))

        # The command line wins over the file, wherever --config stands.
        p3 = lib.free_port()
        write(conf, ["-p %d" % p3, "-t 3", "--data-dir %s" % data,
                     "--shards=4", "-c 77"])
        st = settings_of(f, binary, tmp, "override",
                         ["-t", "2", "--config=" + conf, "-c", "55"], p3)
        if st is not None:
            f.check(st.get("num_threads") == "2",
                    "command line -t 2 wins (got %r)" % st.get("num_threads"))
            f.check(st.get("maxconns") == "55",
                    "command line -c 55 wins (got %r)" % st.get("maxconns"))

        # The shipped configuration file starts the server as the unit does.
        shipped = os.path.join(os.environ.get("top_srcdir", "."), "systemd",
                               "bitcached.conf")
        p4 = lib.free_port()
        st = settings_of(f, binary, tmp, "shipped",
                         ["--config", shipped, "--data-dir",
                          os.path.join(tmp, "shipped-data"), "-p", str(p4)],
                         p4)
        if st is not None:
            f.check(st.get("sync") == "interval",
                    "shipped config: sync %r" % st.get("sync"))

        # A missing file is EX_NOINPUT.
        server = lib.Server([binary, "--config",
                             os.path.join(tmp, "missing.conf")], tmp,
                            name="missing")
        try:
            server.proc.wait(15)
        except Exception:
            pass
        rc = server.proc.returncode
        server.kill()
        f.check(rc == 66, "missing config file: exit %r, want 66" % rc)
        print(server.output().strip())
    f.finish()


if __name__ == "__main__":
    main()
