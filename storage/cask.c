/* cask.c - the store: options, open/close, key -> shard (XXH3 % N), the data
 * directory lock, the background sync and maintenance threads, the per-key
 * entry points, stats totals, and the unblock hook of writes that return
 * CASK_EBLOCKED instead of waiting for a roll-over (cask_park, cask_log.c).
 * The state file, cas allocator, flush point and clock are cask_ctx.c,
 * below the shards.
 *
 * Owns the struct cask and the LOCK file; the shards own everything below
 * their directories. Must not depend on anything above
 * storage/ (no protocol, no server). Shards are recovered in parallel at
 * open (open_shards).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "storage/cask.h"

#include "storage/cask_batch.h"
#include "storage/cask_commit.h"
#include "storage/cask_crawl.h"
#include "storage/cask_evict.h"
#include "storage/cask_internal.h"
#include "storage/cask_io.h"
#include "storage/cask_journal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_log.h"
#include "storage/cask_newer.h"
#include "storage/cask_record.h"
#include "storage/cask_resync.h"
#include "storage/cask_segment.h"
#include "storage/cask_shard.h"
#include "storage/cask_split.h"
#include "storage/cask_spread.h"
#include "storage/cask_state.h"
#include "storage/cask_stream.h"
#include "storage/cask_vmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

void
cask_set_read_only(struct cask *c, bool read_only)
{
    atomic_store(&c->read_only, read_only);
}

bool
cask_read_only(const struct cask *c)
{
    return atomic_load(&c->read_only);
}

const char *
cask_dir(const struct cask *c)
{
    return c->dir;
}

/* ---- writes that would wait for a roll-over (cask_park) --------------- */

void
cask_unblocked(struct cask *c)
{
    /* After the change that ended the wait (made under the shard's mutex
     * or published before this), before the hook looks for waiters: a
     * waiter that read the old count finds the new one once it published
     * its wait, or the hook finds it (cask_blocked_gen). */
    atomic_fetch_add(&c->unblock_gen, 1);
    pthread_mutex_lock(&c->unblock_mu);
    if (c->unblock_fn != NULL) {
        c->unblock_fn(c->unblock_arg);
    }
    pthread_mutex_unlock(&c->unblock_mu);
}

uint64_t
cask_unblock_gen(const struct cask *c)
{
    /* A commit may end an always-mode wait: its hook call counts too. */
    return atomic_load(&c->unblock_gen) + cask_commit_announced(c);
}

void
cask_unblock_hook(struct cask *c, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&c->unblock_mu);
    c->unblock_fn = fn;
    c->unblock_arg = arg;
    pthread_mutex_unlock(&c->unblock_mu);
}

uint64_t
cask_blocked_writes(const struct cask *c)
{
    return atomic_load_explicit(&c->blocked_writes, memory_order_relaxed);
}

/* ---- background threads ----------------------------------------------- */

/* Every mode: keep the reserved cas mark ahead of the counter, woken by
 * the writer that passed half of the block (cask_cas_next), so that no
 * request writes the state file for it.
 * INTERVAL: fdatasync every shard each sync_interval_ms. Both INTERVAL and
 * NEVER: let a delayed flush_all that came due take effect (its state file
 * write is the roller thread's). Appends are
 * already in the kernel when acknowledged; there is no buffer to push.
 * Both: a roll-over leaves the closed segment's sync (and that of the
 * directory entry of the segment that replaced it) here (cask_log.c):
 * woken by it (roll_kick), sync the closed segments before the interval
 * is up, so that they do not pile up unsynced. ALWAYS: only that, for a
 * segment closed once every append in it was committed (the journal
 * covers them; a checkpoint syncs what is left first). */
static bool
deadline_passed(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec ||
           (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static void *
sync_main(void *arg)
{
    struct cask *c = arg;
    unsigned ms = c->opt.sync_interval_ms ? c->opt.sync_interval_ms : 1000;
    pthread_mutex_lock(&c->bg_mu);
    struct timespec ts;
    cask_deadline_in(&ts, ms);
    while (!c->stopping) {
        int w = 0;
        if (!c->roll_kick && !c->cas_kick) {
            w = cask_cond_wait_until(&c->sync_cv, &c->bg_mu, &ts);
        }
        if (c->stopping) {
            break;
        }
        bool due = w == ETIMEDOUT || deadline_passed(&ts);
        bool cas = c->cas_kick;
        c->roll_kick = false;
        c->cas_kick = false;
        pthread_mutex_unlock(&c->bg_mu);
        /* The next block of cas numbers, first: a writer that uses up the
         * current one writes the state file itself, its shard's mutex
         * held. Retried at the interval while the write fails. */
        if (cas || (due && atomic_load(&c->cas_ahead_asked))) {
            int rc = cask_cas_reserve_ahead(c);
            if (rc != 0 && cas) {
                cask_logf(c, CASK_LOG_WARN,
                          "reserve cas numbers ahead in the state file: %s",
                          strerror(rc));
            }
        }
        for (unsigned i = 0; i < c->nshards; i++) {
            if (due && c->opt.sync == CASK_SYNC_INTERVAL) {
                (void)cask_log_sync(c->shards[i]);
            } else {
                /* Only the segments a roll-over closed (their hints and
                 * compaction wait for it; under always, those whose
                 * appends a commit covered already). */
                cask_log_sync_closed(c->shards[i]);
            }
        }
        if (due) {
            if (c->opt.sync != CASK_SYNC_ALWAYS) {
                /* asks the roller thread to persist it */
                (void)cask_flush_point(c, cask_now(c));
            }
            cask_deadline_in(&ts, ms);
        }
        pthread_mutex_lock(&c->bg_mu);
    }
    pthread_mutex_unlock(&c->bg_mu);
    return NULL;
}

/* Roll-overs that parked writes asked for (cask_log.c, ask_roll): the
 * file system calls of one (creating the next segment, removing a stale
 * hint, under always syncing the old one) run here, not on the worker
 * whose write filled the segment, which goes on serving its other
 * connections meanwhile. So do the extensions of an active segment's
 * disk reserve (ask_extend), made ahead of the appends, and the state
 * file writes of the flush point (cask_ctx.c, cask_flush_work): a
 * flush_all of a parking thread, and a delayed flush that came due,
 * which readers see at once and writers that park wait for. */
static void *
roll_main(void *arg)
{
    struct cask *c = arg;
    pthread_mutex_lock(&c->roll_mu);
    while (!c->roll_stop) {
        if (!c->roll_wanted) {
            pthread_cond_wait(&c->roll_cv, &c->roll_mu);
            continue;
        }
        c->roll_wanted = false;
        pthread_mutex_unlock(&c->roll_mu);
        if (cask_flush_work(c)) {
            cask_unblocked(c); /* the flush_all calls and writes parked */
        }
        for (unsigned i = 0; i < c->nshards; i++) {
            cask_log_roll_asked(c->shards[i]);
            cask_log_extend_asked(c->shards[i]);
        }
        pthread_mutex_lock(&c->roll_mu);
    }
    pthread_mutex_unlock(&c->roll_mu);
    return NULL;
}

/* Hints for closed segments, then compaction, shard by shard. */
static void *
maint_main(void *arg)
{
    struct cask *c = arg;
    pthread_mutex_lock(&c->bg_mu);
    while (!c->stopping) {
        if (!c->compact_kick) {
            struct timespec ts;
            cask_deadline_in(&ts, 1000);
            cask_cond_wait_until(&c->bg_cv, &c->bg_mu, &ts);
        }
        c->compact_kick = false;
        atomic_fetch_add(&c->maint_passes, 1);
        for (unsigned i = 0; i < c->nshards && !c->stopping; i++) {
            pthread_mutex_unlock(&c->bg_mu);
            struct cask_shard *sh = c->shards[i];
            /* A failed segment sync: writes wait for this rewrite. */
            cask_resync_maint(sh);
            cask_shard_write_hints(sh);
            /* Evictions first, every shard's (cheap when none is due):
             * a writer may be waiting for one behind the slower work. */
            for (unsigned j = 0; j < c->nshards; j++) {
                cask_shard_evict(c->shards[j]);
            }
            if (c->opt.crawl_background) {
                cask_shard_crawl(sh);
            }
            pthread_mutex_lock(&sh->mu);
            bool forced = sh->compact_req;
            sh->compact_req = false;
            pthread_mutex_unlock(&sh->mu);
            if (forced || c->opt.compact_background) {
                (void)cask_shard_compact(sh, forced);
            }
            pthread_mutex_lock(&c->bg_mu);
        }
    }
    pthread_mutex_unlock(&c->bg_mu);
    return NULL;
}

/* ---- open / close ------------------------------------------------------ */

static int
check_options(const struct cask_options *o)
{
    if (o->shards == 0 || o->shards > 4096) {
        return CASK_EINVAL;
    }
    if (o->segment_size < 4096 || o->segment_size > (1ull << 31)) {
        return CASK_EINVAL;
    }
    if (o->value_max > CASK_REC_VMAX) {
        return CASK_EINVAL;
    }
    if (!(o->compact_ratio > 0 && o->compact_ratio <= 1)) {
        return CASK_EINVAL;
    }
    if (o->sync != CASK_SYNC_NEVER && o->sync != CASK_SYNC_INTERVAL &&
        o->sync != CASK_SYNC_ALWAYS) {
        return CASK_EINVAL;
    }
    return 0;
}

/* mkdir -p: create dir and any missing parents. Returns 0 or an errno. */
static int
mkdir_p(const char *dir)
{
    char p[CASK_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(p)) {
        return n == 0 ? EINVAL : ENAMETOOLONG;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            return errno;
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        return errno;
    }
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* The state file holds no valid slot: keep it beside the store as
 * DIR/state.damaged (one copy, the latest) for a look, before a new one is
 * made in its place. */
static void
keep_damaged_state(struct cask *c)
{
    char path[CASK_PATH_MAX], kept[CASK_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_NAME);
    snprintf(kept, sizeof(kept), "%s.damaged", path);
    if (rename(path, kept) != 0) {
        cask_logf(c, CASK_LOG_WARN, "rename %s to %s: %s", path, kept,
                  strerror(errno));
        return;
    }
    (void)cask_fsync_dir(c->dir);
    cask_logf(c, CASK_LOG_WARN, "damaged state file kept as %s", kept);
}

/* DIR/state.lost marks a loss of the state file the caller has not yet
 * acted on (cask_state_lost_done): made, synced with the directory, before
 * state_rebuild replaces the state file, so that a crash before the caller
 * acts (a replica forgetting its primary) leaves the next open knowing of
 * the loss. 0 or an errno. */
static int
lost_mark(struct cask *c)
{
    char path[CASK_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_LOST_NAME);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    int rc = cask_io_fdatasync(fd);
    close(fd);
    if (rc == 0) {
        rc = cask_fsync_dir(c->dir);
    }
    return rc;
}

static bool
lost_marked(const struct cask *c)
{
    char path[CASK_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_LOST_NAME);
    return access(path, F_OK) == 0;
}

int
cask_state_lost_done(struct cask *c)
{
    if (c->opt.inspect || !lost_marked(c)) {
        return 0;
    }
    char path[CASK_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_LOST_NAME);
    int rc = cask_io_unlink(path);
    if (rc == 0) {
        rc = cask_fsync_dir(c->dir);
    }
    if (rc != 0) {
        cask_logf(c, CASK_LOG_WARN, "remove %s: %s", path, strerror(rc));
    }
    return rc;
}

/* The store holds data but its state file is missing or damaged (why):
 * the flush point it kept is unknown, and any item on disk may be one an
 * earlier flush_all invalidated. Nothing flushed may come back, so the
 * new file's flush point is the highest cas on disk (max_cas): every item
 * found is treated as flushed, and items written from now on are kept.
 * A delayed flush_all still pending is forgotten with the file, and cas
 * numbers restart CASK_CAS_LOST_GAP above the highest on disk (numbers
 * of records compacted away may lie above it). Persisted before it takes
 * effect, as any flush (not for an inspection, which writes nothing); the
 * open fails if it cannot be written. What it cost is logged. */
static int
state_rebuild(struct cask *c, struct cask_state *m, uint64_t max_cas,
              const char *why)
{
    struct cask_stats st;
    (void)cask_stats(c, -1, &st);
    m->flush_cas = max_cas;
    m->flush_pending_at = 0;
    m->cas_reserved = max_cas + 1 + CASK_CAS_LOST_GAP;
    int rc = c->opt.inspect ? 0 : lost_mark(c);
    if (rc == 0 && !c->opt.inspect) {
        rc = cask_ctx_state_write(c, m);
    }
    if (rc != 0) {
        return rc;
    }
    atomic_store(&c->flush_cas, m->flush_cas);
    atomic_store(&c->flush_pending_at, 0);
    c->state_lost = true;
    cask_logf(c, st.live_keys != 0 ? CASK_LOG_ERROR : CASK_LOG_WARN,
              "state file in %s %s: the flush point it kept is lost, so "
              "the %" PRIu64 " items found on disk are treated as flushed "
              "(an earlier flush_all may have invalidated any of them; "
              "a delayed one still pending is forgotten); cas numbers "
              "go on from %" PRIu64,
              c->dir, why, st.live_keys, m->cas_reserved);
    return 0;
}

static void
store_free(struct cask *c)
{
    if (c->shards != NULL) {
        for (unsigned i = 0; i < c->nshards; i++) {
            (void)cask_shard_close(&c->shards[i]); /* a failed open */
        }
        free(c->shards);
    }
    cask_journal_close(&c->journal);
    if (c->lock_fd >= 0) {
        close(c->lock_fd);
    }
    if (c->state_fd >= 0) {
        close(c->state_fd);
    }
    cask_ctx_flush_free(c);
    pthread_mutex_destroy(&c->flush_mu);
    pthread_mutex_destroy(&c->state_mu);
    pthread_mutex_destroy(&c->bg_mu);
    pthread_cond_destroy(&c->bg_cv);
    pthread_cond_destroy(&c->sync_cv);
    pthread_mutex_destroy(&c->roll_mu);
    pthread_cond_destroy(&c->roll_cv);
    pthread_mutex_destroy(&c->unblock_mu);
    free(c->dir);
    free(c);
}

/* Wake the background threads with the stop flag set and join those that
 * were started. */
static void
stop_threads(struct cask *c)
{
    pthread_mutex_lock(&c->bg_mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->bg_cv);
    pthread_cond_broadcast(&c->sync_cv);
    pthread_mutex_unlock(&c->bg_mu);
    if (c->sync_thread_on) {
        pthread_join(c->sync_thread, NULL);
        c->sync_thread_on = false;
    }
    if (c->maint_thread_on) {
        pthread_join(c->maint_thread, NULL);
        c->maint_thread_on = false;
    }
    pthread_mutex_lock(&c->roll_mu);
    c->roll_stop = true;
    pthread_cond_broadcast(&c->roll_cv);
    pthread_mutex_unlock(&c->roll_mu);
    if (c->roll_thread_on) {
        pthread_join(c->roll_thread, NULL);
        c->roll_thread_on = false;
    }
    cask_commit_stop(c);
}

/* An inspected directory must be there already (it is not made). */
static int
inspect_dir(struct cask *c)
{
    struct stat st;
    if (stat(c->dir, &st) != 0) {
        return errno;
    }
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* To inspect: CASK_EREPLAY when a replay would write into the segments
 * (what they hold alone would show older values), logged with the count. */
static int
inspect_journal(struct cask *c)
{
    struct cask_journal_replay_stats js;
    int rc = cask_journal_pending(c, &js);
    if (rc == 0 && js.frames_written > 0) {
        cask_logf(c, CASK_LOG_INFO,
                  "the commit journal holds %" PRIu64
                  " frames that their segments lack (not closed cleanly "
                  "under --sync=always): a replay is needed to read it",
                  js.frames_written);
        rc = CASK_EREPLAY;
    }
    return rc;
}

/* ---- parallel recovery ------------------------------------------------ */

/* Shards share nothing while they recover (each reads its own directory
 * into its own keydir), so they are opened by a pool of threads, one per
 * usable CPU at most, each taking the next shard index; the opening thread
 * waits and reports progress. */
struct open_pool {
    struct cask *c;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a shard finished */
    unsigned next;     /* next shard index to open */
    unsigned done;     /* shards finished, opened or not */
    int rc;            /* first error; once set, no new shard is started */
};

static void *
open_worker(void *arg)
{
    struct open_pool *p = arg;
    struct cask *c = p->c;
    pthread_mutex_lock(&p->mu);
    while (p->next < c->nshards && p->rc == 0) {
        unsigned i = p->next++;
        pthread_mutex_unlock(&p->mu);
        int rc = cask_shard_open(&c->shards[i], c, i);
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR, "open shard %u of %s: %s", i, c->dir,
                      cask_strerror(rc));
        }
        pthread_mutex_lock(&p->mu);
        if (rc != 0 && p->rc == 0) {
            p->rc = rc;
        }
        p->done++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static unsigned
usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return (unsigned)CPU_COUNT(&set);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Open (recover) every shard. On failure some shards may be open: the
 * caller frees them with the store. */
static int
open_shards(struct cask *c)
{
    enum { MAX_THREADS = 64 };
    struct open_pool p = {.c = c};
    pthread_t tid[MAX_THREADS];
    unsigned n = usable_cpus(), started = 0, reported = 0;
    if (n > c->nshards) {
        n = c->nshards;
    }
    if (n > MAX_THREADS) {
        n = MAX_THREADS;
    }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    for (; n > 1 && started < n; started++) {
        if (pthread_create(&tid[started], NULL, open_worker, &p) != 0) {
            break; /* fewer threads; the ones started do the work */
        }
    }
    if (started == 0) {
        /* One CPU, or no thread could start: one shard after another. */
        for (unsigned i = 0; i < c->nshards && p.rc == 0; i++) {
            p.rc = cask_shard_open(&c->shards[i], c, i);
            if (p.rc != 0) {
                cask_logf(c, CASK_LOG_ERROR, "open shard %u of %s: %s", i,
                          c->dir, cask_strerror(p.rc));
            } else if (c->opt.progress != NULL) {
                c->opt.progress(c->opt.progress_arg, i + 1, c->nshards);
            }
        }
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cv);
        return p.rc;
    }
    pthread_mutex_lock(&p.mu);
    for (;;) {
        while (p.done > reported && c->opt.progress != NULL) {
            reported = p.done;
            pthread_mutex_unlock(&p.mu);
            c->opt.progress(c->opt.progress_arg, reported, c->nshards);
            pthread_mutex_lock(&p.mu);
        }
        /* Done when every shard finished, or after an error when every
         * shard that was started finished. */
        if (p.done == c->nshards || (p.rc != 0 && p.done == p.next)) {
            break;
        }
        pthread_cond_wait(&p.cv, &p.mu);
    }
    pthread_mutex_unlock(&p.mu);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    return p.rc;
}

/* --disk-limit bounds the whole directory: under always the commit
 * journal's two files (fixed in size) take their part first, and the
 * shards share the rest (c->disk_shards, cask_evict.c). A journal taking
 * more than half of the limit is refused. */
static int
disk_budget(struct cask *c)
{
    c->disk_shards = c->opt.disk_limit;
    if (c->opt.disk_limit == 0 || c->opt.sync != CASK_SYNC_ALWAYS) {
        return 0;
    }
    uint64_t jb = cask_journal_disk_bytes(c->dir, c->opt.journal_size);
    if (jb > c->opt.disk_limit / 2) {
        cask_logf(c, CASK_LOG_ERROR,
                  "the commit journal's two files take %" PRIu64
                  " bytes, more than half of the disk limit (%" PRIu64
                  "): make each at most a quarter of it (--journal-size; "
                  "files already there keep their size)",
                  jb, c->opt.disk_limit);
        return CASK_EINVAL;
    }
    c->disk_shards = c->opt.disk_limit - jb;
    return 0;
}

int
cask_open(struct cask **out, const char *dir, const struct cask_options *o)
{
    struct cask_options defaults;
    struct cask_state m;
    const char *state_lost = NULL; /* why the state file was not read */
    int rc;

    *out = NULL;
    if (o == NULL) {
        cask_options_init(&defaults);
        o = &defaults;
    }
    if (dir == NULL || check_options(o) != 0) {
        return CASK_EINVAL;
    }
    struct cask *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return ENOMEM;
    }
    c->lock_fd = -1;
    c->state_fd = -1;
    c->opt = *o;
    if (c->opt.sync_interval_ms == 0) {
        c->opt.sync_interval_ms = CASK_DEFAULT_SYNC_MS;
    }
    c->nshards = o->shards;
    pthread_mutex_init(&c->flush_mu, NULL);
    pthread_mutex_init(&c->state_mu, NULL);
    pthread_mutex_init(&c->bg_mu, NULL);
    pthread_cond_init(&c->bg_cv, NULL);
    pthread_cond_init(&c->sync_cv, NULL);
    pthread_mutex_init(&c->roll_mu, NULL);
    pthread_cond_init(&c->roll_cv, NULL);
    pthread_mutex_init(&c->unblock_mu, NULL);
    c->dir = strdup(dir);
    if (c->dir == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    uint64_t t0 = cask_clock_ns();
    rc = o->inspect ? inspect_dir(c) : mkdir_p(dir);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "%s %s: %s", o->inspect ? "open" : "mkdir",
                  dir, strerror(rc));
        goto fail;
    }
    char path[CASK_PATH_MAX];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    /* To inspect: a shared lock on a LOCK file that is there (none: no
     * server has ever held the store, or it was removed; not created). */
    c->lock_fd = o->inspect ? open(path, O_RDONLY | O_CLOEXEC)
                            : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->lock_fd < 0 && !(o->inspect && errno == ENOENT)) {
        rc = errno;
        cask_logf(c, CASK_LOG_ERROR, "open %s: %s", path, strerror(rc));
        goto fail;
    }
    if (c->lock_fd >= 0 &&
        flock(c->lock_fd, (o->inspect ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? CASK_ELOCKED : errno;
        cask_logf(c, CASK_LOG_ERROR,
                  "data directory %s is in use by another process (%s)", dir,
                  path);
        goto fail;
    }
    if (!o->inspect) {
        /* Before the shard directories are made: each in an allocation
         * group of its own where the file system can (a hint;
         * cask_spread.c). */
        (void)cask_spread_dirs(dir);
        snprintf(path, sizeof(path), "%s/%s.tmp", dir, CASK_STATE_NAME);
        (void)unlink(path); /* a state file replacement cut short */
        rc = cask_ctx_state_adopt_old_name(c);
        if (rc != 0) {
            goto fail;
        }
    }
    rc = cask_ctx_state_read(c, &m);
    if (rc == 0) {
        if (m.shards != o->shards) {
            cask_logf(c, CASK_LOG_ERROR,
                      "data directory %s was created with %u shards, not %u; "
                      "refusing to open it with another count",
                      dir, m.shards, o->shards);
            rc = CASK_EINVAL;
            goto fail;
        }
    } else if (rc == ENOENT || rc == EINVAL) {
        /* No state file, or none of its slots valid: the same loss. */
        state_lost = rc == EINVAL ? "is damaged (no valid slot)" : "is missing";
        unsigned found = cask_count_shard_dirs(dir);
        if (found != 0 && found != o->shards) {
            cask_logf(c, CASK_LOG_ERROR,
                      "data directory %s has %u shard directories and its "
                      "state file %s; refusing to open it with %u shards",
                      dir, found, state_lost, o->shards);
            rc = CASK_EINVAL;
            goto fail;
        }
        if (rc == EINVAL && !o->inspect) {
            keep_damaged_state(c);
        }
        memset(&m, 0, sizeof(m));
        m.shards = o->shards;
        m.cas_reserved = 1;
        if (found == 0) {
            /* Nothing stored yet: nothing to lose. */
            if (rc == EINVAL) {
                cask_logf(c, CASK_LOG_WARN,
                          "state file in %s %s and no shard holds data: a "
                          "new one is made",
                          dir, state_lost);
            }
            state_lost = NULL;
            rc = o->inspect ? 0 : cask_ctx_state_write(c, &m);
            if (rc != 0) {
                goto fail;
            }
        }
        rc = 0;
    } else if (rc == CASK_ENEWER) {
        goto fail; /* logged; nothing written */
    } else {
        cask_logf(c, CASK_LOG_ERROR, "read the state file in %s: %s", dir,
                  strerror(rc));
        goto fail;
    }
    atomic_store(&c->flush_cas, m.flush_cas);
    atomic_store(&c->flush_pending_at, m.flush_pending_at);
    c->shards = calloc(c->nshards, sizeof(*c->shards));
    if (c->shards == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    /* Journal frames go back into their segments before any shard reads
     * them, in every mode (the store may have run under always before). */
    if (o->inspect) {
        rc = inspect_journal(c);
    } else {
        rc = cask_journal_replay(c, NULL);
    }
    if (rc == 0 && !o->inspect && c->opt.sync != CASK_SYNC_ALWAYS) {
        rc = cask_journal_remove(c);
    }
    if (rc != 0 && rc != CASK_ENEWER && rc != CASK_EREPLAY) { /* logged */
        cask_logf(c, CASK_LOG_ERROR, "journal replay in %s: %s", dir,
                  strerror(rc));
    }
    if (rc != 0) {
        goto fail;
    }
    rc = disk_budget(c);
    if (rc != 0) {
        goto fail;
    }
    rc = open_shards(c);
    if (rc != 0) {
        goto fail;
    }
    uint64_t max_cas = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        if (c->shards[i]->max_cas > max_cas) {
            max_cas = c->shards[i]->max_cas;
        }
    }
    /* A lost state file: everything on disk counts as flushed. */
    if (state_lost != NULL) {
        rc = state_rebuild(c, &m, max_cas, state_lost);
        if (rc != 0) {
            goto fail;
        }
    } else if (lost_marked(c)) {
        /* rebuilt at an earlier start that ended before its caller acted
         * on the loss */
        c->state_lost = true;
        cask_logf(c, CASK_LOG_WARN,
                  "state file in %s was rebuilt at an earlier start after it "
                  "was lost (%s is still there): reported as lost again",
                  c->dir, CASK_STATE_LOST_NAME);
    }
    /* cas never goes backwards: start above both the persisted mark and
     * anything found on disk. The next block is reserved here, so that
     * the first write does not wait for the state file; when that write
     * fails (a full disk, a read-only file system) the store still opens
     * and serves reads, and the first write tries again. A delayed flush
     * that came due while the store was closed becomes a threshold at the
     * first lookup. */
    uint64_t next = m.cas_reserved > max_cas + 1 ? m.cas_reserved : max_cas + 1;
    atomic_store(&c->next_cas, next);
    atomic_store(&c->cas_reserved, m.cas_reserved);
    if (!o->inspect) {
        int arc = cask_cas_reserve_ahead(c);
        if (arc != 0) {
            cask_logf(c, CASK_LOG_WARN,
                      "reserve cas numbers in the state file in %s: %s (the "
                      "first write tries again)",
                      dir, strerror(arc));
        }
    }
    /* Segments recovery found cut short while the store was stopped
     * (cask_recover.c) are rewritten before it serves: until then a get
     * of a key whose record was cut off would fail. One that fails now
     * stays queued for the maintenance thread. */
    for (unsigned i = 0; i < c->nshards && !o->inspect; i++) {
        if (c->shards[i]->nresync > 0 && cask_shard_resync(c->shards[i]) != 0) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: rewrite of segments cut short: retried in "
                      "the background; their lost keys fail until then",
                      i);
        }
    }
    c->recovery_s = (double)(cask_clock_ns() - t0) / 1e9;
    struct cask_stats st;
    (void)cask_stats(c, -1, &st);
    cask_logf(c, CASK_LOG_INFO,
              "opened %s: %u shards, %" PRIu64 " keys, %" PRIu64
              " records read, %" PRIu64 " bytes truncated, %.3f s",
              dir, c->nshards, st.live_keys, st.records_recovered,
              st.bytes_truncated, c->recovery_s);
    if (o->inspect) {
        /* Nothing runs behind the caller's back, and nothing is written:
         * the replica's refusal answers every write. */
        atomic_store(&c->read_only, true);
        *out = c;
        return 0;
    }
    if (c->opt.sync == CASK_SYNC_ALWAYS) {
        rc = cask_journal_open(c, c->opt.journal_size, &c->journal);
        if (rc == ENOSPC || rc == EDQUOT) {
            /* A full disk must not keep the store from opening: commit by
             * syncing each shard's segment this run, and leave no journal
             * behind that a later start could replay over this run's
             * writes. */
            cask_logf(c, CASK_LOG_WARN,
                      "no space for the commit journal in %s: commits sync "
                      "each shard instead until a restart",
                      dir);
            rc = cask_journal_remove(c);
        }
        if (rc == 0) {
            rc = cask_commit_start(c);
        }
        if (rc != 0) {
            goto fail;
        }
    }
    /* Under always too: the segments a roll-over closed after every
     * append in them was committed are synced there (cask_log.c). */
    rc = pthread_create(&c->sync_thread, NULL, sync_main, c);
    if (rc != 0) {
        goto fail_threads;
    }
    c->sync_thread_on = true;
    rc = pthread_create(&c->maint_thread, NULL, maint_main, c);
    if (rc != 0) {
        goto fail_threads;
    }
    c->maint_thread_on = true;
    rc = pthread_create(&c->roll_thread, NULL, roll_main, c);
    if (rc != 0) {
        goto fail_threads;
    }
    c->roll_thread_on = true;
    *out = c;
    return 0;
fail_threads:
    stop_threads(c);
fail:
    store_free(c);
    return rc;
}

int
cask_close(struct cask **cp)
{
    struct cask *c = *cp;
    int err = CASK_OK;
    if (c == NULL) {
        return CASK_OK;
    }
    stop_threads(c);
    if (c->opt.inspect) {
        store_free(c); /* nothing was written: nothing to sync */
        *cp = NULL;
        return CASK_OK;
    }
    if (c->journal != NULL) {
        /* Segments synced, a fresh generation: nothing left to replay. */
        int rc = cask_commit_checkpoint(c);
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR,
                      "close: journal checkpoint: %s; the next start "
                      "replays it",
                      cask_strerror(rc));
        }
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        int rc = cask_shard_close(&c->shards[i]);
        if (rc != 0 && err == CASK_OK) {
            err = rc;
        }
    }
    store_free(c);
    *cp = NULL;
    return err;
}

int
cask_sync(struct cask *c)
{
    int rc = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        int r = cask_log_sync(c->shards[i]);
        if (r != 0 && rc == 0) {
            rc = r;
        }
    }
    return rc;
}

int
cask_batch_flush(void)
{
    struct cask_shard *sh[CASK_BATCH_SHARDS];
    unsigned n = cask_batch_take(sh);
    int first = 0;
    uint64_t epoch = 0;
    bool known = true;
    if (n > 0) {
        cask_commit_hold_kick(); /* one wake-up for all the shards */
    }
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&sh[i]->mu);
        int rc = cask_log_write_out(sh[i]);
        /* The latest write-out of the shard wrote this thread's records,
         * or a later one did (another thread's flush or a get): their
         * frames are in its epoch or an earlier one, which is wanted. */
        uint64_t e = sh[i]->wjoin_epoch;
        pthread_mutex_unlock(&sh[i]->mu);
        if (e == 0) {
            known = false;
        } else if (e > epoch) {
            epoch = e;
        }
        if (rc != 0 && first == 0) {
            first = rc;
        }
    }
    if (n > 0) {
        cask_commit_kick(sh[0]->store);
    }
    cask_batch_set_epoch(known ? epoch : 0);
    return first;
}

/* ---- per-key entry points ---------------------------------------------- */

/* Shard placement: unseeded XXH3-64 of the key, so a key stays in its
 * shard across restarts (FORMAT.md). The keydir hashes with its own
 * per-process seed. */
static inline struct cask_shard *
shard_for(const struct cask *c, const void *key, size_t klen)
{
    return c->shards[XXH3_64bits(key, klen) % c->nshards];
}

unsigned
cask_shards(const struct cask *c)
{
    return c->nshards;
}

unsigned
cask_shard_of(const struct cask *c, const void *key, size_t klen)
{
    return (unsigned)(XXH3_64bits(key, klen) % c->nshards);
}

static inline bool
key_ok(const void *key, size_t klen)
{
    return key != NULL && klen > 0 && klen <= CASK_KEY_MAX;
}

/* After a successful modification of shard sh: the committed hook. */
static int
committed(struct cask *c, struct cask_shard *sh, int rc)
{
    if (rc != CASK_OK || c->opt.committed == NULL) {
        return rc;
    }
    return c->opt.committed(c->opt.committed_arg, sh->idx,
                            atomic_load(&sh->tail.appended));
}

int
cask_get(struct cask *c, const void *key, size_t klen, struct cask_item *it,
         char **val)
{
    return cask_get_fetch(c, key, klen, it, val, val != NULL);
}

int
cask_get_fetch(struct cask *c, const void *key, size_t klen,
               struct cask_item *it, char **val, bool fetch)
{
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    return cask_shard_get(shard_for(c, key, klen), h, key, klen, it, val,
                          fetch);
}

void
cask_prefetch(struct cask *c, const void *key, size_t klen)
{
    if (key_ok(key, klen)) {
        cask_shard_prefetch(shard_for(c, key, klen), cask_kd_hash(key, klen));
    }
}

int
cask_get_nowait(struct cask *c, const void *key, size_t klen,
                struct cask_item *it, char **val, bool fetch)
{
    return cask_get_nowait_ref(c, key, klen, it, val, NULL, fetch);
}

static void
vref_clear(struct cask_vref *ref)
{
    if (ref != NULL) {
        memset(ref, 0, sizeof(*ref));
        ref->fd = -1;
    }
}

int
cask_get_nowait_ref(struct cask *c, const void *key, size_t klen,
                    struct cask_item *it, char **val, struct cask_vref *ref,
                    bool fetch)
{
    vref_clear(ref);
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    return cask_shard_get_nowait_ref(shard_for(c, key, klen), h, key, klen, it,
                                     val, ref, fetch);
}

int
cask_head_nowait(struct cask *c, const void *key, size_t klen,
                 struct cask_item *it, bool fetch)
{
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    return cask_shard_head_nowait(shard_for(c, key, klen), h, key, klen, it,
                                  fetch);
}

int
cask_get_ref(struct cask *c, const void *key, size_t klen, struct cask_item *it,
             char **val, struct cask_vref *ref, bool fetch)
{
    vref_clear(ref);
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    return cask_shard_get_ref(shard_for(c, key, klen), h, key, klen, it, val,
                              ref, fetch);
}

int
cask_get_begin(struct cask *c, struct cask_split *sp, char **val)
{
    if (!key_ok(sp->key, sp->klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(sp->key, sp->klen);
    return cask_shard_get_begin(shard_for(c, sp->key, sp->klen), h, sp, val);
}

int
cask_get_end(struct cask_split *sp, int io_rc, char **val)
{
    return cask_shard_get_end(sp, io_rc, val);
}

int
cask_get_buf(struct cask *c, const void *key, size_t klen, struct cask_item *it,
             char **val, struct cask_vref *ref, bool fetch, bool nowait,
             char *buf, size_t cap)
{
    vref_clear(ref);
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    struct cask_shard *sh = shard_for(c, key, klen);
    cask_shard_scratch(buf, cap);
    int rc = nowait ? cask_shard_get_nowait_ref(sh, h, key, klen, it, val, ref,
                                                fetch)
                    : cask_shard_get_ref(sh, h, key, klen, it, val, ref, fetch);
    cask_shard_scratch(NULL, 0);
    return rc;
}

void
cask_vref_release(struct cask_vref *ref)
{
    cask_shard_vref_release(ref);
}

int
cask_touch(struct cask *c, const void *key, size_t klen, int64_t exp_abs_s,
           struct cask_item *it, char **val)
{
    return cask_touch_fetch(c, key, klen, exp_abs_s, it, val, true);
}

int
cask_touch_fetch(struct cask *c, const void *key, size_t klen,
                 int64_t exp_abs_s, struct cask_item *it, char **val,
                 bool fetch)
{
    return cask_touch_cas(c, key, klen, exp_abs_s, 0, it, val, fetch);
}

int
cask_touch_cas(struct cask *c, const void *key, size_t klen, int64_t exp_abs_s,
               uint64_t cas_in, struct cask_item *it, char **val, bool fetch)
{
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    struct cask_shard *sh = shard_for(c, key, klen);
    return committed(c, sh,
                     cask_shard_touch(sh, h, key, klen, exp_abs_s, cas_in, it,
                                      val, fetch));
}

int
cask_store(struct cask *c, enum cask_store_mode mode, const void *key,
           size_t klen, const void *val, size_t vlen, uint32_t flags,
           int64_t exp_abs_s, uint64_t cas_in, uint64_t *cas_out)
{
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    if (vlen > c->opt.value_max) {
        return CASK_ETOOBIG;
    }
    if (val == NULL && vlen != 0) {
        return CASK_EINVAL;
    }
    uint64_t h = cask_kd_hash(key, klen);
    struct cask_shard *sh = shard_for(c, key, klen);
    return committed(c, sh,
                     cask_shard_store(sh, h, mode, key, klen, val, vlen, flags,
                                      exp_abs_s, cas_in, cas_out));
}

int
cask_delete(struct cask *c, const void *key, size_t klen, uint64_t cas_in)
{
    return cask_delete_item(c, key, klen, cas_in, NULL);
}

int
cask_delete_item(struct cask *c, const void *key, size_t klen, uint64_t cas_in,
                 struct cask_item *it)
{
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    uint64_t h = cask_kd_hash(key, klen);
    struct cask_shard *sh = shard_for(c, key, klen);
    return committed(c, sh, cask_shard_delete(sh, h, key, klen, cas_in, it));
}

int
cask_arith(struct cask *c, const void *key, size_t klen,
           const struct cask_arith *arith, uint64_t *value_out,
           struct cask_item *it)
{
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    if (!key_ok(key, klen)) {
        return CASK_EBADKEY;
    }
    if (arith == NULL) {
        return CASK_EINVAL;
    }
    uint64_t h = cask_kd_hash(key, klen);
    struct cask_shard *sh = shard_for(c, key, klen);
    return committed(c, sh,
                     cask_shard_arith(sh, h, key, klen, arith, value_out, it));
}

int
cask_compact(struct cask *c, int shard, bool wait)
{
    if (shard >= (int)c->nshards) {
        return CASK_EINVAL;
    }
    unsigned lo = shard < 0 ? 0 : (unsigned)shard;
    unsigned hi = shard < 0 ? c->nshards : (unsigned)shard + 1;
    int rc = 0;
    for (unsigned i = lo; i < hi; i++) {
        struct cask_shard *sh = c->shards[i];
        if (wait) {
            int r = cask_shard_compact(sh, true);
            if (r != 0 && rc == 0) {
                rc = r;
            }
        } else {
            pthread_mutex_lock(&sh->mu);
            sh->compact_req = true;
            pthread_mutex_unlock(&sh->mu);
        }
    }
    if (!wait) {
        pthread_mutex_lock(&c->bg_mu);
        c->compact_kick = true;
        pthread_cond_broadcast(&c->bg_cv);
        pthread_mutex_unlock(&c->bg_mu);
    }
    return rc;
}

int
cask_stats(struct cask *c, int shard, struct cask_stats *st)
{
    if (shard >= (int)c->nshards || st == NULL) {
        return CASK_EINVAL;
    }
    if (shard >= 0) {
        cask_shard_stats(c->shards[shard], st);
        return 0;
    }
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cask_stats s;
        cask_shard_stats(c->shards[i], &s);
        st->live_keys += s.live_keys;
        st->live_bytes += s.live_bytes;
        st->dead_bytes += s.dead_bytes;
        st->segments += s.segments;
        st->disk_bytes += s.disk_bytes;
        st->keydir_bytes += s.keydir_bytes;
        st->buffer_bytes += s.buffer_bytes;
        st->compactions += s.compactions;
        st->bytes_reclaimed += s.bytes_reclaimed;
        st->syncs += s.syncs;
        st->synced_writes += s.synced_writes;
        st->write_errors += s.write_errors;
        st->writes_undone += s.writes_undone;
        st->batch_records += s.batch_records;
        st->batch_writes += s.batch_writes;
        st->rolls_handed += s.rolls_handed;
        st->reserves_handed += s.reserves_handed;
        st->mapped_writes += s.mapped_writes;
        st->records_recovered += s.records_recovered;
        st->bytes_truncated += s.bytes_truncated;
        st->bytes_damaged += s.bytes_damaged;
        st->segments_missing += s.segments_missing;
        st->records_missing += s.records_missing;
        st->quarantined += s.quarantined;
        st->records_lost += s.records_lost;
        st->sync_failures += s.sync_failures;
        st->sync_recoveries += s.sync_recoveries;
        st->segments_cut += s.segments_cut;
        st->failed = st->failed || s.failed;
        st->evictions += s.evictions;
        st->evicted_unfetched += s.evicted_unfetched;
        st->evicted_active += s.evicted_active;
        st->expired_unfetched += s.expired_unfetched;
        st->reclaimed += s.reclaimed;
        st->crawler_reclaimed += s.crawler_reclaimed;
        st->evict_runs += s.evict_runs;
        st->keydir_slots += s.keydir_slots;
        st->crawls += s.crawls;
        st->crawl_checked += s.crawl_checked;
        st->unchecked_reads += s.unchecked_reads;
        st->value_refs += s.value_refs;
        st->value_cache_bytes += s.value_cache_bytes;
        st->value_cache_hits += s.value_cache_hits;
        st->value_cache_fills += s.value_cache_fills;
    }
    uint64_t jsyncs, jframes, jckpts;
    cask_journal_counts(c->journal, &jsyncs, &jframes, &jckpts);
    st->syncs += jsyncs;
    st->synced_writes += jframes;
    st->recovery_s = c->recovery_s;
    st->state_lost = c->state_lost;
    st->maint_passes = atomic_load(&c->maint_passes);
    st->crawling = atomic_load(&c->crawling) != 0;
    st->segments_mapped = cask_vmap_count();
    st->map_budget = cask_vmap_budget();
    st->commits = cask_commit_passes(c);
    cask_commit_failures(c, &st->commit_failures, &st->commit_recoveries);
    cask_commit_timing(c, &st->commit_wait_us, &st->commit_delay_us,
                       &st->commit_sync_us);
    return 0;
}
