/* cask_resync.c - recovery from a failed segment fdatasync without a
 * restart. After a failed fdatasync the kernel may have dropped the
 * segment's dirty pages (or marked them clean without writing them), so
 * what the file holds on disk is unknown and a second fdatasync proves
 * nothing. The shard refuses writes, stops appending to that segment and
 * queues it; the maintenance thread then rewrites the records of it still
 * needed, as they read back checksum-verified, into new segments, syncs
 * them and retires the failed one through the manifest and the retired
 * file, exactly like a compaction (cask_shard_resync in cask_compact.c,
 * which owns that run). Once the queue is empty the shard takes writes
 * again.
 *
 * Owns the queue and its back-off (fields of struct cask_shard, under
 * its mu); calls the segment table, the manifest and the log's buffer
 * accounting. A segment found shorter than what was written to it
 * (truncated by another process: appends then land past its end, behind
 * a hole, and the records cut off are gone) is queued for the same
 * rewrite, once a second at most (an fstat per segment), without
 * refusing writes: what still reads back is kept, the keys of what was
 * cut off miss from then on and never show an older value.
 * Under the commit journal the same rewrite runs; the journal's
 * generation holding the failed segment's acknowledged records is kept
 * until it is done (the committer retries its checkpoint, cask_commit.c),
 * and the appends its commits had not covered yet are answered with
 * errors and undone (cask_lost_fail_active); so are, under always without
 * the journal, the appends no segment sync had covered. cask_log_latch
 * still latches until a restart.
 */
#define _GNU_SOURCE /* SEEK_HOLE */
#include "storage/cask_resync.h"

#include "storage/cask_commit.h"
#include "storage/cask_log.h"
#include "storage/cask_lost.h"
#include "storage/cask_manifest.h"
#include "storage/cask_segtab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Back-off between attempts that keep failing (the disk still refuses
 * syncs): 1 s, doubling up to this. */
#define RESYNC_BACKOFF_MAX_MS 60000u

/* How often closed segments are checked for a cut (the active one: at
 * every maintenance pass, once a second). */
#define CUT_CHECK_ALL_MS 10000u

bool
cask_resync_queued(const struct cask_shard *sh, uint32_t id)
{
    for (size_t i = 0; i < sh->nresync; i++) {
        if (sh->resync_ids[i] == id) {
            return true;
        }
    }
    return false;
}

static void
latch(struct cask_shard *sh)
{
    sh->latched = true;
    __atomic_store_n(&sh->failed, true, __ATOMIC_RELEASE);
}

void
cask_resync_add(struct cask_shard *sh, uint32_t id)
{
    if (cask_resync_queued(sh, id)) {
        return;
    }
    if (sh->nresync == sh->resync_cap) {
        size_t nc = sh->resync_cap ? 2 * sh->resync_cap : 4;
        uint32_t *n = realloc(sh->resync_ids, nc * sizeof(*n));
        if (n == NULL) {
            latch(sh);
            cask_logf(sh->store, CASK_LOG_ERROR,
                      "shard %u: no memory to queue segment %08x for a "
                      "rewrite; shard is now read-only until a restart",
                      sh->idx, id);
            return;
        }
        sh->resync_ids = n;
        sh->resync_cap = nc;
    }
    sh->resync_ids[sh->nresync++] = id;
}

void
cask_resync_note(struct cask_shard *sh, uint32_t id, int err, const char *what)
{
    struct cask *c = sh->store;
    sh->sync_failures++;
    if (sh->latched) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: %s seg %08x: %s; shard is read-only", sh->idx,
                  what, id, strerror(err));
        return;
    }
    bool was = sh->failed;
    if (c->commit != NULL && sh->active != NULL && sh->active->id == id) {
        /* Its appends not yet covered by a journal commit (or, without
         * the journal, by a segment sync) may be among the dropped pages
         * (and a checkpoint's batch is in no journal file): answered with
         * errors for good, whatever the rewrite later reads back, and
         * their puts undone in memory. What was acknowledged stays in the
         * journal's current generation, which is not replaced until the
         * rewrite is done (cask_commit.c), or was in a synced segment.
         * Staged records first, while the shard still writes. */
        (void)cask_log_write_out(sh);
        if (!sh->latched && cask_lost_fail_active(sh) != 0) {
            latch(sh);
        }
        if (sh->latched) {
            cask_commit_wake(c); /* tickets cask_lost_hiding held back */
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: %s seg %08x: %s, and its failed writes "
                      "could not be undone; shard is now read-only",
                      sh->idx, what, id, strerror(err));
            return;
        }
    }
    __atomic_store_n(&sh->failed, true, __ATOMIC_RELEASE);
    /* tickets cask_lost_hiding held back; those of other appends now read
     * the refusal */
    cask_commit_wake(c);
    cask_resync_add(sh, id);
    if (sh->latched) {
        return;
    }
    if (!was && c->commit != NULL) {
        cask_commit_sync_failed(c);
    }
    sh->resync_tries = 0;
    sh->resync_after_ms = 0;
    cask_logf(c, CASK_LOG_ERROR,
              "shard %u: %s seg %08x: %s; writes refused until its records "
              "are rewritten to a new segment",
              sh->idx, what, id, strerror(err));
    pthread_cond_broadcast(&sh->sync_cv);
}

int
cask_resync_roll(struct cask_shard *sh)
{
    while (sh->rolling || (sh->active != NULL && sh->active->extending)) {
        pthread_cond_wait(&sh->sync_cv, &sh->mu);
    }
    struct cask_segment *old = sh->active, *n = NULL;
    if (old == NULL || !cask_resync_queued(sh, old->id)) {
        return 0;
    }
    if (!sh->failed) {
        /* Only cut short: its sync is as good as any, and writes go on. */
        return cask_log_roll(sh);
    }
    int rc = cask_log_write_out(sh); /* nothing staged once failed */
    if (rc != 0) {
        return rc;
    }
    rc = cask_segtab_new_segment(sh, 0, false, &n);
    if (rc != 0) {
        return rc;
    }
    /* A latched shard wrote nothing of its staged records: the buffer
     * holds none. Its disk reserve goes with the file. */
    cask_seg_make_closed(old);
    sh->active = n;
    cask_log_buf_account(sh);
    if (cask_manifest_note(sh->manifest, &n->id, 1) != 0) {
        cask_logf(sh->store, CASK_LOG_WARN,
                  "shard %u: no memory to list segment %08x in the "
                  "manifest; its loss would go unnoticed",
                  sh->idx, n->id);
    }
    return 0;
}

void
cask_resync_done(struct cask_shard *sh, const uint32_t *ids, size_t n, bool ok)
{
    if (!ok) {
        unsigned t = sh->resync_tries < 6 ? sh->resync_tries : 6;
        uint64_t wait = (uint64_t)1000u << t;
        if (wait > RESYNC_BACKOFF_MAX_MS) {
            wait = RESYNC_BACKOFF_MAX_MS;
        }
        sh->resync_tries++;
        sh->resync_after_ms = cask_clock_ms() + wait;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sh->nresync; j++) {
            if (sh->resync_ids[j] == ids[i]) {
                sh->resync_ids[j] = sh->resync_ids[--sh->nresync];
                break;
            }
        }
    }
    if (sh->nresync != 0 || sh->latched) {
        return;
    }
    sh->resync_tries = 0;
    if (!sh->failed) {
        return; /* cut segments only: writes went on */
    }
    sh->sync_recoveries++;
    __atomic_store_n(&sh->failed, false, __ATOMIC_RELEASE);
    if (sh->store->commit != NULL) {
        cask_commit_sync_recovered(sh->store);
    }
    pthread_cond_broadcast(&sh->sync_cv);
    cask_logf(sh->store, CASK_LOG_WARN,
              "shard %u: the records of the segments whose sync failed are "
              "rewritten and synced; writes are taken again",
              sh->idx);
}

/* One segment as the size check sees it (maint_mu held: no segment is
 * retired meanwhile). */
struct seen {
    struct cask_segment *s;
    int fd;
    uint64_t written;
};

/* Queue the segments whose file is shorter than what was written to it.
 * With maint_mu held (segments leave only under it), mu taken briefly. */
static void
find_cut(struct cask_shard *sh)
{
    uint64_t now = cask_clock_ms();
    pthread_mutex_lock(&sh->mu);
    /* The active segment at every pass, the closed ones (which nothing of
     * ours resizes) every CUT_CHECK_ALL_MS: two system calls a segment. */
    bool all = now - sh->cut_all_ms >= CUT_CHECK_ALL_MS;
    if (all) {
        sh->cut_all_ms = now;
    }
    size_t n = 0;
    struct seen *v = malloc((sh->nslots ? sh->nslots : 1) * sizeof(*v));
    for (uint32_t i = 0; v != NULL && i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && (all || s == sh->active) && !s->is_output &&
            !s->retired && !cask_resync_queued(sh, s->id)) {
            v[n++] = (struct seen){.s = s, .fd = s->fd, .written = s->flushed};
        }
    }
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < n; i++) {
        /* Only ever grows while we look (appends, a reserve given back
         * to the size): smaller than written before is a cut. A cut
         * followed by an append is seen as a hole below what was written
         * (appends leave none), where the file system tells holes and
         * the cut spans a block. */
        struct stat st;
        if (fstat(v[i].fd, &st) != 0) {
            continue;
        }
        if ((uint64_t)st.st_size >= v[i].written) {
            off_t hole = lseek(v[i].fd, 0, SEEK_HOLE);
            if (hole < 0 || (uint64_t)hole >= v[i].written) {
                continue;
            }
            st.st_size = hole;
        }
        pthread_mutex_lock(&sh->mu);
        struct cask_segment *s = v[i].s;
        if (!sh->latched && !cask_resync_queued(sh, s->id)) {
            sh->segments_cut++;
            s->damaged = true; /* no compaction or eviction picks it */
            cask_resync_add(sh, s->id);
            sh->resync_after_ms = 0;
            cask_logf(sh->store, CASK_LOG_ERROR,
                      "shard %u: segment %08x is %" PRIu64
                      " bytes (up to a hole), shorter than the %" PRIu64
                      " written to it (cut short by another process): "
                      "what still reads back is rewritten to a new "
                      "segment, the records cut off are lost",
                      sh->idx, s->id, (uint64_t)st.st_size, v[i].written);
        }
        pthread_mutex_unlock(&sh->mu);
    }
    free(v);
}

void
cask_resync_maint(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->maint_mu);
    find_cut(sh);
    pthread_mutex_unlock(&sh->maint_mu);
    pthread_mutex_lock(&sh->mu);
    bool due = sh->nresync > 0 && !sh->latched &&
               cask_clock_ms() >= sh->resync_after_ms;
    pthread_mutex_unlock(&sh->mu);
    if (due) {
        (void)cask_shard_resync(sh);
    }
}
