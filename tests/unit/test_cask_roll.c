/* test_cask_roll.c - under --sync=interval a roll-over does not wait for
 * the closed segment's fdatasync (injected through the cask_io seam to
 * block until released): the write that filled a segment returns while
 * that sync is still held, no hint is written for a segment not yet
 * synced, and the next interval sync makes every write durable (checked
 * on a power-loss copy: each file as of its last good fdatasync). A
 * failed background sync of a closed segment refuses writes until the
 * maintenance thread has rewritten its records, and loses nothing
 * acknowledged, even to a power loss after that sync dropped its pages.
 * A power loss while closed segments wait for their sync (the segments
 * made after them present by name, empty) leaves a store that opens with
 * every key as last synced or newer, and one after the sync, after hints
 * and after a compaction keeps every change, deletes included. The
 * ftruncate that cuts a closed segment back to its records and gives back
 * the disk reserved past its end (which ext4 makes wait for a sync in
 * progress) is held too: the writes do not wait for it, and once let go
 * every closed segment has its blocks back; so it has after an open that
 * found them still reserved (a crash before the sync thread's release).
 * Under --sync=always a roll-over whose segment's appends are all
 * committed leaves its sync to the sync thread too: the writes do not
 * wait for it, a power loss meanwhile loses nothing (the journal has it
 * all), and a journal commit that fails then undoes its own put alone.
 * A thread that parks its writes (cask_park) gets CASK_EBLOCKED at the
 * bound of closed segments waiting for their sync, with nothing changed,
 * and the unblock hook once the sync thread goes on.
 */
#include "storage/cask.h"

#include "storage/cask_io.h"
#include "storage/cask_segment.h"
#include "tests/unit/powerloss.h"
#include "tests/unit/test_cask_seam.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define NKEYS 24
#define VLEN  (8u * 1024)

static atomic_int hold;      /* 1: syncs of segments with records block */
static atomic_int held;      /* syncs blocked now */
static atomic_int fail_next; /* 1: the next such sync fails, pages lost */
static atomic_int failed_syncs;
static atomic_int hold_trunc;   /* 1: cuts of segments with records block */
static atomic_int held_trunc;   /* such cuts blocked now */
static atomic_int fail_journal; /* 1: journal syncs fail (pages written) */

/* ---- a power loss ---------------------------------------------------------
 * A file holds on disk its bytes as of its last successful fdatasync (a
 * failed one is taken to have written nothing), nothing for a file never
 * synced. Directories are taken as durable (the store fsyncs them after
 * each create and rename). The images and the copy are
 * tests/unit/powerloss.c's; hook_fdatasync below takes each image. */

/* Files under dir whose names end in ext. */
static int
count_files(const char *dir, const char *ext)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    size_t el = strlen(ext);
    while ((de = readdir(d)) != NULL) {
        char p[4200];
        struct stat st;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            n += count_files(p, ext);
            continue;
        }
        size_t l = strlen(de->d_name);
        if (l > el && strcmp(de->d_name + l - el, ext) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* A segment file holding records (a new one's header sync goes through:
 * it is part of creating the file). */
static bool
holds_records(int fd)
{
    char p[4200];
    struct stat st;
    size_t n;
    return tc_fd_path(fd, p, sizeof(p)) && (n = strlen(p)) > 4 &&
           strcmp(p + n - 4, ".seg") == 0 && fstat(fd, &st) == 0 &&
           st.st_size > 32;
}

static int
hook_fdatasync(int fd)
{
    if (atomic_load(&fail_journal) && tc_fd_is_journal(fd)) {
        powerloss_take(fd); /* a failed sync may have written them */
        errno = EIO;
        return -1;
    }
    if (holds_records(fd)) {
        int one = 1;
        if (atomic_compare_exchange_strong(&fail_next, &one, 0)) {
            atomic_fetch_add(&failed_syncs, 1);
            errno = EIO;
            return -1;
        }
        if (atomic_load(&hold)) {
            atomic_fetch_add(&held, 1);
            while (atomic_load(&hold)) {
                usleep(1000);
            }
            atomic_fetch_sub(&held, 1);
        }
    }
    int rc = cask_io_default()->fdatasync(fd);
    if (rc == 0) {
        powerloss_take(fd);
    }
    return rc;
}

/* A segment's ftruncate to no more than its size (its cut back to its
 * records, or the reserve past its end given back) blocks while
 * hold_trunc is set; one that extends it (ahead of appends copied into
 * its mapping) does not. */
static int
hook_ftruncate(int fd, off_t len)
{
    struct stat st;
    if (len > 32 && holds_records(fd) && fstat(fd, &st) == 0 &&
        len <= st.st_size && atomic_load(&hold_trunc)) {
        atomic_fetch_add(&held_trunc, 1);
        while (atomic_load(&hold_trunc)) {
            usleep(1000);
        }
        atomic_fetch_sub(&held_trunc, 1);
    }
    return cask_io_default()->ftruncate(fd, len);
}

/* Roll-over calls made on one watched thread (the writer's): removals
 * of a stale hint, and a new segment's first disk reserve. */
static atomic_int watching;
static pthread_t watched;
static atomic_int watched_unlinks;
static atomic_int watched_first_reserves;

static bool
on_watched(void)
{
    return atomic_load(&watching) && pthread_equal(pthread_self(), watched);
}

static int
hook_unlink(const char *path)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".hint") == 0 && on_watched()) {
        atomic_fetch_add(&watched_unlinks, 1);
    }
    return cask_io_default()->unlink(path);
}

/* Disk reserve extensions: those made on the watched thread; hold_alloc
 * holds those of any other thread (held_allocs counts them) until it is
 * cleared; fail_alloc fails every one with that errno. */
static atomic_int watched_fallocates;
static atomic_int hold_alloc;
static atomic_int held_allocs;
static atomic_int fail_alloc;

static int
hook_fallocate(int fd, off_t off, off_t len)
{
    if (off == CASK_SEG_HDR && on_watched()) {
        atomic_fetch_add(&watched_first_reserves, 1);
    }
    if (on_watched()) {
        atomic_fetch_add(&watched_fallocates, 1);
    } else if (atomic_load(&hold_alloc)) {
        atomic_fetch_add(&held_allocs, 1);
        while (atomic_load(&hold_alloc)) {
            usleep(1000);
        }
    }
    int e = atomic_load(&fail_alloc);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return cask_io_default()->fallocate(fd, off, len);
}

static char value[VLEN];

static void
value_of(int i, char *out)
{
    memset(out, 'a' + i % 26, VLEN);
    snprintf(out, 16, "v%d-", i);
}

static int
put(struct cask *c, int i)
{
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    value_of(i, value);
    return cask_store(c, CASK_SET, k, strlen(k), value, VLEN, 0, 0, 0, NULL);
}

static bool
has(struct cask *c, int i)
{
    char k[32], want[VLEN];
    snprintf(k, sizeof(k), "key%d", i);
    value_of(i, want);
    struct cask_item it;
    char *v = NULL;
    int rc = cask_get(c, k, strlen(k), &it, &v);
    bool ok = rc == CASK_OK && it.vlen == VLEN && memcmp(v, want, VLEN) == 0;
    free(v);
    return ok;
}

/* Segment size for the next fx_open (0: 64 KiB); fx_close resets it. */
static uint64_t seg_size;

struct rfx {
    struct cask_options o;
    char *dir;
    char data[4200], lost[4200];
    struct cask *c;
};

static void
fx_open_mode(struct rfx *f, unsigned interval_ms, bool write_map,
             enum cask_sync sync)
{
    tc_options(&f->o);
    f->o.write_map = write_map;
    f->o.shards = 1;
    f->o.sync = sync;
    f->o.journal_size = 4 * 1024 * 1024; /* no checkpoint meanwhile */
    f->o.sync_interval_ms = interval_ms;
    /* a roll-over every 7 puts, unless a test asks for larger ones */
    f->o.segment_size = seg_size != 0 ? seg_size : 64 * 1024;
    f->dir = tc_mkdtemp();
    assert_non_null(f->dir);
    snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
    snprintf(f->lost, sizeof(f->lost), "%s/after-power-loss", f->dir);
    static struct cask_io_ops ops;
    ops = *cask_io_default();
    ops.fdatasync = hook_fdatasync;
    ops.ftruncate = hook_ftruncate;
    ops.unlink = hook_unlink;
    ops.fallocate = hook_fallocate;
    atomic_store(&watching, 0);
    atomic_store(&watched_unlinks, 0);
    atomic_store(&watched_first_reserves, 0);
    atomic_store(&watched_fallocates, 0);
    atomic_store(&hold_alloc, 0);
    atomic_store(&held_allocs, 0);
    atomic_store(&fail_alloc, 0);
    powerloss_reset();
    atomic_store(&hold, 0);
    atomic_store(&hold_trunc, 0);
    atomic_store(&held_trunc, 0);
    atomic_store(&fail_journal, 0);
    atomic_store(&held, 0);
    atomic_store(&fail_next, 0);
    atomic_store(&failed_syncs, 0);
    cask_io_set(&ops);
    tc_log[0] = '\0';
    f->c = NULL;
    assert_int_equal(cask_open(&f->c, f->data, &f->o), CASK_OK);
}

static void
fx_open_map(struct rfx *f, unsigned interval_ms, bool write_map)
{
    fx_open_mode(f, interval_ms, write_map, CASK_SYNC_INTERVAL);
}

static void
fx_open(struct rfx *f, unsigned interval_ms)
{
    fx_open_map(f, interval_ms, true);
}

/* Cut the power, open what the disk holds, and check every key. */
static void
fx_power_loss(struct rfx *f, int nkeys)
{
    powerloss_copy(f->data, f->lost, true);
    struct cask *p = NULL;
    assert_int_equal(cask_open(&p, f->lost, &f->o), CASK_OK);
    for (int i = 0; i < nkeys; i++) {
        if (!has(p, i)) {
            fail_msg("after a power loss key%d is not what was "
                     "acknowledged (and synced); log:\n%s",
                     i, tc_log);
        }
    }
    cask_close(&p);
}

static void
fx_close(struct rfx *f)
{
    atomic_store(&hold, 0);
    atomic_store(&hold_trunc, 0);
    atomic_store(&hold_alloc, 0);
    atomic_store(&fail_alloc, 0);
    seg_size = 0;
    cask_close(&f->c);
    cask_io_set(NULL);
    powerloss_reset();
    tc_rmrf(f->dir);
    free(f->dir);
}

/* Whether a writer thread sets *done within 5 s. */
static bool
wait_done_5s(atomic_int *done)
{
    for (int i = 0; i < 5000 && !atomic_load(done); i++) {
        usleep(1000);
    }
    return atomic_load(done);
}

/* Join writer thread t, which must set *done within 5 s with the segment
 * syncs held (if not, the syncs are let go so that t can end, and the test
 * fails). */
static void
join_within_5s(pthread_t t, atomic_int *done)
{
    if (!wait_done_5s(done)) {
        atomic_store(&hold, 0);
        pthread_join(t, NULL);
        fail_msg("the writes waited for a closed segment's fdatasync");
    }
    pthread_join(t, NULL);
}

struct writer {
    struct cask *c;
    atomic_int done;
    int rc;
};

static void *
write_all(void *arg)
{
    struct writer *w = arg;
    w->rc = 0;
    for (int i = 0; i < NKEYS && w->rc == 0; i++) {
        w->rc = put(w->c, i);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* With the segment syncs held: write every key, each acknowledged within
 * 5 s (a write that waits for a held sync fails the test). */
static void
write_held(struct cask *c)
{
    struct writer w = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_all, &w), 0);
    join_within_5s(t, &w.done);
    assert_int_equal(w.rc, CASK_OK);
}

/* Every segment sync with records blocks: the writes still go through
 * several roll-overs, and none is left waiting for a sync. Then no hint
 * is written for a closed segment while its sync is held; once released,
 * one interval sync makes all of it durable. */
static void
roll_over_does_not_wait_for_sync(void **state)
{
    (void)state;
    struct rfx f;
    fx_open(&f, 50);
    atomic_store(&hold, 1);
    struct writer w = {.c = f.c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_all, &w), 0);
    bool done = wait_done_5s(&w.done);
    int segs = count_files(f.data, ".seg");
    atomic_store(&hold, 0); /* let a blocked writer finish, either way */
    pthread_join(t, NULL);
    if (!done) {
        fail_msg("the writes waited for a closed segment's fdatasync: "
                 "not done after 5 s with the syncs held (%d segments)",
                 segs);
    }
    assert_int_equal(w.rc, CASK_OK);
    assert_true(segs >= 3);
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    /* The interval sync ran meanwhile, and is stuck in the first closed
     * segment's sync. */
    fx_close(&f);
}

static void
no_hint_before_sync(void **state)
{
    (void)state;
    struct rfx f;
    fx_open(&f, 50);
    atomic_store(&hold, 1);
    write_held(f.c);
    /* The maintenance thread writes hints once a second: two passes. */
    usleep(2200 * 1000);
    int hints = count_files(f.data, ".hint");
    int blocked = atomic_load(&held);
    atomic_store(&hold, 0);
    if (hints != 0) {
        fail_msg("%d hints written for segments whose sync was still held "
                 "(%d syncs held); log:\n%s",
                 hints, blocked, tc_log);
    }
    assert_true(blocked >= 1); /* the interval sync waits in one */
    assert_int_equal(cask_sync(f.c), CASK_OK);
    /* Synced: the hints come at the next pass. */
    for (int i = 0; i < 3000 && count_files(f.data, ".hint") == 0; i++) {
        usleep(1000);
    }
    assert_true(count_files(f.data, ".hint") > 0);
    fx_power_loss(&f, NKEYS);
    fx_close(&f);
}

/* The background sync of a closed segment fails (its pages dropped: the
 * power-loss copy has none of its records). Writes are refused until the
 * maintenance thread has rewritten what it held; nothing acknowledged is
 * lost, live or after a power loss then. */
static void
failed_background_sync_rewrites(void **state)
{
    (void)state;
    struct rfx f;
    fx_open(&f, 600000); /* the interval sync is the test's */
    /* Held: the sync thread, woken by the first roll-over, waits in the
     * first closed segment's sync; the second one's fails. */
    atomic_store(&hold, 1);
    write_held(f.c);
    for (int i = 0; i < 5000 && atomic_load(&held) == 0; i++) {
        usleep(1000);
    }
    assert_int_equal(atomic_load(&held), 1);
    atomic_store(&fail_next, 1);
    atomic_store(&hold, 0);
    assert_int_not_equal(cask_sync(f.c), CASK_OK);
    assert_int_equal(atomic_load(&failed_syncs), 1);
    if (strstr(tc_log, "roll-over: fdatasync seg") == NULL ||
        strstr(tc_log, "writes refused until its records are rewritten") ==
                NULL) {
        fail_msg("no failed background sync of a closed segment; log:\n%s",
                 tc_log);
    }
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    /* Refused until the rewrite is done (the maintenance thread). */
    int rc = CASK_EFAILED;
    for (int i = 0; i < 10000 && rc != CASK_OK; i++) {
        rc = tc_set(f.c, "after", "x");
        if (rc != CASK_OK) {
            assert_int_equal(rc, CASK_EFAILED);
            usleep(1000);
        }
    }
    assert_int_equal(rc, CASK_OK);
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    assert_int_equal(cask_sync(f.c), CASK_OK);
    fx_power_loss(&f, NKEYS);
    fx_close(&f);
}

/* ---- generations of a key, for the power-loss checks ---------------------
 * A value says its key and generation; a miss is generation 0. */
static void
gen_value(int i, int gen, char *out)
{
    memset(out, 'a' + (i + gen) % 26, VLEN);
    snprintf(out, 32, "v%d-g%d-", i, gen);
}

static int
put_gen(struct cask *c, int i, int gen)
{
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    gen_value(i, gen, value);
    return cask_store(c, CASK_SET, k, strlen(k), value, VLEN, 0, 0, 0, NULL);
}

static int
del_key(struct cask *c, int i)
{
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    return cask_delete(c, k, strlen(k), 0);
}

/* The generation key i reads as in c: 0 for a miss, -1 for a value that
 * is no generation of it (torn, foreign). */
static int
gen_of(struct cask *c, int i)
{
    char k[32], want[VLEN];
    snprintf(k, sizeof(k), "key%d", i);
    struct cask_item it;
    char *v = NULL;
    int rc = cask_get(c, k, strlen(k), &it, &v);
    if (rc == CASK_ENOTFOUND) {
        return 0;
    }
    int gen = -1;
    if (rc == CASK_OK && it.vlen == VLEN) {
        for (int g = 1; g <= 3; g++) {
            gen_value(i, g, want);
            if (memcmp(v, want, VLEN) == 0) {
                gen = g;
            }
        }
    }
    free(v);
    return gen;
}

/* Cut the power (into a directory named after what) and check each key
 * against [lo[i], hi[i]]: the generation last synced and the newest
 * acknowledged (0: deleted). A key deleted since may read as a miss,
 * never as a generation older than lo. */
static void
power_loss_check(struct rfx *f, const char *what, const int *lo, const int *hi)
{
    char to[4300];
    snprintf(to, sizeof(to), "%s-%s", f->lost, what);
    powerloss_copy(f->data, to, true);
    struct cask *p = NULL;
    tc_log[0] = '\0';
    int rc = cask_open(&p, to, &f->o);
    if (rc != CASK_OK) {
        fail_msg("%s: the power-loss copy does not open (%d); log:\n%s", what,
                 rc, tc_log);
    }
    for (int i = 0; i < NKEYS; i++) {
        int g = gen_of(p, i);
        bool ok;
        if (hi[i] == 0) {
            /* deleted: a miss, or (delete not synced) not older than lo */
            ok = g == 0 || (lo[i] >= 1 && g >= lo[i]);
        } else {
            ok = g >= 1 && g >= lo[i] && g <= hi[i];
        }
        if (!ok) {
            fail_msg("%s: key%d reads as generation %d (synced %d, newest "
                     "acknowledged %d; 0 = deleted); log:\n%s",
                     what, i, g, lo[i], hi[i], tc_log);
        }
    }
    cask_close(&p);
}

struct changer {
    struct cask *c;
    atomic_int done;
    int rc;
};

/* Odd keys to generation 2, even keys deleted. */
static void *
change_all(void *arg)
{
    struct changer *w = arg;
    w->rc = 0;
    for (int i = 0; i < NKEYS && w->rc == 0; i++) {
        w->rc = i % 2 ? put_gen(w->c, i, 2) : del_key(w->c, i);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* A power loss while closed segments wait for their sync (their images
 * and those of the segments made after them hold nothing, names and all
 * present): the copy opens, and every key reads as what the last sync
 * made durable or newer. After the sync a second power loss keeps every
 * change, deletes included, and so does a third after a compaction of
 * what the first writes left dead, with the hints the maintenance thread
 * wrote meanwhile. */
static void
power_loss_while_closed_wait(void **state)
{
    (void)state;
    struct rfx f;
    int lo[NKEYS], hi[NKEYS];
    fx_open(&f, 600000); /* the interval sync is the test's */
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(put_gen(f.c, i, 1), CASK_OK);
        lo[i] = hi[i] = 1;
    }
    assert_int_equal(cask_sync(f.c), CASK_OK);
    int segs0 = count_files(f.data, ".seg");
    atomic_store(&hold, 1);
    struct changer w = {.c = f.c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, change_all, &w), 0);
    join_within_5s(t, &w.done);
    assert_int_equal(w.rc, CASK_OK);
    for (int i = 0; i < NKEYS; i++) {
        hi[i] = i % 2 ? 2 : 0;
    }
    /* roll-overs happened, and the first closed segment's sync waits */
    assert_true(count_files(f.data, ".seg") >= segs0 + 2);
    for (int i = 0; i < 5000 && atomic_load(&held) == 0; i++) {
        usleep(1000);
    }
    assert_true(atomic_load(&held) >= 1);
    /* a maintenance pass (hints, manifest) while they wait */
    usleep(1200 * 1000);
    power_loss_check(&f, "held", lo, hi);
    atomic_store(&hold, 0);
    assert_int_equal(cask_sync(f.c), CASK_OK);
    for (int i = 0; i < NKEYS; i++) {
        lo[i] = hi[i];
    }
    power_loss_check(&f, "synced", lo, hi);
    /* hints for the synced segments (the maintenance pass: once a
     * second), then a compaction of the segments the changes left dead */
    for (int i = 0; i < 3000 && count_files(f.data, ".hint") == 0; i++) {
        usleep(1000);
    }
    assert_true(count_files(f.data, ".hint") > 0);
    assert_int_equal(cask_compact(f.c, 0, true), CASK_OK);
    assert_int_equal(cask_sync(f.c), CASK_OK);
    power_loss_check(&f, "compacted", lo, hi);
    fx_close(&f);
}

/* The newest segment file under dir (the active one): its name. */
static void
newest_seg(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    out[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0 &&
            strcmp(de->d_name, out) > 0) {
            snprintf(out, cap, "%s", de->d_name);
        }
    }
    closedir(d);
}

/* Closed segments (every .seg under dir but the newest) whose file takes
 * more disk than its size rounded up to a block: a reserve not given
 * back. Their count goes to *closed. */
static int
count_reserved(const char *dir, int *closed)
{
    char newest[256], p[4900];
    newest_seg(dir, newest, sizeof(newest));
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    *closed = 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        struct stat st;
        if (l <= 4 || strcmp(de->d_name + l - 4, ".seg") != 0 ||
            strcmp(de->d_name, newest) == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        assert_int_equal(stat(p, &st), 0);
        (*closed)++;
        uint64_t blocks = (uint64_t)st.st_blocks * 512;
        uint64_t size = ((uint64_t)st.st_size + 4095) / 4096 * 4096;
        if (blocks > size) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* The segment directory of the one shard under data. */
static void
shard_dir(const char *data, char *out, size_t cap)
{
    DIR *d = opendir(data);
    assert_non_null(d);
    struct dirent *de;
    out[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        char p[4600];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", data, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
            count_files(p, ".seg") > 0) {
            snprintf(out, cap, "%s", p);
        }
    }
    closedir(d);
    assert_true(out[0] != '\0');
}

/* Every cut of a closed segment back to its records, and every release of
 * the disk reserved past its end, blocks (as ext4 makes an ftruncate wait
 * for a sync of the file system in progress): the writes still go through
 * several roll-overs without waiting for one. Let go, the sync thread
 * gives every closed segment's reserve back (its allocated blocks no more
 * than its size), and a power loss then keeps every write. With the
 * write map the cut is that of the extension ahead of the appends; without
 * it, the release of the reserve alone. */
static void
roll_over_does_not_wait_for_cut(bool write_map)
{
    struct rfx f;
    fx_open_map(&f, 600000, write_map); /* the interval sync is the test's */
    atomic_store(&hold_trunc, 1);
    struct writer w = {.c = f.c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_all, &w), 0);
    bool done = wait_done_5s(&w.done);
    /* the sync thread, woken by the first roll-over, comes to one */
    for (int i = 0; i < 5000 && done && atomic_load(&held_trunc) == 0; i++) {
        usleep(1000);
    }
    int blocked = atomic_load(&held_trunc);
    atomic_store(&hold_trunc, 0); /* let a blocked writer finish */
    pthread_join(t, NULL);
    if (!done) {
        fail_msg("the writes waited for a closed segment's ftruncate: not "
                 "done after 5 s with the cuts held");
    }
    assert_int_equal(w.rc, CASK_OK);
    assert_true(blocked >= 1); /* the sync thread waits in one */
    assert_int_equal(cask_sync(f.c), CASK_OK);
    char sd[4600];
    shard_dir(f.data, sd, sizeof(sd));
    int closed = 0, reserved = count_reserved(sd, &closed);
    assert_true(closed >= 2);
    if (reserved != 0) {
        fail_msg("%d of %d closed segments keep disk reserved past their "
                 "end after their sync",
                 reserved, closed);
    }
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    fx_power_loss(&f, NKEYS);
    fx_close(&f);
}

static void
roll_over_does_not_wait_for_cut_mapped(void **state)
{
    (void)state;
    roll_over_does_not_wait_for_cut(true);
}

static void
roll_over_does_not_wait_for_reserve_release(void **state)
{
    (void)state;
    roll_over_does_not_wait_for_cut(false);
}

/* A crash before the sync thread gave a closed segment's reserve back
 * leaves the file with blocks allocated past its end (stood in for here
 * by reserving them again after a close): the next open gives them back,
 * and every key is still there. */
static void
open_gives_back_reserve_left_by_crash(void **state)
{
    (void)state;
    struct rfx f;
    fx_open_map(&f, 600000, false);
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(put(f.c, i), CASK_OK);
    }
    cask_close(&f.c);
    char sd[4600], newest[256], p[4900];
    shard_dir(f.data, sd, sizeof(sd));
    newest_seg(sd, newest, sizeof(newest));
    DIR *d = opendir(sd);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= 4 || strcmp(de->d_name + l - 4, ".seg") != 0 ||
            strcmp(de->d_name, newest) == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", sd, de->d_name);
        int fd = open(p, O_RDWR);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        int rc = cask_io_default()->fallocate(fd, st.st_size, 64 * 1024);
        close(fd);
        if (rc != 0) {
            closedir(d);
            fx_close(&f);
            skip(); /* no fallocate here: no reserve to give back */
        }
    }
    closedir(d);
    int closed = 0;
    assert_true(count_reserved(sd, &closed) >= 2);
    assert_int_equal(cask_open(&f.c, f.data, &f.o), CASK_OK);
    int reserved = count_reserved(sd, &closed);
    if (reserved != 0) {
        fail_msg("%d of %d closed segments keep the disk reserved past "
                 "their end after an open; log:\n%s",
                 reserved, closed, tc_log);
    }
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    fx_close(&f);
}

/* ---- --sync=always ---------------------------------------------------------
 * Each write is answered once its journal commit is durable; the segment
 * is synced lazily. A roll-over that finds every append of the segment it
 * closes committed leaves that segment's sync to the sync thread. */

static void
fx_open_always(struct rfx *f)
{
    fx_open_mode(f, 600000, true, CASK_SYNC_ALWAYS);
}

/* Every sync of a segment with records blocks: under always the writes
 * (each waiting for its commit, which syncs the journal only) still go
 * through several roll-overs, none waiting for the closed segment's
 * sync; let go, a power loss keeps every write. */
static void
always_roll_over_does_not_wait_for_sync(void **state)
{
    (void)state;
    struct rfx f;
    fx_open_always(&f);
    int segs0 = count_files(f.data, ".seg");
    atomic_store(&hold, 1);
    write_held(f.c);
    assert_true(count_files(f.data, ".seg") >= segs0 + 2);
    /* the sync thread, woken by the first roll-over, waits in one */
    for (int i = 0; i < 5000 && atomic_load(&held) == 0; i++) {
        usleep(1000);
    }
    assert_true(atomic_load(&held) >= 1);
    for (int i = 0; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    /* The power goes now (the journal has them all); the copy is opened
     * once the syncs are let go (its recovery syncs too). */
    char held_copy[4300];
    snprintf(held_copy, sizeof(held_copy), "%s-held", f.lost);
    powerloss_copy(f.data, held_copy, true);
    atomic_store(&hold, 0);
    struct cask *p = NULL;
    assert_int_equal(cask_open(&p, held_copy, &f.o), CASK_OK);
    for (int i = 0; i < NKEYS; i++) {
        if (!has(p, i)) {
            fail_msg("after a power loss with the closed segments unsynced "
                     "key%d is not what was acknowledged; log:\n%s",
                     i, tc_log);
        }
    }
    cask_close(&p);
    assert_int_equal(cask_sync(f.c), CASK_OK);
    fx_power_loss(&f, NKEYS);
    fx_close(&f);
}

struct one_put {
    struct cask *c;
    int rc;
    atomic_int done;
};

static void *
put_key0_gen2(void *arg)
{
    struct one_put *p = arg;
    p->rc = put_gen(p->c, 0, 2);
    atomic_store(&p->done, 1);
    return NULL;
}

/* Under always, closed segments wait for their sync (held) after
 * roll-overs, and a journal commit then fails: the one put it carried
 * (key0's) is answered with an error and undone (key0 misses), and every
 * other write, in the closed segments and in the active one, stays as
 * acknowledged: live, once commits resume, and after a power loss. */
static void
always_failed_commit_after_roll_undoes_uncovered(void **state)
{
    (void)state;
    struct rfx f;
    fx_open_always(&f);
    atomic_store(&hold, 1);
    write_held(f.c);
    for (int i = 0; i < 5000 && atomic_load(&held) == 0; i++) {
        usleep(1000);
    }
    assert_true(atomic_load(&held) >= 1);
    atomic_store(&fail_journal, 1);
    struct one_put p = {.c = f.c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, put_key0_gen2, &p), 0);
    /* The recovery's checkpoint syncs the closed segments: let them go
     * once the failure had time to be answered. */
    for (int i = 0; i < 2000 && !atomic_load(&p.done); i++) {
        usleep(1000);
    }
    atomic_store(&fail_journal, 0);
    atomic_store(&hold, 0);
    pthread_join(t, NULL);
    assert_int_not_equal(p.rc, CASK_OK);
    if (strstr(tc_log, "journal commit failed") == NULL) {
        fail_msg("no failed journal commit; log:\n%s", tc_log);
    }
    /* the store goes on once the journal recovered */
    int rc = CASK_EFAILED;
    for (int i = 0; i < 10000 && rc != CASK_OK; i++) {
        rc = tc_set(f.c, "after", "x");
        if (rc != CASK_OK) {
            usleep(1000);
        }
    }
    assert_int_equal(rc, CASK_OK);
    assert_int_equal(gen_of(f.c, 0), 0);
    for (int i = 1; i < NKEYS; i++) {
        assert_true(has(f.c, i));
    }
    assert_int_equal(cask_sync(f.c), CASK_OK);
    /* after a power loss: key0 deleted (hi 0, nothing older allowed),
     * the others as written (value_of is generation... checked by has) */
    powerloss_copy(f.data, f.lost, true);
    struct cask *pl = NULL;
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&pl, f.lost, &f.o), CASK_OK);
    if (gen_of(pl, 0) != 0) {
        fail_msg("after a power loss the failed put of key0 (or the value "
                 "it replaced) is back; log:\n%s",
                 tc_log);
    }
    for (int i = 1; i < NKEYS; i++) {
        if (!has(pl, i)) {
            fail_msg("after a power loss key%d is not what was "
                     "acknowledged; log:\n%s",
                     i, tc_log);
        }
    }
    cask_close(&pl);
    fx_close(&f);
}

static atomic_int unblock_calls;

static void
count_unblock(void *arg)
{
    (void)arg;
    atomic_fetch_add(&unblock_calls, 1);
}

/* The store's obstacle gone (its unblock count moved on from gen): within
 * ms milliseconds, or false. */
static bool
unblocked_ms(struct cask *c, uint64_t gen, int ms)
{
    for (int i = 0; i < ms && cask_unblock_gen(c) == gen; i++) {
        usleep(1000);
    }
    return cask_unblock_gen(c) != gen;
}

static bool
unblocked_5s(struct cask *c, uint64_t gen)
{
    return unblocked_ms(c, gen, 5000);
}

/* A thread that parks its writes (cask_park) and reaches the bound of
 * closed segments waiting for a held sync gets CASK_EBLOCKED at once,
 * with nothing changed: a new key stays absent, an overwrite leaves the
 * old value, and asking again before anything moved blocks again. Once
 * the syncs go, the unblock hook is called and the same writes succeed.
 * A thread that does not park writes on as before (it waits). */
static void
parked_write_changes_nothing(void **state)
{
    (void)state;
    struct rfx f;
    fx_open(&f, 600000);
    atomic_store(&unblock_calls, 0);
    cask_unblock_hook(f.c, count_unblock, NULL);
    assert_int_equal(put(f.c, 0), CASK_OK);
    atomic_store(&hold, 1);
    bool was = cask_park(true);
    /* Each roll-over parks the write that fills the segment while the
     * roller thread makes it (unblocked soon after: the same write again);
     * the write that reaches the bound stays blocked. */
    int i, rc = CASK_OK;
    uint64_t nblocked = 0;
    for (i = 1; i < 200; i++) {
        nblocked = cask_blocked_writes(f.c);
        rc = put(f.c, i);
        if (rc == CASK_EBLOCKED && unblocked_ms(f.c, cask_blocked_gen(), 500)) {
            rc = put(f.c, i);
            nblocked = cask_blocked_writes(f.c) - 1;
        }
        if (rc != CASK_OK) {
            break;
        }
    }
    assert_int_equal(rc, CASK_EBLOCKED);
    assert_true(i > 7); /* several roll-overs went through first */
    assert_int_equal(cask_blocked_writes(f.c), nblocked + 1);
    uint64_t gen = cask_blocked_gen();
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    struct cask_item it;
    assert_int_equal(cask_get(f.c, k, strlen(k), &it, NULL), CASK_ENOTFOUND);
    /* an overwrite of key0, with a value longer than key i's so that its
     * record cannot fit where key i's did not (key0 is the shorter key):
     * blocked, key0 as it was */
    static char longer[VLEN + 64];
    memset(longer, 'L', sizeof(longer));
    assert_int_equal(cask_store(f.c, CASK_SET, "key0", 4, longer,
                                sizeof(longer), 0, 0, 0, NULL),
                     CASK_EBLOCKED);
    assert_true(has(f.c, 0));
    assert_int_equal(put(f.c, i), CASK_EBLOCKED);
    assert_int_equal(cask_blocked_writes(f.c), nblocked + 3);
    assert_int_equal(cask_unblock_gen(f.c), gen);
    atomic_store(&hold, 0);
    assert_true(unblocked_5s(f.c, gen));
    assert_true(atomic_load(&unblock_calls) >= 1);
    /* the same write again, until it goes (each retry after a change) */
    for (int n = 0; n < 100; n++) {
        rc = put(f.c, i);
        if (rc != CASK_EBLOCKED) {
            break;
        }
        assert_true(unblocked_5s(f.c, cask_blocked_gen()));
    }
    assert_int_equal(rc, CASK_OK);
    assert_true(has(f.c, i));
    (void)cask_park(was);
    for (int j = 0; j <= i; j++) {
        assert_true(has(f.c, j));
    }
    cask_unblock_hook(f.c, NULL, NULL);
    fx_close(&f);
}

/* A write that parks (cask_park) and fills the active segment is
 * answered CASK_EBLOCKED and the roller thread makes the roll-over: the
 * writer's thread removes no stale hint and makes no new segment's first
 * reserve (the file's creation is the roller's too, outside the seam),
 * the unblock hook ends each wait, and every write then lands. A thread
 * that does not park rolls over itself, as before (which also shows
 * that the hooks see those calls). */
static void
parked_roll_runs_on_roller(void **state)
{
    (void)state;
    struct rfx f;
    fx_open(&f, 600000);
    assert_int_equal(put(f.c, 0), CASK_OK); /* the first segment's reserve */
    watched = pthread_self();
    atomic_store(&watching, 1);
    bool was = cask_park(true);
    uint64_t parks = 0;
    for (int i = 1; i < 30; i++) {
        int rc = put(f.c, i);
        for (int n = 0; rc == CASK_EBLOCKED && n < 100; n++) {
            parks++;
            assert_true(unblocked_5s(f.c, cask_blocked_gen()));
            rc = put(f.c, i);
        }
        assert_int_equal(rc, CASK_OK);
    }
    (void)cask_park(was);
    struct cask_stats st;
    memset(&st, 0, sizeof(st));
    cask_stats(f.c, -1, &st);
    assert_true(st.rolls_handed >= 3); /* 64 KiB, 9 KB values: every 7 */
    assert_true(parks >= st.rolls_handed);
    assert_int_equal(atomic_load(&watched_unlinks), 0);
    assert_int_equal(atomic_load(&watched_first_reserves), 0);
    for (int i = 0; i < 30; i++) {
        assert_true(has(f.c, i));
    }
    /* not parking: the roll-overs are this thread's */
    for (int i = 30; i < 60; i++) {
        assert_int_equal(put(f.c, i), CASK_OK);
    }
    assert_true(atomic_load(&watched_unlinks) >= 3);
    assert_true(atomic_load(&watched_first_reserves) >= 3);
    atomic_store(&watching, 0);
    for (int i = 0; i < 60; i++) {
        assert_true(has(f.c, i));
    }
    fx_close(&f);
}

/* Puts of key i (from i up to n), each retried while it parks, the
 * unblock awaited in between. Returns how many parked. */
static uint64_t
put_parking(struct cask *c, int from, int n)
{
    uint64_t parks = 0;
    for (int i = from; i < n; i++) {
        int rc = put(c, i);
        for (int t = 0; rc == CASK_EBLOCKED && t < 100; t++) {
            parks++;
            assert_true(unblocked_5s(c, cask_blocked_gen()));
            rc = put(c, i);
        }
        assert_int_equal(rc, CASK_OK);
    }
    return parks;
}

/* A thread that parks its writes never extends the active segment's disk
 * reserve itself (a fallocate that can take milliseconds on a busy disk):
 * the roller thread keeps it ahead of the appends. A thread that does not
 * park extends it itself, as before. */
static void
parked_reserve_runs_on_roller(void **state)
{
    (void)state;
    struct rfx f;
    seg_size = 16u << 20; /* no roll-over: a 1 MiB reserve chunk */
    fx_open(&f, 600000);
    assert_int_equal(put(f.c, 0), CASK_OK); /* the first reserve */
    watched = pthread_self();
    atomic_store(&watching, 1);
    bool was = cask_park(true);
    (void)put_parking(f.c, 1, 700); /* 5.6 MB of values */
    (void)cask_park(was);
    assert_int_equal(atomic_load(&watched_fallocates), 0);
    struct cask_stats st;
    memset(&st, 0, sizeof(st));
    cask_stats(f.c, -1, &st);
    assert_true(st.reserves_handed >= 4);
    assert_int_equal(st.rolls_handed, 0);
    for (int i = 0; i < 700; i++) {
        assert_true(has(f.c, i));
    }
    /* not parking: the extensions are this thread's again */
    for (int i = 700; i < 1400; i++) {
        assert_int_equal(put(f.c, i), CASK_OK);
    }
    assert_true(atomic_load(&watched_fallocates) >= 1);
    atomic_store(&watching, 0);
    fx_close(&f);
}

/* The roller's extension held (a slow disk): a parked write whose record
 * does not fit in the reserve gets CASK_EBLOCKED with nothing changed,
 * reads go on meanwhile, and the same write succeeds once the extension
 * is made. */
static void
held_reserve_parks_the_write(void **state)
{
    (void)state;
    struct rfx f;
    seg_size = 16u << 20;
    fx_open(&f, 600000);
    assert_int_equal(put(f.c, 0), CASK_OK);
    watched = pthread_self(); /* its own fallocates are not held */
    atomic_store(&watching, 1);
    atomic_store(&hold_alloc, 1);
    bool was = cask_park(true);
    int i = 1, rc = CASK_OK;
    for (; i < 400 && (rc = put(f.c, i)) == CASK_OK; i++) {
    }
    assert_int_equal(rc, CASK_EBLOCKED);
    assert_int_equal(atomic_load(&watched_fallocates), 0);
    assert_true(i > 100); /* the first 1.25 MB reserve was used first */
    uint64_t gen = cask_blocked_gen();
    for (int t = 0; t < 5000 && atomic_load(&held_allocs) == 0; t++) {
        usleep(1000); /* the roller took it up, and is held */
    }
    assert_true(atomic_load(&held_allocs) >= 1);
    assert_false(has(f.c, i)); /* nothing of it is stored */
    assert_true(has(f.c, i - 1));
    assert_true(has(f.c, 0));
    assert_int_equal(put(f.c, i), CASK_EBLOCKED); /* still short */
    assert_false(unblocked_ms(f.c, gen, 50));
    atomic_store(&hold_alloc, 0);
    assert_true(unblocked_5s(f.c, gen));
    (void)put_parking(f.c, i, i + 200);
    (void)cask_park(was);
    atomic_store(&watching, 0);
    for (int k = 0; k < i + 200; k++) {
        assert_true(has(f.c, k));
    }
    fx_close(&f);
}

/* The roller's extension fails (a full disk): the parked write is woken,
 * extends the reserve itself, and returns that error, storing nothing;
 * a delete still works in what is reserved. Once the disk has room again
 * writes succeed, and the roller takes the extensions up again. */
static void
failed_reserve_is_reported(void **state)
{
    (void)state;
    struct rfx f;
    seg_size = 16u << 20;
    fx_open(&f, 600000);
    assert_int_equal(put(f.c, 0), CASK_OK);
    watched = pthread_self();
    atomic_store(&watching, 1);
    atomic_store(&fail_alloc, ENOSPC);
    bool was = cask_park(true);
    int i = 1, rc = CASK_OK;
    for (int t = 0; i < 400 && t < 100;) {
        rc = put(f.c, i);
        if (rc == CASK_EBLOCKED) {
            t++;
            assert_true(unblocked_5s(f.c, cask_blocked_gen()));
            continue;
        }
        if (rc != CASK_OK) {
            break;
        }
        i++;
    }
    assert_int_equal(rc, ENOSPC);
    assert_true(i > 100);
    assert_false(has(f.c, i));
    assert_true(atomic_load(&watched_fallocates) >= 1); /* its own try */
    assert_int_equal(cask_delete(f.c, "key0", 4, 0), CASK_OK);
    atomic_store(&fail_alloc, 0);
    (void)put_parking(f.c, i, i + 1); /* extends it itself, once */
    int own = atomic_load(&watched_fallocates);
    (void)put_parking(f.c, i + 1, i + 600);
    assert_int_equal(atomic_load(&watched_fallocates), own);
    (void)cask_park(was);
    atomic_store(&watching, 0);
    for (int k = 1; k < i + 600; k++) {
        assert_true(has(f.c, k));
    }
    fx_close(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(roll_over_does_not_wait_for_sync),
            cmocka_unit_test(no_hint_before_sync),
            cmocka_unit_test(failed_background_sync_rewrites),
            cmocka_unit_test(power_loss_while_closed_wait),
            cmocka_unit_test(roll_over_does_not_wait_for_cut_mapped),
            cmocka_unit_test(roll_over_does_not_wait_for_reserve_release),
            cmocka_unit_test(open_gives_back_reserve_left_by_crash),
            cmocka_unit_test(always_roll_over_does_not_wait_for_sync),
            cmocka_unit_test(always_failed_commit_after_roll_undoes_uncovered),
            cmocka_unit_test(parked_write_changes_nothing),
            cmocka_unit_test(parked_roll_runs_on_roller),
            cmocka_unit_test(parked_reserve_runs_on_roller),
            cmocka_unit_test(held_reserve_parks_the_write),
            cmocka_unit_test(failed_reserve_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
