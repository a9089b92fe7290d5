/* test_cask_trust.c - one regression test per storage finding of issue 8
 * ("storage you can trust"): acknowledged writes and deletes survive a
 * process crash in every sync mode, expired items stay expired, errors are
 * never acknowledged, recovery keeps what it can, compaction commits
 * atomically. Faults come through the cask_io seam.
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_io.h"
#include "storage/cask_keydir.h"
#include "tests/unit/test_cask_seam.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

/* ---- fault injection through the cask_io seam ---- */

static int fail_errno;       /* errno injected, 0 = none */
static int fail_read_errno;  /* errno injected on segment preads, 0 = none */
static int fail_count;       /* writes failed so far */
static int slow_read_ms;     /* every pread takes this long, 0 = no delay */
static const char *fast_key; /* ... but reads of this key's records */
static int slow_sync_ms;     /* every fdatasync takes this long */
static const char *fail_on;  /* only files whose path ends so, NULL = any */

static ino_t fail_ino; /* only this inode, 0 = by path (fail_on) */

/* Whether writes to fd fail: it is fail_ino, or its path ends with
 * fail_on. */
static bool
fd_matches(int fd)
{
    struct stat st;
    if (fail_ino != 0) {
        return fstat(fd, &st) == 0 && st.st_ino == fail_ino;
    }
    if (fail_on == NULL) {
        return true;
    }
    char path[4096];
    if (!tc_fd_path(fd, path, sizeof(path))) {
        return false;
    }
    size_t n = strlen(path), sl = strlen(fail_on);
    return n >= sl && strcmp(path + n - sl, fail_on) == 0;
}

static ssize_t
faulty_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fail_errno != 0 && fd_matches(fd)) {
        fail_count++;
        errno = fail_errno;
        return -1;
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static int exit_at_unlink; /* _exit(0) at this unlink call, 0 = never */
static int unlink_calls;

static int
slow_fdatasync(int fd)
{
    if (slow_sync_ms != 0) {
        usleep((useconds_t)slow_sync_ms * 1000);
    }
    return cask_io_default()->fdatasync(fd);
}

static int
crashing_unlink(const char *path)
{
    if (exit_at_unlink != 0 && ++unlink_calls == exit_at_unlink) {
        _exit(0);
    }
    return cask_io_default()->unlink(path);
}

static ssize_t
faulty_pread(int fd, void *buf, size_t n, off_t off)
{
    if (fail_read_errno != 0) {
        errno = fail_read_errno;
        return -1;
    }
    ssize_t got = cask_io_default()->pread(fd, buf, n, off);
    /* A read starting at a record of fast_key (its key at byte 44) is the
     * request's own look at its own key: not delayed. */
    size_t fk = fast_key != NULL ? strlen(fast_key) : 0;
    bool fast = fk != 0 && got >= (ssize_t)(44 + fk) &&
                memcmp((char *)buf + 44, fast_key, fk) == 0;
    if (slow_read_ms != 0 && !fast) {
        usleep((useconds_t)slow_read_ms * 1000);
    }
    return got;
}

static void inject(int err, const char *suffix);

/* Fail writes to the store's state file (updated in place). */
static void
inject_state(struct fx *f, int err)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(stat(path, &st), 0);
    inject(err, NULL);
    fail_ino = st.st_ino;
}

static void
inject(int err, const char *suffix)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = faulty_pwrite;
    ops.pread = faulty_pread;
    ops.unlink = crashing_unlink;
    ops.fdatasync = slow_fdatasync;
    fail_errno = err;
    fail_count = 0;
    fail_on = suffix;
    fail_ino = 0;
    cask_io_set(&ops);
}

static int
setup(void **state)
{
    return tc_fx_setup(state, tc_one_shard);
}

static int
teardown(void **state)
{
    fail_errno = fail_read_errno = slow_read_ms = slow_sync_ms = 0;
    fast_key = NULL;
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

/* A flush_all whose flush point cannot be persisted fails and changes
 * nothing, now or after a restart. */
static void
test_failed_flush_changes_nothing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "v"), CASK_OK);
    inject_state(f, ENOSPC);
    assert_int_equal(cask_flush(f->c, 0), ENOSPC);
    assert_true(tc_is(f->c, "k", "v"));
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    fail_errno = 0;
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "k", "v"));
    assert_int_equal(cask_flush(f->c, 0), CASK_OK);
    assert_true(tc_absent(f->c, "k"));
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "k"));
}

/* When the state file cannot take the next block of cas numbers, the write
 * that needed one fails instead of being acknowledged with a cas a restart
 * could hand out again. */
static void
test_cas_reservation_failure_not_acked(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "first"), CASK_OK);
    inject_state(f, ENOSPC);
    int rc = CASK_OK;
    for (unsigned i = 0; i < (1u << 20) + 16 && rc == CASK_OK; i++) {
        rc = tc_set(f->c, "k", "again");
    }
    assert_int_equal(rc, ENOSPC);
    assert_true(tc_is(f->c, "k", "again"));
    fail_errno = 0;
    assert_int_equal(tc_set(f->c, "k", "after"), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "k", "after"));
}

/* An edited or damaged state file (no valid slot) is not trusted: its
 * flush_cas could silently hide every key. The store opens; the flush
 * point is lost with the file, so every item on disk counts as flushed
 * (a flush_all may have invalidated it), which the log says with its
 * cost; the damaged file is kept beside the store; what is written from
 * then on is kept. */
static void
test_state_checksum(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "v"), CASK_OK);
    cask_close(&f->c);
    char path[4096], kept[4200];
    static char buf[16384], got[16384];
    snprintf(path, sizeof(path), "%s/state", f->dir);
    snprintf(kept, sizeof(kept), "%s.damaged", path);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    /* the file holds two copies of the state: edit both */
    char *p = strstr(buf, "flush_cas 0");
    assert_non_null(p);
    p[10] = '9';
    char *q = memmem(p + 1, n - (size_t)(p + 1 - buf), "flush_cas 0", 11);
    assert_non_null(q);
    q[10] = '9';
    rewind(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    if (strstr(tc_log, "is damaged (no valid slot)") == NULL ||
        strstr(tc_log, "the 1 items found on disk are treated as flushed") ==
                NULL) {
        fail_msg("a damaged state file's cost not logged; log:\n%s", tc_log);
    }
    assert_true(tc_absent(f->c, "k"));
    fp = fopen(kept, "r");
    assert_non_null(fp);
    assert_int_equal(fread(got, 1, sizeof(got), fp), n);
    fclose(fp);
    assert_memory_equal(got, buf, n);
    assert_int_equal(tc_set(f->c, "n", "new"), CASK_OK);
    for (int round = 0; round < 2; round++) {
        tc_log[0] = '\0';
        tc_fx_reopen(f);
        assert_null(strstr(tc_log, "treated as flushed"));
        assert_true(tc_absent(f->c, "k"));
        assert_true(tc_is(f->c, "n", "new"));
    }
}

/* A bit flipped in the state file's newest slot after a flush_all: the
 * other slot must hold the same state (every update is written to both),
 * not the one from before the flush, or the flushed item comes back. */
static void
test_state_newest_slot_damaged(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "old", "flushed"), CASK_OK);
    assert_int_equal(cask_flush(f->c, tc_now), CASK_OK);
    assert_int_equal(tc_set(f->c, "after", "kept"), CASK_OK);
    cask_close(&f->c);
    char path[4096];
    static char buf[8192];
    snprintf(path, sizeof(path), "%s/state", f->dir);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof(buf), fp), sizeof(buf));
    /* the slot with the highest generation */
    unsigned long long gen[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const char *g = strstr(buf + i * 4096, "generation ");
        assert_non_null(g);
        gen[i] = strtoull(g + 11, NULL, 10);
    }
    int newest = gen[1] > gen[0] ? 1 : 0;
    char *fc = strstr(buf + newest * 4096, "flush_cas ");
    assert_non_null(fc);
    fc[10] ^= 0x01; /* a digit the checksum covers */
    rewind(fp);
    assert_int_equal(fwrite(buf, 1, sizeof(buf), fp), sizeof(buf));
    fclose(fp);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    if (!tc_absent(f->c, "old")) {
        fail_msg("a flushed item is back after the newest state slot "
                 "(generation %llu of %llu, %llu) was damaged; log:\n%s",
                 gen[newest], gen[0], gen[1], tc_log);
    }
    assert_true(tc_is(f->c, "after", "kept"));
}

/* A missing state file costs what a damaged one does: the flush point
 * is gone, so nothing on disk can be told apart from what a flush_all
 * invalidated. A flushed item must not come back; every item found is
 * treated as flushed, logged with the count; new writes are kept. */
static void
test_state_missing_keeps_flush(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "old", "flushed"), CASK_OK);
    assert_int_equal(cask_flush(f->c, tc_now), CASK_OK);
    uint64_t cas_before = 0;
    assert_int_equal(cask_store(f->c, CASK_SET, "after", 5, "kept", 4, 0, 0, 0,
                                &cas_before),
                     CASK_OK);
    assert_true(tc_absent(f->c, "old"));
    cask_close(&f->c);
    char path[4096];
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(unlink(path), 0);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_absent(f->c, "old")); /* not "flushed" */
    if (strstr(tc_log, "is missing") == NULL ||
        strstr(tc_log, "items found on disk are treated as flushed") == NULL) {
        fail_msg("a missing state file's cost not logged; log:\n%s", tc_log);
    }
    assert_true(tc_absent(f->c, "after")); /* the cost, logged */
    assert_int_equal(access(path, F_OK), 0);
    /* cas numbers skip far ahead: records compacted away may have held
     * numbers above every one left on disk, and none is handed out twice */
    uint64_t cas_new = 0;
    assert_int_equal(
            cask_store(f->c, CASK_SET, "n", 1, "new", 3, 0, 0, 0, &cas_new),
            CASK_OK);
    if (cas_new < cas_before + (1ull << 32)) {
        fail_msg("cas %" PRIu64 " after a lost state file, %" PRIu64
                 " before: no gap",
                 cas_new, cas_before);
    }
    for (int round = 0; round < 2; round++) {
        tc_fx_reopen(f);
        assert_true(tc_absent(f->c, "old"));
        assert_true(tc_absent(f->c, "after"));
        assert_true(tc_is(f->c, "n", "new"));
    }
}

/* A store on a full disk opens and serves reads; writes fail until space
 * returns. */
static void
test_opens_on_full_disk(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "v"), CASK_OK);
    cask_close(&f->c);
    inject(ENOSPC, NULL);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "k", "v"));
    assert_int_equal(tc_set(f->c, "k", "w"), ENOSPC);
    assert_true(tc_is(f->c, "k", "v"));
    fail_errno = 0;
    assert_int_equal(tc_set(f->c, "k", "w"), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "k", "w"));
}

/* Path of the one segment file of shard 0 with the given id. */
static void
seg_path(struct fx *f, unsigned id, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/shard-000/%08x.%s", f->dir, id, ext);
}

static off_t
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Offset of the first occurrence of needle in the file, or -1. */
static off_t
find_in_file(const char *path, const char *needle)
{
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    size_t nl = strlen(needle);
    for (ssize_t i = 0; n > 0 && i + (ssize_t)nl <= n; i++) {
        if (memcmp(buf + i, needle, nl) == 0) {
            return i;
        }
    }
    return -1;
}

static void
poke(const char *path, off_t off, char ch)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &ch, 1, off), 1);
    close(fd);
}

/* A segment shortened underneath a running store: reading a value there is
 * an error, not a SIGBUS. */
static void
test_short_segment_read_is_error(void **state)
{
    struct fx *f = *state;
    set_big(f->c, "k", 'v');
    tc_fx_reopen(f); /* k now sits in closed segment 1 */
    char path[4096];
    seg_path(f, 1, "seg", path, sizeof(path));
    assert_int_equal(truncate(path, 100), 0);
    struct cask_item it;
    char *val = NULL;
    int rc = cask_get(f->c, "k", 1, &it, &val);
    assert_int_not_equal(rc, CASK_OK);
    assert_null(val);
}

/* A read error while opening is reported and cuts nothing. */
static void
test_read_error_at_open_keeps_data(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "v"), CASK_OK);
    cask_close(&f->c);
    char path[4096];
    seg_path(f, 1, "seg", path, sizeof(path));
    off_t before = file_size(path);
    seg_path(f, 1, "hint", path, sizeof(path));
    unlink(path); /* force a scan of the segment */
    seg_path(f, 1, "seg", path, sizeof(path));
    inject(0, NULL);
    fail_read_errno = EIO;
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), EIO);
    assert_null(f->c);
    assert_int_equal(file_size(path), before);
    fail_read_errno = 0;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "k", "v"));
}

/* One damaged record inside a closed segment costs that record only: the
 * records after it, a tombstone among them, are kept. */
static void
test_closed_segment_damage_skipped(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "x", "deleted later"), CASK_OK);
    tc_fx_reopen(f); /* x's put sits in segment 1 */
    assert_int_equal(tc_set(f->c, "a", "first"), CASK_OK);
    assert_int_equal(tc_set(f->c, "b", "DAMAGED-VALUE"), CASK_OK);
    assert_int_equal(tc_set(f->c, "c", "after"), CASK_OK);
    assert_int_equal(cask_delete(f->c, "x", 1, 0), CASK_OK);
    tc_fx_reopen(f); /* segment 2 is closed; a new one takes writes */
    char path[4096];
    seg_path(f, 2, "hint", path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    seg_path(f, 2, "seg", path, sizeof(path));
    off_t at = find_in_file(path, "DAMAGED-VALUE");
    assert_true(at > 0);
    off_t size = file_size(path);
    cask_close(&f->c);
    poke(path, at + 3, 'X');
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "a", "first"));
    assert_true(tc_absent(f->c, "b"));
    assert_true(tc_is(f->c, "c", "after"));
    assert_true(tc_absent(f->c, "x"));
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.bytes_damaged > 0);
    assert_int_equal(st.bytes_truncated, 0);
    /* never cut: moved whole to the quarantine, its records still needed
     * copied to a new segment */
    char q[4200];
    snprintf(q, sizeof(q), "%s/quarantine/shard-000/00000002.seg", f->dir);
    assert_int_equal(file_size(q), size);
    assert_int_equal(st.quarantined, 1);
    assert_non_null(strstr(tc_log, "damaged bytes"));
    /* compaction skips the damage too and keeps the rest */
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "c", "after"));
    assert_true(tc_absent(f->c, "x"));
}

/* A hint that cannot be written is tried once, not every second. */
static void
test_hint_writer_does_not_retry(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    f->o.segment_size = 4096;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    inject(ENOSPC, ".hint.tmp");
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        set_big(f->c, k, 'h');
    }
    usleep(1500 * 1000);
    int first = fail_count;
    assert_true(first > 0);
    usleep(2500 * 1000);
    assert_int_equal(fail_count, first);
    fail_errno = 0;
}

/* A compaction that drops a tombstone and the older put it hid, where the
 * put sits in a higher-id segment (a copy made by an earlier compaction),
 * killed at each unlink of its inputs: the key must stay deleted. */
static void
test_compaction_crash_no_resurrection(void **state)
{
    struct fx *f = *state;
    for (int at = 1; at <= 4; at++) {
        tc_fx_reopen(f);
        char k[16];
        snprintf(k, sizeof(k), "key%d", at);
        assert_int_equal(tc_set(f->c, k, "v"), CASK_OK);
        assert_int_equal(tc_set(f->c, "dead", "1"), CASK_OK);
        assert_int_equal(tc_set(f->c, "dead", "2"), CASK_OK);
        tc_fx_reopen(f); /* the put sits in a closed segment */
        /* copy the put into a compaction output (a higher id) */
        assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
        assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
        tc_fx_reopen(f); /* the tombstone sits in a lower-id segment */
        cask_close(&f->c);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct cask *c = NULL;
            if (cask_open(&c, f->dir, &f->o) != CASK_OK) {
                _exit(1);
            }
            inject(0, NULL);
            unlink_calls = 0;
            exit_at_unlink = at;
            cask_compact(c, -1, true);
            _exit(2); /* the compaction did fewer unlinks than `at` */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_not_equal(WEXITSTATUS(status), 1);
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        assert_true(tc_absent(f->c, k));
    }
}

/* ---- a file system that fills up: blocks are tracked per inode; once
 * full, fallocate fails and a write past a file's allocated end fails ---- */

static bool disk_full;
static struct {
    ino_t ino;
    uint64_t end;
} allocs[256];
static unsigned nallocs;

static uint64_t *
alloc_end(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return NULL;
    }
    for (unsigned i = 0; i < nallocs; i++) {
        if (allocs[i].ino == st.st_ino) {
            return &allocs[i].end;
        }
    }
    if (nallocs == sizeof(allocs) / sizeof(allocs[0])) {
        return NULL;
    }
    /* first seen: what the real file system allocated to it already */
    uint64_t blocks = (uint64_t)st.st_blocks * 512;
    allocs[nallocs].ino = st.st_ino;
    allocs[nallocs].end =
            blocks > (uint64_t)st.st_size ? blocks : (uint64_t)st.st_size;
    return &allocs[nallocs++].end;
}

static ssize_t
fs_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    uint64_t *end = alloc_end(fd);
    if (end == NULL) {
        errno = EIO;
        return -1;
    }
    if (disk_full && (uint64_t)off + n > *end) {
        errno = ENOSPC;
        return -1;
    }
    ssize_t w = cask_io_default()->pwrite(fd, buf, n, off);
    if (w > 0 && (uint64_t)off + (uint64_t)w > *end) {
        *end = (uint64_t)off + (uint64_t)w;
    }
    return w;
}

static int
fs_fallocate(int fd, off_t off, off_t len)
{
    uint64_t *end = alloc_end(fd);
    if (end == NULL || disk_full) {
        errno = end == NULL ? EIO : ENOSPC;
        return -1;
    }
    int rc = cask_io_default()->fallocate(fd, off, len);
    if (rc == 0 && (uint64_t)(off + len) > *end) {
        *end = (uint64_t)(off + len);
    }
    return rc;
}

static int
fs_ftruncate(int fd, off_t len)
{
    uint64_t *end = alloc_end(fd);
    int rc = cask_io_default()->ftruncate(fd, len);
    if (rc == 0 && end != NULL) {
        *end = (uint64_t)len; /* blocks past the new end are freed */
    }
    return rc;
}

/* Sets go on while the space reserved ahead lasts, then fail. */
static void
fill_until_full(struct cask *c)
{
    static int n;
    int rc = CASK_OK;
    char v[4000];
    memset(v, 'f', sizeof(v));
    for (int i = 0; i < 1000 && rc == CASK_OK; i++) {
        char k[16];
        snprintf(k, sizeof(k), "fill%d", n++);
        rc = cask_store(c, CASK_SET, k, strlen(k), v, sizeof(v), 0, 0, 0, NULL);
    }
    assert_int_equal(rc, ENOSPC);
}

/* Deletes keep working on a full disk, across a restart too; sets fail
 * until space returns. */
static void
test_deletes_work_on_full_disk(void **state)
{
    struct fx *f = *state;
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = fs_pwrite;
    ops.fallocate = fs_fallocate;
    ops.ftruncate = fs_ftruncate;
    cask_io_set(&ops);
    disk_full = false;
    nallocs = 0;
    tc_fx_reopen(f);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tc_set(f->c, keys[i], "value"), CASK_OK);
    }
    disk_full = true;
    fill_until_full(f->c);
    assert_int_equal(cask_delete(f->c, "a", 1, 0), CASK_OK);
    assert_true(tc_absent(f->c, "a"));
    tc_fx_reopen(f); /* still full */
    assert_true(tc_absent(f->c, "a"));
    assert_true(tc_is(f->c, "b", "value"));
    fill_until_full(f->c);
    assert_int_equal(cask_delete(f->c, "b", 1, 0), CASK_OK);
    assert_int_equal(cask_flush(f->c, tc_now + 100), CASK_OK);
    disk_full = false;
    assert_int_equal(tc_set(f->c, "e", "value"), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "a"));
    assert_true(tc_absent(f->c, "b"));
    assert_true(tc_is(f->c, "c", "value"));
    assert_true(tc_is(f->c, "e", "value"));
}

/* A touch writes a small record (key, cas, expiry), not a copy of the
 * value; its expiry survives restarts and compaction of either side. */
static void
test_touch_is_small_record(void **state)
{
    struct fx *f = *state;
    enum { BIG = 100 * 1024 };
    char *v = malloc(BIG);
    assert_non_null(v);
    memset(v, 't', BIG);
    assert_int_equal(cask_store(f->c, CASK_SET, "k", 1, v, BIG, 7, 0, 0, NULL),
                     CASK_OK);
    assert_int_equal(tc_set(f->c, "filler", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "filler", "2"), CASK_OK);
    tc_fx_reopen(f);
    /* bytes written, not the file's size (extended ahead of appends) */
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    uint64_t before = cs.disk_bytes;
    struct cask_item it;
    char *got = NULL;
    assert_int_equal(cask_touch(f->c, "k", 1, tc_now + 100, &it, &got),
                     CASK_OK);
    assert_int_equal(it.vlen, BIG);
    assert_memory_equal(got, v, BIG);
    free(got);
    assert_int_equal(cask_touch(f->c, "k", 1, tc_now + 50, NULL, NULL),
                     CASK_OK);
    cask_stats(f->c, -1, &cs);
    assert_true(cs.disk_bytes - before < 1024);
    tc_fx_reopen(f);
    assert_int_equal(cask_get(f->c, "k", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, tc_now + 50);
    assert_int_equal(it.flags, 7);
    /* compact everything (the put, the touches), then restart */
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    assert_int_equal(cask_get(f->c, "k", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.exp_abs_s, tc_now + 50);
    tc_fx_reopen(f);
    got = NULL;
    assert_int_equal(cask_get(f->c, "k", 1, &it, &got), CASK_OK);
    assert_int_equal(it.exp_abs_s, tc_now + 50);
    assert_memory_equal(got, v, BIG);
    free(got);
    tc_now += 60;
    assert_true(tc_absent(f->c, "k"));
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_absent(f->c, "k"));
    free(v);
}

/* Rewrite a segment header as format version 1 (what stores made before
 * touch records have). */
static void
make_v1_header(const char *path)
{
    char h[32];
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    h[8] = 1;
    h[9] = h[10] = h[11] = 0;
    uint64_t x = XXH3_64bits(h, 24);
    for (int i = 0; i < 8; i++) {
        h[24 + i] = (char)(x >> (8 * i));
    }
    assert_int_equal(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
}

/* A store of the previous format (version 1 segments, a version 1 state
 * file under its old name, meta) opens, keeps its data, renames the state
 * file and takes writes. */
static void
test_previous_version_opens(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "old"), CASK_OK);
    assert_int_equal(cask_delete(f->c, "k", 1, 0), CASK_OK);
    assert_int_equal(tc_set(f->c, "j", "kept"), CASK_OK);
    cask_close(&f->c);
    char path[4096];
    seg_path(f, 1, "seg", path, sizeof(path));
    make_v1_header(path);
    seg_path(f, 1, "hint", path, sizeof(path));
    unlink(path);
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/meta", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "bitcached-meta 1\nshards 1\ncas_reserved 1048577\n"
                "flush_cas 0\nflush_pending_at 0\n");
    fclose(fp);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_true(tc_absent(f->c, "k"));
    assert_true(tc_is(f->c, "j", "kept"));
    assert_int_equal(tc_set(f->c, "n", "new"), CASK_OK);
    assert_int_equal(cask_touch(f->c, "j", 1, tc_now + 100, NULL, NULL),
                     CASK_OK);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "j", "kept"));
    assert_true(tc_is(f->c, "n", "new"));
    assert_true(tc_absent(f->c, "k"));
}

/* The keydir hash is seeded per process (keys cannot be crafted to collide
 * in advance), while shard placement stays the documented unseeded XXH3,
 * stable across restarts. */
static void
test_keydir_seeded_placement_stable(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    f->o.shards = 7;
    tc_rmrf(f->dir);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    const char *k = "some key";
    assert_int_not_equal(cask_kd_hash(k, strlen(k)), XXH3_64bits(k, strlen(k)));
    for (unsigned i = 0; i < 100; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "key:%u", i);
        assert_int_equal(cask_shard_of(f->c, key, (size_t)n),
                         (unsigned)(XXH3_64bits(key, (size_t)n) % 7));
        assert_int_equal(tc_set(f->c, key, "v"), CASK_OK);
    }
    tc_fx_reopen(f);
    for (unsigned i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        assert_true(tc_is(f->c, key, "v"));
    }
}

static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The tests below time a request beside a slow one (an injected stall
 * of a few hundred ms) against a bound well below the stall. A loaded
 * machine can keep the timed thread off the CPU for that long now and
 * then; a request really held up by the slow one is over the bound every
 * time. So a measurement over its bound is taken again, up to TRIES
 * times. */
#define TRIES 3

static void *
slow_get(void *arg)
{
    struct cask *c = arg;
    struct cask_item it;
    char *v = NULL;
    int rc = cask_get(c, "cold", 4, &it, &v);
    free(v);
    return (void *)(intptr_t)rc;
}

/* A value read that is slow (cold data, a struggling disk) holds up only
 * its own request, not every other request of the shard. */
static void
test_slow_read_stalls_only_itself(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "cold", "value"), CASK_OK);
    inject(0, NULL);
    slow_read_ms = 600;
    fast_key = "other"; /* its own key check is not what is measured */
    double dt = 1;
    for (int i = 0; i < TRIES && dt >= 0.3; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, slow_get, f->c), 0);
        usleep(100 * 1000);
        double t0 = mono_now();
        assert_int_equal(tc_set(f->c, "other", "x"), CASK_OK);
        struct cask_item it;
        assert_int_equal(cask_get(f->c, "other", 5, &it, NULL), CASK_OK);
        dt = mono_now() - t0;
        void *res;
        pthread_join(t, &res);
        assert_int_equal((int)(intptr_t)res, CASK_OK);
    }
    slow_read_ms = 0;
    assert_true(dt < 0.3);
}

static void *
compact_thread(void *arg)
{
    return (void *)(intptr_t)cask_compact(arg, -1, true);
}

/* Compaction reads its input without the shard mutex: with slow reads, the
 * shard's writes are not held up for the duration of a read. */
static void
test_compaction_reads_outside_mutex(void **state)
{
    struct fx *f = *state;
    double worst = 1;
    for (int n = 0; n < TRIES && worst >= 0.1; n++) {
        for (int i = 0; i < 200; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", i % 50);
            set_big(f->c, k, (char)('a' + i % 26));
        }
        tc_fx_reopen(f); /* a closed segment, three quarters dead */
        inject(0, NULL);
        slow_read_ms = 150;
        fast_key = "w"; /* the writer's own key check is not measured */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, compact_thread, f->c), 0);
        worst = 0;
        for (int i = 0; i < 20; i++) {
            usleep(20 * 1000);
            double t0 = mono_now();
            assert_int_equal(tc_set(f->c, "w", "x"), CASK_OK);
            double dt = mono_now() - t0;
            if (dt > worst) {
                worst = dt;
            }
        }
        void *res;
        pthread_join(t, &res);
        slow_read_ms = 0;
        assert_int_equal((int)(intptr_t)res, CASK_OK);
        struct cask_stats st;
        cask_stats(f->c, -1, &st);
        assert_true(st.compactions > 0); /* counted since the reopen */
    }
    assert_true(worst < 0.1);
    tc_fx_reopen(f);
    for (int i = 150; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i % 50);
        struct cask_item it;
        assert_int_equal(cask_get(f->c, k, strlen(k), &it, NULL), CASK_OK);
    }
}

static void *
rolling_set(void *arg)
{
    return (void *)(intptr_t)tc_set(arg, "w", "x");
}

/* A roll-over (creating a segment, syncing the old one) does not hold up
 * the shard's reads. */
static void
test_roll_over_stalls_only_writers(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    f->o.segment_size = 4096;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    double dt = 1;
    for (int i = 0; i < TRIES && dt >= 0.1; i++) {
        set_big(f->c, "k0", 'r'); /* the next write rolls over */
        inject(0, NULL);
        slow_sync_ms = 300;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, rolling_set, f->c), 0);
        usleep(100 * 1000);
        double t0 = mono_now();
        char *v = NULL;
        struct cask_item it;
        assert_int_equal(cask_get(f->c, "k0", 2, &it, &v), CASK_OK);
        dt = mono_now() - t0;
        free(v);
        void *res;
        pthread_join(t, &res);
        slow_sync_ms = 0;
        assert_int_equal((int)(intptr_t)res, CASK_OK);
    }
    assert_true(dt < 0.1);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "w", "x"));
}

static void *
slow_append(void *arg)
{
    return (void *)(intptr_t)cask_store(arg, CASK_APPEND, "cold", 4, "+", 1, 0,
                                        0, 0, NULL);
}

/* append, prepend, incr/decr and gat read the old value without holding
 * the shard mutex too: a slow read stalls only its own request. */
static void
test_slow_rmw_read_stalls_only_itself(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "n", "41"), CASK_OK);
    inject(0, NULL);
    double dt = 1;
    for (int i = 0; i < TRIES && dt >= 0.3; i++) {
        assert_int_equal(tc_set(f->c, "cold", "value"), CASK_OK);
        slow_read_ms = 600;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, slow_append, f->c), 0);
        usleep(100 * 1000);
        double t0 = mono_now();
        assert_int_equal(tc_set(f->c, "other", "x"), CASK_OK);
        dt = mono_now() - t0;
        void *res;
        pthread_join(t, &res);
        slow_read_ms = 0;
        assert_int_equal((int)(intptr_t)res, CASK_OK);
    }
    assert_true(dt < 0.3);
    assert_true(tc_is(f->c, "cold", "value+"));
    struct cask_arith a = {.incr = true, .delta = 1};
    uint64_t nv;
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &nv, NULL), CASK_OK);
    assert_int_equal(nv, 42);
    char *v = NULL;
    assert_int_equal(cask_touch(f->c, "cold", 4, tc_now + 10, NULL, &v),
                     CASK_OK);
    assert_string_equal(v, "value+");
    free(v);
    tc_fx_reopen(f);
    assert_true(tc_is(f->c, "cold", "value+"));
    assert_true(tc_is(f->c, "n", "42"));
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
            cmocka_unit_test_setup_teardown(test_failed_flush_changes_nothing,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_cas_reservation_failure_not_acked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_checksum, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_state_newest_slot_damaged,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_missing_keeps_flush,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_opens_on_full_disk, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_short_segment_read_is_error,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_read_error_at_open_keeps_data,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_closed_segment_damage_skipped,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_hint_writer_does_not_retry,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_compaction_crash_no_resurrection, setup, teardown),
            cmocka_unit_test_setup_teardown(test_deletes_work_on_full_disk,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch_is_small_record, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_previous_version_opens, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_keydir_seeded_placement_stable,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_slow_read_stalls_only_itself,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_compaction_reads_outside_mutex,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_roll_over_stalls_only_writers,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_slow_rmw_read_stalls_only_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
