/* test_cask_resync_journal.c - under --sync=always with the commit
 * journal, a failed segment fdatasync (injected through the cask_io seam)
 * no longer latches the store until a restart: the shard rewrites the
 * failed segment like in the other modes, the journal keeps the
 * generation that holds the segment's acknowledged records until that
 * rewrite is done (a checkpoint waits and is tried again), and the shards
 * take writes again. Whatever the failure hit (an early writeback, a
 * roll-over, a checkpoint, or every fdatasync, the journal's too): every
 * write acknowledged reads back, live, after a clean close and after a
 * crash (a child that exits without closing); no write answered with an
 * error is ever read back.
 */
#include "test_cask_seam.h"
#include "test_cask_util.h"

#include "storage/cask_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define SHARDS 2
#define NKEYS  8000

/* 0: no fault; 1: fdatasync of segment files fails; 2: every fdatasync
 * fails (journal files too). */
static atomic_int fault;
static atomic_int failed_calls;

/* Is fd a segment file (of shard 0 only, when shard0)? */
static bool
is_segment(int fd, bool shard0)
{
    char t[4200];
    size_t n;
    if (!tc_fd_path(fd, t, sizeof(t)) || (n = strlen(t)) < 4) {
        return false;
    }
    return strcmp(t + n - 4, ".seg") == 0 &&
           (!shard0 || strstr(t, "/shard-000/") != NULL);
}

/* 3: fdatasync of segment files holding records fails (a new segment's
 * header still syncs, so a roll-over gets to sync the old one); 4: the
 * same, of shard 0's only (shard 1 fills the journal meanwhile). */
static bool
holds_records(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_size > 32;
}

static int
bad_fdatasync(int fd)
{
    int f = atomic_load(&fault);
    if (f == 2 || (f == 1 && is_segment(fd, false)) ||
        (f >= 3 && is_segment(fd, f == 4) && holds_records(fd))) {
        atomic_fetch_add(&failed_calls, 1);
        errno = EIO;
        return -1;
    }
    return cask_io_default()->fdatasync(fd);
}

struct shape {
    uint64_t journal_size;
    uint64_t segment_size;
    int fault;
    const char *logged;  /* the path taken says so in the log */
    bool journal_failed; /* a journal commit failed and recovered */
    int fault_ms;        /* how long the fault lasts (0: 1000 ms) */
    int max_write_ms;    /* no write waits longer (0: not checked) */
};

static void
opts(struct cask_options *o, const struct shape *sp)
{
    tc_options(o);
    o->shards = SHARDS;
    o->sync = CASK_SYNC_ALWAYS;
    o->journal_size = sp->journal_size;
    o->segment_size = sp->segment_size;
}

/* What the run did to each key: 0 untouched, 1 acknowledged (holds
 * "new-<i>"), 2 answered with an error (must never read "new-<i>"). Keys
 * "k<i>" for even i held "old-<i>" before the fault. In shared memory:
 * the crash variant runs in a child. */
struct outcome {
    unsigned char st[NKEYS];
    int acked_during, failed_during;
    int acked_while_failed; /* acknowledged while a shard refused writes */
    int longest_ms;         /* the longest write during the fault */
};

static void
key_of(char *k, size_t cap, int i)
{
    snprintf(k, cap, "k%04d", i);
}

static void
val_of(char *v, size_t cap, const char *what, int i)
{
    snprintf(
            v, cap, "%s-%04d-%s", what, i,
            "................................................................"
            "................................................................");
}

/* End the fault *ms (a second: NULL) after it first failed a call (10 s
 * at most). */
static void *
fault_off(void *arg)
{
    int ms = arg != NULL ? *(const int *)arg : 1000;
    for (int i = 0; i < 1000 && atomic_load(&failed_calls) == 0; i++) {
        usleep(10 * 1000);
    }
    usleep((useconds_t)ms * 1000);
    atomic_store(&fault, 0);
    return NULL;
}

static int
ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int)((t.tv_sec - t0->tv_sec) * 1000 +
                 (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Wait (up to 20 s: a rewrite that failed backs off 1 s, then 2 s) until
 * no shard refuses writes and at least one rewrite finished. */
static bool
recovered(struct cask *c)
{
    struct cask_stats st;
    for (int i = 0; i < 2000; i++) {
        cask_stats(c, -1, &st);
        if (!st.failed && st.sync_recoveries >= 1) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* The run, in a store the caller opened: the checks that can fail return
 * a distinct non-zero code (the crash variant runs in a child). */
static int
run(struct cask *c, const struct shape *sp, struct outcome *out)
{
    char k[32], v[256];
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    cask_io_set(&ops);
    /* One commit for them all (a deferred ticket). */
    struct cask_ticket t = {0};
    int rc = CASK_OK;
    cask_defer(&t);
    for (int i = 0; i < NKEYS && rc == CASK_OK; i += 2) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), "old", i);
        rc = tc_set(c, k, v);
    }
    cask_defer(NULL);
    while (rc == CASK_OK && !cask_ticket_done(c, &t, &rc)) {
        usleep(1000);
    }
    if (rc != CASK_OK) {
        return 10;
    }
    atomic_store(&failed_calls, 0);
    tc_log[0] = '\0'; /* room for what the fault logs */
    atomic_store(&fault, sp->fault);
    pthread_t th;
    int fault_ms = sp->fault_ms > 0 ? sp->fault_ms : 1000;
    if (pthread_create(&th, NULL, fault_off, &fault_ms) != 0) {
        return 11;
    }
    /* Writes go on through the fault: the shard whose sync failed
     * refuses them, the others' wait for their commit (a checkpoint
     * waits for the rewrite), one at a time. */
    int i = 0;
    for (; i < NKEYS; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), "new", i);
        /* Refused (CASK_EFAILED), undone (CASK_EUNDONE), or a new
         * segment whose header could not be synced (EIO). */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = tc_set(c, k, v);
        int took = ms_since(&t0);
        if (took > out->longest_ms) {
            out->longest_ms = took;
        }
        out->st[i] = rc == CASK_OK ? 1 : 2;
        if (rc == CASK_OK) {
            out->acked_during++;
            struct cask_stats fs;
            cask_stats(c, 0, &fs);
            out->acked_while_failed += fs.failed ? 1 : 0;
        } else {
            out->failed_during++;
        }
        usleep(1000);
        if (atomic_load(&fault) == 0) {
            break;
        }
    }
    pthread_join(th, NULL);
    if (i == NKEYS) {
        return 12; /* the keys ran out before the fault ended */
    }
    if (atomic_load(&failed_calls) == 0 || out->failed_during == 0) {
        return 13; /* the fault hit nothing: the test tests nothing */
    }
    if (sp->max_write_ms > 0 && out->longest_ms > sp->max_write_ms) {
        return 17; /* a write hung on the shard whose sync failed */
    }
    if (sp->max_write_ms > 0 && out->acked_while_failed == 0) {
        return 18; /* the healthy shard was not answered meanwhile */
    }
    if (!recovered(c)) {
        return 14;
    }
    struct cask_stats st;
    cask_stats(c, -1, &st);
    if (st.sync_failures < 1) {
        return 15;
    }
    /* Writes are taken again, without a restart, and are durable. */
    for (int end = i + 100; ++i < NKEYS && i < end;) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), "new", i);
        if (tc_set(c, k, v) != CASK_OK) {
            return 16;
        }
        out->st[i] = 1;
    }
    cask_io_set(NULL);
    return 0;
}

/* Every key as the outcome says (see struct outcome). */
static void
check(struct cask *c, const struct outcome *out, const char *when)
{
    char k[32], v[256], old[256];
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), "new", i);
        val_of(old, sizeof(old), "old", i);
        bool ok;
        switch (out->st[i]) {
        case 1:
            ok = tc_is(c, k, v);
            break;
        case 2:
            /* memcached drops the old value of a failed set: absent or
             * the old one, never the failed write's */
            ok = !tc_is(c, k, v) &&
                 (tc_absent(c, k) || (i % 2 == 0 && tc_is(c, k, old)));
            break;
        default:
            ok = i % 2 == 0 ? tc_is(c, k, old) : tc_absent(c, k);
            break;
        }
        if (!ok) {
            fail_msg("%s: key %s (outcome %d) wrong; log:\n%s", when, k,
                     out->st[i], tc_log);
        }
    }
}

static struct outcome *
shared_outcome(void)
{
    struct outcome *o = mmap(NULL, sizeof(*o), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(o != MAP_FAILED);
    memset(o, 0, sizeof(*o));
    return o;
}

static void
scenario(const struct shape *sp)
{
    struct cask_options o;
    opts(&o, sp);
    tc_log[0] = '\0';
    atomic_store(&fault, 0);

    /* In this process: checked live, after a clean close, and once
     * more after a write past the recovery. */
    char *dir = tc_mkdtemp();
    struct cask *c = NULL;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    struct outcome *out = shared_outcome();
    int rc = run(c, sp, out);
    cask_io_set(NULL);
    if (rc != 0) {
        fail_msg("run failed with %d (acked %d, failed %d, longest write %d "
                 "ms); log:\n%s",
                 rc, out->acked_during, out->failed_during, out->longest_ms,
                 tc_log);
    }
    /* A sync that was in flight when the fault ended can still fail
     * after run() saw the store recovered: that shard recovers too. */
    if (!recovered(c)) {
        fail_msg("writes refused after the run; log:\n%s", tc_log);
    }
    struct cask_stats st;
    cask_stats(c, -1, &st);
    assert_true(st.sync_recoveries >= 1);
    if (sp->logged != NULL && strstr(tc_log, sp->logged) == NULL) {
        fail_msg("not in the log: %s; log:\n%s", sp->logged, tc_log);
    }
    if (sp->journal_failed) {
        assert_true(st.commit_failures >= 1);
        assert_int_equal(st.commit_recoveries, st.commit_failures);
    }
    check(c, out, "live after the recovery");
    cask_close(&c);
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    check(c, out, "after a clean close");
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);

    /* In a child that exits without a close (kill -9): the replay of
     * the journal's generation, the rewritten segments and the retired
     * ones agree. */
    dir = tc_mkdtemp();
    memset(out, 0, sizeof(*out));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cask *cc = NULL;
        if (cask_open(&cc, dir, &o) != CASK_OK) {
            _exit(2);
        }
        _exit(run(cc, sp, out));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        fail_msg("child run failed with %d (acked %d, failed %d, longest "
                 "write %d ms)",
                 WEXITSTATUS(status), out->acked_during, out->failed_during,
                 out->longest_ms);
    }
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    check(c, out, "after a crash");
    assert_int_equal(tc_set(c, "again", "ok"), CASK_OK);
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
    munmap(out, sizeof(*out));
}

/* Small journal files, large segments: the early writeback or a
 * checkpoint meets the failure of shard 0's segment; shard 1's writes
 * fill the journal file, and the checkpoint waits for the rewrite. */
static void
test_checkpoint_sync_fails(void **state)
{
    (void)state;
    struct shape sp = {.journal_size = 16 * 1024,
                       .segment_size = 64 * 1024 * 1024,
                       .fault = 4,
                       .logged = "commits go on in the journal's reserve"};
    scenario(&sp);
}

/* Shard 0's segment syncs keep failing for 5 s: the checkpoint cannot
 * run, and shard 1's writes go on being answered, in the journal's
 * reserve, then (the reserve full) with errors after a bounded wait,
 * never held until the rewrite. What was acknowledged survives a crash
 * (the scenario's child). */
static void
test_healthy_shard_answered(void **state)
{
    (void)state;
    struct shape sp = {.journal_size = 64 * 1024,
                       .segment_size = 64 * 1024 * 1024,
                       .fault = 4,
                       .fault_ms = 5000,
                       .max_write_ms = 2500,
                       .logged = "commits go on in the journal's reserve"};
    scenario(&sp);
}

/* Small segments: roll-overs meet the failure (the new segment's header
 * syncs, the old segment's records do not). */
static void
test_rollover_sync_fails(void **state)
{
    (void)state;
    struct shape sp = {.journal_size = 4 * 1024 * 1024,
                       .segment_size = 8 * 1024,
                       .fault = 3,
                       .logged = "roll-over: fdatasync seg"};
    scenario(&sp);
}

/* Every fdatasync fails, the journal's too: a failed commit's recovery
 * waits for the shards' rewrites before it switches the journal's file. */
static void
test_every_sync_fails(void **state)
{
    (void)state;
    struct shape sp = {.journal_size = 64 * 1024,
                       .segment_size = 16 * 1024,
                       .fault = 2,
                       .journal_failed = true};
    scenario(&sp);
}

/* The newest segment file of shard 0 (the active one). */
static void
active_segment(const char *dir, char *path, size_t cap)
{
    char d[2048];
    snprintf(d, sizeof(d), "%s/shard-000", dir);
    DIR *dh = opendir(d);
    assert_non_null(dh);
    unsigned best = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        unsigned id;
        char ext[8];
        if (sscanf(de->d_name, "%8x.%7s", &id, ext) == 2 &&
            strcmp(ext, "seg") == 0 && id > best) {
            best = id;
        }
    }
    closedir(dh);
    assert_true(best > 0);
    snprintf(path, cap, "%s/%08x.seg", d, best);
}

/* Acknowledged records whose segment pages the kernel dropped when the
 * sync failed (here: their bytes overwritten in the page cache, as a
 * dropped page reads back what the disk had) are written back from the
 * journal's current generation by the rewrite: none is lost. */
static void
test_dropped_pages_restored_from_journal(void **state)
{
    (void)state;
    struct cask_options o;
    tc_options(&o);
    o.shards = 1;
    o.sync = CASK_SYNC_ALWAYS;
    o.journal_size = 64 * 1024; /* the early writeback at 32 KiB */
    o.segment_size = 64 * 1024 * 1024;
    char *dir = tc_mkdtemp();
    struct cask *c = NULL;
    atomic_store(&fault, 0);
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    cask_io_set(&ops);
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    char k[32], v[256];
    for (int i = 0; i < 40; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), "new", i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
    /* Pages of the segment "dropped": 1 KiB of records reads as zeros. */
    char seg[4200];
    active_segment(dir, seg, sizeof(seg));
    int fd = open(seg, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char zeros[1024] = {0};
    assert_int_equal(pwrite(fd, zeros, sizeof(zeros), 2048),
                     (ssize_t)sizeof(zeros));
    close(fd);
    /* The segment's sync fails: the early writeback or a checkpoint
     * meets it (writes wait for a checkpoint that waits for the
     * rewrite, so the fault ends on a thread of its own). */
    tc_log[0] = '\0';
    atomic_store(&failed_calls, 0);
    atomic_store(&fault, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fault_off, NULL), 0);
    static unsigned char ok[4000];
    int n = 40;
    bool refused = false;
    for (; n < 4000 && atomic_load(&fault) != 0; n++) {
        key_of(k, sizeof(k), n);
        val_of(v, sizeof(v), "new", n);
        ok[n] = tc_set(c, k, v) == CASK_OK;
        refused |= !ok[n];
    }
    pthread_join(th, NULL);
    assert_true(refused);
    assert_true(recovered(c));
    struct cask_stats st;
    cask_stats(c, -1, &st);
    if (st.records_lost != 0 ||
        strstr(tc_log, "written back from the journal") == NULL) {
        fail_msg("records_lost %" PRIu64 "; log:\n%s", st.records_lost, tc_log);
    }
    for (int round = 0; round < 2; round++) {
        for (int j = 0; j < n; j++) {
            key_of(k, sizeof(k), j);
            val_of(v, sizeof(v), "new", j);
            /* a write answered with an error is not read back */
            assert_true(j < 40 || ok[j] ? tc_is(c, k, v) : tc_absent(c, k));
        }
        cask_close(&c);
        assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    }
    cask_close(&c);
    cask_io_set(NULL);
    tc_rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_checkpoint_sync_fails),
            cmocka_unit_test(test_healthy_shard_answered),
            cmocka_unit_test(test_rollover_sync_fails),
            cmocka_unit_test(test_every_sync_fails),
            cmocka_unit_test(test_dropped_pages_restored_from_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
