/* test_cask_stream.c - the replication stream at the storage level
 * (storage/cask_stream.h): a primary store's log read from a position and
 * applied to a replica store, checked key by key (value, flags, expiry,
 * cas) against the primary, also after the replica is reopened; a position
 * that compaction removed falls back to a snapshot; a snapshot taken while
 * writes go on, plus the log after it, converges; a read-only store refuses
 * client writes but takes streamed records. */
#include "storage/cask_stream.h"

#include "test_cask_util.h"

#define NKEYS 400

struct pair {
    char *dir_a, *dir_b;
    struct cask *a, *b; /* primary, replica */
    struct cask_options o;
    struct cask_pos pos[4];
    struct cask_segment *pin[4];
    unsigned full_copies;
    char *buf;
    size_t cap;
};

static void
apply_all(struct pair *p, unsigned shard, const char *r, size_t len)
{
    while (len > 0) {
        assert_true(len >= 44);
        size_t rl = 44 + (size_t)(unsigned char)r[40] +
                    ((size_t)(unsigned char)r[32] |
                     (size_t)(unsigned char)r[33] << 8 |
                     (size_t)(unsigned char)r[34] << 16 |
                     (size_t)(unsigned char)r[35] << 24);
        assert_true(rl <= len);
        assert_int_equal(cask_stream_apply(p->b, shard, r, rl), CASK_OK);
        r += rl;
        len -= rl;
    }
}

static void
full_copy(struct pair *p, unsigned i)
{
    struct cask_snap *s;
    uint64_t n;
    size_t len;
    assert_int_equal(cask_snap_create(&s, p->a, i, &p->pos[i], &n), 0);
    assert_int_equal(cask_stream_wipe(p->b, i), 0);
    for (;;) {
        assert_int_equal(cask_snap_next(s, 4096, &p->buf, &p->cap, &len), 0);
        if (len == 0) {
            break;
        }
        apply_all(p, i, p->buf, len);
    }
    cask_snap_destroy(&s);
    p->full_copies++;
}

/* Stream everything new from a to b. */
static void
pump(struct pair *p)
{
    for (unsigned i = 0; i < 4; i++) {
        for (;;) {
            struct cask_pos at;
            size_t len, nrec;
            uint64_t end_n;
            int rc = cask_stream_read(p->a, i, &p->pos[i], &p->pin[i], 8192,
                                      &p->buf, &p->cap, &len, &nrec, &at,
                                      &end_n);
            if (rc == CASK_ENOTFOUND) {
                full_copy(p, i);
                continue;
            }
            assert_int_equal(rc, 0);
            if (len == 0) {
                assert_true(end_n != UINT64_MAX);
                break;
            }
            assert_true(nrec > 0);
            apply_all(p, i, p->buf, len);
        }
    }
    assert_int_equal(
            cask_stream_set_flush(p->b, cask_stream_flush_cas(p->a), false), 0);
}

static void
key_of(char *k, unsigned i)
{
    snprintf(k, 32, "key:%05u", i);
}

/* Every key reads the same from both stores. */
static void
compare(struct pair *p)
{
    unsigned present = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        char k[32];
        struct cask_item ia, ib;
        char *va = NULL, *vb = NULL;
        key_of(k, i);
        int ra = cask_get(p->a, k, strlen(k), &ia, &va);
        int rb = cask_get(p->b, k, strlen(k), &ib, &vb);
        if (ra != rb) {
            fail_msg("%s: primary %d, replica %d", k, ra, rb);
        }
        if (ra == CASK_OK) {
            present++;
            assert_int_equal(ia.vlen, ib.vlen);
            assert_memory_equal(va, vb, ia.vlen);
            assert_int_equal(ia.flags, ib.flags);
            assert_int_equal(ia.exp_abs_s, ib.exp_abs_s);
            assert_int_equal(ia.cas, ib.cas);
        }
        free(va);
        free(vb);
    }
    assert_true(present > 0);
}

static void
random_ops(struct pair *p, unsigned n, unsigned seed)
{
    srand(seed);
    char v[600];
    memset(v, 'v', sizeof(v));
    for (unsigned j = 0; j < n; j++) {
        char k[32];
        unsigned i = (unsigned)rand() % NKEYS;
        key_of(k, i);
        int op = rand() % 10;
        size_t vl = 1 + (size_t)(rand() % 500);
        v[0] = (char)('a' + j % 26);
        if (op < 5) {
            (void)cask_store(p->a, CASK_SET, k, strlen(k), v, vl, (uint32_t)j,
                             rand() % 3 ? 0 : tc_now + 100, 0, NULL);
        } else if (op < 7) {
            (void)cask_delete(p->a, k, strlen(k), 0);
        } else if (op < 8) {
            (void)cask_touch(p->a, k, strlen(k), tc_now + 50 + j % 7, NULL,
                             NULL);
        } else if (op < 9) {
            (void)cask_store(p->a, CASK_APPEND, k, strlen(k), "+", 1, 0, 0, 0,
                             NULL);
        } else {
            /* expires almost at once: gone on both sides later */
            (void)cask_store(p->a, CASK_SET, k, strlen(k), v, 3, 0, tc_now + 2,
                             0, NULL);
        }
    }
}

static void
open_b(struct pair *p)
{
    assert_int_equal(cask_open(&p->b, p->dir_b, &p->o), CASK_OK);
}

static int
setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    tc_options(&p->o);
    p->o.segment_size = 16384; /* many segments */
    /* The fake clock moves keys past their expiry; a crawler pass (one a
     * second, so only when a test runs past a second, as on a loaded
     * machine) would drop them on either side, each with a tombstone of
     * its own, and the append counts compared below would differ. */
    p->o.crawl_background = false;
    p->dir_a = tc_mkdtemp();
    p->dir_b = tc_mkdtemp();
    assert_int_equal(cask_open(&p->a, p->dir_a, &p->o), CASK_OK);
    open_b(p);
    cask_set_read_only(p->b, true);
    for (unsigned i = 0; i < 4; i++) {
        uint64_t n;
        cask_stream_tail_pos(p->a, i, &p->pos[i], &n);
        assert_int_equal(n, 0);
    }
    *state = p;
    return 0;
}

static int
teardown(void **state)
{
    struct pair *p = *state;
    for (unsigned i = 0; i < 4; i++) {
        cask_stream_unpin(p->a, i, &p->pin[i]);
    }
    cask_close(&p->a);
    cask_close(&p->b);
    tc_rmrf(p->dir_a);
    tc_rmrf(p->dir_b);
    free(p->dir_a);
    free(p->dir_b);
    free(p->buf);
    free(p);
    return 0;
}

static void
test_follows_the_log(void **state)
{
    struct pair *p = *state;
    for (unsigned round = 0; round < 6; round++) {
        random_ops(p, 500, round);
        if (round == 3) {
            assert_int_equal(cask_flush(p->a, tc_now), CASK_OK);
            random_ops(p, 500, 100 + round);
        }
        if (round == 4) {
            /* delayed: comes due in the next round's first operation */
            assert_int_equal(cask_flush(p->a, tc_now + 1), CASK_OK);
        }
        pump(p);
        compare(p);
        tc_now += 1;
    }
    assert_int_equal(p->full_copies, 0);
    assert_int_equal(cask_stream_appended(p->a, -1),
                     cask_stream_appended(p->b, -1));
    /* The replica's own recovery reaches the same state. */
    cask_close(&p->b);
    open_b(p);
    compare(p);
    tc_now += 10; /* past the short expiries */
    compare(p);
}

static void
test_compaction_loses_the_position(void **state)
{
    struct pair *p = *state;
    random_ops(p, 300, 7);
    pump(p);
    /* The replica goes away (its pins with it) while compaction removes
     * the segments its positions are in. */
    for (unsigned i = 0; i < 4; i++) {
        cask_stream_unpin(p->a, i, &p->pin[i]);
    }
    random_ops(p, 3000, 8);
    assert_int_equal(cask_compact(p->a, -1, true), CASK_OK);
    random_ops(p, 300, 9);
    pump(p);
    assert_true(p->full_copies > 0);
    compare(p);
    unsigned fc = p->full_copies;
    random_ops(p, 500, 10);
    pump(p);
    assert_int_equal(p->full_copies, fc); /* following again */
    compare(p);
    cask_close(&p->b);
    open_b(p);
    compare(p);
}

static void
test_connected_reader_holds_compaction(void **state)
{
    struct pair *p = *state;
    struct cask_stats st;
    random_ops(p, 300, 20);
    pump(p);
    /* Behind by many segments while forced compactions run: the log it
     * has not read yet is left alone, so it never needs a full copy. */
    for (unsigned round = 0; round < 4; round++) {
        random_ops(p, 1500, 21 + round);
        assert_int_equal(cask_compact(p->a, -1, true), CASK_OK);
    }
    pump(p);
    assert_int_equal(p->full_copies, 0);
    compare(p);
    /* Once it has read everything, compaction reclaims the rest. */
    assert_int_equal(cask_stats(p->a, -1, &st), CASK_OK);
    uint64_t before = st.bytes_reclaimed;
    random_ops(p, 200, 30);
    pump(p);
    assert_int_equal(cask_compact(p->a, -1, true), CASK_OK);
    assert_int_equal(cask_stats(p->a, -1, &st), CASK_OK);
    assert_true(st.bytes_reclaimed > before);
    pump(p);
    assert_int_equal(p->full_copies, 0);
    compare(p);
}

static void
test_snapshot_while_writing(void **state)
{
    struct pair *p = *state;
    struct cask_snap *s;
    uint64_t n;
    size_t len;
    random_ops(p, 1000, 11);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(cask_snap_create(&s, p->a, i, &p->pos[i], &n), 0);
        /* writes (and a compaction) between the snapshot and its reading */
        random_ops(p, 200, 12 + i);
        assert_int_equal(cask_compact(p->a, (int)i, true), CASK_OK);
        assert_int_equal(cask_stream_wipe(p->b, i), 0);
        for (;;) {
            assert_int_equal(cask_snap_next(s, 1000, &p->buf, &p->cap, &len),
                             0);
            if (len == 0) {
                break;
            }
            apply_all(p, i, p->buf, len);
        }
        cask_snap_destroy(&s);
    }
    pump(p);
    compare(p);
    cask_close(&p->b);
    open_b(p);
    compare(p);
}

static void
test_read_only(void **state)
{
    struct pair *p = *state;
    assert_int_equal(tc_set(p->b, "x", "1"), CASK_EREADONLY);
    assert_int_equal(cask_delete(p->b, "x", 1, 0), CASK_EREADONLY);
    assert_int_equal(cask_flush(p->b, 0), CASK_EREADONLY);
    assert_int_equal(cask_touch(p->b, "x", 1, 0, NULL, NULL), CASK_EREADONLY);
    assert_int_equal(tc_set(p->a, "key:00001", "a"), CASK_OK);
    pump(p);
    assert_true(tc_is(p->b, "key:00001", "a"));
    cask_set_read_only(p->b, false);
    assert_int_equal(tc_set(p->b, "x", "1"), CASK_OK);
    /* a promoted replica's cas is above every cas it applied */
    struct cask_item ia, ib;
    assert_int_equal(cask_get(p->a, "key:00001", 9, &ia, NULL), CASK_OK);
    assert_int_equal(cask_get(p->b, "x", 1, &ib, NULL), CASK_OK);
    assert_true(ib.cas > ia.cas);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_follows_the_log, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_compaction_loses_the_position,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                    test_connected_reader_holds_compaction, setup, teardown),
            cmocka_unit_test_setup_teardown(test_snapshot_while_writing, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
