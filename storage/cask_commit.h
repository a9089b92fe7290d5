/* cask_commit.h - the store's committer under CASK_SYNC_ALWAYS: one thread
 * that makes every shard's pending appends durable in one pass and then
 * tells the waiting writers. Private to storage/.
 *
 * Commit order is counted in epochs. A writer that appended under a shard's
 * mutex joins the epoch open at that moment (cask_commit_join); the
 * committer closes an epoch (new appends join the next one) before it takes
 * any shard's mutex, then syncs each shard up to its newest append. So an
 * append that joined epoch E is covered once pass E is done.
 */
#ifndef BITCACHED_CASK_COMMIT_H
#define BITCACHED_CASK_COMMIT_H

#include <stdint.h>

#include "storage/cask.h"
#include "storage/cask_internal.h"

/* Start the committer thread (CASK_SYNC_ALWAYS only). 0 or an errno. */
int cask_commit_start(struct cask *c);

/* Finish the passes asked for, stop and free the committer. Safe when it
 * was never started. */
void cask_commit_stop(struct cask *c);

/* Called with shard's mutex held, right after an append to it: the epoch
 * whose pass will cover it, and the committer is asked to run that pass.
 * Takes no lock unless the committer sleeps. */
uint64_t cask_commit_join(struct cask *c, unsigned shard);

/* Until cask_commit_kick, the joins of this thread wake no committer
 * thread: a write of several shards' records (cask_batch_flush) wakes it
 * once, after the last of them, so that one commit takes them all (a
 * committer woken by the first would take that shard's frames alone,
 * and on a busy machine preempt the writer to do so). */
void cask_commit_hold_kick(void);

/* Wake the committer if a join since cask_commit_hold_kick asked to. */
void cask_commit_kick(struct cask *c);

/* After an operation released its shard's mutex: nothing to do when t has
 * no epoch; hand t to the thread's deferred ticket (cask_defer) when there
 * is one; else block until t's pass is done and return its outcome
 * (CASK_OK or CASK_EFAILED). */
int cask_commit_finish(struct cask *c, const struct cask_ticket *t);

/* The ticket this thread defers its waits into (cask_defer), or NULL. */
struct cask_ticket *cask_deferred(void);

/* Fold what one write needs into t: the epoch that covers it, the shard it
 * went to and that shard's append number. */
void cask_ticket_add(struct cask_ticket *t, uint64_t epoch, int shard,
                     uint64_t seq);

/* With the journal, once the committer is stopped: undo failed puts a
 * recovery did not get to, sync every shard's segment and start a new
 * journal generation, so that the next open has nothing to replay. 0
 * (also without a journal) or an error. */
int cask_commit_checkpoint(struct cask *c);

/* Wake blocked writers and parked connections (the commit hook): a
 * ticket held back by cask_lost_hiding may be answered now. Any lock but
 * the committer's own may be held. */
void cask_commit_wake(struct cask *c);

/* A shard's segment fdatasync failed (its mutex held; it refuses writes
 * until cask_commit_sync_recovered): a ticket over several shards of an
 * epoch from the oldest one not done until that recovery is answered
 * with an error, since it does not tell which of its appends the failure
 * undid. */
void cask_commit_sync_failed(struct cask *c);

/* The shard's rewrite is done and it takes writes again (its mutex
 * held). */
void cask_commit_sync_recovered(struct cask *c);

/* Journal commits that failed (their writes answered with errors), and
 * recoveries after which commits resumed (stats). */
void cask_commit_failures(const struct cask *c, uint64_t *failures,
                          uint64_t *recoveries);

/* Where journal commits' time went (stats; see struct cask_stats), means
 * in us over the batches taken so far: the wait of each one's first write
 * until the take, the spacing delay within it, the write and sync. */
void cask_commit_timing(const struct cask *c, double *wait_us, double *delay_us,
                        double *sync_us);

/* Commit passes run so far (stats). */
uint64_t cask_commit_passes(const struct cask *c);

#endif
