/* cmd_fixture.c - the executor tests' shared fixture (cmd_fixture.h). */
#include "tests/unit/cmd_fixture.h"

#include "server/cmd_meta.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    struct cmd_fixture *fx = arg;

    assert_true(fx->n + n <= sizeof(fx->out));
    memcpy(fx->out + fx->n, p, n);
    fx->n += n;
}

static void
sink_value(void *arg, char *v, size_t n)
{
    struct cmd_fixture *fx = arg;

    sink_bytes(arg, v, n);
    fx->values++;
    free(v);
}

static int64_t
clock_fn(void *arg)
{
    return ((struct cmd_fixture *)arg)->now;
}

void
cmd_fixture_init(struct cmd_fixture *fx)
{
    struct cask_options o;
    struct cmd_sink sink = {0};

    fx->now = CMD_FIXTURE_NOW_S;
    cask_options_init(&o);
    o.value_max = CMD_FIXTURE_ITEM_MAX;
    o.clock = clock_fn;
    o.clock_arg = fx;
    assert_int_equal(cask_open(&fx->store, "unused", &o), CASK_OK);
    fx->env.store = fx->store;
    fx->env.item_max = CMD_FIXTURE_ITEM_MAX;
    fx->env.version = "9.9.9";
    fx->env.clock = clock_fn;
    fx->env.clock_arg = fx;
    assert_int_equal(cmd_meta_create(&fx->env.meta, 64), 0);
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = fx;
    cmd_conn_init(&fx->cc, &fx->env, &fx->ctr, &sink);
    cmd_bin_init(&fx->bin, &fx->cc, NULL);
}

void
cmd_fixture_deinit(struct cmd_fixture *fx)
{
    cmd_conn_deinit(&fx->cc);
    cask_close(&fx->store);
    cmd_meta_destroy(&fx->env.meta);
    assert_null(fx->env.meta);
}
