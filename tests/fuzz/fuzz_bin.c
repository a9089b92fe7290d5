/* fuzz_bin.c - libFuzzer target over the binary protocol: the packet parser
 * (protocol/proto_bin.c) on its own, then, through cmd_bin_execute, the
 * binary executor over the in-memory fake store, with SASL off and on. The
 * input is fed whole and in reads whose sizes come from the input itself.
 * Checks the parser's contract (never consumes more than it was given,
 * always makes progress when it says so, pointers inside the buffer); the
 * sanitizers catch the rest. Built only with --enable-fuzz.
 */
#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "server/cmd_meta.h"
#include "storage/cask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 2048u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    size_t *total = arg;

    (void)p;
    *total += n;
}

static void
sink_value(void *arg, char *v, size_t n)
{
    size_t *total = arg;

    *total += n;
    free(v);
}

static int64_t
fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000;
}

static void
within(const char *p, size_t n, const char *buf, size_t len)
{
    if (n > 0 && (p < buf || p + n > buf + len)) {
        abort();
    }
}

static void
parse_all(const char *buf, size_t len, bool sasl)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    size_t off = 0;

    proto_bin_parser_init(&p, ITEM_MAX);
    p.sasl = sasl;
    p.auth_needed = sasl;
    while (off < len) {
        size_t used = 0;
        enum proto_bin_result st =
                proto_bin_parse(&p, &req, buf + off, len - off, &used);

        if (used > len - off) {
            abort();
        }
        if (st == PROTO_BIN_NEED_MORE) {
            if (used != 0 || (p.wanted != 0 && p.wanted <= len - off)) {
                abort();
            }
            break;
        }
        if (st == PROTO_BIN_CLOSE) {
            break;
        }
        if (used == 0) {
            abort();
        }
        if (st == PROTO_BIN_OK) {
            within(req.key, req.klen, buf + off, used);
            within(req.val, req.vlen, buf + off, used);
            if (req.klen > PROTO_BIN_KEY_MAX || req.vlen > ITEM_MAX) {
                abort();
            }
        }
        off += used;
    }
}

static void
execute_all(const char *buf, size_t len, size_t step, const char *pwdb)
{
    struct cask_options o;
    struct cask *store = NULL;
    struct cmd_counters ctr;
    struct cmd_env env;
    struct cmd_sink sink;
    struct cmd_conn cc;
    struct cmd_bin bin;
    size_t total = 0;
    size_t off = 0;
    size_t avail = step < len ? step : len;

    cask_options_init(&o);
    o.value_max = ITEM_MAX;
    o.clock = fixed_clock;
    if (cask_open(&store, "unused", &o) != CASK_OK) {
        return;
    }
    memset(&ctr, 0, sizeof(ctr));
    memset(&env, 0, sizeof(env));
    env.store = store;
    env.item_max = ITEM_MAX;
    env.version = "fuzz";
    env.clock = fixed_clock;
    if (cmd_meta_create(&env.meta, 8) != 0) {
        cask_close(&store);
        return;
    }
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = &total;
    cmd_conn_init(&cc, &env, &ctr, &sink);
    cmd_bin_init(&bin, &cc, pwdb);
    for (;;) {
        size_t used = 0;
        enum cmd_status st =
                cmd_bin_execute(&cc, &bin, buf + off, avail - off, &used);

        if (used > avail - off) {
            abort();
        }
        if (st == CMD_CLOSE || st == CMD_SHUTDOWN) {
            break;
        }
        if (st == CMD_NEED_MORE) {
            if (avail == len) {
                break;
            }
            avail = avail + step < len ? avail + step : len;
            continue;
        }
        if (used == 0) {
            abort();
        }
        off += used;
    }
    cmd_conn_deinit(&cc);
    cask_close(&store);
    cmd_meta_destroy(&env.meta);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t step = size > 0 ? (size_t)(data[size - 1] % 32) + 1 : 1;

    parse_all(buf, size, false);
    parse_all(buf, size, true);
    execute_all(buf, size, size > 0 ? size : 1, NULL);
    execute_all(buf, size, step, NULL);
    /* SASL on, with a password file that does not exist: every PLAIN
     * attempt fails, everything but version and SASL is refused */
    execute_all(buf, size, size > 0 ? size : 1, "/nonexistent/pwdb");
    return 0;
}
