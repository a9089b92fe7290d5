/* cask_keydir.h - the in-memory index of one shard: key -> where its newest
 * record lives, plus the metadata a get without a value needs.
 *
 * An open-addressing table (linear probing, backward-shift deletion) of 32-bit
 * references into an arena of fixed-layout entries that carry the key inline:
 * no malloc per entry. Not thread-safe: the owning shard's mutex covers it.
 * Depends on nothing in storage/ but xxHash.
 */
#ifndef BITCACHED_CASK_KEYDIR_H
#define BITCACHED_CASK_KEYDIR_H

#include <stddef.h>
#include <stdint.h>

/* One key. 28 bytes plus the key, rounded up to 4. Pointers stay valid until
 * the entry is removed (the arena never moves). */
struct cask_kd_entry {
    uint32_t cas_lo;
    uint32_t cas_hi;
    uint32_t off; /* record offset in its segment */
    uint32_t vlen;
    uint32_t flags;
    uint32_t exp; /* absolute unix seconds, 0 = never (clamped to u32) */
    uint16_t seg; /* slot in the shard's segment table */
    uint8_t klen;
    uint8_t mark; /* free for the owner's use (recovery) */
    char key[];
};

static inline uint64_t
cask_kd_cas(const struct cask_kd_entry *e)
{
    return (uint64_t)e->cas_hi << 32 | e->cas_lo;
}

static inline void
cask_kd_set_cas(struct cask_kd_entry *e, uint64_t cas)
{
    e->cas_lo = (uint32_t)cas;
    e->cas_hi = (uint32_t)(cas >> 32);
}

static inline uint32_t
cask_kd_exp32(int64_t exp_abs_s)
{
    if (exp_abs_s <= 0) {
        return exp_abs_s == 0 ? 0 : 1;
    }
    return exp_abs_s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)exp_abs_s;
}

struct cask_keydir;

/* Allocate an empty keydir; NULL when out of memory. */
struct cask_keydir *cask_kd_create(void);
void cask_kd_destroy(struct cask_keydir **kd);

/* The hash the keydir indexes by: XXH3 with a per-process random seed (not
 * stable across restarts; shard placement uses its own, unseeded hash). */
uint64_t cask_kd_hash(const void *key, size_t klen);

/* Entry for key, or NULL. h must be cask_kd_hash(key, klen). */
struct cask_kd_entry *cask_kd_find(struct cask_keydir *kd, uint64_t h,
                                   const void *key, size_t klen);

/* Add an entry for key, which must be absent; the caller fills every field
 * but key and klen. NULL when out of memory. */
struct cask_kd_entry *cask_kd_insert(struct cask_keydir *kd, uint64_t h,
                                     const void *key, size_t klen);

/* Remove e (which must be in kd); e is invalid afterwards. */
void cask_kd_remove(struct cask_keydir *kd, uint64_t h,
                    struct cask_kd_entry *e);

/* Call fn on every entry; fn must not insert or remove. */
void cask_kd_foreach(struct cask_keydir *kd,
                     void (*fn)(void *arg, struct cask_kd_entry *e), void *arg);

/* Walk positions run from 0 to cask_kd_range_end(). Call fn on every entry
 * whose position lies in [lo, hi); fn must not insert or remove. Returns how
 * many it visited. An entry keeps its position while it exists, whatever
 * else is inserted or removed. */
uint64_t cask_kd_range_end(void);
size_t cask_kd_foreach_range(struct cask_keydir *kd, uint64_t lo, uint64_t hi,
                             void (*fn)(void *arg, struct cask_kd_entry *e),
                             void *arg);

size_t cask_kd_count(const struct cask_keydir *kd);

/* Bytes of memory held (arena chunks, table, bookkeeping). */
size_t cask_kd_bytes(const struct cask_keydir *kd);

#endif
