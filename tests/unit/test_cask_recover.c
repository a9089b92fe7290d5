/* test_cask_recover.c - recovery as a whole: shards recovered in parallel
 * give the same store and per-shard figures as one after another, and a
 * shard that cannot be opened fails the open cleanly while the others are
 * being recovered; a closed segment found missing (its hint left) or with
 * damage inside (moved to quarantine/ once what it held that still counts
 * is copied) is logged and counted, never silently dropped; so is one
 * gone with its hint, found through the shard's segment manifest, and a
 * crash at any step of a manifest update reports nothing missing; a
 * hint that cannot be read is kept and its segment scanned; a
 * segment written by a newer build is refused by open, check and repair,
 * byte for byte unchanged; the keydir is sized once from the hints.
 */
#include "config.h" /* first: _GNU_SOURCE (sched_setaffinity) */

#include "storage/cask.h"
#include "storage/cask_check.h"
#include "storage/cask_internal.h"
#include "storage/cask_io.h"
#include "storage/cask_keydir.h"
#include "storage/cask_repair.h"
#include "storage/cask_segment.h"
#include "storage/cask_shard.h"

#include "tests/unit/test_cask_seam.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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
#include <xxhash.h>

#include <cmocka.h>

#define NSHARDS 16
#define NKEYS   4000
#define NFILL   600 /* keys of the one-shard tests: several segments */

static void
many_shards(struct cask_options *o)
{
    o->shards = NSHARDS;
    o->segment_size = 64 * 1024; /* several segments (and hints) a shard */
}

static int
setup(void **state)
{
    return tc_fx_setup(state, many_shards);
}

static int
teardown(void **state)
{
    return tc_fx_teardown(state);
}

static void
key_of(char *k, size_t cap, int i)
{
    snprintf(k, cap, "key:%d", i);
}

static void
val_of(char *v, size_t cap, int i)
{
    snprintf(v, cap, "value %d %0*d", i, i % 50, 7);
}

/* Every shard recovered on the pool holds exactly its keys again, deletes
 * included, and its own figures add up to the store's. */
static void
test_parallel_reopen(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    for (int i = 0; i < NKEYS; i += 7) {
        key_of(k, sizeof(k), i);
        assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
    }
    for (int round = 0; round < 2; round++) {
        tc_fx_reopen(f);
        for (int i = 0; i < NKEYS; i++) {
            key_of(k, sizeof(k), i);
            val_of(v, sizeof(v), i);
            if (i % 7 == 0) {
                assert_true(tc_absent(f->c, k));
            } else {
                assert_true(tc_is(f->c, k, v));
            }
        }
        struct cask_stats all, one;
        uint64_t records = 0, keys = 0;
        assert_int_equal(cask_stats(f->c, -1, &all), CASK_OK);
        for (int s = 0; s < NSHARDS; s++) {
            assert_int_equal(cask_stats(f->c, s, &one), CASK_OK);
            assert_true(one.records_recovered > 0);
            assert_true(one.recovery_s > 0);
            assert_true(one.recovery_s <= all.recovery_s);
            records += one.records_recovered;
            keys += one.live_keys;
        }
        assert_int_equal(records, all.records_recovered);
        assert_int_equal(keys, all.live_keys);
        assert_int_equal(keys, NKEYS - (NKEYS + 6) / 7);
    }
}

/* Pinned to one CPU the shards are opened one after another, and progress
 * is reported for each. */
static unsigned progress_calls, progress_last;

static void
on_progress(void *arg, unsigned done, unsigned total)
{
    (void)arg;
    assert_int_equal(total, NSHARDS);
    assert_true(done > progress_last);
    progress_last = done;
    progress_calls++;
}

static void
test_one_cpu_reopen(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int i = 0; i < 1000; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    cpu_set_t old, one;
    assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &old)) {
            CPU_SET(cpu, &one);
            break;
        }
    }
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    f->o.progress = on_progress;
    progress_calls = progress_last = 0;
    tc_fx_reopen(f);
    assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
    assert_int_equal(progress_calls, NSHARDS);
    assert_int_equal(progress_last, NSHARDS);
    for (int i = 0; i < 1000; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_true(tc_is(f->c, k, v));
    }
}

/* A shard whose directory is not one fails the open; the shards recovered
 * next to it are closed again (the sanitizer build sees any leak). */
static void
test_one_shard_fails(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int i = 0; i < 500; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    cask_close(&f->c);
    char p[1024];
    snprintf(p, sizeof(p), "%s/shard-009", f->dir);
    tc_rmrf(p);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    tc_log[0] = '\0';
    assert_int_not_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_null(f->c);
    assert_non_null(strstr(tc_log, "open shard 9 of"));
    /* Put the directory back: the other shards were left as they were. */
    unlink(p);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    int found = 0;
    for (int i = 0; i < 500; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        found += tc_is(f->c, k, v);
    }
    assert_true(found > 400 && found < 500); /* shard 9's keys are gone */
}

static void
one_shard_small(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 8192;
}

static int
setup_small(void **state)
{
    return tc_fx_setup(state, one_shard_small);
}

static void
one_shard_mid(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 512 * 1024;
}

static int
setup_mid(void **state)
{
    return tc_fx_setup(state, one_shard_mid);
}

/* Recovery sizes the keydir once from what the hints list: loading them
 * grows no table (it grew dozens of times a stripe before), and every
 * key is back. Several segments, each with its hint after a clean close. */
static void
test_keydir_sized_once(void **state)
{
    struct fx *f = *state;
    char k[32], v[32];
    const int n = 40000;
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    tc_fx_reopen(f);
    struct cask_keydir *kd = f->c->shards[0]->kd;
    assert_int_equal(cask_kd_count(kd), (size_t)n);
    assert_int_equal(cask_kd_grows(kd), 0);
    for (int i = 0; i < n; i += 7) {
        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        assert_true(tc_is(f->c, k, v));
    }
}

static void
seg_path(struct fx *f, uint32_t id, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/shard-000/%08x.%s", f->dir, id, ext);
}

static bool
exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Keys d0.. (NFILL / 10) written first, then a0.. (NFILL), deleting one d
 * key every ten: the d puts sit in segment 1, their tombstones in every
 * segment after it. */
static void
fill(struct fx *f)
{
    char k[32], v[96];
    for (int i = 0; i < NFILL / 10; i++) {
        snprintf(k, sizeof(k), "d%d", i);
        assert_int_equal(tc_set(f->c, k, "doomed"), CASK_OK);
    }
    for (int i = 0; i < NFILL; i++) {
        snprintf(k, sizeof(k), "a%d", i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        if (i % 10 == 5) {
            snprintf(k, sizeof(k), "d%d", i / 10);
            assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
        }
    }
}

static void
check_fill(struct fx *f, const char *lost_key)
{
    char k[32], v[96];
    for (int i = 0; i < NFILL; i++) {
        snprintf(k, sizeof(k), "a%d", i);
        val_of(v, sizeof(v), i);
        if (lost_key != NULL && strcmp(k, lost_key) == 0) {
            assert_true(tc_absent(f->c, k));
        } else {
            assert_true(tc_is(f->c, k, v));
        }
    }
    for (int i = 0; i < NFILL / 10; i++) {
        snprintf(k, sizeof(k), "d%d", i);
        assert_true(tc_absent(f->c, k));
    }
}

/* A damaged record inside a closed segment: the segment's other records
 * (puts and tombstones) survive, it is moved to quarantine/, and the
 * figures say so; the next start finds nothing more to do. */
static void
test_damaged_segment_quarantined(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    /* Damage a value in the middle of segment 3 (closed, holds puts and
     * tombstones), and drop its hint so that the scan meets it. */
    char p[2048], h[2048];
    seg_path(f, 3, "seg", p, sizeof(p));
    seg_path(f, 3, "hint", h, sizeof(h));
    unlink(h);
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    assert_true(n > 4096);
    char *at = NULL;
    char lost[32];
    for (int i = 0; i < NFILL && at == NULL; i++) {
        snprintf(lost, sizeof(lost), "a%d", i);
        char *q = memmem(buf + n / 3, n - n / 3, lost, strlen(lost));
        if (q != NULL && q[strlen(lost)] == 'v') { /* key, then "value " */
            at = q + strlen(lost) + 2;
        }
    }
    assert_non_null(at);
    assert_int_equal(fseek(fp, at - buf, SEEK_SET), 0);
    assert_int_equal(fputc('X', fp), 'X');
    fclose(fp);

    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.quarantined, 1);
    assert_true(st.records_lost >= 1);
    assert_true(st.bytes_damaged > 0);
    assert_non_null(strstr(tc_log, "moved to"));
    assert_false(exists(p));
    snprintf(h, sizeof(h), "%s/quarantine/shard-000/00000003.seg", f->dir);
    assert_true(exists(h));
    check_fill(f, lost);

    tc_fx_reopen(f);
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.quarantined, 0);
    assert_int_equal(st.bytes_damaged, 0);
    check_fill(f, lost);
}

/* A closed segment gone but its hint left: logged with what the hint
 * says it held, counted, and the hint removed. */
static void
test_missing_segment_counted(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    char p[2048], h[2048];
    seg_path(f, 2, "seg", p, sizeof(p));
    seg_path(f, 2, "hint", h, sizeof(h));
    assert_true(exists(h));
    assert_int_equal(unlink(p), 0);

    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 1);
    assert_true(st.records_missing > 10);
    assert_non_null(strstr(tc_log, "segment 00000002 is missing"));
    assert_false(exists(h));
    /* Keys of the other segments are still there. */
    int found = 0;
    char k[32], v[96];
    for (int i = 0; i < NFILL; i++) {
        snprintf(k, sizeof(k), "a%d", i);
        val_of(v, sizeof(v), i);
        found += tc_is(f->c, k, v);
    }
    assert_true(found >= NFILL - (int)st.records_missing && found < NFILL);

    tc_fx_reopen(f);
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 0);
}

/* A closed segment gone together with its hint: the manifest still lists
 * it, so it is logged (with what it can mean) and counted; the next start
 * does not report it again. */
static void
test_missing_segment_without_hint(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    char p[2048], h[2048];
    seg_path(f, 2, "seg", p, sizeof(p));
    seg_path(f, 2, "hint", h, sizeof(h));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(unlink(h), 0);

    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 1);
    assert_int_equal(st.records_missing, 0); /* unknown without a hint */
    assert_non_null(strstr(tc_log, "segment 00000002 is missing, and no "
                                   "hint"));
    assert_non_null(strstr(tc_log, "deleted may have come back"));

    tc_fx_reopen(f);
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 0);
}

/* A store written before the manifest existed opens without a false
 * report and gets one, which then catches a lost segment. Compaction and
 * its retired segments are no loss either. */
static void
test_manifest_created_for_old_store(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    char m[2048];
    snprintf(m, sizeof(m), "%s/shard-000/manifest", f->dir);
    assert_int_equal(unlink(m), 0);

    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 0);
    assert_null(strstr(tc_log, "missing"));
    assert_true(exists(m));
    check_fill(f, NULL);

    /* Compaction retires segments: not missing after a restart. */
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    tc_log[0] = '\0';
    tc_fx_reopen(f);
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_int_equal(st.segments_missing, 0);
    assert_null(strstr(tc_log, "missing"));
    check_fill(f, NULL);

    /* A damaged manifest is logged, ignored and rewritten. */
    cask_close(&f->c);
    FILE *fp = fopen(m, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 12, SEEK_SET), 0);
    assert_int_equal(fputc(0x7f, fp), 0x7f);
    fclose(fp);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_non_null(strstr(tc_log, "manifest is damaged"));
    check_fill(f, NULL);
    tc_log[0] = '\0';
    tc_fx_reopen(f);
    assert_null(strstr(tc_log, "manifest"));
}

/* ---- a hint that cannot be read (EIO) is not damage ---- */

static bool
hint_fd(int fd)
{
    char path[4096];
    if (!tc_fd_path(fd, path, sizeof(path))) {
        return false;
    }
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".hint") == 0;
}

static ssize_t
hint_eio_pread(int fd, void *buf, size_t n, off_t off)
{
    if (hint_fd(fd)) {
        errno = EIO;
        return -1;
    }
    return cask_io_default()->pread(fd, buf, n, off);
}

/* A hint whose read fails: the start logs it and scans the segment
 * instead, with every key and delete as before, and keeps the hint (an
 * I/O error says nothing of its bytes), which the next start uses. */
static void
test_hint_read_error_kept(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    char h[2048];
    seg_path(f, 2, "hint", h, sizeof(h));
    assert_true(exists(h));

    struct cask_io_ops ops = *cask_io_default();
    ops.pread = hint_eio_pread;
    cask_io_set(&ops);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    cask_io_set(NULL);
    assert_non_null(strstr(tc_log, "hint of segment 00000002 could not be "
                                   "read (Input/output error)"));
    assert_null(strstr(tc_log, "unusable"));
    assert_true(exists(h));
    check_fill(f, NULL);

    tc_log[0] = '\0';
    tc_fx_reopen(f);
    assert_null(strstr(tc_log, "hint of segment"));
    check_fill(f, NULL);
}

/* ---- a crash at every step of every manifest update: the child process
 * _exits in place of the Nth write or sync of the manifest (its temp file,
 * and the directory sync that makes its rename durable) ---- */

static int crash_at; /* 0 = never */
static int crash_calls;

static bool
manifest_fd(int fd)
{
    char path[4096];
    if (!tc_fd_path(fd, path, sizeof(path))) {
        return false;
    }
    size_t n = strlen(path), dl = strlen("shard-000");
    return strstr(path, "/manifest") != NULL ||
           (n >= dl && strcmp(path + n - dl, "shard-000") == 0);
}

static void
maybe_crash(int fd)
{
    if (crash_at != 0 && manifest_fd(fd) && ++crash_calls == crash_at) {
        _exit(42);
    }
}

static ssize_t
crash_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    maybe_crash(fd);
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static int
crash_fdatasync(int fd)
{
    maybe_crash(fd);
    return cask_io_default()->fdatasync(fd);
}

/* The child: set a0.., delete d keys as fill() does, compacting every 100
 * keys and at the end, telling the parent (through fd out) how far it got
 * once each call returned. */
static void
crash_child(struct fx *f, int out)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = crash_pwrite;
    ops.fdatasync = crash_fdatasync;
    cask_io_set(&ops);
    struct cask *c = NULL;
    char k[32], v[96];
    if (cask_open(&c, f->dir, &f->o) != CASK_OK) {
        _exit(1);
    }
    for (int i = 0; i < NFILL / 10; i++) {
        snprintf(k, sizeof(k), "d%d", i);
        if (tc_set(c, k, "doomed") != CASK_OK) {
            _exit(1);
        }
    }
    for (int i = 0; i < NFILL; i++) {
        snprintf(k, sizeof(k), "a%d", i);
        val_of(v, sizeof(v), i);
        if (tc_set(c, k, v) != CASK_OK) {
            _exit(1);
        }
        if (i % 10 == 5) {
            snprintf(k, sizeof(k), "d%d", i / 10);
            if (cask_delete(c, k, strlen(k), 0) != CASK_OK) {
                _exit(1);
            }
        }
        if (write(out, &i, sizeof(i)) != sizeof(i)) {
            _exit(1);
        }
        /* Compactions commit through the manifest at known points (the
         * roll-overs' listing is written by the maintenance thread). */
        if (i % 100 == 99 && cask_compact(c, -1, true) != CASK_OK) {
            _exit(1);
        }
    }
    if (cask_compact(c, -1, true) != CASK_OK) {
        _exit(1);
    }
    _exit(2); /* fewer manifest steps than crash_at */
}

static void
test_crash_during_manifest_update(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    int points = 0;
    for (int at = 1;; at++) {
        tc_rmrf(f->dir);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            crash_at = at;
            crash_calls = 0;
            crash_child(f, pfd[1]);
        }
        close(pfd[1]);
        int i, acked = -1;
        while (read(pfd[0], &i, sizeof(i)) == sizeof(i)) {
            acked = i;
        }
        close(pfd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_not_equal(WEXITSTATUS(status), 1);
        bool last = WEXITSTATUS(status) == 2;

        tc_log[0] = '\0';
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        struct cask_stats st;
        assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
        if (st.segments_missing != 0 || strstr(tc_log, "missing") != NULL) {
            fail_msg("crash at manifest step %d: false report: %s", at, tc_log);
        }
        char k[32], v[96];
        for (int j = 0; j <= acked; j++) {
            snprintf(k, sizeof(k), "a%d", j);
            val_of(v, sizeof(v), j);
            if (!tc_is(f->c, k, v)) {
                fail_msg("crash at manifest step %d: %s lost", at, k);
            }
            if (j % 10 == 5) {
                snprintf(k, sizeof(k), "d%d", j / 10);
                if (!tc_absent(f->c, k)) {
                    fail_msg("crash at manifest step %d: %s back", at, k);
                }
            }
        }
        /* And the store it left detects a loss from here on. */
        cask_close(&f->c);
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
        assert_int_equal(st.segments_missing, 0);
        cask_close(&f->c);
        if (last) {
            break;
        }
        points++;
    }
    /* The open and several compactions' commits, three steps each (and
     * whatever hint passes of the maintenance thread fell in). */
    assert_true(points >= 3 * 6);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
}

static char *
slurp(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    assert_true(len > 0);
    rewind(fp);
    char *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return b;
}

static void
repair_note(void *arg, bool done, const char *msg)
{
    (void)done;
    size_t used = strlen(arg);
    snprintf((char *)arg + used, 2048 - used, "%s\n", msg);
}

/* A segment whose header is whole and valid but carries a format version
 * above this build's (a store that a newer bitcached wrote, opened again
 * by this one after a downgrade) is not damage: open, check and repair
 * refuse it and change no byte of it, instead of rewriting its header and
 * cutting records they cannot read as a torn tail. */
static void
test_newer_segment_refused(void **state)
{
    struct fx *f = *state;
    fill(f);
    cask_close(&f->c);
    char p[2048];
    seg_path(f, 2, "seg", p, sizeof(p));
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char h[CASK_SEG_HDR];
    assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    uint32_t v = CASK_SEG_VERSION + 1;
    memcpy(h + 8, &v, 4); /* little-endian, as the format */
    uint64_t sum = XXH3_64bits(h, 24);
    memcpy(h + 24, &sum, 8);
    assert_int_equal(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    size_t n0, n1;
    char *before = slurp(p, &n0);

    tc_log[0] = '\0';
    assert_int_not_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_null(f->c);
    assert_non_null(strstr(tc_log, "written by a newer bitcached"));

    struct cask_check_report ck;
    memset(&ck, 0, sizeof(ck));
    assert_int_equal(cask_check(f->dir, tc_now, NULL, &ck), 0);
    assert_true(ck.problems > 0);

    struct cask_repair_report rp;
    char said[2048] = "";
    memset(&rp, 0, sizeof(rp));
    assert_int_not_equal(cask_repair(f->dir, repair_note, said, &rp), 0);
    assert_int_equal(rp.headers_rewritten, 0);
    assert_non_null(strstr(said, "newer bitcached"));

    char *after = slurp(p, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(after, before, n0);
    free(before);
    free(after);

    /* Back to this build's version: the store opens with everything. */
    fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    v = CASK_SEG_VERSION;
    memcpy(h + 8, &v, 4);
    sum = XXH3_64bits(h, 24);
    memcpy(h + 24, &sum, 8);
    assert_int_equal(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    check_fill(f, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_parallel_reopen, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_one_shard_fails, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_one_cpu_reopen, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_damaged_segment_quarantined,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_missing_segment_counted,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_missing_segment_without_hint,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_hint_read_error_kept,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_manifest_created_for_old_store,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_newer_segment_refused,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_crash_during_manifest_update,
                                            setup_small, teardown),
            cmocka_unit_test_setup_teardown(test_keydir_sized_once, setup_mid,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
