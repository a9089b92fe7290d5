/* cask_vcache.h - a shard's cache of recently read small values in RAM, so
 * that a hot get is answered from memory instead of reading its record
 * from the page cache with a system call (and hashing it) every time.
 *
 * An entry is named by where its record is, (segment id, offset), and
 * carries the record's cas and key: a written record never changes and a
 * segment id is never used twice in a shard's life, so the bytes cached
 * for a place are the record's bytes for as long as anything can point
 * there. A get serves an entry only when the live keydir entry it just
 * found under the shard mutex names that place and that cas, and the key
 * is the one asked for: a set, delete, touch of another value, flush,
 * expiry, compaction or eviction moves or drops the keydir entry, and
 * with it every way to reach the old bytes. No write has to find the
 * cache to keep it right; stale entries are overwritten as it turns over.
 * Values are cached only after their record passed its checksum.
 *
 * Memory: a ring of entries (oldest overwritten first), an index of
 * 16-byte slots in buckets of one cache line and a doorkeeper of 4 bits a
 * slot, allocated on the first fill. While the ring still grows, every
 * value read is put in; once it turns over, only one whose key was read
 * before not long ago. The ring grows (its pages touched) up to the cache's
 * size, a share of the memory budget set at open; what it has taken is counted
 * (cask_vcache_bytes) and charged to that budget by the shard.
 *
 * Not thread-safe: every call with the owning shard's mu held, but for
 * cask_vcache_prefetch, a hint that may run without it. Must not
 * depend on anything above storage/, nor on the shard.
 */
#ifndef BITCACHED_CASK_VCACHE_H
#define BITCACHED_CASK_VCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest value cached, bytes: small values are the ones whose read costs
 * more than its copy. */
#define CASK_VCACHE_VMAX 1024u

/* The ring grows in steps of this many bytes (charged as it grows). */
#define CASK_VCACHE_STEP (64u * 1024)

struct cask_vcache {
    char *ring;    /* NULL until the first fill */
    size_t cap;    /* ring bytes it may grow to (0: off) */
    size_t grown;  /* ring bytes taken so far (multiple of STEP) */
    size_t wrap;   /* 0 while growing; then the ring's size */
    uint64_t head; /* ring position of the next entry (monotonic) */
    struct cask_vcache_slot *slots;
    size_t nbuckets; /* power of two; 0 until the first fill */
    /* Once the ring turns over, a value is put in only when its key was
     * read recently before (a bit of door set by its hash: the
     * doorkeeper), so that reads of keys read once do not push out the
     * hot ones; the bits are cleared when a quarter of them is set. */
    uint64_t *door;
    size_t door_set; /* bits set */
    uint64_t hits;   /* values served from the cache */
    uint64_t fills;  /* values put in */
};

/* Set vc up empty, to take at most cap bytes, ring and index (less than
 * a STEP and its index: off). */
void cask_vcache_init(struct cask_vcache *vc, size_t cap);

/* Free everything vc holds (it stays usable, empty). */
void cask_vcache_deinit(struct cask_vcache *vc);

/* Bytes vc holds now: its index and the ring bytes taken. */
size_t cask_vcache_bytes(const struct cask_vcache *vc);

/* The cached value of the record at off of segment seg_id when it has
 * that cas and key and vlen value bytes: a pointer to them, valid until
 * the next call on vc, or NULL. Counts a hit. */
const char *cask_vcache_find(struct cask_vcache *vc, uint64_t h,
                             uint32_t seg_id, uint32_t off, uint64_t cas,
                             const void *key, size_t klen, uint32_t vlen);

/* Start fetching the index bucket of the key whose keydir hash is h into
 * the CPU cache, before the keydir is searched for it. Safe without the
 * shard's mu (it may then fetch a stale line; nothing else happens). */
void cask_vcache_prefetch(const struct cask_vcache *vc, uint64_t h);

/* Put the value of the record at off of segment seg_id (cas, key; its
 * checksum checked) in vc. grow_ok: the ring may take another STEP bytes
 * if it needs them (the caller's budget allows it); otherwise it stops
 * growing and turns over within what it has. Returns whether the bytes
 * vc holds changed (the caller charges them). */
bool cask_vcache_fill(struct cask_vcache *vc, uint64_t h, uint32_t seg_id,
                      uint32_t off, uint64_t cas, const void *key, size_t klen,
                      const void *val, uint32_t vlen, bool grow_ok);

/* The bytes a fill of a record with klen key and vlen value bytes would
 * add to what vc holds (0: none; the caller's budget decides grow_ok). */
size_t cask_vcache_need(const struct cask_vcache *vc, size_t klen,
                        uint32_t vlen);

#endif
