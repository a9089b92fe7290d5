/* test_cask_compact.c - compaction: space is reclaimed and every value stays,
 * deletes and expiries are not resurrected by it (also across restarts), cas
 * stays monotonic, and reads and writes from several threads keep seeing
 * each key's latest value while compactions run.
 */
#include "storage/cask.h"

#include "storage/cask_internal.h"
#include "storage/cask_shard.h"
#include "tests/unit/test_cask_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void
small_segments(struct cask_options *o)
{
    o->shards = 2;
    o->segment_size = 16384;
}

static int
setup(void **state)
{
    return tc_fx_setup(state, small_segments);
}

static void
val_of(char *v, size_t cap, int key, int ver)
{
    snprintf(v, cap, "key %d version %d padding.....................", key,
             ver);
}

static void
test_reclaims_and_keeps(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int ver = 0; ver < 5; ver++) {
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "k%d", i);
            val_of(v, sizeof(v), i, ver);
            assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        }
    }
    for (int i = 0; i < 400; i += 4) {
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
    }
    struct cask_stats before, after;
    cask_stats(f->c, -1, &before);
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    cask_stats(f->c, -1, &after);
    assert_true(after.compactions >= 2);
    assert_true(after.disk_bytes < before.disk_bytes / 3);
    assert_true(after.bytes_reclaimed > 0);
    assert_int_equal(after.live_keys, 300);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "k%d", i);
            val_of(v, sizeof(v), i, 4);
            if (i % 4 == 0) {
                assert_true(tc_absent(f->c, k));
            } else {
                assert_true(tc_is(f->c, k, v));
            }
        }
        tc_fx_reopen(f);
    }
}

static void
test_no_resurrection(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    assert_int_equal(tc_set(f->c, "gone", "old value"), CASK_OK);
    assert_int_equal(tc_set(f->c, "exp", "old value"), CASK_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "fill%d", i);
        val_of(v, sizeof(v), i, 0);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    assert_int_equal(cask_delete(f->c, "gone", 4, 0), CASK_OK);
    assert_int_equal(cask_store(f->c, CASK_SET, "exp", 3, "new", 3, 0,
                                tc_now + 5, 0, NULL),
                     CASK_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "fill%d", i);
        val_of(v, sizeof(v), i, 1);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    tc_now += 10;
    /* compact one shard at a time, reopening in between, so that the old
     * records and their tombstones end up in different runs */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(cask_compact(f->c, round % 2, true), CASK_OK);
        tc_fx_reopen(f);
        assert_true(tc_absent(f->c, "gone"));
        assert_true(tc_absent(f->c, "exp"));
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof(k), "fill%d", i);
            val_of(v, sizeof(v), i, 1);
            assert_true(tc_is(f->c, k, v));
        }
    }
}

static void
test_touch_survives_compaction(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    uint64_t cas;
    assert_int_equal(cask_store(f->c, CASK_SET, "t", 1, "tv", 2, 0, tc_now + 10,
                                0, &cas),
                     CASK_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "fill%d", i);
        val_of(v, sizeof(v), i, 0);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    assert_int_equal(cask_touch(f->c, "t", 1, tc_now + 1000, NULL, NULL),
                     CASK_OK);
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    tc_fx_reopen(f);
    tc_now += 100;
    struct cask_item it;
    assert_int_equal(cask_get(f->c, "t", 1, &it, NULL), CASK_OK);
    assert_int_equal(it.cas, cas);
    assert_int_equal(it.exp_abs_s, tc_now - 100 + 1000);
}

/* Only the segment holding the tombstone is a candidate (by ratio); the
 * older segment with the deleted key's record stays, so the tombstone must
 * be carried over, or the key would come back at the next start. */
static void
test_partial_keeps_tombstone(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    cask_close(&f->c);
    f->o.shards = 1;
    tc_rmrf(f->dir);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_equal(tc_set(f->c, "victim", "old value"), CASK_OK);
    for (int i = 0; i < 200; i++) { /* live filler: segment 1 stays */
        snprintf(k, sizeof(k), "live%d", i);
        val_of(v, sizeof(v), i, 0);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    assert_int_equal(cask_delete(f->c, "victim", 6, 0), CASK_OK);
    for (int r = 0; r < 20; r++) { /* churn: later segments mostly dead */
        for (int i = 0; i < 20; i++) {
            snprintf(k, sizeof(k), "churn%d", i);
            val_of(v, sizeof(v), i, r);
            assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        }
    }
    struct cask_shard *sh = f->c->shards[0];
    struct cask_stats before, after;
    cask_stats(f->c, -1, &before);
    assert_int_equal(cask_shard_compact(sh, false), CASK_OK);
    cask_stats(f->c, -1, &after);
    assert_true(after.compactions > before.compactions);
    /* run again: carried tombstones must not make it rewrite forever */
    assert_int_equal(cask_shard_compact(sh, false), CASK_OK);
    struct cask_stats again;
    cask_stats(f->c, -1, &again);
    assert_int_equal(again.compactions, after.compactions);
    for (int pass = 0; pass < 2; pass++) {
        tc_fx_reopen(f);
        assert_true(tc_absent(f->c, "victim"));
        assert_true(tc_is(f->c, "live7",
                          "key 7 version 0 padding....................."));
    }
}

/* Every clean restart starts a new segment; compaction folds the small
 * ones together so their number stays bounded. */
static void
test_small_segments_batched(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    cask_close(&f->c);
    f->o.shards = 1;
    f->o.segment_size = 65536;
    tc_rmrf(f->dir);
    for (int r = 0; r < 20; r++) {
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        for (int i = 0; i < 5; i++) {
            snprintf(k, sizeof(k), "r%di%d", r, i);
            val_of(v, sizeof(v), i, r);
            assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        }
        cask_close(&f->c);
    }
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.segments >= 20);
    assert_int_equal(cask_shard_compact(f->c->shards[0], false), CASK_OK);
    cask_stats(f->c, -1, &st);
    assert_true(st.segments <= 3);
    tc_fx_reopen(f);
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 5; i++) {
            snprintf(k, sizeof(k), "r%di%d", r, i);
            val_of(v, sizeof(v), i, r);
            assert_true(tc_is(f->c, k, v));
        }
    }
}

/* ---- concurrent readers and writers while compacting ------------------ */

enum { NKEYS = 200, NWRITERS = 2, NREADERS = 2 };

struct conc {
    struct cask *c;
    _Atomic int acked[NKEYS]; /* latest acknowledged version per key */
    _Atomic bool stop;
    _Atomic int errors;
};

static void *
writer(void *arg)
{
    struct conc *cc = ((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    char k[32], v[96];
    for (int ver = 1; !atomic_load(&cc->stop); ver++) {
        for (int i = id; i < NKEYS; i += NWRITERS) {
            snprintf(k, sizeof(k), "ck%d", i);
            val_of(v, sizeof(v), i, ver);
            if (tc_set(cc->c, k, v) != CASK_OK) {
                atomic_fetch_add(&cc->errors, 1);
            }
            atomic_store(&cc->acked[i], ver);
        }
    }
    return NULL;
}

static void *
reader(void *arg)
{
    struct conc *cc = arg;
    unsigned seed = 7;
    char k[32];
    while (!atomic_load(&cc->stop)) {
        int i = (int)(rand_r(&seed) % NKEYS);
        int min = atomic_load(&cc->acked[i]);
        snprintf(k, sizeof(k), "ck%d", i);
        char *v = NULL;
        struct cask_item it;
        int rc = cask_get(cc->c, k, strlen(k), &it, &v);
        int key = -1, ver = -1;
        if (rc != CASK_OK || sscanf(v, "key %d version %d", &key, &ver) != 2 ||
            key != i || ver < min) {
            atomic_fetch_add(&cc->errors, 1);
        }
        free(v);
    }
    return NULL;
}

static void
test_concurrent_compaction(void **state)
{
    struct fx *f = *state;
    struct conc *cc = calloc(1, sizeof(*cc));
    char k[32], v[96];
    cc->c = f->c;
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "ck%d", i);
        val_of(v, sizeof(v), i, 0);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    pthread_t w[NWRITERS], r[NREADERS];
    void *wargs[NWRITERS][2];
    for (int i = 0; i < NWRITERS; i++) {
        wargs[i][0] = cc;
        wargs[i][1] = (void *)(intptr_t)i;
        pthread_create(&w[i], NULL, writer, wargs[i]);
    }
    for (int i = 0; i < NREADERS; i++) {
        pthread_create(&r[i], NULL, reader, cc);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int runs = 0;
    do {
        assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
        runs++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (t1.tv_sec - t0.tv_sec < 2);
    atomic_store(&cc->stop, true);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(w[i], NULL);
    }
    for (int i = 0; i < NREADERS; i++) {
        pthread_join(r[i], NULL);
    }
    assert_int_equal(atomic_load(&cc->errors), 0);
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    print_message("%d compaction calls, %llu runs\n", runs,
                  (unsigned long long)st.compactions);
    assert_true(st.compactions > 0);
    tc_fx_reopen(f);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "ck%d", i);
        val_of(v, sizeof(v), i, atomic_load(&cc->acked[i]));
        assert_true(tc_is(f->c, k, v));
    }
    free(cc);
}

static void
test_background_compaction(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    cask_close(&f->c);
    f->o.compact_background = true;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int ver = 0; ver < 6; ver++) {
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof(k), "b%d", i);
            val_of(v, sizeof(v), i, ver);
            assert_int_equal(tc_set(f->c, k, v), CASK_OK);
        }
    }
    /* asynchronous request; the background thread runs it */
    assert_int_equal(cask_compact(f->c, -1, false), CASK_OK);
    struct cask_stats st;
    for (int i = 0; i < 100; i++) {
        cask_stats(f->c, -1, &st);
        if (st.compactions > 0) {
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(st.compactions > 0);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "b%d", i);
        val_of(v, sizeof(v), i, 5);
        assert_true(tc_is(f->c, k, v));
    }
}

/* Overwrite churn in a store too small to fill a segment: the active
 * segments, mostly dead, are closed and compacted in the background, so the
 * disk comes back down to about the live data. */
static void
test_churn_disk_tracks_live(void **state)
{
    struct fx *f = *state;
    char k[32];
    static char v[4096];
    cask_close(&f->c);
    f->o.segment_size = CASK_DEFAULT_SEGMENT;
    f->o.compact_background = true;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int ver = 0; ver < 60; ver++) {
        memset(v, 'a' + ver % 26, sizeof(v));
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof(k), "churn%d", i);
            assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k), v,
                                        sizeof(v), 0, 0, 0, NULL),
                             CASK_OK);
        }
    }
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    uint64_t written = st.disk_bytes;
    assert_true(written > 20u * 1024 * 1024);
    uint64_t bound = 0;
    for (int i = 0; i < 100; i++) { /* the background pass runs each second */
        cask_stats(f->c, -1, &st);
        bound = 2 * st.live_bytes > 4u * 1024 * 1024 ? 2 * st.live_bytes
                                                     : 4u * 1024 * 1024;
        if (st.disk_bytes <= bound) {
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    print_message("churn: %llu bytes written, %llu on disk, %llu live\n",
                  (unsigned long long)written,
                  (unsigned long long)st.disk_bytes,
                  (unsigned long long)st.live_bytes);
    assert_true(st.disk_bytes <= bound);
    memset(v, 'a' + 59 % 26, sizeof(v));
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "churn%d", i);
        char *got = NULL;
        struct cask_item it;
        assert_int_equal(cask_get(f->c, k, strlen(k), &it, &got), CASK_OK);
        assert_memory_equal(got, v, sizeof(v));
        free(got);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_churn_disk_tracks_live, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_reclaims_and_keeps, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_no_resurrection, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_touch_survives_compaction,
                                            setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_partial_keeps_tombstone, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_small_segments_batched, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_concurrent_compaction, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_background_compaction, setup,
                                            tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
