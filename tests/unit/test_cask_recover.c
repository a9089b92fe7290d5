/* test_cask_recover.c - recovery as a whole: shards recovered in parallel
 * give the same store and per-shard figures as one after another, and a
 * shard that cannot be opened fails the open cleanly while the others are
 * being recovered.
 */
#include "config.h"

#include "storage/cask.h"

#include "tests/unit/test_cask_util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define NSHARDS 16
#define NKEYS   4000

static void
many_shards(struct cask_options *o)
{
    o->shards = NSHARDS;
    o->segment_size = 64 * 1024; /* several segments (and hints) a shard */
}

static int
setup(void **state)
{
    return tc_fx_setup(state, many_shards);
}

static int
teardown(void **state)
{
    return tc_fx_teardown(state);
}

static void
key_of(char *k, size_t cap, int i)
{
    snprintf(k, cap, "key:%d", i);
}

static void
val_of(char *v, size_t cap, int i)
{
    snprintf(v, cap, "value %d %0*d", i, i % 50, 7);
}

/* Every shard recovered on the pool holds exactly its keys again, deletes
 * included, and its own figures add up to the store's. */
static void
test_parallel_reopen(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    for (int i = 0; i < NKEYS; i += 7) {
        key_of(k, sizeof(k), i);
        assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
    }
    for (int round = 0; round < 2; round++) {
        tc_fx_reopen(f);
        for (int i = 0; i < NKEYS; i++) {
            key_of(k, sizeof(k), i);
            val_of(v, sizeof(v), i);
            if (i % 7 == 0) {
                assert_true(tc_absent(f->c, k));
            } else {
                assert_true(tc_is(f->c, k, v));
            }
        }
        struct cask_stats all, one;
        uint64_t records = 0, keys = 0;
        assert_int_equal(cask_stats(f->c, -1, &all), CASK_OK);
        for (int s = 0; s < NSHARDS; s++) {
            assert_int_equal(cask_stats(f->c, s, &one), CASK_OK);
            assert_true(one.records_recovered > 0);
            assert_true(one.recovery_s > 0);
            assert_true(one.recovery_s <= all.recovery_s);
            records += one.records_recovered;
            keys += one.live_keys;
        }
        assert_int_equal(records, all.records_recovered);
        assert_int_equal(keys, all.live_keys);
        assert_int_equal(keys, NKEYS - (NKEYS + 6) / 7);
    }
}

/* A shard whose directory is not one fails the open; the shards recovered
 * next to it are closed again (the sanitizer build sees any leak). */
static void
test_one_shard_fails(void **state)
{
    struct fx *f = *state;
    char k[32], v[96];
    for (int i = 0; i < 500; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
    cask_close(&f->c);
    char p[1024];
    snprintf(p, sizeof(p), "%s/shard-009", f->dir);
    tc_rmrf(p);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    tc_log[0] = '\0';
    assert_int_not_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_null(f->c);
    assert_non_null(strstr(tc_log, "open shard 9 of"));
    /* Put the directory back: the other shards were left as they were. */
    unlink(p);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    int found = 0;
    for (int i = 0; i < 500; i++) {
        key_of(k, sizeof(k), i);
        val_of(v, sizeof(v), i);
        found += tc_is(f->c, k, v);
    }
    assert_true(found > 400 && found < 500); /* shard 9's keys are gone */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_parallel_reopen, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_one_shard_fails, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
