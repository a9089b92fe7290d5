/* cask_evnote.c - eviction notes for cask_options.evicted (see
 * cask_evnote.h). Owns the buffers of one run's notes.
 */
#include "storage/cask_evnote.h"

#include "storage/cask_atime.h"
#include "storage/cask_keydir.h"

#include <stdlib.h>
#include <string.h>

void
cask_evnote_init(struct cask_evnote *n, const struct cask_options *o)
{
    memset(n, 0, sizeof(*n));
    if (o->evicted != NULL &&
        (o->evicted_wanted == NULL || o->evicted_wanted(o->evicted_arg))) {
        n->opt = o;
    }
}

uint32_t
cask_evnote_key(struct cask_evnote *n, const char *key, size_t klen)
{
    if (n->opt == NULL || n->nkeys == CASK_EVICTED_MAX) {
        return CASK_EVNOTE_NONE;
    }
    if (n->keys_len + klen > n->keys_cap) {
        size_t nc = n->keys_cap ? n->keys_cap * 2 : 16384;
        while (nc < n->keys_len + klen) {
            nc *= 2;
        }
        char *k = realloc(n->keys, nc);
        if (k == NULL) {
            return CASK_EVNOTE_NONE;
        }
        n->keys = k;
        n->keys_cap = nc;
    }
    memcpy(n->keys + n->keys_len, key, klen);
    n->keys_len += klen;
    n->nkeys++;
    return (uint32_t)(n->keys_len - klen);
}

void
cask_evnote_dropped(struct cask_evnote *n, uint32_t handle,
                    const struct cask_kd_entry *e, int64_t now)
{
    if (n->opt == NULL) {
        return;
    }
    if (handle == CASK_EVNOTE_NONE) {
        n->lost++;
        return;
    }
    if (n->n == n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 64;
        struct cask_evicted *v = realloc(n->ev, nc * sizeof(*v));
        if (v == NULL) {
            n->lost++;
            return;
        }
        n->ev = v;
        n->cap = nc;
    }
    n->ev[n->n++] = (struct cask_evicted){
            .key = n->keys + handle,
            .klen = e->klen,
            .flags = e->flags,
            .vlen = e->vlen,
            .exp_abs_s = e->exp,
            .atime_s = cask_at_time(e->at, now),
            .fetched = e->fetched,
    };
}

void
cask_evnote_tell(struct cask_evnote *n)
{
    if (n->opt != NULL && (n->n > 0 || n->lost > 0)) {
        n->opt->evicted(n->opt->evicted_arg, n->ev, n->n, n->lost);
    }
    free(n->keys);
    free(n->ev);
    memset(n, 0, sizeof(*n));
}
