/* test_cask_hintscan.c - the hint of a freshly closed segment read without
 * its large values (cask_hintscan, cask_hint_write_fresh): the same entries
 * as a full scan, the same stop at a damaged small record, and a full scan
 * whenever the segment changed under the writer or left the page cache.
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_hint.h"
#include "storage/cask_hintscan.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"
#include "storage/cask_verify.h"
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

#define BIG (CASK_VERIFY_MIN + 3000)

static void
tune(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 256 * 1024; /* a few large values a segment */
}

static int
setup(void **state)
{
    return tc_fx_setup(state, tune);
}

/* Large and small values, overwrites, deletes and touches. */
static void
fill_mixed(struct fx *f, int n)
{
    char *v = malloc(BIG + 64);
    for (int i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key-%d", i % 23);
        size_t vl = (i % 3 == 0) ? 20 + (size_t)i : BIG - (size_t)(i % 5);
        memset(v, 'a' + i % 26, vl);
        assert_int_equal(cask_store(f->c, CASK_SET, k, strlen(k), v, vl,
                                    (uint32_t)i, 0, 0, NULL),
                         CASK_OK);
        if (i % 7 == 0) {
            cask_delete(f->c, k, strlen(k), 0);
        }
        if (i % 11 == 0) {
            cask_touch(f->c, k, strlen(k), tc_now + 100 + i, NULL, NULL);
        }
    }
    free(v);
}

static void
shard_dir(struct fx *f, char *d, size_t cap)
{
    snprintf(d, cap, "%s/shard-000", f->dir);
}

static char *
read_file(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    char *p = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

/* Every segment: cask_hintscan lists what cask_seg_scan lists, and the hint
 * cask_hint_write_fresh writes from it is byte for byte the full scan's. */
static void
test_same_as_full_scan(void **state)
{
    struct fx *f = *state;
    char d[1024];
    fill_mixed(f, 120);
    cask_close(&f->c);
    shard_dir(f, d, sizeof(d));
    int compared = 0, with_big = 0, nheads = 0;
    for (uint32_t id = 1; id < 1000; id++) {
        char p[2048], h[2100];
        cask_seg_path(p, sizeof(p), d, id, "seg");
        if (access(p, F_OK) != 0) {
            continue;
        }
        struct cask_segment *s = NULL;
        uint64_t dropped, cov, bytes;
        bool bad, heads;
        int err;
        assert_int_equal(cask_seg_open(&s, d, id, &dropped, &bad), 0);
        struct tc_rec_list a = {0}, b = {0};
        assert_int_equal(cask_hintscan(s, CASK_SEG_HDR, CASK_REC_VMAX,
                                       CASK_VERIFY_MIN, tc_rec_collect, &a,
                                       &err),
                         s->flushed);
        assert_int_equal(err, 0);
        assert_int_equal(cask_seg_scan(s, CASK_SEG_HDR, CASK_REC_VMAX,
                                       tc_rec_collect, &b, &err),
                         s->flushed);
        tc_rec_same(&a, &b);
        for (size_t i = 0; i < a.n; i++) {
            unsigned vlen;
            assert_int_equal(sscanf(a.lines[i], "%*u %*u %*d %u", &vlen), 1);
            with_big += vlen >= CASK_VERIFY_MIN;
        }
        free(a.lines);
        free(b.lines);

        cask_seg_path(h, sizeof(h), d, id, "hint");
        assert_int_equal(cask_hint_write(d, s, CASK_REC_VMAX, &cov, &bytes), 0);
        size_t la, lb;
        char *full = read_file(h, &la);
        assert_int_equal(cask_hint_write_fresh(d, s, CASK_REC_VMAX,
                                               cask_verify_ctime(s->fd), &cov,
                                               &bytes, &heads),
                         0);
        char *fresh = read_file(h, &lb);
        /* just written and read: cached, unless the kernel has no
         * cachestat(2) (then every hint is written the full way) or
         * memory pressure took pages meanwhile */
        assert_true(heads == cask_verify_available() ||
                    !cask_verify_resident(s->fd, 0, s->flushed));
        nheads += heads;
        assert_int_equal(cov, s->flushed);
        assert_int_equal(la, lb);
        assert_memory_equal(full, fresh, la);
        free(full);
        free(fresh);
        cask_seg_close(&s);
        compared++;
    }
    assert_true(compared >= 5);
    assert_true(with_big > 20);
    assert_true(nheads > 0 || !cask_verify_available());
    /* the store opens through those hints and reads every value */
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int i = 0; i < 23; i++) {
        char k[32], *v = NULL;
        struct cask_item it;
        snprintf(k, sizeof(k), "key-%d", i);
        int rc = cask_get(f->c, k, strlen(k), &it, &v);
        assert_true(rc == CASK_OK || rc == CASK_ENOTFOUND);
        free(v);
    }
}

/* Offset and length of the value of the first record of s with a value of
 * at least min bytes (and below max). */
static uint64_t
find_value(struct cask_segment *s, uint32_t min, uint32_t max)
{
    uint64_t off = CASK_SEG_HDR;
    while (off + CASK_REC_HDR <= s->flushed) {
        char h[CASK_REC_HDR];
        struct cask_rec r;
        assert_int_equal(cask_seg_pread(s, off, sizeof(h), h), 0);
        assert_true(cask_rec_decode(h, CASK_REC_VMAX, &r));
        if (r.type == CASK_REC_PUT && r.vlen >= min && r.vlen < max) {
            return off + CASK_REC_HDR + r.klen;
        }
        off += cask_rec_len(r.klen, r.vlen);
    }
    return 0;
}

static void
flip(const char *path, uint64_t at)
{
    int fd = open(path, O_RDWR);
    char x;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &x, 1, (off_t)at), 1);
    x ^= 0x40;
    assert_int_equal(pwrite(fd, &x, 1, (off_t)at), 1);
    close(fd);
}

/* A damaged large value: the header scan alone cannot see it, so the writer
 * must not use it once the file changed after its stamp: the hint then
 * stops where the full scan does, before the damage. */
static void
test_changed_file_scans_in_full(void **state)
{
    struct fx *f = *state;
    char d[1024], p[2048];
    fill_mixed(f, 60);
    cask_close(&f->c);
    shard_dir(f, d, sizeof(d));
    cask_seg_path(p, sizeof(p), d, 1, "seg");
    struct cask_segment *s = NULL;
    uint64_t dropped, cov = 0, bytes;
    bool bad, heads = true;
    int err;
    assert_int_equal(cask_seg_open(&s, d, 1, &dropped, &bad), 0);
    uint64_t stamp = cask_verify_ctime(s->fd);
    uint64_t v = find_value(s, CASK_VERIFY_MIN, UINT32_MAX);
    assert_true(v != 0);
    /* make sure the change time moves past the stamp's tick */
    usleep(20000);
    flip(p, v + 100);
    struct tc_rec_list a = {0};
    assert_int_equal(cask_hintscan(s, CASK_SEG_HDR, CASK_REC_VMAX,
                                   CASK_VERIFY_MIN, tc_rec_collect, &a, &err),
                     s->flushed);
    free(a.lines);
    assert_int_equal(cask_hint_write_fresh(d, s, CASK_REC_VMAX, stamp, &cov,
                                           &bytes, &heads),
                     0);
    assert_false(heads);
    struct tc_rec_list b = {0};
    uint64_t full = cask_seg_scan(s, CASK_SEG_HDR, CASK_REC_VMAX,
                                  tc_rec_collect, &b, &err);
    free(b.lines);
    assert_true(full < s->flushed);
    assert_int_equal(cov, full);
    /* no stamp (no checked values, or a change seen): in full as well */
    assert_int_equal(
            cask_hint_write_fresh(d, s, CASK_REC_VMAX, 0, &cov, &bytes, &heads),
            0);
    assert_false(heads);
    assert_int_equal(cov, full);
    cask_seg_close(&s);
}

/* A damaged small record stops the header scan where it stops the full
 * scan (its checksum is still checked), and the writer falls back. */
static void
test_damaged_small_record(void **state)
{
    struct fx *f = *state;
    char d[1024], p[2048];
    fill_mixed(f, 60);
    cask_close(&f->c);
    shard_dir(f, d, sizeof(d));
    cask_seg_path(p, sizeof(p), d, 1, "seg");
    struct cask_segment *s = NULL;
    uint64_t dropped, cov = 0, bytes;
    bool bad, heads = true;
    int err;
    assert_int_equal(cask_seg_open(&s, d, 1, &dropped, &bad), 0);
    uint64_t v = find_value(s, 1, CASK_VERIFY_MIN);
    assert_true(v != 0);
    flip(p, v);
    uint64_t stamp = cask_verify_ctime(s->fd);
    struct tc_rec_list a = {0}, b = {0};
    uint64_t e1 = cask_hintscan(s, CASK_SEG_HDR, CASK_REC_VMAX, CASK_VERIFY_MIN,
                                tc_rec_collect, &a, &err);
    uint64_t e2 = cask_seg_scan(s, CASK_SEG_HDR, CASK_REC_VMAX, tc_rec_collect,
                                &b, &err);
    assert_true(e2 < s->flushed);
    assert_int_equal(e1, e2);
    tc_rec_same(&a, &b);
    free(a.lines);
    free(b.lines);
    assert_int_equal(cask_hint_write_fresh(d, s, CASK_REC_VMAX, stamp, &cov,
                                           &bytes, &heads),
                     0);
    assert_false(heads);
    assert_int_equal(cov, e2);
    cask_seg_close(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_same_as_full_scan, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_changed_file_scans_in_full,
                                            setup, tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_damaged_small_record, setup,
                                            tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
