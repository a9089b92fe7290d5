/* test_cask_uring.c - value reads through io_uring (cask_uring.c): right
 * values and misses for more reads than the ring has slots, reads in
 * flight while compaction moves their records and retires their segments
 * (the right value, never other bytes), failed and short reads through the
 * seam (cask_io_ring_done), a ring refused at setup (cask_io_ring_setup),
 * and every read done when the ring is destroyed with reads in flight.
 * Skips where the kernel refuses io_uring.
 */
#include "storage/cask_io.h"
#include "storage/cask_uring.h"

#include "test_cask_reads.h"

#include <errno.h>
#include <stdatomic.h>

/* Values: 3000 bytes, but every 5th key 6000 (read in two parts either
 * way: header and key, then the value). */
static size_t
vcap(unsigned i)
{
    return i % 5 == 1 ? 6001 : 3001;
}

struct reads {
    unsigned done, right, failed; /* failed: rc == fail_rc */
    int fail_rc;
};

static struct reads rs;

static void
on_done(struct cask_aio_req *r, void *arg)
{
    (void)arg;
    unsigned i = (unsigned)atoi(r->key + 1);
    char v[6001], w[6001];
    bool ok;

    if (rs.fail_rc != 0 && r->rc == rs.fail_rc) {
        rs.failed++;
        ok = r->val == NULL;
    } else if (i % 7 == 3) {
        ok = r->rc == CASK_ENOTFOUND && r->val == NULL;
    } else {
        tr_value(v, vcap(i), i, 0);
        tr_value(w, vcap(i), i, 1);
        ok = r->rc == CASK_OK && r->it.vlen == strlen(v) &&
             r->val[r->it.vlen] == '\0' &&
             (memcmp(r->val, v, r->it.vlen) == 0 ||
              memcmp(r->val, w, r->it.vlen) == 0);
    }
    free(r->val);
    rs.done++;
    rs.right += ok;
    free(r);
}

static void
submit_all(struct cask_uring *u, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct cask_aio_req *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->klen = (size_t)snprintf(r->key, sizeof(r->key), "k%u", i);
        r->fetch = true;
        r->done = on_done;
        cask_uring_submit(u, r);
    }
}

static void
test_reads(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    uint64_t inflight, done;

    memset(&rs, 0, sizeof(rs));
    tr_fill(c, 600, 0, false, vcap);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    submit_all(u, 600); /* more than CASK_URING_DEPTH: some wait */
    cask_uring_stats(u, &inflight, &done);
    assert_int_equal(inflight, 600);
    assert_int_equal(rs.done, 0); /* never from submit */
    tr_drive(u, &rs.done, 600);
    assert_int_equal(rs.right, 600);
    cask_uring_stats(u, &inflight, &done);
    assert_int_equal(inflight, 0);
    assert_int_equal(done, 600);
    /* a read counts as one: its fetched bit is set */
    struct cask_item it;
    assert_int_equal(cask_get_fetch(c, "k0", 2, &it, NULL, false), CASK_OK);
    assert_true(it.fetched);
    cask_uring_destroy(&u);
    assert_null(u);
    tr_close(&c, dir);
}

/* Reads in flight (submitted, not reaped: their segments pinned) while
 * most records of the old segments are overwritten and compaction moves
 * the rest and retires the segments. */
static void
test_compaction_race(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    struct cask_stats st;

    memset(&rs, 0, sizeof(rs));
    tr_fill(c, 400, 0, false, vcap);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    submit_all(u, 200);
    cask_uring_flush(u);
    tr_fill(c, 400, 1, true, vcap); /* the others go dead in the old segments */
    assert_int_equal(cask_compact(c, -1, true), CASK_OK);
    cask_stats(c, -1, &st);
    assert_true(st.compactions > 0);
    submit_all(u, 400); /* after the compaction: the new records */
    tr_drive(u, &rs.done, 600);
    assert_int_equal(rs.right, 600);
    cask_uring_destroy(&u);
    /* the kept records, moved by compaction, read back whole */
    assert_int_equal(cask_compact(c, -1, true), CASK_OK);
    for (unsigned i = 0; i < 400; i += 10) {
        char k[16], v[6001];
        snprintf(k, sizeof(k), "k%u", i);
        if (i % 7 != 3) {
            tr_value(v, vcap(i), i, 0);
            assert_true(tc_is(c, k, v));
        }
    }
    tr_close(&c, dir);
}

static atomic_int ring_reads;
static atomic_int fail_every; /* fail the nth ring read (1: every) */
static atomic_int short_reads;

static ssize_t
faulty_ring_done(int fd, size_t n, off_t off, ssize_t res)
{
    (void)fd;
    (void)off;
    int k = atomic_fetch_add(&ring_reads, 1) + 1;
    int every = atomic_load(&fail_every);
    if (every > 0 && k % every == 0) {
        return -EIO;
    }
    if (atomic_load(&short_reads) > 0 && res == (ssize_t)n && n > 100) {
        atomic_fetch_sub(&short_reads, 1);
        return res / 3; /* the ring reads the rest */
    }
    return res;
}

static void
test_faults(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);

    memset(&rs, 0, sizeof(rs));
    tr_fill(c, 300, 0, false, vcap);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    struct cask_io_ops ops = *cask_io_default();
    ops.ring_done = faulty_ring_done;
    cask_io_set(&ops);

    /* every 4th read fails: EIO for its get, logged; the others right */
    atomic_store(&ring_reads, 0);
    atomic_store(&fail_every, 4);
    rs.fail_rc = EIO;
    submit_all(u, 300);
    tr_drive(u, &rs.done, 300);
    assert_int_equal(rs.right, 300);
    assert_true(rs.failed > 30);
    assert_non_null(strstr(tc_log, "Input/output error"));

    /* short reads: the rest is read, the value right */
    memset(&rs, 0, sizeof(rs));
    atomic_store(&fail_every, 0);
    atomic_store(&ring_reads, 0);
    atomic_store(&short_reads, 100);
    submit_all(u, 300);
    tr_drive(u, &rs.done, 300);
    assert_int_equal(rs.right, 300);
    assert_true(atomic_load(&short_reads) < 100);
    assert_true(atomic_load(&ring_reads) > 300 - 300 / 7);
    cask_uring_destroy(&u);
    tr_close(&c, dir);
}

static int
refuse_ring(void)
{
    return EPERM;
}

static void
test_refused(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    struct cask_uring *u = NULL;
    struct cask_io_ops ops = *cask_io_default();
    ops.ring_setup = refuse_ring;
    cask_io_set(&ops);
    assert_int_equal(cask_uring_create(&u, c), EPERM);
    assert_null(u);
    tr_close(&c, dir);
}

/* Destroyed with reads queued, unsubmitted and in flight: each is done. */
static void
test_destroy_inflight(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);

    memset(&rs, 0, sizeof(rs));
    tr_fill(c, 500, 0, false, vcap);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    submit_all(u, 200);
    cask_uring_flush(u); /* in flight */
    submit_all(u, 300);  /* queued, some waiting for a slot */
    cask_uring_destroy(&u);
    assert_null(u);
    assert_int_equal(rs.done, 500);
    assert_int_equal(rs.right, 500);
    tr_close(&c, dir); /* no segment left pinned */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_reads),
            cmocka_unit_test(test_compaction_race),
            cmocka_unit_test(test_faults),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_destroy_inflight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
