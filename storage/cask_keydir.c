/* cask_keydir.c - the per-shard key index: open addressing over 32-bit
 * references into a chunked arena of entries with the key inline.
 *
 * Owns its table and arena. Not thread-safe (the shard mutex covers it).
 * Depends on nothing in storage/ but xxHash.
 *
 * A reference is (chunk << 14 | offset / 4): entries are 4-byte aligned in
 * 64 KiB chunks (small, so a shard wastes little on its last one), at most
 * 16383 chunks (1 GiB) per keydir. A table slot holds
 * (4-bit hash tag << 28 | ref + 1), 0 marking an empty slot; the tag lets a
 * probe skip most non-matching entries without touching them (a cache miss
 * each). Freed entries go on a free list per key length, so a key deleted
 * and re-added reuses its bytes.
 */
#include "storage/cask_keydir.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define CHUNK_BITS 16u
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 16383u
#define REF_MASK   0x0fffffffu
#define OFF_MASK   ((CHUNK_SIZE >> 2) - 1)
#define LOAD_NUM   4u /* grow past 4/5 full */
#define LOAD_DEN   5u
#define MIN_CAP    64u

struct cask_keydir {
    uint32_t *slots; /* ref + 1, 0 = empty */
    uint32_t cap;
    uint32_t count;
    char **chunks;
    uint32_t nchunks;
    uint32_t chunks_cap;
    uint32_t used;       /* bytes used in the last chunk */
    uint32_t freel[256]; /* per key length: ref + 1 of a free entry */
};

static inline uint32_t
entry_size(size_t klen)
{
    return (uint32_t)((sizeof(struct cask_kd_entry) + klen + 3) & ~(size_t)3);
}

static inline struct cask_kd_entry *
deref(const struct cask_keydir *kd, uint32_t ref)
{
    return (struct cask_kd_entry *)(kd->chunks[ref >> (CHUNK_BITS - 2)] +
                                    ((size_t)(ref & OFF_MASK) << 2));
}

static inline uint32_t
tag_of(uint64_t h)
{
    /* bits the shard choice (low bits) and home slot (high bits) leave */
    return (uint32_t)(h >> 24) & 0xfu;
}

static inline uint32_t
slot_val(uint32_t tag, uint32_t ref)
{
    return tag << 28 | (ref + 1);
}

static inline uint32_t
slot_ref(uint32_t s)
{
    return (s & REF_MASK) - 1;
}

static inline uint32_t
home(uint64_t h, uint32_t cap)
{
    return (uint32_t)(((h >> 32) * (uint64_t)cap) >> 32);
}

uint64_t
cask_kd_hash(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

struct cask_keydir *
cask_kd_create(void)
{
    struct cask_keydir *kd = calloc(1, sizeof(*kd));
    if (kd == NULL) {
        return NULL;
    }
    kd->cap = MIN_CAP;
    kd->slots = calloc(kd->cap, sizeof(uint32_t));
    if (kd->slots == NULL) {
        free(kd);
        return NULL;
    }
    return kd;
}

void
cask_kd_destroy(struct cask_keydir **kdp)
{
    struct cask_keydir *kd = *kdp;
    if (kd == NULL) {
        return;
    }
    for (uint32_t i = 0; i < kd->nchunks; i++) {
        free(kd->chunks[i]);
    }
    free(kd->chunks);
    free(kd->slots);
    free(kd);
    *kdp = NULL;
}

struct cask_kd_entry *
cask_kd_find(struct cask_keydir *kd, uint64_t h, const void *key, size_t klen)
{
    uint32_t i = home(h, kd->cap);
    uint32_t tag = tag_of(h);
    for (;;) {
        uint32_t s = kd->slots[i];
        if (s == 0) {
            return NULL;
        }
        if (s >> 28 == tag) {
            struct cask_kd_entry *e = deref(kd, slot_ref(s));
            if (e->klen == klen && memcmp(e->key, key, klen) == 0) {
                return e;
            }
        }
        if (++i == kd->cap) {
            i = 0;
        }
    }
}

static bool
grow(struct cask_keydir *kd)
{
    uint32_t ncap = kd->cap + kd->cap / 2;
    uint32_t *ns = calloc(ncap, sizeof(uint32_t));
    if (ns == NULL) {
        return false;
    }
    for (uint32_t j = 0; j < kd->cap; j++) {
        uint32_t s = kd->slots[j];
        if (s == 0) {
            continue;
        }
        struct cask_kd_entry *e = deref(kd, slot_ref(s));
        uint32_t i = home(cask_kd_hash(e->key, e->klen), ncap);
        while (ns[i] != 0) {
            if (++i == ncap) {
                i = 0;
            }
        }
        ns[i] = s;
    }
    free(kd->slots);
    kd->slots = ns;
    kd->cap = ncap;
    return true;
}

static bool
alloc_entry(struct cask_keydir *kd, size_t klen, uint32_t *ref)
{
    uint32_t sz = entry_size(klen);
    if (kd->freel[klen] != 0) {
        *ref = kd->freel[klen] - 1;
        kd->freel[klen] = deref(kd, *ref)->cas_lo;
        return true;
    }
    if (kd->nchunks == 0 || kd->used + sz > CHUNK_SIZE) {
        if (kd->nchunks == MAX_CHUNKS) {
            return false;
        }
        if (kd->nchunks == kd->chunks_cap) {
            uint32_t nc = kd->chunks_cap ? kd->chunks_cap * 2 : 16;
            char **n = realloc(kd->chunks, nc * sizeof(char *));
            if (n == NULL) {
                return false;
            }
            kd->chunks = n;
            kd->chunks_cap = nc;
        }
        char *c = malloc(CHUNK_SIZE);
        if (c == NULL) {
            return false;
        }
        kd->chunks[kd->nchunks++] = c;
        kd->used = 0;
    }
    *ref = (kd->nchunks - 1) << (CHUNK_BITS - 2) | kd->used >> 2;
    kd->used += sz;
    return true;
}

struct cask_kd_entry *
cask_kd_insert(struct cask_keydir *kd, uint64_t h, const void *key, size_t klen)
{
    assert(klen > 0 && klen < 256);
    if ((uint64_t)(kd->count + 1) * LOAD_DEN > (uint64_t)kd->cap * LOAD_NUM) {
        if (!grow(kd)) {
            return NULL;
        }
    }
    uint32_t ref;
    if (!alloc_entry(kd, klen, &ref)) {
        return NULL;
    }
    struct cask_kd_entry *e = deref(kd, ref);
    memset(e, 0, sizeof(*e));
    e->klen = (uint8_t)klen;
    memcpy(e->key, key, klen);
    uint32_t i = home(h, kd->cap);
    while (kd->slots[i] != 0) {
        if (++i == kd->cap) {
            i = 0;
        }
    }
    kd->slots[i] = slot_val(tag_of(h), ref);
    kd->count++;
    return e;
}

void
cask_kd_remove(struct cask_keydir *kd, uint64_t h, struct cask_kd_entry *e)
{
    uint32_t i = home(h, kd->cap);
    for (;;) {
        uint32_t s = kd->slots[i];
        assert(s != 0);
        if (deref(kd, slot_ref(s)) == e) {
            break;
        }
        if (++i == kd->cap) {
            i = 0;
        }
    }
    uint32_t ref = slot_ref(kd->slots[i]);
    kd->slots[i] = 0;
    /* Backward shift: pull later members of the cluster into the hole when
     * their home position does not lie cyclically in (hole, j]. */
    uint32_t j = i;
    for (;;) {
        if (++j == kd->cap) {
            j = 0;
        }
        uint32_t s = kd->slots[j];
        if (s == 0) {
            break;
        }
        struct cask_kd_entry *o = deref(kd, slot_ref(s));
        uint32_t k = home(cask_kd_hash(o->key, o->klen), kd->cap);
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            kd->slots[i] = s;
            kd->slots[j] = 0;
            i = j;
        }
    }
    e->cas_lo = kd->freel[e->klen];
    kd->freel[e->klen] = ref + 1;
    kd->count--;
}

void
cask_kd_foreach(struct cask_keydir *kd,
                void (*fn)(void *arg, struct cask_kd_entry *e), void *arg)
{
    for (uint32_t j = 0; j < kd->cap; j++) {
        if (kd->slots[j] != 0) {
            fn(arg, deref(kd, slot_ref(kd->slots[j])));
        }
    }
}

size_t
cask_kd_count(const struct cask_keydir *kd)
{
    return kd->count;
}

size_t
cask_kd_bytes(const struct cask_keydir *kd)
{
    return sizeof(*kd) + (size_t)kd->cap * sizeof(uint32_t) +
           (size_t)kd->chunks_cap * sizeof(char *) +
           (size_t)kd->nchunks * CHUNK_SIZE;
}
