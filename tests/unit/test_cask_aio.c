/* test_cask_aio.c - cask_get_nowait and the I/O thread pool (cask_aio.c):
 * a try that would have to read the disk says EAGAIN and reads nothing, the
 * pool's reads return the right values and misses, every submitted read is
 * done when the pool is destroyed, and reads racing a compaction that
 * moves their records and retires their segments return the right values.
 */
#include "storage/cask_aio.h"
#include "storage/cask_io.h"

#include "test_cask_reads.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int preads;
static atomic_int slow_ms;

static ssize_t
counting_pread(int fd, void *buf, size_t n, off_t off)
{
    atomic_fetch_add(&preads, 1);
    int ms = atomic_load(&slow_ms);
    if (ms > 0) {
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return pread(fd, buf, n, off);
}

static void
test_nowait(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    char v[6000];
    struct cask_item it;
    char *val = NULL;

    tr_value(v, sizeof(v), 1, 0);
    assert_int_equal(tc_set(c, "big", v), CASK_OK);
    assert_int_equal(tc_set(c, "small", "tiny"), CASK_OK);
    /* just written: in the page cache, read without waiting */
    assert_int_equal(cask_get_nowait(c, "big", 3, &it, &val, false), CASK_OK);
    assert_int_equal(it.vlen, strlen(v));
    assert_memory_equal(val, v, it.vlen);
    free(val);
    val = NULL;
    assert_int_equal(cask_get_nowait(c, "nope", 4, &it, &val, true),
                     CASK_ENOTFOUND);
    assert_null(val);

    /* replaced operations cannot tell what is cached: EAGAIN, no read
     * through them, the item as it was (not yet fetched) */
    struct cask_io_ops ops = *cask_io_default();
    ops.pread = counting_pread;
    cask_io_set(&ops);
    atomic_store(&preads, 0);
    memset(&it, 0, sizeof(it));
    assert_int_equal(cask_get_nowait(c, "small", 5, &it, &val, true), EAGAIN);
    assert_null(val);
    assert_int_equal(atomic_load(&preads), 0);
    assert_int_equal(it.vlen, 4);
    assert_false(it.fetched);
    assert_int_equal(cask_get_nowait(c, "big", 3, &it, &val, true), EAGAIN);
    assert_null(val);
    /* the blocking read goes through them and finds the bit the try set */
    assert_int_equal(cask_get_fetch(c, "small", 5, &it, &val, true), CASK_OK);
    assert_true(atomic_load(&preads) > 0);
    assert_true(it.fetched);
    assert_memory_equal(val, "tiny", 4);
    free(val);
    assert_true(strstr(tc_log, "Resource temporarily") == NULL);
    tr_close(&c, dir);
}

struct reads {
    pthread_mutex_t mu;
    unsigned done, right;
};

static struct reads rs;

static void
on_done(struct cask_aio_req *r, void *arg)
{
    (void)arg;
    unsigned i = (unsigned)atoi(r->key + 1);
    char v[3000], w[3000];
    bool ok;

    if (i % 7 == 3) {
        ok = r->rc == CASK_ENOTFOUND && r->val == NULL;
    } else {
        tr_value(v, sizeof(v), i, 0);
        tr_value(w, sizeof(w), i, 1);
        ok = r->rc == CASK_OK && r->it.vlen == strlen(v) &&
             (memcmp(r->val, v, r->it.vlen) == 0 ||
              memcmp(r->val, w, r->it.vlen) == 0);
    }
    free(r->val);
    pthread_mutex_lock(&rs.mu);
    rs.done++;
    rs.right += ok;
    pthread_mutex_unlock(&rs.mu);
    free(r);
}

static void
submit_all(struct cask_aio *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct cask_aio_req *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->klen = (size_t)snprintf(r->key, sizeof(r->key), "k%u", i);
        r->fetch = true;
        r->done = on_done;
        cask_aio_submit(a, r);
    }
}

/* Values: 2999 bytes. */
static size_t
vcap(unsigned i)
{
    (void)i;
    return 3000;
}

static void
test_pool(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    struct cask_aio *a = NULL;

    memset(&rs, 0, sizeof(rs));
    pthread_mutex_init(&rs.mu, NULL);
    tr_fill(c, 400, 0, false, vcap);
    assert_int_equal(cask_aio_create(&a, c, 3), 0);
    submit_all(a, 400);
    cask_aio_destroy(&a); /* runs what is queued, then joins */
    assert_null(a);
    assert_int_equal(rs.done, 400);
    assert_int_equal(rs.right, 400);
    pthread_mutex_destroy(&rs.mu);
    tr_close(&c, dir);
}

/* Slow reads on the I/O threads while most records of the first segments
 * are overwritten and compaction moves the rest. */
static void
test_pool_compaction(void **state)
{
    (void)state;
    char *dir;
    struct cask *c = tr_open(&dir, 64 * 1024);
    struct cask_aio *a = NULL;
    uint64_t inflight, done;

    memset(&rs, 0, sizeof(rs));
    pthread_mutex_init(&rs.mu, NULL);
    tr_fill(c, 400, 0, false, vcap);
    struct cask_io_ops ops = *cask_io_default();
    ops.pread = counting_pread;
    cask_io_set(&ops);
    atomic_store(&slow_ms, 2);
    assert_int_equal(cask_aio_create(&a, c, 4), 0);
    submit_all(a, 400);
    tr_fill(c, 400, 1, true, vcap); /* the others go dead in the old segments */
    assert_int_equal(cask_compact(c, -1, true), CASK_OK);
    submit_all(a, 400);
    cask_aio_stats(a, &inflight, &done);
    assert_true(done <= 800);
    cask_aio_destroy(&a);
    atomic_store(&slow_ms, 0);
    assert_int_equal(rs.done, 800);
    assert_int_equal(rs.right, 800);
    struct cask_stats st;
    cask_stats(c, -1, &st);
    assert_true(st.compactions > 0);
    pthread_mutex_destroy(&rs.mu);
    tr_close(&c, dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nowait),
            cmocka_unit_test(test_pool),
            cmocka_unit_test(test_pool_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
