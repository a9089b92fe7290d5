/* test_cask_evnote.c - the eviction hook (cask_options.evicted, behind
 * `watch evictions`): a store kept within a small mem_limit tells the hook
 * about the items it evicts, each with its metadata, each really gone, and
 * the items told plus those counted lost are the evictions counted and the
 * keys a restart no longer finds; with evicted_wanted saying no, nothing is
 * told. No assertion runs with told.mu held or on the store's thread: a
 * failed one must not leave the hook blocked and the teardown's close
 * waiting for it.
 */
#include "storage/cask.h"
#include "tests/unit/test_cask_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define NKEYS 60000u

struct told {
    pthread_mutex_t mu;
    char (*keys)[32];
    size_t n, cap;
    uint64_t lost;
    uint64_t bad; /* items whose metadata is not what was written, or
                   * not kept for want of memory */
    atomic_bool wanted;
};

static struct told told = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void
on_evicted(void *arg, const struct cask_evicted *ev, size_t n, uint64_t lost)
{
    struct told *t = arg;
    pthread_mutex_lock(&t->mu);
    t->lost += lost;
    for (size_t i = 0; i < n; i++) {
        if (t->n == t->cap) {
            size_t nc = t->cap ? t->cap * 2 : 1024;
            char(*k)[32] = realloc(t->keys, nc * sizeof(*k));
            if (k == NULL) {
                t->bad++;
                continue;
            }
            t->keys = k;
            t->cap = nc;
        }
        /* what the writer below stored: key:NNNNNNN, 20 bytes, flags 7,
         * odd keys expire at T0 + 3600; written (and read) at T0 */
        unsigned idx = 0;
        for (size_t j = 4; j < ev[i].klen; j++) {
            idx = idx * 10 + (unsigned)(ev[i].key[j] - '0');
        }
        int64_t exp = idx % 2 ? 1700000000 + 3600 : 0;
        if (ev[i].klen != 11 || ev[i].vlen != 20 || ev[i].flags != 7 ||
            ev[i].exp_abs_s != exp || ev[i].atime_s != 1700000000 ||
            ev[i].fetched) {
            t->bad++;
        }
        if (ev[i].klen >= sizeof(t->keys[0])) {
            continue; /* counted bad above (klen is not 11) */
        }
        memcpy(t->keys[t->n], ev[i].key, ev[i].klen);
        t->keys[t->n][ev[i].klen] = '\0';
        t->n++;
    }
    pthread_mutex_unlock(&t->mu);
}

/* What the hook was told so far, read under its mutex. */
static void
told_now(uint64_t *n, uint64_t *lost, uint64_t *bad)
{
    pthread_mutex_lock(&told.mu);
    *n = told.n;
    *lost = told.lost;
    *bad = told.bad;
    pthread_mutex_unlock(&told.mu);
}

static bool
wanted(void *arg)
{
    return atomic_load(&((struct told *)arg)->wanted);
}

static void
tune(struct cask_options *o)
{
    o->shards = 2;
    o->mem_limit = 1u << 20;
    o->mem_evict = true;
    o->evicted = on_evicted;
    o->evicted_wanted = wanted;
    o->evicted_arg = &told;
}

static int
setup(void **state)
{
    told.n = 0;
    told.lost = 0;
    told.bad = 0;
    atomic_store(&told.wanted, true);
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    free(told.keys);
    told.keys = NULL;
    told.cap = 0;
    return tc_fx_teardown(state);
}

static void
pause_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000,
                                 .tv_nsec = ms % 1000 * 1000000L},
              NULL);
}

/* Store NKEYS new keys. A new key waits up to a second for an eviction
 * the evictor is behind with, then fails with CASK_ENOMEM (cask.h): on a
 * loaded machine one run, with its syncs, can take longer, so such a key
 * is stored again, for up to a minute in all. */
static void
fill(struct fx *f)
{
    char k[32];
    unsigned retries = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "key:%07u", i);
        int rc;
        while ((rc = cask_store(f->c, CASK_SET, k, strlen(k),
                                "vvvvvvvvvvvvvvvvvvvv", 20, 7,
                                i % 2 ? tc_now + 3600 : 0, 0, NULL)) ==
                       CASK_ENOMEM &&
               retries < 600) {
            retries++;
            pause_ms(100);
        }
        assert_int_equal(rc, CASK_OK);
    }
}

/* The evictions counted once every one of them has been told (the hook
 * runs after a run's count, with no lock held, so the two agree only
 * between runs): waits until the two agree, up to a minute, however long
 * the runs take. Returns the count, or UINT64_MAX if they never agreed. */
static uint64_t
told_evictions(struct fx *f)
{
    struct cask_stats st;
    for (int i = 0; i < 600; i++) {
        uint64_t n, lost, bad;
        told_now(&n, &lost, &bad);
        assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
        if (n + lost == st.evictions && st.evictions > 0) {
            return st.evictions;
        }
        pause_ms(100);
    }
    return UINT64_MAX;
}

/* Whether the evictions counted pass want within a minute. */
static bool
evictions_pass(struct fx *f, uint64_t want)
{
    struct cask_stats st;
    for (int i = 0; i < 600; i++) {
        assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
        if (st.evictions > want) {
            return true;
        }
        pause_ms(100);
    }
    return false;
}

static void
test_told(void **state)
{
    struct fx *f = *state;
    struct cask_stats st;
    uint64_t n, lost, bad;

    fill(f);
    uint64_t ev = told_evictions(f);
    assert_int_not_equal(ev, UINT64_MAX); /* else some were never told */
    assert_true(ev > 1000);
    /* Every run is over and told once the store is closed. Opened again
     * without the hook, the store tells nothing more, and the keys it no
     * longer holds are the ones evicted (all keys are distinct, none
     * expires): each told or counted lost, as many as were counted. */
    cask_close(&f->c);
    f->o.evicted = NULL;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    told_now(&n, &lost, &bad);
    assert_true(st.live_keys <= NKEYS);
    assert_int_equal(n + lost, NKEYS - st.live_keys);
    assert_true(n + lost >= ev);
    assert_true(n > 0);
    assert_int_equal(bad, 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(tc_absent(f->c, told.keys[i]));
    }
}

static void
test_not_wanted(void **state)
{
    struct fx *f = *state;

    uint64_t n, lost, bad;

    atomic_store(&told.wanted, false);
    fill(f);
    assert_true(evictions_pass(f, 1000));
    cask_close(&f->c); /* every run is over */
    told_now(&n, &lost, &bad);
    assert_int_equal(n, 0);
    assert_int_equal(lost, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_told, setup, teardown),
            cmocka_unit_test_setup_teardown(test_not_wanted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
