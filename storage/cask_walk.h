/* cask_walk.h - visit the live keys of a store, one shard at a time and in
 * small batches, for key listings (memcached's lru_crawler metadump and stats
 * cachedump) and per-size figures. Part of the storage library; knows
 * nothing of the protocol. */
#ifndef BITCACHED_CASK_WALK_H
#define BITCACHED_CASK_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

/* One live key as the walk sees it. key points into the store and is valid
 * only during the callback. */
struct cask_walk_entry {
    const char *key;
    size_t klen;
    uint32_t flags;
    int64_t exp_abs_s; /* 0 = never */
    uint64_t cas;
    uint32_t vlen;
    bool fetched;    /* read since it was written */
    int64_t atime_s; /* last access, unix seconds (cask_get_fetch) */
};

/* Where a walk has got to: start with {0}. */
struct cask_walk_pos {
    unsigned shard;
    uint64_t hash; /* next hash range to visit in that shard */
};

/* Visit about `batch` live keys (not expired, not flushed) from *pos on,
 * collected under one shard's lock and handed to fn after it is released
 * (their keys are read from disk: this can block); *pos advances past
 * them. fn must not call the store. A key present and unchanged for the whole
 * walk is visited exactly once; one written, deleted or expiring during the
 * walk may or may not be. Returns true while keys may remain, false once every
 * shard is done. */
bool cask_walk(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
               void (*fn)(void *arg, const struct cask_walk_entry *e),
               void *arg);

/* cask_walk for the entries keep(arg, e) accepts, asked before their key is
 * read (e->key is NULL then; every other field is set): the keys of the
 * entries it refuses are never read. keep runs with the shard's lock held
 * and must only look at e. */
bool cask_walk_if(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
                  bool (*keep)(void *arg, const struct cask_walk_entry *e),
                  void (*fn)(void *arg, const struct cask_walk_entry *e),
                  void *arg);

/* cask_walk without the keys: e->key is NULL (klen is still set), and no
 * record is read, so a batch costs no disk read and holds no segment.
 * For per-size figures (memcached's stats items and stats slabs), which a
 * walk that read every key made take a system call per key. */
bool cask_walk_meta(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
                    void (*fn)(void *arg, const struct cask_walk_entry *e),
                    void *arg);

#endif
