/* test_cask_keydir.c - the keydir: insert/find/remove against a shadow array,
 * growth, backward-shift deletion keeping every key reachable, entry reuse,
 * and the memory per key for 16-32 byte keys; the keyless keydir with keys
 * whose hash bits all agree (only the match function tells them apart);
 * bulk loading (recovery) and the settling after it; removal of the
 * entries a predicate picks, without their keys; a reserve that spares
 * the inserts after it any growth.
 */
#include "storage/cask_keydir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static size_t
mkkey(char *buf, unsigned i)
{
    /* 16..32 bytes, like the benchmark's keys */
    int n = snprintf(buf, 64, "key:%010u:", i);
    size_t want = 16 + i % 17;
    while ((size_t)n < want) {
        buf[n] = (char)('a' + (i + (unsigned)n) % 26);
        n++;
    }
    return (size_t)n;
}

static void
count(void *arg, struct cask_kd_entry *e)
{
    (void)e;
    (*(unsigned *)arg)++;
}

static void
test_insert_find_remove(void **state)
{
    (void)state;
    struct cask_keydir *kd = cask_kd_create();
    enum { N = 20000 };
    char k[64];
    bool *present = calloc(N, sizeof(bool));
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        uint64_t h = cask_kd_hash(k, n);
        assert_null(cask_kd_find(kd, h, k, n));
        struct cask_kd_entry *e = cask_kd_insert(kd, h, k, n);
        assert_non_null(e);
        cask_kd_set_cas(e, (uint64_t)i << 33 | i);
        e->off = i;
        e->vlen = i * 3;
        present[i] = true;
    }
    assert_int_equal(cask_kd_count(kd), N);
    /* remove every third, then check everything */
    for (unsigned i = 0; i < N; i += 3) {
        size_t n = mkkey(k, i);
        uint64_t h = cask_kd_hash(k, n);
        struct cask_kd_entry *e = cask_kd_find(kd, h, k, n);
        assert_non_null(e);
        cask_kd_remove(kd, h, e);
        present[i] = false;
    }
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_find(kd, cask_kd_hash(k, n), k, n);
        if (present[i]) {
            assert_non_null(e);
            assert_int_equal(cask_kd_cas(e), (uint64_t)i << 33 | i);
            assert_int_equal(e->off, i);
            assert_int_equal(e->vlen, i * 3);
            assert_int_equal(e->klen, n);
            assert_memory_equal(e->key, k, n);
        } else {
            assert_null(e);
        }
    }
    /* re-adding reuses freed entries: memory does not grow */
    size_t before = cask_kd_bytes(kd);
    for (unsigned i = 0; i < N; i += 3) {
        size_t n = mkkey(k, i);
        assert_non_null(cask_kd_insert(kd, cask_kd_hash(k, n), k, n));
    }
    assert_int_equal(cask_kd_count(kd), N);
    assert_true(cask_kd_bytes(kd) <= before + (before / 4));
    unsigned seen = 0;
    cask_kd_foreach(kd, count, &seen);
    assert_int_equal(seen, N);
    cask_kd_destroy(&kd);
    assert_null(kd);
    free(present);
}

/* Removal without keys or hashes (entries whose records can no longer
 * be read): the ones asked for go, every other one stays reachable. */
static bool
odd_fifth(void *arg, const struct cask_kd_entry *e)
{
    (*(unsigned *)arg)++;
    return e->off % 5 == 1;
}

static void
test_remove_if(void **state)
{
    (void)state;
    struct cask_keydir *kd = cask_kd_create();
    enum { N = 20000 };
    char k[64];
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_insert(kd, cask_kd_hash(k, n), k, n);
        assert_non_null(e);
        e->off = i;
    }
    unsigned asked = 0;
    assert_int_equal(cask_kd_remove_if(kd, odd_fifth, &asked), N / 5);
    assert_true(asked >= N);
    assert_int_equal(cask_kd_count(kd), N - N / 5);
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_find(kd, cask_kd_hash(k, n), k, n);
        if (i % 5 == 1) {
            assert_null(e);
        } else {
            assert_non_null(e);
            assert_int_equal(e->off, i);
        }
    }
    unsigned seen = 0;
    cask_kd_foreach(kd, count, &seen);
    assert_int_equal(seen, N - N / 5);
    cask_kd_destroy(&kd);
}

static void
test_memory_per_key(void **state)
{
    (void)state;
    struct cask_keydir *kd = cask_kd_create();
    enum { N = 200000 };
    char k[64];
    size_t keybytes = 0;
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        keybytes += n;
        assert_non_null(cask_kd_insert(kd, cask_kd_hash(k, n), k, n));
    }
    double per = (double)cask_kd_bytes(kd) / N;
    print_message("keydir: %.1f bytes/key (avg key %.1f bytes)\n", per,
                  (double)keybytes / N);
    assert_true(per <= 66.0); /* 6-byte slots carry 16 fp bits */
    cask_kd_destroy(&kd);
}

/* The keyless tests keep their keys here; an entry's off is its index. */
struct keytab {
    char keys[4096][40];
    size_t lens[4096];
    unsigned calls, misses;
};

static bool
tab_match(void *arg, const struct cask_kd_entry *e, const void *key,
          size_t klen)
{
    struct keytab *t = arg;
    t->calls++;
    bool same =
            t->lens[e->off] == klen && memcmp(t->keys[e->off], key, klen) == 0;
    t->misses += !same;
    return same;
}

static void
test_keyless_collisions(void **state)
{
    (void)state;
    struct keytab *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    struct cask_keydir *kd = cask_kd_create_keyless(tab_match, t);
    assert_non_null(kd);
    enum { N = 3000 };
    /* Every key gets the same stripe, tag and fp (only bits the keydir
     * does not keep differ): one cluster, told apart by match alone. */
    for (unsigned i = 0; i < N; i++) {
        t->lens[i] = mkkey(t->keys[i], i);
        uint64_t h = i & 0xffffu;
        assert_null(cask_kd_find(kd, h, t->keys[i], t->lens[i]));
        struct cask_kd_entry *e = cask_kd_insert(kd, h, t->keys[i], t->lens[i]);
        assert_non_null(e);
        e->off = i;
        cask_kd_set_cas(e, (uint64_t)i + 7);
    }
    assert_true(t->misses > 0);
    for (unsigned i = 0; i < N; i += 2) {
        struct cask_kd_entry *e =
                cask_kd_find(kd, i & 0xffffu, t->keys[i], t->lens[i]);
        assert_non_null(e);
        assert_int_equal(e->off, i);
        cask_kd_remove(kd, i & 0xffffu, e);
    }
    for (unsigned i = 0; i < N; i++) {
        struct cask_kd_entry *e =
                cask_kd_find(kd, i & 0xffffu, t->keys[i], t->lens[i]);
        if (i % 2 == 0) {
            assert_null(e);
        } else {
            assert_non_null(e);
            assert_int_equal(e->off, i);
            assert_int_equal(cask_kd_cas(e), (uint64_t)i + 7);
        }
    }
    /* a key never inserted whose bits agree with all of them */
    assert_null(cask_kd_find(kd, 0, "absent-key", 10));
    assert_int_equal(cask_kd_count(kd), N / 2);
    cask_kd_destroy(&kd);
    free(t);
}

static bool
never_called(void *arg, const struct cask_kd_entry *e, const void *key,
             size_t klen)
{
    (void)arg;
    (void)e;
    (void)key;
    (void)klen;
    fail_msg("match called on an insert-only run");
    return false;
}

static void
test_keyless_memory_per_key(void **state)
{
    (void)state;
    struct cask_keydir *kd = cask_kd_create_keyless(never_called, NULL);
    enum { N = 200000 };
    char k[64];
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        /* insert does not compare keys: match is never needed */
        assert_non_null(cask_kd_insert(kd, cask_kd_hash(k, n), k, n));
    }
    double per = (double)cask_kd_bytes(kd) / N;
    print_message("keyless keydir: %.1f bytes/key\n", per);
    assert_true(sizeof(struct cask_kd_entry) == 28);
    assert_true(per <= 40.0); /* 28 + a 6-byte slot at load 0.53..0.8 */
    cask_kd_destroy(&kd);
}

/* insert_cost says exactly what an insert adds to cask_kd_bytes. */
static void
test_insert_cost_exact(void **state)
{
    (void)state;
    struct cask_keydir *kd = cask_kd_create();
    char k[64];
    unsigned grew = 0;
    for (unsigned i = 0; i < 50000; i++) {
        size_t n = mkkey(k, i);
        uint64_t h = cask_kd_hash(k, n);
        size_t before = cask_kd_bytes(kd);
        size_t cost = cask_kd_insert_cost(kd, h, n);
        assert_non_null(cask_kd_insert(kd, h, k, n));
        assert_int_equal(cask_kd_bytes(kd) - before, cost);
        grew += cost != 0;
        if (i % 7 == 0) { /* a freed entry is reused at no cost */
            struct cask_kd_entry *e = cask_kd_find(kd, h, k, n);
            cask_kd_remove(kd, h, e);
            assert_int_equal(cask_kd_insert_cost(kd, h, n), 0);
            assert_non_null(cask_kd_insert(kd, h, k, n));
        }
    }
    assert_true(grew > 0);
    cask_kd_destroy(&kd);
}

/* Bulk loading grows by half and settles back to what the small steps
 * keep: every key still found, the same count, no more bytes than a keydir
 * filled key by key (within a stripe's last step), and insert_cost exact
 * in both modes. */
static void
test_bulk_then_settle(void **state)
{
    (void)state;
    struct cask_keydir *bulk = cask_kd_create();
    struct cask_keydir *plain = cask_kd_create();
    enum { N = 100000 };
    char k[64];
    cask_kd_bulk(bulk, true);
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        uint64_t h = cask_kd_hash(k, n);
        size_t before = cask_kd_bytes(bulk);
        size_t cost = cask_kd_insert_cost(bulk, h, n);
        assert_non_null(cask_kd_insert(bulk, h, k, n));
        assert_int_equal(cask_kd_bytes(bulk) - before, cost);
        assert_non_null(cask_kd_insert(plain, h, k, n));
    }
    size_t loaded = cask_kd_bytes(bulk);
    cask_kd_bulk(bulk, false);
    size_t settled = cask_kd_bytes(bulk);
    print_message("bulk: %zu bytes loaded, %zu settled, %zu key by key\n",
                  loaded, settled, cask_kd_bytes(plain));
    assert_true(settled < loaded);
    assert_true(settled <= cask_kd_bytes(plain) + cask_kd_bytes(plain) / 50);
    assert_int_equal(cask_kd_count(bulk), N);
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_find(bulk, cask_kd_hash(k, n), k, n);
        assert_non_null(e);
        if (i % 3 == 0) { /* backward shift still keeps the rest reachable */
            cask_kd_remove(bulk, cask_kd_hash(k, n), e);
        }
    }
    for (unsigned i = 0; i < N; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_find(bulk, cask_kd_hash(k, n), k, n);
        assert_true((e == NULL) == (i % 3 == 0));
    }
    unsigned walked = 0;
    cask_kd_foreach(bulk, count, &walked);
    assert_int_equal(walked, N - (N + 2) / 3);
    cask_kd_destroy(&bulk);
    cask_kd_destroy(&plain);
}

static void
test_exp_clamp(void **state)
{
    (void)state;
    assert_int_equal(cask_kd_exp32(0), 0);
    assert_int_equal(cask_kd_exp32(-5), 1);
    assert_int_equal(cask_kd_exp32(100), 100);
    assert_int_equal(cask_kd_exp32(INT64_MAX), UINT32_MAX);
}

/* cask_kd_swap exchanges two keydirs' contents in place: each address
 * keeps working, with the other's keys, and prefetches through either are
 * harmless. */
static void
test_swap(void **state)
{
    (void)state;
    struct cask_keydir *a = cask_kd_create();
    struct cask_keydir *b = cask_kd_create();
    enum { NA = 5000, NB = 300 };
    char k[64];
    for (unsigned i = 0; i < NA; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_insert(a, cask_kd_hash(k, n), k, n);
        assert_non_null(e);
        e->off = i;
    }
    for (unsigned i = NA; i < NA + NB; i++) {
        size_t n = mkkey(k, i);
        struct cask_kd_entry *e = cask_kd_insert(b, cask_kd_hash(k, n), k, n);
        assert_non_null(e);
        e->off = i;
    }
    size_t bytes_a = cask_kd_bytes(a), bytes_b = cask_kd_bytes(b);
    struct cask_keydir *a_was = a;
    cask_kd_swap(a, b);
    assert_ptr_equal(a, a_was);
    assert_int_equal(cask_kd_count(a), NB);
    assert_int_equal(cask_kd_count(b), NA);
    assert_int_equal(cask_kd_bytes(a), bytes_b);
    assert_int_equal(cask_kd_bytes(b), bytes_a);
    for (unsigned i = 0; i < NA + NB; i++) {
        size_t n = mkkey(k, i);
        uint64_t h = cask_kd_hash(k, n);
        cask_kd_prefetch(a, h);
        cask_kd_prefetch(b, h);
        struct cask_kd_entry *in_a = cask_kd_find(a, h, k, n);
        struct cask_kd_entry *in_b = cask_kd_find(b, h, k, n);
        if (i < NA) {
            assert_null(in_a);
            assert_non_null(in_b);
            assert_int_equal(in_b->off, i);
        } else {
            assert_null(in_b);
            assert_non_null(in_a);
            assert_int_equal(in_a->off, i);
        }
    }
    /* both go on working: inserts into a (its tables grow), removals */
    for (unsigned i = 0; i < NA; i++) {
        size_t n = mkkey(k, i);
        assert_non_null(cask_kd_insert(a, cask_kd_hash(k, n), k, n));
    }
    assert_int_equal(cask_kd_count(a), NA + NB);
    unsigned seen = 0;
    cask_kd_foreach(b, count, &seen);
    assert_int_equal(seen, NA);
    cask_kd_destroy(&b);
    cask_kd_destroy(&a);
}

/* n keys k0.. into kd; returns how many times a table grew meanwhile. */
static uint64_t
insert_n(struct cask_keydir *kd, unsigned n)
{
    char k[32];
    uint64_t before = cask_kd_grows(kd);
    for (unsigned i = 0; i < n; i++) {
        size_t len = (size_t)snprintf(k, sizeof(k), "key:%u", i);
        assert_non_null(cask_kd_insert(kd, cask_kd_hash(k, len), k, len));
    }
    return cask_kd_grows(kd) - before;
}

/* A reserve of n entries: n inserts then grow no table (without it they
 * grow many); a reserve for more than arrives is given back by the end of
 * a bulk load; every key is found. */
static void
test_reserve(void **state)
{
    (void)state;
    const unsigned n = 200000;
    struct cask_keydir *kd = cask_kd_create();
    assert_non_null(kd);
    assert_true(insert_n(kd, n) > 0);
    cask_kd_destroy(&kd);

    kd = cask_kd_create();
    assert_non_null(kd);
    cask_kd_bulk(kd, true);
    assert_true(cask_kd_reserve(kd, n));
    assert_int_equal(insert_n(kd, n), 0);
    cask_kd_bulk(kd, false);
    assert_int_equal(cask_kd_count(kd), n);
    char k[32];
    for (unsigned i = 0; i < n; i += 97) {
        size_t len = (size_t)snprintf(k, sizeof(k), "key:%u", i);
        assert_non_null(cask_kd_find(kd, cask_kd_hash(k, len), k, len));
    }
    cask_kd_destroy(&kd);

    kd = cask_kd_create();
    assert_non_null(kd);
    cask_kd_bulk(kd, true);
    assert_true(cask_kd_reserve(kd, 4 * n));
    size_t reserved = cask_kd_slots(kd);
    (void)insert_n(kd, n);
    cask_kd_bulk(kd, false);
    assert_true(cask_kd_slots(kd) < reserved / 2);
    cask_kd_destroy(&kd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_insert_find_remove),
            cmocka_unit_test(test_remove_if),
            cmocka_unit_test(test_memory_per_key),
            cmocka_unit_test(test_keyless_collisions),
            cmocka_unit_test(test_keyless_memory_per_key),
            cmocka_unit_test(test_insert_cost_exact),
            cmocka_unit_test(test_exp_clamp),
            cmocka_unit_test(test_bulk_then_settle),
            cmocka_unit_test(test_swap),
            cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
