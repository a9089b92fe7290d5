/* prefix_stats.c - memcached's per-prefix statistics (implements
 * prefix_stats.h). Owns the prefix table: PREFIX_BUCKETS chains under one
 * mutex, entries never freed before prefix_stats_clear. The mutex nests
 * under nothing and is held only for one lookup or one dump.
 * memcached keeps these in a table of 256 chains indexed by its key hash
 * (MurmurHash3 by default), new prefixes first in a chain, and dumps the
 * chains in order; the same layout here gives the same line order. */
#include "server/prefix_stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_BUCKETS 256u
#define PREFIX_LINE    "PREFIX %.*s get %llu hit %llu set %llu del %llu\r\n"

struct prefix_ent {
    struct prefix_ent *next;
    unsigned long long gets, hits, sets, dels;
    size_t len;
    char prefix[];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct prefix_ent *buckets[PREFIX_BUCKETS]; /* under mu */
static size_t nprefixes, prefix_bytes;             /* under mu */
static atomic_bool enabled;
static char delim = ':';

static uint32_t
rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

/* MurmurHash3, x86 32-bit variant, seed 0: memcached's default hash. */
static uint32_t
murmur3_32(const unsigned char *p, size_t len)
{
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = 0, k;
    size_t i, blocks = len / 4;

    for (i = 0; i < blocks; i++) {
        k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
            (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        k = rotl32(k * c1, 15) * c2;
        h = rotl32(h ^ k, 13) * 5 + 0xe6546b64u;
    }
    k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)p[4 * blocks + 2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)p[4 * blocks + 1] << 8;
        /* fall through */
    case 1:
        k ^= p[4 * blocks];
        h ^= rotl32(k * c1, 15) * c2;
        break;
    default:
        break;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

void
prefix_stats_configure(char delimiter, bool on)
{
    delim = delimiter;
    atomic_store(&enabled, on);
}

void
prefix_stats_enable(bool on)
{
    atomic_store(&enabled, on);
}

bool
prefix_stats_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_relaxed);
}

/* The entry for key's prefix, created on first use; NULL for a key without
 * the delimiter (memcached stops at a NUL too) or when out of memory.
 * Called with mu held. */
static struct prefix_ent *
find(const char *key, size_t klen)
{
    struct prefix_ent *e;
    size_t len = 0;
    uint32_t b;

    while (len < klen && key[len] != '\0' && key[len] != delim) {
        len++;
    }
    if (len == klen || key[len] != delim) {
        return NULL;
    }
    b = murmur3_32((const unsigned char *)key, len) % PREFIX_BUCKETS;
    for (e = buckets[b]; e != NULL; e = e->next) {
        if (e->len == len && memcmp(e->prefix, key, len) == 0) {
            return e;
        }
    }
    e = calloc(1, sizeof(*e) + len);
    if (e == NULL) {
        return NULL;
    }
    memcpy(e->prefix, key, len);
    e->len = len;
    e->next = buckets[b];
    buckets[b] = e;
    nprefixes++;
    prefix_bytes += len;
    return e;
}

void
prefix_stats_get(const char *key, size_t klen, bool hit)
{
    struct prefix_ent *e;

    if (!prefix_stats_enabled()) {
        return;
    }
    pthread_mutex_lock(&mu);
    if ((e = find(key, klen)) != NULL) {
        e->gets++;
        e->hits += hit;
    }
    pthread_mutex_unlock(&mu);
}

void
prefix_stats_set(const char *key, size_t klen)
{
    struct prefix_ent *e;

    if (!prefix_stats_enabled()) {
        return;
    }
    pthread_mutex_lock(&mu);
    if ((e = find(key, klen)) != NULL) {
        e->sets++;
    }
    pthread_mutex_unlock(&mu);
}

void
prefix_stats_delete(const char *key, size_t klen)
{
    struct prefix_ent *e;

    if (!prefix_stats_enabled()) {
        return;
    }
    pthread_mutex_lock(&mu);
    if ((e = find(key, klen)) != NULL) {
        e->dels++;
    }
    pthread_mutex_unlock(&mu);
}

void
prefix_stats_clear(void)
{
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < PREFIX_BUCKETS; i++) {
        while (buckets[i] != NULL) {
            struct prefix_ent *e = buckets[i];
            buckets[i] = e->next;
            free(e);
        }
    }
    nprefixes = prefix_bytes = 0;
    pthread_mutex_unlock(&mu);
}

char *
prefix_stats_dump(size_t *len)
{
    char *buf;
    size_t cap, pos = 0;

    pthread_mutex_lock(&mu);
    /* each line: the prefix, the fixed words and four numbers of at most
     * 20 digits */
    cap = prefix_bytes + nprefixes * (sizeof(PREFIX_LINE) + 4 * 20) + 6;
    buf = malloc(cap);
    if (buf == NULL) {
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    for (unsigned i = 0; i < PREFIX_BUCKETS; i++) {
        for (struct prefix_ent *e = buckets[i]; e != NULL; e = e->next) {
            int n = snprintf(buf + pos, cap - pos, PREFIX_LINE, (int)e->len,
                             e->prefix, e->gets, e->hits, e->sets, e->dels);
            if (n > 0 && (size_t)n < cap - pos) {
                pos += (size_t)n;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    memcpy(buf + pos, "END\r\n", 5);
    *len = pos + 5;
    return buf;
}
