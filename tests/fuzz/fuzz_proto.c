/* fuzz_proto.c - libFuzzer target over the protocol parser and, through
 * cmd_execute, the command executor with the in-memory fake store. The
 * input is fed twice: whole, and split into reads whose sizes come from the
 * input itself, as a connection would see it. Checks the parser's contract
 * (never consumes more than it was given, always makes progress when it
 * says so); the sanitizers catch the rest. Built only with --enable-fuzz.
 */
#include "protocol/proto.h"
#include "server/cmd.h"
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
parse_all(const char *buf, size_t len)
{
    struct proto_parser p;
    struct proto_req req;
    size_t off = 0;

    proto_parser_init(&p, ITEM_MAX);
    while (off < len) {
        size_t used = 0;
        enum proto_status st =
                proto_parse(&p, &req, buf + off, len - off, &used);

        if (used > len - off) {
            abort();
        }
        if (st == PROTO_NEED_MORE || st == PROTO_CLOSE) {
            if (st == PROTO_NEED_MORE && used != 0) {
                abort();
            }
            break;
        }
        if (used == 0) {
            abort();
        }
        if (st == PROTO_OK) {
            char out[4096];
            size_t pos = 0;
            const char *k;
            size_t kl;

            while (req.keys_len > 0 && proto_key_next(&req, &pos, &k, &kl)) {
                if (kl == 0 || kl > PROTO_KEY_MAX) {
                    abort();
                }
            }
            (void)proto_format_req(out, sizeof(out), &req);
        }
        off += used;
    }
}

static void
execute_all(const char *buf, size_t len, size_t step)
{
    struct cask_options o;
    struct cask *store = NULL;
    struct cmd_counters ctr;
    struct cmd_env env;
    struct cmd_sink sink;
    struct cmd_conn cc;
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
    /* a tiny meta table, so that eviction is exercised too */
    if (cmd_meta_create(&env.meta, 8) != 0) {
        cask_close(&store);
        return;
    }
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = &total;
    cmd_conn_init(&cc, &env, &ctr, &sink);
    for (;;) {
        size_t used = 0;
        enum cmd_status st = cmd_execute(&cc, buf + off, avail - off, &used);

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
    size_t step;

    parse_all(buf, size);
    execute_all(buf, size, size > 0 ? size : 1);
    step = size > 0 ? (size_t)(data[0] % 16) + 1 : 1;
    execute_all(buf, size, step);
    return 0;
}
