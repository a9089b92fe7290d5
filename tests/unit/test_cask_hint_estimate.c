/* test_cask_hint_estimate.c - the record count that recovery sizes the
 * keydir by before it loads a shard's hints (cask_hint_estimate): close
 * to what the hints hold, on a store whose seqs grew from 1-byte varints
 * in its first hint to 3-byte ones in its last. A rate taken from the
 * oldest hint's first entries (the smallest) overestimated it, and
 * recovery then rehashed the oversized index down again.
 */
#include "storage/cask_hint.h"

#include "storage/cask.h"
#include "tests/unit/test_cask_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS 40000

static void
tune(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 64 * 1024; /* the first hint covers seqs below 2000 */
}

static void
test_estimate_close_to_the_count(void **state)
{
    struct fx *f = *state;
    char key[16];

    for (unsigned i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(tc_set(f->c, key, "v"), CASK_OK);
    }
    cask_close(&f->c); /* every closed segment gets its hint */

    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/shard-000", f->dir);
    static uint32_t ids[4096];
    size_t n = tc_segment_ids(f->dir, ids, 4096);
    assert_true(n < 4096);
    assert_true(n > 20);

    uint64_t est = cask_hint_estimate(dir, ids, n);
    printf("# %zu segments, %u keys, estimate %llu\n", n, NKEYS,
           (unsigned long long)est);
    /* below by the varints' growth at most (the reserve's margin takes
     * that), never far above */
    assert_true(est >= NKEYS * 90ull / 100);
    assert_true(est <= NKEYS * 103ull / 100);

    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.live_keys, NKEYS);
}

static int
setup(void **state)
{
    return tc_fx_setup(state, tune);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_estimate_close_to_the_count,
                                            setup, tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
