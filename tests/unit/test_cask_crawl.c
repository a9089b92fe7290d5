/* test_cask_crawl.c - the crawler (cask_crawl.c) skipping passes that could
 * drop nothing (issue 8): a shard whose keys have no expiry, under an
 * unchanged flush point, is walked again only once its access stamps are
 * due for aging; a key given an expiry (set or touch) or a new flush point
 * makes the next pass walk and reclaim as before.
 */
#include "storage/cask.h"
#include "storage/cask_crawl.h"
#include "storage/cask_internal.h"
#include "storage/cask_shard.h"
#include "tests/unit/test_cask_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS 200

static void
tune(struct cask_options *o)
{
    o->crawl_background = false; /* only the passes the test runs */
}

static int
setup(void **state)
{
    return tc_fx_setup(state, tune);
}

/* One pass over every shard now (the once-a-second limit is the
 * maintenance thread's pacing, not what is tested here). */
static void
crawl_all(struct cask *c)
{
    for (unsigned i = 0; i < cask_shards(c); i++) {
        c->shards[i]->crawl_after_ms = 0;
        cask_shard_crawl(c->shards[i]);
    }
}

/* How many shards started a walk at store time t. */
static unsigned
walked_at(struct cask *c, int64_t t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < cask_shards(c); i++) {
        n += c->shards[i]->crawl_full_s == t;
    }
    return n;
}

static uint64_t
stat_of(struct cask *c, bool keys)
{
    struct cask_stats st;
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    return keys ? st.live_keys : st.reclaimed;
}

static void
set_plain_keys(struct cask *c)
{
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "plain:%d", i);
        assert_int_equal(tc_set(c, k, "v"), CASK_OK);
    }
}

/* Keys without expiry: the first pass walks, the next ones within a
 * minute do not, the one after a minute does (to age stamps). */
static void
test_no_expiry_walks_once_a_minute(void **state)
{
    struct fx *f = *state;
    int64_t t0 = tc_now;

    set_plain_keys(f->c);
    crawl_all(f->c);
    assert_int_equal(walked_at(f->c, t0), cask_shards(f->c));
    tc_now += 30;
    crawl_all(f->c);
    assert_int_equal(walked_at(f->c, t0), cask_shards(f->c));
    tc_now += 31;
    crawl_all(f->c);
    assert_int_equal(walked_at(f->c, tc_now), cask_shards(f->c));
    assert_int_equal(stat_of(f->c, true), NKEYS);
    assert_int_equal(stat_of(f->c, false), 0);
}

/* After idle passes, a key set with an expiry is reclaimed by the next
 * pass once expired. */
static void
test_expiring_set_after_idle(void **state)
{
    struct fx *f = *state;

    set_plain_keys(f->c);
    crawl_all(f->c);
    tc_now += 2;
    crawl_all(f->c); /* idle */
    assert_int_equal(cask_store(f->c, CASK_SET, "ttl", 3, "v", 1, 0, tc_now + 5,
                                0, NULL),
                     CASK_OK);
    tc_now += 10;
    crawl_all(f->c);
    assert_int_equal(stat_of(f->c, false), 1);
    assert_int_equal(stat_of(f->c, true), NKEYS);
    assert_true(tc_absent(f->c, "ttl"));
}

/* A touch that gives a plain key an expiry counts the same. */
static void
test_touch_after_idle(void **state)
{
    struct fx *f = *state;
    struct cask_item it;

    set_plain_keys(f->c);
    crawl_all(f->c);
    tc_now += 2;
    crawl_all(f->c); /* idle */
    assert_int_equal(cask_touch(f->c, "plain:7", 7, tc_now + 5, &it, NULL),
                     CASK_OK);
    tc_now += 10;
    crawl_all(f->c);
    assert_int_equal(stat_of(f->c, false), 1);
    assert_int_equal(stat_of(f->c, true), NKEYS - 1);
}

/* A flush_all after idle passes: the next pass drops every key. */
static void
test_flush_after_idle(void **state)
{
    struct fx *f = *state;

    set_plain_keys(f->c);
    crawl_all(f->c);
    tc_now += 2;
    crawl_all(f->c); /* idle */
    assert_int_equal(cask_flush(f->c, tc_now), CASK_OK);
    tc_now += 1;
    crawl_all(f->c);
    assert_int_equal(stat_of(f->c, true), 0);
    assert_int_equal(stat_of(f->c, false), NKEYS);
}

/* A key with an expiry still in the future keeps the shard walked every
 * pass, so it leaves as soon as it expires. */
static void
test_pending_expiry_keeps_walking(void **state)
{
    struct fx *f = *state;

    assert_int_equal(cask_store(f->c, CASK_SET, "later", 5, "v", 1, 0,
                                tc_now + 100, 0, NULL),
                     CASK_OK);
    unsigned sh = cask_shard_of(f->c, "later", 5);
    crawl_all(f->c);
    tc_now += 2;
    crawl_all(f->c);
    assert_int_equal(f->c->shards[sh]->crawl_full_s, tc_now);
    tc_now += 100;
    crawl_all(f->c);
    assert_int_equal(stat_of(f->c, false), 1);
    assert_int_equal(stat_of(f->c, true), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_no_expiry_walks_once_a_minute,
                                            setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_expiring_set_after_idle, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_touch_after_idle, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_flush_after_idle, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_pending_expiry_keeps_walking,
                                            setup, tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
