/* cask_lost.c - writes a failed journal commit answered with errors. On a
 * failed journal write or sync the committer holds every shard (writes
 * refused), records per shard the appends that were not yet durable as
 * lost, deletes the keys of the failed puts, checkpoints and resumes the
 * journal (cask_commit.c); the ranges kept here make the tickets of those
 * appends read failed for good, although the checkpoint made their bytes
 * durable. A failed fdatasync of the active segment under always (with
 * the journal or without) does the same for its shard alone
 * (cask_resync.c): the shard appends nothing until the segment is
 * rewritten, and that rewrite hides the failed puts on disk for good;
 * until then tombstones in a new segment of their own, synced before the
 * errors go out (lost_hiding holds the range's tickets back meanwhile:
 * cask_lost_hiding), hide them from a restart after a stop, a process crash
 * or a power loss (when the disk refuses that too: written unsynced to
 * the end of the failed segment, which covers all but a power loss).
 *
 * Works on the shard it is handed, under its mutex; calls down into the
 * keydir, segments, records, the segment table and manifest (a new
 * segment for tombstones), the cas allocator and the shard's forget (a
 * tombstone append).
 * Knows nothing of the journal.
 */
#include "storage/cask_lost.h"

#include "storage/cask_io.h"
#include "storage/cask_keydir.h"
#include "storage/cask_log.h"
#include "storage/cask_manifest.h"
#include "storage/cask_record.h"
#include "storage/cask_segtab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

/* This thread is undoing lost puts: its tombstones pass the hold. */
static _Thread_local bool undoing;

bool
cask_lost_blocks(const struct cask_shard *sh)
{
    return sh->held && !undoing;
}

/* Remember (lo, hi] as answered with errors: a new newest range, or
 * the newest one grown when it is not undone yet (it then starts at lo
 * or below). mu held. */
static void
note_range(struct cask_shard *sh, uint64_t lo, uint64_t hi)
{
    unsigned n = __atomic_load_n(&sh->lost_n, __ATOMIC_RELAXED);
    if (sh->undo_pending && n > 0) {
        unsigned i = (n - 1) % CASK_LOST_RING;
        uint64_t old = sh->lost_hi[i];
        if (hi > old) {
            /* Only rises: a reader that saw the old end waits for the
             * ticket's next look. */
            __atomic_store_n(&sh->lost_hi[i], hi, __ATOMIC_RELEASE);
            sh->lost_writes += hi - old;
            sh->write_errors += hi - old;
        }
        return;
    }
    unsigned i = n % CASK_LOST_RING;
    /* Readers check hi first: an empty slot while it is rewritten. */
    __atomic_store_n(&sh->lost_hi[i], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->lost_lo[i], lo, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->lost_hi[i], hi, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->lost_n, n + 1, __ATOMIC_RELEASE);
    sh->undo_pending = true;
    sh->lost_writes += hi - lo;
    sh->write_errors += hi - lo;
}

/* The newest range's end, 0 when there is none. */
static uint64_t
newest_hi(const struct cask_shard *sh)
{
    unsigned n = __atomic_load_n(&sh->lost_n, __ATOMIC_RELAXED);
    return n == 0 ? 0 : sh->lost_hi[(n - 1) % CASK_LOST_RING];
}

void
cask_lost_hold(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    /* A roll-over syncs the old segment and then raises synced_seq: wait
     * for it, so that every append after lo is in the active segment. */
    while (sh->rolling) {
        pthread_cond_wait(&sh->sync_cv, &sh->mu);
    }
    sh->held = true;
    uint64_t lo = __atomic_load_n(&sh->synced_seq, __ATOMIC_ACQUIRE);
    uint64_t hi = sh->app_seq;
    /* A shard whose segment sync failed under the journal had its
     * appends up to then answered with errors already (and it appended
     * nothing since): the same range again counts nothing new. */
    bool known = sh->failed && !sh->latched && newest_hi(sh) == hi;
    if (hi > lo && !known) {
        note_range(sh, lo, hi);
    }
    pthread_mutex_unlock(&sh->mu);
}

bool
cask_lost_has(struct cask_shard *sh, uint64_t seq)
{
    unsigned n = __atomic_load_n(&sh->lost_n, __ATOMIC_ACQUIRE);
    unsigned k = n < CASK_LOST_RING ? n : CASK_LOST_RING;
    for (unsigned i = 0; i < k; i++) {
        uint64_t hi = __atomic_load_n(&sh->lost_hi[i], __ATOMIC_ACQUIRE);
        uint64_t lo = __atomic_load_n(&sh->lost_lo[i], __ATOMIC_ACQUIRE);
        if (seq > lo && seq <= hi) {
            return true;
        }
    }
    return false;
}

/* The scan keeps the offsets of the last n records in a ring. */
struct tail {
    uint64_t *off;
    uint64_t n, count;
};

static void
note_record(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct tail *t = arg;
    (void)r;
    (void)key;
    t->off[t->count % t->n] = off;
    t->count++;
}

/* Tombstones for failed puts of a shard that appends nothing (its active
 * segment's sync failed), written straight to the end of that segment. */
struct tombs {
    char *buf;
    size_t len, cap;
    uint64_t n;
    uint64_t min_cas, max_cas; /* of the puts they hide (n > 0) */
    uint64_t missed;           /* puts no tombstone could be made for */
    int err;                   /* why, the first time */
};

/* Add to t a tombstone hiding the put at off of s: its key and cas (read
 * back from s) and a fresh seq, so that it hides that put and every older
 * one of the key at the next start. 0, or an error (nothing added: a
 * record that does not read back, no seq, no memory). mu held. */
static int
tomb_make(struct cask_shard *sh, struct cask_segment *s, uint64_t off,
          struct tombs *t)
{
    char hb[CASK_REC_HDR + CASK_KEY_MAX];
    struct cask_rec r;
    int rc = cask_seg_pread(s, off, CASK_REC_HDR, hb);
    if (rc != 0) {
        return rc;
    }
    if (!cask_rec_decode(hb, CASK_REC_VMAX, &r) || r.type != CASK_REC_PUT) {
        return CASK_ECORRUPT;
    }
    rc = cask_seg_pread(s, off + CASK_REC_HDR, r.klen, hb + CASK_REC_HDR);
    if (rc != 0) {
        return rc;
    }
    struct cask_rec tr = {.cas = r.cas, .klen = r.klen, .type = CASK_REC_TOMB};
    rc = cask_cas_next(sh->store, &tr.seq);
    if (rc != 0) {
        return rc;
    }
    size_t len = cask_rec_len(r.klen, 0);
    if (t->len + len > t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 64 * len;
        while (nc < t->len + len) {
            nc *= 2;
        }
        char *nb = realloc(t->buf, nc);
        if (nb == NULL) {
            return ENOMEM;
        }
        t->buf = nb;
        t->cap = nc;
    }
    cask_rec_encode(t->buf + t->len, &tr, hb + CASK_REC_HDR, NULL, 0, NULL, 0);
    t->len += len;
    t->min_cas = t->n == 0 || r.cas < t->min_cas ? r.cas : t->min_cas;
    t->max_cas = t->n == 0 || r.cas > t->max_cas ? r.cas : t->max_cas;
    t->n++;
    return 0;
}

/* tomb_make, counting a put it could not make one for in t. */
static void
tomb_add(struct cask_shard *sh, struct cask_segment *s, uint64_t off,
         struct tombs *t)
{
    int rc = tomb_make(sh, s, off, t);
    if (rc != 0) {
        t->missed++;
        t->err = t->err != 0 ? t->err : rc;
    }
}

/* Write t's tombstones into a new segment and fdatasync it (cask_seg_create
 * synced its header and directory entry): a file whose sync never failed,
 * so that, once this returns 0, a power loss cannot take them. The new
 * segment is a closed one (it takes no appends; the failed segment stays
 * active until its rewrite rolls it), listed in the manifest, compacted as
 * any other: its tombstones stay while an older segment may hold a put
 * they hide (the failed segment first). Its id in *id (0 when none was
 * made). 0, or an error: the tombstones are then not known to be durable
 * (the segment, when made, stays, holding what was written of them: they
 * hide only the failed puts and older values of their keys, all dropped
 * from the keydir already). mu held. */
static int
tombs_durable(struct cask_shard *sh, struct tombs *t, uint32_t *id)
{
    struct cask_segment *n = NULL;
    *id = 0;
    int rc = cask_segtab_new_segment(sh, 0, false, &n);
    if (rc != 0) {
        return rc;
    }
    *id = n->id;
    if (cask_manifest_note(sh->manifest, &n->id, 1) != 0) {
        cask_logf(sh->store, CASK_LOG_WARN,
                  "shard %u: no memory to list segment %08x in the "
                  "manifest; its loss would go unnoticed",
                  sh->idx, n->id);
    }
    n->min_cas = t->min_cas;
    n->max_cas = t->max_cas;
    rc = cask_seg_write_direct(n, t->buf, t->len);
    if (rc == 0) {
        rc = cask_io_fdatasync(n->fd);
        sh->syncs++;
    }
    return rc;
}

/* Make t's tombstones hide the failed puts of s, the active segment of a
 * shard that appends nothing until s is rewritten: they were dropped from
 * the keydir only, and a stop, a process crash or a power loss before the
 * rewrite commits would otherwise bring them back at the next start (s,
 * not retired yet, still holds them, and its failed sync may have written
 * them to the disk). Into a new segment, synced, before the failed puts
 * are answered (tombs_durable); when the disk refuses that too, written
 * straight to the end of s (one pwrite, unsynced, no journal frame and no
 * append number: s takes no appends any more, so nothing counts on them
 * and nothing is written over them), which covers a stop and a process
 * crash but not a power loss (logged). The rewrite still writes
 * tombstones of its own (dropped_untombed), in case these are lost too.
 * mu held. */
static void
tombs_write(struct cask_shard *sh, struct cask_segment *s, struct tombs *t)
{
    uint32_t id = 0;
    int rc = t->len == 0 ? 0 : tombs_durable(sh, t, &id);
    if (rc != 0) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: tombstones for %" PRIu64 " failed puts could "
                  "not be made durable (%s %08x: %s): written unsynced to "
                  "seg %08x, so a power loss before its rewrite commits "
                  "may bring those puts back",
                  sh->idx, t->n, id != 0 ? "segment" : "no new segment", id,
                  cask_strerror(rc), s->id);
        rc = cask_seg_write_direct(s, t->buf, t->len);
        if (rc != 0) {
            t->missed += t->n;
            t->err = rc;
        }
    }
    if (t->missed != 0) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: %" PRIu64 " failed puts left without a tombstone "
                  "in seg %08x (%s): a stop before its rewrite commits may "
                  "bring them back",
                  sh->idx, t->missed, s->id, cask_strerror(t->err));
    }
    free(t->buf);
    *t = (struct tombs){0};
}

/* Delete key (read from the record at off of s) when its record there is
 * a put and the key is still in the keydir: with a tombstone appended,
 * or (direct non-NULL: the shard cannot append) from memory, with a
 * tombstone added to direct (tombs_write), and left to the next rewrite
 * to hide on disk for good. mu held. */
static int
undo_record(struct cask_shard *sh, struct cask_segment *s, uint64_t off,
            struct tombs *direct)
{
    bool tomb = direct == NULL;
    char hb[CASK_REC_HDR + CASK_KEY_MAX];
    struct cask_rec r;
    int rc = cask_seg_pread(s, off, CASK_REC_HDR, hb);
    if (rc != 0) {
        return rc;
    }
    if (!cask_rec_decode(hb, CASK_REC_VMAX, &r)) {
        return CASK_ECORRUPT;
    }
    if (r.type != CASK_REC_PUT) {
        return 0;
    }
    rc = cask_seg_pread(s, off + CASK_REC_HDR, r.klen, hb + CASK_REC_HDR);
    if (rc != 0) {
        return rc;
    }
    const char *key = hb + CASK_REC_HDR;
    uint64_t h = cask_kd_hash(key, r.klen);
    for (;;) {
        struct cask_kd_entry *e = cask_kd_find(sh->kd, h, key, r.klen);
        if (e == NULL) {
            return 0; /* deleted since, by a write that failed too */
        }
        rc = cask_shard_forget(sh, h, e, key, tomb);
        if (rc != EAGAIN) {
            if (rc == 0) {
                sh->lost_undone++;
                sh->dropped_untombed += tomb ? 0 : 1;
                if (!tomb) {
                    tomb_add(sh, s, off, direct);
                }
            }
            return rc;
        }
        /* A roll-over released mu: look the key up again. */
    }
}

/* The newest range, slot i, once staged records were written out or
 * dropped: dropped appends' numbers are taken again by the next appends,
 * which must not read as lost (their own tickets learn the failure from
 * the write's, cask_log_written). mu held. */
static void
clamp_newest(struct cask_shard *sh, unsigned i)
{
    if (sh->lost_hi[i] > sh->app_seq) {
        uint64_t hi =
                sh->app_seq > sh->lost_lo[i] ? sh->app_seq : sh->lost_lo[i];
        __atomic_store_n(&sh->lost_hi[i], hi, __ATOMIC_RELEASE);
    }
}

/* Is where appends first..app_seq went in the active segment kept
 * (note_off in cask_log.c)? mu held. */
static bool
kept_offsets(const struct cask_shard *sh, uint64_t first)
{
    return sh->app_off != NULL && first >= sh->app_off_from &&
           first <= sh->app_seq && sh->app_seq - first < CASK_APPEND_OFFS;
}

struct drop {
    struct cask_shard *sh;
    uint16_t slot;
    uint32_t from;
    uint64_t n;
    uint32_t *offs; /* where the dropped puts lie (cap of them), or NULL */
    uint64_t cap;
};

/* An entry of a put at or past the first lost append of the segment. */
static bool
drop_entry(void *arg, const struct cask_kd_entry *e)
{
    struct drop *d = arg;
    if (e->off == 0 || e->seg != d->slot || e->off < d->from) {
        return false;
    }
    d->sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
    if (d->offs != NULL && d->n < d->cap) {
        d->offs[d->n] = e->off;
    }
    d->n++;
    return true;
}

/* Drop from the keydir the puts of the newest range (a failed commit's
 * not undone yet, or a failed segment sync's), which are the last appends
 * of the active segment: where its first one went is known (note_off in
 * cask_log.c), and every keydir entry at or past it is a put of the range
 * still in effect. Found without reading the segment, whose pages may be
 * what the kernel dropped. No tombstone is appended: the next rewrite
 * writes them (dropped_untombed); until it commits, tombstones made from
 * the records that read back are written straight to the segment's end
 * (tombs_write). mu held. 0, or CASK_ECORRUPT when the offsets kept do
 * not reach that far back. */
static int
drop_newest(struct cask_shard *sh)
{
    /* Staged records first: written, or (a failed shard) dropped and put
     * back in the keydir as the disk has it. */
    int rc = cask_log_write_out(sh);
    if (rc != 0 && rc != CASK_EFAILED) {
        return rc;
    }
    unsigned i = (__atomic_load_n(&sh->lost_n, __ATOMIC_RELAXED) - 1) %
                 CASK_LOST_RING;
    clamp_newest(sh, i);
    if (sh->lost_hi[i] <= sh->lost_lo[i]) {
        return 0;
    }
    uint64_t first = sh->lost_lo[i] + 1;
    struct cask_segment *s = sh->active;
    if (s == NULL || !kept_offsets(sh, first)) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: the appends a failure left uncovered cannot be "
                  "found (%" PRIu64 " of them)",
                  sh->idx, sh->app_seq - sh->lost_lo[i]);
        return CASK_ECORRUPT;
    }
    /* At most one entry an append of the range. */
    uint64_t cap = sh->lost_hi[i] - sh->lost_lo[i];
    struct drop d = {.sh = sh,
                     .slot = s->slot,
                     .from = sh->app_off[first % CASK_APPEND_OFFS],
                     .offs = malloc(cap * sizeof(uint32_t)),
                     .cap = cap};
    (void)cask_kd_remove_if(sh->kd, drop_entry, &d);
    sh->lost_undone += d.n;
    sh->dropped_untombed += d.n;
    struct tombs t = {0};
    for (uint64_t k = 0; k < d.n; k++) {
        if (d.offs != NULL && k < d.cap) {
            tomb_add(sh, s, d.offs[k], &t);
        } else {
            t.missed++;
            t.err = ENOMEM;
        }
    }
    free(d.offs);
    tombs_write(sh, s, &t);
    return 0;
}

/* Undo the puts of the newest lost range (see cask_lost_undo); tomb:
 * with tombstones, else from memory only. mu held. */
static int
undo_newest(struct cask_shard *sh, bool tomb)
{
    /* Records a write batch staged (cask_batch.c) are lost appends too:
     * in the file first, so that the scan below finds them all. (A
     * failed shard writes nothing: they are dropped, and no longer
     * counted in app_seq nor in the range.) */
    int rc = cask_log_write_out(sh);
    if (rc != 0 && !(rc == CASK_EFAILED && !tomb)) {
        return rc;
    }
    unsigned i = (__atomic_load_n(&sh->lost_n, __ATOMIC_RELAXED) - 1) %
                 CASK_LOST_RING;
    clamp_newest(sh, i);
    uint64_t hi = sh->lost_hi[i];
    if (hi <= sh->lost_lo[i]) {
        return 0;
    }
    struct tail t = {.n = hi - sh->lost_lo[i]};
    struct cask_segment *s = sh->active;
    if (s == NULL || (t.off = malloc(t.n * sizeof(uint64_t))) == NULL) {
        return s == NULL ? CASK_ECORRUPT : ENOMEM;
    }
    /* The lost appends are the last n records of the active segment:
     * only appends write it, and a roll-over makes every earlier segment
     * durable (cask_lost_hold waited for one in progress; one whose sync
     * failed leaves its segment active, cask_log_roll). Where they went
     * is kept for the last CASK_APPEND_OFFS appends (copied: the
     * tombstones below take new numbers); a longer run is found by a
     * scan of the segment. */
    if (kept_offsets(sh, sh->lost_lo[i] + 1)) {
        for (uint64_t k = 0; k < t.n; k++) {
            t.off[k] = sh->app_off[(sh->lost_lo[i] + 1 + k) % CASK_APPEND_OFFS];
        }
        t.count = t.n;
    } else {
        int err;
        (void)cask_seg_scan(s, CASK_SEG_HDR, CASK_REC_VMAX, note_record, &t,
                            &err);
        if (err != 0 || t.count < t.n) {
            rc = err != 0 ? err : CASK_ECORRUPT;
            cask_logf(sh->store, CASK_LOG_ERROR,
                      "shard %u: undo of failed writes: seg %08x holds %" PRIu64
                      " records, %" PRIu64 " expected",
                      sh->idx, s->id, t.count, t.n);
            free(t.off);
            return rc;
        }
    }
    s->readers++; /* a tombstone may roll it over: keep it open */
    undoing = true;
    struct tombs direct = {0};
    for (uint64_t k = t.count - t.n; rc == 0 && k < t.count; k++) {
        rc = undo_record(sh, s, t.off[k % t.n], tomb ? NULL : &direct);
    }
    undoing = false;
    if (!tomb) {
        tombs_write(sh, s, &direct);
    }
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
    free(t.off);
    return rc;
}

int
cask_lost_undo(struct cask_shard *sh)
{
    int rc = 0;
    pthread_mutex_lock(&sh->mu);
    bool rewriting = sh->undo_pending && sh->failed && !sh->latched;
    bool maint = rewriting;
    if (maint) {
        /* A shard rewriting a segment whose sync failed appends nothing,
         * tombstones included: its failed puts leave memory now, and the
         * next rewrite hides them on disk. Not while one runs (maint_mu,
         * taken before mu): it counts what was dropped before it began. */
        pthread_mutex_unlock(&sh->mu);
        pthread_mutex_lock(&sh->maint_mu);
        pthread_mutex_lock(&sh->mu);
        rewriting = sh->failed && !sh->latched;
    }
    if (sh->undo_pending) {
        /* in memory only: by the offsets kept, else by a scan of the
         * active segment (not the failed one: it holds no lost append) */
        rc = rewriting && drop_newest(sh) == 0 ? 0
                                               : undo_newest(sh, !rewriting);
        if (rc == 0) {
            sh->undo_pending = false;
        } else {
            cask_logf(sh->store, CASK_LOG_ERROR,
                      "shard %u: undo of failed writes: %s", sh->idx,
                      cask_strerror(rc));
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (maint) {
        pthread_mutex_unlock(&sh->maint_mu);
    }
    return rc;
}

bool
cask_lost_hiding(const struct cask_shard *sh)
{
    return __atomic_load_n(&sh->lost_hiding, __ATOMIC_SEQ_CST);
}

int
cask_lost_fail_active(struct cask_shard *sh)
{
    /* Raised before the range is published and lowered once the
     * tombstones are synced (or known not to be: logged), so that no
     * ticket of the range reads its error in between: a power loss then
     * could bring back the put it answered. The range itself is published
     * at once: a ticket that finds no range could read success (a
     * checkpoint covered the bytes). */
    __atomic_store_n(&sh->lost_hiding, true, __ATOMIC_SEQ_CST);
    uint64_t lo = __atomic_load_n(&sh->synced_seq, __ATOMIC_ACQUIRE);
    if (sh->app_seq > lo) {
        note_range(sh, lo, sh->app_seq);
    }
    int rc = 0;
    if (sh->undo_pending) {
        rc = drop_newest(sh);
        if (rc == 0) {
            sh->undo_pending = false;
        }
    }
    __atomic_store_n(&sh->lost_hiding, false, __ATOMIC_SEQ_CST);
    return rc;
}

void
cask_lost_release(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    sh->held = false;
    pthread_mutex_unlock(&sh->mu);
}
