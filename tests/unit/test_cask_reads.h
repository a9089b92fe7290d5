/* test_cask_reads.h - helpers the cold-read unit tests share
 * (test_cask_aio.c, test_cask_uring.c, test_cask_direct.c): a two-shard
 * store in a temporary directory, the values they write, a ring driven as
 * a worker's event loop drives it, and the skip where the kernel refuses
 * io_uring. Header-only; test code.
 */
#ifndef BITCACHED_TEST_CASK_READS_H
#define BITCACHED_TEST_CASK_READS_H

#include "storage/cask_direct.h"
#include "storage/cask_io.h"
#include "storage/cask_uring.h"

#include "test_cask_util.h"

#include <errno.h>
#include <poll.h>

/* A two-shard store of segment_size segments in dir, without a value
 * cache: every get of these tests is a read. */
static inline struct cask *
tr_open_in(char *dir, uint64_t segment_size)
{
    struct cask_options o;
    struct cask *c = NULL;
    tc_options(&o);
    o.shards = 2;
    o.value_cache = 0;
    o.segment_size = segment_size;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    return c;
}

/* The same in a new temporary directory (*dir, the caller's). */
static inline struct cask *
tr_open(char **dir, uint64_t segment_size)
{
    *dir = tc_mkdtemp();
    assert_non_null(*dir);
    return tr_open_in(*dir, segment_size);
}

/* Close the store, put the seam and the direct read policy back, remove
 * and free dir. */
static inline void
tr_close(struct cask **c, char *dir)
{
    cask_close(c);
    cask_io_set(NULL);
    cask_direct_set_policy(CASK_DIRECT_AUTO);
    tc_rmrf(dir);
    free(dir);
}

/* Key i's value of generation gen: cap - 1 bytes and a NUL. */
static inline void
tr_value(char *out, size_t cap, unsigned i, unsigned gen)
{
    size_t n = (size_t)snprintf(out, cap, "value %u gen %u ", i, gen);
    while (n + 1 < cap) {
        out[n] = (char)('a' + (i + n) % 26);
        n++;
    }
    out[n] = '\0';
}

/* Store keys k0 .. k<n-1> with their generation gen values, cap(i) - 1
 * bytes each (at most 6000), but every 7th (a miss) and, with skip_kept,
 * every 10th (kept from an earlier generation). */
static inline void
tr_fill(struct cask *c, unsigned n, unsigned gen, bool skip_kept,
        size_t (*cap)(unsigned i))
{
    char k[16], v[6001];
    for (unsigned i = 0; i < n; i++) {
        if (i % 7 == 3 || (skip_kept && i % 10 == 0)) {
            continue; /* never stored: misses */
        }
        snprintf(k, sizeof(k), "k%u", i);
        assert_true(cap(i) <= sizeof(v));
        tr_value(v, cap(i), i, gen);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
}

/* A ring over c, or close the store and skip where the kernel refuses
 * one. */
static inline struct cask_uring *
tr_ring_or_skip(struct cask *c, char *dir)
{
    struct cask_uring *u = NULL;
    int rc = cask_uring_create(&u, c);
    if (rc == ENOSYS || rc == EPERM || rc == ENOMEM) {
        struct cask *cc = c;
        tr_close(&cc, dir);
        print_message("io_uring refused here (%s): skipped\n", strerror(rc));
        skip();
    }
    assert_int_equal(rc, 0);
    return u;
}

/* Run the ring as an event loop would until *done (counted by the reads'
 * done calls) reaches want. */
static inline void
tr_drive(struct cask_uring *u, const unsigned *done, unsigned want)
{
    for (int rounds = 0; *done < want && rounds < 10000; rounds++) {
        cask_uring_flush(u);
        struct pollfd p = {.fd = cask_uring_fd(u), .events = POLLIN};
        (void)poll(&p, 1, 1000);
        cask_uring_reap(u);
    }
    assert_int_equal(*done, want);
}

#endif
