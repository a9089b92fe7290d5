/* test_cask_commit.c - the committer and commit tickets (cask_commit.c):
 * under CASK_SYNC_ALWAYS a deferred write returns before its fdatasync
 * (one that takes 300 ms here), is visible at once, and its ticket turns
 * done only after a sync covered it; writes of many shards share one
 * pass; an EIO from fdatasync fails the tickets it covered and latches the
 * shard; blocking writers still wait; other modes leave tickets empty.
 * While syncs are fast a batch overlaps the journal sync in flight only
 * once that sync has run a while (right after it starts a write waits
 * for it), also when they take several hundred us; while they are slow
 * (a millisecond or more) the next batch starts next to it. Under
 * concurrent load batches are spaced (COMMIT_DELAY_NS) so that more
 * writes share a sync; a lone writer's batches are not. The commit
 * cycle's timing figures show the sync, the spacing and the wait.
 */
#include "test_cask_seam.h"
#include "test_cask_util.h"

#include "storage/cask_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int sync_delay_ms; /* added to every fdatasync */
static atomic_int sync_delay_us; /* ... and this too */
static atomic_int sync_eio;      /* fdatasync fails with EIO */
static atomic_int sync_fake;     /* no real fdatasync: a fast device */
static atomic_int syncs_made;
static atomic_int hook_calls;
/* Journal fdatasyncs in progress and the most at once; when the first
 * two journal pwrites since jwrites was cleared started (mono_ms;
 * timed_pwrite). */
static atomic_int jsync_now, jsync_max;
static atomic_int jwrites;
static _Atomic double jwrite_ms[2];

static int
slow_fdatasync(int fd)
{
    bool journal = tc_fd_is_journal(fd);
    if (journal) {
        int now = atomic_fetch_add(&jsync_now, 1) + 1;
        int max = atomic_load(&jsync_max);
        while (now > max &&
               !atomic_compare_exchange_weak(&jsync_max, &max, now)) {
        }
    }
    int ms = atomic_load(&sync_delay_ms);
    int us = atomic_load(&sync_delay_us);
    if (ms > 0 || us > 0) {
        struct timespec ts = {.tv_sec = ms / 1000,
                              .tv_nsec = (long)(ms % 1000) * 1000000L +
                                         (long)us * 1000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&syncs_made, 1);
    int rc = 0;
    if (atomic_load(&sync_eio)) {
        rc = EIO;
    } else if (!atomic_load(&sync_fake)) {
        rc = cask_io_default()->fdatasync(fd);
    }
    if (journal) {
        atomic_fetch_sub(&jsync_now, 1);
    }
    return rc;
}

static ssize_t
timed_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (tc_fd_is_journal(fd)) {
        int i = atomic_fetch_add(&jwrites, 1);
        if (i < 2) {
            atomic_store(&jwrite_ms[i], tc_mono_ms());
        }
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
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
    atomic_store(&sync_delay_us, 0);
    atomic_store(&sync_eio, 0);
    atomic_store(&sync_fake, 0);
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

static void
test_deferred_returns_before_sync(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t = {0};
    struct cask_item it;
    char *v = NULL;
    int rc;

    atomic_store(&sync_delay_ms, 300);
    double t0 = tc_mono_ms();
    rc = tc_set_deferred(f->c, "k", "v1", &t);
    assert_int_equal(rc, CASK_OK);
    assert_true(tc_mono_ms() - t0 < 150); /* did not wait for the 300 ms sync */
    assert_true(t.epoch != 0);
    assert_int_equal(t.shard, (int)cask_shard_of(f->c, "k", 1));
    /* visible before its sync */
    assert_int_equal(cask_get(f->c, "k", 1, &it, &v), CASK_OK);
    assert_memory_equal(v, "v1", 2);
    free(v);
    assert_false(cask_ticket_done(f->c, &t, &rc));
    assert_int_equal(tc_wait_ticket(f->c, &t, 5000), CASK_OK);
    assert_true(tc_mono_ms() - t0 >= 290);
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
        snprintf(k, sizeof(k), "key%d", i);
        assert_int_equal(tc_set_deferred(f->c, k, "x", &t[i]), CASK_OK);
    }
    for (int i = 0; i < 200; i++) {
        assert_int_equal(tc_wait_ticket(f->c, &t[i], 10000), CASK_OK);
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
    assert_int_equal(tc_wait_ticket(f->c, &t, 5000), CASK_OK);
}

static void
test_sync_eio_fails_ticket(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t = {0}, t2 = {0};
    int rc;

    atomic_store(&sync_delay_ms, 100);
    atomic_store(&sync_eio, 1);
    rc = tc_set_deferred(f->c, "a", "v", &t);
    assert_int_equal(rc, CASK_OK);
    /* its commit failed: the store tries to go on */
    assert_int_equal(tc_wait_ticket(f->c, &t, 5000), CASK_EUNDONE);
    /* held while it recovers, then latched (the segment syncs fail too):
     * the next write of that shard fails at once, and once latched it
     * says so */
    for (int i = 0;; i++) {
        rc = tc_set_deferred(f->c, "a", "w", &t2);
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
    double t0 = tc_mono_ms();
    assert_int_equal(cask_delete(f->c, "nope", 4, 0), CASK_ENOTFOUND);
    assert_true(tc_mono_ms() - t0 < 100); /* nothing written, nothing to wait */
    assert_int_equal(cask_store(f->c, CASK_SET, "b", 1, "v", 1, 0, 0, 0, NULL),
                     CASK_OK);
    assert_true(tc_mono_ms() - t0 >= 190);
    atomic_store(&sync_eio, 1);
    assert_int_equal(cask_delete(f->c, "b", 1, 0), CASK_EUNDONE);
}

/* Wait until a journal fdatasync is in progress. */
static void
wait_jsync(void)
{
    double t0 = tc_mono_ms();
    while (atomic_load(&jsync_now) == 0) {
        assert_true(tc_mono_ms() - t0 < 5000);
        usleep(100);
    }
}

/* Right after a journal batch started, a write of a later epoch waits
 * for it (its thread takes the write when back) instead of a second
 * batch starting next to it: with fast syncs that second sync would cost
 * as much as the wait. The second batch may start once the first has
 * run 300 us (any thread that wakes then takes it); one that starts
 * within 200 us of the first is a failure, allowed once in five
 * attempts for a thread preempted between taking its batch and writing
 * it on a loaded machine. */
static void
test_young_sync_not_overlapped(void **state)
{
    struct cfx *f = *state;
    char k[16];
    int early = 0;
    struct cask_io_ops ops = *cask_io_default();

    ops.fdatasync = slow_fdatasync;
    ops.pwrite = timed_pwrite;
    cask_io_set(&ops);
    for (int attempt = 0; attempt < 5; attempt++) {
        /* Fast syncs first, so that the last slow one fades. */
        atomic_store(&sync_fake, 1);
        atomic_store(&sync_delay_ms, 0);
        for (int i = 0; i < 64; i++) {
            snprintf(k, sizeof(k), "fast%d", i);
            assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k), "x", 1, 0,
                                        0, 0, NULL),
                             CASK_OK);
        }
        atomic_store(&sync_delay_ms, 30);
        atomic_store(&jwrites, 0);
        struct cask_ticket t1 = {0}, t2 = {0};
        assert_int_equal(tc_set_deferred(f->c, "a", "1", &t1), CASK_OK);
        wait_jsync();
        assert_int_equal(tc_set_deferred(f->c, "b", "2", &t2), CASK_OK);
        assert_true(t2.epoch > t1.epoch);
        assert_int_equal(tc_wait_ticket(f->c, &t1, 5000), CASK_OK);
        assert_int_equal(tc_wait_ticket(f->c, &t2, 5000), CASK_OK);
        assert_true(atomic_load(&jwrites) >= 2);
        if (atomic_load(&jwrite_ms[1]) - atomic_load(&jwrite_ms[0]) < 0.2) {
            early++;
        }
    }
    assert_true(early <= 1);
}

/* Syncs of 350 us (a loaded machine's disk, where the CPU is what is
 * short) are not slow: right after a batch started, a write of a later
 * epoch still waits for it instead of starting a second batch next to
 * it (with syncs slow from 300 us on, as before, every attempt started
 * one within 200 us). An attempt counts only when none of the 32
 * blocking writes before it took 900 us: on a loaded machine a sleep
 * may take over a millisecond, and the syncs are then rightly slow for
 * a few batches. One early start in the counted attempts is allowed (a
 * thread preempted between taking its batch and writing it). */
static void
test_medium_sync_not_overlapped(void **state)
{
    struct cfx *f = *state;
    char k[16];
    int early = 0, counted = 0;
    struct cask_io_ops ops = *cask_io_default();

    ops.fdatasync = slow_fdatasync;
    ops.pwrite = timed_pwrite;
    cask_io_set(&ops);
    atomic_store(&sync_fake, 1);
    atomic_store(&sync_delay_us, 350);
    for (int attempt = 0; attempt < 60 && counted < 6; attempt++) {
        /* Blocking writes: the longest recent sync (decaying by an
         * eighth a batch) is then under 900 us, if each took less. */
        bool quick = true;
        for (int i = 0; i < 32; i++) {
            snprintf(k, sizeof(k), "med%d", i);
            double t0 = tc_mono_ms();
            assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k), "x", 1, 0,
                                        0, 0, NULL),
                             CASK_OK);
            if (tc_mono_ms() - t0 >= 0.9) {
                quick = false;
            }
        }
        atomic_store(&jwrites, 0);
        struct cask_ticket t1 = {0}, t2 = {0};
        assert_int_equal(tc_set_deferred(f->c, "a", "1", &t1), CASK_OK);
        /* its batch written (its 350 us sync may be over before a
         * wait for it would look) */
        double w0 = tc_mono_ms();
        while (atomic_load(&jwrites) == 0) {
            assert_true(tc_mono_ms() - w0 < 5000);
        }
        assert_int_equal(tc_set_deferred(f->c, "b", "2", &t2), CASK_OK);
        assert_true(t2.epoch > t1.epoch);
        assert_int_equal(tc_wait_ticket(f->c, &t1, 5000), CASK_OK);
        assert_int_equal(tc_wait_ticket(f->c, &t2, 5000), CASK_OK);
        assert_true(atomic_load(&jwrites) >= 2);
        if (!quick) {
            continue;
        }
        counted++;
        if (atomic_load(&jwrite_ms[1]) - atomic_load(&jwrite_ms[0]) < 0.2) {
            early++;
        }
    }
    if (counted < 3) {
        skip(); /* too loaded to keep a sync under a millisecond */
    }
    assert_true(early <= 1);
}

/* While syncs are slow, a write that comes while one is in flight gets
 * a sync of its own next to it at once. */
static void
test_slow_sync_overlapped(void **state)
{
    struct cfx *f = *state;
    struct cask_ticket t1 = {0}, t2 = {0};

    atomic_store(&sync_fake, 1);
    atomic_store(&sync_delay_ms, 100);
    /* A blocking write: its 100 ms sync makes syncs slow. */
    assert_int_equal(cask_store(f->c, CASK_SET, "s", 1, "0", 1, 0, 0, 0, NULL),
                     CASK_OK);
    atomic_store(&jsync_max, 0);
    assert_int_equal(tc_set_deferred(f->c, "a", "1", &t1), CASK_OK);
    wait_jsync();
    assert_int_equal(tc_set_deferred(f->c, "b", "2", &t2), CASK_OK);
    assert_true(t2.epoch > t1.epoch);
    assert_int_equal(tc_wait_ticket(f->c, &t1, 5000), CASK_OK);
    assert_int_equal(tc_wait_ticket(f->c, &t2, 5000), CASK_OK);
    assert_int_equal(atomic_load(&jsync_max), 2);
}

/* Writer threads for the spacing test: deferred sets of a few keys, one
 * every ~20 us each, until told to stop. */
static atomic_int writers_stop;

static void *
writer_main(void *arg)
{
    struct cask *c = arg;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 20000};
    char k[16];
    unsigned n = 0;

    while (!atomic_load(&writers_stop)) {
        struct cask_ticket t;
        snprintf(k, sizeof(k), "w%u", n++ % 512);
        if (tc_set_deferred(c, k, "v", &t) != CASK_OK) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* Under concurrent load (batches of several writes) the journal's
 * batches are spaced 250 us apart, even while syncs are instant: the
 * writes that come meanwhile share the next sync instead of a sync
 * each. First a phase of slow syncs, where batches are large anyway;
 * then, with instant syncs, the batches taken in 300 ms are counted.
 * Without the spacing a commit thread takes a batch as soon as it is
 * back, thousands in that time. */
static void
test_busy_batches_spaced(void **state)
{
    struct cfx *f = *state;
    pthread_t th[4];
    struct cask_stats st;

    atomic_store(&sync_fake, 1);
    atomic_store(&sync_delay_us, 2000);
    atomic_store(&writers_stop, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, f->c), 0);
    }
    usleep(50000);
    atomic_store(&sync_delay_us, 0);
    usleep(20000);
    cask_stats(f->c, -1, &st);
    uint64_t c0 = st.commits, w0 = st.synced_writes;
    double t0 = tc_mono_ms();
    usleep(300000);
    cask_stats(f->c, -1, &st);
    double ms = tc_mono_ms() - t0;
    uint64_t commits = st.commits - c0, writes = st.synced_writes - w0;
    atomic_store(&writers_stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    fprintf(stderr, "%.0f ms: %llu batches, %llu writes\n", ms,
            (unsigned long long)commits, (unsigned long long)writes);
    assert_true(commits > 0);
    /* one batch per 250 us at most (and a few around the window) */
    assert_true((double)commits <= ms * 4 + 8);
    assert_true(writes >= 4 * commits);
}

/* The commit cycle's figures (stats storage: commit_wait_us,
 * commit_delay_us, commit_sync_us) say where a commit's time goes: with
 * every journal sync taking 2 ms more and four writers at work, the
 * mean sync is 2 ms or more, the batches are spaced (a mean delay near
 * COMMIT_DELAY_NS, 250 us), and a batch's first write waited at least
 * that delay before its batch was taken. (Without the journal they
 * read 0: test_other_modes_no_ticket.) */
static void
test_commit_timing(void **state)
{
    struct cfx *f = *state;
    pthread_t th[4];
    struct cask_stats st;

    cask_stats(f->c, -1, &st);
    /* the warm-up write of setup was committed: a batch of one, no
     * spacing, a real sync */
    assert_true(st.commit_sync_us > 0);
    assert_true(st.commit_delay_us < 200);
    atomic_store(&sync_fake, 1);
    atomic_store(&sync_delay_us, 2000);
    atomic_store(&writers_stop, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, f->c), 0);
    }
    usleep(300000);
    atomic_store(&writers_stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    cask_stats(f->c, -1, &st);
    fprintf(stderr, "wait %.0f us, delay %.0f us, sync %.0f us, %llu commits\n",
            st.commit_wait_us, st.commit_delay_us, st.commit_sync_us,
            (unsigned long long)st.commits);
    assert_true(st.commits > 10);
    assert_true(st.commit_sync_us >= 1800);
    assert_true(st.commit_delay_us >= 150);
    assert_true(st.commit_wait_us >= st.commit_delay_us * 0.9);
    assert_true(st.commit_wait_us < 1e6);
}

/* A lone writer's batches wait for no one: of 100 blocking writes with
 * instant syncs, the last 50 (long after a spacing would have set in)
 * include several well under the 250 us a spaced batch waits; were
 * its batches spaced, none would be. */
static void
test_lone_writer_not_delayed(void **state)
{
    struct cfx *f = *state;
    char k[16];
    int quick = 0;

    atomic_store(&sync_fake, 1);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "lone%d", i);
        double t0 = tc_mono_ms();
        assert_int_equal(
                cask_store(f->c, CASK_SET, k, strlen(k), "x", 1, 0, 0, 0, NULL),
                CASK_OK);
        if (i >= 50 && tc_mono_ms() - t0 < 0.2) {
            quick++;
        }
    }
    fprintf(stderr, "blocking writes under 200 us: %d of 50\n", quick);
    assert_true(quick >= 5);
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
    assert_int_equal(tc_set_deferred(c, "k", "v", &t), CASK_OK);
    assert_int_equal(t.epoch, 0);
    struct cask_stats st;
    cask_stats(c, -1, &st);
    assert_true(st.commit_wait_us == 0 && st.commit_sync_us == 0);
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
            cmocka_unit_test_setup_teardown(test_young_sync_not_overlapped,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_medium_sync_not_overlapped,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_slow_sync_overlapped, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_busy_batches_spaced, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_commit_timing, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lone_writer_not_delayed, setup,
                                            teardown),
            cmocka_unit_test(test_other_modes_no_ticket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
