/* cask_recover.c - recovery of one shard at open: finish a committed
 * compaction (the retired file), list the segments, load each one's hint and
 * scan the rest, rebuild the keydir with tombstones and touch records
 * applied, resynchronise over damage, truncate only a torn tail, and pick
 * the segment that takes appends.
 *
 * Runs before the shard is shared with any other thread, so it takes no
 * lock. Must not depend on anything above storage/.
 */
#include "storage/cask_shard.h"

#include "storage/cask_hint.h"
#include "storage/cask_record.h"
#include "storage/cask_retire.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct recov {
    struct cask_shard *sh;
    struct cask_segment *seg;
    struct cask_keydir *tombs;   /* newest tombstone per deleted key; the
                                  * entry's off/vlen hold its seq */
    struct cask_keydir *touches; /* newest touch record per key: cas, seq
                                  * (in off/vlen) and exp */
    uint64_t flush_cas;
    int err;
};

static uint64_t
entry_seq(struct cask_shard *sh, const struct cask_kd_entry *e)
{
    char hb[CASK_REC_HDR];
    if (cask_seg_pread(sh->segs[e->seg], e->off, sizeof(hb), hb) != 0) {
        return 0;
    }
    return cask_get64(hb + 8);
}

/* Is record (cas, seq) newer than what e indexes? Ties on cas are touches
 * (or copies left by an interrupted compaction): seq decides. */
static bool
newer_than(struct cask_shard *sh, uint64_t cas, uint64_t seq,
           const struct cask_kd_entry *e)
{
    uint64_t ec = cask_kd_cas(e);
    if (cas != ec) {
        return cas > ec;
    }
    return seq > entry_seq(sh, e);
}

/* Is record (cas, seq) no newer than the tombstone t? */
static bool
tomb_covers(const struct cask_kd_entry *t, uint64_t cas, uint64_t seq)
{
    uint64_t tcas = cask_kd_cas(t);
    uint64_t tseq = (uint64_t)t->vlen << 32 | t->off;
    return cas < tcas || (cas == tcas && seq <= tseq);
}

static void
recover_rec(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct recov *rv = arg;
    struct cask_shard *sh = rv->sh;
    struct cask_segment *seg = rv->seg;

    sh->records_recovered++;
    if (r->cas < seg->min_cas) {
        seg->min_cas = r->cas;
    }
    if (r->cas > seg->max_cas) {
        seg->max_cas = r->cas;
    }
    if (r->cas > sh->max_cas) {
        sh->max_cas = r->cas;
    }
    if (r->seq > sh->max_cas) {
        sh->max_cas = r->seq;
    }
    if (r->cas <= rv->flush_cas) {
        return; /* flushed, and so is every older record of the key */
    }
    uint64_t h = cask_kd_hash(key, r->klen);
    if (r->type == CASK_REC_TOUCH) {
        /* Applied once every segment is read (touch_apply): the put it
         * belongs to may come later, from a higher-id compaction output. */
        struct cask_kd_entry *u = cask_kd_find(rv->touches, h, key, r->klen);
        if (u == NULL) {
            u = cask_kd_insert(rv->touches, h, key, r->klen);
            if (u == NULL) {
                rv->err = ENOMEM;
                return;
            }
        } else if (tomb_covers(u, r->cas, r->seq)) {
            return; /* a newer touch is already known */
        }
        cask_kd_set_cas(u, r->cas);
        u->off = (uint32_t)r->seq;
        u->vlen = (uint32_t)(r->seq >> 32);
        u->exp = cask_kd_exp32(r->exp_abs_s);
        return;
    }
    struct cask_kd_entry *e = cask_kd_find(sh->kd, h, key, r->klen);
    struct cask_kd_entry *t = cask_kd_find(rv->tombs, h, key, r->klen);
    if (r->type == CASK_REC_TOMB) {
        if (e != NULL) {
            if (!newer_than(sh, r->cas, r->seq, e)) {
                return;
            }
            sh->segs[e->seg]->live_bytes -= cask_shard_entry_len(e);
            cask_kd_remove(sh->kd, h, e);
        }
        if (t == NULL) {
            t = cask_kd_insert(rv->tombs, h, key, r->klen);
            if (t == NULL) {
                rv->err = ENOMEM;
                return;
            }
        } else if (tomb_covers(t, r->cas, r->seq)) {
            return;
        }
        cask_kd_set_cas(t, r->cas);
        t->off = (uint32_t)r->seq;
        t->vlen = (uint32_t)(r->seq >> 32);
        return;
    }
    if (t != NULL && tomb_covers(t, r->cas, r->seq)) {
        return; /* deleted after this was written */
    }
    if (e == NULL) {
        e = cask_kd_insert(sh->kd, h, key, r->klen);
        if (e == NULL) {
            rv->err = ENOMEM;
            return;
        }
    } else if (!newer_than(sh, r->cas, r->seq, e)) {
        return;
    }
    cask_shard_index_put(sh, e, r, seg->slot, (uint32_t)off);
}

/* A touch record sets the expiry of the put with its cas, unless that put
 * was rewritten later (a compaction copy re-stamped with the expiry in
 * effect and a fresh seq). */
static void
touch_apply(void *arg, struct cask_kd_entry *u)
{
    struct recov *rv = arg;
    struct cask_shard *sh = rv->sh;
    uint64_t h = cask_kd_hash(u->key, u->klen);
    struct cask_kd_entry *e = cask_kd_find(sh->kd, h, u->key, u->klen);
    uint64_t useq = (uint64_t)u->vlen << 32 | u->off;
    if (e != NULL && cask_kd_cas(e) == cask_kd_cas(u) &&
        useq > entry_seq(sh, e)) {
        e->exp = u->exp;
    }
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment ids in the shard directory, sorted; stale temp files removed. */
static int
list_segments(struct cask_shard *sh, uint32_t **ids, size_t *n)
{
    DIR *d = opendir(sh->dir);
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    if (d == NULL) {
        return errno;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[16];
        size_t nl = strlen(de->d_name);
        if (nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
            /* A hint or state temp file left by a crash. */
            unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (sscanf(de->d_name, "%8x.%15s", &id, ext) != 2 ||
            strcmp(ext, "seg") != 0 || nl != 12) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *ni = realloc(*ids, cap * sizeof(uint32_t));
            if (ni == NULL) {
                closedir(d);
                return ENOMEM;
            }
            *ids = ni;
        }
        (*ids)[(*n)++] = id;
    }
    if (*n > 1) {
        qsort(*ids, *n, sizeof(uint32_t), cmp_u32);
    }
    /* A hint whose segment is gone would wrongly describe a later segment
     * that gets the same id: remove it. */
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[16];
        if (sscanf(de->d_name, "%8x.%15s", &id, ext) != 2 ||
            strcmp(ext, "hint") != 0 || strlen(de->d_name) != 13) {
            continue;
        }
        uint32_t key = id;
        if (*n == 0 ||
            bsearch(&key, *ids, *n, sizeof(uint32_t), cmp_u32) == NULL) {
            cask_logf(sh->store, CASK_LOG_WARN,
                      "shard %u: hint %s has no segment; removed", sh->idx,
                      de->d_name);
            unlinkat(dirfd(d), de->d_name, 0);
        }
    }
    closedir(d);
    return 0;
}

/* Scan segment s from cov. Invalid data followed by a valid record is
 * skipped (the scan resynchronises on that record; the bytes are logged
 * and counted); invalid data up to the end is a torn tail and truncated
 * (nothing valid follows it). A read error is returned: it says nothing
 * about the data, so nothing is cut. */
static int
recover_scan(struct cask_shard *sh, struct cask_segment *s, uint64_t cov,
             struct recov *rv)
{
    struct cask *c = sh->store;
    uint64_t pos = cov;
    int err;

    for (;;) {
        uint64_t end =
                cask_seg_scan(s, pos, CASK_REC_VMAX, recover_rec, rv, &err);
        if (err == 0 && end < s->flushed) {
            uint64_t next = cask_seg_resync(s, end, CASK_REC_VMAX, &err);
            if (err == 0 && next < s->flushed) {
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: segment %08x: %" PRIu64
                          " damaged bytes at offset %" PRIu64
                          " skipped; the records after them are kept",
                          sh->idx, s->id, next - end, end);
                sh->bytes_damaged += next - end;
                pos = next;
                continue;
            }
            if (err == 0) {
                uint64_t lost = s->flushed - end;
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: segment %08x: torn or corrupt tail, "
                          "truncated %" PRIu64 " bytes at offset %" PRIu64,
                          sh->idx, s->id, lost, end);
                sh->bytes_truncated += lost;
                err = cask_seg_truncate(s, end);
                if (err != 0) {
                    cask_logf(c, CASK_LOG_ERROR, "shard %u: truncate %08x: %s",
                              sh->idx, s->id, strerror(err));
                }
                return err;
            }
        }
        if (err != 0) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: read segment %08x at %" PRIu64
                      ": %s; refusing to open rather than cut the data",
                      sh->idx, s->id, end, strerror(err));
        }
        return err;
    }
}

int
cask_shard_recover(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint32_t *ids = NULL;
    size_t n = 0;
    struct recov rv = {.sh = sh, .flush_cas = atomic_load(&c->flush_cas)};
    uint32_t retired_max;
    unsigned removed;
    /* Finish a committed compaction before reading anything. */
    int rc = cask_retire_apply(sh->dir, &retired_max, &removed);
    if (rc == EINVAL) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: the retired-segments file is damaged and "
                  "ignored; if a compaction was cut short, keys it had "
                  "deleted may be back",
                  sh->idx);
    } else if (rc != 0 && rc != ENOENT) {
        cask_logf(c, CASK_LOG_ERROR, "shard %u: retired-segments file: %s",
                  sh->idx, strerror(rc));
        return rc;
    } else if (removed > 0) {
        cask_logf(c, CASK_LOG_INFO,
                  "shard %u: removed %u segments of a committed compaction "
                  "cut short",
                  sh->idx, removed);
    }
    if (retired_max >= sh->next_id) {
        sh->next_id = retired_max + 1; /* never reuse a listed id */
    }
    rc = list_segments(sh, &ids, &n);
    if (rc != 0) {
        return rc;
    }
    rv.tombs = cask_kd_create();
    rv.touches = cask_kd_create();
    if (rv.tombs == NULL || rv.touches == NULL) {
        cask_kd_destroy(&rv.tombs);
        cask_kd_destroy(&rv.touches);
        free(ids);
        return ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct cask_segment *s = NULL;
        uint64_t dropped = 0, cov = 0;
        bool bad_header;
        rc = cask_seg_open(&s, sh->dir, ids[i], &dropped, &bad_header);
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR, "shard %u: open segment %08x: %s",
                      sh->idx, ids[i], strerror(rc));
            goto out;
        }
        if (dropped > 0) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: segment %08x had a torn header; dropped "
                      "%" PRIu64 " bytes",
                      sh->idx, s->id, dropped);
            sh->bytes_truncated += dropped;
        }
        if (bad_header) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: segment %08x had a damaged header; "
                      "rewritten, records checked one by one",
                      sh->idx, s->id);
        }
        rc = cask_shard_add_slot(sh, s);
        if (rc != 0) {
            cask_seg_close(&s);
            goto out;
        }
        rv.seg = s;
        rc = cask_hint_load(sh->dir, s, CASK_REC_VMAX, recover_rec, &rv, &cov,
                            &s->hint_bytes);
        if (rc == 0) {
            s->hint_len = cov;
        } else {
            if (rc != ENOENT) {
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: hint of segment %08x unusable; "
                          "scanning the segment",
                          sh->idx, s->id);
                cask_hint_remove(sh->dir, s->id);
            }
            cov = CASK_SEG_HDR;
        }
        rc = recover_scan(sh, s, cov, &rv);
        if (rc != 0) {
            goto out;
        }
        if (rv.err != 0) {
            rc = rv.err;
            goto out;
        }
        if (s->id >= sh->next_id) {
            sh->next_id = s->id + 1;
        }
    }
    cask_kd_foreach(rv.touches, touch_apply, &rv);
    struct cask_segment *last = NULL;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && (last == NULL || s->id > last->id)) {
            last = s;
        }
    }
    /* Keep appending to the newest segment only when recovery scanned all
     * of it (it had no hint: the store stopped without closing). After a
     * clean close its hint was trusted unverified, and appending would
     * later force a rescan that a damaged record could cut short. */
    if (last != NULL && last->flushed < c->opt.segment_size &&
        (last->hint_len == 0 || last->flushed == CASK_SEG_HDR)) {
        rc = cask_seg_make_active(last, 0);
        if (rc != 0) {
            goto out;
        }
        cask_hint_remove(sh->dir, last->id);
        last->hint_len = 0;
        last->hint_bytes = 0;
        sh->active = last;
    } else {
        rc = cask_shard_new_segment(sh, 0, false, &sh->active);
        if (rc == 0 && last != NULL) {
            /* The newest segment kept its reserve through the restart in
             * case the disk was full; it was not. */
            cask_shard_release_reserve(last);
        }
        if (rc == ENOSPC || rc == EDQUOT) {
            /* A full disk must not keep the store from starting: serve
             * reads; sets fail until space returns. Deletes go to the
             * newest segment, into the reserve it kept. */
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: no space for a new segment (%s); sets "
                      "fail until space returns, deletes use the reserve",
                      sh->idx, strerror(rc));
            sh->active = NULL;
            rc = 0;
            /* The segment with the most space reserved past its end (the
             * active one before the restart, usually) takes appends. */
            struct cask_segment *best = NULL;
            for (uint32_t i = 0; i < sh->nslots; i++) {
                struct cask_segment *s = sh->segs[i];
                if (s != NULL && s->prealloc_end > s->size &&
                    (best == NULL || s->prealloc_end - s->size >
                                             best->prealloc_end - best->size)) {
                    best = s;
                }
            }
            if (best == NULL) {
                best = last;
            }
            if (best != NULL && cask_seg_make_active(best, 0) == 0) {
                cask_hint_remove(sh->dir, best->id);
                best->hint_len = 0;
                best->hint_bytes = 0;
                sh->active = best;
            }
        }
    }
out:
    cask_kd_destroy(&rv.tombs);
    cask_kd_destroy(&rv.touches);
    free(ids);
    return rc;
}
