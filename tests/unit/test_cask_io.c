/* test_cask_io.c - fault injection through the cask_io seam: ENOSPC and
 * short writes fail the write and leave no partial record while the data
 * already there stays intact; an fdatasync EIO of a segment latches the
 * shard into CASK_EFAILED (writes refused, reads served) and is never
 * retried (a journal sync failure alone is recovered from: see
 * test_cask_journal.c).
 */
#include "storage/cask.h"

#include "storage/cask_io.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int fail_write; /* 0 off, 1 ENOSPC, 2 short write then ENOSPC */
static int fail_sync;  /* fdatasync returns EIO */
static int sync_calls; /* __atomic: the commit threads sync too */

static ssize_t
bad_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fail_write == 1) {
        errno = ENOSPC;
        return -1;
    }
    if (fail_write == 2) {
        fail_write = 1; /* a short write, then the disk is full */
        return cask_io_default()->pwrite(fd, buf, n > 1 ? n / 2 : n, off);
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static int
bad_fdatasync(int fd)
{
    __atomic_fetch_add(&sync_calls, 1, __ATOMIC_SEQ_CST);
    if (fail_sync) {
        errno = EIO;
        return -1;
    }
    return cask_io_default()->fdatasync(fd);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = bad_pwrite;
    ops.fdatasync = bad_fdatasync;
    cask_io_set(&ops);
    fail_write = fail_sync = sync_calls = 0;
    f->dir = tc_mkdtemp();
    tc_options(&f->o);
    f->o.shards = 1;
    f->o.sync = CASK_SYNC_ALWAYS;
    if (cask_open(&f->c, f->dir, &f->o) != CASK_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    fail_write = fail_sync = 0;
    cask_close(&f->c);
    cask_io_set(NULL);
    tc_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void
check_clean_reopen(struct fx *f)
{
    cask_close(&f->c);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.bytes_truncated, 0); /* no partial record left */
}

static void
test_enospc(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    fail_write = 1;
    assert_int_equal(tc_set(f->c, "a", "2"), ENOSPC);
    assert_int_equal(tc_set(f->c, "b", "2"), ENOSPC);
    assert_int_equal(cask_delete(f->c, "a", 1, 0), ENOSPC);
    assert_true(tc_is(f->c, "a", "1"));
    assert_true(tc_absent(f->c, "b"));
    fail_write = 0;
    assert_int_equal(tc_set(f->c, "c", "3"), CASK_OK);
    check_clean_reopen(f);
    assert_true(tc_is(f->c, "a", "1"));
    assert_true(tc_absent(f->c, "b"));
    assert_true(tc_is(f->c, "c", "3"));
}

static void
test_short_write(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "a", "first value"), CASK_OK);
    fail_write = 2;
    assert_int_equal(tc_set(f->c, "a", "second value, longer"), ENOSPC);
    fail_write = 0;
    assert_true(tc_is(f->c, "a", "first value"));
    assert_int_equal(tc_set(f->c, "z", "after"), CASK_OK);
    check_clean_reopen(f);
    assert_true(tc_is(f->c, "a", "first value"));
    assert_true(tc_is(f->c, "z", "after"));
}

/* Under interval sync a write that cannot reach the kernel is an error,
 * never an acknowledgement that a later sync could not honour. */
static void
test_interval_enospc_not_acked(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    f->o.sync = CASK_SYNC_INTERVAL;
    f->o.sync_interval_ms = 60000;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    fail_write = 1;
    assert_int_equal(tc_set(f->c, "b", "2"), ENOSPC);
    assert_int_equal(cask_delete(f->c, "a", 1, 0), ENOSPC);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.write_errors, 2);
    assert_true(tc_is(f->c, "a", "1"));
    assert_true(tc_absent(f->c, "b"));
    fail_write = 0;
    assert_int_equal(cask_sync(f->c), CASK_OK);
    check_clean_reopen(f);
    assert_true(tc_is(f->c, "a", "1"));
    assert_true(tc_absent(f->c, "b"));
}

static void
test_fdatasync_eio_latches(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    fail_sync = 1;
    /* its commit failed: answered as a write the store goes on from */
    assert_int_equal(tc_set(f->c, "b", "2"), CASK_EUNDONE);
    /* The journal's sync failed: the store tries to recover at once, and
     * the segment sync that needs fails too, which latches the shard. */
    int calls = __atomic_load_n(&sync_calls, __ATOMIC_SEQ_CST);
    for (int i = 0;
         i < 500 && __atomic_load_n(&sync_calls, __ATOMIC_SEQ_CST) == calls;
         i++) {
        usleep(2000);
    }
    usleep(50 * 1000);
    calls = __atomic_load_n(&sync_calls, __ATOMIC_SEQ_CST);
    fail_sync = 0; /* even if the disk came back: no retry, still latched */
    assert_int_equal(tc_set(f->c, "c", "3"), CASK_EFAILED);
    assert_int_equal(cask_delete(f->c, "a", 1, 0), CASK_EFAILED);
    assert_int_equal(cask_sync(f->c), CASK_EFAILED);
    assert_int_equal(sync_calls, calls);
    assert_true(tc_is(f->c, "a", "1"));
    struct cask_stats st;
    cask_stats(f->c, 0, &st);
    assert_true(st.failed);
    cask_stats(f->c, -1, &st);
    assert_true(st.failed);
    /* a restart clears the latch; acknowledged data is there */
    cask_close(&f->c);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "a", "1"));
    assert_int_equal(tc_set(f->c, "c", "3"), CASK_OK);
}

/* Random write faults (ENOSPC, short writes) across roll-overs: a failed
 * operation changes nothing, a successful one is there after a restart. */
static void
test_random_faults(void **state)
{
    struct fx *f = *state;
    enum { NK = 32 };
    char want[NK][64];
    bool have[NK] = {false};
    unsigned seed = 99;
    int failures = 0;
    cask_close(&f->c);
    f->o.segment_size = 4096;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int n = 0; n < 3000; n++) {
        int i = (int)(rand_r(&seed) % NK);
        char k[16], v[64];
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "value %d of key %d", n, i);
        unsigned r = rand_r(&seed) % 10;
        fail_write = r == 0 ? 1 : r == 1 ? 2 : 0;
        int rc;
        bool del = rand_r(&seed) % 5 == 0;
        if (del) {
            rc = cask_delete(f->c, k, strlen(k), 0);
        } else {
            rc = tc_set(f->c, k, v);
        }
        fail_write = 0;
        if (rc == CASK_OK) {
            if (del) {
                have[i] = false;
            } else {
                have[i] = true;
                strcpy(want[i], v);
            }
        } else if (!(del && rc == CASK_ENOTFOUND && !have[i])) {
            assert_true(rc == ENOSPC);
            failures++;
        }
        if (n % 500 == 499) {
            check_clean_reopen(f);
        }
        int j = (int)(rand_r(&seed) % NK);
        snprintf(k, sizeof(k), "k%d", j);
        assert_true(have[j] ? tc_is(f->c, k, want[j]) : tc_absent(f->c, k));
    }
    assert_true(failures > 100);
    check_clean_reopen(f);
    for (int i = 0; i < NK; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        assert_true(have[i] ? tc_is(f->c, k, want[i]) : tc_absent(f->c, k));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
            cmocka_unit_test_setup_teardown(test_short_write, setup, teardown),
            cmocka_unit_test_setup_teardown(test_interval_enospc_not_acked,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fdatasync_eio_latches, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_random_faults, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
