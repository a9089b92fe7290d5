/* test_cask_resync.c - a failed segment fdatasync (injected through the
 * cask_io seam) refuses writes until the maintenance thread has rewritten
 * the failed segment's records into new, synced segments; then the shard
 * takes writes again without a restart. A record of the failed segment
 * that no longer reads back whole (its pages dropped: the seam's pread
 * returns other bytes) is lost: its key misses, before and after a
 * restart, and never shows an older value; a lost tombstone does not let
 * the put it deleted back, and a lost touch does not undo its expiry.
 */
#define _GNU_SOURCE /* SEEK_HOLE */
#include "storage/cask.h"

#include "storage/cask_io.h"
#include "tests/unit/test_cask_seam.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static int fail_sync;  /* __atomic: fdatasync returns EIO (see below) */
static ino_t slow_ino; /* __atomic: its next fdatasync takes 300 ms, fails */
static ino_t lost_ino; /* __atomic: reads of this file lose "LOST" bytes */
static int lost_reads; /* __atomic: reads that lost bytes */
static const char MARK[] = "LOST";

/* fail_sync: 1 every fdatasync fails, 2 only those of files holding
 * records (a new segment's header still syncs). */
static int
bad_fdatasync(int fd)
{
    int mode = __atomic_load_n(&fail_sync, __ATOMIC_SEQ_CST);
    struct stat st;
    ino_t slow = __atomic_load_n(&slow_ino, __ATOMIC_SEQ_CST);
    if (slow != 0 && fstat(fd, &st) == 0 && st.st_ino == slow &&
        __atomic_compare_exchange_n(&slow_ino, &slow, 0, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        usleep(300 * 1000);
        errno = EIO;
        return -1;
    }
    if (mode == 2 && fstat(fd, &st) == 0 &&
        (!S_ISREG(st.st_mode) || st.st_size <= 32)) {
        mode = 0;
    }
    if (mode != 0) {
        errno = EIO;
        return -1;
    }
    return cask_io_default()->fdatasync(fd);
}

/* A page the kernel dropped after the failed sync reads back as whatever
 * the disk held: every "LOST" in the file's bytes reads as zeros. */
static ssize_t
dropping_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t got = cask_io_default()->pread(fd, buf, n, off);
    ino_t ino = __atomic_load_n(&lost_ino, __ATOMIC_SEQ_CST);
    struct stat st;
    if (got <= 0 || ino == 0 || fstat(fd, &st) != 0 || st.st_ino != ino) {
        return got;
    }
    char *p = buf;
    for (ssize_t i = 0; i + (ssize_t)sizeof(MARK) - 1 <= got; i++) {
        if (memcmp(p + i, MARK, sizeof(MARK) - 1) == 0) {
            memset(p + i, 0, sizeof(MARK) - 1);
            __atomic_fetch_add(&lost_reads, 1, __ATOMIC_SEQ_CST);
        }
    }
    return got;
}

static void
tune(struct cask_options *o)
{
    o->shards = 1;
    o->sync = CASK_SYNC_INTERVAL;
    o->sync_interval_ms = 600000; /* only the test's cask_sync syncs */
    o->segment_size = 4096;
}

static int
setup(void **state)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    ops.pread = dropping_pread;
    cask_io_set(&ops);
    fail_sync = 0;
    slow_ino = 0;
    lost_ino = 0;
    lost_reads = 0;
    tc_log[0] = '\0';
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    int rc = tc_fx_teardown(state);
    cask_io_set(NULL);
    return rc;
}

/* Wait (up to 15 s: the maintenance thread looks once a second, backing
 * off after a failed attempt) until the shard takes writes again. */
static void
wait_recovered(struct cask *c, uint64_t recoveries)
{
    struct cask_stats st;
    for (int i = 0; i < 1500; i++) {
        cask_stats(c, -1, &st);
        if (!st.failed && st.sync_recoveries >= recoveries) {
            return;
        }
        usleep(10 * 1000);
    }
    fail_msg("the shard did not recover (failed %d, recoveries %" PRIu64
             "); log:\n%s",
             st.failed, st.sync_recoveries, tc_log);
}

/* Fail the next segment fdatasync: the shard refuses writes, keeps
 * serving reads, and the fault then stops. */
static void
fail_one_sync(struct fx *f)
{
    __atomic_store_n(&fail_sync, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(cask_sync(f->c), CASK_EFAILED);
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.sync_failures >= 1);
}

static void
test_recovers_without_restart(void **state)
{
    struct fx *f = *state;
    char k[16], v[16];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    assert_int_equal(cask_delete(f->c, "k3", 2, 0), CASK_OK);
    __atomic_store_n(&fail_sync, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(cask_sync(f->c), CASK_EFAILED);
    /* Until the rewrite: writes and deletes refused, reads served. Kept
     * failing meanwhile, so that the first attempt fails too. */
    assert_int_equal(tc_set(f->c, "new", "x"), CASK_EFAILED);
    assert_int_equal(cask_delete(f->c, "k1", 2, 0), CASK_EFAILED);
    assert_true(tc_is(f->c, "k2", "v2"));
    usleep(1500 * 1000);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.failed);
    assert_int_equal(st.sync_recoveries, 0);
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    wait_recovered(f->c, 1);
    assert_non_null(strstr(tc_log, "rewrite after a failed sync: "));
    assert_null(strstr(tc_log, "cut"));
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.records_lost, 0);
    assert_int_equal(tc_set(f->c, "new", "x"), CASK_OK);
    assert_int_equal(cask_delete(f->c, "k1", 2, 0), CASK_OK);
    assert_int_equal(cask_sync(f->c), CASK_OK);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 40; i++) {
            snprintf(k, sizeof(k), "k%d", i);
            snprintf(v, sizeof(v), "v%d", i);
            if (i == 1 || i == 3) {
                assert_true(tc_absent(f->c, k));
            } else {
                assert_true(tc_is(f->c, k, v));
            }
        }
        assert_true(tc_is(f->c, "new", "x"));
        tc_fx_reopen(f);
    }
}

static void
check_lost(struct fx *f, int64_t touched)
{
    /* lost put: a miss, not the older value of the segment before */
    assert_true(tc_absent(f->c, "LOSTk"));
    /* lost tombstone: the put it deleted stays deleted */
    assert_true(tc_absent(f->c, "LOSTdel"));
    /* lost touch: the expiry it set holds */
    struct cask_item it;
    char *val = NULL;
    assert_int_equal(cask_get(f->c, "LOSTtouch", 9, &it, &val), CASK_OK);
    assert_int_equal(it.exp_abs_s, touched);
    free(val);
    /* what read back whole was rewritten; older segments untouched */
    assert_true(tc_is(f->c, "good", "fine"));
    assert_true(tc_is(f->c, "a", "1"));
}

static void
test_lost_record_is_a_miss(void **state)
{
    struct fx *f = *state;
    char fill[3801];
    memset(fill, 'f', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "LOSTk", "old"), CASK_OK);
    assert_int_equal(tc_set(f->c, "LOSTdel", "gone"), CASK_OK);
    assert_int_equal(tc_set(f->c, "LOSTtouch", "t"), CASK_OK);
    assert_int_equal(tc_set(f->c, "fill", fill), CASK_OK);
    char first[4096], failed[4096];
    tc_newest_segment(f, first, sizeof(first));
    /* does not fit: a roll-over (which syncs the first segment) */
    assert_int_equal(tc_set(f->c, "LOSTk", "LOST new value"), CASK_OK);
    tc_newest_segment(f, failed, sizeof(failed));
    assert_string_not_equal(first, failed);
    assert_int_equal(cask_delete(f->c, "LOSTdel", 7, 0), CASK_OK);
    int64_t touched = tc_now + 5000;
    struct cask_item it;
    assert_int_equal(cask_touch(f->c, "LOSTtouch", 9, touched, &it, NULL),
                     CASK_OK);
    assert_int_equal(tc_set(f->c, "good", "fine"), CASK_OK);

    /* The sync fails and the kernel drops the pages holding "LOST". */
    struct stat st;
    assert_int_equal(stat(failed, &st), 0);
    __atomic_store_n(&lost_ino, st.st_ino, __ATOMIC_SEQ_CST);
    fail_one_sync(f);
    wait_recovered(f->c, 1);
    assert_true(__atomic_load_n(&lost_reads, __ATOMIC_SEQ_CST) > 0);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_true(cs.records_lost >= 1);
    assert_int_equal(access(failed, F_OK), -1); /* retired */
    check_lost(f, touched);
    assert_int_equal(tc_set(f->c, "after", "x"), CASK_OK);
    assert_int_equal(cask_sync(f->c), CASK_OK);

    __atomic_store_n(&lost_ino, 0, __ATOMIC_SEQ_CST);
    tc_fx_reopen(f);
    check_lost(f, touched);
    assert_true(tc_is(f->c, "after", "x"));
    /* and compaction keeps what the rewrite restored */
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    tc_fx_reopen(f);
    check_lost(f, touched);
}

/* A compaction whose output fails its sync: the keydir points into the
 * output, which is rewritten like a failed active segment. */
static void
test_compaction_output_sync_fails(void **state)
{
    struct fx *f = *state;
    char k[16], v[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "c%d", i % 50);
        snprintf(v, sizeof(v), "w%d", i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    assert_int_equal(cask_sync(f->c), CASK_OK);
    __atomic_store_n(&fail_sync, 2, __ATOMIC_SEQ_CST);
    int rc = cask_compact(f->c, -1, true);
    assert_int_not_equal(rc, CASK_OK);
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    wait_recovered(f->c, 1);
    assert_int_equal(tc_set(f->c, "c0", "last"), CASK_OK);
    for (int round = 0; round < 2; round++) {
        for (int i = 150; i < 200; i++) {
            snprintf(k, sizeof(k), "c%d", i % 50);
            snprintf(v, sizeof(v), "w%d", i);
            assert_true(tc_is(f->c, k, i % 50 == 0 ? "last" : v));
        }
        tc_fx_reopen(f);
    }
}

/* A segment cut short by another process (truncate): the store notices
 * within a second (stats: segments_cut), rewrites what still reads back,
 * and the records cut off are misses, never an older value. Writes are
 * never refused. */
static void
test_cut_segment(void **state)
{
    struct fx *f = *state;
    char fill[3901];
    memset(fill, 'f', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "old", "v-old"), CASK_OK);
    assert_int_equal(tc_set(f->c, "fill", fill), CASK_OK);
    char first[4096], cut[4096];
    tc_newest_segment(f, first, sizeof(first));
    assert_int_equal(tc_set(f->c, "k1", "v1"), CASK_OK); /* rolls over */
    tc_newest_segment(f, cut, sizeof(cut));
    assert_string_not_equal(first, cut);
    assert_int_equal(tc_set(f->c, "old", "v-new"), CASK_OK);
    struct stat st;
    assert_int_equal(stat(cut, &st), 0);
    /* header 32, then k1's record (44 + 2 + 2 bytes): cut "old" off (the
     * file may be longer: extended ahead of its appends for the mapping
     * they are copied into) */
    assert_true(st.st_size >= 32 + 48 + 52);
    assert_int_equal(truncate(cut, 32 + 48), 0);
    int rc = CASK_EFAILED;
    for (int i = 0; i < 1000 && (rc != CASK_OK || access(cut, F_OK) == 0);
         i++) {
        usleep(10 * 1000);
        rc = cask_compact(f->c, -1, true); /* refused while queued */
    }
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    if (cs.segments_cut != 1 || access(cut, F_OK) == 0) {
        fail_msg("cut segment not rewritten; log:\n%s", tc_log);
    }
    assert_true(cs.records_lost >= 1);
    assert_false(cs.failed);
    /* The log says what happened: a cut, and no sync failed. */
    if (strstr(tc_log, "rewrite of segments cut short: ") == NULL ||
        strstr(tc_log, "failed sync") != NULL) {
        fail_msg("the rewrite of a cut segment logged as what it was "
                 "not; log:\n%s",
                 tc_log);
    }
    for (int round = 0; round < 2; round++) {
        assert_true(tc_absent(f->c, "old")); /* not v-old */
        assert_true(tc_is(f->c, "k1", "v1"));
        assert_true(tc_is(f->c, "a", "1"));
        assert_int_equal(tc_set(f->c, "b", "2"), CASK_OK);
        tc_fx_reopen(f);
    }
}

/* Cut short, then written past the end before the store looked: the
 * hole left below what was written gives the cut away (a cut of at least
 * a block: segments of 64 KiB here). */
static void
test_cut_segment_written_after(void **state)
{
    struct fx *f = *state;
    /* Does the file system tell holes (SEEK_HOLE)? */
    char probe[2048];
    snprintf(probe, sizeof(probe), "%s/sparse", f->dir);
    int fd = open(probe, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "x", 1, 1 << 20), 1);
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    close(fd);
    unlink(probe);
    if (hole < 0 || hole >= (1 << 20)) {
        skip(); /* a cut followed by a write goes unnoticed there */
    }
    f->o.segment_size = 65536;
    /* Written with pwrite past the cut: a copy into the mapping would
     * fault there instead (test_cask_mapwrite.c covers that). */
    f->o.write_map = false;
    tc_fx_reopen(f);
    char *fill = malloc(65461), *big = malloc(9001);
    assert_non_null(fill);
    assert_non_null(big);
    memset(fill, 'f', 65460);
    fill[65460] = '\0';
    memset(big, 'b', 9000);
    big[9000] = '\0';
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "old", "v-old"), CASK_OK);
    assert_int_equal(tc_set(f->c, "fill", fill), CASK_OK);
    char first[4096], cut[4096];
    tc_newest_segment(f, first, sizeof(first));
    assert_int_equal(tc_set(f->c, "k1", "v1"), CASK_OK); /* rolls over */
    tc_newest_segment(f, cut, sizeof(cut));
    assert_string_not_equal(first, cut);
    assert_int_equal(tc_set(f->c, "big", big), CASK_OK);
    assert_int_equal(tc_set(f->c, "old", "v-new"), CASK_OK);
    assert_int_equal(truncate(cut, 32 + 48), 0);
    assert_int_equal(tc_set(f->c, "after", "y"), CASK_OK);
    assert_true(tc_is(f->c, "after", "y"));
    int rc = CASK_EFAILED;
    for (int i = 0; i < 1000 && (rc != CASK_OK || access(cut, F_OK) == 0);
         i++) {
        usleep(10 * 1000);
        rc = cask_compact(f->c, -1, true);
    }
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    if (cs.segments_cut != 1 || access(cut, F_OK) == 0) {
        free(fill);
        free(big);
        fail_msg("cut segment not rewritten; log:\n%s", tc_log);
    }
    for (int round = 0; round < 2; round++) {
        assert_true(tc_absent(f->c, "old")); /* not v-old */
        assert_true(tc_absent(f->c, "big"));
        assert_true(tc_is(f->c, "k1", "v1"));
        assert_true(tc_is(f->c, "a", "1"));
        assert_true(tc_is(f->c, "after", "y"));
        assert_true(tc_is(f->c, "fill", fill));
        tc_fx_reopen(f);
    }
    free(fill);
    free(big);
}

/* Reopen f under --sync=always without the journal (tc_nojournal_pwrite),
 * with fdatasyncs that fail and reads that see dropped pages on demand,
 * and store a=1: the inode of the segment the next writes go to. */
static ino_t
open_without_journal(struct fx *f)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    ops.pread = dropping_pread;
    ops.pwrite = tc_nojournal_pwrite;
    cask_io_set(&ops);
    f->o.sync = CASK_SYNC_ALWAYS;
    tc_fx_reopen(f);
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    struct stat st;
    assert_int_equal(stat(seg, &st), 0);
    return st.st_ino;
}

/* After the rewrite, and after two restarts: k is gone (neither of its
 * values), a=1 and after=x are there. */
static void
check_k_undone(struct fx *f)
{
    for (int round = 0; round < 2; round++) {
        assert_true(tc_absent(f->c, "k"));
        assert_true(tc_is(f->c, "a", "1"));
        assert_true(tc_is(f->c, "after", "x"));
        tc_fx_reopen(f);
    }
}

/* --sync=always without the journal: a write whose segment sync failed
 * is answered with an error however late its ticket is read (after the
 * rewrite, and after a later sync covered its append number), and its
 * value is never read back: not before the rewrite, not after it, not
 * after a restart, and neither is the value it replaced. */
static void
test_always_without_journal(void **state)
{
    struct fx *f = *state;
    ino_t ino = open_without_journal(f);
    assert_non_null(strstr(tc_log, "no space for the commit journal"));
    assert_int_equal(tc_set(f->c, "k", "old"), CASK_OK);
    /* The pages holding the write are dropped by the failed sync. */
    __atomic_store_n(&lost_ino, ino, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_sync, 1, __ATOMIC_SEQ_CST);
    struct cask_ticket t;
    assert_int_equal(tc_set_deferred(f->c, "k", "LOST new value", &t), CASK_OK);
    assert_true(t.epoch != 0);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    for (int i = 0; i < 500 && cs.sync_failures == 0; i++) {
        usleep(10 * 1000);
        cask_stats(f->c, -1, &cs);
    }
    assert_true(cs.sync_failures >= 1);
    assert_true(tc_absent(f->c, "k")); /* neither value */
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    wait_recovered(f->c, 1);
    assert_true(tc_absent(f->c, "k"));
    /* A later write's sync covers the append numbers of the failed one. */
    assert_int_equal(tc_set(f->c, "after", "x"), CASK_OK);
    int rc = CASK_OK;
    assert_true(cask_ticket_done(f->c, &t, &rc));
    assert_int_equal(rc, CASK_EFAILED);
    __atomic_store_n(&lost_ino, 0, __ATOMIC_SEQ_CST);
    check_k_undone(f);
}

/* The same, with a roll-over while the failing sync is in flight: the
 * roll-over's own sync of that file must not answer the writes the
 * failed one covered (a second fdatasync may succeed over dropped
 * pages): it waits for the sync in flight, and fails with it. */
static void
test_always_without_journal_rollover(void **state)
{
    struct fx *f = *state;
    __atomic_store_n(&slow_ino, open_without_journal(f), __ATOMIC_SEQ_CST);
    struct cask_ticket t;
    assert_int_equal(tc_set_deferred(f->c, "k", "v", &t), CASK_OK);
    usleep(100 * 1000); /* the commit's sync of seg is in flight */
    char fill[4001];
    memset(fill, 'f', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    /* does not fit in seg: a roll-over */
    assert_int_not_equal(tc_set(f->c, "fill", fill), CASK_OK);
    int rc = CASK_OK;
    for (int i = 0; i < 500 && !cask_ticket_done(f->c, &t, &rc); i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(rc, CASK_EFAILED);
    assert_true(tc_absent(f->c, "k"));
    wait_recovered(f->c, 1);
    assert_int_equal(tc_set(f->c, "after", "x"), CASK_OK);
    assert_true(cask_ticket_done(f->c, &t, &rc));
    assert_int_equal(rc, CASK_EFAILED);
    check_k_undone(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_recovers_without_restart,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_lost_record_is_a_miss, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_compaction_output_sync_fails,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_segment_written_after,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_segment, setup, teardown),
            cmocka_unit_test_setup_teardown(test_always_without_journal, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                    test_always_without_journal_rollover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
