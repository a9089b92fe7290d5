/* cask_log.c - a shard's log: appends to the active segment (one pwrite
 * per record, or per batch of records staged in the segment's append buffer
 * by a thread's write batch, cask_batch.c, or a copy of a small one into
 * the segment's mapping, map_active; always before any
 * acknowledgement), roll-over to a new segment, the
 * disk reserve that keeps deletes working on a full disk, and the waits for
 * durability (a shard's own fdatasync, or joining the store's commit under
 * CASK_SYNC_ALWAYS). A thread that parks its writes (cask_park) is told
 * CASK_EBLOCKED where a roll-over would make it wait.
 *
 * Works on the struct cask_shard it is handed, under its mutex (see each
 * function); calls into segments, records, the commit's tickets
 * (cask_commit.c) and the replication tail (cask_stream_note), and reads
 * nothing of the store but its options and log sink.
 */
#include "storage/cask_log.h"

#include "storage/cask_batch.h"
#include "storage/cask_commit.h"
#include "storage/cask_evict.h"
#include "storage/cask_hint.h"
#include "storage/cask_io.h"
#include "storage/cask_journal.h"
#include "storage/cask_lost.h"
#include "storage/cask_manifest.h"
#include "storage/cask_record.h"
#include "storage/cask_resync.h"
#include "storage/cask_segtab.h"
#include "storage/cask_stream.h"
#include "storage/cask_verify.h"
#include "storage/cask_vwrite.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Records up to this size are encoded in the shard's reusable scratch
 * buffer; larger ones in a buffer of their own. */
#define SCRATCH_MAX (64u * 1024)

/* Disk kept reserved in the active segment for deletes on a full disk, and
 * the step in which the reservation grows: segment_size / 4 and / 2 within
 * these bounds (a few hundred tombstones at least; no more than a small
 * segment holds). */
#define RESERVE_MIN (16u * 1024)
#define RESERVE_MAX (256u * 1024)
#define CHUNK_MIN   (16u * 1024)
#define CHUNK_MAX   (1024u * 1024)

/* The active segment's append buffer, where a batch stages its records
 * (allocated at the first one; a roll-over frees it). Under a memory
 * limit it is counted in it (cask_log_buf_account) and takes at most
 * 1/STAGE_SHARE of the shard's share, down to STAGE_MIN (records that do
 * not fit are written through). */
#define STAGE_BUF   (128u * 1024)
#define STAGE_MIN   (4u * 1024)
#define STAGE_SHARE 16u

static size_t
stage_cap(const struct cask_shard *sh)
{
    const struct cask *c = sh->store;
    if (c->opt.mem_limit == 0) {
        return STAGE_BUF;
    }
    uint64_t cap = c->opt.mem_limit / c->nshards / STAGE_SHARE;
    return cap < STAGE_MIN ? STAGE_MIN : cap > STAGE_BUF ? STAGE_BUF : cap;
}

void
cask_log_buf_account(struct cask_shard *sh)
{
    const struct cask_segment *s = sh->active;
    size_t now = s != NULL && s->buf != NULL ? s->buf_cap : 0;
    if (now != sh->buf_counted) {
        /* modulo 2^64: a smaller buffer subtracts */
        atomic_fetch_add(&sh->store->buf_bytes,
                         (uint64_t)now - (uint64_t)sh->buf_counted);
        sh->buf_counted = now;
    }
}

/* sh->synced_seq is read and raised with __atomic builtins (it is a
 * plain field of struct cask_shard): the journal's commit threads raise
 * it and tickets read it without mu. */
static uint64_t
synced(const struct cask_shard *sh)
{
    return __atomic_load_n(&sh->synced_seq, __ATOMIC_ACQUIRE);
}

/* Raise sh->synced_seq to v (never lowers it). Returns by how much it
 * rose. */
static uint64_t
raise_synced(struct cask_shard *sh, uint64_t v)
{
    uint64_t cur = synced(sh);
    while (cur < v &&
           !__atomic_compare_exchange_n(&sh->synced_seq, &cur, v, true,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    return cur < v ? v - cur : 0;
}

static uint64_t
clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The reserve a put leaves past its record, and the step it grows in. */
static uint64_t
reserve_keep(const struct cask *c)
{
    return clamp_u64(c->opt.segment_size / 4, RESERVE_MIN, RESERVE_MAX);
}

static uint64_t
reserve_chunk(const struct cask *c)
{
    return clamp_u64(c->opt.segment_size / 2, CHUNK_MIN, CHUNK_MAX);
}

/* Where a record of len bytes appended to s needs the reserve to reach. */
static uint64_t
reserve_need(const struct cask *c, const struct cask_segment *s, size_t len,
             bool tomb)
{
    return s->size + len + (tomb ? 0 : reserve_keep(c));
}

/* Under CASK_SYNC_ALWAYS, with mu held, right after append number
 * app_seq went to offset at of the active segment: remember where
 * (cask_lost.c finds there the appends a failed segment sync leaves
 * uncovered, and those of a failed journal commit). */
static void
note_off(struct cask_shard *sh, uint64_t at)
{
    if (sh->store->opt.sync != CASK_SYNC_ALWAYS) {
        return;
    }
    if (sh->app_off == NULL) {
        sh->app_off = calloc(CASK_APPEND_OFFS, sizeof(*sh->app_off));
        if (sh->app_off == NULL) {
            return; /* such a failure then latches the shard instead */
        }
        sh->app_off_from = sh->app_seq;
    }
    sh->app_off[sh->app_seq % CASK_APPEND_OFFS] = (uint32_t)at;
}

/* Give back the blocks reserved past the end of a segment that takes no
 * more appends (truncating to the current size frees them). */
void
cask_log_release_reserve(struct cask_segment *s)
{
    if (s->prealloc_end > s->size) {
        (void)cask_io_ftruncate(s->fd, (off_t)s->size);
        cask_seg_trimmed(s, s->size);
    }
}

static void map_faulted(struct cask_shard *sh, struct cask_segment *s,
                        bool found);

/* Closed segments of a shard that may wait for the sync thread at once
 * (interval and never; see unsynced_room). A roll-over past it waits for
 * the sync thread to take one, or, when the writer's thread parks its
 * writes (cask_park), returns CASK_EBLOCKED instead (roll_waits). */
#define CASK_UNSYNCED_MAX 4u

/* Under interval and never a roll-over leaves the closed segment's
 * fdatasync to the sync thread, and with it the ftruncates that cut the
 * file back to its records and give back its disk reserve (each can wait
 * on ext4 for a sync in progress): the worker whose append filled it would
 * otherwise wait for them with every other connection it serves
 * (milliseconds per roll-over). Every earlier append is already in the
 * kernel, so a process crash loses nothing; the sync thread's next pass
 * syncs every closed segment before the active one (cask_log_sync), so a
 * power loss loses no more than the sync interval says. Until then the
 * segment gets no hint and is no input of a compaction or an eviction
 * (they sync it first).
 *
 * Under always with the journal the same holds once every append in the
 * closed segment is covered by a commit (durable in the journal, whose
 * generation a checkpoint replaces only after cask_log_checkpoint synced
 * every closed segment): what cask_lost.c undoes after a failed commit
 * or segment sync, every append not yet covered, then lies in the active
 * segment as it assumes. A roll-over that finds appends not covered yet
 * (several writers, or pipelined ones) syncs the segment itself as
 * before, and so does one without the journal (its commits are segment
 * syncs, which a failed sync of a closed one would fail without undoing
 * anything). The next segment is created durably under always either
 * way: a journal replay writes records only into a segment that exists.
 *
 * With mu held: room for one more entry in sh->unsynced. False without
 * memory: the roll-over then syncs the segment itself. */
static bool
unsynced_room(struct cask_shard *sh)
{
    if (sh->nunsynced < sh->unsynced_cap) {
        return true;
    }
    size_t ncap = sh->unsynced_cap ? 2 * sh->unsynced_cap : 8;
    struct cask_segment **n = realloc(sh->unsynced, ncap * sizeof(*n));
    if (n == NULL) {
        return false;
    }
    sh->unsynced = n;
    sh->unsynced_cap = ncap;
    return true;
}

/* With mu held: is segment id in service? */
static bool
in_service(const struct cask_shard *sh, uint32_t id)
{
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL && sh->segs[i]->id == id &&
            !sh->segs[i]->retired) {
            return true;
        }
    }
    return false;
}

/* With mu held, no sync running and a closed segment waiting for its
 * sync: take the oldest and, with mu released (sh->syncing set
 * meanwhile), do what its roll-over left undone on the file: cut it back
 * to its records when it was extended ahead of them for its mapping (so
 * that the sync makes that length durable and its hint covers the whole
 * file), fdatasync it, and give back the blocks reserved past its end.
 * The cut and the reserve's ftruncate wait on ext4 for a sync of the file
 * system in progress (milliseconds): here they hold up no worker. A
 * failure of the cut or the sync is what a failed roll-over sync was: the
 * records of it still needed are rewritten to a new segment and writes
 * are refused until then (cask_resync_note); the segment stays
 * sync_pending, so it gets no hint and no compaction takes it. */
static void
sync_closed_one(struct cask_shard *sh)
{
    struct cask_segment *s = sh->unsynced[0];
    sh->nunsynced--;
    memmove(sh->unsynced, sh->unsynced + 1,
            sh->nunsynced * sizeof(*sh->unsynced));
    sh->syncing = true;
    if (sh->nunsynced + 1 >= CASK_UNSYNCED_MAX) {
        cask_unblocked(sh->store); /* a parked roll-over may go on */
    }
    bool gone = s->retired; /* wiped or rewritten away: nothing to keep */
    /* Read with mu held: a closed segment's size no longer changes. */
    uint64_t end = s->size;
    bool cut = !gone && s->ext_end > end;
    bool give = !gone && s->prealloc_end > end;
    if (cut || give) {
        cask_verify_write_begin(s);
    }
    pthread_mutex_unlock(&sh->mu);
    int rc = 0, drc = 0;
    bool trimmed = false;
    const char *what = "roll-over: fdatasync";
    if (cut) {
        rc = cask_seg_trim(s, end);
        trimmed = rc == 0;
        if (rc != 0) {
            what = "roll-over: cut back to its records";
        }
    }
    if (!gone && rc == 0) {
        rc = cask_io_fdatasync(s->fd);
        /* and the name of the segment that replaced it (under always the
         * roll-over made that one durably) */
        if (sh->store->opt.sync != CASK_SYNC_ALWAYS) {
            drc = cask_fsync_dir(sh->dir);
        }
    }
    if (rc == 0 && give && !trimmed) {
        /* Only blocks past the end: its size and records stay. */
        trimmed = cask_seg_trim(s, end) == 0;
    }
    pthread_mutex_lock(&sh->mu);
    if (cut || give) {
        cask_verify_write_end(s);
    }
    if (trimmed) {
        cask_seg_trimmed(s, end);
    }
    sh->syncing = false;
    if (!gone) {
        sh->syncs++;
    }
    if (rc == 0) {
        s->sync_pending = false;
    } else if (!s->retired) {
        cask_resync_note(sh, s->id, rc, what);
    }
    if (drc != 0 && !s->retired && in_service(sh, s->succ_id)) {
        /* Its successor may be gone after a power loss, records and all:
         * rewritten to a segment made durably, like a failed sync. */
        cask_resync_note(sh, s->succ_id, drc,
                         "roll-over: fsync of the directory, segment");
    }
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
    pthread_cond_broadcast(&sh->sync_cv);
}

/* With mu held (released while syncing): return once no closed segment
 * waits for its sync, nor is in one. */
static void
sync_rolled(struct cask_shard *sh)
{
    while (sh->nunsynced > 0 || sh->syncing) {
        if (sh->syncing) {
            pthread_cond_wait(&sh->sync_cv, &sh->mu);
            continue;
        }
        sync_closed_one(sh);
    }
}

void
cask_log_sync_rolled(struct cask_shard *sh)
{
    sync_rolled(sh);
}

void
cask_log_sync_closed(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    sync_rolled(sh);
    pthread_mutex_unlock(&sh->mu);
}

void
cask_log_forget_rolled(struct cask_shard *sh)
{
    for (size_t i = 0; i < sh->nunsynced; i++) {
        struct cask_segment *s = sh->unsynced[i];
        s->sync_pending = false;
        if (--s->readers == 0 && s->retired) {
            cask_seg_close(&s);
        }
    }
    if (sh->nunsynced > 0) {
        sh->nunsynced = 0;
        cask_unblocked(sh->store); /* a parked roll-over may go on */
    }
}

void
cask_log_reserve_fresh(const struct cask *c, struct cask_segment *s)
{
    uint64_t want = reserve_need(c, s, 0, false) + reserve_chunk(c);
    if (want > s->prealloc_end &&
        cask_io_fallocate(s->fd, (off_t)s->prealloc_end,
                          (off_t)(want - s->prealloc_end)) == 0) {
        s->prealloc_end = want;
    }
}

int
cask_log_roll(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    struct cask_segment *old = sh->active, *n = NULL;
    /* Under always without the journal a sync in flight decides the fate
     * of the writes it covers: when it fails, this roll-over's own sync
     * of the same file could report success over the pages the kernel
     * dropped, and answer those writes. Wait for it. */
    bool commit = c->commit != NULL && c->journal == NULL;
    /* At most CASK_UNSYNCED_MAX closed segments wait for the sync thread:
     * past that the writer waits for them, so that a disk slower than the
     * writes slows the writes (as when every roll-over synced on the
     * worker) instead of letting the unsynced data, and the files held
     * open for it, grow without bound. Only until one is taken: waiting
     * for all of them would hold the worker for several syncs at once. */
    while (sh->nunsynced >= CASK_UNSYNCED_MAX) {
        if (sh->syncing) {
            pthread_cond_wait(&sh->sync_cv, &sh->mu);
            continue;
        }
        sync_closed_one(sh);
    }
    /* ... and for the roller's extension of its reserve (cut below). */
    while (sh->rolling || (commit && sh->syncing) ||
           (old != NULL && old->extending)) {
        pthread_cond_wait(&sh->sync_cv, &sh->mu);
    }
    if (sh->active != old) {
        return 0; /* another writer rolled it meanwhile */
    }
    if (sh->failed || cask_lost_blocks(sh)) {
        return sh->failed ? CASK_EFAILED : CASK_EUNDONE;
    }
    int rc = cask_log_write_out(sh);
    if (rc != 0) {
        return rc;
    }
    /* Its sync left to the sync thread (see unsynced_room: under always
     * once every append in it is covered, with the journal), or done here
     * when there is no room to remember it, and for a segment found cut
     * short or damaged, queued for its rewrite: a disk that fails its
     * syncs then keeps it as it was found (the rewrite, or the stop that
     * cannot do it, says what the cut took). */
    bool always = c->opt.sync == CASK_SYNC_ALWAYS;
    bool defer = (!always || (c->journal != NULL && c->commit != NULL &&
                              synced(sh) >= sh->app_seq)) &&
                 !old->damaged && !cask_resync_queued(sh, old->id) &&
                 unsynced_room(sh);
    /* Create the next segment (and, when not deferred, sync the old one) with
     * the mutex released: reads go on, writers wait in cask_log_append()
     * (so nothing lands in the old segment after it is cut back and
     * synced). The new segment first: when it cannot be made (a full
     * disk), a retry must not cost a sync. */
    uint32_t id = sh->next_id++;
    bool prealloc = !sh->no_prealloc;
    sh->rolling = true;
    cask_verify_write_begin(old); /* its cut and reserve (when not
                                   * deferred) go below, mu released */
    pthread_mutex_unlock(&sh->mu);
    cask_hint_remove(sh->dir, id); /* a stale hint of a compacted-away id */
    /* Deferred under interval and never: its header and name are synced
     * with the old segment. Under always it is made durable here. */
    /* Cut short by another process (cask_seg_map_cut, below): not
     * deferred either. */
    bool cut = cask_seg_map_cut(old);
    if (cut) {
        defer = false;
    }
    rc = defer && !always ? cask_seg_create_unsynced(&n, sh->dir, id)
                          : cask_seg_create(&n, sh->dir, id, 0);
    int src = 0;
    const char *what = "roll-over: fdatasync";
    if (rc == 0 && prealloc) {
        cask_log_reserve_fresh(c, n);
    }
    if (rc == 0) {
        /* Cut back to its records first (it was extended ahead of them
         * for its mapping), so that the sync makes that length durable
         * and its hint covers the whole file. A crash before leaves a zero
         * tail recovery cuts. Unless another process cut it already
         * (cask_seg_map_cut): then under always its writes not synced
         * yet, which wait for this sync, include those copied past the
         * cut and lost: failed like a failed sync. */
        if (defer) {
            /* The cut too is the sync thread's (sync_closed_one): the
             * ftruncate may wait for a sync of the file system. */
            cask_seg_wmap_close(old);
        } else {
            src = cask_seg_cut_ahead(old, false);
        }
        if (src != 0) {
            what = "roll-over: cut back to its records";
        } else if (cut) {
            if (c->commit != NULL) {
                src = EIO;
                what = "roll-over: found cut short under its mapping";
            }
        }
    }
    if (rc == 0 && src == 0 && !defer) {
        /* A closed segment is immutable: not deferred, sync it now, so
         * that a group-commit sync of the new one covers everything, and
         * give back its reserve (its size stays). Otherwise the sync
         * thread does both (sync_closed_one) before it syncs the new
         * one. */
        src = cask_io_fdatasync(old->fd);
        if (src == 0) {
            cask_log_release_reserve(old);
        }
    }
    pthread_mutex_lock(&sh->mu);
    cask_verify_write_end(old);
    sh->rolling = false;
    pthread_cond_broadcast(&sh->sync_cv);
    cask_unblocked(c); /* writes parked behind it try again (mu held: after
                        * this roll-over's outcome is in place) */
    if (cut) {
        map_faulted(sh, old, true); /* even if no new segment was made */
    }
    if (rc != 0) {
        return rc;
    }
    if (!defer) {
        sh->syncs++;
    }
    if (src == 0) {
        src = cask_segtab_add(sh, n);
    } else {
        /* The old segment stays active until the rewrite closes it. */
        cask_resync_note(sh, old->id, src, what);
        src = CASK_EFAILED;
    }
    if (src != 0) {
        (void)cask_io_unlink(n->path);
        cask_seg_close(&n);
        return src;
    }
    cask_seg_make_closed(old);
    sh->active = n;
    cask_log_buf_account(sh); /* the old buffer went; the new comes later */
    if (defer) {
        /* Pinned until its sync: a compaction that retires it meanwhile
         * (a cut found in it) leaves it to the sync to free. */
        old->sync_pending = true;
        old->succ_id = id;
        old->readers++;
        sh->unsynced[sh->nunsynced++] = old;
        /* the sync thread syncs it now rather than at its interval */
        pthread_mutex_lock(&c->bg_mu);
        c->roll_kick = true;
        pthread_cond_signal(&c->sync_cv);
        pthread_mutex_unlock(&c->bg_mu);
    } else {
        sh->synced_writes += raise_synced(sh, sh->app_seq);
        sh->seg_seq = sh->app_seq;
    }
    pthread_cond_broadcast(&sh->sync_cv);
    cask_evict_rolled(sh);
    /* List the new segment in the manifest (in memory: the maintenance
     * thread's next hint pass writes the file), so that recovery can tell
     * if it goes missing. */
    if (cask_manifest_note(sh->manifest, &id, 1) != 0) {
        cask_logf(c, CASK_LOG_WARN,
                  "shard %u: no memory to list segment %08x in the "
                  "manifest; its loss would go unnoticed",
                  sh->idx, id);
    }
    sh->roll_err = 0; /* an earlier failure is no longer any write's */
    return 0;
}

/* Keep a reserve of disk blocks past what a put leaves behind, extended a chunk
 * at a time, so that deletes still work on a full disk: a put that cannot keep
 * the reserve fails with ENOSPC before writing anything, a tombstone may use
 * it. File systems without fallocate get no reserve. */
static int
reserve(struct cask_shard *sh, struct cask_segment *s, size_t len, bool tomb)
{
    uint64_t need = reserve_need(sh->store, s, len, tomb);
    if (sh->no_prealloc || need <= s->prealloc_end) {
        return 0;
    }
    uint64_t want = need + reserve_chunk(sh->store);
    cask_verify_write_begin(s);
    int rc = cask_io_fallocate(s->fd, (off_t)s->prealloc_end,
                               (off_t)(want - s->prealloc_end));
    cask_verify_write_end(s);
    if (rc == 0) {
        s->prealloc_end = want;
        sh->extend_err = 0; /* the roller may take it up again */
        return 0;
    }
    if (rc == EOPNOTSUPP || rc == ENOSYS) {
        sh->no_prealloc = true;
        return 0;
    }
    /* A tombstone still tries: it may fit in what is reserved. */
    return tomb ? 0 : rc;
}

/* Count a write that failed and log it, once per run of failures (a full
 * disk would otherwise log every request). */
static void
write_failed(struct cask_shard *sh, const char *what, int rc)
{
    sh->write_errors++;
    if (!sh->write_failing) {
        sh->write_failing = true;
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: %s: %s; writes fail (and are counted in "
                  "write_errors) until it succeeds again",
                  sh->idx, what, strerror(rc));
    }
}

/* After a failed write to s: when a copy into its mapping faulted (the
 * file was cut short under it by another process, or a page of it could
 * not be read back), queue its rewrite as the cut check does
 * (cask_resync.c): what still reads back goes to a new segment, which
 * takes the appends from then on; no compaction or eviction picks s
 * meanwhile. The write itself failed like a failed pwrite. Also after
 * cask_seg_map_cut found the file cut (found: its size then), where the
 * copies into the last page raised no fault. */
static void
map_faulted(struct cask_shard *sh, struct cask_segment *s, bool found)
{
    if (!s->wmap_fault || sh->latched || cask_resync_queued(sh, s->id)) {
        return;
    }
    sh->segments_cut++;
    s->damaged = true;
    cask_resync_add(sh, s->id);
    sh->resync_after_ms = 0;
    if (found) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: segment %08x is shorter than the store "
                  "extended it to (cut short by another process under its "
                  "mapping): records copied past the cut are lost; what "
                  "still reads back is rewritten to a new segment",
                  sh->idx, s->id);
        return;
    }
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: segment %08x: a write into its mapping faulted at "
              "offset %" PRIu64 " (cut short by another process, or a "
              "page that could not be read back): what still reads back "
              "is rewritten to a new segment",
              sh->idx, s->id, s->flushed);
}

/* The filter bit of keydir hash h in sh->staged_keys: word, mask. */
static inline void
staged_bit(uint64_t h, unsigned *w, uint64_t *m)
{
    unsigned b = (unsigned)(h >> 54);
    *w = b >> 6;
    *m = (uint64_t)1 << (b & 63);
}

void
cask_log_staged_forget(struct cask_shard *sh)
{
    sh->nstaged = 0;
    memset(sh->staged_keys, 0, sizeof(sh->staged_keys));
    sh->staged_unnoted = 0;
}

/* Room for one more entry in sh->staged. */
static bool
staged_room(struct cask_shard *sh)
{
    if (sh->nstaged < sh->staged_cap) {
        return true;
    }
    size_t ncap = sh->staged_cap ? 2 * sh->staged_cap : 64;
    struct cask_staged *n = realloc(sh->staged, ncap * sizeof(*n));
    if (n == NULL) {
        return false; /* written through instead */
    }
    sh->staged = n;
    sh->staged_cap = ncap;
    return true;
}

void
cask_log_undo_note(struct cask_shard *sh, uint64_t h,
                   const struct cask_kd_entry *old, uint32_t off)
{
    if (sh->nstaged == 0) {
        return;
    }
    struct cask_staged *st = &sh->staged[sh->nstaged - 1];
    if (st->off != off || st->seq != sh->app_seq || st->noted) {
        return; /* that append was written through */
    }
    st->h = h;
    st->noted = true;
    unsigned w;
    uint64_t m;
    staged_bit(h, &w, &m);
    sh->staged_keys[w] |= m;
    sh->staged_unnoted--;
    st->had = old != NULL;
    if (old != NULL) {
        memcpy(st->old, old, CASK_KD_ENTRY_FIXED);
        st->old_id = sh->segs[old->seg]->id;
    }
}

/* A failed write of the buffer: put every entry its records changed back
 * as it was, newest first, then drop the records. An entry whose old
 * segment is gone meanwhile (an eviction committed) is dropped with it.
 * False when an entry could not be put back (no memory, or an operation
 * that did not say what it changed): the caller latches the shard. */
static bool
undo_staged(struct cask_shard *sh)
{
    struct cask_segment *s = sh->active;
    bool ok = true;
    for (size_t i = sh->nstaged; i-- > 0;) {
        const struct cask_staged *st = &sh->staged[i];
        if (!st->noted) {
            ok = false;
            continue;
        }
        const char *key = s->buf + (st->off - s->flushed) + CASK_REC_HDR;
        struct cask_kd_entry *cur = cask_kd_find(sh->kd, st->h, key, st->klen);
        if (cur != NULL && cur->off != 0) {
            sh->segs[cur->seg]->live_bytes -= cask_segtab_entry_len(cur);
        }
        struct cask_kd_entry old;
        memcpy(&old, st->old, CASK_KD_ENTRY_FIXED);
        struct cask_segment *os = st->had ? sh->segs[old.seg] : NULL;
        if (os == NULL || os->id != st->old_id || os->retired) {
            if (cur != NULL) {
                cask_kd_remove(sh->kd, st->h, cur);
            }
            continue;
        }
        if (cur == NULL) {
            cur = cask_kd_insert(sh->kd, st->h, key, st->klen);
            if (cur == NULL) {
                ok = false;
                continue;
            }
        }
        memcpy(cur, &old, CASK_KD_ENTRY_FIXED);
        os->live_bytes += cask_segtab_entry_len(cur);
    }
    cask_seg_unbuffer(s, s->flushed);
    cask_log_staged_forget(sh);
    return ok;
}

static void
write_ok(struct cask_shard *sh)
{
    if (sh->write_failing) {
        sh->write_failing = false;
        cask_logf(sh->store, CASK_LOG_WARN, "shard %u: writes succeed again",
                  sh->idx);
    }
}

/* Before the first write to the active segment s: copy its appends into
 * a shared mapping of it from now on (cask_seg_wmap_open), unless the
 * journal needs them written (--sync=always keeps pwrite: its frames are
 * copied from the buffer as it is written) or the file system reserves no
 * blocks ahead. The mapping spans what a segment can grow to: its size
 * limit, a record past it, the reserve a tombstone may use. */
static void
map_active(struct cask_shard *sh, struct cask_segment *s)
{
    if (s->wmap_tried || sh->no_prealloc || sh->store->journal != NULL ||
        !sh->store->opt.write_map) {
        return;
    }
    (void)cask_seg_wmap_open(s, sh->store->opt.segment_size + RESERVE_MAX +
                                        CHUNK_MAX + reserve_chunk(sh->store));
}

/* Every append so far is in the kernel. */
static void
all_written(struct cask_shard *sh)
{
    __atomic_store_n(&sh->written_seq, sh->app_seq, __ATOMIC_RELEASE);
}

int
cask_log_write_out(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    struct cask_segment *s = sh->active;
    if (s != NULL && s->buf_len > 0) {
        uint64_t base = s->flushed;
        /* A latched shard writes nothing more: its staged records were
         * never acknowledged. */
        map_active(sh, s);
        uint64_t copies = s->wmap_copies;
        int rc = sh->failed ? CASK_EFAILED : cask_seg_flush(s);
        if (rc != 0) {
            /* Nothing of the batch is acknowledged, and nothing of it
             * stays visible: the keydir goes back to what the disk has. */
            if (rc != CASK_EFAILED) {
                write_failed(sh, "write segment", rc);
                map_faulted(sh, s, false);
            }
            if (!undo_staged(sh) && !sh->latched) {
                sh->failed = true;
                sh->latched = true; /* memory and disk disagree */
                cask_logf(c, CASK_LOG_ERROR,
                          "shard %u: a failed write could not be undone in "
                          "memory; shard is now read-only",
                          sh->idx);
            }
            if (s->prealloc_end > s->flushed) {
                s->prealloc_end = s->flushed; /* the truncate freed it */
            }
            struct cask_wfail *f = &sh->wfail[sh->wfail_n % CASK_WFAIL_RING];
            f->lo = __atomic_load_n(&sh->written_seq, __ATOMIC_RELAXED) + 1;
            f->hi = sh->app_seq;
            f->rc = rc;
            __atomic_store_n(&sh->wfail_n, sh->wfail_n + 1, __ATOMIC_RELEASE);
            /* The dropped appends' numbers are taken again by the next
             * ones, so that append numbers keep counting records in the
             * file (a failed commit's undo counts on it, cask_lost.c);
             * their tickets tell the two apart by wfail_n. */
            sh->app_seq = f->lo - 1;
            return rc;
        }
        sh->batch_writes++;
        if (s->wmap_copies != copies) {
            sh->mapped_writes += sh->nstaged;
        }
        write_ok(sh);
        if (c->journal != NULL) {
            /* Under always: the frames of the records now written, in
             * offset order, and the next commit covers them. */
            for (size_t i = 0; i < sh->nstaged; i++) {
                const struct cask_staged *st = &sh->staged[i];
                cask_journal_add(c->journal, sh->idx, s->id, st->off,
                                 s->buf + (st->off - base), st->len, st->seq);
            }
            if (sh->nstaged > 0 && c->commit != NULL) {
                sh->wjoin_epoch = cask_commit_join(c, sh->idx);
            }
        }
        /* replication follows the log, and counts its records */
        cask_stream_note_n(sh, s->id, sh->nstaged);
        cask_log_staged_forget(sh);
    }
    all_written(sh);
    return 0;
}

int
cask_log_settle(struct cask_shard *sh, uint64_t h)
{
    unsigned w;
    uint64_t m;
    staged_bit(h, &w, &m);
    if (sh->nstaged == 0 ||
        (sh->staged_unnoted == 0 && !(sh->staged_keys[w] & m))) {
        return 0;
    }
    /* Whoever staged it (this thread or another worker) learns a failure
     * through its ticket; this operation looks again at what is left. */
    return cask_log_write_out(sh) == 0 ? 0 : CASK_LOG_RETRY;
}

bool
cask_log_written(struct cask_shard *sh, uint64_t seq, uint32_t gen, int *err)
{
    *err = 0;
    /* written_seq first: a failure that dropped seq is counted before
     * written_seq can pass it. */
    uint64_t w = __atomic_load_n(&sh->written_seq, __ATOMIC_ACQUIRE);
    uint32_t n = __atomic_load_n(&sh->wfail_n, __ATOMIC_ACQUIRE);
    if (n - gen > CASK_WFAIL_RING) {
        *err = EIO; /* too many failures since to tell: say it failed */
        return true;
    }
    for (uint32_t g = gen; g != n; g++) {
        const struct cask_wfail *f = &sh->wfail[g % CASK_WFAIL_RING];
        if (seq >= f->lo && seq <= f->hi) {
            *err = f->rc;
            return true;
        }
    }
    return w >= seq;
}

/* ---- writes that park instead of waiting for a roll-over (cask_park) -- */

/* The thread's setting and cask_parks are the store context's (cask_ctx.c).
 *
 * With mu held, the active segment full: would its roll-over wait? For
 * the sync thread to take one of CASK_UNSYNCED_MAX closed segments; or
 * under always with the journal for the commit of appends not covered
 * yet (*commit), whose roll-over would otherwise sync the segment on
 * this thread (cask_log_roll's defer; a damaged segment, or one queued
 * for its rewrite, is synced on the spot whatever the wait). A wait
 * cask_log_roll has for a segment sync without the journal is not
 * parked: that roll-over syncs on the writer anyway. */
static bool
roll_waits(struct cask_shard *sh, bool *commit)
{
    const struct cask *c = sh->store;
    *commit = false;
    if (sh->nunsynced >= CASK_UNSYNCED_MAX) {
        return true;
    }
    if (c->opt.sync == CASK_SYNC_ALWAYS && c->journal != NULL &&
        c->commit != NULL && synced(sh) < sh->app_seq && !sh->active->damaged &&
        !cask_resync_queued(sh, sh->active->id)) {
        *commit = true;
        return true;
    }
    return false;
}

/* With mu held: this thread parks its writes, and one would wait. gen is
 * cask_unblock_gen as read before the obstacle was found. Kick what ends
 * the wait (the sync thread; for a commit, the write-out of what a batch
 * staged, which joins it), and return CASK_EBLOCKED, or the error of
 * that write-out (the roll-over would have returned it). */
static int
blocked(struct cask_shard *sh, uint64_t gen, bool commit)
{
    struct cask *c = sh->store;
    if (commit) {
        int rc = cask_log_write_out(sh);
        if (rc != 0) {
            return rc;
        }
    } else if (sh->nunsynced > 0) {
        pthread_mutex_lock(&c->bg_mu);
        c->roll_kick = true;
        pthread_cond_signal(&c->sync_cv);
        pthread_mutex_unlock(&c->bg_mu);
    }
    return cask_parks(c, gen);
}

/* With mu held: this thread parks its writes and the active segment is
 * full, with nothing to wait for first. Its roll-over creates a file (and
 * removes a stale hint, and may sync the old segment): system calls that
 * can take milliseconds on a busy disk, during which the worker would
 * serve none of its other connections. Ask the roller thread for it
 * instead (cask_log_roll_asked) and park: only the writes to this shard
 * wait. */
static int
ask_roll(struct cask_shard *sh, uint64_t gen)
{
    if (!sh->roll_asked) {
        sh->roll_asked = true;
        cask_wake_roller(sh->store);
    }
    return cask_parks(sh->store, gen);
}

void
cask_log_roll_asked(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    if (!sh->roll_asked) {
        pthread_mutex_unlock(&sh->mu);
        return;
    }
    /* Still full for the write that asked? Another writer (one that does
     * not park) may have rolled it meanwhile; a write of any size that
     * finds it full asks again. */
    if (sh->active != NULL && !sh->rolling && sh->active->size > CASK_SEG_HDR) {
        int rc = cask_log_roll(sh);
        if (rc != 0) {
            write_failed(sh, "roll over to a new segment", rc);
            sh->roll_err = rc;
        } else {
            sh->rolls_handed++;
        }
    }
    sh->roll_asked = false;
    pthread_cond_broadcast(&sh->sync_cv);
    cask_unblocked(sh->store); /* mu held: after the outcome is in place */
    pthread_mutex_unlock(&sh->mu);
}

/* With mu held: ask the roller thread to extend the active segment's
 * disk reserve (cask_log_extend_asked). */
static void
ask_extend(struct cask_shard *sh)
{
    if (!sh->extend_asked) {
        sh->extend_asked = true;
        cask_wake_roller(sh->store);
    }
}

/* With mu held, for a thread that parks its writes, once the active
 * segment can take a record of len bytes: its disk reserve (reserve())
 * grows by a fallocate, which can take milliseconds on a busy disk. The
 * roller thread makes it ahead of the appends instead: asked for the next
 * chunk once less than half of one is left, so that writes find the
 * reserve made. A write that finds it short all the same parks until
 * the roller made it. After a failed extension (extend_err) writes make
 * it themselves again (reserve(), which fails or reports), until one
 * succeeds. */
static int
reserve_ahead(struct cask_shard *sh, size_t len, bool tomb)
{
    struct cask *c = sh->store;
    struct cask_segment *s = sh->active;
    if (sh->no_prealloc || sh->extend_err != 0) {
        return 0;
    }
    uint64_t need = reserve_need(c, s, len, tomb);
    uint64_t chunk = reserve_chunk(c);
    if (need > s->prealloc_end) {
        if (need > sh->extend_need) {
            sh->extend_need = need;
        }
        ask_extend(sh);
        /* its end is counted under mu, after this */
        return cask_parks(c, cask_unblock_gen(c));
    }
    if (need + chunk / 2 > s->prealloc_end &&
        s->prealloc_end < c->opt.segment_size + reserve_keep(c)) {
        ask_extend(sh);
    }
    return 0;
}

void
cask_log_extend_asked(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    pthread_mutex_lock(&sh->mu);
    if (!sh->extend_asked) {
        pthread_mutex_unlock(&sh->mu);
        return;
    }
    sh->extend_asked = false;
    bool parked = sh->extend_need != 0; /* a write waits for it */
    struct cask_segment *s = sh->active;
    uint64_t from = 0, want = 0;
    if (s != NULL && !sh->rolling && !sh->no_prealloc && !sh->failed) {
        /* A chunk and a half past what the appends so far need: asked
         * again after a chunk of appends, it grows a chunk at a time.
         * Not past what the segment's records can need, unless a parked
         * write needs more (a record larger than the segment). */
        uint64_t chunk = reserve_chunk(c);
        uint64_t top = c->opt.segment_size + reserve_keep(c);
        want = reserve_need(c, s, 0, false) + chunk + chunk / 2;
        if (want > top) {
            want = top;
        }
        if (want < sh->extend_need) {
            want = sh->extend_need;
        }
        if (want > s->prealloc_end) {
            from = s->prealloc_end;
        }
    }
    sh->extend_need = 0;
    if (from != 0) {
        /* Writes go on meanwhile, within what is reserved already; a
         * roll-over waits for the end (s->extending); a cut of ours
         * meanwhile (a failed write) may give the new blocks back
         * (s->cuts): then they are not counted as reserved. */
        uint32_t cuts = s->cuts;
        cask_verify_write_begin(s);
        s->extending = true;
        pthread_mutex_unlock(&sh->mu);
        int rc = cask_io_fallocate(s->fd, (off_t)from, (off_t)(want - from));
        pthread_mutex_lock(&sh->mu);
        s->extending = false;
        cask_verify_write_end(s);
        if (rc == 0) {
            if (s->cuts == cuts && want > s->prealloc_end) {
                s->prealloc_end = want;
            }
            sh->reserves_handed++;
        } else if (rc == EOPNOTSUPP || rc == ENOSYS) {
            sh->no_prealloc = true;
        } else {
            sh->extend_err = rc;
        }
        pthread_cond_broadcast(&sh->sync_cv);
    }
    if (parked) {
        cask_unblocked(c); /* mu held: after the outcome is in place */
    }
    pthread_mutex_unlock(&sh->mu);
}

/* Make sure the active segment can take a record of len bytes: wait for a
 * roll-over in progress, start a segment when there is none, roll over
 * when it is full. Returns 0 with mu held throughout, CASK_LOG_RETRY when mu
 * had to be released (keydir entries the caller holds may have been moved or
 * removed by compaction meanwhile: start over from the lookup), or an
 * error. A thread that parks its writes (cask_park) gets CASK_EBLOCKED
 * where it would wait for another roll-over or for its own roll-over's
 * wait (roll_waits), with nothing changed. */
int
cask_log_make_room(struct cask_shard *sh, size_t len, bool tomb)
{
    struct cask *c = sh->store;
    bool park_on = cask_parking(); /* this thread's, for the whole call */
    int rc;

    if (sh->rolling || (park_on && sh->roll_asked)) {
        if (park_on) {
            /* Its end counts in cask_unblock_gen under mu: after this. */
            return blocked(sh, cask_unblock_gen(c), false);
        }
        while (sh->rolling) {
            pthread_cond_wait(&sh->sync_cv, &sh->mu);
        }
        return CASK_LOG_RETRY;
    }
    if (sh->failed || cask_lost_blocks(sh)) {
        /* held: the journal recovers by itself (cask_lost.c) */
        return sh->failed ? CASK_EFAILED : CASK_EUNDONE;
    }
    if (sh->active == NULL) {
        /* Opened on a full disk: start the active segment now. */
        rc = cask_segtab_new_segment(sh, 0, false, &sh->active);
        if (rc != 0) {
            write_failed(sh, "create segment", rc);
            return rc;
        }
        /* Listed by the manifest's next write (not now: mu is held). */
        (void)cask_manifest_note(sh->manifest, &sh->active->id, 1);
    }
    /* A tombstone that fits in the reserve goes there, past the size
     * limit if need be: on a full disk a new segment cannot be made. */
    if (sh->active->size + len > c->opt.segment_size &&
        sh->active->size > CASK_SEG_HDR &&
        !(tomb && sh->active->size + len <= sh->active->prealloc_end)) {
        bool commit;
        /* Read before the obstacles are: an end of one that is not under
         * mu (a commit) counts after it (cask_blocked_gen). */
        uint64_t gen = park_on ? cask_unblock_gen(c) : 0;
        if (park_on && roll_waits(sh, &commit)) {
            return blocked(sh, gen, commit);
        }
        if (sh->roll_err != 0) {
            /* The roller's roll-over this write parked for failed: its
             * error is this write's (counted and logged there). */
            rc = sh->roll_err;
            sh->roll_err = 0;
            return rc;
        }
        if (park_on) {
            return ask_roll(sh, gen);
        }
        rc = cask_log_roll(sh);
        if (rc != 0) {
            write_failed(sh, "roll over to a new segment", rc);
            return rc;
        }
        return CASK_LOG_RETRY;
    }
    return park_on ? reserve_ahead(sh, len, tomb) : 0;
}

/* Append one record to the active segment, written with one pwrite before
 * returning: an acknowledgement always follows the kernel having the
 * record, so a process crash loses nothing acknowledged in any sync mode.
 * On success *slot and *off say where it went. A failed write is counted,
 * logged and returned, and leaves no partial record behind. */
int
cask_log_append(struct cask_shard *sh, const struct cask_rec *r,
                const void *key, const void *v1, size_t l1, const void *v2,
                size_t l2, uint16_t *slot, uint32_t *off)
{
    struct cask *c = sh->store;
    size_t len = cask_rec_len(r->klen, l1 + l2);
    int rc;

    bool tomb = r->type == CASK_REC_TOMB;
    rc = cask_log_make_room(sh, len, tomb);
    if (rc != 0) {
        return rc;
    }
    struct cask_segment *s = sh->active;
    rc = reserve(sh, s, len, tomb);
    if (rc != 0) {
        write_failed(sh, "reserve disk space", rc);
        return rc;
    }
    uint64_t at = s->size;
    char *buf = NULL;
    if (l1 + l2 >= CASK_VWRITE_MIN && c->journal == NULL) {
        /* A large value goes out from where it lies, uncopied, after
         * what a batch staged (the journal needs records whole). */
        rc = cask_log_write_out(sh);
        if (rc == 0) {
            map_active(sh, s);
            rc = cask_vwrite_append(s, r, key, v1, l1, v2, l2);
            if (rc != 0) {
                write_failed(sh, "write segment", rc);
            }
        }
        if (rc != 0) {
            return rc;
        }
        sh->app_seq++;
        note_off(sh, at);
        all_written(sh);
        write_ok(sh);
        cask_stream_note(sh, s->id); /* replication follows the log */
        goto appended;
    }
    if (len <= stage_cap(sh) && cask_batch_stage(sh, len) && staged_room(sh) &&
        cask_seg_make_active(s, stage_cap(sh)) == 0) {
        if (s->buf_cap != sh->buf_counted) {
            cask_log_buf_account(sh); /* allocated just now */
        }
        buf = cask_seg_reserve(s, len);
        if (buf == NULL) {
            /* The buffer is full: write it out, start it again. */
            rc = cask_log_write_out(sh);
            if (rc != 0) {
                return rc;
            }
            buf = cask_seg_reserve(s, len);
            if (buf != NULL) {
                at = s->size - len;
            }
        }
    }
    if (buf != NULL) {
        cask_rec_encode(buf, r, key, v1, l1, v2, l2);
        sh->app_seq++;
        note_off(sh, at);
        sh->batch_records++;
        cask_batch_staged(sh);
        /* Its journal frame is queued when it is written (write_out). */
        sh->staged[sh->nstaged++] = (struct cask_staged){
                .seq = sh->app_seq,
                .off = (uint32_t)at,
                .len = (uint32_t)len,
                .klen = r->klen,
        };
        sh->staged_unnoted++; /* its key's bit: cask_log_undo_note */
        goto appended;
    }
    /* Written through: what a batch staged goes first. */
    rc = cask_log_write_out(sh);
    if (rc != 0) {
        return rc;
    }
    buf = sh->scratch;
    char *big = NULL;
    if (len > SCRATCH_MAX) {
        big = buf = malloc(len);
    } else if (len > sh->scratch_cap) {
        buf = realloc(sh->scratch, len);
        if (buf != NULL) {
            sh->scratch = buf;
            sh->scratch_cap = len;
        }
    }
    if (buf == NULL) {
        return ENOMEM;
    }
    cask_rec_encode(buf, r, key, v1, l1, v2, l2);
    map_active(sh, s);
    uint64_t copies = s->wmap_copies;
    rc = cask_seg_write_direct(s, buf, len);
    if (rc != 0) {
        free(big);
        write_failed(sh, "write segment", rc);
        map_faulted(sh, s, false);
        return rc;
    }
    if (s->wmap_copies != copies) {
        sh->mapped_writes++;
    }
    sh->app_seq++;
    note_off(sh, at);
    all_written(sh);
    if (c->journal != NULL) {
        /* Under always: the record's durability comes from the journal's
         * next commit; the segment is synced lazily (cask_journal.h). */
        cask_journal_add(c->journal, sh->idx, s->id, (uint32_t)at, buf, len,
                         sh->app_seq);
    }
    free(big);
    write_ok(sh);
    cask_stream_note(sh, s->id); /* replication follows the log */
appended:
    if (r->cas < s->min_cas) {
        s->min_cas = r->cas;
    }
    if (r->cas > s->max_cas) {
        s->max_cas = r->cas;
    }
    *slot = s->slot;
    *off = (uint32_t)at;
    return 0;
}

/* With mu held: return once a sync covering append number `seq` finished
 * (seg: a sync of the segment itself, not the journal). The caller that
 * finds no sync running does it, with mu released. 0; CASK_EFAILED; or
 * EIO when the sync went on but the segment was found cut short under
 * its mapping (records acknowledged before were lost). */
static int
wait_durable(struct cask_shard *sh, uint64_t seq, bool seg)
{
    int cut = 0;
    while ((seg ? sh->seg_seq : synced(sh)) < seq && !sh->failed) {
        if (sh->syncing || sh->rolling) {
            pthread_cond_wait(&sh->sync_cv, &sh->mu);
            continue;
        }
        if (sh->nunsynced > 0) {
            /* The closed segments first: a sync of the active one then
             * covers every append up to its target. */
            sync_closed_one(sh);
            continue;
        }
        struct cask_segment *s = sh->active;
        if (s == NULL) {
            /* nothing appended since open or a wipe */
            (void)raise_synced(sh, sh->app_seq);
            sh->seg_seq = sh->app_seq;
            break;
        }
        int rc = cask_log_write_out(sh);
        if (rc != 0) {
            return rc;
        }
        uint64_t target = sh->app_seq;
        if (cask_seg_map_cut(s)) {
            /* Cut by another process inside the page the copies went
             * to: no fault told us. Counted and rewritten as if one had;
             * under always the writes this sync would answer include
             * those copied past the cut: failed like a failed sync. */
            map_faulted(sh, s, true);
            if (sh->store->commit != NULL) {
                cask_resync_note(sh, s->id, EIO,
                                 "sync: found cut short under its mapping");
                continue;
            }
            cut = EIO;
        }
        sh->syncing = true;
        s->readers++; /* not closed under us by a roll-over + compaction */
        pthread_mutex_unlock(&sh->mu);
        rc = cask_io_fdatasync(s->fd);
        pthread_mutex_lock(&sh->mu);
        uint32_t sid = s->id;
        if (--s->readers == 0 && s->retired) {
            cask_seg_close(&s);
        }
        sh->syncing = false;
        sh->syncs++;
        if (rc != 0) {
            /* Never retry: the kernel may have dropped the dirty pages.
             * The segment's records are rewritten instead (cask_resync.c). */
            cask_resync_note(sh, sid, rc, "fdatasync");
        } else {
            sh->synced_writes += raise_synced(sh, target);
            if (target > sh->seg_seq) {
                sh->seg_seq = target;
            }
        }
        pthread_cond_broadcast(&sh->sync_cv);
    }
    if (sh->failed && (seg ? sh->seg_seq : synced(sh)) < seq) {
        return CASK_EFAILED;
    }
    return cut; /* synced, but records acknowledged before were cut off */
}

/* With mu held, after an operation's append: under CASK_SYNC_ALWAYS note
 * in *tk the commit that must cover it. The wait (or its deferral) comes
 * in cask_commit_finish once mu is released. */
void
cask_log_join(struct cask_shard *sh, struct cask_ticket *tk)
{
    struct cask *c = sh->store;
    if (c->opt.sync != CASK_SYNC_ALWAYS || c->commit == NULL) {
        return;
    }
    if (sh->nstaged > 0 && sh->staged[sh->nstaged - 1].seq == sh->app_seq) {
        /* Staged: the thread's ticket waits for its write, then for the
         * commit its write joins (cask_ticket_done). */
        return;
    }
    cask_ticket_add(tk, cask_commit_join(c, sh->idx), (int)sh->idx,
                    sh->app_seq);
}

void
cask_log_rely(struct cask_shard *sh, struct cask_ticket *tk)
{
    struct cask *c = sh->store;
    if (c->opt.sync != CASK_SYNC_ALWAYS || c->commit == NULL) {
        return;
    }
    /* Not app_seq: staged records not written yet may be dropped, and
     * their numbers taken again. Their journal frames are queued when
     * written, before the epoch is read below. */
    uint64_t w = __atomic_load_n(&sh->written_seq, __ATOMIC_ACQUIRE);
    /* Appends a failure answered with errors were undone (cask_lost.c):
     * nothing rests on them, and no commit covers them any more; every
     * one before them was covered then. */
    if (synced(sh) >= w || cask_lost_has(sh, w)) {
        return;
    }
    cask_ticket_add(tk, cask_commit_join(c, sh->idx), (int)sh->idx, w);
}

bool
cask_log_covered(struct cask_shard *sh, uint64_t seq)
{
    /* synced_seq only rises, and only over appends a sync or a journal
     * commit made durable: no lock needed. A failed commit answered some
     * with errors: they stay failed once a checkpoint covers them. */
    return synced(sh) >= seq && !cask_lost_has(sh, seq);
}

bool
cask_log_failed(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    bool failed = sh->failed;
    pthread_mutex_unlock(&sh->mu);
    return failed;
}

int
cask_log_sync(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    int rc = 0;
    /* Closed segments too, even when a sync that began before their
     * roll-over already covered their appends: their hints wait. */
    sync_rolled(sh);
    if (synced(sh) < sh->app_seq) {
        rc = wait_durable(sh, sh->app_seq, false);
    }
    if (rc == 0 && sh->failed) {
        rc = CASK_EFAILED;
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

int
cask_log_checkpoint(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    sync_rolled(sh);
    int rc = wait_durable(sh, sh->app_seq, true);
    if (rc == 0 && sh->failed) {
        rc = CASK_EFAILED;
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

void
cask_log_mark_covered(struct cask_shard *sh, uint64_t seq)
{
    /* Without mu: the commit threads would otherwise contend with every
     * append. The journal counts the writes it covered (stats). */
    (void)raise_synced(sh, seq);
}

void
cask_log_latch(struct cask_shard *sh, const char *why)
{
    pthread_mutex_lock(&sh->mu);
    if (!sh->latched) {
        sh->latched = true;
        __atomic_store_n(&sh->failed, true, __ATOMIC_RELEASE);
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: %s; shard is now read-only", sh->idx, why);
    }
    pthread_cond_broadcast(&sh->sync_cv);
    pthread_mutex_unlock(&sh->mu);
}
