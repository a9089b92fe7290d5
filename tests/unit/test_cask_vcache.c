/* test_cask_vcache.c - the cache of recently read small values
 * (storage/cask_vcache.c) on its own: hits only for the same place, cas,
 * key and length, old entries gone once the ring turns over, its memory
 * bounded; and in the store: a cached value is never served after a set,
 * delete, touch, flush, expiry or compaction changed what the key holds,
 * nor while reads go through replaced operations, its memory is counted
 * and given back to the keydirs, and writers racing cached reads never
 * let a reader see an older value after a newer one.
 */
#include "storage/cask_vcache.h"

#include "storage/cask.h"
#include "storage/cask_io.h"
#include "storage/cask_stream.h"

#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- the module -------------------------------------------------------- */

static void
test_find_matches_place_cas_key(void **state)
{
    (void)state;
    struct cask_vcache vc;
    cask_vcache_init(&vc, 4 * CASK_VCACHE_STEP);
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 5, "key", 3, 5));
    cask_vcache_fill(&vc, 7, 1, 100, 5, "key", 3, "hello", 5, true);
    const char *v = cask_vcache_find(&vc, 7, 1, 100, 5, "key", 3, 5);
    assert_non_null(v);
    assert_memory_equal(v, "hello", 5);
    assert_int_equal(vc.hits, 1);
    /* another cas, key, length or place: not this entry */
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 6, "key", 3, 5));
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 5, "kex", 3, 5));
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 5, "ke", 2, 5));
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 5, "key", 3, 4));
    assert_null(cask_vcache_find(&vc, 7, 1, 101, 5, "key", 3, 5));
    assert_null(cask_vcache_find(&vc, 7, 2, 100, 5, "key", 3, 5));
    assert_int_equal(vc.hits, 1);
    /* a newer record of the key (another place) beside the old one */
    cask_vcache_fill(&vc, 7, 1, 200, 9, "key", 3, "world", 5, true);
    v = cask_vcache_find(&vc, 7, 1, 200, 9, "key", 3, 5);
    assert_non_null(v);
    assert_memory_equal(v, "world", 5);
    /* too large a value is not kept */
    char big[CASK_VCACHE_VMAX + 1];
    memset(big, 'b', sizeof(big));
    cask_vcache_fill(&vc, 8, 1, 300, 10, "big", 3, big, sizeof(big), true);
    assert_null(cask_vcache_find(&vc, 8, 1, 300, 10, "big", 3, sizeof(big)));
    cask_vcache_deinit(&vc);
    assert_int_equal(cask_vcache_bytes(&vc), 0);
    assert_null(cask_vcache_find(&vc, 7, 1, 200, 9, "key", 3, 5));
}

static void
test_ring_turns_over_bounded(void **state)
{
    (void)state;
    struct cask_vcache vc;
    size_t cap = 3 * CASK_VCACHE_STEP;
    cask_vcache_init(&vc, cap);
    char val[200];
    char key[32];
    unsigned n = 5000; /* about 1 MB of entries through a 128 KiB ring */
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%u", i);
        memset(val, 'a' + (int)(i % 26), sizeof(val));
        /* twice: once the ring turns over, a key read once is not put
         * in (the doorkeeper) */
        for (int t = 0; t < 2; t++) {
            cask_vcache_fill(&vc, (uint64_t)i * 0x9E3779B97F4A7C15u, 3, i * 64,
                             i + 1, key, strlen(key), val, sizeof(val), true);
        }
        assert_true(cask_vcache_bytes(&vc) <= cap);
    }
    assert_true(vc.grown == 2 * CASK_VCACHE_STEP); /* and its index */
    /* the oldest entries are gone, the newest there with their bytes */
    snprintf(key, sizeof(key), "key-%u", 0u);
    assert_null(
            cask_vcache_find(&vc, 0, 3, 0, 1, key, strlen(key), sizeof(val)));
    unsigned found = 0;
    for (unsigned i = n - 100; i < n; i++) {
        snprintf(key, sizeof(key), "key-%u", i);
        const char *v =
                cask_vcache_find(&vc, (uint64_t)i * 0x9E3779B97F4A7C15u, 3,
                                 i * 64, i + 1, key, strlen(key), sizeof(val));
        if (v != NULL) {
            found++;
            for (size_t j = 0; j < sizeof(val); j++) {
                assert_int_equal(v[j], 'a' + (int)(i % 26));
            }
        }
    }
    assert_true(found > 90); /* a few lost to their bucket's other ways */
    /* every entry found is its own: none read from overwritten bytes */
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%u", i);
        const char *v =
                cask_vcache_find(&vc, (uint64_t)i * 0x9E3779B97F4A7C15u, 3,
                                 i * 64, i + 1, key, strlen(key), sizeof(val));
        if (v != NULL) {
            assert_int_equal(v[0], 'a' + (int)(i % 26));
            assert_int_equal(v[sizeof(val) - 1], 'a' + (int)(i % 26));
        }
    }
    cask_vcache_deinit(&vc);
}

/* Once the ring turns over, a key's value goes in at its second read
 * only; before, at its first. */
static void
test_doorkeeper(void **state)
{
    (void)state;
    struct cask_vcache vc;
    cask_vcache_init(&vc, 3 * CASK_VCACHE_STEP);
    char val[500];
    memset(val, 'd', sizeof(val));
    assert_true(cask_vcache_fill(&vc, 1, 1, 0, 1, "first", 5, val, 100, true));
    assert_non_null(cask_vcache_find(&vc, 1, 1, 0, 1, "first", 5, 100));
    uint64_t fills = vc.fills;
    unsigned i = 0;
    while (vc.wrap == 0) {
        i++;
        cask_vcache_fill(&vc, (uint64_t)i << 20, 2, i * 1024, i + 1, "k", 1,
                         val, sizeof(val), true);
    }
    fills = vc.fills;
    uint64_t h = UINT64_C(0x5555) << 17;
    cask_vcache_fill(&vc, h, 9, 64, 7777, "once", 4, val, 100, true);
    assert_int_equal(vc.fills, fills);
    assert_null(cask_vcache_find(&vc, h, 9, 64, 7777, "once", 4, 100));
    cask_vcache_fill(&vc, h, 9, 64, 7777, "once", 4, val, 100, true);
    assert_int_equal(vc.fills, fills + 1);
    assert_non_null(cask_vcache_find(&vc, h, 9, 64, 7777, "once", 4, 100));
    cask_vcache_deinit(&vc);
}

static void
test_grows_only_when_allowed(void **state)
{
    (void)state;
    struct cask_vcache vc;
    cask_vcache_init(&vc, 4 * CASK_VCACHE_STEP);
    assert_true(cask_vcache_need(&vc, 3, 5) > CASK_VCACHE_STEP);
    /* not allowed to take memory: nothing kept, nothing taken */
    assert_false(
            cask_vcache_fill(&vc, 1, 1, 100, 5, "key", 3, "hello", 5, false));
    assert_int_equal(cask_vcache_bytes(&vc), 0);
    assert_null(cask_vcache_find(&vc, 1, 1, 100, 5, "key", 3, 5));
    assert_true(
            cask_vcache_fill(&vc, 1, 1, 100, 5, "key", 3, "hello", 5, true));
    size_t first = cask_vcache_bytes(&vc);
    assert_true(first > CASK_VCACHE_STEP);
    assert_int_equal(cask_vcache_need(&vc, 3, 5), 0);
    /* fill one step, then refuse the next: it turns over in one step */
    char val[1000];
    memset(val, 'x', sizeof(val));
    for (unsigned i = 0; i < 300; i++) {
        cask_vcache_fill(&vc, i, 2, i * 2000, i + 10, "k", 1, val, sizeof(val),
                         false);
    }
    assert_int_equal(cask_vcache_bytes(&vc), first);
    assert_int_equal(cask_vcache_need(&vc, 1, 1000), 0);
    cask_vcache_deinit(&vc);

    /* a cache of size 0 is off */
    cask_vcache_init(&vc, 0);
    assert_int_equal(cask_vcache_need(&vc, 3, 5), 0);
    assert_false(
            cask_vcache_fill(&vc, 1, 1, 100, 5, "key", 3, "hello", 5, true));
    assert_null(cask_vcache_find(&vc, 1, 1, 100, 5, "key", 3, 5));
    cask_vcache_deinit(&vc);
}

/* ---- in the store ------------------------------------------------------ */

static int
setup(void **state)
{
    return tc_fx_setup(state, NULL);
}

static int
teardown(void **state)
{
    return tc_fx_teardown(state);
}

static uint64_t
hits(struct cask *c)
{
    struct cask_stats st;
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    return st.value_cache_hits;
}

/* Get k twice (the second from the cache) and check it holds v both
 * times. */
static void
get_twice(struct cask *c, const char *k, const char *v)
{
    uint64_t h0 = hits(c);
    assert_true(tc_is(c, k, v));
    assert_true(tc_is(c, k, v));
    assert_true(hits(c) > h0);
}

static void
test_store_never_stale(void **state)
{
    struct fx *f = *state;
    struct cask_item it;
    char *v = NULL;

    assert_int_equal(tc_set(f->c, "k", "one"), CASK_OK);
    get_twice(f->c, "k", "one");
    /* a set */
    assert_int_equal(tc_set(f->c, "k", "two"), CASK_OK);
    assert_true(tc_is(f->c, "k", "two"));
    get_twice(f->c, "k", "two");
    /* a delete */
    assert_int_equal(cask_delete(f->c, "k", 1, 0), CASK_OK);
    assert_true(tc_absent(f->c, "k"));
    /* the same value again, a new item */
    assert_int_equal(tc_set(f->c, "k", "two"), CASK_OK);
    get_twice(f->c, "k", "two");
    /* an append and an incr make new records */
    assert_int_equal(
            cask_store(f->c, CASK_APPEND, "k", 1, "!", 1, 0, 0, 0, NULL),
            CASK_OK);
    assert_true(tc_is(f->c, "k", "two!"));
    get_twice(f->c, "k", "two!");
    assert_int_equal(tc_set(f->c, "n", "41"), CASK_OK);
    get_twice(f->c, "n", "41");
    uint64_t nv = 0;
    struct cask_arith a = {.incr = true, .delta = 1};
    assert_int_equal(cask_arith(f->c, "n", 1, &a, &nv, NULL), CASK_OK);
    assert_true(tc_is(f->c, "n", "42"));
    /* a touch keeps the value (and the cache entry) and sets the expiry */
    assert_int_equal(cask_touch(f->c, "k", 1, tc_now + 10, &it, NULL), CASK_OK);
    get_twice(f->c, "k", "two!");
    assert_int_equal(cask_get(f->c, "k", 1, &it, &v), CASK_OK);
    assert_int_equal(it.exp_abs_s, tc_now + 10);
    free(v);
    /* expiry */
    tc_now += 11;
    assert_true(tc_absent(f->c, "k"));
    /* flush_all */
    assert_int_equal(tc_set(f->c, "k", "three"), CASK_OK);
    get_twice(f->c, "k", "three");
    assert_int_equal(cask_flush(f->c, 0), CASK_OK);
    assert_true(tc_absent(f->c, "k"));
    assert_true(tc_absent(f->c, "n"));
    assert_int_equal(tc_set(f->c, "k", "four"), CASK_OK);
    get_twice(f->c, "k", "four");
}

static void
test_store_compaction(void **state)
{
    struct fx *f = *state;
    char k[32], v[64];
    unsigned n = 2000;

    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "key-%u", i);
            snprintf(v, sizeof(v), "value-%u-%u", i, round);
            assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        }
        for (unsigned i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "key-%u", i);
            snprintf(v, sizeof(v), "value-%u-%u", i, round);
            assert_true(tc_is(f->c, k, v)); /* cached */
        }
        /* the records move; the cached places are left behind */
        assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
        for (unsigned i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "key-%u", i);
            snprintf(v, sizeof(v), "value-%u-%u", i, round);
            assert_true(tc_is(f->c, k, v));
            assert_true(tc_is(f->c, k, v));
        }
        for (unsigned i = 0; i < n; i += 2) {
            snprintf(k, sizeof(k), "key-%u", i);
            assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
        }
        assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
        for (unsigned i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "key-%u", i);
            snprintf(v, sizeof(v), "value-%u-%u", i, round);
            if (i % 2 == 0) {
                assert_true(tc_absent(f->c, k));
            } else {
                assert_true(tc_is(f->c, k, v));
            }
        }
    }
}

/* Reads through replaced operations fail: a test injecting read errors
 * sees every read, the cache serves nothing then. */
static ssize_t
pread_eio(int fd, void *buf, size_t n, off_t off)
{
    (void)fd;
    (void)buf;
    (void)n;
    (void)off;
    errno = EIO;
    return -1;
}

static void
test_store_replaced_reads_bypass(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tc_set(f->c, "k", "cached"), CASK_OK);
    get_twice(f->c, "k", "cached");
    struct cask_io_ops ops = *cask_io_default();
    ops.pread = pread_eio;
    cask_io_set(&ops);
    struct cask_item it;
    char *v = NULL;
    uint64_t h0 = hits(f->c);
    int rc = cask_get(f->c, "k", 1, &it, &v);
    cask_io_set(NULL);
    assert_int_equal(rc, EIO);
    assert_null(v);
    assert_int_equal(hits(f->c), h0);
    assert_true(tc_is(f->c, "k", "cached"));
}

static void
test_store_off(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_options o;
    tc_options(&o);
    o.value_cache = 0;
    struct cask *c = NULL;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    assert_int_equal(tc_set(c, "k", "v"), CASK_OK);
    assert_true(tc_is(c, "k", "v"));
    assert_true(tc_is(c, "k", "v"));
    struct cask_stats st;
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    assert_int_equal(st.value_cache_hits, 0);
    assert_int_equal(st.value_cache_bytes, 0);
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* Under a memory limit the caches take at most their share, are counted
 * with the keydirs, and give their memory back as the keydirs grow. */
static void
test_store_memory_charged(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_options o;
    tc_options(&o);
    o.mem_limit = 4u * 1024 * 1024;
    o.mem_evict = true;
    struct cask *c = NULL;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    char k[32], v[128];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    struct cask_stats st;
    /* a few keys read twice: the caches fill up to their share */
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(k, sizeof(k), "key-%u", i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
        assert_true(tc_is(c, k, v));
    }
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    assert_true(st.value_cache_bytes > 0);
    assert_true(st.value_cache_bytes <= o.mem_limit / 4);
    assert_true(st.value_cache_bytes + st.keydir_bytes + st.buffer_bytes <=
                o.mem_limit);
    /* many more keys: the keydirs take the memory back */
    for (unsigned i = 20000; i < 200000; i++) {
        snprintf(k, sizeof(k), "key-%u", i);
        int rc = tc_set(c, k, v);
        assert_true(rc == CASK_OK || rc == CASK_ENOMEM);
    }
    assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
    assert_true(st.value_cache_bytes < o.mem_limit / 8);
    cask_close(&c);
    tc_rmrf(dir);
    free(dir);
}

/* ---- writers racing cached reads --------------------------------------- */

#define RACE_KEYS 8
#define RACE_MS   400

struct race {
    struct cask *c;
    atomic_bool stop;
    atomic_uint errors;
    atomic_ulong reads;
};

static uint64_t
ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The version a value says it is (values are "<version>:" and padding),
 * 0 for a miss. */
static unsigned long
version_of(struct cask *c, const char *k)
{
    struct cask_item it;
    char *v = NULL;
    int rc = cask_get(c, k, strlen(k), &it, &v);
    if (rc != CASK_OK) {
        return 0;
    }
    unsigned long n = strtoul(v, NULL, 10);
    free(v);
    return n;
}

static void *
race_reader(void *arg)
{
    struct race *r = arg;
    unsigned long seen[RACE_KEYS] = {0};
    char k[16];
    while (!atomic_load(&r->stop)) {
        for (unsigned i = 0; i < RACE_KEYS; i++) {
            snprintf(k, sizeof(k), "race-%u", i);
            unsigned long n = version_of(r->c, k);
            /* a key only ever gets newer versions (a delete reads as 0
             * and is followed by a newer one) */
            if (n != 0 && n < seen[i]) {
                atomic_fetch_add(&r->errors, 1);
            }
            if (n != 0) {
                seen[i] = n;
            }
            atomic_fetch_add(&r->reads, 1);
        }
    }
    return NULL;
}

static void *
race_writer(void *arg)
{
    struct race *r = arg;
    char k[16], v[160];
    unsigned long n = 0;
    uint64_t end = ms_now() + RACE_MS;
    while (ms_now() < end) {
        unsigned i = (unsigned)(n % RACE_KEYS);
        snprintf(k, sizeof(k), "race-%u", i);
        n++;
        int len = snprintf(v, sizeof(v), "%lu:", n);
        memset(v + len, 'p', (size_t)(n % 100));
        v[len + (int)(n % 100)] = '\0';
        if (n % 17 == 0) {
            (void)cask_delete(r->c, k, strlen(k), 0);
            if (version_of(r->c, k) != 0) {
                atomic_fetch_add(&r->errors, 1); /* deleted, yet read */
            }
            continue;
        }
        if (tc_set(r->c, k, v) != CASK_OK) {
            atomic_fetch_add(&r->errors, 1);
            continue;
        }
        /* read your write, whatever the readers cached meanwhile */
        if (version_of(r->c, k) != n) {
            atomic_fetch_add(&r->errors, 1);
        }
        if (n % 500 == 0) {
            (void)cask_compact(r->c, -1, false);
        }
    }
    atomic_store(&r->stop, true);
    return NULL;
}

static void
test_store_race(void **state)
{
    struct fx *f = *state;
    struct race r = {.c = f->c};
    pthread_t w, rd[3];
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&rd[i], NULL, race_reader, &r), 0);
    }
    assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
    pthread_join(w, NULL);
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(rd[i], NULL);
    }
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_true(atomic_load(&r.reads) > 0);
    assert_true(hits(f->c) > 0);
}

/* cask_prefetch takes no lock: it runs beside writes that grow the
 * keydir's tables and fill the value cache, and beside wipes that drop
 * both (a replica's resync), and changes nothing gets see. A smoke test
 * for the memory it reads: a read of freed memory would need a sanitizer
 * build and an unlucky moment to show (the keydir stays at its address
 * across a wipe, test_cask_keydir's test_swap). */
struct pf_race {
    struct cask *c;
    atomic_bool stop;
    atomic_ulong prefetches;
};

#define PF_KEYS 3000u

static void *
pf_prefetcher(void *arg)
{
    struct pf_race *r = arg;
    char k[24];
    unsigned long n = 0;
    while (!atomic_load(&r->stop)) {
        int len = snprintf(k, sizeof(k), "pf-%u", (unsigned)(n % PF_KEYS));
        cask_prefetch(r->c, k, (size_t)len);
        n++;
    }
    cask_prefetch(r->c, NULL, 0); /* no key: nothing */
    cask_prefetch(r->c, k, CASK_KEY_MAX + 1);
    atomic_store(&r->prefetches, n);
    return NULL;
}

static void
test_store_prefetch_race(void **state)
{
    struct fx *f = *state;
    struct pf_race r = {.c = f->c};
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, pf_prefetcher, &r), 0);
    }
    char k[24], v[100];
    memset(v, 'p', sizeof(v));
    unsigned shards = cask_shards(f->c);
    for (unsigned round = 0; round < 4; round++) {
        for (unsigned i = 0; i < PF_KEYS; i++) {
            int len = snprintf(k, sizeof(k), "pf-%u", i);
            assert_int_equal(cask_store(f->c, CASK_SET, k, (size_t)len, v,
                                        sizeof(v), round, 0, 0, NULL),
                             CASK_OK);
        }
        for (unsigned i = 0; i < PF_KEYS; i++) {
            /* twice: the second read is served from the value cache */
            for (int twice = 0; twice < 2; twice++) {
                int len = snprintf(k, sizeof(k), "pf-%u", i);
                struct cask_item it;
                char *got = NULL;
                assert_int_equal(cask_get(f->c, k, (size_t)len, &it, &got),
                                 CASK_OK);
                assert_int_equal(it.flags, round);
                assert_memory_equal(got, v, sizeof(v));
                free(got);
            }
        }
        for (unsigned s = 0; s < shards; s++) {
            assert_int_equal(cask_stream_wipe(f->c, s), CASK_OK);
        }
        for (unsigned i = 0; i < PF_KEYS; i += 97) {
            int len = snprintf(k, sizeof(k), "pf-%u", i);
            struct cask_item it;
            assert_int_equal(cask_get(f->c, k, (size_t)len, &it, NULL),
                             CASK_ENOTFOUND);
        }
    }
    atomic_store(&r.stop, true);
    for (unsigned i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(atomic_load(&r.prefetches) > 0);
}

/* deinit drops the entries and the index, keeps the size and counters,
 * and the cache fills again afterwards. */
static void
test_deinit_then_refill(void **state)
{
    (void)state;
    struct cask_vcache vc;
    cask_vcache_init(&vc, 4 * CASK_VCACHE_STEP);
    size_t cap = vc.cap;
    cask_vcache_prefetch(&vc, 7); /* before the first fill: no index */
    assert_true(
            cask_vcache_fill(&vc, 7, 1, 100, 5, "key", 3, "hello", 5, true));
    cask_vcache_prefetch(&vc, 7);
    assert_non_null(cask_vcache_find(&vc, 7, 1, 100, 5, "key", 3, 5));
    cask_vcache_deinit(&vc);
    assert_null(vc.slots);
    assert_int_equal(vc.nbuckets, 0);
    assert_int_equal(vc.cap, cap);
    assert_int_equal(vc.hits, 1);
    assert_int_equal(vc.fills, 1);
    assert_int_equal(cask_vcache_bytes(&vc), 0);
    cask_vcache_prefetch(&vc, 7);
    assert_null(cask_vcache_find(&vc, 7, 1, 100, 5, "key", 3, 5));
    assert_true(
            cask_vcache_fill(&vc, 7, 1, 200, 6, "key", 3, "again", 5, true));
    const char *got = cask_vcache_find(&vc, 7, 1, 200, 6, "key", 3, 5);
    assert_non_null(got);
    assert_memory_equal(got, "again", 5);
    assert_int_equal(vc.hits, 2);
    cask_vcache_deinit(&vc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_find_matches_place_cas_key),
            cmocka_unit_test(test_ring_turns_over_bounded),
            cmocka_unit_test(test_doorkeeper),
            cmocka_unit_test(test_grows_only_when_allowed),
            cmocka_unit_test_setup_teardown(test_store_never_stale, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_store_compaction, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_store_replaced_reads_bypass,
                                            setup, teardown),
            cmocka_unit_test(test_store_off),
            cmocka_unit_test(test_store_memory_charged),
            cmocka_unit_test_setup_teardown(test_store_race, setup, teardown),
            cmocka_unit_test(test_deinit_then_refill),
            cmocka_unit_test_setup_teardown(test_store_prefetch_race, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
