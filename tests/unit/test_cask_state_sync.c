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
 *
 * The cas mark the state file reserves is kept ahead of the counter by
 * the sync thread: a writer (its shard's mutex held) never syncs the state
 * file for it, unless the mark is used up because the thread's writes
 * fail; then the writes fail too, until the state file can be written.
 *
 * The flush point's writes are the roller thread's for a thread that
 * parks its writes (a server worker): a flush_all parks until its write
 * is durable (its state fdatasync held here), a delayed flush coming due
 * is seen by lookups at once while the roller writes it, and writes park
 * until it is durable; neither waits on the caller's thread.
 */
#include "storage/cask.h"

#include "storage/cask_internal.h"
#include "storage/cask_io.h"
#include "storage/cask_state.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static int fail_sync;       /* __atomic: every fdatasync returns EIO; 2: the
                             * next one only */
static int fail_write;      /* __atomic: every pwrite returns EIO */
static int fail_state_sync; /* __atomic: the state file's fdatasync fails */
/* State file fdatasyncs made on the test's own thread (a writer's), and on
 * any other (the store's threads) */
static pthread_t test_thread;
static unsigned caller_state_syncs, bg_state_syncs; /* __atomic */

static bool
is_state_file(int fd)
{
    char link[64], path[2048];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = '\0';
    size_t tail = strlen("/" CASK_STATE_NAME);
    return (size_t)n > tail &&
           strcmp(path + n - tail, "/" CASK_STATE_NAME) == 0;
}

/* __atomic: the state file's fdatasync on a store thread waits while
 * set (a disk that does not answer), up to HOLD_MAX_MS; held counts the
 * syncs that waited. */
static int hold_state_sync;
static unsigned held;
#define HOLD_MAX_MS 10000

static uint64_t
ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int
bad_fdatasync(int fd)
{
    if (is_state_file(fd)) {
        bool caller = pthread_equal(pthread_self(), test_thread);
        __atomic_add_fetch(caller ? &caller_state_syncs : &bg_state_syncs, 1,
                           __ATOMIC_SEQ_CST);
        if (!caller && __atomic_load_n(&hold_state_sync, __ATOMIC_SEQ_CST)) {
            __atomic_add_fetch(&held, 1, __ATOMIC_SEQ_CST);
            uint64_t t0 = ms_now();
            while (__atomic_load_n(&hold_state_sync, __ATOMIC_SEQ_CST) &&
                   ms_now() - t0 < HOLD_MAX_MS) {
                sleep_ms(1);
            }
        }
        if (__atomic_load_n(&fail_state_sync, __ATOMIC_SEQ_CST)) {
            errno = EIO;
            return -1;
        }
    }
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
    fail_state_sync = 0;
    hold_state_sync = 0;
    held = 0;
    caller_state_syncs = 0;
    bg_state_syncs = 0;
    test_thread = pthread_self();
    tc_log[0] = '\0';
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    __atomic_store_n(&hold_state_sync, 0, __ATOMIC_SEQ_CST);
    (void)cask_park(false);
    __atomic_store_n(&fail_sync, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_write, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_state_sync, 0, __ATOMIC_SEQ_CST);
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

/* Hand out cas numbers until fewer than half a block are left below the
 * mark that was reserved when called; returns that mark. */
static uint64_t
use_half_block(struct cask *c)
{
    uint64_t mark = atomic_load(&c->cas_reserved), v = 0;
    do {
        assert_int_equal(cask_cas_next(c, &v), 0);
    } while (v + CASK_CAS_BLOCK / 2 < mark);
    return mark;
}

/* Wait up to 10 s for the reserved mark to pass mark. */
static bool
mark_passes(struct cask *c, uint64_t mark)
{
    for (int i = 0; i < 1000; i++) {
        if (atomic_load(&c->cas_reserved) > mark) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* The open reserves the first block: the first writes after a start do
 * not sync the state file on the writer's thread. */
static void
test_cas_reserved_at_open(void **state)
{
    struct fx *f = *state;
    tc_fx_reopen(f);
    __atomic_store_n(&caller_state_syncs, 0, __ATOMIC_SEQ_CST);
    fill(f);
    assert_int_equal(__atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST), 0);
    struct cask_state st;
    (void)newest_slot(f->dir, &st);
    assert_true(st.cas_reserved >=
                atomic_load(&f->c->next_cas) + CASK_CAS_BLOCK / 2);
}

/* Past half of each block the sync thread reserves the next one, with no
 * state file sync on the writer's thread, and the file's mark stays above
 * every cas handed out. */
static void
test_cas_reserved_ahead_by_sync_thread(void **state)
{
    struct fx *f = *state;
    __atomic_store_n(&caller_state_syncs, 0, __ATOMIC_SEQ_CST);
    unsigned bg0 = __atomic_load_n(&bg_state_syncs, __ATOMIC_SEQ_CST);
    for (int round = 0; round < 3; round++) {
        uint64_t mark = use_half_block(f->c);
        assert_true(mark_passes(f->c, mark));
        fill(f);
    }
    assert_int_equal(__atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST), 0);
    assert_true(__atomic_load_n(&bg_state_syncs, __ATOMIC_SEQ_CST) >= bg0 + 3);
    struct cask_state st;
    (void)newest_slot(f->dir, &st);
    assert_int_equal(st.cas_reserved, atomic_load(&f->c->cas_reserved));
    assert_true(st.cas_reserved > atomic_load(&f->c->next_cas));
}

/* The state file cannot be synced: the sync thread's reservation fails
 * (logged), writes go on while the block lasts, then fail; once the file
 * can be written again they succeed, under a mark on disk. */
static void
test_cas_ahead_fails_then_writes_fail(void **state)
{
    struct fx *f = *state;
    __atomic_store_n(&fail_state_sync, 1, __ATOMIC_SEQ_CST);
    uint64_t mark = use_half_block(f->c);
    for (int i = 0; i < 1000 && strstr(tc_log, "ahead") == NULL; i++) {
        usleep(10000);
    }
    assert_non_null(strstr(tc_log, "reserve cas numbers ahead"));
    assert_int_equal(atomic_load(&f->c->cas_reserved), mark);
    assert_int_equal(tc_set(f->c, "k0", "v0"), CASK_OK);
    uint64_t v = 0;
    while (cask_cas_next(f->c, &v) == 0) {
        assert_true(v < mark);
    }
    assert_int_not_equal(tc_set(f->c, "k1", "new"), CASK_OK);
    assert_true(tc_is(f->c, "k1", "v1") || tc_absent(f->c, "k1"));
    __atomic_store_n(&fail_state_sync, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(tc_set(f->c, "k1", "new"), CASK_OK);
    assert_true(tc_is(f->c, "k1", "new"));
    struct cask_state st;
    (void)newest_slot(f->dir, &st);
    assert_true(st.cas_reserved > atomic_load(&f->c->next_cas));
}

/* Until the store's threads entered a held state file sync (n so far). */
static void
wait_held(unsigned n)
{
    uint64_t t0 = ms_now();
    while (__atomic_load_n(&held, __ATOMIC_SEQ_CST) < n) {
        assert_true(ms_now() - t0 < 5000);
        sleep_ms(1);
    }
}

/* Until the store called its unblock hook after a call parked. */
static void
wait_unblocked(struct cask *c)
{
    uint64_t t0 = ms_now();
    while (cask_unblock_gen(c) == cask_blocked_gen()) {
        assert_true(ms_now() - t0 < 5000);
        sleep_ms(1);
    }
}

/* A flush_all of a thread that parks its writes (the server's workers)
 * writes no state file on that thread: it returns CASK_EBLOCKED at once,
 * the roller thread writes it, and nothing changes until that write is
 * durable. Meanwhile lookups and writes do not wait for it. Made again
 * after the unblock hook, the call answers; a crash then keeps the
 * flush. The flush point is the one when it was asked for: a key set
 * while it was written stays. */
static void
test_parked_flush_written_by_roller(void **state)
{
    struct fx *f = *state;
    char *dir = NULL;
    fill(f);
    unsigned mine = __atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST);
    (void)cask_park(true);
    __atomic_store_n(&hold_state_sync, 1, __ATOMIC_SEQ_CST);
    struct cask_flush_wait *w = NULL;
    assert_int_equal(cask_flush_park(f->c, tc_now, &w), CASK_EBLOCKED);
    assert_non_null(w);
    wait_held(1);
    uint64_t t0 = ms_now();
    assert_true(all_there(f->c));
    assert_int_equal(tc_set(f->c, "later", "x"), CASK_OK);
    assert_true(ms_now() - t0 < HOLD_MAX_MS / 2); /* not behind the sync */
    /* not done yet: parks again, still unflushed (a crash now may leave
     * the flush, unanswered, in the page cache: the slot is written) */
    assert_int_equal(cask_flush_park(f->c, tc_now, &w), CASK_EBLOCKED);
    assert_non_null(w);
    assert_true(all_there(f->c));
    __atomic_store_n(&hold_state_sync, 0, __ATOMIC_SEQ_CST);
    wait_unblocked(f->c);
    assert_int_equal(cask_flush_park(f->c, tc_now, &w), CASK_OK);
    assert_null(w);
    assert_true(none_there(f->c));
    assert_true(tc_is(f->c, "later", "x"));
    assert_int_equal(__atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST),
                     mine);
    (void)cask_park(false);
    struct cask *c = open_crashed(f, &dir);
    assert_true(none_there(c));
    assert_true(tc_is(c, "later", "x"));
    close_crashed(&c, &dir);
}

/* A parked flush_all whose write fails answers the error and changes
 * nothing, in memory or after a crash. Two calls asked for while the
 * roller is busy share one write, in their order: a delayed flush
 * replaced by one that flushes now. A caller that gives up waiting
 * (cask_flush_drop) leaves the flush to happen. */
static void
test_parked_flush_fails_or_shares(void **state)
{
    struct fx *f = *state;
    char *dir = NULL;
    fill(f);
    (void)cask_park(true);
    __atomic_store_n(&fail_state_sync, 1, __ATOMIC_SEQ_CST);
    struct cask_flush_wait *w = NULL;
    assert_int_equal(cask_flush_park(f->c, tc_now, &w), CASK_EBLOCKED);
    wait_unblocked(f->c);
    assert_int_equal(cask_flush_park(f->c, tc_now, &w), EIO);
    assert_null(w);
    __atomic_store_n(&fail_state_sync, 0, __ATOMIC_SEQ_CST);
    assert_true(all_there(f->c));
    struct cask *c = open_crashed(f, &dir);
    assert_true(all_there(c));
    close_crashed(&c, &dir);

    /* the roller held in a write of its own (a delayed flush) */
    __atomic_store_n(&hold_state_sync, 1, __ATOMIC_SEQ_CST);
    struct cask_flush_wait *w1 = NULL, *w2 = NULL, *w3 = NULL;
    assert_int_equal(cask_flush_park(f->c, tc_now + 100, &w1), CASK_EBLOCKED);
    wait_held(1);
    assert_int_equal(cask_flush_park(f->c, tc_now + 50, &w2), CASK_EBLOCKED);
    assert_int_equal(cask_flush_park(f->c, tc_now, &w3), CASK_EBLOCKED);
    assert_true(w2 == w3 && w1 != w2);
    cask_flush_drop(f->c, &w3); /* its connection closed */
    assert_null(w3);
    assert_true(all_there(f->c));
    __atomic_store_n(&hold_state_sync, 0, __ATOMIC_SEQ_CST);
    uint64_t t0 = ms_now();
    int rc;
    while ((rc = cask_flush_park(f->c, 0, &w2)) == CASK_EBLOCKED) {
        assert_true(ms_now() - t0 < 5000);
        sleep_ms(1);
    }
    assert_int_equal(rc, CASK_OK);
    assert_int_equal(cask_flush_park(f->c, 0, &w1), CASK_OK);
    (void)cask_park(false);
    assert_true(none_there(f->c));
    assert_int_equal(atomic_load(&f->c->flush_pending_at), 0);
    assert_int_equal(tc_set(f->c, "k0", "new"), CASK_OK);
    tc_now += 200; /* neither delayed flush is pending any more */
    assert_true(tc_is(f->c, "k0", "new"));
    c = open_crashed(f, &dir);
    assert_true(tc_is(c, "k0", "new"));
    assert_true(tc_absent(c, "k1"));
    close_crashed(&c, &dir);
}

/* A delayed flush_all coming due: the first lookup after its time sees
 * it at once, and so does every other, without waiting for the state
 * file (held) or writing it on the caller's thread; the roller thread
 * writes it. A write of a thread that parks is not made before it is
 * durable: it parks (CASK_EBLOCKED, nothing changed), and is made once
 * the unblock hook ran. A crash then keeps the flush, and the write. */
static void
test_due_flush_written_by_roller(void **state)
{
    struct fx *f = *state;
    char *dir = NULL;
    fill(f);
    assert_int_equal(cask_flush(f->c, tc_now + 10), CASK_OK);
    assert_true(all_there(f->c));
    unsigned mine = __atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST);
    __atomic_store_n(&hold_state_sync, 1, __ATOMIC_SEQ_CST);
    tc_now += 20;
    uint64_t t0 = ms_now();
    assert_true(none_there(f->c));
    wait_held(1);
    assert_true(none_there(f->c));
    assert_true(ms_now() - t0 < HOLD_MAX_MS / 2); /* not behind the sync */
    (void)cask_park(true);
    assert_int_equal(tc_set(f->c, "k0", "new"), CASK_EBLOCKED);
    assert_true(tc_absent(f->c, "k0"));
    assert_int_equal(__atomic_load_n(&caller_state_syncs, __ATOMIC_SEQ_CST),
                     mine);
    __atomic_store_n(&hold_state_sync, 0, __ATOMIC_SEQ_CST);
    wait_unblocked(f->c);
    assert_int_equal(tc_set(f->c, "k0", "new"), CASK_OK);
    (void)cask_park(false);
    assert_int_equal(atomic_load(&f->c->flush_pending_at), 0);
    struct cask *c = open_crashed(f, &dir);
    assert_true(tc_is(c, "k0", "new"));
    assert_true(tc_absent(c, "k1"));
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
            cmocka_unit_test_setup_teardown(test_cas_reserved_at_open, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                    test_cas_reserved_ahead_by_sync_thread, setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_cas_ahead_fails_then_writes_fail, setup, teardown),
            cmocka_unit_test_setup_teardown(test_parked_flush_written_by_roller,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_parked_flush_fails_or_shares,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_due_flush_written_by_roller,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
