/* test_cask_ops.c - every per-key operation of the store and its edge cases:
 * set/add/replace/cas/append/prepend, incr/decr, touch, delete, expiry with a
 * fake clock, flush_all (now, delayed, across a restart), cas uniqueness and
 * monotonicity across restarts, key and value limits, the shard-count check.
 */
#include "storage/cask.h"
#include "storage/cask_internal.h"
#include "storage/cask_shard.h"

#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static int
setup(void **state)
{
    return tc_fx_setup(state, NULL);
}

static void
test_set_get_delete(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    char *v = NULL;
    uint64_t cas1 = 0, cas2 = 0;

    assert_true(tc_absent(f->c, "a"));
    assert_int_equal(
            cask_store(f->c, CASK_SET, "a", 1, "xyz", 3, 17, 0, 0, &cas1),
            CASK_OK);
    assert_int_equal(cask_get(f->c, "a", 1, &it, &v), CASK_OK);
    assert_int_equal(it.vlen, 3);
    assert_int_equal(it.flags, 17);
    assert_int_equal(it.cas, cas1);
    assert_int_equal(it.exp_abs_s, 0);
    assert_memory_equal(v, "xyz", 4); /* NUL after the value */
    free(v);
    /* metadata only */
    assert_int_equal(cask_get(f->c, "a", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.vlen, 3);

    assert_int_equal(cask_store(f->c, CASK_SET, "a", 1, "", 0, 0, 0, 0, &cas2),
                     CASK_OK);
    assert_true(cas2 > cas1);
    assert_true(tc_is(f->c, "a", ""));

    assert_int_equal(cask_delete(f->c, "a", 1, 0), CASK_OK);
    assert_true(tc_absent(f->c, "a"));
    assert_int_equal(cask_delete(f->c, "a", 1, 0), CASK_ENOTFOUND);

    /* binary-safe keys and values */
    char key[3] = {'k', '\0', 'z'};
    char val[4] = {'\0', '\r', '\n', '\0'};
    assert_int_equal(cask_store(f->c, CASK_SET, key, 3, val, 4, 0, 0, 0, NULL),
                     CASK_OK);
    assert_int_equal(cask_get(f->c, key, 3, &it, &v), CASK_OK);
    assert_memory_equal(v, val, 4);
    free(v);
    assert_int_equal(cask_get(f->c, "k", 1, &it, NULL), CASK_ENOTFOUND);
}

static void
test_add_replace_cas(void **state)
{
    struct fx *f = *state;
    uint64_t cas = 0, cas2 = 0;

    assert_int_equal(
            cask_store(f->c, CASK_REPLACE, "k", 1, "1", 1, 0, 0, 0, NULL),
            CASK_ENOTSTORED);
    assert_int_equal(cask_store(f->c, CASK_ADD, "k", 1, "1", 1, 0, 0, 0, &cas),
                     CASK_OK);
    assert_int_equal(cask_store(f->c, CASK_ADD, "k", 1, "2", 1, 0, 0, 0, NULL),
                     CASK_ENOTSTORED);
    assert_true(tc_is(f->c, "k", "1"));
    assert_int_equal(
            cask_store(f->c, CASK_REPLACE, "k", 1, "3", 1, 0, 0, 0, &cas2),
            CASK_OK);
    assert_true(tc_is(f->c, "k", "3"));
    /* cas */
    assert_int_equal(
            cask_store(f->c, CASK_SET, "k", 1, "4", 1, 0, 0, cas, NULL),
            CASK_EEXISTS);
    assert_int_equal(
            cask_store(f->c, CASK_SET, "k", 1, "4", 1, 0, 0, cas2, &cas),
            CASK_OK);
    assert_true(tc_is(f->c, "k", "4"));
    assert_int_equal(
            cask_store(f->c, CASK_SET, "nope", 4, "4", 1, 0, 0, cas, NULL),
            CASK_ENOTFOUND);
    /* delete with cas */
    assert_int_equal(cask_delete(f->c, "k", 1, cas + 1000), CASK_EEXISTS);
    assert_int_equal(cask_delete(f->c, "k", 1, cas), CASK_OK);
    /* add succeeds on an expired item */
    assert_int_equal(cask_store(f->c, CASK_SET, "e", 1, "old", 3, 0, tc_now + 5,
                                0, NULL),
                     CASK_OK);
    tc_now += 5;
    assert_int_equal(
            cask_store(f->c, CASK_ADD, "e", 1, "new", 3, 0, 0, 0, NULL),
            CASK_OK);
    assert_true(tc_is(f->c, "e", "new"));
}

static void
test_append_prepend(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    assert_int_equal(
            cask_store(f->c, CASK_APPEND, "k", 1, "x", 1, 0, 0, 0, NULL),
            CASK_ENOTSTORED);
    assert_int_equal(
            cask_store(f->c, CASK_PREPEND, "k", 1, "x", 1, 0, 0, 0, NULL),
            CASK_ENOTSTORED);
    assert_int_equal(cask_store(f->c, CASK_SET, "k", 1, "mid", 3, 9,
                                tc_now + 100, 0, NULL),
                     CASK_OK);
    assert_int_equal(
            cask_store(f->c, CASK_APPEND, "k", 1, "-end", 4, 1, 0, 0, NULL),
            CASK_OK);
    assert_int_equal(
            cask_store(f->c, CASK_PREPEND, "k", 1, "start-", 6, 2, 0, 0, NULL),
            CASK_OK);
    assert_true(tc_is(f->c, "k", "start-mid-end"));
    assert_int_equal(cask_get(f->c, "k", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.flags, 9);                /* kept */
    assert_int_equal(it.exp_abs_s, tc_now + 100); /* kept */
    /* too big after appending */
    f->o.value_max = 16;
    tc_fx_reopen(f);
    assert_int_equal(
            cask_store(f->c, CASK_APPEND, "k", 1, "1234", 4, 0, 0, 0, NULL),
            CASK_ETOOBIG);
    assert_true(tc_is(f->c, "k", "start-mid-end"));
    assert_int_equal(cask_store(f->c, CASK_SET, "k", 1, "12345678901234567", 17,
                                0, 0, 0, NULL),
                     CASK_ETOOBIG);
}

static void
test_arith(void **state)
{
    struct fx *f = *state;
    struct cask_arith a = {.incr = true, .delta = 5};
    uint64_t v = 0;
    struct cask_item it;

    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, NULL), CASK_ENOTFOUND);
    assert_int_equal(tc_set(f->c, "n", "10"), CASK_OK);
    it.arith_made = CASK_ARITH_CREATED;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(v, 15);
    assert_int_equal(it.arith_made, CASK_ARITH_REWRITTEN);
    assert_true(tc_is(f->c, "n", "15"));
    /* decr floors at 0 and pads to the old length */
    a.incr = false;
    a.delta = 6;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(v, 9);
    assert_int_equal(it.arith_made, CASK_ARITH_REWRITTEN);
    assert_true(tc_is(f->c, "n", "9 "));
    /* a longer number grows the item (memcached makes a new one) */
    assert_int_equal(tc_set(f->c, "g", "9"), CASK_OK);
    a.incr = true;
    a.delta = 1;
    assert_int_equal(cask_arith(f->c, "g", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(v, 10);
    assert_int_equal(it.arith_made, CASK_ARITH_GREW);
    assert_int_equal(cask_arith(f->c, "g", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(it.arith_made, CASK_ARITH_REWRITTEN);
    a.incr = false;
    a.delta = 6;
    a.delta = 100;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, NULL), CASK_OK);
    assert_int_equal(v, 0);
    assert_true(tc_is(f->c, "n", "0 "));
    /* the padded value is still a number */
    a.incr = true;
    a.delta = 123;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, NULL), CASK_OK);
    assert_int_equal(v, 123);
    assert_true(tc_is(f->c, "n", "123"));
    /* incr wraps at 2^64 */
    assert_int_equal(tc_set(f->c, "w", "18446744073709551615"), CASK_OK);
    a.delta = 2;
    assert_int_equal(cask_arith(f->c, "w", 1, &a, &v, NULL), CASK_OK);
    assert_int_equal(v, 1);
    assert_true(tc_is(f->c, "w", "1                   "));
    /* non-numeric */
    assert_int_equal(tc_set(f->c, "s", "abc"), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    assert_int_equal(tc_set(f->c, "s", "12a"), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    assert_int_equal(tc_set(f->c, "s", ""), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    assert_int_equal(tc_set(f->c, "s", "18446744073709551616"), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    assert_int_equal(tc_set(f->c, "s", " "), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    assert_int_equal(tc_set(f->c, "s", "-1"), CASK_OK);
    assert_int_equal(cask_arith(f->c, "s", 1, &a, &v, NULL), CASK_ENONNUMERIC);
    /* what memcached (strtoull) accepts: leading white space, a sign,
     * anything after white space following the digits */
    static const struct {
        const char *in;
        uint64_t out;
        const char *stored;
    } ok[] = {
            {" 12", 14, "14 "},   {"\t12", 14, "14 "}, {"+12", 14, "14 "},
            {"12 x", 14, "14  "}, {"-0", 2, "2 "},     {"00012", 14, "14   "},
            {"12\r", 14, "14 "},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(tc_set(f->c, "m", ok[i].in), CASK_OK);
        assert_int_equal(cask_arith(f->c, "m", 1, &a, &v, NULL), CASK_OK);
        assert_int_equal(v, ok[i].out);
        assert_true(tc_is(f->c, "m", ok[i].stored));
    }
    /* flags and expiry kept, cas changes */
    uint64_t cas;
    assert_int_equal(cask_store(f->c, CASK_SET, "f", 1, "7", 1, 33, tc_now + 50,
                                0, &cas),
                     CASK_OK);
    assert_int_equal(cask_arith(f->c, "f", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(it.flags, 33);
    assert_int_equal(it.exp_abs_s, tc_now + 50);
    assert_true(it.cas > cas);
    /* cas_in */
    a.cas_in = cas;
    assert_int_equal(cask_arith(f->c, "f", 1, &a, &v, NULL), CASK_EEXISTS);
    a.cas_in = it.cas;
    assert_int_equal(cask_arith(f->c, "f", 1, &a, &v, NULL), CASK_OK);
    /* vivify */
    struct cask_arith viv = {.incr = true,
                             .delta = 1,
                             .vivify = true,
                             .initial = 42,
                             .vivify_exp_abs_s = tc_now + 9};
    assert_int_equal(cask_arith(f->c, "v", 1, &viv, &v, &it), CASK_OK);
    assert_int_equal(v, 42);
    assert_int_equal(it.exp_abs_s, tc_now + 9);
    assert_int_equal(it.arith_made, CASK_ARITH_CREATED);
    assert_true(tc_is(f->c, "v", "42"));
    assert_int_equal(cask_arith(f->c, "v", 1, &viv, &v, &it), CASK_OK);
    assert_int_equal(v, 43);
    assert_int_equal(it.arith_made, CASK_ARITH_REWRITTEN);
}

/* cask_touch_cas touches only the item with the cas given. */
static void
test_touch_cas(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    uint64_t cas, cas2;

    assert_int_equal(cask_store(f->c, CASK_SET, "t", 1, "v1", 2, 0, 0, 0, &cas),
                     CASK_OK);
    assert_int_equal(
            cask_store(f->c, CASK_SET, "t", 1, "v2", 2, 0, 0, 0, &cas2),
            CASK_OK);
    /* the item read first was replaced: nothing written */
    assert_int_equal(
            cask_touch_cas(f->c, "t", 1, tc_now + 100, cas, &it, NULL, true),
            CASK_EEXISTS);
    assert_int_equal(cask_get(f->c, "t", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, 0);
    assert_int_equal(
            cask_touch_cas(f->c, "t", 1, tc_now + 100, cas2, &it, NULL, true),
            CASK_OK);
    assert_int_equal(it.cas, cas2);
    assert_int_equal(it.exp_abs_s, tc_now + 100);
    assert_int_equal(
            cask_touch_cas(f->c, "x", 1, tc_now, cas2, &it, NULL, true),
            CASK_EEXISTS); /* no item of that key has that cas */
    /* and it lasts */
    tc_fx_reopen(f);
    assert_int_equal(cask_get(f->c, "t", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.cas, cas2);
    assert_int_equal(it.exp_abs_s, tc_now + 100);
    /* expired meanwhile: a miss that says why */
    tc_now += 100;
    assert_int_equal(
            cask_touch_cas(f->c, "t", 1, tc_now + 5, cas2, &it, NULL, true),
            CASK_ENOTFOUND);
    assert_int_equal(it.gone, CASK_GONE_EXPIRED);
    /* deleted: the item read is gone */
    assert_int_equal(cask_store(f->c, CASK_SET, "d", 1, "v", 1, 0, 0, 0, &cas),
                     CASK_OK);
    assert_int_equal(cask_delete(f->c, "d", 1, 0), CASK_OK);
    assert_int_equal(cask_touch_cas(f->c, "d", 1, 0, cas, &it, NULL, true),
                     CASK_EEXISTS);
}

/* ma T: the new expiry goes into the arithmetic's own record when the
 * number fits the old length (one write), survives a reopen, and the
 * expiry from before is reported; a longer number keeps the old expiry. */
static void
test_arith_set_exp(void **state)
{
    struct fx *f = *state;
    struct cask_arith a = {.incr = true, .delta = 1, .set_exp = true};
    int64_t far = (int64_t)time(NULL) + 100000;
    uint64_t v = 0;
    struct cask_item it;

    a.exp_abs_s = far;
    assert_int_equal(
            cask_store(f->c, CASK_SET, "n", 1, "10", 2, 0, far - 50, 0, NULL),
            CASK_OK);
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(v, 11);
    assert_int_equal(it.arith_made, CASK_ARITH_REWRITTEN);
    assert_int_equal(it.exp_abs_s, far);
    assert_int_equal(it.arith_exp_was_abs_s, far - 50);
    tc_fx_reopen(f);
    assert_int_equal(cask_get(f->c, "n", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, far);
    /* grown: the old expiry stays */
    assert_int_equal(
            cask_store(f->c, CASK_SET, "g", 1, "9", 1, 0, far - 50, 0, NULL),
            CASK_OK);
    assert_int_equal(cask_arith(f->c, "g", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(it.arith_made, CASK_ARITH_GREW);
    assert_int_equal(it.exp_abs_s, far - 50);
    assert_int_equal(it.arith_exp_was_abs_s, far - 50);
    /* without set_exp the expiry is kept */
    a.set_exp = false;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &v, &it), CASK_OK);
    assert_int_equal(it.exp_abs_s, far);
}

static void
test_touch_and_expiry(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    char *v = NULL;
    uint64_t cas;

    assert_int_equal(cask_store(f->c, CASK_SET, "t", 1, "val", 3, 5,
                                tc_now + 10, 0, &cas),
                     CASK_OK);
    tc_now += 9;
    assert_true(tc_is(f->c, "t", "val"));
    assert_int_equal(cask_touch(f->c, "t", 1, tc_now + 100, &it, &v), CASK_OK);
    assert_int_equal(it.cas, cas); /* touch keeps the cas */
    assert_int_equal(it.exp_abs_s, tc_now + 100);
    assert_memory_equal(v, "val", 3);
    free(v);
    tc_now += 50;
    assert_true(tc_is(f->c, "t", "val"));
    /* survives a restart with its new expiry and old cas */
    tc_fx_reopen(f);
    assert_int_equal(cask_get(f->c, "t", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.cas, cas);
    assert_int_equal(it.exp_abs_s, tc_now + 50);
    tc_now += 50;
    assert_int_equal(cask_get(f->c, "t", 1, &it, NULL), CASK_ENOTFOUND);
    assert_int_equal(it.gone, CASK_GONE_EXPIRED);
    assert_int_equal(cask_touch(f->c, "t", 1, 0, &it, NULL), CASK_ENOTFOUND);
    assert_int_equal(it.gone, CASK_GONE_EXPIRED);
    assert_int_equal(cask_touch(f->c, "zz", 2, 0, &it, NULL), CASK_ENOTFOUND);
    assert_int_equal(it.gone, CASK_GONE_ABSENT);
    /* exp 1 = long past: immediately expired */
    assert_int_equal(cask_store(f->c, CASK_SET, "p", 1, "x", 1, 0, 1, 0, NULL),
                     CASK_OK);
    assert_true(tc_absent(f->c, "p"));
    assert_int_equal(cask_delete(f->c, "p", 1, 0), CASK_ENOTFOUND);
    assert_int_equal(
            cask_store(f->c, CASK_REPLACE, "p", 1, "y", 1, 0, 0, 0, NULL),
            CASK_ENOTSTORED);
}

static void
test_flush(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "b", "2"), CASK_OK);
    assert_int_equal(cask_flush(f->c, tc_now), CASK_OK);
    assert_int_equal(cask_get(f->c, "a", 1, &it, NULL), CASK_ENOTFOUND);
    assert_int_equal(it.gone, CASK_GONE_FLUSHED);
    assert_int_equal(tc_set(f->c, "c", "3"), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "a"));
    assert_true(tc_absent(f->c, "b"));
    assert_true(tc_is(f->c, "c", "3"));
    assert_int_equal(
            cask_store(f->c, CASK_ADD, "a", 1, "new", 3, 0, 0, 0, NULL),
            CASK_OK);
    assert_true(tc_is(f->c, "a", "new"));

    /* delayed flush: pending until the clock passes it */
    assert_int_equal(cask_flush(f->c, tc_now + 10), CASK_OK);
    tc_now += 5;
    assert_true(tc_is(f->c, "c", "3"));
    tc_now += 5;
    assert_true(tc_absent(f->c, "c"));
    assert_int_equal(tc_set(f->c, "d", "4"), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "c"));
    assert_true(tc_is(f->c, "d", "4"));

    /* a pending flush that comes due while the store is closed */
    assert_int_equal(cask_flush(f->c, tc_now + 10), CASK_OK);
    cask_close(&f->c);
    tc_now += 20;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_absent(f->c, "d"));
    assert_int_equal(tc_set(f->c, "e", "5"), CASK_OK);
    assert_true(tc_is(f->c, "e", "5"));

    /* a later call replaces a pending flush */
    assert_int_equal(cask_flush(f->c, tc_now + 10), CASK_OK);
    assert_int_equal(cask_flush(f->c, tc_now + 100), CASK_OK);
    tc_now += 20;
    assert_true(tc_is(f->c, "e", "5"));
    tc_now += 100;
    assert_true(tc_absent(f->c, "e"));
}

static void
test_cas_monotonic(void **state)
{
    struct fx *f = *state;
    uint64_t last = 0, cas = 0;
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 50; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", i % 7);
            assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k), "v", 1, 0,
                                        0, 0, &cas),
                             CASK_OK);
            assert_true(cas > last);
            last = cas;
        }
        /* delete what carries the highest cas, compact it away, reopen */
        for (int i = 0; i < 7; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", i);
            assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
        }
        assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
        tc_fx_reopen(f);
        assert_int_equal(tc_set(f->c, "x", "1"), CASK_OK);
        assert_int_equal(
                cask_store(f->c, CASK_SET, "y", 1, "v", 1, 0, 0, 0, &cas),
                CASK_OK);
        assert_true(cas > last);
        last = cas;
    }
}

static void
test_limits(void **state)
{
    struct fx *f = *state;
    char key[CASK_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    assert_int_equal(cask_store(f->c, CASK_SET, key, 0, "v", 1, 0, 0, 0, NULL),
                     CASK_EBADKEY);
    assert_int_equal(cask_store(f->c, CASK_SET, key, CASK_KEY_MAX + 1, "v", 1,
                                0, 0, 0, NULL),
                     CASK_EBADKEY);
    assert_int_equal(cask_store(f->c, CASK_SET, key, CASK_KEY_MAX, "v", 1, 0, 0,
                                0, NULL),
                     CASK_OK);
    assert_int_equal(cask_get(f->c, key, CASK_KEY_MAX + 1, NULL, NULL),
                     CASK_EBADKEY);
    char *big = malloc(CASK_DEFAULT_VALUE_MAX + 1);
    memset(big, 'b', CASK_DEFAULT_VALUE_MAX + 1);
    assert_int_equal(cask_store(f->c, CASK_SET, "big", 3, big,
                                CASK_DEFAULT_VALUE_MAX + 1, 0, 0, 0, NULL),
                     CASK_ETOOBIG);
    assert_int_equal(cask_store(f->c, CASK_SET, "big", 3, big,
                                CASK_DEFAULT_VALUE_MAX, 0, 0, 0, NULL),
                     CASK_OK);
    struct cask_item it;
    char *v = NULL;
    assert_int_equal(cask_get(f->c, "big", 3, &it, &v), CASK_OK);
    assert_int_equal(it.vlen, CASK_DEFAULT_VALUE_MAX);
    assert_memory_equal(v, big, CASK_DEFAULT_VALUE_MAX);
    free(v);
    free(big);
    assert_string_equal(cask_strerror(CASK_ENOTFOUND), "not found");
    assert_non_null(cask_strerror(12345678));
}

static void
test_big_values(void **state)
{
    struct fx *f = *state;
    /* 128 MiB must work (with value_max raised), across a restart */
    size_t n = 128u << 20;
    f->o.value_max = (uint32_t)n;
    f->o.segment_size = 64u << 20;
    tc_fx_reopen(f);
    char *big = malloc(n);
    for (size_t i = 0; i < n; i += 4096) {
        big[i] = (char)(i >> 12);
    }
    assert_int_equal(tc_set(f->c, "before", "1"), CASK_OK);
    assert_int_equal(
            cask_store(f->c, CASK_SET, "huge", 4, big, n, 0, 0, 0, NULL),
            CASK_OK);
    assert_int_equal(tc_set(f->c, "after", "2"), CASK_OK);
    tc_fx_reopen(f);
    char *v = NULL;
    struct cask_item it;
    assert_int_equal(cask_get(f->c, "huge", 4, &it, &v), CASK_OK);
    assert_int_equal(it.vlen, n);
    assert_memory_equal(v, big, n);
    free(v);
    free(big);
    assert_true(tc_is(f->c, "before", "1"));
    assert_true(tc_is(f->c, "after", "2"));
}

static void
test_smaller_value_max_reads_old_records(void **state)
{
    struct fx *f = *state;
    char big[1000];
    memset(big, 'q', sizeof(big));
    assert_int_equal(cask_store(f->c, CASK_SET, "big", 3, big, sizeof(big), 0,
                                0, 0, NULL),
                     CASK_OK);
    assert_int_equal(tc_set(f->c, "small", "s"), CASK_OK);
    f->o.value_max = 100;
    tc_fx_reopen(f);
    struct cask_item it;
    char *v = NULL;
    assert_int_equal(cask_get(f->c, "big", 3, &it, &v), CASK_OK);
    assert_int_equal(it.vlen, sizeof(big));
    free(v);
    assert_true(tc_is(f->c, "small", "s"));
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.bytes_truncated, 0);
    assert_int_equal(cask_store(f->c, CASK_SET, "big2", 4, big, sizeof(big), 0,
                                0, 0, NULL),
                     CASK_ETOOBIG);
}

static void
test_shard_count_recorded(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    cask_close(&f->c);
    struct cask_options o = f->o;
    o.shards = 8;
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &o), CASK_EINVAL);
    assert_null(f->c);
    assert_non_null(strstr(tc_log, "shards"));
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "a", "1"));
    /* without the state file the shard directories still decide */
    cask_close(&f->c);
    char state_path[1100];
    snprintf(state_path, sizeof(state_path), "%s/state", f->dir);
    assert_int_equal(unlink(state_path), 0);
    assert_int_equal(cask_open(&f->c, f->dir, &o), CASK_EINVAL);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    /* the flush point went with the file: what was on disk counts as
     * flushed (test_cask_trust.c) */
    assert_true(tc_absent(f->c, "a"));
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(cask_shards(f->c), 4);
    /* missing parents are created; a file in the way is an error */
    char nested[1200];
    snprintf(nested, sizeof(nested), "%s/a/b/c", f->dir);
    struct cask *c2 = NULL;
    assert_int_equal(cask_open(&c2, nested, &f->o), CASK_OK);
    cask_close(&c2);
    snprintf(nested, sizeof(nested), "%s/state/x", f->dir);
    assert_int_equal(cask_open(&c2, nested, &f->o), ENOTDIR);
    assert_null(c2);
    assert_true(cask_shard_of(f->c, "a", 1) < 4);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.live_keys, 1);
    assert_int_equal(cask_stats(f->c, 4, &st), CASK_EINVAL);
}

/* Keys that share one hash (forced through the shard API): the keydir
 * keeps no keys, so a get that takes the first candidate must notice
 * another key's record and look again, and a miss, a deleted key or an
 * expired first candidate must not hide the others or hand out their
 * values. */
static void
test_shared_hash(void **state)
{
    struct fx *f = *state;
    struct cask_shard *sh = f->c->shards[0];
    const uint64_t h = 0x5eed;
    enum { N = 40 };
    char key[16], val[16];
    struct cask_item it;
    char *v;

    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "key%d", i);
        int vl = snprintf(val, sizeof(val), "val%d", i);
        int64_t exp = i == 0 ? tc_now + 10 : 0; /* the first one expires */
        assert_int_equal(cask_shard_store(sh, h, CASK_SET, key, (size_t)kl, val,
                                          (size_t)vl, (uint32_t)i, exp, 0,
                                          NULL),
                         CASK_OK);
    }
    for (int i = 0; i < N; i += 3) {
        int kl = snprintf(key, sizeof(key), "key%d", i);
        if (i != 0) {
            assert_int_equal(cask_shard_delete(sh, h, key, (size_t)kl, 0, NULL),
                             CASK_OK);
        }
    }
    tc_now += 20;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int kl = snprintf(key, sizeof(key), "key%d", i);
            int vl = snprintf(val, sizeof(val), "val%d", i);
            v = NULL;
            int rc = cask_shard_get(sh, h, key, (size_t)kl, &it, &v, true);
            if (i % 3 == 0) {
                assert_int_equal(rc, CASK_ENOTFOUND);
                assert_null(v);
                continue;
            }
            assert_int_equal(rc, CASK_OK);
            assert_int_equal(it.vlen, vl);
            assert_int_equal(it.flags, i);
            assert_memory_equal(v, val, (size_t)vl);
            free(v);
        }
        /* absent keys with the same hash, with and without a value read */
        v = NULL;
        assert_int_equal(cask_shard_get(sh, h, "nokey", 5, &it, &v, true),
                         CASK_ENOTFOUND);
        assert_null(v);
        assert_int_equal(cask_shard_get(sh, h, "nokey", 5, &it, NULL, true),
                         CASK_ENOTFOUND);
        /* and again once the remembered key checks are cold: a new
         * value for every other live key moves its record */
        for (int i = 1; i < N; i += 6) {
            int kl = snprintf(key, sizeof(key), "key%d", i);
            int vl = snprintf(val, sizeof(val), "val%d", i);
            assert_int_equal(cask_shard_store(sh, h, CASK_SET, key, (size_t)kl,
                                              val, (size_t)vl, (uint32_t)i, 0,
                                              0, NULL),
                             CASK_OK);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_set_get_delete, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_add_replace_cas, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_append_prepend, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_arith, setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_arith_set_exp, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_touch_and_expiry, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_touch_cas, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_flush, setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_cas_monotonic, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_big_values, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(
                    test_smaller_value_max_reads_old_records, setup,
                    tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_shard_count_recorded, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_shared_hash, setup,
                                            tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
