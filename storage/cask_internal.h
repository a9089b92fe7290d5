/* cask_internal.h - the store struct, and the store-wide context its shards
 * work in (cask_ctx.c): the cas allocator, the clock, the flush point, the
 * state file and logging. Private to storage/; nothing outside it includes
 * this.
 */
#ifndef BITCACHED_CASK_INTERNAL_H
#define BITCACHED_CASK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "storage/cask.h"
#include "storage/cask_state.h"

struct cask_shard;
struct cask_commit;
struct cask_journal;

/* cas numbers reserved in the state file at a time. */
#define CASK_CAS_BLOCK (1u << 20)
/* How far cas numbers skip ahead when the state file, and with it the
 * reservation mark, is lost: records compacted away (overwritten or
 * deleted keys) may have held cas numbers above every one left on disk,
 * and a cas is never handed out twice. 2^40 stays below 2^53, so clients
 * that keep a cas in a double still see it exactly. */
#define CASK_CAS_LOST_GAP (1ull << 40)

/* The store. cask.c owns it; shards read opt, the clock and the flush point
 * through the functions below and never write its fields. */
struct cask {
    char *dir;
    struct cask_options opt;
    uint64_t disk_shards; /* opt.disk_limit less the commit journal's
                           * files: what the shards' files may take */
    unsigned nshards;
    struct cask_shard **shards;
    int lock_fd;

    _Atomic uint64_t next_cas;     /* next cas/seq to hand out */
    _Atomic uint64_t cas_reserved; /* all cas below it may be in use */
    /* the sync thread was asked to move cas_reserved ahead and has not
     * done it yet: no second request until it has */
    atomic_bool cas_ahead_asked;
    _Atomic uint64_t flush_cas;       /* items with cas <= it are flushed */
    _Atomic int64_t flush_pending_at; /* delayed flush time, 0 none */
    /* A delayed flush that came due but whose threshold is not yet in the
     * state file (flush_pending_at == flush_due_at): readers see
     * flush_soft_cas, writers wait for the roller thread to persist it
     * (cask_flush_work); flush_err is that write's error (0 = none). */
    _Atomic uint64_t flush_soft_cas;
    _Atomic int flush_err;
    _Atomic int64_t flush_due_at; /* flush_mu: flush_soft_cas is for it */
    /* flush_mu covers the fields above it from flush_soft_cas on, the
     * publication of flush_cas and flush_pending_at, and these; it is never
     * held over I/O (state_mu is, and is taken first): */
    pthread_mutex_t flush_mu;
    int64_t flush_tried_s; /* last persist attempt of a due flush (clock) */
    bool flush_asked;      /* the roller thread is asked to persist */
    bool flush_writing;    /* it is writing (a due flush, flush_open's) */
    /* flush_all calls of parking threads not yet taken up (cask_ctx.c) */
    struct cask_flush_wait *flush_open;
    pthread_mutex_t state_mu; /* covers state file writes, state_fd/gen */
    int state_fd;             /* the state file, open for in-place updates */
    uint64_t state_gen;       /* generation of the newest slot on disk */
    /* state_mu: what that slot holds (written back over a failed update) */
    struct cask_state state_cur;

    pthread_mutex_t bg_mu; /* covers stopping, compact_kick, roll_kick */
    pthread_cond_t bg_cv;
    /* bg_mu: a roll-over left a closed segment's sync to the sync thread:
     * it wakes on sync_cv before its interval to sync that one
     * (cask_log.c). */
    pthread_cond_t sync_cv;
    bool roll_kick;
    /* bg_mu: the cas counter passed half of its reserved block: the sync
     * thread wakes to reserve the next one (cask_cas_reserve_ahead) */
    bool cas_kick;
    bool stopping;
    bool compact_kick;
    bool sync_thread_on;
    bool maint_thread_on;
    pthread_t sync_thread;
    pthread_t maint_thread;
    /* roll_mu: a parked write asked the roller thread for its shard's
     * roll-over, or a write for an extension of its shard's disk reserve
     * (roll_wanted; the shard's roll_asked and extend_asked say which), or
     * the store stops (roll_stop). */
    pthread_mutex_t roll_mu;
    pthread_cond_t roll_cv;
    bool roll_wanted;
    bool roll_stop;
    bool roll_thread_on;
    pthread_t roll_thread;

    struct cask_commit *commit;   /* CASK_SYNC_ALWAYS: cask_commit.c */
    struct cask_journal *journal; /* CASK_SYNC_ALWAYS: cask_journal.c */

    double recovery_s;
    /* The state file was missing or damaged at open: everything found on
     * disk was treated as flushed (state_rebuild in cask.c). */
    bool state_lost;
    _Atomic uint64_t kd_bytes; /* sum of the shards' keydir bytes */
    /* sum of the active segments' append buffers (cask_log.c): memory
     * mem_limit bounds with the keydirs */
    _Atomic uint64_t buf_bytes;
    /* sum of the shards' value caches (cask_vcache.h): memory they take
     * only while the keydirs and buffers leave it free */
    _Atomic uint64_t vc_bytes;
    /* Without mem_evict: a new key was refused for memory; from then on
     * a new key only takes the place of one that went (cask_evict.c). */
    _Atomic bool mem_full;
    _Atomic bool read_only; /* a replica: client writes refused */
    /* stats: the maintenance thread's passes, and crawler passes under
     * way (cask_crawl.c) */
    _Atomic uint64_t maint_passes;
    _Atomic unsigned crawling;
    /* Writes that would wait for a roll-over (cask_park, cask_log.c):
     * unblock_gen counts the events that may end such a wait, each
     * followed by a call of unblock_fn; blocked_writes counts the writes
     * that returned CASK_EBLOCKED. */
    _Atomic uint64_t unblock_gen;
    _Atomic uint64_t blocked_writes;
    pthread_mutex_t unblock_mu; /* covers unblock_fn, unblock_arg */
    void (*unblock_fn)(void *arg);
    void *unblock_arg;
};

/* A wait a parked write may be in ended (cask_park): counts it in
 * unblock_gen, then calls the unblock hook. Any thread, any lock. */
void cask_unblocked(struct cask *c);

/* A fresh cas (also used as record sequence number) in *out; never reused,
 * never below one handed out before a restart. Lock-free: the reserved mark
 * in the state file is kept at least half a CASK_CAS_BLOCK ahead by the
 * sync thread (cask_cas_reserve_ahead), which a call that passes half of
 * the block wakes. Only when the counter reaches the mark anyway (the
 * state file cannot be written, or the thread is behind) does the caller
 * write it itself. Returns 0, or the errno of that write when it failed
 * (the mark is then not advanced and the caller's operation must fail),
 * or of a due flush_all that is not yet persisted. */
int cask_cas_next(struct cask *c, uint64_t *out);

/* Move the reserved mark a CASK_CAS_BLOCK past the counter when less than
 * half a block is left (writes and syncs the state file, state_mu held,
 * no shard mutex): the sync thread when woken by cask_cas_next, and at
 * open. Returns 0 (also when nothing was needed) or the write's errno. */
int cask_cas_reserve_ahead(struct cask *c);

/* Make sure every cas handed out from now on is above v (a replica
 * applying its primary's records): raises the counter, and the reserved
 * mark in the state file when needed. Returns 0 or the write's errno. */
int cask_cas_observe(struct cask *c, uint64_t v);

/* The clock, in unix seconds. */
int64_t cask_now(const struct cask *c);

/* Milliseconds of a clock that never goes back, read without a system
 * call (vDSO); coarse (a tick) is fine for intervals of a second: the
 * maintenance passes' pacing, back-offs, change-time checks. */
uint64_t cask_clock_ms(void);

/* Nanoseconds of the same clock, not coarse: short durations (a sync's,
 * a batch's time in flight, recovery's). */
uint64_t cask_clock_ns(void);

/* How many shard directories (DIR/shard-000 on, without a gap) dir holds:
 * the shard count of a store whose state file is gone, as the server
 * opens it and the offline tools read it. */
unsigned cask_count_shard_dirs(const char *dir);

/* *ts = CLOCK_MONOTONIC now + ms (or + ns): an absolute deadline for
 * cask_cond_wait_until. Not the wall clock: a clock stepped back (an NTP
 * correction at boot) would stretch every wait by the step, the interval
 * sync's among them. */
void cask_deadline_in(struct timespec *ts, unsigned ms);
void cask_deadline_in_ns(struct timespec *ts, uint64_t ns);

/* pthread_cond_timedwait against such a deadline: 0 when woken,
 * ETIMEDOUT once it has passed. */
int cask_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                         const struct timespec *deadline);

/* The flush threshold at time now, for lookups: a pending delayed flush
 * whose time has come becomes a threshold here at once, without I/O; the
 * roller thread is asked to persist it (cask_flush_work; asked again at
 * most once a second while the write fails). Until it is persisted,
 * readers see it and writers wait for it in cask_cas_next (a thread that
 * parks its writes parks; the others write it themselves), or get the
 * error of the failed write. Lock-free but while a due flush waits. */
uint64_t cask_flush_point(struct cask *c, int64_t now);

/* The roller thread's share of the flush point: persist a due delayed
 * flush and the flush_all calls of parking threads (cask_flush_park) when
 * asked, state_mu held, and publish them once durable. True when it was
 * asked (the caller then calls cask_unblocked: the parked wait ended). */
bool cask_flush_work(struct cask *c);

/* At the store's end: release the flush_all calls never taken up. */
void cask_ctx_flush_free(struct cask *c);

/* Wake the roller thread (cask.c roll_main): work was asked of it (a
 * roll-over, a reserve extension, a flush point to persist). */
void cask_wake_roller(struct cask *c);

/* Threads that park their writes (cask_park, cask.h). cask_parking: this
 * thread does. cask_parks: its write parks; the wait it would have made
 * ends with a cask_unblocked() after gen (cask_unblock_gen read before
 * the obstacle was found). Counts the write, returns CASK_EBLOCKED. */
bool cask_parking(void);
int cask_parks(struct cask *c, uint64_t gen);

struct cask_state;

/* The state file (cask_ctx.c), for cask_open: rename a store's old DIR/meta
 * to DIR/state; read the newest valid slot (0, ENOENT, EINVAL when no slot
 * is valid, or an errno) and keep the file open; persist m (with state_mu
 * held once the store is shared). */
int cask_ctx_state_adopt_old_name(struct cask *c);
int cask_ctx_state_read(struct cask *c, struct cask_state *m);
int cask_ctx_state_write(struct cask *c, const struct cask_state *m);

void cask_logf(const struct cask *c, enum cask_log_level level, const char *fmt,
               ...) __attribute__((format(printf, 3, 4)));

#endif
