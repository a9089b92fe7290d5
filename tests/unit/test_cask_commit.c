/* test_cask_commit.c - the committer and commit tickets (cask_commit.c):
 * under CASK_SYNC_ALWAYS a deferred write returns before its fdatasync
 * (one that takes 300 ms here), is visible at once, and its ticket turns
 * done only after a sync covered it; writes of many shards share one
 * pass; an EIO from fdatasync fails the tickets it covered and latches the
 * shard; blocking writers still wait; other modes leave tickets empty.
 */
#include "test_cask_util.h"

#include "storage/cask_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int sync_delay_ms; /* added to every fdatasync */
static atomic_int sync_eio;      /* fdatasync fails with EIO */
static atomic_int syncs_made;
static atomic_int hook_calls;

static int
slow_fdatasync(int fd)
{
    int ms = atomic_load(&sync_delay_ms);
    if (ms > 0) {
        struct timespec ts = {.tv_sec = ms / 1000,
                              .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&syncs_made, 1);
    if (atomic_load(&sync_eio)) {
        return EIO;
    }
    return cask_io_default()->fdatasync(fd);
}

static double
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
on_commit(void *arg)
{
    (void)arg;
    atomic_fetch_add(&hook_calls, 1);
}

struct cfx {
    char *dir;
    struct cask *c;
};

static int
setup(void **state)
{
    struct cfx *f = calloc(1, sizeof(*f));
    struct cask_io_ops ops = *cask_io_default();
    struct cask_options o;

    ops.fdatasync = slow_fdatasync;
    cask_io_set(&ops);
    atomic_store(&sync_delay_ms, 0);
    atomic_store(&sync_eio, 0);
    atomic_store(&hook_calls, 0);
    f->dir = tc_mkdtemp();
    tc_options(&o);
    o.sync = CASK_SYNC_ALWAYS;
    assert_int_equal(cask_open(&f->c, f->dir, &o), CASK_OK);
    /* The first write reserves a block of cas numbers (a synced meta
     * file write): get it out of the way of the timed writes. */
    assert_int_equal(
            cask_store(f->c, CASK_SET, "warm", 4, "up", 2, 0, 0, 0, NULL),
            CASK_OK);
    cask_commit_hook(f->c, on_commit, NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct cfx *f = *state;
    cask_commit_hook(f->c, NULL, NULL);
    atomic_store(&sync_eio, 0);
    atomic_store(&sync_delay_ms, 0);
    cask_close(&f->c);
    cask_io_set(NULL);
    tc_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Poll a ticket until done (the hook would wake a server). */
static int
wait_ticket(struct cask *c, const struct cask_ticket *t, double max_ms)
{
    double t0 = mono_ms();
    int rc = -1;
    while (!cask_ticket_done(c, t, &rc)) {
        assert_true(mono_ms() - t0 < max_ms);
        usleep(1000);
    }
    return rc;
}

static void
test_deferred_returns_before_sync(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t = {0};
    struct cask_item it;
    char *v = NULL;
    int rc;

    atomic_store(&sync_delay_ms, 300);
    double t0 = mono_ms();
    cask_defer(&t);
    rc = cask_store(f->c, CASK_SET, "k", 1, "v1", 2, 0, 0, 0, NULL);
    cask_defer(NULL);
    assert_int_equal(rc, CASK_OK);
    assert_true(mono_ms() - t0 < 150); /* did not wait for the 300 ms sync */
    assert_true(t.epoch != 0);
    assert_int_equal(t.shard, (int)cask_shard_of(f->c, "k", 1));
    /* visible before its sync */
    assert_int_equal(cask_get(f->c, "k", 1, &it, &v), CASK_OK);
    assert_memory_equal(v, "v1", 2);
    free(v);
    assert_false(cask_ticket_done(f->c, &t, &rc));
    assert_int_equal(wait_ticket(f->c, &t, 5000), CASK_OK);
    assert_true(mono_ms() - t0 >= 290);
    assert_true(atomic_load(&hook_calls) >= 1);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.syncs >= 1);
    assert_true(st.synced_writes >= 1);
    assert_true(st.commits >= 1);
}

/* Many writes over every shard while a sync is slow: a few passes cover
 * them all, not one sync each. */
static void
test_writes_share_passes(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t[200];
    char k[16];

    atomic_store(&sync_delay_ms, 50);
    for (int i = 0; i < 200; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        snprintf(k, sizeof(k), "key%d", i);
        cask_defer(&t[i]);
        assert_int_equal(
                cask_store(f->c, CASK_SET, k, strlen(k), "x", 1, 0, 0, 0, NULL),
                CASK_OK);
        cask_defer(NULL);
    }
    for (int i = 0; i < 200; i++) {
        assert_int_equal(wait_ticket(f->c, &t[i], 10000), CASK_OK);
    }
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.synced_writes, 201); /* and the warm-up */
    /* A handful of passes (up to 4 in flight at once), each one journal
     * fdatasync. */
    fprintf(stderr, "passes %llu syncs %llu\n", (unsigned long long)st.commits,
            (unsigned long long)st.syncs);
    assert_true(st.commits <= 8);
    assert_true(st.syncs <= st.commits);
}

/* A ticket over two writes of different shards. */
static void
test_multi_shard_ticket(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t = {0};
    char k[16];
    int i, first = -1;

    cask_defer(&t);
    for (i = 0; i < 64; i++) {
        snprintf(k, sizeof(k), "m%d", i);
        assert_int_equal(
                cask_store(f->c, CASK_SET, k, strlen(k), "x", 1, 0, 0, 0, NULL),
                CASK_OK);
        if (first < 0) {
            first = (int)cask_shard_of(f->c, k, strlen(k));
        } else if ((int)cask_shard_of(f->c, k, strlen(k)) != first) {
            break;
        }
    }
    cask_defer(NULL);
    assert_true(i < 64);
    assert_int_equal(t.shard, -1);
    assert_int_equal(wait_ticket(f->c, &t, 5000), CASK_OK);
}

static void
test_sync_eio_fails_ticket(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t = {0}, t2 = {0};
    int rc;

    atomic_store(&sync_delay_ms, 100);
    atomic_store(&sync_eio, 1);
    cask_defer(&t);
    rc = cask_store(f->c, CASK_SET, "a", 1, "v", 1, 0, 0, 0, NULL);
    cask_defer(NULL);
    assert_int_equal(rc, CASK_OK);
    /* its commit failed: the store tries to go on */
    assert_int_equal(wait_ticket(f->c, &t, 5000), CASK_EUNDONE);
    /* held while it recovers, then latched (the segment syncs fail too):
     * the next write of that shard fails at once, and once latched it
     * says so */
    for (int i = 0;; i++) {
        cask_defer(&t2);
        rc = cask_store(f->c, CASK_SET, "a", 1, "w", 1, 0, 0, 0, NULL);
        cask_defer(NULL);
        if (rc != CASK_EUNDONE || i == 500) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_int_equal(rc, CASK_EFAILED);
    assert_int_equal(t2.epoch, 0);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.failed);
}

/* Without cask_defer a write blocks until its sync, and reports its
 * failure itself. */
static void
test_blocking_waits(void **state)
{
    struct cfx *f = *state;

    atomic_store(&sync_delay_ms, 200);
    double t0 = mono_ms();
    assert_int_equal(cask_delete(f->c, "nope", 4, 0), CASK_ENOTFOUND);
    assert_true(mono_ms() - t0 < 100); /* nothing written, nothing to wait */
    assert_int_equal(cask_store(f->c, CASK_SET, "b", 1, "v", 1, 0, 0, 0, NULL),
                     CASK_OK);
    assert_true(mono_ms() - t0 >= 190);
    atomic_store(&sync_eio, 1);
    assert_int_equal(cask_delete(f->c, "b", 1, 0), CASK_EUNDONE);
}

static void
test_other_modes_no_ticket(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_options o;
    struct cask *c = NULL;
    struct cask_ticket t = {0};
    int rc;

    tc_options(&o);
    o.sync = CASK_SYNC_INTERVAL;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    cask_defer(&t);
    assert_int_equal(cask_store(c, CASK_SET, "k", 1, "v", 1, 0, 0, 0, NULL),
                     CASK_OK);
    cask_defer(NULL);
    assert_int_equal(t.epoch, 0);
    assert_true(cask_ticket_done(c, &t, &rc));
    assert_int_equal(rc, CASK_OK);
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_deferred_returns_before_sync,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_writes_share_passes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_multi_shard_ticket, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_sync_eio_fails_ticket, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_blocking_waits, setup,
                                            teardown),
            cmocka_unit_test(test_other_modes_no_ticket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
