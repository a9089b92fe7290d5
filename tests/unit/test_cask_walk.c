/* test_cask_walk.c - walks over the live keys (cask_walk.h): the walk
 * without keys (cask_walk_meta, behind stats items and stats slabs) hands
 * out the same entries as the walk with keys, reads no record for them,
 * and skips what the keyed walk skips (deleted, expired, flushed keys); a
 * filtered walk (cask_walk_if, behind stats cachedump and metadump's class
 * list) reads the keys of the entries its filter keeps and no other.
 */
#include "storage/cask_walk.h"

#include "storage/cask.h"
#include "storage/cask_io.h"
#include "tests/unit/test_cask_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS 3000

static unsigned preads;

static ssize_t
counting_pread(int fd, void *buf, size_t n, off_t off)
{
    __atomic_fetch_add(&preads, 1, __ATOMIC_SEQ_CST);
    return cask_io_default()->pread(fd, buf, n, off);
}

static void
tune(struct cask_options *o)
{
    o->shards = 4;
}

static int
setup(void **state)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.pread = counting_pread;
    cask_io_set(&ops);
    return tc_fx_setup(state, tune);
}

static int
teardown(void **state)
{
    int rc = tc_fx_teardown(state);
    cask_io_set(NULL);
    return rc;
}

/* What a walk saw: each entry's fields but the key, as one line. */
struct seen {
    char (*lines)[96];
    size_t n;
    size_t null_keys;
};

static void
on_entry(void *arg, const struct cask_walk_entry *e)
{
    struct seen *s = arg;

    if (e->key == NULL) {
        s->null_keys++;
    }
    assert_true(s->n < NKEYS);
    snprintf(s->lines[s->n++], sizeof(s->lines[0]),
             "%zu %u %u %lld %llu %d %lld", e->klen, e->vlen, e->flags,
             (long long)e->exp_abs_s, (unsigned long long)e->cas, e->fetched,
             (long long)e->atime_s);
}

static bool
keep_odd(void *arg, const struct cask_walk_entry *e)
{
    (void)arg;
    assert_null(e->key); /* asked before the key is read */
    return e->vlen % 2 == 1;
}

static int
cmp_line(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
walk_all(struct cask *c, bool meta, struct seen *s)
{
    struct cask_walk_pos pos = {0};

    s->lines = calloc(NKEYS, sizeof(*s->lines));
    assert_non_null(s->lines);
    s->n = s->null_keys = 0;
    if (meta) {
        while (cask_walk_meta(c, &pos, 64, on_entry, s)) {
        }
    } else {
        while (cask_walk(c, &pos, 64, on_entry, s)) {
        }
    }
    qsort(s->lines, s->n, sizeof(s->lines[0]), cmp_line);
}

/* Key i: lengths from 7 to about 50 bytes. */
static size_t
key_of(unsigned i, char *key, size_t cap)
{
    return (size_t)snprintf(key, cap, "walk:%u:%0*u", i, (int)(i % 40), i);
}

static void
test_meta_walk_matches_keyed_walk(void **state)
{
    struct fx *f = *state;
    char key[64], val[600];

    memset(val, 'v', sizeof(val));
    for (unsigned i = 0; i < NKEYS; i++) {
        size_t klen = key_of(i, key, sizeof(key));
        int64_t exp = i % 7 == 0 ? tc_now + 5 : i % 11 == 0 ? tc_now + 500 : 0;
        assert_int_equal(cask_store(f->c, CASK_SET, key, klen, val,
                                    i % sizeof(val), i * 2654435761u, exp, 0,
                                    NULL),
                         CASK_OK);
    }
    for (unsigned i = 0; i < NKEYS; i += 5) {
        size_t klen = key_of(i, key, sizeof(key));
        assert_int_equal(cask_delete(f->c, key, klen, 0), CASK_OK);
    }
    tc_now += 10; /* the keys with a 5 s expiry are gone */

    struct seen keyed, meta;
    __atomic_store_n(&preads, 0, __ATOMIC_SEQ_CST);
    walk_all(f->c, false, &keyed);
    unsigned keyed_reads = __atomic_load_n(&preads, __ATOMIC_SEQ_CST);
    __atomic_store_n(&preads, 0, __ATOMIC_SEQ_CST);
    walk_all(f->c, true, &meta);
    unsigned meta_reads = __atomic_load_n(&preads, __ATOMIC_SEQ_CST);

    /* live: not deleted (every fifth) and not expired (every seventh) */
    size_t live = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        live += i % 5 != 0 && i % 7 != 0;
    }
    assert_int_equal(keyed.n, live);
    assert_int_equal(meta.n, live);
    assert_int_equal(keyed.null_keys, 0);
    assert_int_equal(meta.null_keys, live);
    for (size_t i = 0; i < live; i++) {
        assert_string_equal(keyed.lines[i], meta.lines[i]);
    }
    /* the keyed walk reads each key from its record; the other reads none */
    assert_true(keyed_reads >= live);
    assert_int_equal(meta_reads, 0);

    /* a filter that keeps the odd value lengths: their keys only */
    struct seen odd;
    odd.lines = calloc(NKEYS, sizeof(*odd.lines));
    assert_non_null(odd.lines);
    odd.n = odd.null_keys = 0;
    struct cask_walk_pos pos = {0};
    __atomic_store_n(&preads, 0, __ATOMIC_SEQ_CST);
    while (cask_walk_if(f->c, &pos, 64, keep_odd, on_entry, &odd)) {
    }
    unsigned odd_reads = __atomic_load_n(&preads, __ATOMIC_SEQ_CST);
    size_t want = 0;
    for (size_t i = 0; i < live; i++) {
        unsigned vlen = 0;
        assert_int_equal(sscanf(keyed.lines[i], "%*u %u", &vlen), 1);
        want += vlen % 2;
    }
    assert_int_equal(odd.n, want);
    assert_int_equal(odd.null_keys, 0);
    assert_int_equal(odd_reads, want);
    free(odd.lines);

    /* a flush hides every key from both */
    assert_int_equal(cask_flush(f->c, 0), CASK_OK);
    free(meta.lines);
    walk_all(f->c, true, &meta);
    assert_int_equal(meta.n, 0);
    free(keyed.lines);
    free(meta.lines);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_meta_walk_matches_keyed_walk,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
