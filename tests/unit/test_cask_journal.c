/* test_cask_journal.c - the shared commit journal of --sync=always
 * (cask_journal.c): a writer process that dies without closing leaves
 * frames; segments then lose bytes as a power loss would drop unsynced
 * data (truncated here), and the replay must put back exactly the frames of
 * the current generation, in order, up to the first torn one; never a
 * stale generation's, never into a retired segment; and a journal write
 * or sync error must fail the writes it covered.
 */
#include "test_cask_seam.h"
#include "test_cask_util.h"

#include "storage/cask_internal.h"
#include "storage/cask_io.h"
#include "storage/cask_journal.h"
#include "storage/cask_retire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <xxhash.h>

#define SHARDS 2

static void
opts(struct cask_options *o, uint64_t journal_size)
{
    tc_options(o);
    o->shards = SHARDS;
    o->sync = CASK_SYNC_ALWAYS;
    o->journal_size = journal_size;
}

/* A key of the given shard: prefix + the smallest number that lands
 * there, every key the same length. */
static void
key_in(char *out, size_t cap, const char *prefix, unsigned shard, int *n)
{
    for (;; (*n)++) {
        snprintf(out, cap, "%s%04d", prefix, *n);
        if (XXH3_64bits(out, strlen(out)) % SHARDS == shard) {
            (*n)++;
            return;
        }
    }
}

/* Run fn on a store opened in dir in a child process that then exits
 * without closing it: what a kill -9 leaves. */
static void
crash_after(const char *dir, uint64_t journal_size, bool close_first,
            void (*fn)(struct cask *c))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cask_options o;
        struct cask *c;
        opts(&o, journal_size);
        if (cask_open(&c, dir, &o) != CASK_OK) {
            _exit(2);
        }
        fn(c);
        if (close_first) {
            cask_close(&c);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
seg_file(char *out, size_t cap, const char *dir, unsigned shard, uint32_t id)
{
    snprintf(out, cap, "%s/shard-%03u/%08x.seg", dir, shard, id);
}

static void
truncate_seg(const char *dir, unsigned shard, off_t len)
{
    char p[4200];
    seg_file(p, sizeof(p), dir, shard, 1);
    assert_int_equal(truncate(p, len), 0);
}

static int
replay(const char *dir, struct cask_journal_replay_stats *st)
{
    struct cask c;
    memset(&c, 0, sizeof(c));
    c.dir = (char *)dir;
    c.nshards = SHARDS;
    c.opt.log = tc_logger;
    return cask_journal_replay(&c, st);
}

static struct cask *
reopen(const char *dir)
{
    struct cask_options o;
    struct cask *c = NULL;
    opts(&o, 0);
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    return c;
}

static void
val_of(char *out, size_t cap, int i)
{
    snprintf(out, cap, "value-%04d", i);
}

static void
write_50(struct cask *c)
{
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        val_of(v, sizeof(v), i);
        if (tc_set(c, k, v) != CASK_OK) {
            _exit(3);
        }
    }
}

/* Every frame goes back into a segment that lost it, a whole segment's
 * records or a torn tail. */
static void
test_replay_restores(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    crash_after(dir, 0, false, write_50);
    truncate_seg(dir, 0, 32); /* all records gone, header kept */
    char p[4200];
    struct stat sb;
    seg_file(p, sizeof(p), dir, 1, 1);
    assert_int_equal(stat(p, &sb), 0);
    truncate_seg(dir, 1, sb.st_size - 7); /* a torn last record */

    struct cask_journal_replay_stats st;
    assert_int_equal(replay(dir, &st), 0);
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.frames, 50);
    assert_true(st.frames_written > 1);
    assert_int_equal(st.frames_missing, 0);
    assert_int_equal(stat(p, &sb), 0);

    struct cask *c = reopen(dir);
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        val_of(v, sizeof(v), i);
        assert_true(tc_is(c, k, v));
    }
    struct cask_stats cs;
    assert_int_equal(cask_stats(c, -1, &cs), 0);
    assert_int_equal(cs.bytes_truncated, 0);
    cask_close(&c);
    /* A clean close checkpoints: nothing is left to replay. */
    assert_int_equal(replay(dir, &st), 0);
    assert_int_equal(st.frames, 0);
    tc_rmrf(dir);
    free(dir);
}

/* Offset of frame n (0 = first) of the generation starting in file. */
static off_t
frame_at(int fd, int n)
{
    off_t at = CASK_JOURNAL_HDR;
    for (int i = 0; i < n; i++) {
        uint32_t len;
        assert_int_equal(pread(fd, &len, 4, at + 12), 4);
        at += CASK_JOURNAL_FRAME_HDR + len;
    }
    return at;
}

/* A damaged frame ends the replay: the frames after it, valid as they
 * are, are not applied (their batch was never acknowledged). */
static void
test_torn_frame(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    crash_after(dir, 0, false, write_50);
    char p[4200];
    snprintf(p, sizeof(p), "%s/journal.0", dir);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    off_t at = frame_at(fd, 20);
    char b;
    assert_int_equal(pread(fd, &b, 1, at + CASK_JOURNAL_FRAME_HDR + 50), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, at + CASK_JOURNAL_FRAME_HDR + 50), 1);
    close(fd);
    truncate_seg(dir, 0, 32);
    truncate_seg(dir, 1, 32);

    struct cask_journal_replay_stats st;
    assert_int_equal(replay(dir, &st), 0);
    assert_int_equal(st.frames, 20);
    assert_int_equal(st.frames_written, 20);

    struct cask *c = reopen(dir);
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        val_of(v, sizeof(v), i);
        if (i < 20) {
            assert_true(tc_is(c, k, v));
        } else {
            assert_true(tc_absent(c, k));
        }
    }
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

static char x_keys[10][32], y_key[32];

static void
write_x(struct cask *c)
{
    for (int i = 0; i < 10; i++) {
        if (tc_set(c, x_keys[i], "xxxxxxxxxx") != CASK_OK) {
            _exit(3);
        }
    }
}

static void
write_y(struct cask *c)
{
    if (tc_set(c, y_key, "yyyyyyyyyy") != CASK_OK) {
        _exit(3);
    }
}

/* Frames of an older generation left in a reused file are never taken
 * for new ones, even where a new frame ends exactly on an old one. */
static void
test_stale_generation(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    int n = 0;
    for (int i = 0; i < 10; i++) {
        key_in(x_keys[i], sizeof(x_keys[i]), "x", 0, &n);
    }
    n = 0;
    key_in(y_key, sizeof(y_key), "y", 1, &n);
    /* Generation 1 (journal.0) holds the x frames; the clean close
     * starts 2 (journal.1); the next open starts 3 in journal.0 over
     * the x frames, and writes one frame of the same size. */
    crash_after(dir, 0, true, write_x);
    crash_after(dir, 0, false, write_y);
    truncate_seg(dir, 0, 32); /* would show any x frame replayed */

    struct cask_journal_replay_stats st;
    assert_int_equal(replay(dir, &st), 0);
    assert_int_equal(st.generation, 3);
    assert_int_equal(st.frames, 1);

    struct cask *c = reopen(dir);
    assert_true(tc_is(c, y_key, "yyyyyyyyyy"));
    for (int i = 0; i < 10; i++) {
        assert_true(tc_absent(c, x_keys[i]));
    }
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* A frame whose segment a compaction or eviction retired is skipped:
 * the segment is neither recreated nor written. */
static void
test_retired_segment(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    crash_after(dir, 0, false, write_50);
    char sdir[4200], p[4300];
    snprintf(sdir, sizeof(sdir), "%s/shard-000", dir);
    uint32_t id = 1;
    int dir_rc;
    assert_int_equal(cask_retire_write(sdir, &id, 1, &dir_rc), 0);
    seg_file(p, sizeof(p), dir, 0, 1);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    off_t before = sb.st_size;
    truncate_seg(dir, 0, 32);
    /* shard 1's segment is gone as after the unlink of a retired one */
    char sdir1[4200];
    snprintf(sdir1, sizeof(sdir1), "%s/shard-001", dir);
    assert_int_equal(cask_retire_write(sdir1, &id, 1, &dir_rc), 0);
    seg_file(p, sizeof(p), dir, 1, 1);
    assert_int_equal(unlink(p), 0);

    struct cask_journal_replay_stats st;
    assert_int_equal(replay(dir, &st), 0);
    assert_int_equal(st.frames, 50);
    assert_int_equal(st.frames_missing, 50);
    assert_int_equal(st.frames_written, 0);
    assert_int_equal(stat(p, &sb), -1);
    seg_file(p, sizeof(p), dir, 0, 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 32);
    assert_true(before > 32);

    struct cask *c = reopen(dir);
    char k[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        assert_true(tc_absent(c, k));
    }
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

static void
write_400(struct cask *c)
{
    char k[32], v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        memcpy(v, k, 5);
        if (tc_set(c, k, v) != CASK_OK) {
            _exit(3);
        }
    }
}

/* Small journal files: many checkpoints (segments synced, generation
 * switched) under load, and a crash after them loses nothing. */
static void
test_checkpoints(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    crash_after(dir, 16 * 1024, false, write_400);
    struct cask_journal_replay_stats st;
    assert_int_equal(replay(dir, &st), 0);
    assert_true(st.generation > 5);

    struct cask *c = reopen(dir);
    char k[32], v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        memcpy(v, k, 5);
        assert_true(tc_is(c, k, v));
    }
    cask_close(&c);
    /* Another mode removes the journal after replaying it. */
    struct cask_options o;
    opts(&o, 0);
    o.sync = CASK_SYNC_INTERVAL;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    assert_true(tc_is(c, "c0399", v));
    char p[4200];
    snprintf(p, sizeof(p), "%s/journal.0", dir);
    assert_int_equal(access(p, F_OK), -1);
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* Journal faults: a failed write or fdatasync of the journal answers an
 * error to the writes it carried, never success; their puts are undone
 * (no later get returns them); writes are refused while the fault lasts
 * (the journal cannot resume) and taken again once it stops; what is
 * acknowledged after that survives a crash, and the undone puts stay
 * undone. */
static atomic_int fail_journal; /* 1: pwrite, 2: fdatasync */
static atomic_int journal_calls_failed;

static ssize_t
j_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (atomic_load(&fail_journal) == 1 && tc_fd_is_journal(fd)) {
        atomic_fetch_add(&journal_calls_failed, 1);
        errno = EIO;
        return -1;
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static int
j_fdatasync(int fd)
{
    if (atomic_load(&fail_journal) == 2 && tc_fd_is_journal(fd)) {
        atomic_fetch_add(&journal_calls_failed, 1);
        return EIO;
    }
    return cask_io_default()->fdatasync(fd);
}

static int fault_which;

/* Set k to v until it is acknowledged (the journal recovers a few
 * hundred ms after the fault stops at most); the last status. */
static int
set_retrying(struct cask *c, const char *k, const char *v)
{
    int rc = -1;
    for (int i = 0; i < 300 && rc != CASK_OK; i++) {
        rc = tc_set(c, k, v);
        if (rc != CASK_OK) {
            usleep(10 * 1000);
        }
    }
    return rc;
}

/* Runs in a store the caller opened; the checks that can fail exit the
 * child with a distinct code (crash_after) or fail the test. */
static void
fault_run(struct cask *c)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = j_pwrite;
    ops.fdatasync = j_fdatasync;
    cask_io_set(&ops);
    tc_log[0] = '\0';
    if (tc_set(c, "before", "ok") != CASK_OK ||
        tc_set(c, "victim", "v1") != CASK_OK) {
        _exit(10);
    }
    atomic_store(&journal_calls_failed, 0);
    atomic_store(&fail_journal, fault_which);
    if (tc_set(c, "victim", "v2") == CASK_OK ||
        tc_set(c, "during", "x") == CASK_OK) {
        _exit(11); /* an error acknowledged as success */
    }
    /* Refused while the journal cannot resume. */
    if (tc_set(c, "refused", "x") == CASK_OK) {
        _exit(12);
    }
    usleep(300 * 1000); /* a few failed attempts to resume */
    atomic_store(&fail_journal, 0);
    if (atomic_load(&journal_calls_failed) < 2) {
        _exit(13); /* the fault did not last: the test tests nothing */
    }
    /* A put answered with an error is never read back. */
    if (tc_is(c, "victim", "v2") || !tc_absent(c, "during")) {
        _exit(14);
    }
    if (set_retrying(c, "after", "ok") != CASK_OK ||
        tc_set(c, "after2", "ok") != CASK_OK) {
        _exit(15); /* never recovered */
    }
    struct cask_stats st;
    if (cask_stats(c, -1, &st) != CASK_OK || st.commit_failures < 1 ||
        st.commit_recoveries < 1 || st.writes_undone < 1 ||
        st.write_errors < 1 || st.failed) {
        _exit(16);
    }
    cask_io_set(NULL);
}

static void
check_after_fault(const char *dir)
{
    struct cask *c = reopen(dir);
    assert_true(tc_is(c, "before", "ok"));
    assert_true(tc_absent(c, "victim"));
    assert_true(tc_absent(c, "during"));
    assert_true(tc_absent(c, "refused"));
    assert_true(tc_is(c, "after", "ok"));
    assert_true(tc_is(c, "after2", "ok"));
    assert_int_equal(tc_set(c, "again", "ok"), CASK_OK);
    cask_close(&c);
}

static void
journal_fault(int which)
{
    fault_which = which;
    /* In this process, closed cleanly. */
    char *dir = tc_mkdtemp();
    struct cask *c = reopen(dir);
    fault_run(c);
    cask_close(&c);
    check_after_fault(dir);
    tc_rmrf(dir);
    free(dir);
    /* In a child killed without a close: the writes acknowledged after
     * the recovery are durable, the undone puts stay undone. */
    dir = tc_mkdtemp();
    crash_after(dir, 0, false, fault_run);
    check_after_fault(dir);
    tc_rmrf(dir);
    free(dir);
}

static void
test_journal_eio_write(void **state)
{
    (void)state;
    journal_fault(1);
}

static void
test_journal_eio_sync(void **state)
{
    (void)state;
    journal_fault(2);
}

/* The undo of a failed commit's puts finds them where the shard kept
 * its last appends going, without reading the active segment through:
 * the bytes read from segment files while the store recovers are a few
 * records' headers and keys, not the segment's hundreds of KiB. */
static atomic_llong seg_read_bytes;

static ssize_t
counting_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t got = cask_io_default()->pread(fd, buf, n, off);
    char t[4200];
    size_t k;
    if (got > 0 && tc_fd_path(fd, t, sizeof(t)) && (k = strlen(t)) > 4 &&
        memcmp(t + k - 4, ".seg", 4) == 0) {
        atomic_fetch_add(&seg_read_bytes, got);
    }
    return got;
}

static void
test_undo_without_scan(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = j_pwrite;
    ops.fdatasync = j_fdatasync;
    ops.pread = counting_pread;
    cask_io_set(&ops);
    struct cask *c = reopen(dir);
    char k[32], v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    /* about 380 KiB in each shard's active segment */
    for (int i = 0; i < 3600; i++) {
        snprintf(k, sizeof(k), "fill%04d", i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
    assert_int_equal(tc_set(c, "victim", "v1"), CASK_OK);
    atomic_store(&seg_read_bytes, 0);
    atomic_store(&journal_calls_failed, 0);
    atomic_store(&fail_journal, 1);
    assert_int_not_equal(tc_set(c, "victim", "v2"), CASK_OK);
    atomic_store(&fail_journal, 0);
    assert_int_equal(set_retrying(c, "after", "ok"), CASK_OK);
    long long read = atomic_load(&seg_read_bytes);
    struct cask_stats st;
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    assert_true(st.commit_recoveries >= 1 && st.writes_undone >= 1);
    if (read > 16 * 1024) {
        fail_msg("the undo read %lld bytes of segments", read);
    }
    assert_true(tc_absent(c, "victim"));
    cask_close(&c);
    cask_io_set(NULL);
    c = reopen(dir);
    assert_true(tc_absent(c, "victim"));
    assert_true(tc_is(c, "after", "ok"));
    assert_true(tc_is(c, "fill0042", v));
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* ---- kill points with a power loss ------------------------------------
 *
 * A child process runs writers (sets and deletes) on a store with small
 * segments and a small journal, so that roll-overs, checkpoints and
 * generation switches happen all the time, and dies (_exit) at the Nth
 * journal write, journal fdatasync or segment fdatasync, before or after
 * the call. Through the syscall seam it records, per segment file, the
 * size its last fdatasync covered; the parent then cuts every segment back
 * to that size, as a power loss could, and opens the store: every
 * acknowledged operation must be there, nothing deleted back, no value
 * from another key. */

#define KW        4   /* writer threads */
#define KOPS      400 /* operations per writer */
#define KSEGS     256
#define KPATH_MAX 300

enum kill_target { K_JWRITE, K_JSYNC, K_SEGSYNC, K_SEGWRITE };

struct kshared {
    int acked[KW]; /* operations acknowledged, per writer */
    struct {
        char path[KPATH_MAX];
        long long synced;
    } seg[KSEGS];
    int nseg;
};

static struct kshared *ks;
static pthread_mutex_t ks_mu = PTHREAD_MUTEX_INITIALIZER;
static enum kill_target k_target;
static int k_n, k_after;
static atomic_int k_count;

static bool
ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The call numbered mine (from 1) of target t: die if it is the chosen
 * one, at the chosen side of the call. */
static void
k_maybe_die(int mine, bool after)
{
    if (mine == k_n && after == (k_after != 0)) {
        _exit(9);
    }
}

static ssize_t
k_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    char p[KPATH_MAX];
    bool known = tc_fd_path(fd, p, sizeof(p));
    bool j = known && strstr(p, "/journal.") != NULL;
    int mine = 0;
    if ((j && k_target == K_JWRITE) ||
        (known && ends_with(p, ".seg") && k_target == K_SEGWRITE)) {
        mine = atomic_fetch_add(&k_count, 1) + 1;
        k_maybe_die(mine, false);
    }
    ssize_t r = cask_io_default()->pwrite(fd, buf, n, off);
    k_maybe_die(mine, true);
    return r;
}

static int
k_fdatasync(int fd)
{
    char p[KPATH_MAX];
    if (!tc_fd_path(fd, p, sizeof(p))) {
        return cask_io_default()->fdatasync(fd);
    }
    bool j = strstr(p, "/journal.") != NULL;
    bool seg = ends_with(p, ".seg");
    enum kill_target t = j ? K_JSYNC : K_SEGSYNC;
    int mine = 0;
    if ((j || seg) && t == k_target) {
        mine = atomic_fetch_add(&k_count, 1) + 1;
        k_maybe_die(mine, false);
    }
    struct stat st;
    bool sized = seg && fstat(fd, &st) == 0;
    int rc = cask_io_default()->fdatasync(fd);
    if (rc == 0 && sized) {
        pthread_mutex_lock(&ks_mu);
        int i;
        for (i = 0; i < ks->nseg; i++) {
            if (strcmp(ks->seg[i].path, p) == 0) {
                break;
            }
        }
        if (i == ks->nseg && i < KSEGS) {
            snprintf(ks->seg[i].path, KPATH_MAX, "%s", p);
            ks->nseg++;
        }
        /* The largest size a finished sync covered: syncs of one file
         * may finish out of order (a roll-over's, a checkpoint's). */
        if (i < KSEGS && (long long)st.st_size > ks->seg[i].synced) {
            ks->seg[i].synced = (long long)st.st_size;
        }
        pthread_mutex_unlock(&ks_mu);
    }
    k_maybe_die(mine, true);
    return rc;
}

/* Operation i of writer w sets key (w, i), except every third one, which
 * deletes the key of operation i - 2. */
static void
k_key(char *out, size_t cap, int w, int i)
{
    snprintf(out, cap, "kp-%d-%04d", w, i);
}

static void
k_val(char *out, size_t cap, int w, int i)
{
    /* different lengths, so a value from another record shows */
    int n = snprintf(out, cap, "v-%d-%04d-", w, i);
    for (int k = 0; k < (i * 37) % 300 && n + 1 < (int)cap; k++) {
        out[n++] = (char)('a' + (i + k) % 26);
    }
    out[n] = '\0';
}

static bool
k_is_delete(int i)
{
    return i % 3 == 2;
}

struct kwriter {
    struct cask *c;
    int w;
};

static void *
k_writer(void *arg)
{
    struct kwriter *kw = arg;
    char k[64], v[400];
    for (int i = 0; i < KOPS; i++) {
        int rc;
        if (k_is_delete(i)) {
            k_key(k, sizeof(k), kw->w, i - 2);
            rc = cask_delete(kw->c, k, strlen(k), 0);
        } else {
            k_key(k, sizeof(k), kw->w, i);
            k_val(v, sizeof(v), kw->w, i);
            rc = tc_set(kw->c, k, v);
        }
        if (rc != CASK_OK) {
            _exit(4);
        }
        __atomic_store_n(&ks->acked[kw->w], i + 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* Whether key (w, j) must be present after the first n operations of w,
 * and absent: its set is among them and no delete of it. */
static int
k_state(int w, int j, int n)
{
    (void)w;
    if (k_is_delete(j) || j >= n) {
        return 0; /* never set (a delete's own index), or not yet */
    }
    bool deleted = j + 2 < n && k_is_delete(j + 2);
    return deleted ? 0 : 1;
}

/* Each segment back to what its last sync covered. */
static void
power_loss(void)
{
    for (int i = 0; i < ks->nseg; i++) {
        struct stat st;
        if (stat(ks->seg[i].path, &st) == 0 && st.st_size > ks->seg[i].synced) {
            assert_int_equal(truncate(ks->seg[i].path, ks->seg[i].synced), 0);
        }
    }
}

static void
kill_point(enum kill_target target, int n, int after, int replay_n)
{
    char *dir = tc_mkdtemp();
    memset(ks, 0, sizeof(*ks));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cask_io_ops ops = *cask_io_default();
        ops.pwrite = k_pwrite;
        ops.fdatasync = k_fdatasync;
        k_target = target;
        k_n = n;
        k_after = after;
        atomic_store(&k_count, 0);
        cask_io_set(&ops);
        struct cask_options o;
        struct cask *c;
        opts(&o, 16 * 1024);
        o.segment_size = 16 * 1024;
        if (cask_open(&c, dir, &o) != CASK_OK) {
            _exit(2);
        }
        pthread_t th[KW];
        struct kwriter kw[KW];
        for (int w = 0; w < KW; w++) {
            kw[w].c = c;
            kw[w].w = w;
            pthread_create(&th[w], NULL, k_writer, &kw[w]);
        }
        for (int w = 0; w < KW; w++) {
            pthread_join(th[w], NULL);
        }
        _exit(0); /* no close: nothing more is synced */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    assert_true(code == 0 || code == 9);
    fprintf(stderr, "kill %d at %d%s: %s, acked %d %d %d %d, %d segments\n",
            (int)target, n, after ? " after" : "",
            code == 9 ? "killed" : "ran out", ks->acked[0], ks->acked[1],
            ks->acked[2], ks->acked[3], ks->nseg);
    power_loss();
    if (replay_n > 0) {
        /* A second crash, at the replay's Nth segment write, and a
         * second power loss: the next replay starts over. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct cask_io_ops ops = *cask_io_default();
            ops.pwrite = k_pwrite;
            ops.fdatasync = k_fdatasync;
            k_target = K_SEGWRITE;
            k_n = replay_n;
            k_after = 0;
            atomic_store(&k_count, 0);
            cask_io_set(&ops);
            struct cask_options o;
            struct cask *c2;
            opts(&o, 16 * 1024);
            o.segment_size = 16 * 1024;
            _exit(cask_open(&c2, dir, &o) == CASK_OK ? 0 : 2);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        fprintf(stderr, "  replay killed at segment write %d: %s\n", replay_n,
                WEXITSTATUS(status) == 9 ? "killed" : "ran out");
        assert_true(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 9);
        power_loss();
    }
    struct cask *c = reopen(dir);
    int bad = 0;
    char k[64], v[400];
    for (int w = 0; w < KW; w++) {
        int a = ks->acked[w];
        for (int j = 0; j < KOPS; j++) {
            k_key(k, sizeof(k), w, j);
            k_val(v, sizeof(v), w, j);
            int lo = k_state(w, j, a), hi = k_state(w, j, a + 1);
            bool there = tc_is(c, k, v);
            bool gone = tc_absent(c, k);
            bool ok = (there && (lo || hi)) || (gone && (!lo || !hi));
            if (!ok) {
                if (bad++ < 5) {
                    fprintf(stderr,
                            "kill %d at %d%s: key %s: there %d gone %d, "
                            "acked %d\n",
                            (int)target, n, after ? " after" : "", k, there,
                            gone, a);
                }
            }
        }
    }
    cask_close(&c);
    assert_int_equal(bad, 0);
    tc_rmrf(dir);
    free(dir);
}

static void
test_kill_points(void **state)
{
    (void)state;
    static const int ns[] = {1, 7, 40, 150, 600};
    ks = mmap(NULL, sizeof(*ks), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ks != MAP_FAILED);
    for (int t = K_JWRITE; t <= K_SEGSYNC; t++) {
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
            kill_point((enum kill_target)t, ns[i], 0, 0);
            kill_point((enum kill_target)t, ns[i], 1, 0);
        }
    }
    /* and none at all: the whole run, then the power loss */
    kill_point(K_JWRITE, -1, 0, 0);
    /* a crash during the replay that follows */
    kill_point(K_JSYNC, 150, 0, 1);
    kill_point(K_JSYNC, 150, 0, 5);
    kill_point(K_SEGSYNC, 40, 0, 3);
    munmap(ks, sizeof(*ks));
}

/* No space for the journal files: the store still opens under always,
 * commits by syncing the shards, and leaves no journal behind. */
static ssize_t
nospace_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    char p[KPATH_MAX];
    if (tc_fd_path(fd, p, sizeof(p)) && strstr(p, "/journal.") != NULL) {
        errno = ENOSPC;
        return -1;
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static void
test_no_space_for_journal(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = nospace_pwrite;
    cask_io_set(&ops);
    tc_log[0] = '\0';
    struct cask *c = reopen(dir);
    assert_non_null(strstr(tc_log, "no space for the commit journal"));
    char p[4200];
    snprintf(p, sizeof(p), "%s/journal.0", dir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/journal.0.tmp", dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(tc_set(c, "k", "v"), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(c, -1, &st), 0);
    assert_true(st.syncs > 0 && st.synced_writes >= 1);
    cask_close(&c);
    cask_io_set(NULL);
    c = reopen(dir);
    assert_true(tc_is(c, "k", "v"));
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_replay_restores),
            cmocka_unit_test(test_torn_frame),
            cmocka_unit_test(test_stale_generation),
            cmocka_unit_test(test_retired_segment),
            cmocka_unit_test(test_checkpoints),
            cmocka_unit_test(test_journal_eio_write),
            cmocka_unit_test(test_journal_eio_sync),
            cmocka_unit_test(test_undo_without_scan),
            cmocka_unit_test(test_kill_points),
            cmocka_unit_test(test_no_space_for_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
