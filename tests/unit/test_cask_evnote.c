/* test_cask_evnote.c - the eviction hook (cask_options.evicted, behind
 * `watch evictions`): a store kept within a small mem_limit tells the hook
 * about the items it evicts, each with its metadata, each really gone, and
 * the items told plus those counted lost are the evictions counted; with
 * evicted_wanted saying no, nothing is told.
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
    uint64_t bad; /* items whose metadata is not what was written */
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
            t->cap = t->cap ? t->cap * 2 : 1024;
            t->keys = realloc(t->keys, t->cap * sizeof(*t->keys));
            assert_non_null(t->keys);
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
        assert_true(ev[i].klen < sizeof(t->keys[0]));
        memcpy(t->keys[t->n], ev[i].key, ev[i].klen);
        t->keys[t->n][ev[i].klen] = '\0';
        t->n++;
    }
    pthread_mutex_unlock(&t->mu);
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
fill(struct fx *f)
{
    char k[32];
    for (unsigned i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "key:%07u", i);
        assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k),
                                    "vvvvvvvvvvvvvvvvvvvv", 20, 7,
                                    i % 2 ? tc_now + 3600 : 0, 0, NULL),
                         CASK_OK);
    }
}

/* Wait (up to 10 s) until the evictions counted stop growing. */
static uint64_t
settled_evictions(struct fx *f)
{
    struct cask_stats st;
    uint64_t last = UINT64_MAX;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
        if (st.evictions == last) {
            break;
        }
        last = st.evictions;
        nanosleep(&(struct timespec){.tv_nsec = 250000000}, NULL);
    }
    return last;
}

static void
test_told(void **state)
{
    struct fx *f = *state;

    fill(f);
    uint64_t ev = settled_evictions(f);
    assert_true(ev > 1000);
    cask_close(&f->c); /* no run is left to tell anything */
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    pthread_mutex_lock(&told.mu);
    assert_int_equal(told.n + told.lost, ev);
    assert_true(told.n > 0);
    assert_int_equal(told.bad, 0);
    for (size_t i = 0; i < told.n; i++) {
        assert_true(tc_absent(f->c, told.keys[i]));
    }
    pthread_mutex_unlock(&told.mu);
}

static void
test_not_wanted(void **state)
{
    struct fx *f = *state;

    atomic_store(&told.wanted, false);
    fill(f);
    assert_true(settled_evictions(f) > 1000);
    pthread_mutex_lock(&told.mu);
    assert_int_equal(told.n, 0);
    assert_int_equal(told.lost, 0);
    pthread_mutex_unlock(&told.mu);
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
