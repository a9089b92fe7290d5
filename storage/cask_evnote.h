/* cask_evnote.h - what an eviction run tells cask_options.evicted about
 * the items it dropped (memcached's `watch evictions`): the keys of the
 * items it may drop, collected as it reads them, and the metadata of
 * those really dropped, handed to the hook once the run is over and no
 * lock is held. At most CASK_EVICTED_MAX items a run are described; the
 * others are counted as lost. Used by cask_compact.c; no locks of its own.
 */
#ifndef BITCACHED_CASK_EVNOTE_H
#define BITCACHED_CASK_EVNOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

struct cask_kd_entry;

#define CASK_EVNOTE_NONE UINT32_MAX

struct cask_evnote {
    const struct cask_options *opt; /* NULL: nobody listens this run */
    char *keys;                     /* the keys, back to back */
    size_t keys_len, keys_cap;
    struct cask_evicted *ev; /* described items (keys point into keys) */
    size_t n, cap;
    uint32_t nkeys;
    uint64_t lost;
};

/* Start a run's notes (all zero before): collect only when o has a hook
 * and its evicted_wanted says so. */
void cask_evnote_init(struct cask_evnote *n, const struct cask_options *o);

/* Keep the key of an item the run may drop; returns its handle, or
 * CASK_EVNOTE_NONE when not collecting, past the bound or out of memory. */
uint32_t cask_evnote_key(struct cask_evnote *n, const char *key, size_t klen);

/* The item of handle (from cask_evnote_key) was dropped; e is its keydir
 * entry, read with the shard mutex held, now the store's clock. Only
 * after the run's last cask_evnote_key (the keys stay where they are). */
void cask_evnote_dropped(struct cask_evnote *n, uint32_t handle,
                         const struct cask_kd_entry *e, int64_t now);

/* Hand what was collected to the hook (call with no lock held) and free
 * it; n is back to all zero. */
void cask_evnote_tell(struct cask_evnote *n);

#endif
