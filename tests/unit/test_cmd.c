/* test_cmd.c - cmocka tests for server/cmd.c driven with an in-memory sink
 * over the fake store (tests/golden/fake_cask.c): exptime conversion,
 * counters, stats/verbosity/version/shutdown/quit, store error mapping,
 * value hand-over and noreply. No sockets, no disk.
 */
#include "server/cmd.h"

#include "storage/cask.h"
#include "tests/golden/fake_cask.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_S    1700000000
#define ITEM_MAX 4096u

struct fixture {
    struct cask *store;
    struct cmd_env env;
    struct cmd_counters ctr;
    struct cmd_conn cc;
    char out[65536];
    size_t n;
    unsigned values; /* buffers handed over through sink.value */
    int64_t now;
    char stats_args[64];
    unsigned verbosity;
};

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    struct fixture *f = arg;

    assert_true(f->n + n <= sizeof(f->out));
    memcpy(f->out + f->n, p, n);
    f->n += n;
}

static void
sink_value(void *arg, char *v, size_t n)
{
    struct fixture *f = arg;

    sink_bytes(arg, v, n);
    f->values++;
    free(v);
}

static int64_t
clock_fn(void *arg)
{
    return ((struct fixture *)arg)->now;
}

static void
stats_fn(void *arg, const char *args, size_t len, const struct cmd_sink *out)
{
    struct fixture *f = arg;

    snprintf(f->stats_args, sizeof(f->stats_args), "%.*s", (int)len, args);
    out->bytes(out->arg, "STAT x 1\r\nEND\r\n", 15);
}

static void
verbosity_fn(void *arg, unsigned level)
{
    ((struct fixture *)arg)->verbosity = level;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cask_options o;
    struct cmd_sink sink;

    assert_non_null(f);
    f->now = NOW_S;
    cask_options_init(&o);
    o.value_max = ITEM_MAX;
    o.clock = clock_fn;
    o.clock_arg = f;
    assert_int_equal(cask_open(&f->store, "unused", &o), CASK_OK);
    f->env.store = f->store;
    f->env.item_max = ITEM_MAX;
    f->env.version = "9.9.9";
    f->env.clock = clock_fn;
    f->env.clock_arg = f;
    f->env.stats = stats_fn;
    f->env.stats_arg = f;
    f->env.verbosity = verbosity_fn;
    f->env.verbosity_arg = f;
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = f;
    cmd_conn_init(&f->cc, &f->env, &f->ctr, &sink);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    cmd_conn_deinit(&f->cc);
    cask_close(&f->store);
    free(f);
    return 0;
}

/* Run every request in s; return the last status. Output in f->out. */
static enum cmd_status
run(struct fixture *f, const char *s)
{
    size_t len = strlen(s);
    size_t off = 0;
    enum cmd_status st = CMD_NEED_MORE;

    f->n = 0;
    while (off < len) {
        size_t used = 0;

        st = cmd_execute(&f->cc, s + off, len - off, &used);
        if (st != CMD_DONE) {
            break;
        }
        assert_true(used > 0);
        off += used;
    }
    f->out[f->n < sizeof(f->out) ? f->n : sizeof(f->out) - 1] = '\0';
    return st;
}

static void
expect(struct fixture *f, const char *req, const char *rsp)
{
    run(f, req);
    assert_string_equal(f->out, rsp);
}

static void
test_basic(void **state)
{
    struct fixture *f = *state;

    expect(f, "set a 5 0 3\r\nabc\r\n", "STORED\r\n");
    expect(f, "get a b\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n");
    expect(f, "gets a\r\n", "VALUE a 5 3 1\r\nabc\r\nEND\r\n");
    expect(f, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    expect(f, "append a 0 0 1\r\nd\r\n", "STORED\r\n");
    expect(f, "cas a 0 0 1 99\r\nx\r\n", "EXISTS\r\n");
    expect(f, "cas a 0 0 1 2\r\nx\r\n", "STORED\r\n");
    expect(f, "cas a 0 0 1 0\r\nx\r\n", "EXISTS\r\n");
    expect(f, "cas zz 0 0 1 0\r\nx\r\n", "NOT_FOUND\r\n");
    expect(f, "delete a\r\n", "DELETED\r\n");
    expect(f, "delete a\r\n", "NOT_FOUND\r\n");
    expect(f, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 20\r\nget n\r\n",
           "STORED\r\n15\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n");
    expect(f, "incr zz 1\r\n", "NOT_FOUND\r\n");
    expect(f, "set s 0 0 1\r\nx\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement "
           "non-numeric value\r\n");
    expect(f, "touch n 10\r\ntouch zz 10\r\n", "TOUCHED\r\nNOT_FOUND\r\n");
    expect(f, "mn\r\n", "MN\r\n");
}

static void
test_noreply(void **state)
{
    struct fixture *f = *state;

    expect(f,
           "set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\nx\r\n"
           "incr a 1 noreply\r\ndelete a noreply\r\ndelete a noreply\r\n"
           "touch a 1 noreply\r\nflush_all noreply\r\n"
           "verbosity 2 noreply\r\nincr a x noreply\r\n",
           "");
    assert_int_equal(f->verbosity, 2);
}

static void
test_exptime(void **state)
{
    struct fixture *f = *state;
    char req[128];

    expect(f, "set a 0 100 1\r\nx\r\nmg a t\r\n", "STORED\r\nHD t100\r\n");
    expect(f, "set a 0 2592000 1\r\nx\r\nmg a t\r\n",
           "STORED\r\nHD t2592000\r\n");
    /* above 30 days: absolute, here long past */
    expect(f, "set a 0 2592001 1\r\nx\r\nmg a t\r\n", "STORED\r\nEN\r\n");
    snprintf(req, sizeof(req), "set a 0 %d 1\r\nx\r\nmg a t\r\n", NOW_S + 500);
    expect(f, req, "STORED\r\nHD t500\r\n");
    snprintf(req, sizeof(req), "set a 0 %d 1\r\nx\r\nget a\r\n", NOW_S);
    expect(f, req, "STORED\r\nEND\r\n");
    expect(f, "set a 0 -1 1\r\nx\r\nget a\r\n", "STORED\r\nEND\r\n");
    expect(f, "set a 0 0 1\r\nx\r\nmg a t\r\n", "STORED\r\nHD t-1\r\n");
    /* touch and gat move the expiry */
    expect(f, "touch a 50\r\nmg a t\r\n", "TOUCHED\r\nHD t50\r\n");
    expect(f, "gat 70 a\r\nmg a t\r\n",
           "VALUE a 0 1\r\nx\r\nEND\r\nHD t70\r\n");
    f->now += 71;
    expect(f, "get a\r\n", "END\r\n");
    /* the 2592001, NOW, -1 and touched items: all read as expired */
    assert_int_equal(f->ctr.get_expired, 4);
}

static void
test_counters(void **state)
{
    struct fixture *f = *state;

    run(f, "set a 0 0 1\r\nx\r\nget a b\r\ngets a\r\ndelete b\r\n"
           "set n 0 0 1\r\n1\r\nincr n 1\r\ndecr n 1\r\nincr zz 1\r\n"
           "decr zz 1\r\ntouch a 0\r\ntouch zz 0\r\ncas a 0 0 1 999\r\nx\r\n"
           "cas zz 0 0 1 5\r\nx\r\nmg a v\r\nmn\r\nflush_all\r\nget a\r\n");
    assert_int_equal(f->ctr.cmd_get, 5);
    assert_int_equal(f->ctr.get_hits, 3);
    assert_int_equal(f->ctr.get_misses, 2);
    assert_int_equal(f->ctr.get_flushed, 1);
    assert_int_equal(f->ctr.cmd_set, 4);
    assert_int_equal(f->ctr.total_items, 2);
    assert_int_equal(f->ctr.delete_misses, 1);
    assert_int_equal(f->ctr.incr_hits, 1);
    assert_int_equal(f->ctr.decr_hits, 1);
    assert_int_equal(f->ctr.incr_misses, 1);
    assert_int_equal(f->ctr.decr_misses, 1);
    assert_int_equal(f->ctr.cmd_touch, 2);
    assert_int_equal(f->ctr.touch_hits, 1);
    assert_int_equal(f->ctr.touch_misses, 1);
    assert_int_equal(f->ctr.cas_badval, 1);
    assert_int_equal(f->ctr.cas_misses, 1);
    assert_int_equal(f->ctr.cmd_flush, 1);
    assert_int_equal(f->ctr.meta_cmds, 2);
}

static void
test_admin(void **state)
{
    struct fixture *f = *state;

    expect(f, "version\r\n", "VERSION 9.9.9\r\n");
    expect(f, "stats settings\r\n", "STAT x 1\r\nEND\r\n");
    assert_string_equal(f->stats_args, "settings");
    expect(f, "stats\r\n", "STAT x 1\r\nEND\r\n");
    assert_string_equal(f->stats_args, "");
    expect(f, "verbosity 3\r\n", "OK\r\n");
    assert_int_equal(f->verbosity, 3);
    expect(f, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    assert_int_equal(run(f, "quit\r\nget a\r\n"), CMD_CLOSE);
    assert_int_equal(f->n, 0);
    f->env.enable_shutdown = true;
    assert_int_equal(run(f, "shutdown\r\n"), CMD_SHUTDOWN);
    assert_int_equal(run(f, "GET / HTTP/1.1\r\n"), CMD_CLOSE);
}

static void
test_store_errors(void **state)
{
    struct fixture *f = *state;

    expect(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    fake_cask_fail_rc = CASK_ECORRUPT;
    run(f, "get a\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    assert_null(strstr(f->out, "VALUE"));
    fake_cask_fail_rc = CASK_ECORRUPT;
    run(f, "mg a v\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_ETOOBIG;
    expect(f, "append a 0 0 1\r\nx\r\n",
           "SERVER_ERROR object too large for cache\r\n");
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "set a 0 0 1\r\nx\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = 5; /* EIO */
    run(f, "delete a\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "incr a 1\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "flush_all\r\n");
    assert_true(strncmp(f->out, "SERVER_ERROR ", 13) == 0);
    /* every line ends in CRLF */
    assert_memory_equal(f->out + f->n - 2, "\r\n", 2);
}

static void
test_too_large(void **state)
{
    struct fixture *f = *state;
    size_t n = ITEM_MAX + 100;
    char *req = malloc(n + 64);
    int h;

    assert_non_null(req);
    expect(f, "set big 0 0 1\r\nx\r\n", "STORED\r\n");
    h = snprintf(req, 64, "set big 0 0 %zu\r\n", n);
    memset(req + h, 'x', n);
    memcpy(req + h + n, "\r\nget big\r\n", 12);
    expect(f, req, "SERVER_ERROR object too large for cache\r\nEND\r\n");
    assert_int_equal(f->ctr.store_too_large, 1);
    free(req);
}

/* Big values reach the sink as the store's own buffer, small ones inline. */
static void
test_value_handover(void **state)
{
    struct fixture *f = *state;
    char req[4000];
    int h = snprintf(req, sizeof(req), "set v 0 0 3000\r\n");

    memset(req + h, 'v', 3000);
    memcpy(req + h + 3000, "\r\n", 3);
    expect(f, req, "STORED\r\n");
    f->values = 0;
    run(f, "get v\r\n");
    assert_int_equal(f->values, 1);
    assert_int_equal(f->n, strlen("VALUE v 0 3000\r\n") + 3000 + 2 + 5);
    f->values = 0;
    run(f, "set s 0 0 2\r\nhi\r\nget s\r\n");
    assert_int_equal(f->values, 0);
}

static void
test_incremental(void **state)
{
    struct fixture *f = *state;
    static const char req[] = "set k 0 0 10\r\n0123456789\r\n";
    size_t used = 99;

    f->n = 0;
    assert_int_equal(cmd_execute(&f->cc, req, 14, &used), CMD_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(cmd_bytes_wanted(&f->cc), sizeof(req) - 1);
    assert_int_equal(cmd_execute(&f->cc, req, sizeof(req) - 1, &used),
                     CMD_DONE);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(f->n, 8);
    assert_int_equal(cmd_execute(&f->cc, req, 0, &used), CMD_NEED_MORE);
}

static void
test_meta(void **state)
{
    struct fixture *f = *state;

    expect(f, "ms k 2 F7 T0 c\r\nhi\r\n", "HD c1\r\n");
    expect(f, "mg k v f s k Oxy\r\n", "VA 2 f7 s2 kk Oxy\r\nhi\r\n");
    expect(f, "mg zz v q\r\nmg zz k\r\n", "EN kzz\r\n");
    expect(f, "ms k 1 MA q\r\n!\r\nmg k v\r\n", "VA 3\r\nhi!\r\n");
    expect(f, "ms k 1 ME\r\nx\r\n", "NS\r\n");
    expect(f, "ms k 1 C999\r\nx\r\n", "EX\r\n");
    expect(f, "md k C999\r\nmd k q\r\nmd k\r\n", "EX\r\nNF\r\n");
    expect(f, "ma c N0 J10 v\r\nma c D5 MD v\r\nma c q\r\nma c v t\r\n",
           "VA 2\r\n10\r\nVA 1\r\n5\r\nVA 1 t-1\r\n7\r\n");
    expect(f, "ms a2V5 2 b k\r\nhi\r\nget key\r\nme key\r\n",
           "HD ka2V5 b\r\nVALUE key 0 2\r\nhi\r\nEND\r\n"
           "ME key exp=-1 la=0 cas=7 fetch=no cls=1 size=64\r\n");
}

/* Meta corners settled against memcached 1.6.18. */
static void
test_meta_corners(void **state)
{
    struct fixture *f = *state;

    /* md I keeps the item (add fails, get sees it) with a new cas */
    expect(f, "set a 0 0 1\r\nx\r\nmd a I\r\nadd a 0 0 1\r\ny\r\nget a\r\n",
           "STORED\r\nHD\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    expect(f, "gets a\r\n", "VALUE a 0 1 2\r\nx\r\nEND\r\n");
    /* C0 never matches on ms/md, means "no compare" on ma */
    expect(f, "ms a 1 C0\r\ny\r\nmd a C0\r\nms zz 1 C0\r\ny\r\n",
           "EX\r\nEX\r\nNF\r\n");
    expect(f, "set n 0 0 1\r\n1\r\nma n C0 v\r\n", "STORED\r\nVA 1\r\n2\r\n");
    /* ma q: silent on an existing item, answers when it created one */
    expect(f, "ma n q\r\nma m q N0 J7\r\nmg m v\r\n", "HD\r\nVA 1\r\n7\r\n");
    /* ma applies T where it stands */
    expect(f, "ma n t T30\r\nma n T60 t\r\n", "HD t-1\r\nHD t60\r\n");
    /* mg N creates the item and says this client won */
    expect(f, "mg v N30 v t\r\nmg v v\r\n", "VA 0 t30 W\r\n\r\nVA 0\r\n\r\n");
    /* ms c returns c0 on failure; b follows the returned key */
    expect(f, "ms zz 1 c MR\r\ny\r\nmg bWs= b k O1\r\n",
           "NS c0\r\nEN kbWs= b O1\r\n");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
            cmocka_unit_test_setup_teardown(test_noreply, setup, teardown),
            cmocka_unit_test_setup_teardown(test_exptime, setup, teardown),
            cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
            cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
            cmocka_unit_test_setup_teardown(test_store_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
            cmocka_unit_test_setup_teardown(test_value_handover, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta_corners, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
