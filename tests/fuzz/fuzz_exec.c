/* fuzz_exec.c - the executor fixture and feeding loop that fuzz_proto and
 * fuzz_bin share (see fuzz_exec.h). */
#include "tests/fuzz/fuzz_exec.h"

#include "server/cmd_meta.h"
#include "storage/cask.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

/* The budget of values still arriving, and the share another connection
 * holds of it. */
#define FUZZ_BUDGET       4096u
#define FUZZ_BUDGET_OTHER 1u

static int64_t
fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000;
}

int
fuzz_exec_open(struct fuzz_exec *fx, uint32_t item_max)
{
    struct cask_options o;

    memset(fx, 0, sizeof(*fx));
    cask_options_init(&o);
    o.value_max = item_max;
    o.clock = fixed_clock;
    if (cask_open(&fx->store, "unused", &o) != CASK_OK) {
        return -1;
    }
    fx->env.store = fx->store;
    fx->env.item_max = item_max;
    fx->env.version = "fuzz";
    fx->env.clock = fixed_clock;
    fx->budget.limit = FUZZ_BUDGET;
    atomic_store(&fx->budget.used, FUZZ_BUDGET_OTHER);
    fx->env.in_budget = &fx->budget;
    /* a tiny meta table, so that eviction is exercised too */
    if (cmd_meta_create(&fx->env.meta, 8) != 0) {
        cask_close(&fx->store);
        return -1;
    }
    fx->sink.bytes = sink_bytes;
    fx->sink.value = sink_value;
    fx->sink.arg = &fx->total;
    cmd_conn_init(&fx->cc, &fx->env, &fx->ctr, &fx->sink);
    return 0;
}

void
fuzz_exec_close(struct fuzz_exec *fx)
{
    cmd_conn_deinit(&fx->cc);
    if (atomic_load(&fx->budget.used) != FUZZ_BUDGET_OTHER) {
        abort(); /* a parser kept a share of the budget */
    }
    cask_close(&fx->store);
    cmd_meta_destroy(&fx->env.meta);
}

void
fuzz_exec_feed(struct fuzz_exec *fx, const char *buf, size_t len, size_t step,
               fuzz_exec_fn fn, void *arg)
{
    size_t off = 0;
    size_t avail = step < len ? step : len;

    for (;;) {
        size_t used = 0;
        bool dumping = cmd_busy(&fx->cc);
        enum cmd_status st = fn(fx, arg, buf + off, avail - off, &used);

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
        if (used == 0 && !dumping) {
            abort(); /* only a dump's batch (the last one included) may
                      * consume nothing */
        }
        off += used;
    }
}
