/* cask_ctx.c - the store-wide context every shard works in: the state
 * file (its two checksummed slots, read at open, updated in place), the
 * cas allocator with its persisted high-water mark, the flush point
 * (flush_all, delayed flushes, a replica's threshold from its primary;
 * for threads that park their writes, its state file writes are the
 * roller thread's), which threads park their writes (cask_park), the
 * clocks (a coarse monotonic one, condition-wait deadlines) and the log
 * sink.
 *
 * Owns those fields of struct cask (cask_internal.h); the store (cask.c),
 * its shards, the log, compaction and recovery call down into it, and it
 * calls nothing of theirs but cask_unblock_gen (a counter). It wakes the
 * roller and sync threads through their fields. Must not depend on
 * anything above storage/.
 */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "storage/cask_internal.h"

#include "storage/cask_io.h"
#include "storage/cask_keydir.h"
#include "storage/cask_segment.h"
#include "storage/cask_state.h"
#include "storage/cask_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
cask_logf(const struct cask *c, enum cask_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Shards recover on several threads at once: callbacks are called one
     * at a time, so a log function need not be thread-safe. */
    static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&log_mu);
    if (c->opt.log != NULL) {
        c->opt.log(c->opt.log_arg, level, msg);
    } else if (level <= CASK_LOG_WARN) {
        fprintf(stderr, "cask: %s\n", msg);
    }
    pthread_mutex_unlock(&log_mu);
}

int64_t
cask_now(const struct cask *c)
{
    if (c->opt.clock != NULL) {
        return c->opt.clock(c->opt.clock_arg);
    }
    return (int64_t)time(NULL);
}

uint64_t
cask_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
cask_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned
cask_count_shard_dirs(const char *dir)
{
    unsigned n = 0;
    for (;; n++) {
        char sdir[CASK_PATH_MAX];
        struct stat st;
        snprintf(sdir, sizeof(sdir), "%s/shard-%03u", dir, n);
        if (stat(sdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            return n;
        }
    }
}

void
cask_deadline_in_ns(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ns += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

void
cask_deadline_in(struct timespec *ts, unsigned ms)
{
    cask_deadline_in_ns(ts, (uint64_t)ms * 1000000u);
}

int
cask_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                     const struct timespec *deadline)
{
    return pthread_cond_clockwait(cv, mu, CLOCK_MONOTONIC, deadline);
}

/* ---- state file -------------------------------------------------------- */

/* Write m under generation gen into its slot ((gen & 1): the two alternate)
 * in place, and fdatasync: 0 or the errno. */
static int
write_slot(struct cask *c, char *buf, const struct cask_state *m, uint64_t gen)
{
    cask_state_format(buf, m, gen);
    int rc = cask_io_pwrite_all(c->state_fd, buf, CASK_STATE_SLOT,
                                (off_t)((gen & 1) * CASK_STATE_SLOT));
    return rc == 0 ? cask_io_fdatasync(c->state_fd) : rc;
}

/* An update of its slot under generation gen failed (its write or its
 * fdatasync). The new slot may be in the page cache, and a start after a
 * process crash would take it (the highest generation) as if the update
 * answered with an error had succeeded: a failed flush_all applied; after
 * a power loss the disk may hold it too. First try to make the state in
 * effect durable in its place, under the same generation: the whole slot
 * (a page of its own) is written again, so a sync that succeeds now
 * covers these bytes, unlike a second sync of pages written before the
 * failure. Then that slot is the newest (1 is returned). If that fails
 * too, write the state in effect over it under a generation below the
 * newest slot's, so the file says what it said before, unsynced: a power
 * loss before the next update that succeeds may leave the failed one on
 * disk (FORMAT.md). 0 then. */
static int
undo_slot(struct cask *c, uint64_t gen, const char *path)
{
    char *buf = malloc(CASK_STATE_SLOT);
    int rc = buf == NULL ? ENOMEM : 0;
    if (rc == 0) {
        rc = write_slot(c, buf, &c->state_cur, gen);
        if (rc == 0) {
            free(buf);
            return 1;
        }
        cask_state_format(buf, &c->state_cur,
                          c->state_gen > 0 ? c->state_gen - 1 : 0);
        rc = cask_io_pwrite_all(c->state_fd, buf, CASK_STATE_SLOT,
                                (off_t)((gen & 1) * CASK_STATE_SLOT));
    }
    free(buf);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "write %s: could not undo a failed update (%s); a "
                  "restart after a crash may take that update",
                  path, strerror(rc));
    } else {
        cask_logf(c, CASK_LOG_ERROR,
                  "write %s: a failed update is undone, unsynced; a power "
                  "loss before the next update may leave it on disk",
                  path);
    }
    return 0;
}

/* The update under gen is durable in its slot: write the same state
 * into the other slot too, under gen + 1, so that both hold it. A slot
 * damaged later (a flipped bit) then leaves the other with the state in
 * effect, where it would leave the state before the update: after a
 * flush_all, that brought flushed items back. Returns the generation in
 * effect: gen + 1, or gen when the copy failed (logged; the update stands,
 * and the next one takes that slot, whatever the failed write left in it
 * being the same state or a torn slot that fails its checksum). */
static uint64_t
mirror_slot(struct cask *c, char *buf, const struct cask_state *m, uint64_t gen,
            const char *path)
{
    int rc = write_slot(c, buf, m, gen + 1);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_WARN,
                  "write %s (second copy): %s; the update stands in the "
                  "first",
                  path, strerror(rc));
        return gen;
    }
    return gen + 1;
}

/* Persist m. The file holds two slots of CASK_STATE_SLOT bytes, each a complete
 * state with a generation and a checksum; an update overwrites the older
 * slot in place (pwrite, fdatasync), so a torn write leaves the other one
 * intact, and an update needs no new disk blocks: it works on a full disk;
 * once it is durable the other slot gets a copy (mirror_slot). The file is
 * created (both slots, temp + rename) the first time. */
int
cask_ctx_state_write(struct cask *c, const struct cask_state *m)
{
    char path[CASK_PATH_MAX], tmp[CASK_PATH_MAX + 8];
    char *buf = malloc(2 * CASK_STATE_SLOT);
    int rc = 0;
    if (buf == NULL) {
        return ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_NAME);
    uint64_t gen = c->state_gen + 1;
    if (c->state_fd < 0) {
        cask_state_format(buf, m, gen);
        memcpy(buf + CASK_STATE_SLOT, buf, CASK_STATE_SLOT);
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        int dir_rc;
        rc = cask_replace_file(c->dir, tmp, path, buf, 2 * CASK_STATE_SLOT,
                               &dir_rc);
        if (rc == 0 && dir_rc != 0) {
            /* In place: what a restart reads, so in effect here too. */
            cask_logf(c, CASK_LOG_ERROR,
                      "fsync %s after creating %s: %s; in effect, but a "
                      "power loss may leave no state file (FORMAT.md)",
                      c->dir, path, strerror(dir_rc));
        }
        if (rc == 0) {
            c->state_fd = open(path, O_RDWR | O_CLOEXEC);
            if (c->state_fd < 0) {
                rc = errno;
            }
        }
    } else {
        rc = write_slot(c, buf, m, gen);
        if (rc != 0 && undo_slot(c, gen, path) == 1) {
            /* the state in effect, durable under gen */
            cask_logf(c, CASK_LOG_ERROR, "write %s: %s; not applied", path,
                      strerror(rc));
            c->state_gen = gen;
            free(buf);
            return rc;
        }
        if (rc == 0) {
            gen = mirror_slot(c, buf, m, gen, path);
        }
    }
    free(buf);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "write %s: %s", path, strerror(rc));
        return rc;
    }
    c->state_gen = gen;
    c->state_cur = *m;
    return 0;
}

/* A store written before the state file had its name keeps it in DIR/meta:
 * rename that to DIR/state (and make the rename durable) so one name is
 * used from here on. 0, or the errno of a rename that failed. */
int
cask_ctx_state_adopt_old_name(struct cask *c)
{
    char path[CASK_PATH_MAX], old[CASK_PATH_MAX];
    snprintf(old, sizeof(old), "%s/%s.tmp", c->dir, CASK_STATE_OLD_NAME);
    (void)unlink(old); /* that name's own cut-short replacement */
    snprintf(old, sizeof(old), "%s/%s", c->dir, CASK_STATE_OLD_NAME);
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_NAME);
    if (access(path, F_OK) == 0 || access(old, F_OK) != 0) {
        return 0;
    }
    int rc = rename(old, path) == 0 ? cask_fsync_dir(c->dir) : errno;
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "rename %s to %s: %s", old, path,
                  strerror(rc));
        return rc;
    }
    cask_logf(c, CASK_LOG_INFO, "state file %s renamed to %s", old, path);
    return 0;
}

/* Read the state file (the valid slot with the highest generation) and keep
 * it open for updates: 0, ENOENT when there is none, EINVAL when no slot is
 * valid (unparsable, or checksum mismatch), CASK_ENEWER (logged) when a
 * slot is a valid one of a newer format version, or an errno. */
int
cask_ctx_state_read(struct cask *c, struct cask_state *m)
{
    char path[CASK_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", c->dir, CASK_STATE_NAME);
    int fd = open(path, (c->opt.inspect ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    char *buf = calloc(2, CASK_STATE_SLOT + 1);
    int rc = buf == NULL ? ENOMEM : 0;
    size_t len = 0;
    while (rc == 0 && len < 2 * CASK_STATE_SLOT) {
        ssize_t r = read(fd, buf + len, 2 * CASK_STATE_SLOT - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = errno;
        } else if (r == 0) {
            break;
        } else {
            len += (size_t)r;
        }
    }
    bool found = false;
    unsigned bad = 0;
    for (unsigned i = 0; rc == 0 && i < 2 && i * CASK_STATE_SLOT < len; i++) {
        char slot[CASK_STATE_SLOT + 1];
        struct cask_state t;
        uint64_t gen;
        memcpy(slot, buf + i * CASK_STATE_SLOT, CASK_STATE_SLOT);
        slot[CASK_STATE_SLOT] = '\0';
        int prc = cask_state_parse(slot, &t, &gen);
        if (prc == CASK_ENEWER) {
            /* Not a damaged slot to write over: a newer build's state,
             * which the other slot's older one must not replace. */
            cask_logf(c, CASK_LOG_ERROR,
                      "%s: slot %u was written by a newer bitcached (state "
                      "format %u; this build reads up to %d); not opening "
                      "the store, the file is left as it is",
                      path, i, cask_state_newer(slot), CASK_STATE_VERSION);
            rc = CASK_ENEWER;
        } else if (prc != 0) {
            bad++;
        } else if (!found || gen > c->state_gen) {
            *m = t;
            c->state_gen = gen;
            found = true;
        }
    }
    if (found && bad > 0) {
        /* A torn update (or damage) in one slot: the other holds the
         * state before that update, which is what was in effect. */
        cask_logf(c, CASK_LOG_WARN,
                  "%s: one state slot is damaged; using generation %" PRIu64,
                  path, c->state_gen);
    }
    free(buf);
    if (rc == 0 && !found) {
        rc = EINVAL;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    if (len < 2 * CASK_STATE_SLOT) {
        /* An older single-slot file: the next update rewrites it whole
         * (temp + rename) as two slots. */
        close(fd);
        return 0;
    }
    c->state_fd = fd;
    c->state_cur = *m;
    return 0;
}

static struct cask_state
state_now(struct cask *c)
{
    struct cask_state m = {
            .shards = c->nshards,
            .cas_reserved = atomic_load(&c->cas_reserved),
            .flush_cas = atomic_load(&c->flush_cas),
            .flush_pending_at = atomic_load(&c->flush_pending_at),
    };
    return m;
}

/* Make sure cas v is below the reserved mark. The new mark is persisted
 * before any cas under it is used, so a restart never hands one out again,
 * and published only once it is on disk. A failure fails the caller's
 * operation. Reached by a request only when the mark kept ahead
 * (cask_cas_reserve_ahead) was used up. */
/* With state_mu held: persist a mark a block past cas v, then publish it. */
static int
reserve_block(struct cask *c, uint64_t v)
{
    struct cask_state m = state_now(c);
    m.cas_reserved = v + CASK_CAS_BLOCK;
    int rc = cask_ctx_state_write(c, &m);
    if (rc == 0) {
        atomic_store(&c->cas_reserved, m.cas_reserved);
    }
    return rc;
}

static int
reserve_past(struct cask *c, uint64_t v)
{
    if (v < atomic_load(&c->cas_reserved)) {
        return 0;
    }
    int rc = 0;
    pthread_mutex_lock(&c->state_mu);
    if (v >= atomic_load(&c->cas_reserved)) {
        rc = reserve_block(c, v);
    }
    pthread_mutex_unlock(&c->state_mu);
    return rc;
}

/* Whether less than half a block is left above cas v. */
static bool
reserve_low(struct cask *c, uint64_t v)
{
    return v + CASK_CAS_BLOCK / 2 >= atomic_load(&c->cas_reserved);
}

/* v was handed out: past half of the block, wake the sync thread (once
 * until it has acted) to reserve the next block before a request must. */
static void
ask_ahead(struct cask *c, uint64_t v)
{
    if (!reserve_low(c, v) || atomic_load(&c->cas_ahead_asked) ||
        atomic_exchange(&c->cas_ahead_asked, true)) {
        return;
    }
    pthread_mutex_lock(&c->bg_mu);
    c->cas_kick = true;
    pthread_cond_signal(&c->sync_cv);
    pthread_mutex_unlock(&c->bg_mu);
}

int
cask_cas_reserve_ahead(struct cask *c)
{
    int rc = 0;
    pthread_mutex_lock(&c->state_mu);
    uint64_t v = atomic_load(&c->next_cas);
    if (reserve_low(c, v)) {
        rc = reserve_block(c, v);
    }
    pthread_mutex_unlock(&c->state_mu);
    if (rc == 0) {
        /* Asked again once the counter passes half of the new block. A
         * failed write stays asked: the sync thread retries at its
         * interval, not at every cas handed out. */
        atomic_store(&c->cas_ahead_asked, false);
    }
    return rc;
}

/* ---- threads that park their writes (cask_park, cask.h) --------------- */

static _Thread_local bool park_on;
static _Thread_local uint64_t park_gen;

bool
cask_park(bool on)
{
    bool was = park_on;
    park_on = on;
    return was;
}

uint64_t
cask_blocked_gen(void)
{
    return park_gen;
}

bool
cask_parking(void)
{
    return park_on;
}

int
cask_parks(struct cask *c, uint64_t gen)
{
    park_gen = gen;
    atomic_fetch_add_explicit(&c->blocked_writes, 1, memory_order_relaxed);
    return CASK_EBLOCKED;
}

/* ---- the flush point ---------------------------------------------------- */

/* flush_all calls of parking threads (cask_flush_park) that one state
 * file write takes up, and what they make of the flush point, in the
 * order they came: the cas the last one that flushed now saw, and the
 * pending time the last one leaves (a later flush_all replaces a pending
 * one; one that flushes now leaves none). flush_mu covers it. */
struct cask_flush_wait {
    unsigned refs; /* the callers waiting, and the store until done */
    bool done;     /* written: rc is the outcome */
    int rc;
    bool now; /* one flushed now: flush_cas becomes now_cas */
    uint64_t now_cas;
    int64_t pending_at; /* the last one's delayed time, or 0 */
};

/* A flush_all at at_abs_s, called at now, joins w. */
static void
add_call(struct cask *c, struct cask_flush_wait *w, int64_t at_abs_s,
         int64_t now)
{
    if (at_abs_s <= now) {
        w->now = true;
        w->now_cas = atomic_load(&c->next_cas) - 1;
        w->pending_at = 0;
    } else {
        w->pending_at = at_abs_s;
    }
}

static void
drop_locked(struct cask_flush_wait *w)
{
    if (--w->refs == 0) {
        free(w);
    }
}

/* With flush_mu held: the delayed flush pending at `at` is due. Its
 * threshold is fixed once, at what was written before it came due:
 * flush_due_at is published before the counter is read, so a writer that
 * drew its cas before this is under the threshold, and one that draws
 * after sees the flush due (cask_cas_next). */
static uint64_t
came_due(struct cask *c, int64_t at)
{
    if (atomic_load(&c->flush_due_at) != at) {
        atomic_store(&c->flush_due_at, at);
        atomic_store(&c->flush_soft_cas, atomic_load(&c->next_cas) - 1);
    }
    return atomic_load(&c->flush_soft_cas);
}

/* A delayed flush came due and its threshold is not persisted yet. */
static bool
due_unpersisted(struct cask *c)
{
    int64_t at = atomic_load(&c->flush_pending_at);
    return at != 0 && atomic_load(&c->flush_due_at) == at;
}

/* With flush_mu held: ask the roller thread to persist a due flush,
 * unless it is asked or at it already, or its last attempt failed this
 * second. True: the caller wakes it (cask_wake_roller) once flush_mu is
 * released. */
static bool
ask_due(struct cask *c, int64_t now)
{
    if (c->flush_asked || c->flush_writing ||
        (atomic_load(&c->flush_err) != 0 && now == c->flush_tried_s)) {
        return false;
    }
    c->flush_asked = true;
    return true;
}

void
cask_wake_roller(struct cask *c)
{
    pthread_mutex_lock(&c->roll_mu);
    c->roll_wanted = true;
    pthread_cond_signal(&c->roll_cv);
    pthread_mutex_unlock(&c->roll_mu);
}

/* With state_mu held: persist the flush point, a due delayed flush
 * folded in and then the calls of w (NULL: none), and publish it once
 * durable. 0 (also when there was nothing to write) or the write's errno;
 * a failure publishes nothing (a due flush stays seen by readers, and its
 * error refuses writers: flush_err). Persist first, apply after: a
 * flush_all that fails changes nothing, and compaction never drops
 * records by a point a restart forgets. */
static int
persist(struct cask *c, const struct cask_flush_wait *w)
{
    for (;;) {
        int64_t now = cask_now(c);
        pthread_mutex_lock(&c->flush_mu);
        struct cask_state m = state_now(c);
        int64_t was_at = m.flush_pending_at;
        bool due = was_at != 0 &&
                   (now >= was_at || atomic_load(&c->flush_due_at) == was_at);
        if (due) {
            uint64_t soft = came_due(c, was_at);
            m.flush_cas = soft > m.flush_cas ? soft : m.flush_cas;
            m.flush_pending_at = 0;
        }
        pthread_mutex_unlock(&c->flush_mu);
        if (!due && w == NULL) {
            return 0;
        }
        if (w != NULL) {
            if (w->now && w->now_cas > m.flush_cas) {
                m.flush_cas = w->now_cas;
            }
            m.flush_pending_at = w->pending_at;
        }
        int rc = cask_ctx_state_write(c, &m);
        pthread_mutex_lock(&c->flush_mu);
        if (rc == 0 && !due && was_at != 0 &&
            atomic_load(&c->flush_due_at) == was_at) {
            /* The pending flush this write replaces came due meanwhile,
             * and readers see it: write again with it folded in. */
            pthread_mutex_unlock(&c->flush_mu);
            continue;
        }
        if (rc == 0) {
            atomic_store(&c->flush_cas, m.flush_cas);
            atomic_store(&c->flush_pending_at, m.flush_pending_at);
            /* a new pending flush is not due (a clock stepped back could
             * name the time of one that was) */
            atomic_store(&c->flush_due_at, 0);
        }
        if (due) {
            atomic_store(&c->flush_err, rc);
            c->flush_tried_s = now;
        }
        pthread_mutex_unlock(&c->flush_mu);
        return rc;
    }
}

/* A write found a due flush not yet persisted (after drawing its cas):
 * 0 when it is persisted by now; else, for a thread that parks, the
 * roller thread is asked and the write parks; another writes it itself.
 * The error of a failed write refuses the write meanwhile. */
static int
due_wait(struct cask *c)
{
    uint64_t gen = cask_unblock_gen(c); /* before the obstacle is seen */
    int64_t now = cask_now(c);
    pthread_mutex_lock(&c->flush_mu);
    bool due = due_unpersisted(c);
    int rc = due ? atomic_load(&c->flush_err) : 0;
    bool wake = due && park_on && ask_due(c, now);
    bool tried = rc != 0 && now == c->flush_tried_s;
    pthread_mutex_unlock(&c->flush_mu);
    if (wake) {
        cask_wake_roller(c);
    }
    if (!due) {
        return 0;
    }
    if (park_on) {
        return rc != 0 ? rc : cask_parks(c, gen);
    }
    if (tried) {
        return rc; /* retried at most once a second */
    }
    pthread_mutex_lock(&c->state_mu);
    rc = persist(c, NULL);
    pthread_mutex_unlock(&c->state_mu);
    return rc;
}

int
cask_cas_next(struct cask *c, uint64_t *out)
{
    uint64_t v = atomic_fetch_add(&c->next_cas, 1);
    if (due_unpersisted(c)) {
        /* Looked at after v was drawn (came_due): nothing new may be
         * acknowledged before the flush is persisted, or a restart would
         * take it as due again, its threshold past v. v is skipped. */
        int rc = due_wait(c);
        if (rc != 0) {
            return rc;
        }
    }
    if (v > CASK_KD_CAS_MAX) {
        return EOVERFLOW; /* the keydir keeps 56 bits (centuries of writes) */
    }
    int rc = reserve_past(c, v);
    if (rc == 0) {
        ask_ahead(c, v);
        *out = v;
    }
    return rc;
}

int
cask_cas_observe(struct cask *c, uint64_t v)
{
    uint64_t cur = atomic_load(&c->next_cas);
    while (cur <= v &&
           !atomic_compare_exchange_weak(&c->next_cas, &cur, v + 1)) {
        /* cur now holds the counter's value: try again */
    }
    int rc = reserve_past(c, v);
    if (rc == 0) {
        ask_ahead(c, v);
    }
    return rc;
}

uint64_t
cask_flush_point(struct cask *c, int64_t now)
{
    int64_t at = atomic_load(&c->flush_pending_at);
    if (at == 0 || (now < at && atomic_load(&c->flush_due_at) != at)) {
        return atomic_load(&c->flush_cas);
    }
    pthread_mutex_lock(&c->flush_mu);
    at = atomic_load(&c->flush_pending_at);
    uint64_t fc = atomic_load(&c->flush_cas);
    bool wake = false;
    if (at != 0 && (now >= at || atomic_load(&c->flush_due_at) == at)) {
        /* Due: readers see it now; compaction ignores it (it reads
         * flush_cas) until it is persisted. */
        uint64_t soft = came_due(c, at);
        fc = soft > fc ? soft : fc;
        wake = ask_due(c, now);
    }
    pthread_mutex_unlock(&c->flush_mu);
    if (wake) {
        cask_wake_roller(c);
    }
    return fc;
}

bool
cask_flush_work(struct cask *c)
{
    pthread_mutex_lock(&c->flush_mu);
    bool asked = c->flush_asked;
    struct cask_flush_wait *w = c->flush_open;
    c->flush_asked = false;
    c->flush_open = NULL;
    c->flush_writing = asked;
    pthread_mutex_unlock(&c->flush_mu);
    if (!asked) {
        return false;
    }
    pthread_mutex_lock(&c->state_mu);
    int rc = persist(c, w);
    pthread_mutex_unlock(&c->state_mu);
    pthread_mutex_lock(&c->flush_mu);
    c->flush_writing = false;
    if (w != NULL) {
        w->rc = rc;
        w->done = true;
        drop_locked(w); /* the store's */
    }
    pthread_mutex_unlock(&c->flush_mu);
    return true;
}

void
cask_ctx_flush_free(struct cask *c)
{
    if (c->flush_open != NULL) {
        drop_locked(c->flush_open); /* never written: no one waits now */
        c->flush_open = NULL;
    }
}

int
cask_flush(struct cask *c, int64_t at_abs_s)
{
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    int64_t now = cask_now(c);
    /* A pending flush that already came due happened before this call. */
    (void)cask_flush_point(c, now);
    struct cask_flush_wait w = {.refs = 1};
    add_call(c, &w, at_abs_s, now);
    pthread_mutex_lock(&c->state_mu);
    int rc = persist(c, &w);
    pthread_mutex_unlock(&c->state_mu);
    return rc;
}

int
cask_flush_park(struct cask *c, int64_t at_abs_s, struct cask_flush_wait **wait)
{
    struct cask_flush_wait *w = *wait;
    if (w != NULL) {
        /* Made again: done yet? */
        uint64_t gen = cask_unblock_gen(c);
        pthread_mutex_lock(&c->flush_mu);
        bool done = w->done;
        int rc = w->rc;
        if (done) {
            drop_locked(w);
            *wait = NULL;
        }
        pthread_mutex_unlock(&c->flush_mu);
        return done ? rc : cask_parks(c, gen);
    }
    if (!park_on) {
        return cask_flush(c, at_abs_s);
    }
    if (atomic_load(&c->read_only)) {
        return CASK_EREADONLY;
    }
    int64_t now = cask_now(c);
    (void)cask_flush_point(c, now); /* as in cask_flush */
    uint64_t gen = cask_unblock_gen(c);
    pthread_mutex_lock(&c->flush_mu);
    w = c->flush_open;
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL) {
            pthread_mutex_unlock(&c->flush_mu);
            return ENOMEM;
        }
        w->refs = 1; /* the store's, until written (cask_flush_work) */
        c->flush_open = w;
    }
    w->refs++;
    add_call(c, w, at_abs_s, now);
    c->flush_asked = true;
    pthread_mutex_unlock(&c->flush_mu);
    cask_wake_roller(c);
    *wait = w;
    return cask_parks(c, gen);
}

void
cask_flush_drop(struct cask *c, struct cask_flush_wait **wait)
{
    if (*wait == NULL) {
        return;
    }
    pthread_mutex_lock(&c->flush_mu);
    drop_locked(*wait);
    pthread_mutex_unlock(&c->flush_mu);
    *wait = NULL;
}

/* ---- replication (cask_stream.h) ---------------------------------------- */

uint64_t
cask_stream_flush_cas(struct cask *c)
{
    return cask_flush_point(c, cask_now(c));
}

int
cask_stream_set_flush(struct cask *c, uint64_t flush_cas, bool exact)
{
    int rc = 0;
    pthread_mutex_lock(&c->state_mu);
    uint64_t cur = atomic_load(&c->flush_cas);
    if (flush_cas != cur && (exact || flush_cas > cur)) {
        /* The primary's threshold replaces any delayed flush of our own:
         * the primary decides when that one comes due. */
        struct cask_state m = state_now(c);
        m.flush_cas = flush_cas;
        m.flush_pending_at = 0;
        rc = cask_ctx_state_write(c, &m);
        if (rc == 0) {
            pthread_mutex_lock(&c->flush_mu);
            atomic_store(&c->flush_cas, flush_cas);
            atomic_store(&c->flush_pending_at, 0);
            pthread_mutex_unlock(&c->flush_mu);
        }
    }
    pthread_mutex_unlock(&c->state_mu);
    return rc;
}
