/* cask_segtab.c - a shard's segment table and the byte accounting that
 * rides on it: slots for segments, creating the next segment, a keydir
 * entry's record length, moving an entry's bytes between segments' live
 * counts when it is pointed at a new record, and whether a tombstone must
 * stay because an older segment could hold a record it hides.
 *
 * Called with the shard's mu held by the shard's operations, its log,
 * recovery and compaction; calls only segments, hints, records and the
 * keydir.
 */
#include "storage/cask_segtab.h"

#include "storage/cask_atime.h"
#include "storage/cask_hint.h"
#include "storage/cask_internal.h"
#include "storage/cask_record.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

uint64_t
cask_segtab_entry_len(const struct cask_kd_entry *e)
{
    return cask_rec_len(e->klen, e->vlen);
}

int
cask_segtab_add(struct cask_shard *sh, struct cask_segment *s)
{
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] == NULL) {
            sh->segs[i] = s;
            s->slot = (uint16_t)i;
            return 0;
        }
    }
    if (sh->nslots >= CASK_MAX_SLOTS) {
        return EMFILE;
    }
    uint32_t n = sh->nslots ? sh->nslots * 2 : 16;
    if (n > CASK_MAX_SLOTS) {
        n = CASK_MAX_SLOTS;
    }
    struct cask_segment **ns = realloc(sh->segs, n * sizeof(*ns));
    if (ns == NULL) {
        return ENOMEM;
    }
    for (uint32_t i = sh->nslots; i < n; i++) {
        ns[i] = NULL;
    }
    sh->segs = ns;
    s->slot = (uint16_t)sh->nslots;
    sh->segs[sh->nslots] = s;
    sh->nslots = n;
    return 0;
}

int
cask_segtab_new_segment(struct cask_shard *sh, size_t buf_cap, bool is_output,
                        struct cask_segment **out)
{
    struct cask_segment *s = NULL;
    /* An id can come back after its segment was compacted away: never
     * let a hint of that old file describe the new one. */
    cask_hint_remove(sh->dir, sh->next_id);
    int rc = cask_seg_create(&s, sh->dir, sh->next_id, buf_cap);
    if (rc != 0) {
        return rc;
    }
    s->is_output = is_output;
    rc = cask_segtab_add(sh, s);
    if (rc != 0) {
        unlink(s->path);
        cask_seg_close(&s);
        return rc;
    }
    sh->next_id++;
    *out = s;
    return 0;
}

/* A tombstone (or expiry) for a key with this cas must stay on disk while a
 * segment outside the running compaction could hold a record it hides: one
 * with a lower cas, or with the same cas (a touch keeps the cas, so the put
 * it re-stamped carries exactly this cas). */
bool
cask_segtab_tomb_needed(struct cask_shard *sh, uint64_t cas)
{
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && !s->compacting && !s->is_output && s->min_cas <= cas) {
            return true;
        }
    }
    return false;
}

/* Point key at a freshly appended put record (e may be NULL: insert). */
void
cask_segtab_index_put(struct cask_shard *sh, struct cask_kd_entry *e,
                      const struct cask_rec *r, uint16_t slot, uint32_t off)
{
    if (e->off != 0) { /* 0: a fresh entry (records start past the header) */
        sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
    }
    cask_kd_set_cas(e, r->cas);
    e->off = off;
    e->vlen = r->vlen;
    e->flags = r->flags;
    e->exp = cask_kd_exp32(r->exp_abs_s);
    if (e->exp != 0) {
        sh->crawl_exp = true;
    }
    e->seg = slot;
    e->fetched = 0; /* a new value has not been read yet */
    e->at = cask_at_stamp(cask_now(sh->store)); /* written: accessed now */
    e->checked = 0; /* not checked yet (cask_verify.h) */
    sh->segs[slot]->live_bytes += cask_rec_len(r->klen, r->vlen);
}
