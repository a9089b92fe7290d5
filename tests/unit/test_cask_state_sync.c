/* test_cask_state_sync.c - an update of the state file whose fdatasync
 * (or write) fails, injected through the cask_io seam, changes nothing:
 * not in memory, and not in what a process crash leaves behind either.
 * The update is written in place before its fdatasync, so the page cache
 * holds the new slot when the sync fails; a kill -9 keeps the page cache,
 * and the next start would read that slot. Here a copy of the data
 * directory taken right after the failure (what a crash would leave: the
 * files as the page cache holds them) is opened instead of the store.
 * When only the update's own sync fails, the state in effect is made
 * durable over it, so that a power loss cannot apply it either.
 */
#include "storage/cask.h"

#include "storage/cask_io.h"
#include "storage/cask_state.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>

static int fail_sync;  /* __atomic: every fdatasync returns EIO; 2: the
                        * next one only */
static int fail_write; /* __atomic: every pwrite returns EIO */

static int
bad_fdatasync(int fd)
{
    int f = __atomic_load_n(&fail_sync, __ATOMIC_SEQ_CST);
    if (f == 2) {
        f = __atomic_exchange_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    }
    if (f != 0) {
        errno = EIO;
        return -1;
    }
    return cask_io_default()->fdatasync(fd);
}

/* Writes half of what it is given, then fails: a torn slot. */
static ssize_t
bad_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (__atomic_load_n(&fail_write, __ATOMIC_SEQ_CST)) {
        if (n > 1) {
            (void)cask_io_default()->pwrite(fd, buf, n / 2, off);
        }
        errno = EIO;
        return -1;
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static void
tune(struct cask_options *o)
{
    o->shards = 2;
}

static int
setup(void **state)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = bad_fdatasync;
    ops.pwrite = bad_pwrite;
    cask_io_set(&ops);
    fail_sync = 0;
    fail_write = 0;
    tc_log[0] = '\0';
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_write, 0, __ATOMIC_SEQ_CST);
    int rc = tc_fx_teardown(state);
    cask_io_set(NULL);
    return rc;
}

/* Copy directory from into to (created), recursively: regular files by
 * their contents as read now, that is as the page cache holds them. */
static void
copy_tree(const char *from, const char *to)
{
    assert_int_equal(mkdir(to, 0755), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char a[2048], b[2048];
        snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
        struct stat st;
        assert_int_equal(lstat(a, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            copy_tree(a, b);
            continue;
        }
        assert_true(S_ISREG(st.st_mode));
        int in = open(a, O_RDONLY | O_CLOEXEC);
        int out = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(in >= 0 && out >= 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0) {
            assert_int_equal(write(out, buf, (size_t)n), n);
        }
        assert_int_equal(n, 0);
        close(in);
        close(out);
    }
    closedir(d);
}

/* What a crash right now would leave, opened as a store (a restart). */
static struct cask *
open_crashed(struct fx *f, char **dir)
{
    *dir = tc_mkdtemp();
    assert_non_null(*dir);
    char copy[2048];
    snprintf(copy, sizeof(copy), "%s/data", *dir);
    copy_tree(f->dir, copy);
    struct cask *c = NULL;
    assert_int_equal(cask_open(&c, copy, &f->o), CASK_OK);
    return c;
}

static void
close_crashed(struct cask **c, char **dir)
{
    cask_close(c);
    tc_rmrf(*dir);
    free(*dir);
    *dir = NULL;
}

static void
fill(struct fx *f)
{
    char k[16], v[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
}

static bool
all_there(struct cask *c)
{
    char k[16], v[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        if (!tc_is(c, k, v)) {
            return false;
        }
    }
    return true;
}

static bool
none_there(struct cask *c)
{
    char k[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        if (!tc_absent(c, k)) {
            return false;
        }
    }
    return true;
}

/* A flush_all whose state fdatasync failed answered an error: after a
 * crash the items are still there. Once syncs work, a flush_all holds. */
static void
test_failed_flush_not_applied_after_crash(void **state)
{
    struct fx *f = *state;
    char *dir = NULL;
    fill(f);
    for (int round = 0; round < 3; round++) {
        /* twice in a row as well: the same slot is written again */
        __atomic_store_n(&fail_sync, 1, __ATOMIC_SEQ_CST);
        assert_int_not_equal(cask_flush(f->c, 0), CASK_OK);
        __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
        assert_true(all_there(f->c));
        struct cask *c = open_crashed(f, &dir);
        assert_true(all_there(c));
        close_crashed(&c, &dir);
    }
    assert_int_equal(cask_flush(f->c, 0), CASK_OK);
    assert_true(none_there(f->c));
    struct cask *c = open_crashed(f, &dir);
    assert_true(none_there(c));
    close_crashed(&c, &dir);
}

/* The same for a delayed flush_all (its time is persisted), and for an
 * update whose write itself failed halfway. */
static void
test_failed_delayed_flush_not_applied_after_crash(void **state)
{
    struct fx *f = *state;
    char *dir = NULL;
    fill(f);
    __atomic_store_n(&fail_sync, 1, __ATOMIC_SEQ_CST);
    assert_int_not_equal(cask_flush(f->c, tc_now + 10), CASK_OK);
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_write, 1, __ATOMIC_SEQ_CST);
    assert_int_not_equal(cask_flush(f->c, 0), CASK_OK);
    __atomic_store_n(&fail_write, 0, __ATOMIC_SEQ_CST);
    struct cask *c = open_crashed(f, &dir);
    tc_now += 20; /* past the delayed flush that failed */
    assert_true(all_there(c));
    assert_true(all_there(f->c));
    close_crashed(&c, &dir);
    /* the store still updates its state file (both slots usable) */
    assert_int_equal(cask_flush(f->c, tc_now + 5), CASK_OK);
    c = open_crashed(f, &dir);
    assert_true(all_there(c));
    tc_now += 10;
    assert_true(none_there(c));
    close_crashed(&c, &dir);
    assert_true(none_there(f->c));
}

/* The newest valid slot of dir's state file, as the disk would give it
 * (read through the page cache here). */
static uint64_t
newest_slot(const char *dir, struct cask_state *st)
{
    char p[2048];
    snprintf(p, sizeof(p), "%s/state", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char buf[2 * CASK_STATE_SLOT + 1];
    assert_int_equal(read(fd, buf, 2 * CASK_STATE_SLOT),
                     (ssize_t)(2 * CASK_STATE_SLOT));
    close(fd);
    uint64_t best = 0;
    for (unsigned i = 0; i < 2; i++) {
        char slot[CASK_STATE_SLOT + 1];
        memcpy(slot, buf + i * CASK_STATE_SLOT, CASK_STATE_SLOT);
        slot[CASK_STATE_SLOT] = '\0';
        struct cask_state t;
        uint64_t gen;
        if (cask_state_parse(slot, &t, &gen) == 0 && gen >= best) {
            best = gen;
            *st = t;
        }
    }
    return best;
}

/* Only the update's own fdatasync fails: the state in effect is written
 * over it under its generation and synced, so the disk holds a newer
 * slot that says what memory says (a power loss cannot leave the failed
 * update as the newest), and the next update goes to the other slot
 * (then its copy to this one). */
static void
test_failed_update_undone_durably(void **state)
{
    struct fx *f = *state;
    fill(f);
    struct cask_state before, after;
    uint64_t g0 = newest_slot(f->dir, &before);
    __atomic_store_n(&fail_sync, 2, __ATOMIC_SEQ_CST);
    assert_int_not_equal(cask_flush(f->c, 0), CASK_OK);
    assert_int_equal(__atomic_load_n(&fail_sync, __ATOMIC_SEQ_CST), 0);
    assert_true(all_there(f->c));
    uint64_t g1 = newest_slot(f->dir, &after);
    assert_int_equal(g1, g0 + 1);
    assert_int_equal(after.flush_cas, before.flush_cas);
    assert_int_equal(after.flush_pending_at, before.flush_pending_at);
    assert_int_equal(after.cas_reserved, before.cas_reserved);
    assert_non_null(strstr(tc_log, "not applied"));
    char *dir = NULL;
    struct cask *c = open_crashed(f, &dir);
    assert_true(all_there(c));
    close_crashed(&c, &dir);
    /* the next update takes the other slot, and holds; its copy then
     * goes over the undone slot */
    assert_int_equal(cask_flush(f->c, 0), CASK_OK);
    assert_int_equal(newest_slot(f->dir, &after), g0 + 3);
    assert_true(none_there(f->c));
    c = open_crashed(f, &dir);
    assert_true(none_there(c));
    close_crashed(&c, &dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                    test_failed_flush_not_applied_after_crash, setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_failed_delayed_flush_not_applied_after_crash, setup,
                    teardown),
            cmocka_unit_test_setup_teardown(test_failed_update_undone_durably,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
