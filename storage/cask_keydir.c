/* cask_keydir.c - the per-shard key index: open addressing over 32-bit
 * references into a chunked arena of entries, keyed (the key inline) or
 * keyless (the key stays in its record on disk).
 *
 * Owns its table and arena. Not thread-safe (the shard mutex covers it).
 * Depends on nothing in storage/ but xxHash.
 *
 * The table is split into STRIPES independent open-addressing tables picked
 * by hash bits; each grows on its own, so one insert rehashes at most
 * 1/STRIPES of the keys (growth is incremental: no pause proportional to
 * the whole keydir under the shard mutex). The hash is XXH3 with a seed
 * drawn once per process, so keys crafted to collide cannot be prepared in
 * advance (hash flooding); nothing on disk depends on it.
 *
 * A reference is (chunk << 14 | offset / 4): entries are 4-byte aligned in
 * 64 KiB chunks (small, so a shard wastes little on its last one), at most
 * 16383 chunks (1 GiB) per keydir. A table slot is 6 bytes: the key's
 * fp (the hash's top 16 bits) and (4-bit hash tag << 28 | ref + 1), 0
 * marking an empty slot. Freed entries go on a free list per key length,
 * so a key deleted and re-added reuses its bytes.
 *
 * The home slot is computed from fp alone, and fp sits in the slot (the
 * entry has none), so growing, backward shifting and range walks never
 * touch an entry, and a lookup compares 20 hash bits (fp and tag) in the
 * slot before it dereferences one: a probe past other keys' slots costs no
 * cache miss of its own, only the entry it finds does. A keyless keydir
 * then compares klen and asks its match function (which reads the key
 * from the record) about the survivors: keys that share all those bits
 * cost a read, never a wrong answer.
 */
#include "storage/cask_keydir.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define CHUNK_BITS  16u
#define CHUNK_SIZE  (1u << CHUNK_BITS)
#define MAX_CHUNKS  16383u
#define REF_MASK    0x0fffffffu
#define OFF_MASK    ((CHUNK_SIZE >> 2) - 1)
#define LOAD_NUM    4u /* grow past 4/5 full */
#define LOAD_DEN    5u
#define MIN_CAP     16u
#define GROW_DIV    8u /* by 1/8 at a time */
#define STRIPE_BITS 8u
#define STRIPES     (1u << STRIPE_BITS)

/* A table slot: 2-byte aligned, so 6 bytes in an array. */
struct slot {
    uint16_t fp;     /* the entry's fp: gives its home slot */
    uint16_t lo, hi; /* tag << 28 | ref + 1, 0 = empty */
};

/* One open-addressing table of the keydir. */
struct stripe {
    struct slot *slots;
    uint32_t cap;
    uint32_t count;
};

struct cask_keydir {
    struct stripe st[STRIPES];
    bool keyed;
    cask_kd_match_fn match; /* keyless only */
    void *match_arg;
    uint32_t count;
    char **chunks;
    uint32_t nchunks;
    uint32_t chunks_cap;
    uint32_t used;       /* bytes used in the last chunk */
    size_t bytes;        /* what cask_kd_bytes reports */
    uint32_t freel[256]; /* per key length: ref + 1 of a free entry */
    bool bulk;           /* cask_kd_bulk: stripes grow by half */
    uint64_t grows;      /* stripes grown by an insert (cask_kd_grows) */
};

static inline uint32_t
entry_size(const struct cask_keydir *kd, size_t klen)
{
    if (!kd->keyed) {
        return (uint32_t)sizeof(struct cask_kd_entry);
    }
    return (uint32_t)((sizeof(struct cask_kd_entry) + klen + 3) & ~(size_t)3);
}

/* Free list index of an entry for a klen-byte key. */
static inline size_t
free_idx(const struct cask_keydir *kd, size_t klen)
{
    return kd->keyed ? klen : 0;
}

static inline uint32_t
fp_of(uint64_t h)
{
    return (uint32_t)(h >> 48);
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
    /* bits the stripe (16..23) and home slot (high bits) leave */
    return (uint32_t)(h >> 24) & 0xfu;
}

static inline struct stripe *
stripe_of(struct cask_keydir *kd, uint64_t h)
{
    return &kd->st[(h >> 16) & (STRIPES - 1)];
}

static inline uint32_t
slot_val(uint32_t tag, uint32_t ref)
{
    return tag << 28 | (ref + 1);
}

/* The tag << 28 | ref + 1 word of a slot; 0 for an empty one. */
static inline uint32_t
slot_word(const struct slot *s)
{
    return (uint32_t)s->hi << 16 | s->lo;
}

static inline void
slot_set(struct slot *s, uint32_t fp, uint32_t word)
{
    s->fp = (uint16_t)fp;
    s->lo = (uint16_t)word;
    s->hi = (uint16_t)(word >> 16);
}

static inline uint32_t
slot_ref(uint32_t word)
{
    return (word & REF_MASK) - 1;
}

static inline uint32_t
home(uint32_t fp, uint32_t cap)
{
    return (uint32_t)(((uint64_t)fp * cap) >> 16);
}

static uint64_t kd_seed;
static pthread_once_t kd_seed_once = PTHREAD_ONCE_INIT;

static void
seed_init(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
               (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 32;
    }
    kd_seed = seed;
}

uint64_t
cask_kd_hash(const void *key, size_t klen)
{
    pthread_once(&kd_seed_once, seed_init);
    return XXH3_64bits_withSeed(key, klen, kd_seed);
}

static struct cask_keydir *
create(bool keyed, cask_kd_match_fn match, void *match_arg)
{
    struct cask_keydir *kd = calloc(1, sizeof(*kd));
    if (kd == NULL) {
        return NULL;
    }
    kd->keyed = keyed;
    kd->match = match;
    kd->match_arg = match_arg;
    kd->bytes = sizeof(*kd) + (size_t)STRIPES * MIN_CAP * sizeof(struct slot);
    for (uint32_t i = 0; i < STRIPES; i++) {
        kd->st[i].cap = MIN_CAP;
        kd->st[i].slots = calloc(MIN_CAP, sizeof(struct slot));
        if (kd->st[i].slots == NULL) {
            cask_kd_destroy(&kd);
            return NULL;
        }
    }
    return kd;
}

struct cask_keydir *
cask_kd_create(void)
{
    return create(true, NULL, NULL);
}

struct cask_keydir *
cask_kd_create_keyless(cask_kd_match_fn match, void *match_arg)
{
    assert(match != NULL);
    return create(false, match, match_arg);
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
    for (uint32_t i = 0; i < STRIPES; i++) {
        free(kd->st[i].slots);
    }
    free(kd->chunks);
    free(kd);
    *kdp = NULL;
}

void
cask_kd_swap(struct cask_keydir *a, struct cask_keydir *b)
{
    static_assert(offsetof(struct cask_keydir, st) == 0, "st comes first");
    struct cask_keydir t = *b;
    *b = *a;
    for (uint32_t i = 0; i < STRIPES; i++) {
        /* atomic: cask_kd_prefetch may read them without the lock */
        __atomic_store_n(&a->st[i].slots, t.st[i].slots, __ATOMIC_RELAXED);
        __atomic_store_n(&a->st[i].cap, t.st[i].cap, __ATOMIC_RELAXED);
        a->st[i].count = t.st[i].count;
    }
    memcpy((char *)a + sizeof(a->st), (const char *)&t + sizeof(t.st),
           sizeof(*a) - sizeof(a->st));
}

void
cask_kd_prefetch(const struct cask_keydir *kd, uint64_t h)
{
    /* Callers need not hold the owner's lock: the stripe's table pointer
     * and size are read (and written, by resize) atomically, and a pair
     * from either side of a resize only prefetches a stale line, which
     * cannot fault. */
    const struct stripe *t = &kd->st[(h >> 16) & (STRIPES - 1)];
    struct slot *slots = __atomic_load_n(&t->slots, __ATOMIC_RELAXED);
    uint32_t cap = __atomic_load_n(&t->cap, __ATOMIC_RELAXED);
    __builtin_prefetch(&slots[home(fp_of(h), cap)]);
}

struct cask_kd_entry *
cask_kd_find_if(struct cask_keydir *kd, uint64_t h, size_t klen,
                cask_kd_match_fn match, void *arg)
{
    struct stripe *t = stripe_of(kd, h);
    uint32_t fp = fp_of(h);
    uint32_t i = home(fp, t->cap);
    uint32_t tag = tag_of(h);
    for (;;) {
        const struct slot *sl = &t->slots[i];
        uint32_t s = slot_word(sl);
        if (s == 0) {
            return NULL;
        }
        if (sl->fp == fp && s >> 28 == tag) {
            struct cask_kd_entry *e = deref(kd, slot_ref(s));
            if (e->klen == klen && match(arg, e, NULL, klen)) {
                return e;
            }
        }
        if (++i == t->cap) {
            i = 0;
        }
    }
}

struct cask_kd_entry *
cask_kd_find(struct cask_keydir *kd, uint64_t h, const void *key, size_t klen)
{
    struct stripe *t = stripe_of(kd, h);
    uint32_t fp = fp_of(h);
    uint32_t i = home(fp, t->cap);
    uint32_t tag = tag_of(h);
    for (;;) {
        const struct slot *sl = &t->slots[i];
        uint32_t s = slot_word(sl);
        if (s == 0) {
            return NULL;
        }
        if (sl->fp == fp && s >> 28 == tag) {
            struct cask_kd_entry *e = deref(kd, slot_ref(s));
            if (e->klen == klen &&
                (kd->keyed ? memcmp(e->key, key, klen) == 0
                           : kd->match(kd->match_arg, e, key, klen))) {
                return e;
            }
        }
        if (++i == t->cap) {
            i = 0;
        }
    }
}

/* The capacity a stripe of cap slots grows to. Small steps keep every
 * stripe's load between 0.71 and 0.8, whatever the key count: the table is
 * most of what a key costs beside its entry, and a 1.5x ladder left all
 * the stripes of a shard at 0.53 when a count fell just past a step. */
static inline uint32_t
grown(uint32_t cap)
{
    uint32_t step = cap / GROW_DIV;
    return cap + (step < MIN_CAP ? MIN_CAP : step);
}

/* Rehash stripe t into ncap slots (at least its count / load). */
static bool
resize(struct cask_keydir *kd, struct stripe *t, uint32_t ncap)
{
    struct slot *ns = calloc(ncap, sizeof(struct slot));
    if (ns == NULL) {
        return false;
    }
    for (uint32_t j = 0; j < t->cap; j++) {
        const struct slot *sl = &t->slots[j];
        if (slot_word(sl) == 0) {
            continue;
        }
        uint32_t i = home(sl->fp, ncap);
        while (slot_word(&ns[i]) != 0) {
            if (++i == ncap) {
                i = 0;
            }
        }
        ns[i] = *sl;
    }
    free(t->slots);
    /* atomic: cask_kd_prefetch may read them without the owner's lock */
    __atomic_store_n(&t->slots, ns, __ATOMIC_RELAXED);
    kd->bytes += (size_t)ncap * sizeof(struct slot);
    kd->bytes -= (size_t)t->cap * sizeof(struct slot);
    __atomic_store_n(&t->cap, ncap, __ATOMIC_RELAXED);
    return true;
}

/* What a full stripe of cap slots grows to: by 1/8 (grown), or by half
 * while bulk loading. */
static inline uint32_t
next_cap(const struct cask_keydir *kd, uint32_t cap)
{
    return kd->bulk ? cap + cap / 2 + MIN_CAP : grown(cap);
}

static bool
grow(struct cask_keydir *kd, struct stripe *t)
{
    kd->grows++;
    return resize(kd, t, next_cap(kd, t->cap));
}

/* Integer square root (floor). */
static uint64_t
isqrt(uint64_t v)
{
    uint64_t r = 0;
    for (uint64_t b = UINT64_C(1) << 62; b != 0; b >>= 2) {
        if (v >= r + b) {
            v -= r + b;
            r = (r >> 1) + b;
        } else {
            r >>= 1;
        }
    }
    return r;
}

bool
cask_kd_reserve(struct cask_keydir *kd, size_t n)
{
    /* Hash bits spread n keys over the stripes binomially: room for the
     * mean plus four standard deviations keeps all of them but about one
     * in 30000 stripes from growing while n keys arrive; at the end of a
     * bulk load a stripe left below 0.71 full shrinks back. */
    uint64_t per = (uint64_t)n / STRIPES;
    uint64_t want = per + 4 * isqrt(per) + MIN_CAP;
    want = want * LOAD_DEN / LOAD_NUM + 1;
    if (want > UINT32_MAX / 2) {
        return false;
    }
    bool ok = true;
    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *t = &kd->st[i];
        if (t->cap < want && !resize(kd, t, (uint32_t)want)) {
            ok = false;
        }
    }
    return ok;
}

uint64_t
cask_kd_grows(const struct cask_keydir *kd)
{
    return kd->grows;
}

void
cask_kd_bulk(struct cask_keydir *kd, bool on)
{
    kd->bulk = on;
    if (on) {
        return;
    }
    /* Back to the small steps: a stripe left below 0.71 full by a half step
     * shrinks to about 0.75 (one pass over its slots, never an entry). If
     * memory runs out it just stays larger. */
    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *t = &kd->st[i];
        uint64_t want = (uint64_t)t->count * LOAD_DEN * 16 / (LOAD_NUM * 15);
        if (want < MIN_CAP) {
            want = MIN_CAP;
        }
        if (want + want / GROW_DIV < t->cap) {
            (void)resize(kd, t, (uint32_t)want);
        }
    }
}

static bool
alloc_entry(struct cask_keydir *kd, size_t klen, uint32_t *ref)
{
    uint32_t sz = entry_size(kd, klen);
    size_t fi = free_idx(kd, klen);
    if (kd->freel[fi] != 0) {
        *ref = kd->freel[fi] - 1;
        kd->freel[fi] = deref(kd, *ref)->cas_lo;
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
            kd->bytes += (size_t)(nc - kd->chunks_cap) * sizeof(char *);
            kd->chunks = n;
            kd->chunks_cap = nc;
        }
        char *c = malloc(CHUNK_SIZE);
        if (c == NULL) {
            return false;
        }
        kd->chunks[kd->nchunks++] = c;
        kd->used = 0;
        kd->bytes += CHUNK_SIZE;
    }
    *ref = (kd->nchunks - 1) << (CHUNK_BITS - 2) | kd->used >> 2;
    kd->used += sz;
    return true;
}

struct cask_kd_entry *
cask_kd_insert(struct cask_keydir *kd, uint64_t h, const void *key, size_t klen)
{
    assert(klen > 0 && klen < 256);
    struct stripe *t = stripe_of(kd, h);
    if ((uint64_t)(t->count + 1) * LOAD_DEN > (uint64_t)t->cap * LOAD_NUM) {
        if (!grow(kd, t)) {
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
    if (kd->keyed) {
        memcpy(e->key, key, klen);
    }
    uint32_t fp = fp_of(h);
    uint32_t i = home(fp, t->cap);
    while (slot_word(&t->slots[i]) != 0) {
        if (++i == t->cap) {
            i = 0;
        }
    }
    slot_set(&t->slots[i], fp, slot_val(tag_of(h), ref));
    t->count++;
    kd->count++;
    return e;
}

void
cask_kd_remove(struct cask_keydir *kd, uint64_t h, struct cask_kd_entry *e)
{
    struct stripe *t = stripe_of(kd, h);
    uint32_t fp = fp_of(h);
    uint32_t i = home(fp, t->cap);
    for (;;) {
        uint32_t s = slot_word(&t->slots[i]);
        assert(s != 0);
        if (t->slots[i].fp == fp && deref(kd, slot_ref(s)) == e) {
            break;
        }
        if (++i == t->cap) {
            i = 0;
        }
    }
    uint32_t ref = slot_ref(slot_word(&t->slots[i]));
    slot_set(&t->slots[i], 0, 0);
    /* Backward shift: pull later members of the cluster into the hole when
     * their home position does not lie cyclically in (hole, j]. */
    uint32_t j = i;
    for (;;) {
        if (++j == t->cap) {
            j = 0;
        }
        const struct slot *sl = &t->slots[j];
        if (slot_word(sl) == 0) {
            break;
        }
        uint32_t k = home(sl->fp, t->cap);
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            t->slots[i] = *sl;
            slot_set(&t->slots[j], 0, 0);
            i = j;
        }
    }
    size_t fi = free_idx(kd, e->klen);
    e->cas_lo = kd->freel[fi];
    kd->freel[fi] = ref + 1;
    t->count--;
    kd->count--;
}

size_t
cask_kd_remove_if(struct cask_keydir *kd,
                  bool (*pred)(void *arg, const struct cask_kd_entry *e),
                  void *arg)
{
    size_t n = 0;
    for (uint64_t st = 0; st < STRIPES; st++) {
        struct stripe *t = &kd->st[st];
        for (uint32_t i = 0; i < t->cap; i++) {
            /* A removal shifts later members of the cluster back into
             * slot i: look at it again. Only the stripe (bits 16..23) and
             * fingerprint (48..63) of the hash locate an entry. */
            for (;;) {
                uint32_t w = slot_word(&t->slots[i]);
                if (w == 0) {
                    break;
                }
                struct cask_kd_entry *e = deref(kd, slot_ref(w));
                if (!pred(arg, e)) {
                    break;
                }
                uint64_t h = (uint64_t)t->slots[i].fp << 48 | st << 16;
                cask_kd_remove(kd, h, e);
                n++;
            }
        }
    }
    return n;
}

void
cask_kd_foreach(struct cask_keydir *kd,
                void (*fn)(void *arg, struct cask_kd_entry *e), void *arg)
{
    for (uint32_t i = 0; i < STRIPES; i++) {
        const struct stripe *t = &kd->st[i];
        for (uint32_t j = 0; j < t->cap; j++) {
            uint32_t s = slot_word(&t->slots[j]);
            if (s != 0) {
                fn(arg, deref(kd, slot_ref(s)));
            }
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
    return kd->bytes;
}

size_t
cask_kd_slots(const struct cask_keydir *kd)
{
    size_t n = 0;
    for (unsigned i = 0; i < STRIPES; i++) {
        n += kd->st[i].cap;
    }
    return n;
}

size_t
cask_kd_insert_cost(const struct cask_keydir *kd, uint64_t h, size_t klen)
{
    size_t cost = 0;
    const struct stripe *t = &kd->st[(h >> 16) & (STRIPES - 1)];
    if ((uint64_t)(t->count + 1) * LOAD_DEN > (uint64_t)t->cap * LOAD_NUM) {
        cost += (size_t)(next_cap(kd, t->cap) - t->cap) * sizeof(struct slot);
    }
    if (kd->freel[free_idx(kd, klen)] == 0 &&
        (kd->nchunks == 0 || kd->used + entry_size(kd, klen) > CHUNK_SIZE)) {
        cost += CHUNK_SIZE;
        if (kd->nchunks == kd->chunks_cap) {
            cost += (size_t)(kd->chunks_cap ? kd->chunks_cap : 16) *
                    sizeof(char *);
        }
    }
    return cost;
}

/* A walk position is (stripe << 32 | fp << 16): fp, the hash's top 16 bits
 * an entry keeps, alone decides its home slot. Within a stripe, entries
 * sit in home-slot order and the home slot grows with fp whatever the
 * stripe's capacity; so a range of those bits is a
 * stretch of slots (plus the probe run after it), and a walk by ranges sees
 * every entry that stays put exactly once even if stripes grow between two
 * calls. */
uint64_t
cask_kd_range_end(void)
{
    return (uint64_t)STRIPES << 32;
}

static size_t
stripe_range(struct cask_keydir *kd, const struct stripe *t, uint64_t lo,
             uint64_t hi, void (*fn)(void *arg, struct cask_kd_entry *e),
             void *arg)
{
    uint32_t first, last;
    size_t n = 0;

    if (lo >= hi || t->count == 0) {
        return 0;
    }
    first = (uint32_t)((lo * (uint64_t)t->cap) >> 32);
    last = (uint32_t)(((hi - 1) * (uint64_t)t->cap) >> 32);
    for (uint64_t k = 0; k < t->cap; k++) {
        uint32_t j = (uint32_t)((first + k) % t->cap);
        uint32_t s = slot_word(&t->slots[j]);
        if (s == 0) {
            if (k >= (uint64_t)(last - first)) {
                break; /* past the last home slot and its probe run */
            }
            continue;
        }
        uint64_t top = (uint64_t)t->slots[j].fp << 16;
        if (top >= lo && top < hi) {
            fn(arg, deref(kd, slot_ref(s)));
            n++;
        }
    }
    return n;
}

size_t
cask_kd_foreach_range(struct cask_keydir *kd, uint64_t lo, uint64_t hi,
                      void (*fn)(void *arg, struct cask_kd_entry *e), void *arg)
{
    size_t n = 0;

    if (hi > cask_kd_range_end()) {
        hi = cask_kd_range_end();
    }
    for (uint64_t st = lo >> 32; st < STRIPES && (st << 32) < hi; st++) {
        uint64_t a = st == lo >> 32 ? (lo & 0xffffffffu) : 0;
        uint64_t b =
                hi - (st << 32) < (1ull << 32) ? hi - (st << 32) : (1ull << 32);
        n += stripe_range(kd, &kd->st[st], a, b, fn, arg);
    }
    return n;
}
