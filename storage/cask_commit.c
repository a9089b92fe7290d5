/* cask_commit.c - group commit for CASK_SYNC_ALWAYS: the committer thread,
 * commit epochs, tickets and the thread's deferred ticket (cask_defer).
 *
 * Owns struct cask_commit (hung on the store), its thread and its sync
 * helpers. A pass closes the open epoch, then syncs every shard that has
 * appends not yet synced, the shards in parallel (cask_log_sync:
 * fdatasync with the shard mutex released, so the shard keeps taking
 * appends meanwhile), marks the epoch done, wakes blocked
 * writers and calls the store's commit hook. One pass covers the writes of
 * every shard and every client that came in while the previous pass ran.
 * A failed sync makes its shard refuse writes until the segment is
 * rewritten (cask_resync.c); the tickets it covered then read
 * CASK_EFAILED.
 *
 * With the shared journal (cask_journal.c) a pass instead writes the
 * frames queued since the last pass to the journal with one fdatasync,
 * whatever shards they came from; when the journal file is full it
 * checkpoints (every shard's segment synced, in parallel as above) and
 * switches to the other file. A failed journal write or sync (or
 * generation switch) answers the writes it covered with errors and holds
 * every shard's writes; the thread that saw it then recovers: the failed
 * puts are undone (cask_lost.c), every segment is synced, and the
 * journal resumes in its other file, retried every RECOVER_RETRY_MS
 * while that fails. A failed segment sync makes its shard rewrite the
 * segment (cask_resync.c); until that is done the journal's current
 * generation, which holds the segment's acknowledged records, is not
 * replaced: commits go on in the file's reserve (checkpoint), the
 * journal fails after a bounded wait once that is full too, and a
 * recovery waits and tries again. A latched
 * shard (cask_log_latch) latches every shard until a restart. Calls down
 * into the log, the lost writes and the journal only.
 */
#include "storage/cask_commit.h"

#include "storage/cask_journal.h"
#include "storage/cask_log.h"
#include "storage/cask_lost.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Sync helpers: a pass syncs its shards in parallel, each fdatasync on a
 * thread of its own (the committer takes part), so that one pass costs
 * about one device flush (the file system merges concurrent journal
 * commits) instead of one per dirty shard. */
#define SYNC_HELPERS_MAX 15

/* Concurrent journal commits: a sync of a batch overlaps the next
 * batches' (on ext4 and a virtual disk, 2-4 syncs in flight give several
 * times the syncs a second of one). A thread whose batch is written takes
 * the next one at once; the slots keep the batches until they are
 * completed in order. */
#define JOURNAL_THREADS_MAX 4
#define JOURNAL_SLOTS       16

/* While syncs are not slow (below SLOW_SYNC_NS), a batch is written
 * while another is in flight only once the newest in flight has taken
 * this long (a quiet disk's write and flush take about 100 us): until
 * then the writes wait for the thread in flight, which takes them all in
 * one batch when it is back. Every sync costs its thread a sleep, device
 * kicks and file system work (about 40 us of CPU on a virtual disk), and
 * every batch a wake-up of each worker whose replies it releases, so
 * fewer, larger batches cost less CPU per write. */
#define OVERLAP_AFTER_NS 300000ull

/* Syncs are slow once the longest recent one (sync_slow_ns) took this
 * long: a disk busy with other work (1-35 ms). There the wait above would
 * add to every write's latency in a closed loop that the disk, not the
 * CPU, limits, so batches overlap as soon as writes wait. Not at
 * OVERLAP_AFTER_NS: a sync of a few hundred us (a loaded machine, whose
 * CPU is what limits it, wakes the thread late) would then start a batch
 * for every write that comes while one is in flight: with 50 connections
 * and 100-byte sets that cut writes per sync from 14 to 11 and cost 1-1.5
 * us more CPU per set in the commit threads. */
#define SLOW_SYNC_NS 1000000ull

/* Under concurrent load (the recent batches held COMMIT_SIBLINGS frames
 * or more on average, so several writers are at work) the thread holding
 * the turn waits COMMIT_DELAY_NS before it closes the epoch: the writes
 * that come meanwhile share its fdatasync. Each batch costs about 50 us
 * of CPU whatever its size (the sync's sleep, device kicks and block
 * layer work, the journal write, the wake-ups of the commit thread and
 * of every worker it answers), and on two busy cores that CPU is what
 * limits the writes a second: with 50 connections and 100-byte sets the
 * wait doubled the writes per sync (12.5 to 25.5 on an idle machine) and
 * cut the server's CPU per set by a few per cent. A lone writer (or a few:
 * PostgreSQL's commit_siblings) waits for nothing, so light load keeps
 * its latency; a write under load waits this much at most on top of its
 * sync. */
#define COMMIT_DELAY_NS 250000ull
#define COMMIT_SIBLINGS 4u

/* After a failed journal commit, how long to wait between attempts to
 * resume the journal (a switch to its other file) while it fails. */
#define RECOVER_RETRY_MS 100

/* A batch that finds the journal's file full, reserve included, while a
 * checkpoint cannot run (a segment whose sync failed is being rewritten)
 * waits this long for the rewrites before the journal is failed: its
 * writes, and those after until the journal recovers, are then answered
 * with errors instead of waiting on a disk that may keep failing. */
#define FULL_WAIT_MS 1000u

struct jslot;

struct cask_commit {
    /* Writers join without a lock: they mark their shard dirty, read the
     * epoch and raise want; only a sleeping committer costs them mu. */
    _Atomic uint64_t epoch;       /* the epoch new appends join (from 1) */
    _Atomic uint64_t done;        /* every epoch up to this one is durable */
    _Atomic uint64_t want;        /* highest epoch a writer joined */
    _Atomic bool sleeping;        /* a writer raising want must signal
                                   * work_cv: the committer waits on it
                                   * (journal: no thread holds the turn) */
    _Atomic uint64_t announced;   /* calls of the hook (announce) so far,
                                   * raised after done, before the hook */
    _Atomic unsigned char *dirty; /* per shard: appended since the flag
                                   * was last taken by a pass */
    pthread_mutex_t mu;           /* covers stop; work_cv, done_cv */
    pthread_cond_t work_cv;       /* the committer: a pass is wanted */
    pthread_cond_t done_cv;       /* blocked writers: an epoch is done */
    /* Threads waiting on done_cv, raised (under mu) before they check
     * what they wait for: a commit that finds none skips mu (Dekker with
     * the store of done or undo_wait before it is read). */
    _Atomic unsigned done_waiters;
    _Atomic uint64_t passes;
    bool stop;
    pthread_t thread;
    /* The pass in progress: todo[0..ntodo) are its shards, handed out
     * through next; left of them are not synced yet. Set up by the
     * committer while no helper is active. */
    unsigned *todo;
    unsigned ntodo;
    _Atomic unsigned next;
    _Atomic unsigned left;
    pthread_mutex_t pass_mu; /* covers tokens, active, pass_stop */
    pthread_cond_t pass_cv;  /* helpers: tokens to take, or stop */
    pthread_cond_t idle_cv;  /* the committer: the pass is finished */
    unsigned tokens;         /* helpers still asked to join the pass */
    unsigned active;         /* helpers inside the pass */
    bool pass_stop;
    unsigned nhelpers;
    pthread_t helpers[SYNC_HELPERS_MAX];
    bool checkpoint;         /* the pass syncs segments for a journal switch */
    pthread_mutex_t hook_mu; /* covers hook, hook_arg; held while it runs */
    void (*hook)(void *arg);
    void *hook_arg;
    /* With the journal: JOURNAL_THREADS_MAX commit threads instead of
     * `thread`. take_mu makes closing an epoch, taking its batch and a
     * checkpoint one step, so batches follow epoch order; batches are
     * then written and synced concurrently, and cmp_mu puts their
     * completions back in order (covered marks, done). Lock order:
     * take_mu, cmp_mu, a shard's mu, mu. */
    pthread_mutex_t take_mu;
    /* mu: a thread holds the turn to take the next epoch (it takes
     * take_mu, uncontended, to do so); the others wait on work_cv, nidle
     * of them, or write and sync their batches (see acquire_turn). */
    bool turn_held;
    unsigned nidle;
    /* Batches taken and not yet completed, and when the newest of them
     * was taken (CLOCK_MONOTONIC ns); written under mu, read by writers
     * without it. A new batch waits while the newest is young (see
     * acquire_turn). */
    _Atomic unsigned nflight;
    _Atomic uint64_t flight_ns;
    /* How long recent batches took to write and sync (ns): the longest,
     * decaying by an eighth per batch, so a disk whose syncs are mostly
     * fast but now and then slow counts as slow: batches then overlap
     * at once. Updated without a lock (a lost update only delays the
     * figure by a batch). */
    _Atomic uint64_t sync_slow_ns;
    pthread_mutex_t cmp_mu;
    pthread_cond_t cmp_cv; /* a batch was completed in order */
    uint64_t completed;    /* cmp_mu: the done watermark being built */
    bool jfailed;          /* cmp_mu: a batch failed; nothing is marked after,
                            * until the journal recovers */
    /* The epochs of the last failure: from the first failed batch to the
     * first after the recovery (UINT64_MAX until then); 0: none. For
     * tickets over several shards. */
    _Atomic uint64_t fail_lo, fail_hi;
    _Atomic bool recover_want; /* a batch failed: the turn's holder
                                * recovers the journal (recover) */
    /* A batch failed and its puts are not undone yet: the writes it
     * failed are answered once they are (cask_ticket_done), so that no
     * get between the error and the undo reads a failed put back. */
    _Atomic bool undo_wait;
    _Atomic uint64_t failures;   /* journal commits that failed */
    _Atomic uint64_t recoveries; /* ... after which commits resumed */
    /* Failed segment syncs (cask_commit_sync_failed), for tickets over
     * several shards: shards rewriting a segment (mu), and the epochs
     * from the oldest not done at a failure to the one open when the
     * last rewrite finished (UINT64_MAX while one runs); 0: none. Never
     * narrowed: a late ticket of an earlier window stays failed. */
    unsigned sfail_open;
    _Atomic uint64_t sfail_lo, sfail_hi;
    pthread_cond_t sfail_cv; /* mu: sfail_open fell to 0 */
    /* take_mu: a checkpoint found a rewrite running and batches go to
     * the journal file's reserve (checkpoint; logged once) */
    bool ckpt_waits;
    struct jslot *slots; /* JOURNAL_SLOTS; epoch e uses e % JOURNAL_SLOTS */
    unsigned njthreads;
    pthread_t jthreads[JOURNAL_THREADS_MAX];
    /* The early writeback thread: once a journal file is half full it
     * syncs the shards' segments in the background, so the checkpoint
     * that has to block commits finds little left to write. */
    pthread_t early_thread;
    bool early_on;
    bool early_want; /* mu */
    pthread_cond_t early_cv;
    /* Batch spacing (COMMIT_DELAY_NS), written by the turn's holder:
     * the frames per batch, a moving average in sixteenths. delay_cv
     * (mu) is only signalled at stop. */
    uint64_t frames_avg16;
    pthread_cond_t delay_cv;
    /* Where the commits' time goes (cask_commit_timing): when the first
     * write of the open epoch joined it (CLOCK_MONOTONIC ns; stored by
     * that writer, after it raised want), when the turn's holder took
     * the last batch (its own), and sums over the batches taken: the
     * first write's wait until the take, the spacing delay within it,
     * the journal write and sync. announced_ns: when the hook was last
     * called. */
    _Atomic uint64_t join_ns;
    uint64_t last_take_ns;
    _Atomic uint64_t t_batches, t_waited, t_wait_ns, t_delay_ns, t_syncs,
            t_sync_ns;
    _Atomic uint64_t announced_ns;
};

/* A batch of the journal in flight, from its take until it is completed
 * in epoch order. */
struct jslot {
    struct cask_journal_batch b;
    uint64_t *seqs;
    uint64_t epoch; /* cmp_mu */
    int state;      /* cmp_mu: SLOT_FREE, SLOT_BUSY, SLOT_DONE */
    int rc;         /* cmp_mu, once SLOT_DONE */
};

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_DONE };

/* The ticket modifications of this thread are deferred into, or NULL. */
static _Thread_local struct cask_ticket *deferred;

void
cask_defer(struct cask_ticket *t)
{
    deferred = t;
}

struct cask_ticket *
cask_deferred(void)
{
    return deferred;
}

void
cask_ticket_add(struct cask_ticket *t, uint64_t epoch, int shard, uint64_t seq)
{
    if (t->epoch == 0) {
        t->shard = shard;
    } else if (t->shard != shard) {
        t->shard = -1;
    }
    if (epoch > t->epoch) {
        t->epoch = epoch;
    }
    if (seq > t->seq) {
        t->seq = seq;
    }
}

/* Sync shards of the current pass until none is left to take. */
static void
sync_shards(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    unsigned k;

    while ((k = atomic_fetch_add(&cm->next, 1)) < cm->ntodo) {
        /* A failure latches the shard; tickets read it from there. */
        if (cm->checkpoint) {
            (void)cask_log_checkpoint(c->shards[cm->todo[k]]);
        } else {
            (void)cask_log_sync(c->shards[cm->todo[k]]);
        }
        atomic_fetch_sub(&cm->left, 1);
    }
}

static void *
helper_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;

    pthread_mutex_lock(&cm->pass_mu);
    for (;;) {
        while (cm->tokens == 0 && !cm->pass_stop) {
            pthread_cond_wait(&cm->pass_cv, &cm->pass_mu);
        }
        if (cm->tokens == 0) {
            break;
        }
        cm->tokens--;
        cm->active++;
        pthread_mutex_unlock(&cm->pass_mu);
        sync_shards(c);
        pthread_mutex_lock(&cm->pass_mu);
        if (--cm->active == 0) {
            pthread_cond_signal(&cm->idle_cv);
        }
    }
    pthread_mutex_unlock(&cm->pass_mu);
    return NULL;
}

/* Sync todo[0..ntodo) in parallel: the committer and the helpers. */
static void
run_syncs(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm->ntodo == 0) {
        return;
    }
    atomic_store(&cm->left, cm->ntodo);
    atomic_store(&cm->next, 0);
    unsigned ask = cm->ntodo - 1;
    if (ask > cm->nhelpers) {
        ask = cm->nhelpers;
    }
    if (ask > 0) {
        pthread_mutex_lock(&cm->pass_mu);
        cm->tokens = ask;
        for (unsigned i = 0; i < ask; i++) {
            pthread_cond_signal(&cm->pass_cv);
        }
        pthread_mutex_unlock(&cm->pass_mu);
    }
    sync_shards(c);
    pthread_mutex_lock(&cm->pass_mu);
    while (cm->active > 0 || atomic_load(&cm->left) > 0) {
        pthread_cond_wait(&cm->idle_cv, &cm->pass_mu);
    }
    cm->tokens = 0; /* helpers that did not wake in time sit this out */
    pthread_mutex_unlock(&cm->pass_mu);
}

/* One pass over the shards marked dirty. */
static void
run_pass(struct cask *c)
{
    struct cask_commit *cm = c->commit;

    cm->ntodo = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        if (atomic_exchange(&cm->dirty[i], 0)) {
            cm->todo[cm->ntodo++] = i;
        }
    }
    cm->checkpoint = false;
    run_syncs(c);
}

static void
latch_all(struct cask *c, const char *why)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        cask_log_latch(c->shards[i], why);
    }
}

/* Sync every shard's segments (a checkpoint pass of the sync helpers).
 * 0, or -1 when a shard's sync failed. */
static int
sync_every_shard(struct cask *c)
{
    struct cask_commit *cm = c->commit;

    cm->ntodo = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        cm->todo[cm->ntodo++] = i;
    }
    cm->checkpoint = true;
    run_syncs(c);
    cm->checkpoint = false;
    for (unsigned i = 0; i < c->nshards; i++) {
        if (cask_log_failed(c->shards[i])) {
            return -1;
        }
    }
    return 0;
}

/* Is any shard latched (read-only until a restart)? rewriting: or does
 * any refuse writes until a segment whose sync failed is rewritten
 * (cask_resync.c)? */
static bool
any_shard(struct cask *c, bool rewriting)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cask_shard *sh = c->shards[i];
        pthread_mutex_lock(&sh->mu);
        bool hit = rewriting ? sh->failed && !sh->latched : sh->latched;
        pthread_mutex_unlock(&sh->mu);
        if (hit) {
            return true;
        }
    }
    return false;
}

/* How many shards refuse writes after a failed sync (latched or not)? */
static unsigned
failed_shards(struct cask *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        n += cask_log_failed(c->shards[i]) ? 1 : 0;
    }
    return n;
}

/* Does a shard rewrite a segment whose sync failed? */
static bool
rewriting(struct cask_commit *cm)
{
    pthread_mutex_lock(&cm->mu);
    bool r = cm->sfail_open > 0;
    pthread_mutex_unlock(&cm->mu);
    return r;
}

/* Wait until no shard rewrites a segment whose sync failed, ms at most,
 * or the committer stops; true when it stops. */
static bool
wait_rewrites(struct cask_commit *cm, unsigned ms)
{
    struct timespec ts;
    cask_deadline_in(&ts, ms);
    pthread_mutex_lock(&cm->mu);
    while (!cm->stop && cm->sfail_open > 0 &&
           cask_cond_wait_until(&cm->sfail_cv, &cm->mu, &ts) != ETIMEDOUT) {
    }
    bool stop = cm->stop;
    pthread_mutex_unlock(&cm->mu);
    return stop;
}

/* A journal checkpoint, for batch b that did not fit before the current
 * file's reserve (cask_journal_take): sync every shard's segment (all of
 * them: what the journal file being retired covers may sit in any), then
 * start the next generation; the segments then cover b too (the caller
 * drops it). A segment whose sync fails is rewritten by its shard
 * (cask_resync.c); until then the file's frames, its acknowledged
 * records among them, stay needed, so the file is not replaced. Commits
 * go on meanwhile in the file's reserve: b is placed there (*placed;
 * the caller writes it as any batch), and each batch past the reserve's
 * start tries the checkpoint again once no rewrite runs. Only when the
 * reserve is full too does it wait, FULL_WAIT_MS at most; then the
 * journal is failed (EIO): b's writes and those after it are answered
 * with errors, every shard refuses writes, and the journal recovers
 * once the rewrites are done (recover). 0, or an error: every shard
 * latched (a latch), or stopping (the next open replays the
 * generation). */
static int
checkpoint(struct cask *c, struct cask_journal_batch *b, bool *placed)
{
    struct cask_commit *cm = c->commit;
    bool waited = false;
    *placed = false;
    for (;;) {
        /* While a rewrite runs the sync would fail again: no sync of
         * every shard for each batch that goes to the reserve. */
        if (!rewriting(cm)) {
            if (sync_every_shard(c) == 0) {
                break;
            }
            if (any_shard(c, false)) {
                /* The frames of the full file stay needed: it cannot be
                 * reused, so no commit can follow. */
                latch_all(c, "journal checkpoint failed (a segment sync)");
                return CASK_EFAILED;
            }
        }
        if (cask_journal_place(c->journal, b) == 0) {
            if (!cm->ckpt_waits) {
                cask_logf(c, CASK_LOG_WARN,
                          "journal checkpoint: a segment sync failed; "
                          "commits go on in the journal's reserve until its "
                          "records are rewritten");
                cm->ckpt_waits = true;
            }
            *placed = true;
            return 0;
        }
        if (waited) {
            cask_logf(c, CASK_LOG_ERROR,
                      "journal full while a segment whose sync failed is "
                      "rewritten: writes are answered with errors until "
                      "the rewrite is done");
            cask_journal_fail(c->journal);
            return EIO;
        }
        if (wait_rewrites(cm, FULL_WAIT_MS)) {
            return EIO;
        }
        waited = true;
    }
    if (cm->ckpt_waits) {
        cask_logf(c, CASK_LOG_WARN,
                  "journal checkpoint done after the rewrite; commits go "
                  "on");
        cm->ckpt_waits = false;
    }
    /* A failed switch fails the journal: the batch is answered with
     * errors and the journal recovers (recover). */
    return cask_journal_switch(c->journal);
}

/* A journal batch of epoch e failed (cmp_mu held, before done reaches
 * e): hold every shard's writes and mark what they appended since their
 * last durable point as answered with errors. */
static void
hold_all(struct cask *c, uint64_t e)
{
    struct cask_commit *cm = c->commit;
    atomic_store(&cm->undo_wait, true); /* before any ticket reads failed */
    atomic_store(&cm->fail_hi, UINT64_MAX);
    atomic_store(&cm->fail_lo, e);
    atomic_fetch_add(&cm->failures, 1);
    for (unsigned i = 0; i < c->nshards; i++) {
        cask_lost_hold(c->shards[i]);
    }
    cask_logf(c, CASK_LOG_ERROR,
              "journal commit failed: its writes are answered with errors "
              "and writes are refused until the journal recovers");
}

/* Wake blocked writers and call the commit hook: epochs up to done are
 * finished. */
static void
announce(struct cask *c, uint64_t npasses)
{
    struct cask_commit *cm = c->commit;
    atomic_fetch_add(&cm->passes, npasses);
    if (atomic_load(&cm->done_waiters) != 0) {
        pthread_mutex_lock(&cm->mu);
        pthread_cond_broadcast(&cm->done_cv);
        pthread_mutex_unlock(&cm->mu);
    }
    atomic_fetch_add(&cm->announced, 1);
    atomic_store_explicit(&cm->announced_ns, cask_clock_ns(),
                          memory_order_relaxed);
    pthread_mutex_lock(&cm->hook_mu);
    if (cm->hook != NULL) {
        cm->hook(cm->hook_arg);
    }
    pthread_mutex_unlock(&cm->hook_mu);
}

void
cask_commit_wake(struct cask *c)
{
    if (c->commit != NULL) {
        announce(c, 0);
    }
}

/* The failed puts are undone, or their shards latched: the writes the
 * failure answered with errors may be answered now. */
static void
undo_finished(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (!atomic_exchange(&cm->undo_wait, false)) {
        return;
    }
    announce(c, 0);
}

/* Slot sl's batch is written (rc 0) or failed: complete, in epoch order,
 * every batch that is now next in line. A batch's appends are marked
 * covered only when every earlier batch succeeded. */
static void
complete(struct cask *c, struct jslot *sl, int rc)
{
    struct cask_commit *cm = c->commit;
    uint64_t n = 0;

    pthread_mutex_lock(&cm->cmp_mu);
    sl->rc = rc;
    sl->state = SLOT_DONE;
    for (;;) {
        struct jslot *x = &cm->slots[(cm->completed + 1) % JOURNAL_SLOTS];
        if (x->state != SLOT_DONE || x->epoch != cm->completed + 1) {
            break;
        }
        if (x->rc != 0 && !cm->jfailed) {
            cm->jfailed = true;
            hold_all(c, x->epoch);
        }
        if (!cm->jfailed) {
            for (unsigned k = 0; k < c->nshards; k++) {
                if (x->seqs[k] != 0) {
                    cask_log_mark_covered(c->shards[k], x->seqs[k]);
                }
            }
        }
        x->state = SLOT_FREE;
        cm->completed = x->epoch;
        atomic_store(&cm->done, x->epoch);
        n++;
    }
    if (n > 0) {
        pthread_cond_broadcast(&cm->cmp_cv);
    }
    pthread_mutex_unlock(&cm->cmp_mu);
    if (n > 0) {
        announce(c, n);
    }
}

/* Block until every epoch up to e is done (the turn's holder, before a
 * checkpoint or a recovery; a writer outside any worker). */
static void
wait_done(struct cask_commit *cm, uint64_t e)
{
    pthread_mutex_lock(&cm->mu);
    atomic_fetch_add(&cm->done_waiters, 1); /* before done is read */
    while (atomic_load(&cm->done) < e) {
        pthread_cond_wait(&cm->done_cv, &cm->mu);
    }
    atomic_fetch_sub(&cm->done_waiters, 1);
    pthread_mutex_unlock(&cm->mu);
}

/* Sleep until epoch e is wanted (a writer joined it) or the committer
 * stops; true when it stops with nothing wanted. Dekker with
 * cask_commit_join: sleeping is set before want is read, want before
 * sleeping is read. */
static bool
wait_for_work(struct cask_commit *cm, uint64_t e)
{
    pthread_mutex_lock(&cm->mu);
    atomic_store(&cm->sleeping, true);
    while (atomic_load(&cm->want) < e && !cm->stop &&
           !atomic_load(&cm->recover_want)) {
        pthread_cond_wait(&cm->work_cv, &cm->mu);
    }
    atomic_store(&cm->sleeping, false);
    bool stop = atomic_load(&cm->want) < e && !atomic_load(&cm->recover_want);
    pthread_mutex_unlock(&cm->mu);
    return stop;
}

/* With take_mu held: close epoch e and take its queued frames into its
 * slot. *rc as cask_journal_take's. */
static struct jslot *
take_epoch(struct cask *c, uint64_t e, int *rc)
{
    struct cask_commit *cm = c->commit;
    /* The slot of epoch e - JOURNAL_SLOTS must be completed first. */
    struct jslot *sl = &cm->slots[e % JOURNAL_SLOTS];
    pthread_mutex_lock(&cm->cmp_mu);
    while (sl->state != SLOT_FREE) {
        pthread_cond_wait(&cm->cmp_cv, &cm->cmp_mu);
    }
    sl->epoch = e;
    sl->state = SLOT_BUSY;
    pthread_mutex_unlock(&cm->cmp_mu);
    /* Close e before taking the queue: a writer that joined e queued
     * its frame before it read the epoch (see commit_main). */
    atomic_store(&cm->epoch, e + 1);
    *rc = cask_journal_take(c->journal, &sl->b, sl->seqs);
    return sl;
}

/* One attempt, with take_mu held and no batch in flight, to resume after
 * a failed journal commit: undo the failed puts, sync every segment, start
 * the journal's next generation, take writes again. 0; CASK_EFAILED when
 * the store cannot recover (every shard latched: a restart replays the
 * journal); or an errno (try again later: the journal's, or EAGAIN while
 * a shard rewrites a segment whose sync failed, cask_resync.c). */
static int
recover_once(struct cask *c)
{
    struct cask_commit *cm = c->commit;

    if (any_shard(c, false)) {
        latch_all(c, "journal commit failed after a shard latched");
        undo_finished(c);
        return CASK_EFAILED;
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        if (cask_lost_undo(c->shards[i]) != 0) {
            latch_all(c, "failed writes could not be undone");
            undo_finished(c);
            return CASK_EFAILED;
        }
    }
    /* The undo's tombstones durable before the errors go out: the disk
     * may hold the failed batch's frames, which the next start replays,
     * and the failed puts' own pages, so a power loss after an error
     * reply would otherwise bring a failed put back. A shard rewriting a
     * segment whose sync failed made its own durable already
     * (cask_lost.c); one whose sync fails now is rewritten like any,
     * and the errors go out all the same (logged). */
    unsigned failed_before = failed_shards(c);
    if (sync_every_shard(c) != 0 && failed_shards(c) > failed_before) {
        cask_logf(c, CASK_LOG_ERROR,
                  "journal commit failed, and the tombstones that undo its "
                  "writes could not be synced: a power loss before the "
                  "rewrite may bring back writes answered with errors");
    }
    undo_finished(c);
    /* A segment whose sync failed is rewritten first: until then the
     * failed file's frames may still hold its acknowledged records. */
    if (any_shard(c, true)) {
        return EAGAIN;
    }
    /* Every segment synced: the failed file's frames are no longer
     * needed, nor are the frames still queued. */
    if (sync_every_shard(c) != 0) {
        if (any_shard(c, false)) {
            latch_all(c, "segment sync failed while recovering the journal");
            return CASK_EFAILED;
        }
        return EAGAIN; /* its rewrite, then again */
    }
    int rc = cask_journal_resume(c->journal);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&cm->cmp_mu);
    cm->jfailed = false;
    pthread_mutex_unlock(&cm->cmp_mu);
    atomic_store(&cm->fail_hi, atomic_load(&cm->epoch));
    for (unsigned i = 0; i < c->nshards; i++) {
        cask_lost_release(c->shards[i]);
    }
    atomic_fetch_add(&cm->recoveries, 1);
    cask_logf(c, CASK_LOG_WARN,
              "journal recovered from a failed commit: writes are taken "
              "again");
    return 0;
}

/* Sleep ms unless the committer stops; true when it stops. */
static bool
nap(struct cask_commit *cm, unsigned ms)
{
    struct timespec ts;
    cask_deadline_in(&ts, ms);
    pthread_mutex_lock(&cm->mu);
    while (!cm->stop &&
           cask_cond_wait_until(&cm->work_cv, &cm->mu, &ts) != ETIMEDOUT) {
    }
    bool stop = cm->stop;
    pthread_mutex_unlock(&cm->mu);
    return stop;
}

/* With take_mu held, after a batch failed: recover the journal
 * (recover_once), retrying while the journal cannot resume. */
static void
recover(struct cask *c)
{
    struct cask_commit *cm = c->commit;

    while (cask_journal_failed(c->journal)) {
        /* Writers that joined the open epoch before the hold get their
         * error now, not after the recovery. */
        uint64_t e = atomic_load(&cm->epoch);
        if (atomic_load(&cm->want) >= e) {
            int rc;
            struct jslot *sl = take_epoch(c, e, &rc);
            complete(c, sl, rc != 0 ? rc : EIO);
        }
        wait_done(cm, atomic_load(&cm->epoch) - 1);
        int rc = recover_once(c);
        if (rc == 0 || rc == CASK_EFAILED || nap(cm, RECOVER_RETRY_MS)) {
            break;
        }
    }
    atomic_store(&cm->recover_want, false);
}

/* The hand-off between the journal commit threads. One thread at a
 * time holds the turn: it closes the next epoch and takes its frames
 * (or checkpoints, or recovers), then gives the turn up and writes and
 * syncs its batch. A thread whose batch is done takes the turn itself
 * when it is free and work is wanted, without a wake-up; otherwise it
 * waits on work_cv (idle). So a commit costs its thread one sleep in
 * fdatasync and at most one as an idle thread, and no thread is ever
 * woken only to find the turn taken and sleep again (as one blocked on
 * take_mu was, when the turn's holder also waited there for work).
 *
 * No wanted epoch is left untaken: a writer raises want, then reads
 * sleeping, and signals work_cv when it is set; sleeping is set (under
 * mu) before a thread that gives up the turn, or finds it free, reads
 * want. So either that thread sees the new want (and takes the turn, or
 * wakes an idle thread to take it) or the writer sees sleeping and
 * wakes one. A thread busy writing needs no wake-up: it comes back here
 * when done. While the turn is held, sleeping may be clear: its holder
 * reads want again when it gives the turn up. A writer that sees a
 * young batch in flight wakes no one either (see acquire_turn): that
 * batch's thread lowers nflight only after it is done, then reads want
 * here, so it takes what the writer wanted (or leaves it to another
 * thread in flight, which does the same when back). */

/* Recent syncs were slow (SLOW_SYNC_NS): batches overlap as soon as
 * writes wait. */
static bool
syncs_slow(struct cask_commit *cm)
{
    return atomic_load(&cm->sync_slow_ns) >= SLOW_SYNC_NS;
}

/* Whether no batch may overlap the newest in flight yet: syncs are not
 * slow and it has not run OVERLAP_AFTER_NS. */
static bool
young(struct cask_commit *cm)
{
    if (atomic_load(&cm->nflight) == 0 || syncs_slow(cm)) {
        return false;
    }
    uint64_t start = atomic_load(&cm->flight_ns);
    uint64_t now = cask_clock_ns();
    return now < start || now - start < OVERLAP_AFTER_NS;
}

/* Wait until this thread holds the turn with work to do (want reached
 * the open epoch, or a failed batch asks for recovery). false when the
 * committer stops with nothing wanted.
 *
 * While the newest batch in flight is young (see young), wanted work
 * waits: the thread in flight takes it when it is back (it always comes
 * here, and reads want after lowering nflight), and a writer raising
 * want then wakes no one (cask_commit_join). A writer that comes once
 * the batch is old wakes an idle thread, which takes it next to the one
 * in flight. */
static bool
acquire_turn(struct cask_commit *cm)
{
    pthread_mutex_lock(&cm->mu);
    for (;;) {
        if (!cm->turn_held) {
            atomic_store(&cm->sleeping, true); /* before want is read */
        }
        bool recovering = atomic_load(&cm->recover_want);
        bool work =
                atomic_load(&cm->want) >= atomic_load(&cm->epoch) || recovering;
        if (!cm->turn_held && work && (recovering || !young(cm))) {
            cm->turn_held = true;
            atomic_store(&cm->sleeping, false);
            pthread_mutex_unlock(&cm->mu);
            return true;
        }
        if (cm->stop && !work) {
            /* The turn's holder, if any, finishes what is wanted; the
             * other idle threads see the stop too. */
            pthread_cond_broadcast(&cm->work_cv);
            pthread_mutex_unlock(&cm->mu);
            return false;
        }
        cm->nidle++;
        pthread_cond_wait(&cm->work_cv, &cm->mu);
        cm->nidle--;
    }
}

/* Give the turn up; flying: this thread goes on to write and sync the
 * batch it took, which is then the newest in flight. Wakes an idle
 * thread when work is wanted that may be taken now. */
static void
release_turn(struct cask_commit *cm, bool flying)
{
    pthread_mutex_lock(&cm->mu);
    cm->turn_held = false;
    if (flying) {
        atomic_store(&cm->flight_ns, cask_clock_ns());
        atomic_fetch_add(&cm->nflight, 1);
    }
    atomic_store(&cm->sleeping, true); /* before want is read */
    bool all = cm->stop;
    bool one =
            cm->nidle > 0 &&
            (atomic_load(&cm->recover_want) ||
             (atomic_load(&cm->want) >= atomic_load(&cm->epoch) && !young(cm)));
    pthread_mutex_unlock(&cm->mu);
    /* After the unlock: the woken thread does not block on mu at once. */
    if (all) {
        pthread_cond_broadcast(&cm->work_cv);
    } else if (one) {
        pthread_cond_signal(&cm->work_cv);
    }
}

/* With the turn held, before a batch is taken: under concurrent load,
 * wait COMMIT_DELAY_NS (see there). Only the turn's holder takes
 * batches, so the writes that come meanwhile join the epoch it is about
 * to close. */
static void
space_batches(struct cask_commit *cm)
{
    if (cm->frames_avg16 < COMMIT_SIBLINGS * 16) {
        return;
    }
    struct timespec ts;
    cask_deadline_in_ns(&ts, COMMIT_DELAY_NS);
    pthread_mutex_lock(&cm->mu);
    while (!cm->stop &&
           cask_cond_wait_until(&cm->delay_cv, &cm->mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&cm->mu);
}

/* The turn's holder took a batch of frames: note how large, and (stats)
 * how long since its first write joined (turn_ns: since the turn was
 * held). A first write's join time older than the last take is one whose
 * writer was not done storing it when that batch was taken: not a wait
 * of this batch, so it is left out. */
static void
note_take(struct cask_commit *cm, uint64_t frames, uint64_t turn_ns)
{
    cm->frames_avg16 = cm->frames_avg16 - cm->frames_avg16 / 8 + frames * 2;
    uint64_t now = cask_clock_ns();
    uint64_t join = atomic_load_explicit(&cm->join_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm->t_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm->t_delay_ns, now - turn_ns,
                              memory_order_relaxed);
    if (frames > 0 && join >= cm->last_take_ns && join <= now) {
        atomic_fetch_add_explicit(&cm->t_waited, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&cm->t_wait_ns, now - join,
                                  memory_order_relaxed);
    }
    cm->last_take_ns = now;
}

/* A journal commit thread: with the turn, close an epoch and take its
 * frames, then write and sync them while another thread takes the next
 * epoch. */
static void *
journal_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;

    while (acquire_turn(cm)) {
        uint64_t turn_ns = cask_clock_ns();
        if (!atomic_load(&cm->recover_want)) {
            space_batches(cm);
        }
        pthread_mutex_lock(&cm->take_mu);
        if (atomic_load(&cm->recover_want)) {
            recover(c);
            pthread_mutex_unlock(&cm->take_mu);
            release_turn(cm, false);
            continue;
        }
        /* Only the turn's holder moves the epoch: want still reaches it. */
        uint64_t e = atomic_load(&cm->epoch);
        bool flying = false;
        int rc;
        bool placed = false;
        struct jslot *sl = take_epoch(c, e, &rc);
        note_take(cm, sl->b.frames, turn_ns);
        bool ckpt = rc == CASK_JOURNAL_FULL;
        if (ckpt) {
            /* No batch may be in flight across a switch. */
            wait_done(cm, e - 1);
            rc = checkpoint(c, &sl->b, &placed);
        }
        if (ckpt && !placed) {
            sl->b.len = 0;
            pthread_mutex_unlock(&cm->take_mu);
            release_turn(cm, false);
        } else {
            flying = true;
            pthread_mutex_unlock(&cm->take_mu);
            release_turn(cm, true);
            if (rc == 0) {
                uint64_t t0 = cask_clock_ns();
                rc = cask_journal_write(c->journal, &sl->b);
                uint64_t d = cask_clock_ns() - t0;
                if (rc == 0) {
                    atomic_fetch_add_explicit(&cm->t_syncs, 1,
                                              memory_order_relaxed);
                    atomic_fetch_add_explicit(&cm->t_sync_ns, d,
                                              memory_order_relaxed);
                }
                uint64_t slow = atomic_load(&cm->sync_slow_ns);
                atomic_store(&cm->sync_slow_ns, d > slow ? d : slow - slow / 8);
            }
            if (rc == 0 && cask_journal_half(c->journal)) {
                pthread_mutex_lock(&cm->mu);
                cm->early_want = true;
                pthread_cond_signal(&cm->early_cv);
                pthread_mutex_unlock(&cm->mu);
            }
        }
        complete(c, sl, rc);
        if (flying) {
            /* Before this thread reads want again (acquire_turn): a
             * writer that saw this batch in flight woke no one. */
            atomic_fetch_sub(&cm->nflight, 1);
        }
        if (rc != 0) {
            /* Whoever holds the turn next recovers, a sleeper woken. */
            pthread_mutex_lock(&cm->mu);
            atomic_store(&cm->recover_want, true);
            pthread_cond_broadcast(&cm->work_cv);
            pthread_mutex_unlock(&cm->mu);
        }
    }
    return NULL;
}

/* Early writeback: sync every shard's segment when asked, outside any
 * pass. Only makes data durable sooner; a checkpoint still syncs
 * whatever came after. */
static void *
early_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;

    pthread_mutex_lock(&cm->mu);
    for (;;) {
        while (!cm->early_want && !cm->stop) {
            pthread_cond_wait(&cm->early_cv, &cm->mu);
        }
        if (cm->stop) {
            break;
        }
        cm->early_want = false;
        pthread_mutex_unlock(&cm->mu);
        for (unsigned i = 0; i < c->nshards; i++) {
            /* A failure latches the shard; the checkpoint sees it. */
            (void)cask_log_checkpoint(c->shards[i]);
        }
        pthread_mutex_lock(&cm->mu);
    }
    pthread_mutex_unlock(&cm->mu);
    return NULL;
}

/* Start the journal commit threads (instead of commit_main). */
static int
journal_start(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    cm->slots = calloc(JOURNAL_SLOTS, sizeof(*cm->slots));
    if (cm->slots == NULL) {
        return ENOMEM;
    }
    for (unsigned i = 0; i < JOURNAL_SLOTS; i++) {
        cm->slots[i].seqs = calloc(c->nshards, sizeof(uint64_t));
        if (cm->slots[i].seqs == NULL) {
            return ENOMEM;
        }
    }
    while (cm->njthreads < JOURNAL_THREADS_MAX &&
           pthread_create(&cm->jthreads[cm->njthreads], NULL, journal_main,
                          c) == 0) {
        cm->njthreads++;
    }
    /* Fewer threads only make commits slower; none is an error. */
    if (cm->njthreads == 0) {
        return EAGAIN;
    }
    cm->early_on = pthread_create(&cm->early_thread, NULL, early_main, c) == 0;
    return 0;
}

int
cask_commit_checkpoint(struct cask *c)
{
    int rc = 0;
    if (c->journal == NULL) {
        return 0;
    }
    /* Failed puts a recovery did not get to undo: undone here, so that
     * the next open does not bring them back. */
    for (unsigned i = 0; i < c->nshards && rc == 0; i++) {
        rc = cask_lost_undo(c->shards[i]);
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        int r = cask_log_checkpoint(c->shards[i]);
        if (r != 0 && rc == 0) {
            rc = r;
        }
    }
    /* after the syncs: the undo's tombstones are durable (recover_once) */
    if (c->commit != NULL) {
        atomic_store(&c->commit->undo_wait, false);
    }
    if (rc == 0) {
        rc = cask_journal_resume(c->journal);
    }
    return rc;
}

static void *
commit_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;

    for (;;) {
        uint64_t e = atomic_load(&cm->epoch);
        if (atomic_load(&cm->want) < e) {
            if (wait_for_work(cm, e)) {
                break;
            }
            continue;
        }
        /* Close epoch e before taking any dirty flag: a writer that
         * joined e marked its shard before reading the epoch, so the
         * flag is seen below; one whose flag is taken here although it
         * joined e + 1 held the shard mutex then, so the sync below,
         * which takes that mutex, covers it too. */
        atomic_store(&cm->epoch, e + 1);
        run_pass(c);
        atomic_store(&cm->done, e);
        pthread_mutex_lock(&cm->mu);
        atomic_fetch_add(&cm->passes, 1);
        pthread_cond_broadcast(&cm->done_cv);
        pthread_mutex_unlock(&cm->mu);
        atomic_fetch_add(&cm->announced, 1);
        pthread_mutex_lock(&cm->hook_mu);
        if (cm->hook != NULL) {
            cm->hook(cm->hook_arg);
        }
        pthread_mutex_unlock(&cm->hook_mu);
    }
    return NULL;
}

static void
commit_free(struct cask_commit *cm)
{
    pthread_mutex_destroy(&cm->mu);
    pthread_mutex_destroy(&cm->pass_mu);
    pthread_mutex_destroy(&cm->hook_mu);
    pthread_cond_destroy(&cm->work_cv);
    pthread_cond_destroy(&cm->done_cv);
    pthread_cond_destroy(&cm->pass_cv);
    pthread_cond_destroy(&cm->idle_cv);
    pthread_mutex_destroy(&cm->take_mu);
    pthread_mutex_destroy(&cm->cmp_mu);
    pthread_cond_destroy(&cm->cmp_cv);
    pthread_cond_destroy(&cm->early_cv);
    pthread_cond_destroy(&cm->sfail_cv);
    pthread_cond_destroy(&cm->delay_cv);
    free((void *)cm->dirty);
    free(cm->todo);
    if (cm->slots != NULL) {
        for (unsigned i = 0; i < JOURNAL_SLOTS; i++) {
            free(cm->slots[i].seqs);
            cask_journal_batch_free(&cm->slots[i].b);
        }
        free(cm->slots);
    }
    free(cm);
}

int
cask_commit_start(struct cask *c)
{
    struct cask_commit *cm = calloc(1, sizeof(*cm));
    if (cm == NULL) {
        return ENOMEM;
    }
    pthread_mutex_init(&cm->mu, NULL);
    pthread_mutex_init(&cm->pass_mu, NULL);
    pthread_mutex_init(&cm->hook_mu, NULL);
    pthread_mutex_init(&cm->take_mu, NULL);
    pthread_mutex_init(&cm->cmp_mu, NULL);
    pthread_cond_init(&cm->cmp_cv, NULL);
    pthread_cond_init(&cm->early_cv, NULL);
    pthread_cond_init(&cm->sfail_cv, NULL);
    pthread_cond_init(&cm->delay_cv, NULL);
    pthread_cond_init(&cm->work_cv, NULL);
    pthread_cond_init(&cm->done_cv, NULL);
    pthread_cond_init(&cm->pass_cv, NULL);
    pthread_cond_init(&cm->idle_cv, NULL);
    cm->dirty = calloc(c->nshards, sizeof(*cm->dirty));
    cm->todo = calloc(c->nshards, sizeof(*cm->todo));
    if (cm->dirty == NULL || cm->todo == NULL) {
        commit_free(cm);
        return ENOMEM;
    }
    atomic_store(&cm->epoch, 1);
    c->commit = cm;
    int rc = c->journal != NULL
                     ? journal_start(c)
                     : pthread_create(&cm->thread, NULL, commit_main, c);
    if (rc != 0) {
        c->commit = NULL;
        commit_free(cm);
        return rc;
    }
    unsigned want = c->nshards - 1;
    if (want > SYNC_HELPERS_MAX) {
        want = SYNC_HELPERS_MAX;
    }
    /* Fewer helpers (none, even) only make passes slower. */
    while (cm->nhelpers < want && pthread_create(&cm->helpers[cm->nhelpers],
                                                 NULL, helper_main, c) == 0) {
        cm->nhelpers++;
    }
    return 0;
}

void
cask_commit_stop(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->mu);
    cm->stop = true;
    pthread_cond_broadcast(&cm->work_cv);
    pthread_cond_broadcast(&cm->sfail_cv);
    pthread_cond_broadcast(&cm->delay_cv);
    pthread_cond_signal(&cm->early_cv);
    pthread_mutex_unlock(&cm->mu);
    if (cm->early_on) {
        pthread_join(cm->early_thread, NULL);
    }
    /* After the passes asked for. */
    if (cm->slots != NULL) {
        for (unsigned i = 0; i < cm->njthreads; i++) {
            pthread_join(cm->jthreads[i], NULL);
        }
    } else {
        pthread_join(cm->thread, NULL);
    }
    pthread_mutex_lock(&cm->pass_mu);
    cm->pass_stop = true;
    pthread_cond_broadcast(&cm->pass_cv);
    pthread_mutex_unlock(&cm->pass_mu);
    for (unsigned i = 0; i < cm->nhelpers; i++) {
        pthread_join(cm->helpers[i], NULL);
    }
    c->commit = NULL;
    commit_free(cm);
}

/* Between cask_commit_hold_kick and cask_commit_kick: a join of this
 * thread found the committer asleep and left waking it to the kick. */
static _Thread_local bool kick_held, kick_owed;

/* Wake a committer thread that sleeps (or is about to) for want to rise. */
static void
wake_committer(struct cask_commit *cm)
{
    /* The sleeper sets sleeping, reads want and waits with mu held: once
     * mu is taken here, it either waits (the signal wakes it) or will
     * read the new want. Signalled after the unlock, so the woken thread
     * does not block on mu held here. */
    pthread_mutex_lock(&cm->mu);
    pthread_mutex_unlock(&cm->mu);
    pthread_cond_signal(&cm->work_cv);
}

uint64_t
cask_commit_join(struct cask *c, unsigned shard)
{
    struct cask_commit *cm = c->commit;

    /* The flag first: see commit_main. */
    atomic_store(&cm->dirty[shard], 1);
    uint64_t e = atomic_load(&cm->epoch);
    uint64_t w = atomic_load(&cm->want);
    while (w < e && !atomic_compare_exchange_weak(&cm->want, &w, e)) {
    }
    if (w < e && c->journal != NULL) {
        /* the first write of epoch e: its batch's wait starts (stats) */
        atomic_store_explicit(&cm->join_ns, cask_clock_ns(),
                              memory_order_relaxed);
    }
    /* While a young journal batch is in flight its thread takes this
     * epoch when it is back: no wake-up (see acquire_turn). */
    if (w < e && atomic_load(&cm->sleeping) && !young(cm)) {
        if (kick_held) {
            kick_owed = true;
        } else {
            wake_committer(cm);
        }
    }
    return e;
}

void
cask_commit_hold_kick(void)
{
    kick_held = true;
}

void
cask_commit_kick(struct cask *c)
{
    kick_held = false;
    if (kick_owed) {
        kick_owed = false;
        if (c->commit != NULL) {
            wake_committer(c->commit);
        }
    }
}

/* Is a shard of t hiding a failed segment sync's puts (cask_lost_hiding)? */
static bool
ticket_hiding(struct cask *c, const struct cask_ticket *t)
{
    return (t->wseq != 0 && cask_lost_hiding(c->shards[t->wshard])) ||
           (t->shard >= 0 && cask_lost_hiding(c->shards[t->shard]));
}

int
cask_commit_finish(struct cask *c, const struct cask_ticket *t)
{
    if (t->epoch == 0) {
        return CASK_OK;
    }
    if (deferred != NULL) {
        cask_ticket_add(deferred, t->epoch, t->shard, t->seq);
        return CASK_OK;
    }
    struct cask_commit *cm = c->commit;
    int rc;
    wait_done(cm, t->epoch);
    /* Without mu (the ticket's checks may take a shard's): a write a
     * failed commit answered waits for the undo of its put, whose end
     * (undo_finished) broadcasts done_cv under mu. */
    while (!cask_ticket_done(c, t, &rc)) {
        pthread_mutex_lock(&cm->mu);
        atomic_fetch_add(&cm->done_waiters, 1); /* before undo_wait is read */
        if (atomic_load(&cm->undo_wait) || ticket_hiding(c, t)) {
            pthread_cond_wait(&cm->done_cv, &cm->mu);
        }
        atomic_fetch_sub(&cm->done_waiters, 1);
        pthread_mutex_unlock(&cm->mu);
    }
    return rc;
}

/* The error of a write a failure answered for good (cask_lost_has):
 * under the journal the store goes on by itself (CASK_EUNDONE); without
 * it only a failed segment sync records such writes (CASK_EFAILED, as
 * the shard's refusal until the rewrite). */
static int
lost_rc(const struct cask *c)
{
    return c->journal != NULL ? CASK_EUNDONE : CASK_EFAILED;
}

bool
cask_ticket_done(struct cask *c, const struct cask_ticket *t, int *rc)
{
    *rc = CASK_OK;
    if (t->wseq != 0) {
        /* A staged record: in the kernel first, then the commit. */
        int err;
        if (!cask_log_written(c->shards[t->wshard], t->wseq, t->wgen, &err)) {
            return false;
        }
        if (err != 0) {
            *rc = err;
            return true;
        }
        if (c->commit != NULL) {
            /* Its journal frame was queued when it was written: the
             * commit that covers it is the one after. */
            struct cask_shard *sh = c->shards[t->wshard];
            /* A failed commit answered it (whether or not the store
             * latched since), once its put is undone; or a latch did. */
            bool latched = __atomic_load_n(&sh->failed, __ATOMIC_ACQUIRE);
            if (cask_lost_has(sh, t->wseq)) {
                if (cask_lost_hiding(sh)) {
                    return false; /* answered once its tombstone is synced */
                }
                if (!latched && atomic_load(&c->commit->undo_wait)) {
                    return false; /* answered once its put is undone */
                }
                *rc = lost_rc(c);
                return true;
            }
            if (!cask_log_covered(sh, t->wseq)) {
                if (latched) {
                    /* latched, or rewriting a segment whose sync
                     * failed: what no commit covered by then reads as
                     * lost above, so this one is latched */
                    *rc = CASK_EFAILED;
                    return true;
                }
                return false;
            }
        }
    }
    if (t->epoch == 0 || c->commit == NULL) {
        return true;
    }
    if (atomic_load(&c->commit->done) < t->epoch) {
        return false;
    }
    if (t->shard >= 0) {
        struct cask_shard *sh = c->shards[t->shard];
        if (!cask_log_covered(sh, t->seq)) {
            /* a failed commit (the store goes on; answered once its put
             * is undone), or a latch */
            bool lost = cask_lost_has(sh, t->seq);
            if (lost && cask_lost_hiding(sh)) {
                return false; /* answered once its tombstone is synced */
            }
            if (lost && atomic_load(&c->commit->undo_wait) &&
                !__atomic_load_n(&sh->failed, __ATOMIC_ACQUIRE)) {
                return false;
            }
            *rc = lost ? lost_rc(c) : CASK_EFAILED;
        }
        return true;
    }
    /* Several shards: their append numbers are not kept, so any latched
     * shard, or a journal failure or segment sync failure since its epoch,
     * fails the ticket (an error for a write that may be durable, never
     * the reverse). */
    uint64_t slo = atomic_load(&c->commit->sfail_lo);
    if (slo != 0 && t->epoch >= slo &&
        t->epoch <= atomic_load(&c->commit->sfail_hi)) {
        *rc = c->journal != NULL ? CASK_EUNDONE : CASK_EFAILED;
        return true;
    }
    uint64_t flo = atomic_load(&c->commit->fail_lo);
    if (flo != 0 && t->epoch >= flo &&
        t->epoch <= atomic_load(&c->commit->fail_hi)) {
        if (atomic_load(&c->commit->undo_wait)) {
            return false; /* answered once the puts are undone */
        }
        *rc = CASK_EUNDONE;
        return true;
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        if (cask_log_failed(c->shards[i])) {
            *rc = CASK_EFAILED;
            break;
        }
    }
    return true;
}

void
cask_commit_hook(struct cask *c, void (*fn)(void *arg), void *arg)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->hook_mu);
    cm->hook = fn;
    cm->hook_arg = arg;
    pthread_mutex_unlock(&cm->hook_mu);
}

void
cask_commit_sync_failed(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->mu);
    if (cm->sfail_open++ == 0) {
        uint64_t lo = atomic_load(&cm->done) + 1;
        uint64_t old = atomic_load(&cm->sfail_lo);
        atomic_store(&cm->sfail_hi, UINT64_MAX);
        if (old == 0 || lo < old) {
            atomic_store(&cm->sfail_lo, lo);
        }
    }
    pthread_mutex_unlock(&cm->mu);
}

void
cask_commit_sync_recovered(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->mu);
    if (cm->sfail_open > 0 && --cm->sfail_open == 0) {
        /* Appends from now on were taken after the rewrite. */
        atomic_store(&cm->sfail_hi, atomic_load(&cm->epoch));
        pthread_cond_broadcast(&cm->sfail_cv); /* a waiting checkpoint */
    }
    pthread_mutex_unlock(&cm->mu);
}

void
cask_commit_failures(const struct cask *c, uint64_t *failures,
                     uint64_t *recoveries)
{
    struct cask_commit *cm = c->commit;
    *failures = cm ? atomic_load(&cm->failures) : 0;
    *recoveries = cm ? atomic_load(&cm->recoveries) : 0;
}

uint64_t
cask_commit_done(const struct cask *c)
{
    struct cask_commit *cm = c->commit;
    return cm ? atomic_load(&cm->done) : 0;
}

uint64_t
cask_commit_announced(const struct cask *c)
{
    struct cask_commit *cm = c->commit;
    return cm ? atomic_load(&cm->announced) : 0;
}

uint64_t
cask_commit_announced_ns(const struct cask *c)
{
    struct cask_commit *cm = c->commit;
    return cm ? atomic_load_explicit(&cm->announced_ns, memory_order_relaxed)
              : 0;
}

/* sum / n in us, 0 when n is 0 */
static double
mean_us(const _Atomic uint64_t *sum_ns, const _Atomic uint64_t *n)
{
    uint64_t k = atomic_load_explicit(n, memory_order_relaxed);
    uint64_t s = atomic_load_explicit(sum_ns, memory_order_relaxed);
    return k > 0 ? (double)s / (double)k / 1e3 : 0.0;
}

void
cask_commit_timing(const struct cask *c, double *wait_us, double *delay_us,
                   double *sync_us)
{
    struct cask_commit *cm = c->commit;
    *wait_us = *delay_us = *sync_us = 0;
    if (cm == NULL) {
        return;
    }
    *wait_us = mean_us(&cm->t_wait_ns, &cm->t_waited);
    *delay_us = mean_us(&cm->t_delay_ns, &cm->t_batches);
    *sync_us = mean_us(&cm->t_sync_ns, &cm->t_syncs);
}

uint64_t
cask_commit_passes(const struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return 0;
    }
    return atomic_load(&cm->passes);
}
