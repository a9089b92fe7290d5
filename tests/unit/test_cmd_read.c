/* test_cmd_read.c - cmocka tests for server/cmd_read.c through cmd.c and
 * cmd_bin.c, over the fake store with every value cold (fake_cask_cold):
 * the reads a parked request sends off (its own, a multi-get's next keys,
 * the plain gets pipelined after it and no further than a write), the
 * order and content of the replies once the reads are completed by hand,
 * and a get-and-touch (or touch) that reads first and touches the item it
 * read (once, again after a replace). No threads: the test plays the I/O pool.
 */
#include "server/cmd_read.h"

#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "storage/cask.h"
#include "tests/golden/fake_cask.h"
#include "tests/unit/cmd_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_S CMD_FIXTURE_NOW_S
#define QMAX  64

struct fixture {
    struct cmd_fixture fx;
    struct cask_aio_req *q[QMAX]; /* reads submitted, not completed */
    unsigned nq;
    unsigned submitted;
    unsigned resumed; /* cmd_read_complete named the connection */
};

static void
submit_fn(void *arg, struct cask_aio_req *r)
{
    struct fixture *f = arg;

    assert_true(f->nq < QMAX);
    f->q[f->nq++] = r;
    f->submitted++;
}

/* Run the submitted reads as an I/O thread would, then hand them back. */
static void
complete_all(struct fixture *f)
{
    for (unsigned i = 0; i < f->nq; i++) {
        struct cask_aio_req *r = f->q[i];
        r->val = NULL;
        r->rc = cask_get_fetch(f->fx.store, r->key, r->klen, &r->it,
                               r->head ? NULL : &r->val, r->fetch);
    }
    for (unsigned i = 0; i < f->nq; i++) {
        if (cmd_read_complete(f->q[i]) != NULL) {
            f->resumed++;
        }
    }
    f->nq = 0;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    cmd_fixture_init(&f->fx);
    f->fx.cc.rd.submit = submit_fn;
    f->fx.cc.rd.submit_arg = f;
    f->fx.cc.rd.owner = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    complete_all(f); /* orphans are freed as they come back */
    cmd_conn_deinit(&f->fx.cc);
    complete_all(f);
    fake_cask_cold = false;
    cmd_fixture_deinit(&f->fx);
    free(f);
    return 0;
}

static void
put(struct fixture *f, const char *k, const char *v)
{
    assert_int_equal(cask_store(f->fx.store, CASK_SET, k, strlen(k), v,
                                strlen(v), 0, 0, 0, NULL),
                     CASK_OK);
}

/* Feed in[] to cmd_execute (bin: cmd_bin_execute) until it is consumed,
 * completing the reads whenever a request parks. Returns the parks. */
static unsigned
run(struct fixture *f, const char *in, size_t len, bool bin)
{
    size_t pos = 0;
    unsigned parks = 0;

    while (pos < len) {
        size_t used = 0;
        enum cmd_status st =
                bin ? cmd_bin_execute(&f->fx.cc, &f->fx.bin, in + pos,
                                      len - pos, &used)
                    : cmd_execute(&f->fx.cc, in + pos, len - pos, &used);
        if (st == CMD_PARK) {
            assert_int_equal(used, 0);
            assert_true(f->nq > 0);
            parks++;
            complete_all(f);
            continue;
        }
        assert_int_equal(st, CMD_DONE);
        assert_true(used > 0);
        pos += used;
    }
    return parks;
}

static void
expect_out(struct fixture *f, const char *want)
{
    f->fx.out[f->fx.n] = '\0';
    assert_string_equal(f->fx.out, want);
    f->fx.n = 0;
}

/* A parked get starts the reads of the gets pipelined after it; the
 * replies come in order, with no read twice. */
static void
test_pipelined_lookahead(void **state)
{
    struct fixture *f = *state;
    const char in[] = "get a\r\nget b c\r\ngets d\r\nget a\r\n";
    size_t used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    put(f, "c", "C");
    put(f, "d", "D");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    /* a, then b c d and a again for the later requests */
    assert_int_equal(f->nq, 5);
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 0);
    assert_int_equal(f->submitted, 5);
    assert_int_equal(f->resumed, 1);
    expect_out(f, "VALUE a 0 1\r\nA\r\nEND\r\n"
                  "VALUE b 0 1\r\nB\r\nVALUE c 0 1\r\nC\r\nEND\r\n"
                  "VALUE d 0 1 4\r\nD\r\nEND\r\n"
                  "VALUE a 0 1\r\nA\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.cmd_get, 5);
    assert_int_equal(f->fx.ctr.get_hits, 5);
    assert_int_equal(f->fx.cc.rd.n, 0);
}

/* A parked mg with v reads ahead for the mg with v and the gets pipelined
 * after it, the header and key only for an mg without v, passes mn, and
 * the replies (flags k, f, c, s, t, q) come in order; mg u reads ahead
 * without counting a read. */
static void
test_mg_lookahead(void **state)
{
    struct fixture *f = *state;
    const char in[] = "mg a v\r\nmg b v s f\r\nmn\r\nmg c s\r\nget d\r\n"
                      "mg e v k c t\r\nmg nosuch v q\r\nmg b v u\r\nmn\r\n";
    size_t used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    put(f, "c", "C");
    put(f, "d", "D");
    put(f, "e", "E");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    /* a, then b, c (its head), d, e, nosuch and b (u) */
    assert_int_equal(f->nq, 7);
    assert_memory_equal(f->q[1]->key, "b", 1);
    assert_true(f->q[1]->fetch);
    assert_false(f->q[1]->head);
    assert_memory_equal(f->q[2]->key, "c", 1);
    assert_true(f->q[2]->head);
    assert_memory_equal(f->q[3]->key, "d", 1);
    assert_memory_equal(f->q[6]->key, "b", 1);
    assert_false(f->q[6]->fetch);
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 0);
    assert_int_equal(f->submitted, 7);
    assert_int_equal(f->resumed, 1);
    expect_out(f, "VA 1\r\nA\r\n"
                  "VA 1 s1 f0\r\nB\r\n"
                  "MN\r\n"
                  "HD s1\r\n"
                  "VALUE d 0 1\r\nD\r\nEND\r\n"
                  "VA 1 ke c5 t-1\r\nE\r\n"
                  "VA 1\r\nB\r\n"
                  "MN\r\n");
    assert_int_equal(f->fx.ctr.get_hits, 6);
    assert_int_equal(f->fx.cc.rd.n, 0);
}

/* A parked get reads ahead for mg with v too (a base64 key decoded). */
static void
test_get_then_mg_lookahead(void **state)
{
    struct fixture *f = *state;
    const char in[] = "get a\r\nmg Yg== b v\r\nget a\r\n";
    size_t used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 3);
    assert_int_equal(f->q[1]->klen, 1);
    assert_memory_equal(f->q[1]->key, "b", 1);
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 0);
    assert_int_equal(f->submitted, 3);
    f->fx.out[f->fx.n] = '\0';
    assert_non_null(strstr(f->fx.out, "\r\nB\r\n"));
    f->fx.n = 0;
}

/* The look-ahead of mg stops at an mg that changes the item (T, N) or
 * reports its fetched bit or access time (h, l), and a parked mg of that
 * kind reads nothing ahead. */
static void
test_mg_lookahead_stops(void **state)
{
    struct fixture *f = *state;
    static const char *const stops[] = {"mg b v T30\r\n", "mg b v N30\r\n",
                                        "mg b v h\r\n", "mg b l\r\n"};

    put(f, "a", "A");
    put(f, "b", "B");
    put(f, "c", "C");
    fake_cask_cold = true;
    for (unsigned i = 0; i < 4; i++) {
        char in[128];
        size_t used = 0;
        int len = snprintf(in, sizeof(in), "mg a v\r\n%smg c v\r\n", stops[i]);
        assert_int_equal(cmd_execute(&f->fx.cc, in, (size_t)len, &used),
                         CMD_PARK);
        assert_int_equal(f->nq, 1); /* a only */
        complete_all(f);
        (void)run(f, in, (size_t)len, false);
        f->fx.n = 0;
        cmd_read_reset(&f->fx.cc.rd);
    }
    {
        const char in[] = "mg a v T30\r\nmg c v\r\n";
        size_t used = 0;
        assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                         CMD_PARK);
        assert_int_equal(f->nq, 1);
        complete_all(f);
        (void)run(f, in, sizeof(in) - 1, false);
    }
}

/* The look-ahead stops at a write: the get after it reads after it. */
static void
test_lookahead_stops_at_write(void **state)
{
    struct fixture *f = *state;
    const char in[] = "get a\r\nget b\r\nset b 0 0 1\r\nX\r\nget b\r\n";
    size_t used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 2); /* a and the first get b only */
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 1);
    expect_out(f, "VALUE a 0 1\r\nA\r\nEND\r\nVALUE b 0 1\r\nB\r\nEND\r\n"
                  "STORED\r\nVALUE b 0 1\r\nX\r\nEND\r\n");
}

/* Reads read ahead for requests that never come (other bytes fed) are
 * dropped with the input they were for. */
static void
test_lookahead_dropped(void **state)
{
    struct fixture *f = *state;
    const char in[] = "get a\r\nget b\r\nget c\r\n";
    size_t used = 0;

    put(f, "a", "A");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 3);
    complete_all(f);
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_DONE);
    assert_int_equal(used, 7);
    assert_int_equal(f->fx.cc.rd.n, 2); /* b and c, misses, still ahead */
    /* the connection passes them: a request that consumes them all */
    cmd_read_consumed(&f->fx.cc.rd, 14);
    assert_int_equal(f->fx.cc.rd.n, 0);
}

/* gat reads first (not counted as a read), then touches the item it read. */
static void
test_gat_parks_then_touches(void **state)
{
    struct fixture *f = *state;
    const char in[] = "gat 100 a nosuch b\r\n";
    struct cask_item it;
    size_t used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 3); /* a, and the next keys read ahead */
    for (unsigned i = 0; i < f->nq; i++) {
        assert_false(f->q[i]->fetch);
    }
    assert_int_equal(cask_get(f->fx.store, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, 0); /* nothing touched yet */
    assert_int_equal(f->fx.ctr.cmd_touch, 0);
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 0);
    expect_out(f, "VALUE a 0 1\r\nA\r\nVALUE b 0 1\r\nB\r\nEND\r\n");
    assert_int_equal(cask_get(f->fx.store, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, NOW_S + 100);
    assert_int_equal(cask_get(f->fx.store, "b", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, NOW_S + 100);
    assert_int_equal(f->fx.ctr.cmd_touch, 3);
    assert_int_equal(f->fx.ctr.touch_hits, 2);
    assert_int_equal(f->fx.ctr.touch_misses, 1);
}

/* The key is replaced between the read and the touch: the new item is
 * read and touched; the old one's value is never sent. */
static void
test_gat_item_replaced(void **state)
{
    struct fixture *f = *state;
    const char in[] = "gats 100 a\r\n";
    struct cask_item it;
    uint64_t cas2;
    size_t used = 0;
    char want[64];

    put(f, "a", "old");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    complete_all(f); /* "old" read */
    assert_int_equal(
            cask_store(f->fx.store, CASK_SET, "a", 1, "new", 3, 7, 0, 0, &cas2),
            CASK_OK);
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK); /* the touch missed it: read again */
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 1);
    snprintf(want, sizeof(want), "VALUE a 7 3 %llu\r\nnew\r\nEND\r\n",
             (unsigned long long)cas2);
    expect_out(f, want);
    assert_int_equal(cask_get(f->fx.store, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.cas, cas2);
    assert_int_equal(it.exp_abs_s, NOW_S + 100);
    assert_int_equal(f->fx.ctr.cmd_touch, 1);
}

/* mg with T and v parks like gat; the TTL it reports is the new one. */
static void
test_mg_T_parks(void **state)
{
    struct fixture *f = *state;
    const char in[] = "mg a v T50 t\r\n";
    struct cask_item it;

    put(f, "a", "A");
    fake_cask_cold = true;
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 1);
    expect_out(f, "VA 1 t50\r\nA\r\n");
    assert_int_equal(cask_get(f->fx.store, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, NOW_S + 50);
}

/* touch reads its record's header and key off the thread (its cas,
 * without a key read on the thread; no value), and touches the item
 * read. */
static void
test_touch_parks(void **state)
{
    struct fixture *f = *state;
    const char in[] = "touch a 100\r\ntouch nosuch 100\r\n";
    struct cask_item it;
    size_t used = 0;

    put(f, "a", "A");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 1);
    assert_true(f->q[0]->head);
    assert_false(f->q[0]->fetch);
    struct cask_aio_req *r = f->q[0];
    complete_all(f);
    assert_null(r->val);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 0);
    expect_out(f, "TOUCHED\r\nNOT_FOUND\r\n");
    assert_int_equal(cask_get(f->fx.store, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, NOW_S + 100);
    assert_int_equal(f->fx.ctr.cmd_touch, 2);
    assert_int_equal(f->fx.ctr.touch_hits, 1);
    assert_int_equal(f->fx.ctr.touch_misses, 1);
}

/* mg without v (with T or not) parks on a read of its record's header
 * and key, and answers from the item it read. */
static void
test_mg_head_parks(void **state)
{
    struct fixture *f = *state;
    const char in[] = "mg a s c h\r\nmg a T30 t\r\nmg a h\r\n";
    size_t used = 0;

    put(f, "a", "A");
    fake_cask_cold = true;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 1); /* h: no look ahead */
    assert_true(f->q[0]->head);
    assert_true(f->q[0]->fetch);
    complete_all(f);
    assert_int_equal(run(f, in, sizeof(in) - 1, false), 2);
    expect_out(f, "HD s1 c1 h0\r\nHD t30\r\nHD h1\r\n");
    assert_int_equal(f->fx.ctr.get_hits, 2);
    assert_int_equal(f->fx.ctr.touch_hits, 1);
}

static size_t
bin_get(char *p, uint8_t op, const char *key, uint32_t opaque)
{
    size_t klen = strlen(key);

    memset(p, 0, PROTO_BIN_HDR_LEN);
    p[0] = (char)PROTO_BIN_REQ;
    p[1] = (char)op;
    proto_bin_put16((unsigned char *)p + 2, (uint16_t)klen);
    proto_bin_put32((unsigned char *)p + 8, (uint32_t)klen);
    memcpy(p + 12, &opaque, 4);
    memcpy(p + PROTO_BIN_HDR_LEN, key, klen);
    return PROTO_BIN_HDR_LEN + klen;
}

/* Binary: a parked get reads ahead for getq/getk after it, up to a noop. */
static void
test_binary_lookahead(void **state)
{
    struct fixture *f = *state;
    char in[256];
    size_t len = 0, used = 0;

    put(f, "a", "A");
    put(f, "b", "B");
    put(f, "c", "C");
    len += bin_get(in + len, PROTO_BIN_GET, "a", 1);
    len += bin_get(in + len, PROTO_BIN_GETQ, "b", 2);
    len += bin_get(in + len, PROTO_BIN_NOOP, "", 3);
    len += bin_get(in + len, PROTO_BIN_GETK, "c", 4);
    fake_cask_cold = true;
    assert_int_equal(cmd_bin_execute(&f->fx.cc, &f->fx.bin, in, len, &used),
                     CMD_PARK);
    assert_int_equal(f->nq, 2); /* a, b: the noop stops the look */
    complete_all(f);
    assert_int_equal(run(f, in, len, true), 1);
    assert_int_equal(f->submitted, 3);
    /* four replies, in order: opaques 1 2 3 4 */
    size_t pos = 0;
    for (uint32_t want = 1; want <= 4; want++) {
        uint32_t opaque, blen;
        assert_true(pos + PROTO_BIN_HDR_LEN <= f->fx.n);
        memcpy(&opaque, f->fx.out + pos + 12, 4);
        assert_int_equal(opaque, want);
        blen = proto_bin_get32((unsigned char *)f->fx.out + pos + 8);
        pos += PROTO_BIN_HDR_LEN + blen;
    }
    assert_int_equal(pos, f->fx.n);
}

/* A reader with its own resume (UDP) is resumed by cmd_read_complete. */
static unsigned resumed_by_fn;

static void
resume_fn(void *owner)
{
    assert_non_null(owner);
    resumed_by_fn++;
}

static void
test_resume_callback(void **state)
{
    struct fixture *f = *state;
    const char in[] = "get a\r\n";
    size_t used = 0;

    put(f, "a", "A");
    fake_cask_cold = true;
    f->fx.cc.rd.resume = resume_fn;
    resumed_by_fn = 0;
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_PARK);
    complete_all(f);
    assert_int_equal(resumed_by_fn, 1);
    assert_int_equal(f->resumed, 0); /* returned NULL: nothing to do */
    assert_int_equal(cmd_execute(&f->fx.cc, in, sizeof(in) - 1, &used),
                     CMD_DONE);
    expect_out(f, "VALUE a 0 1\r\nA\r\nEND\r\n");
}

/* A small value read on the thread is borrowed, and sent all the same. */
static void
test_small_value_borrowed(void **state)
{
    struct fixture *f = *state;
    struct cask_item it;
    char *val = NULL;
    char big[CMD_READ_BORROW_MAX + 2];

    put(f, "s", "small");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put(f, "l", big);
    assert_int_equal(cmd_read_get(&f->fx.cc, "s", 1, &it, &val, true), CASK_OK);
    assert_true(cmd_read_borrowed(val));
    assert_memory_equal(val, "small", 5);
    cmd_read_free(val);
    assert_int_equal(cmd_read_get(&f->fx.cc, "l", 1, &it, &val, true), CASK_OK);
    assert_false(cmd_read_borrowed(val)); /* a sink may take it over */
    cmd_read_free(val);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_pipelined_lookahead, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lookahead_stops_at_write,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_mg_lookahead, setup, teardown),
            cmocka_unit_test_setup_teardown(test_get_then_mg_lookahead, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_mg_lookahead_stops, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lookahead_dropped, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_gat_parks_then_touches, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_gat_item_replaced, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_mg_T_parks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch_parks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mg_head_parks, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_binary_lookahead, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_resume_callback, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_small_value_borrowed, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
