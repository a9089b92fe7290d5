/* test_cask_atime.c - items' last-access time (issue 11): the 16-bit stamp
 * of cask_atime.h on its own (precision, the crawler's aging over months),
 * and through the store: which operations set it (memcached 1.6.18's
 * it->time), what a walk and a restart report, the crawler keeping stamps
 * readable past the fine form's cycle.
 */
#include "storage/cask_atime.h"

#include "storage/cask.h"
#include "storage/cask_crawl.h"
#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_walk.h"
#include "tests/unit/test_cask_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T0 INT64_C(1700000000)

static int
setup(void **state)
{
    return tc_fx_setup(state, NULL);
}

static int64_t
age_of(uint16_t at, int64_t now)
{
    return now - cask_at_time(at, now);
}

/* Exact to the second while fine; within half a unit once coarse. */
static void
test_stamp_precision(void **state)
{
    (void)state;
    assert_true(sizeof(struct cask_kd_entry) == 28); /* no bigger entry */
    for (int64_t t = T0; t < T0 + 70000; t += 997) {
        uint16_t at = cask_at_stamp(t);
        for (int64_t age = 0; age < CASK_AT_FINE_S; age += 613) {
            assert_int_equal(age_of(at, t + age), age);
            assert_int_equal(cask_at_age(at, t + age), at); /* left fine */
        }
        for (int64_t age = CASK_AT_FINE_S; age < 9 * 3600; age += 701) {
            uint16_t c = cask_at_age(at, t + age);
            assert_true((c & CASK_AT_COARSE) != 0);
            int64_t err = age_of(c, t + age) - age;
            assert_true(err >= -CASK_AT_UNIT_S / 2 &&
                        err <= CASK_AT_UNIT_S / 2);
        }
    }
}

/* A crawler pass every `every` seconds for 300 days after one access:
 * the age read stays right (to the coarse precision) up to the cap, then
 * stays between the cap and the cap plus its slack. */
static void
test_stamp_aging(void **state)
{
    (void)state;
    const int64_t every = 3000;
    for (int64_t t = T0; t < T0 + 5000; t += 1237) {
        uint16_t at = cask_at_stamp(t);
        for (int64_t now = t; now < t + 300 * 86400; now += every) {
            at = cask_at_age(at, now);
            int64_t age = now - t, got = age_of(at, now);
            if (age < CASK_AT_FINE_S) {
                assert_int_equal(got, age);
            } else if (age <= CASK_AT_CAP_S) {
                assert_true(got >= age - CASK_AT_UNIT_S &&
                            got <= age + CASK_AT_UNIT_S);
            } else {
                assert_true(got >= CASK_AT_CAP_S - CASK_AT_UNIT_S &&
                            got <= CASK_AT_CAP_S + CASK_AT_SLACK_S +
                                            CASK_AT_UNIT_S);
            }
        }
    }
}

static int64_t
atime_of(struct cask *c, const char *k)
{
    struct cask_item it;
    assert_int_equal(cask_get(c, k, strlen(k), &it, NULL), CASK_OK);
    return it.atime_s;
}

/* Get the value (a read) and return the access time it reported. */
static int64_t
read_of(struct cask *c, const char *k)
{
    struct cask_item it;
    char *v = NULL;
    assert_int_equal(cask_get(c, k, strlen(k), &it, &v), CASK_OK);
    free(v);
    return it.atime_s;
}

/* memcached's it->time: set by a write; the first read only marks the
 * item fetched, the next ones move the time; a read reports the time
 * before it; metadata lookups and u-style reads leave it. */
static void
test_which_ops_set_it(void **state)
{
    struct fx *f = *state;
    struct cask_item it;

    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(atime_of(f->c, "a"), T0);
    tc_now += 5;
    assert_int_equal(read_of(f->c, "a"), T0); /* first read: fetched only */
    tc_now += 5;
    assert_int_equal(read_of(f->c, "a"), T0); /* reports before its bump */
    assert_int_equal(atime_of(f->c, "a"), T0 + 10);
    tc_now += 5;
    /* a read that asks not to count (mg u) changes nothing */
    assert_int_equal(cask_get_fetch(f->c, "a", 1, &it, NULL, false), CASK_OK);
    assert_int_equal(it.atime_s, T0 + 10);
    assert_int_equal(atime_of(f->c, "a"), T0 + 10);
    /* so is a touch, unless it says otherwise (mg T u) */
    assert_int_equal(cask_touch_fetch(f->c, "a", 1, 0, &it, NULL, false),
                     CASK_OK);
    assert_int_equal(atime_of(f->c, "a"), T0 + 10);
    assert_int_equal(cask_touch(f->c, "a", 1, 0, &it, NULL), CASK_OK);
    assert_int_equal(it.atime_s, T0 + 10);
    assert_int_equal(atime_of(f->c, "a"), T0 + 15);

    /* every write starts over: time now, not fetched */
    tc_now += 5;
    assert_int_equal(
            cask_store(f->c, CASK_APPEND, "a", 1, "2", 1, 0, 0, 0, NULL),
            CASK_OK);
    assert_int_equal(atime_of(f->c, "a"), T0 + 20);
    tc_now += 5;
    assert_int_equal(cask_touch(f->c, "a", 1, 0, &it, NULL), CASK_OK);
    assert_false(it.fetched);
    assert_int_equal(atime_of(f->c, "a"), T0 + 20); /* first: fetched only */
    struct cask_arith ar = {.incr = true, .delta = 1};
    uint64_t v;
    tc_now += 5;
    assert_int_equal(cask_arith(f->c, "a", 1, &ar, &v, &it), CASK_OK);
    assert_int_equal(it.atime_s, T0 + 30);
    /* a number that fits is rewritten in place (memcached): still fetched */
    assert_true(it.fetched);
    /* one that grows is a new item */
    ar.delta = 100;
    assert_int_equal(cask_arith(f->c, "a", 1, &ar, &v, &it), CASK_OK);
    assert_int_equal(v, 113);
    assert_false(it.fetched);
}

struct seen {
    int64_t atime_s;
    int n;
};

static void
on_walk(void *arg, const struct cask_walk_entry *e)
{
    struct seen *s = arg;
    s->atime_s = e->atime_s;
    s->n++;
}

/* A walk (metadump) reports it; after a restart it is the restart's time
 * (it is not on disk). */
static void
test_walk_and_restart(void **state)
{
    struct fx *f = *state;
    struct cask_walk_pos pos = {0};
    struct seen s = {0};

    assert_int_equal(tc_set(f->c, "w", "1"), CASK_OK);
    tc_now += 7;
    while (cask_walk(f->c, &pos, 100, on_walk, &s)) {
    }
    assert_int_equal(s.n, 1);
    assert_int_equal(s.atime_s, T0);
    tc_now += 100;
    tc_fx_reopen(f);
    assert_int_equal(atime_of(f->c, "w"), T0 + 107);
}

/* Past the fine form's 9.1 h cycle an item's age still reads right: the
 * crawler made its stamp coarse on the way. */
static void
test_crawler_keeps_stamps(void **state)
{
    struct fx *f = *state;

    assert_int_equal(tc_set(f->c, "old", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "new", "1"), CASK_OK);
    tc_now += 5 * 3600;
    for (unsigned i = 0; i < cask_shards(f->c); i++) {
        cask_shard_crawl(f->c->shards[i]);
    }
    assert_int_equal(tc_set(f->c, "new", "2"), CASK_OK);
    tc_now += 8 * 3600;
    int64_t age = tc_now - atime_of(f->c, "old");
    assert_true(age >= 13 * 3600 - CASK_AT_UNIT_S / 2 &&
                age <= 13 * 3600 + CASK_AT_UNIT_S / 2);
    assert_int_equal(tc_now - atime_of(f->c, "new"), 8 * 3600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_stamp_precision),
            cmocka_unit_test(test_stamp_aging),
            cmocka_unit_test_setup_teardown(test_which_ops_set_it, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_walk_and_restart, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_crawler_keeps_stamps, setup,
                                            tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
