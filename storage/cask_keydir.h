/* cask_keydir.h - the in-memory index of one shard: key -> where its newest
 * record lives, plus the metadata a get without a value needs.
 *
 * An open-addressing table (linear probing, backward-shift deletion) of 6-byte
 * slots (16 hash bits beside a 32-bit reference, so a probe rejects other
 * keys without touching their entries) into an arena of fixed-layout
 * entries, with the key inline (keyed) or left on disk (keyless, the shard's
 * own index: 28 bytes an entry): no malloc per entry. Not thread-safe: the
 * owning shard's mutex covers it. Depends on nothing in storage/ but xxHash.
 */
#ifndef BITCACHED_CASK_KEYDIR_H
#define BITCACHED_CASK_KEYDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One key: 28 bytes, plus the key itself in a keyed keydir (rounded up to
 * 4). Pointers stay valid until the entry is removed (the arena never
 * moves). cas is limited to 56 bits (CASK_KD_CAS_MAX), vlen to 31. */
struct cask_kd_entry {
    uint32_t cas_lo;
    uint32_t off; /* record offset in its segment */
    uint32_t flags;
    uint32_t exp;         /* absolute unix seconds, 0 = never (clamped) */
    uint32_t vlen : 31;   /* value bytes (at most 1 GiB) */
    uint32_t checked : 1; /* its record passed its checksum while cached
                           * (cask_verify.h) */
    uint32_t seg : 15;    /* slot in the shard's segment table */
    uint32_t fetched : 1; /* read (get, touch) since written or since its
                           * last second chance (eviction, cask_compact.c) */
    uint32_t at : 16;     /* last access, coarse (cask_atime.h) */
    uint32_t klen : 8;    /* key bytes */
    uint32_t cas_hi : 24; /* cas bits 32..55 */
    char key[];           /* only in a keyed keydir (cask_kd_create) */
};

#define CASK_KD_CAS_MAX ((UINT64_C(1) << 56) - 1)

/* Bytes of an entry before its key: what a copy of its fields takes. */
#define CASK_KD_ENTRY_FIXED 28u
_Static_assert(offsetof(struct cask_kd_entry, key) == CASK_KD_ENTRY_FIXED,
               "an entry's fields take CASK_KD_ENTRY_FIXED bytes");

static inline uint64_t
cask_kd_cas(const struct cask_kd_entry *e)
{
    return (uint64_t)e->cas_hi << 32 | e->cas_lo;
}

static inline void
cask_kd_set_cas(struct cask_kd_entry *e, uint64_t cas)
{
    e->cas_lo = (uint32_t)cas;
    e->cas_hi = (uint32_t)(cas >> 32) & 0xffffffu;
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

/* Whether e is the entry of key (klen bytes): a keyless keydir keeps only
 * 16 hash bits of a key, so two keys can share them; this reads what it
 * needs (the key of e's record) to tell them apart. */
typedef bool (*cask_kd_match_fn)(void *arg, const struct cask_kd_entry *e,
                                 const void *key, size_t klen);

/* Allocate an empty keydir that keeps every key in memory (e->key); NULL
 * when out of memory. */
struct cask_keydir *cask_kd_create(void);

/* Allocate an empty keydir that keeps no keys (e->key does not exist):
 * find asks match about each entry whose hash bits agree with the key's.
 * NULL when out of memory. */
struct cask_keydir *cask_kd_create_keyless(cask_kd_match_fn match,
                                           void *match_arg);
void cask_kd_destroy(struct cask_keydir **kd);

/* The hash the keydir indexes by: XXH3 with a per-process random seed (not
 * stable across restarts; shard placement uses its own, unseeded hash). */
uint64_t cask_kd_hash(const void *key, size_t klen);

/* Entry for key, or NULL. h must be cask_kd_hash(key, klen). */
struct cask_kd_entry *cask_kd_find(struct cask_keydir *kd, uint64_t h,
                                   const void *key, size_t klen);

/* Exchange the contents of a and b (same kind: keyed or keyless). a stays
 * at its address, so a caller that prefetches through it without the lock
 * that covers it (cask_kd_prefetch) never reads freed memory; both under
 * that lock otherwise. */
void cask_kd_swap(struct cask_keydir *a, struct cask_keydir *b);

/* Start loading the table slot where a lookup of h begins (a hint: no
 * effect on the keydir), for a caller that will look h up shortly. Safe
 * without the lock that covers kd (it may then fetch a stale line). */
void cask_kd_prefetch(const struct cask_keydir *kd, uint64_t h);

/* The first entry whose hash bits (and klen) agree with the key's and for
 * which match(arg, e, NULL, klen) says yes, or NULL: for callers that can
 * tell an entry apart without its key (by where its record is, or by a cas
 * only that key's records carry), or that verify the key in their own way. */
struct cask_kd_entry *cask_kd_find_if(struct cask_keydir *kd, uint64_t h,
                                      size_t klen, cask_kd_match_fn match,
                                      void *arg);

/* Add an entry for key, which must be absent; the caller fills every field
 * but key and klen (the others start at 0). NULL when out of memory. */
struct cask_kd_entry *cask_kd_insert(struct cask_keydir *kd, uint64_t h,
                                     const void *key, size_t klen);

/* Bulk loading (recovery): while on, tables grow by half their size at a
 * time instead of by 1/8 (fewer rehashes per key); turning it off shrinks
 * each table back to the load the small steps keep. */
void cask_kd_bulk(struct cask_keydir *kd, bool on);

/* Make room for n entries in all (an estimate, as recovery has from its
 * hint files), so that inserting them rehashes no table, or hardly one:
 * each table is resized once, up front, never shrunk. False when memory
 * ran out (tables that could not grow then grow as entries arrive). */
bool cask_kd_reserve(struct cask_keydir *kd, size_t n);

/* How many times an insert found its table full and grew it (tests and
 * figures: a reserve that fit leaves it unchanged). */
uint64_t cask_kd_grows(const struct cask_keydir *kd);

/* Remove e (which must be in kd, inserted with the same h); e is invalid
 * afterwards. */
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

/* Remove every entry for which pred(arg, e) says yes (pred is asked
 * before e goes, once yes; it must not insert or remove), without their
 * keys or hashes: for entries whose keys can no longer be read. Walks the
 * whole table. Returns how many went. */
size_t cask_kd_remove_if(struct cask_keydir *kd,
                         bool (*pred)(void *arg, const struct cask_kd_entry *e),
                         void *arg);

size_t cask_kd_count(const struct cask_keydir *kd);

/* Bytes of memory held (arena chunks, table, bookkeeping). O(1). */
size_t cask_kd_bytes(const struct cask_keydir *kd);

/* Slots of the hash tables (every stripe's), 6 bytes each. */
size_t cask_kd_slots(const struct cask_keydir *kd);

/* Bytes cask_kd_insert(kd, h, key, klen) would allocate now (0 when it
 * fits in memory already held: a free entry, room in the last chunk and
 * in the stripe's table). */
size_t cask_kd_insert_cost(const struct cask_keydir *kd, uint64_t h,
                           size_t klen);

#endif
