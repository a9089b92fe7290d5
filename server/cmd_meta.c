/* cmd_meta.c - memcached's in-memory win/stale item state (implements
 * cmd_meta.h). Owns the table: NSTRIPES independent hash tables, each with
 * its own mutex, chained buckets and an age list for eviction. A mutex is
 * held only for the lookup or update of one key, never across other calls,
 * so it nests under nothing and nothing nests under it.
 * Must not depend on storage/, protocol/ or the server's event loop.
 */
#include "server/cmd_meta.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define NSTRIPES 64u

struct meta_ent {
    struct meta_ent *next;     /* bucket chain */
    TAILQ_ENTRY(meta_ent) age; /* oldest first */
    uint64_t hash;
    uint64_t cas; /* the item these bits describe */
    unsigned bits;
    size_t klen;
    char key[];
};

TAILQ_HEAD(meta_age, meta_ent);

struct meta_stripe {
    pthread_mutex_t mu; /* covers everything below */
    struct meta_ent **buckets;
    struct meta_age oldest;
    size_t count;
};

struct cmd_meta {
    size_t per_stripe; /* entries and buckets per stripe */
    /* Entries over all stripes, changed under the stripe's mutex and read
     * without one: while it is 0 (a store that has never seen a meta
     * token), forget/has/bits return before hashing the key or taking a
     * mutex, which keeps the classic set and delete path free of both. A
     * reader that sees 0 is ordered before any concurrent insert. */
    atomic_size_t entries;
    struct meta_stripe stripes[NSTRIPES];
};

/* FNV-1a plus a final mix: keys are short and the table is small. */
static uint64_t
key_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ull;
    size_t i;

    for (i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    /* FNV's top bits barely change between short keys that differ in the
     * last byte; mix them before the stripe is taken from there */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int
cmd_meta_create(struct cmd_meta **out, size_t cap)
{
    struct cmd_meta *m;
    size_t per = 1;
    unsigned i;

    *out = NULL;
    while (per * NSTRIPES < cap) {
        per *= 2;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return ENOMEM;
    }
    m->per_stripe = per;
    atomic_init(&m->entries, 0);
    for (i = 0; i < NSTRIPES; i++) {
        struct meta_stripe *s = &m->stripes[i];

        s->buckets = calloc(per, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            while (i-- > 0) {
                pthread_mutex_destroy(&m->stripes[i].mu);
                free(m->stripes[i].buckets);
            }
            free(m);
            return ENOMEM;
        }
        pthread_mutex_init(&s->mu, NULL);
        TAILQ_INIT(&s->oldest);
    }
    *out = m;
    return 0;
}

void
cmd_meta_destroy(struct cmd_meta **pm)
{
    struct cmd_meta *m = *pm;
    unsigned i;

    if (m == NULL) {
        return;
    }
    for (i = 0; i < NSTRIPES; i++) {
        struct meta_stripe *s = &m->stripes[i];
        struct meta_ent *e;

        while ((e = TAILQ_FIRST(&s->oldest)) != NULL) {
            TAILQ_REMOVE(&s->oldest, e, age);
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(m);
    *pm = NULL;
}

static struct meta_stripe *
stripe_of(struct cmd_meta *m, uint64_t h)
{
    /* the low bits pick the bucket, the high bits the stripe */
    return &m->stripes[(h >> 58) % NSTRIPES];
}

static struct meta_ent **
bucket_of(struct cmd_meta *m, struct meta_stripe *s, uint64_t h)
{
    return &s->buckets[h & (m->per_stripe - 1)];
}

/* The link pointing at key's entry (caller holds s->mu); *link is NULL
 * when there is none. */
static struct meta_ent **
find(struct cmd_meta *m, struct meta_stripe *s, uint64_t h, const void *key,
     size_t klen)
{
    struct meta_ent **link = bucket_of(m, s, h);

    while (*link != NULL) {
        struct meta_ent *e = *link;

        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            break;
        }
        link = &e->next;
    }
    return link;
}

static void
unlink_ent(struct cmd_meta *m, struct meta_stripe *s, struct meta_ent **link)
{
    struct meta_ent *e = *link;

    *link = e->next;
    TAILQ_REMOVE(&s->oldest, e, age);
    s->count--;
    atomic_fetch_sub(&m->entries, 1);
    free(e);
}

/* Set key's entry to (cas, bits), creating it if needed (caller holds
 * s->mu). Allocation failure only loses the state, as an eviction would. */
static void
store_ent(struct cmd_meta *m, struct meta_stripe *s, uint64_t h,
          const void *key, size_t klen, uint64_t cas, unsigned bits)
{
    struct meta_ent **link = find(m, s, h, key, klen);
    struct meta_ent *e = *link;

    if (e != NULL) {
        e->cas = cas;
        e->bits = bits;
        return;
    }
    if (s->count >= m->per_stripe) {
        struct meta_ent *old = TAILQ_FIRST(&s->oldest);

        unlink_ent(m, s, find(m, s, old->hash, old->key, old->klen));
    }
    e = malloc(sizeof(*e) + klen);
    if (e == NULL) {
        return;
    }
    e->hash = h;
    e->cas = cas;
    e->bits = bits;
    e->klen = klen;
    memcpy(e->key, key, klen);
    link = bucket_of(m, s, h);
    e->next = *link;
    *link = e;
    TAILQ_INSERT_TAIL(&s->oldest, e, age);
    s->count++;
    atomic_fetch_add(&m->entries, 1);
}

/* The bits valid for the item with cas; an entry for an older item of
 * the key is dropped (caller holds s->mu). */
static unsigned
valid_bits(struct cmd_meta *m, struct meta_stripe *s, struct meta_ent **link,
           uint64_t cas)
{
    if (*link == NULL) {
        return 0;
    }
    if ((*link)->cas != cas) {
        unlink_ent(m, s, link);
        return 0;
    }
    return (*link)->bits;
}

unsigned
cmd_meta_fetch(struct cmd_meta *m, const void *key, size_t klen, uint64_t cas,
               bool win)
{
    uint64_t h = key_hash(key, klen);
    struct meta_stripe *s;
    unsigned bits;
    unsigned ret = 0;

    if (m == NULL) {
        return win ? CMD_META_W : 0;
    }
    s = stripe_of(m, h);
    pthread_mutex_lock(&s->mu);
    bits = valid_bits(m, s, find(m, s, h, key, klen), cas);
    /* memcached: Z for a token already out, X for stale, and a stale item
     * whose token is not out yet wins like a low TTL does */
    if (bits & CMD_META_TOKEN) {
        ret |= CMD_META_Z;
    }
    if (bits & CMD_META_STALE) {
        ret |= CMD_META_X;
    }
    if (!(bits & CMD_META_TOKEN) && (win || (bits & CMD_META_STALE))) {
        ret |= CMD_META_W;
        store_ent(m, s, h, key, klen, cas, bits | CMD_META_TOKEN);
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

unsigned
cmd_meta_bits(struct cmd_meta *m, const void *key, size_t klen, uint64_t cas)
{
    uint64_t h;
    struct meta_stripe *s;
    unsigned bits;

    if (m == NULL || atomic_load(&m->entries) == 0) {
        return 0;
    }
    h = key_hash(key, klen);
    s = stripe_of(m, h);
    pthread_mutex_lock(&s->mu);
    bits = valid_bits(m, s, find(m, s, h, key, klen), cas);
    pthread_mutex_unlock(&s->mu);
    return bits;
}

void
cmd_meta_put(struct cmd_meta *m, const void *key, size_t klen, uint64_t cas,
             unsigned bits)
{
    uint64_t h = key_hash(key, klen);
    struct meta_stripe *s;

    if (m == NULL) {
        return;
    }
    s = stripe_of(m, h);
    pthread_mutex_lock(&s->mu);
    if (bits == 0) {
        struct meta_ent **link = find(m, s, h, key, klen);

        if (*link != NULL) {
            unlink_ent(m, s, link);
        }
    } else {
        store_ent(m, s, h, key, klen, cas, bits);
    }
    pthread_mutex_unlock(&s->mu);
}

void
cmd_meta_forget(struct cmd_meta *m, const void *key, size_t klen,
                uint64_t keep_cas)
{
    uint64_t h;
    struct meta_stripe *s;
    struct meta_ent **link;

    if (m == NULL || atomic_load(&m->entries) == 0) {
        return;
    }
    h = key_hash(key, klen);
    s = stripe_of(m, h);
    pthread_mutex_lock(&s->mu);
    link = find(m, s, h, key, klen);
    if (*link != NULL && (keep_cas == 0 || (*link)->cas != keep_cas)) {
        unlink_ent(m, s, link);
    }
    pthread_mutex_unlock(&s->mu);
}

bool
cmd_meta_has(struct cmd_meta *m, const void *key, size_t klen)
{
    uint64_t h;
    struct meta_stripe *s;
    bool has;

    if (m == NULL || atomic_load(&m->entries) == 0) {
        return false;
    }
    h = key_hash(key, klen);
    s = stripe_of(m, h);
    pthread_mutex_lock(&s->mu);
    has = *find(m, s, h, key, klen) != NULL;
    pthread_mutex_unlock(&s->mu);
    return has;
}

size_t
cmd_meta_count(struct cmd_meta *m)
{
    if (m == NULL) {
        return 0;
    }
    return atomic_load(&m->entries);
}
