/* cask_batch.c - write batching per thread: whether a record may be
 * staged, and the shards a server thread staged records into during one
 * pass of its event loop, which the store then writes out (one pwrite per
 * shard, cask_batch_flush in cask.c) before the thread polls again. The
 * records themselves wait in the active segment's append buffer
 * (cask_log.c); the thread's deferred ticket (cask_commit.c) says which
 * append must reach the kernel before the reply may go out.
 *
 * All state here is the calling thread's own: no locks. Called by the log
 * (with a shard's mutex held) and the store; calls nothing but the
 * commit's deferred ticket.
 */
#include "storage/cask_batch.h"

#include "storage/cask.h"
#include "storage/cask_commit.h"
#include "storage/cask_shard.h"

static _Thread_local struct cask_shard *batch_sh[CASK_BATCH_SHARDS];
static _Thread_local unsigned batch_n;
static _Thread_local unsigned batch_recs;
static _Thread_local uint64_t batch_epoch; /* of the last flush; 0: unknown */

uint64_t
cask_batch_epoch(void)
{
    return batch_epoch;
}

void
cask_batch_set_epoch(uint64_t epoch)
{
    batch_epoch = epoch;
}

unsigned
cask_batch_pending(void)
{
    return batch_recs;
}

bool
cask_batch_stage(struct cask_shard *sh, size_t len)
{
    struct cask_ticket *t = cask_deferred();
    if (t == NULL || !t->batch || len > CASK_BATCH_REC_MAX) {
        return false;
    }
    if (t->wseq != 0 && t->wshard != (int)sh->idx) {
        /* One request, two shards: the ticket keeps one append number. */
        return false;
    }
    for (unsigned i = 0; i < batch_n; i++) {
        if (batch_sh[i] == sh) {
            return true;
        }
    }
    if (batch_n == CASK_BATCH_SHARDS) {
        return false;
    }
    batch_sh[batch_n++] = sh;
    return true;
}

void
cask_batch_staged(struct cask_shard *sh)
{
    struct cask_ticket *t = cask_deferred();
    t->wshard = (int)sh->idx;
    t->wseq = sh->app_seq;
    t->wgen = sh->wfail_n; /* mu held: no failed write runs meanwhile */
    batch_recs++;
}

unsigned
cask_batch_take(struct cask_shard **out)
{
    unsigned n = batch_n;
    for (unsigned i = 0; i < n; i++) {
        out[i] = batch_sh[i];
    }
    batch_n = 0;
    batch_recs = 0;
    return n;
}
