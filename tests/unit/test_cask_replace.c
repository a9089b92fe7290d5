/* test_cask_replace.c - replacing a file by temp + fdatasync + rename +
 * directory fsync (cask_replace_file): a failure before the rename leaves
 * the old file and reports an error; a failed directory fsync after it
 * leaves the new file in place, which every later open reads, so the
 * replacement counts as done (and the caller is told, to log it). Then
 * what memory holds matches what a restart reads: a compaction whose
 * retired file's directory sync failed is committed (no segment reported
 * missing after a restart, every key as before), and a state file created
 * that way is in effect. Faults through the cask_io seam.
 */
#include "test_cask_seam.h"
#include "test_cask_util.h"

#include "storage/cask_io.h"
#include "storage/cask_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>

/* 1: the fdatasync of directories fails; 2: that of regular files; 3:
 * that of the directory holding a file named watch, once each time that
 * file was replaced (its inode changed): the sync of its replacement. */
static atomic_int fault;
static atomic_int failed_calls;
static const char *watch;
static ino_t watch_ino;

static bool
watched_replaced(int fd)
{
    char d[4200], p[4400];
    struct stat st;
    if (!tc_fd_path(fd, d, sizeof(d))) {
        return false;
    }
    snprintf(p, sizeof(p), "%s/%s", d, watch);
    if (stat(p, &st) != 0 || st.st_ino == watch_ino) {
        return false;
    }
    watch_ino = st.st_ino;
    return true;
}

static int
bad_fdatasync(int fd)
{
    struct stat st;
    int f = atomic_load(&fault);
    bool fail = false;
    if (f != 0 && fstat(fd, &st) == 0) {
        fail = f == 1   ? S_ISDIR(st.st_mode)
               : f == 2 ? S_ISREG(st.st_mode)
                        : S_ISDIR(st.st_mode) && watched_replaced(fd);
    }
    if (fail) {
        atomic_fetch_add(&failed_calls, 1);
        errno = EIO;
        return -1;
    }
    return cask_io_default()->fdatasync(fd);
}

static int
setup(void **state)
{
    (void)state;
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    cask_io_set(&ops);
    atomic_store(&fault, 0);
    atomic_store(&failed_calls, 0);
    tc_log[0] = '\0';
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    atomic_store(&fault, 0);
    cask_io_set(NULL);
    return 0;
}

static void
read_file(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, out, cap - 1);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
}

static void
test_replace_file(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    char path[600], tmp[600], got[64];
    snprintf(path, sizeof(path), "%s/f", dir);
    snprintf(tmp, sizeof(tmp), "%s/f.tmp", dir);
    int dir_rc = -1;
    assert_int_equal(cask_replace_file(dir, tmp, path, "one", 3, &dir_rc), 0);
    assert_int_equal(dir_rc, 0);

    /* The file's own sync fails: nothing replaced, an error. */
    atomic_store(&fault, 2);
    assert_int_equal(cask_replace_file(dir, tmp, path, "two", 3, &dir_rc), EIO);
    read_file(path, got, sizeof(got));
    assert_string_equal(got, "one");
    assert_int_equal(access(tmp, F_OK), -1);

    /* The directory's sync fails after the rename: replaced, and said. */
    atomic_store(&fault, 1);
    assert_int_equal(cask_replace_file(dir, tmp, path, "three", 5, &dir_rc), 0);
    assert_int_equal(dir_rc, EIO);
    read_file(path, got, sizeof(got));
    assert_string_equal(got, "three");
    assert_int_equal(access(tmp, F_OK), -1);
    atomic_store(&fault, 0);
    tc_rmrf(dir);
    free(dir);
}

static void
tune(struct cask_options *o)
{
    tc_options(o);
    o->shards = 1;
    o->sync = CASK_SYNC_INTERVAL;
    o->sync_interval_ms = 600000; /* only the test's cask_sync syncs */
    o->segment_size = 4096;
}

/* A compaction whose retired file is in place but whose directory sync
 * failed is committed: a restart (which removes the inputs the file
 * lists) finds what memory had, and no segment missing. */
static void
test_compaction_commit_dir_sync_fails(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_options o;
    struct cask *c = NULL;
    tune(&o);
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    char k[16], v[64];
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "c%d", i % 40);
        snprintf(v, sizeof(v), "value-%d-........................", i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
    assert_int_equal(cask_delete(c, "c7", 2, 0), CASK_OK);
    assert_int_equal(cask_sync(c), CASK_OK);
    struct cask_stats st;
    cask_stats(c, -1, &st);
    uint64_t before = st.compactions;

    /* The directory sync after the retired file's rename fails (the
     * manifest's and the hints' go through). */
    watch = "retired";
    watch_ino = 0;
    atomic_store(&fault, 3);
    assert_int_equal(cask_compact(c, -1, true), CASK_OK);
    atomic_store(&fault, 0);
    assert_true(atomic_load(&failed_calls) > 0);
    cask_stats(c, -1, &st);
    assert_true(st.compactions > before);
    assert_non_null(strstr(tc_log, "committed, but after a power loss"));

    for (int round = 0; round < 2; round++) {
        for (int i = 360; i < 400; i++) {
            snprintf(k, sizeof(k), "c%d", i % 40);
            snprintf(v, sizeof(v), "value-%d-........................", i);
            if (i % 40 == 7) {
                assert_true(tc_absent(c, k));
            } else {
                assert_true(tc_is(c, k, v));
            }
        }
        cask_close(&c);
        tc_log[0] = '\0';
        assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
        cask_stats(c, -1, &st);
        if (st.segments_missing != 0) {
            fail_msg("segments reported missing after the restart; log:\n%s",
                     tc_log);
        }
    }
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* A fresh store whose state file's directory sync fails at creation
 * opens (the file is in place, in effect, and read by the next open). */
static void
test_state_file_dir_sync_fails(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_options o;
    struct cask *c = NULL;
    tune(&o);
    /* Only the directory sync after the state file's rename fails. */
    watch = "state";
    watch_ino = 0;
    atomic_store(&fault, 3);
    int rc = cask_open(&c, dir, &o);
    atomic_store(&fault, 0);
    if (rc != CASK_OK) {
        fail_msg("open failed: %s; log:\n%s", cask_strerror(rc), tc_log);
    }
    assert_true(atomic_load(&failed_calls) > 0);
    assert_non_null(strstr(tc_log, "in effect, but a power loss"));
    char p[600];
    snprintf(p, sizeof(p), "%s/state", dir);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(tc_set(c, "a", "1"), CASK_OK);
    assert_int_equal(cask_flush(c, 0), CASK_OK);
    assert_int_equal(tc_set(c, "b", "2"), CASK_OK);
    cask_close(&c);
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    assert_true(tc_absent(c, "a"));
    assert_true(tc_is(c, "b", "2"));
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_replace_file, setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_compaction_commit_dir_sync_fails, setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_file_dir_sync_fails,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
