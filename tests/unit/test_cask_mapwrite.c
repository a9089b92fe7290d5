/* test_cask_mapwrite.c - appends copied into a shared mapping of the
 * active segment (cask_seg_wmap_open): the file is extended ahead of its
 * records and cut back to them at roll-over and close; a store that
 * stopped without the cut (a process crash, a crash between a roll-over's
 * cut and its sync) recovers its zero tail as no damage; a copy that
 * faults (injected through the cask_io seam, or a real SIGBUS: the file
 * cut under the running store) fails that write like a failed pwrite,
 * changes nothing in memory and queues the segment's rewrite; the disk
 * accounting counts records, not the extension; an append whose page
 * left the page cache reads that page back alone, not the records
 * around it.
 */
#include "storage/cask.h"

#include "storage/cask_check.h"
#include "storage/cask_io.h"
#include "storage/cask_repair.h"
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static int fail_map; /* __atomic: copies into a mapping still to fail */
static int map_calls;

static int
seam_map_write(int fd, size_t n, off_t off)
{
    (void)fd;
    (void)n;
    (void)off;
    __atomic_fetch_add(&map_calls, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&fail_map, __ATOMIC_SEQ_CST) > 0) {
        __atomic_fetch_sub(&fail_map, 1, __ATOMIC_SEQ_CST);
        return EIO;
    }
    return 0;
}

static void
tune(struct cask_options *o)
{
    o->shards = 1;
    o->sync = CASK_SYNC_INTERVAL;
    o->sync_interval_ms = 600000; /* only the test's cask_sync syncs */
    o->segment_size = 64 * 1024;
}

static int
setup(void **state)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.map_write = seam_map_write;
    cask_io_set(&ops);
    fail_map = 0;
    map_calls = 0;
    tc_log[0] = '\0';
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    int rc = tc_fx_teardown(state);
    cask_io_set(NULL);
    return rc;
}

static uint64_t
file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* 32-byte header plus n records of key "kNN" (3 bytes), value "vNN". */
static void
set_n(struct fx *f, int from, int n, const char *prefix)
{
    for (int i = from; i < from + n; i++) {
        char k[16], v[32];
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "%s%02d", prefix, i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
}

static void
check_n(struct fx *f, int from, int n, const char *prefix)
{
    for (int i = from; i < from + n; i++) {
        char k[16], v[32];
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "%s%02d", prefix, i);
        if (!tc_is(f->c, k, v)) {
            fail_msg("%s is not %s; log:\n%s", k, v, tc_log);
        }
    }
}

/* Appends go through the mapping: the file is longer than its records
 * while the store runs, no longer once it is closed, and a restart finds
 * nothing torn. The extension is not counted as stored bytes. */
static void
test_extended_then_cut_at_close(void **state)
{
    struct fx *f = *state;
    set_n(f, 0, 20, "v");
    assert_true(__atomic_load_n(&map_calls, __ATOMIC_SEQ_CST) >= 20);
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    uint64_t size = file_size(seg);
    assert_true(size > cs.disk_bytes); /* extended ahead */
    /* one record a set */
    assert_int_equal(cs.mapped_writes, 20);
    check_n(f, 0, 20, "v");
    tc_fx_reopen(f);
    struct cask_stats after;
    cask_stats(f->c, -1, &after);
    assert_true(file_size(seg) <= cs.disk_bytes);
    assert_int_equal(after.bytes_truncated, 0);
    assert_int_equal(after.bytes_damaged, 0);
    assert_null(strstr(tc_log, "torn"));
    check_n(f, 0, 20, "v");
}

/* A process that dies without closing (records in the page cache through
 * the mapping, the file still extended): every acknowledged write is
 * there after a restart, the zero tail is cut without counting as damage,
 * and appends go on from the last record. */
static void
test_zero_tail_after_crash(void **state)
{
    struct fx *f = *state;
    set_n(f, 0, 5, "a");
    cask_close(&f->c); /* the child opens the store alone */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* write through a store of its own and die as kill -9 would,
         * without closing it */
        struct cask *c = NULL;
        if (cask_open(&c, f->dir, &f->o) != CASK_OK) {
            _exit(2);
        }
        for (int i = 5; i < 30; i++) {
            char k[16], v[32];
            snprintf(k, sizeof(k), "k%02d", i);
            snprintf(v, sizeof(v), "b%02d", i);
            if (tc_set(c, k, v) != CASK_OK) {
                _exit(3);
            }
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    uint64_t crashed = file_size(seg);
    /* The offline check and repair take the zero tail for no damage. */
    struct cask_check_report ck;
    memset(&ck, 0, sizeof(ck));
    assert_int_equal(cask_check(f->dir, tc_now, NULL, &ck), 0);
    assert_int_equal(ck.problems, 0);
    struct cask_repair_report rp;
    memset(&rp, 0, sizeof(rp));
    assert_int_equal(cask_repair(f->dir, NULL, NULL, &rp), 0);
    assert_int_equal(rp.actions, 0);
    assert_int_equal(file_size(seg), crashed);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.bytes_truncated, 0);
    assert_int_equal(cs.bytes_damaged, 0);
    assert_non_null(strstr(tc_log, "zero bytes past its last record"));
    assert_true(file_size(seg) < crashed);
    check_n(f, 0, 5, "a");
    check_n(f, 5, 25, "b");
    set_n(f, 30, 5, "c");
    tc_fx_reopen(f);
    check_n(f, 0, 5, "a");
    check_n(f, 5, 25, "b");
    check_n(f, 30, 5, "c");
}

/* A closed segment left extended (a crash between a roll-over and the
 * cut before its sync): recovered whole, the tail cut, no damage. A torn
 * record before the zeros is still a torn tail. */
static void
test_closed_segment_zero_tail(void **state)
{
    struct fx *f = *state;
    set_n(f, 0, 10, "v");
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    tc_fx_reopen(f); /* cut, hinted, and a new segment takes appends */
    cask_close(&f->c);
    uint64_t real = file_size(seg);
    char hint[4096];
    snprintf(hint, sizeof(hint), "%.*s.hint", (int)(strlen(seg) - 4), seg);
    (void)unlink(hint); /* as before its hint was written */
    assert_int_equal(truncate(seg, (off_t)real + 200000), 0);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.bytes_truncated, 0);
    assert_int_equal(cs.bytes_damaged, 0);
    assert_non_null(strstr(tc_log, "zero bytes past its last record"));
    check_n(f, 0, 10, "v");
    assert_int_equal(file_size(seg), real);
    cask_close(&f->c);

    /* a torn record, then zeros: a torn tail, counted */
    int fd = open(seg, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\x01\x02\x03\x04\x05\x06", 6, (off_t)real), 6);
    close(fd);
    assert_int_equal(truncate(seg, (off_t)real + 100000), 0);
    (void)unlink(hint);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    cask_stats(f->c, -1, &cs);
    assert_true(cs.bytes_truncated >= 100000);
    assert_non_null(strstr(tc_log, "torn"));
    check_n(f, 0, 10, "v");
}

/* Wait up to 15 s until the shard's queued rewrite has run (the
 * maintenance thread looks once a second). */
static void
wait_rewritten(struct fx *f, const char *seg)
{
    for (int i = 0; i < 1500 && access(seg, F_OK) == 0; i++) {
        usleep(10 * 1000);
        (void)cask_compact(f->c, -1, true);
    }
    if (access(seg, F_OK) == 0) {
        fail_msg("segment %s not rewritten; log:\n%s", seg, tc_log);
    }
}

/* A copy that faults (injected through the seam): that write fails with
 * the error, the key keeps its old value, the segment's rewrite is queued
 * (counted as a cut) and writes go on. */
static void
test_map_fault_fails_the_write(void **state)
{
    struct fx *f = *state;
    set_n(f, 0, 10, "v");
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    __atomic_store_n(&fail_map, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(tc_set(f->c, "k03", "new"), EIO);
    assert_true(tc_is(f->c, "k03", "v03")); /* undone */
    assert_int_equal(tc_set(f->c, "fresh", "x"), CASK_OK);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.segments_cut, 1);
    assert_true(cs.write_errors >= 1);
    assert_non_null(strstr(tc_log, "a write into its mapping faulted"));
    wait_rewritten(f, seg);
    for (int round = 0; round < 2; round++) {
        check_n(f, 0, 10, "v");
        assert_true(tc_is(f->c, "fresh", "x"));
        set_n(f, 10, 3, "w");
        check_n(f, 10, 3, "w");
        tc_fx_reopen(f);
    }
}

/* The active segment cut short by another process under the running
 * store: the next copy into the mapping raises SIGBUS, which fails that
 * write instead of killing the process; the records cut off miss (never
 * an older value) once the segment is rewritten, and writes go on. */
static void
test_real_sigbus(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "old", "v-old"), CASK_OK);
    tc_fx_reopen(f); /* "old" now in a closed segment */
    char *fill = malloc(9001);
    assert_non_null(fill);
    memset(fill, 'f', 9000);
    fill[9000] = '\0';
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "fill", fill), CASK_OK); /* pwrite */
    assert_int_equal(tc_set(f->c, "old", "v-new"), CASK_OK);
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    /* past "a": "fill" and the new "old" go, and the page the next copy
     * lands in is past the end of the file */
    assert_int_equal(truncate(seg, 32 + 48), 0);
    int rc = tc_set(f->c, "after", "y");
    struct cask_stats cs;
    if (rc == CASK_OK) {
        /* the cut check got there first: it queued the rewrite */
        cask_stats(f->c, -1, &cs);
        assert_int_equal(cs.segments_cut, 1);
    } else {
        assert_int_equal(rc, EIO);
        assert_true(tc_absent(f->c, "after"));
        assert_int_equal(tc_set(f->c, "after", "y"), CASK_OK);
    }
    wait_rewritten(f, seg);
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.segments_cut, 1);
    for (int round = 0; round < 2; round++) {
        assert_true(tc_is(f->c, "a", "1"));
        assert_true(tc_absent(f->c, "old")); /* not v-old */
        assert_true(tc_absent(f->c, "fill"));
        assert_true(tc_is(f->c, "after", "y"));
        assert_int_equal(tc_set(f->c, "b", "2"), CASK_OK);
        tc_fx_reopen(f);
    }
    free(fill);
}

/* A file cut inside the page the copies go to: the next copy raises no
 * SIGBUS (the page is still mapped) and its record is lost at writeback.
 * The sync looks at the file's size first: the cut is counted, logged
 * and reported (cask_sync: EIO) at once, the mapping is dropped and the
 * segment rewritten; the keys cut off miss, never an older value. */
static void
cut_in_last_page(struct fx *f, char *seg, size_t cap)
{
    assert_int_equal(tc_set(f->c, "old", "v-old"), CASK_OK);
    tc_fx_reopen(f); /* "old" now in a closed segment */
    assert_int_equal(tc_set(f->c, "a", "1"), CASK_OK);
    assert_int_equal(tc_set(f->c, "old", "v-new"), CASK_OK);
    tc_newest_segment(f, seg, cap);
    /* header 32, "a" 44 + 1 + 1, "old" 44 + 3 + 5 = 130: cut 5 bytes of
     * "old" off, inside the first page */
    assert_true(file_size(seg) > 130);
    assert_int_equal(truncate(seg, 125), 0);
    /* copied past the end of the file, inside its last page: no fault */
    assert_int_equal(tc_set(f->c, "after", "y"), CASK_OK);
}

static void
check_cut_in_last_page(struct fx *f, const char *seg)
{
    wait_rewritten(f, seg);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.segments_cut, 1);
    for (int round = 0; round < 2; round++) {
        assert_true(tc_is(f->c, "a", "1"));
        assert_true(tc_absent(f->c, "old")); /* not v-old */
        assert_true(tc_absent(f->c, "after"));
        assert_int_equal(tc_set(f->c, "b", "2"), CASK_OK);
        assert_true(tc_is(f->c, "b", "2"));
        tc_fx_reopen(f);
    }
}

static void
test_cut_in_last_page_seen_at_sync(void **state)
{
    struct fx *f = *state;
    char seg[4096];
    cut_in_last_page(f, seg, sizeof(seg));
    tc_log[0] = '\0';
    assert_int_equal(cask_sync(f->c), EIO);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.segments_cut, 1);
    assert_non_null(strstr(tc_log, "shorter than the store extended it to"));
    check_cut_in_last_page(f, seg);
}

/* The same cut met by a roll-over: the file is not grown back over the
 * cut (which hid it from every later check). */
static void
test_cut_in_last_page_seen_at_rollover(void **state)
{
    struct fx *f = *state;
    char seg[4096];
    cut_in_last_page(f, seg, sizeof(seg));
    char *fill = malloc(65401);
    assert_non_null(fill);
    memset(fill, 'f', 65400);
    fill[65400] = '\0';
    tc_log[0] = '\0';
    assert_int_equal(tc_set(f->c, "fill", fill), CASK_OK); /* rolls over */
    char now[4096];
    tc_newest_segment(f, now, sizeof(now));
    assert_string_not_equal(now, seg);
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(cs.segments_cut, 1);
    assert_non_null(strstr(tc_log, "shorter than the store extended it to"));
    check_cut_in_last_page(f, seg);
    assert_true(tc_is(f->c, "fill", fill));
    free(fill);
}

/* The same cut found only at close (no sync or roll-over before it): the
 * rewrite queue is served by the close itself before it returns, so a
 * restart shows neither an older value of a key whose record was cut off
 * ("v-old") nor the records past the cut. (The maintenance thread may get
 * there first: the outcome is the same.) */
static void
test_cut_in_last_page_seen_at_close(void **state)
{
    struct fx *f = *state;
    char seg[4096];
    cut_in_last_page(f, seg, sizeof(seg));
    assert_int_equal(cask_close(&f->c), CASK_OK);
    assert_int_not_equal(access(seg, F_OK), 0); /* retired by the rewrite */
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int round = 0; round < 2; round++) {
        assert_true(tc_is(f->c, "a", "1"));
        assert_true(tc_absent(f->c, "old")); /* not v-old */
        assert_true(tc_absent(f->c, "after"));
        assert_int_equal(tc_set(f->c, "b", "2"), CASK_OK);
        assert_true(tc_is(f->c, "b", "2"));
        tc_fx_reopen(f);
    }
}

static int fail_syncs; /* __atomic: fdatasyncs still to fail */

static int
seam_fdatasync(int fd)
{
    if (__atomic_load_n(&fail_syncs, __ATOMIC_SEQ_CST) > 0) {
        __atomic_fetch_sub(&fail_syncs, 1, __ATOMIC_SEQ_CST);
        return EIO;
    }
    return cask_io_default()->fdatasync(fd);
}

/* When the close cannot rewrite the cut segment (every sync fails), it
 * says what was lost (the segment and the bytes past the cut) and
 * returns an error, so that the stop does not count as clean. */
static void
test_cut_at_close_not_rewritten(void **state)
{
    struct fx *f = *state;
    char seg[4096];
    cut_in_last_page(f, seg, sizeof(seg));
    struct cask_io_ops ops = *cask_io_default();
    ops.map_write = seam_map_write;
    ops.fdatasync = seam_fdatasync;
    cask_io_set(&ops);
    fail_syncs = 1000;
    tc_log[0] = '\0';
    assert_int_not_equal(cask_close(&f->c), CASK_OK);
    fail_syncs = 0;
    assert_non_null(strstr(tc_log, "could not be rewritten"));
    assert_non_null(strstr(tc_log, "past byte 125"));
}

/* cachestat(2) (Linux 6.5): dirty pages of a file. */
struct cs_range {
    uint64_t off, len;
};
struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* The sync of a segment (fdatasync) writes the pages dirtied through
 * the mapping: none is left dirty after cask_sync. */
static void
test_sync_writes_mapped_pages(void **state)
{
    struct fx *f = *state;
    set_n(f, 0, 40, "v");
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    int fd = open(seg, O_RDONLY);
    assert_true(fd >= 0);
    struct cs_range r = {0, 0}; /* to the end of the file */
    struct cs_stat cs;
    if (syscall(451, fd, &r, &cs, 0u) != 0) {
        close(fd);
        skip(); /* no cachestat: nothing to look at */
    }
    if (cs.nr_dirty == 0) {
        close(fd);
        skip(); /* written back already (memory pressure): nothing shown */
    }
    assert_int_equal(cask_sync(f->c), CASK_OK);
    assert_int_equal(syscall(451, fd, &r, &cs, 0u), 0);
    assert_int_equal(cs.nr_dirty, 0);
    close(fd);
    check_n(f, 0, 40, "v");
}

/* Bytes this process has had read from storage (/proc/self/io). */
static uint64_t
read_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    uint64_t n = 0;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "read_bytes: %" SCNu64, &n) == 1) {
            break;
        }
    }
    fclose(f);
    return n;
}

/* Drop the pages of path from the page cache (written out first). */
static void
drop_pages(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
}

/* Appends copied into the mapping after the segment's records left the
 * page cache fault in the pages they land on, and only those: a mapping
 * without MADV_RANDOM read around the first fault past the file's old
 * end, the device's whole read-ahead window (the records before it, a
 * megabyte of them for a 1 MiB value on a disk with a large
 * read_ahead_kb), for a small record. */
static void
test_append_fault_reads_its_page(void **state)
{
    struct fx *f = *state;
    char big[40000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tc_set(f->c, "big", big), CASK_OK); /* by pwrite */
    int calls = __atomic_load_n(&map_calls, __ATOMIC_SEQ_CST);
    set_n(f, 0, 1, "v"); /* into the mapping: the file extended ahead */
    if (__atomic_load_n(&map_calls, __ATOMIC_SEQ_CST) == calls) {
        skip(); /* not copied into a mapping here: nothing to look at */
    }
    assert_int_equal(cask_sync(f->c), CASK_OK);
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    drop_pages(seg); /* all but the mapped one the record went to */
    uint64_t before = read_bytes();
    set_n(f, 1, 99, "v"); /* about 5 KB: into pages not read before */
    uint64_t spent = read_bytes() - before;
    /* a control: a read of the dropped records is counted here at all
     * (none on tmpfs, nor without a block device's accounting) */
    drop_pages(seg);
    int fd = open(seg, O_RDONLY);
    assert_true(fd >= 0);
    char page[4096];
    uint64_t c0 = read_bytes();
    assert_true(pread(fd, page, sizeof(page), 8192) > 0);
    uint64_t control = read_bytes() - c0;
    close(fd);
    if (control == 0) {
        skip();
    }
    print_message("100 appends after the records left the page cache: "
                  "%" PRIu64 " bytes read\n",
                  spent);
    assert_true(spent <= 2 * 4096);
    check_n(f, 0, 100, "v");
    assert_true(tc_is(f->c, "big", big));
}

/* A test that replaced pwrite alone watches every write: no mapping. */
static ssize_t
plain_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static void
test_replaced_pwrite_keeps_pwrite(void **state)
{
    struct fx *f = *state;
    struct cask_io_ops ops = *cask_io_default();
    ops.pwrite = plain_pwrite;
    cask_io_set(&ops);
    tc_fx_reopen(f);
    set_n(f, 0, 10, "v");
    char seg[4096];
    tc_newest_segment(f, seg, sizeof(seg));
    struct cask_stats cs;
    cask_stats(f->c, -1, &cs);
    assert_int_equal(file_size(seg), cs.disk_bytes);
    assert_int_equal(__atomic_load_n(&map_calls, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(cs.mapped_writes, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_extended_then_cut_at_close,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_zero_tail_after_crash, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_closed_segment_zero_tail,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_map_fault_fails_the_write,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_real_sigbus, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_in_last_page_seen_at_sync,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_cut_in_last_page_seen_at_rollover, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_in_last_page_seen_at_close,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_at_close_not_rewritten,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_sync_writes_mapped_pages,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_replaced_pwrite_keeps_pwrite,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_append_fault_reads_its_page,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
