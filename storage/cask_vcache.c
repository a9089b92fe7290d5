/* cask_vcache.c - a shard's cache of recently read small values
 * (cask_vcache.h). Owns the ring of entries and its index; pure memory:
 * no fds, no locks (the shard's mu covers every call).
 */
#include "storage/cask_vcache.h"

#include <stdlib.h>
#include <string.h>

/* One index slot: where the record is, and where its entry is in the
 * ring (plus one; 0: empty). Four make a bucket, one cache line. */
struct cask_vcache_slot {
    uint32_t seg_id;
    uint32_t off;
    uint64_t pos1;
};

#define WAYS 4u

/* An entry in the ring: this header, the key, the value, padded to 8. */
struct ent {
    uint64_t cas;
    uint32_t vlen;
    uint16_t klen;
    uint16_t pad;
};

/* Index slots per ring byte: one for each 128 bytes of entries (a
 * 100-byte value with a 32-byte key takes 152). */
#define RING_PER_SLOT 128u

/* Doorkeeper bits per index slot. */
#define DOOR_PER_SLOT 4u

static size_t
ent_len(size_t klen, uint32_t vlen)
{
    return (sizeof(struct ent) + klen + vlen + 7u) & ~(size_t)7u;
}

static size_t index_bytes(size_t cap);

/* Publish the index (or its absence) for cask_vcache_prefetch, which may
 * read it without the shard's mutex. */
static void
set_index(struct cask_vcache *vc, struct cask_vcache_slot *slots, size_t nb)
{
    __atomic_store_n(&vc->slots, slots, __ATOMIC_RELAXED);
    __atomic_store_n(&vc->nbuckets, nb, __ATOMIC_RELAXED);
}

void
cask_vcache_init(struct cask_vcache *vc, size_t cap)
{
    memset(vc, 0, sizeof(*vc));
    /* the ring and its index within cap */
    size_t ring = cap - cap % CASK_VCACHE_STEP;
    while (ring != 0 && ring + index_bytes(ring) > cap) {
        ring -= CASK_VCACHE_STEP;
    }
    vc->cap = ring;
}

void
cask_vcache_deinit(struct cask_vcache *vc)
{
    struct cask_vcache_slot *slots = vc->slots;
    set_index(vc, NULL, 0);
    free(slots);
    free(vc->ring);
    free(vc->door);
    vc->ring = NULL;
    vc->grown = 0;
    vc->wrap = 0;
    vc->head = 0;
    vc->door = NULL;
    vc->door_set = 0;
}

size_t
cask_vcache_bytes(const struct cask_vcache *vc)
{
    return vc->nbuckets == 0 ? 0 : index_bytes(vc->cap) + vc->grown;
}

/* The bucket of a key by its keydir hash h: known before the keydir is
 * searched, so the bucket can be fetched meanwhile (cask_vcache_prefetch).
 * A key's records all share it; slots of its older ones are taken over
 * as the oldest. */
static struct cask_vcache_slot *
bucket_in(struct cask_vcache_slot *slots, size_t nbuckets, uint64_t h)
{
    return slots + ((h ^ h >> 29) & (nbuckets - 1)) * WAYS;
}

static struct cask_vcache_slot *
bucket(const struct cask_vcache *vc, uint64_t h)
{
    return bucket_in(vc->slots, vc->nbuckets, h);
}

void
cask_vcache_prefetch(const struct cask_vcache *vc, uint64_t h)
{
    /* The index pointer and size are read (and written, by setup and
     * deinit) atomically, so that this may run without the shard's mutex:
     * a pair from either side of a change only fetches a stale line. */
    struct cask_vcache_slot *slots =
            __atomic_load_n(&vc->slots, __ATOMIC_RELAXED);
    size_t nb = __atomic_load_n(&vc->nbuckets, __ATOMIC_RELAXED);
    if (slots != NULL && nb != 0) {
        __builtin_prefetch(bucket_in(slots, nb, h));
    }
}

/* Whether the entry at ring position pos is still there. */
static bool
intact(const struct cask_vcache *vc, uint64_t pos)
{
    return vc->wrap == 0 || vc->head <= pos + vc->wrap;
}

static struct ent *
at(const struct cask_vcache *vc, uint64_t pos)
{
    return (struct ent *)(vc->ring + (vc->wrap != 0 ? pos % vc->wrap : pos));
}

const char *
cask_vcache_find(struct cask_vcache *vc, uint64_t h, uint32_t seg_id,
                 uint32_t off, uint64_t cas, const void *key, size_t klen,
                 uint32_t vlen)
{
    if (vc->nbuckets == 0) {
        return NULL;
    }
    struct cask_vcache_slot *b = bucket(vc, h);
    for (unsigned i = 0; i < WAYS; i++) {
        if (b[i].seg_id != seg_id || b[i].off != off || b[i].pos1 == 0) {
            continue;
        }
        uint64_t pos = b[i].pos1 - 1;
        if (!intact(vc, pos)) {
            b[i].pos1 = 0;
            return NULL;
        }
        const struct ent *e = at(vc, pos);
        const char *k = (const char *)(e + 1);
        if (e->cas != cas || e->klen != klen || e->vlen != vlen ||
            memcmp(k, key, klen) != 0) {
            return NULL;
        }
        vc->hits++;
        return k + klen;
    }
    return NULL;
}

/* Buckets of the index of a ring of cap bytes. */
static size_t
buckets_for(size_t cap)
{
    size_t slots = cap / RING_PER_SLOT;
    size_t nb = 1;
    while (nb * WAYS < slots) {
        nb <<= 1;
    }
    return nb;
}

/* The doorkeeper's 64-bit words for nb buckets. */
static size_t
door_words(size_t nb)
{
    return nb * WAYS * DOOR_PER_SLOT / 64u + 1u;
}

/* The index and the doorkeeper of a ring of cap bytes. */
static size_t
index_bytes(size_t cap)
{
    size_t nb = buckets_for(cap);
    return nb * WAYS * sizeof(struct cask_vcache_slot) +
           door_words(nb) * sizeof(uint64_t);
}

/* Allocate the ring and the index (first fill). */
static bool
setup(struct cask_vcache *vc)
{
    size_t nb = buckets_for(vc->cap);
    /* malloc: pages are taken as the ring grows into them */
    vc->ring = malloc(vc->cap);
    struct cask_vcache_slot *slots = calloc(nb * WAYS, sizeof(*slots));
    vc->door = calloc(door_words(nb), sizeof(*vc->door));
    if (vc->ring == NULL || slots == NULL || vc->door == NULL) {
        free(vc->ring);
        free(slots);
        free(vc->door);
        vc->ring = NULL;
        vc->door = NULL;
        return false;
    }
    set_index(vc, slots, nb);
    return true;
}

/* Whether the key with keydir hash h was read lately (its doorkeeper bit
 * set); if not, it is now. */
static bool
door_open(struct cask_vcache *vc, uint64_t h)
{
    size_t bits = (door_words(vc->nbuckets) - 1u) * 64u;
    size_t b = (size_t)((h >> 17) % bits);
    uint64_t m = UINT64_C(1) << (b % 64u);
    if (vc->door[b / 64u] & m) {
        return true;
    }
    vc->door[b / 64u] |= m;
    if (++vc->door_set > bits / 4u) {
        memset(vc->door, 0, door_words(vc->nbuckets) * sizeof(*vc->door));
        vc->door_set = 0;
    }
    return false;
}

size_t
cask_vcache_need(const struct cask_vcache *vc, size_t klen, uint32_t vlen)
{
    if (vc->cap == 0 || vc->wrap != 0 || vc->grown >= vc->cap ||
        (vc->ring != NULL && vc->head + ent_len(klen, vlen) <= vc->grown)) {
        return 0;
    }
    return CASK_VCACHE_STEP + (vc->ring == NULL ? index_bytes(vc->cap) : 0);
}

bool
cask_vcache_fill(struct cask_vcache *vc, uint64_t h, uint32_t seg_id,
                 uint32_t off, uint64_t cas, const void *key, size_t klen,
                 const void *val, uint32_t vlen, bool grow_ok)
{
    size_t len = ent_len(klen, vlen);
    bool changed = false;
    if (vc->cap == 0 || vlen > CASK_VCACHE_VMAX || len > vc->cap) {
        return false;
    }
    if (vc->ring == NULL) {
        if (!grow_ok || !setup(vc)) {
            return false;
        }
        changed = true;
    }
    if (vc->wrap == 0 && vc->head + len > vc->grown) {
        if (grow_ok && vc->grown < vc->cap) {
            vc->grown += CASK_VCACHE_STEP;
            changed = true;
        } else if (vc->grown == 0) {
            return changed;
        } else {
            vc->wrap = vc->grown; /* from now on it turns over */
        }
    }
    if (vc->wrap != 0 && !door_open(vc, h)) {
        return changed; /* not read lately: not yet */
    }
    if (vc->wrap != 0 && vc->head % vc->wrap + len > vc->wrap) {
        vc->head += vc->wrap - vc->head % vc->wrap; /* to the ring's start */
    }
    uint64_t pos = vc->head;
    vc->head += len;
    struct ent *e = at(vc, pos);
    e->cas = cas;
    e->vlen = vlen;
    e->klen = (uint16_t)klen;
    e->pad = 0;
    memcpy(e + 1, key, klen);
    memcpy((char *)(e + 1) + klen, val, vlen);

    struct cask_vcache_slot *b = bucket(vc, h);
    struct cask_vcache_slot *use = NULL;
    for (unsigned i = 0; i < WAYS && use == NULL; i++) {
        if (b[i].pos1 != 0 && b[i].seg_id == seg_id && b[i].off == off) {
            use = &b[i];
        }
    }
    for (unsigned i = 0; i < WAYS && use == NULL; i++) {
        if (b[i].pos1 == 0 || !intact(vc, b[i].pos1 - 1)) {
            use = &b[i];
        }
    }
    if (use == NULL) {
        use = &b[0]; /* all four in use: the oldest goes */
        for (unsigned i = 1; i < WAYS; i++) {
            if (b[i].pos1 < use->pos1) {
                use = &b[i];
            }
        }
    }
    use->seg_id = seg_id;
    use->off = off;
    use->pos1 = pos + 1;
    vc->fills++;
    return changed;
}
