/* test_cask_large.c - large values, which gets read straight into the
 * buffer they hand out (header and key apart): they come back whole, the
 * two-part checksum agrees with the one-shot one wherever the record is
 * split, and a damaged byte anywhere in the record is never served as a
 * value, whether reads go to the system calls or through the seam. Values
 * checked once (cask_verify.h) are served unhashed or as references into
 * their file only while cached and unchanged: a byte flipped under the
 * store, after they were served, is caught (at once while its page is
 * dirty, and at once too when written back); a reference, also
 * handed out mapped (but not through replaced reads, which see the header
 * read), keeps its file readable through a compaction that removes it.
 * A read of the item only takes the record's header and key, not the
 * value.
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_io.h"
#include "storage/cask_record.h"
#include "storage/cask_split.h"
#include "storage/cask_verify.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <fcntl.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define BIG    65536
#define MARKER "MARKER-0123456789"

static int
setup(void **state)
{
    return tc_fx_setup(state, NULL);
}

static int
teardown(void **state)
{
    cask_io_set(NULL);
    return tc_fx_teardown(state);
}

static void
fill(char *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = (char)('a' + (i * 7 + seed) % 26);
    }
    memcpy(v + n / 2, MARKER, strlen(MARKER));
}

static void
test_verify2_matches(void **state)
{
    (void)state;
    static char rec[CASK_REC_HDR + 8 + 5000];
    char val[5000];
    fill(val, sizeof(val), 3);
    struct cask_rec r = {.seq = 9,
                         .cas = 9,
                         .vlen = sizeof(val),
                         .klen = 8,
                         .type = CASK_REC_PUT};
    cask_rec_encode(rec, &r, "key:0001", val, sizeof(val), NULL, 0);
    assert_true(cask_rec_verify(rec, sizeof(rec)));
    for (size_t cut = CASK_REC_HDR; cut <= sizeof(rec); cut += 499) {
        assert_true(cask_rec_verify2(rec, cut, rec + cut, sizeof(rec) - cut));
    }
    rec[sizeof(rec) - 1] ^= 1;
    assert_false(cask_rec_verify2(rec, CASK_REC_HDR + 8, rec + CASK_REC_HDR + 8,
                                  sizeof(rec) - CASK_REC_HDR - 8));
    assert_false(cask_rec_verify2(rec, 10, rec + 10, sizeof(rec) - 10));
}

static ssize_t
seam_pread(int fd, void *buf, size_t n, off_t off)
{
    return pread(fd, buf, n, off);
}

static void
big_round_trip(struct fx *f, bool seam)
{
    static char v[BIG], w[5000];
    fill(v, sizeof(v), 1);
    fill(w, sizeof(w), 2);
    if (seam) {
        struct cask_io_ops ops = *cask_io_default();
        ops.pread = seam_pread;
        cask_io_set(&ops);
    }
    assert_int_equal(
            cask_store(f->c, CASK_SET, "big", 3, v, sizeof(v), 7, 0, 0, NULL),
            CASK_OK);
    assert_int_equal(
            cask_store(f->c, CASK_SET, "mid", 3, w, sizeof(w), 0, 0, 0, NULL),
            CASK_OK);
    for (int i = 0; i < 2; i++) {
        struct cask_item it;
        char *val = NULL;
        assert_int_equal(cask_get(f->c, "big", 3, &it, &val), CASK_OK);
        assert_int_equal(it.vlen, sizeof(v));
        assert_int_equal(it.flags, 7);
        assert_memory_equal(val, v, sizeof(v));
        assert_int_equal(val[sizeof(v)], '\0');
        free(val);
        val = NULL;
        assert_int_equal(cask_get(f->c, "mid", 3, &it, &val), CASK_OK);
        assert_memory_equal(val, w, sizeof(w));
        free(val);
        tc_fx_reopen(f); /* read from the file, not the page of a write */
    }
}

static void
test_big_values_whole(void **state)
{
    big_round_trip(*state, false);
}

static void
test_big_values_whole_through_seam(void **state)
{
    big_round_trip(*state, true);
}

/* Offset of the marker in the only segment file holding it. */
static long
find_marker(struct fx *f, char *path, size_t cap)
{
    for (unsigned s = 0; s < f->o.shards; s++) {
        char d[1024];
        snprintf(d, sizeof(d), "%s/shard-%03u", f->dir, s);
        DIR *dir = opendir(d);
        struct dirent *de;
        while (dir != NULL && (de = readdir(dir)) != NULL) {
            if (strstr(de->d_name, ".seg") == NULL) {
                continue;
            }
            snprintf(path, cap, "%s/%s", d, de->d_name);
            FILE *fp = fopen(path, "rb");
            static char buf[1 << 20];
            size_t n = fp != NULL ? fread(buf, 1, sizeof(buf), fp) : 0;
            if (fp != NULL) {
                fclose(fp);
            }
            char *m = memmem(buf, n, MARKER, strlen(MARKER));
            if (m != NULL) {
                closedir(dir);
                return m - buf;
            }
        }
        if (dir != NULL) {
            closedir(dir);
        }
    }
    return -1;
}

static void
poke(const char *path, long at, int delta)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, at, SEEK_SET), 0);
    int ch = fgetc(fp);
    assert_int_equal(fseek(fp, at, SEEK_SET), 0);
    assert_int_equal(fputc((ch + delta) & 0xff, fp), (ch + delta) & 0xff);
    fclose(fp);
}

/* A byte changed in the value, then (restored) in the key: the hint is
 * trusted at open, so only the read can notice; it must. */
static void
damaged_never_served(struct fx *f, bool seam)
{
    static char v[BIG];
    fill(v, sizeof(v), 5);
    assert_int_equal(cask_store(f->c, CASK_SET, "bigkey", 6, v, sizeof(v), 0, 0,
                                0, NULL),
                     CASK_OK);
    cask_close(&f->c);
    char path[2048];
    long at = find_marker(f, path, sizeof(path));
    assert_true(at > BIG / 2);
    long key_at = at - BIG / 2 - 6; /* the key sits right before the value */
    long where[3] = {at, at + BIG / 2 - 20, key_at + 2};
    if (seam) {
        struct cask_io_ops ops = *cask_io_default();
        ops.pread = seam_pread;
        cask_io_set(&ops);
    }
    for (int i = 0; i < 3; i++) {
        poke(path, where[i], 1);
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        struct cask_item it;
        char *val = NULL;
        int rc = cask_get(f->c, "bigkey", 6, &it, &val);
        assert_int_not_equal(rc, CASK_OK);
        assert_null(val);
        cask_close(&f->c);
        poke(path, where[i], -1);
    }
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    char *val = NULL;
    struct cask_item it;
    assert_int_equal(cask_get(f->c, "bigkey", 6, &it, &val), CASK_OK);
    assert_memory_equal(val, v, sizeof(v));
    free(val);
}

static void
test_damaged_never_served(void **state)
{
    damaged_never_served(*state, false);
}

static void
test_damaged_never_served_through_seam(void **state)
{
    damaged_never_served(*state, true);
}

static uint64_t
stat_of(struct fx *f, int which)
{
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    return which == 0 ? st.unchecked_reads : st.value_refs;
}

/* Drop the file's pages from the page cache (they are clean once synced).
 * Returns whether [at, at+len) left it. */
static bool
evict(struct fx *f, const char *path, long at, size_t len)
{
    assert_int_equal(cask_sync(f->c), CASK_OK);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    /* pages just read may still be held a moment (a CPU's batch of pages
     * on their way to the LRU): try again a few times */
    bool gone = false;
    for (int t = 0; t < 20 && !gone; t++) {
        if (t > 0) {
            usleep(5000);
        }
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        gone = cask_verify_pages(fd, (uint64_t)at, len) == CASK_VERIFY_OUT;
    }
    close(fd);
    return gone;
}

static void
test_checked_once(void **state)
{
    struct fx *f = *state;
    static char v[BIG];
    fill(v, sizeof(v), 9);
    if (!cask_verify_available()) {
        skip(); /* Linux before 6.5: every read is checked */
    }
    assert_int_equal(
            cask_store(f->c, CASK_SET, "once", 4, v, sizeof(v), 0, 0, 0, NULL),
            CASK_OK);
    /* just written: the page cache holds the bytes that were hashed */
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref;
    assert_int_equal(cask_get_ref(f->c, "once", 4, &it, &val, &ref, true),
                     CASK_OK);
    assert_null(val);
    assert_non_null(ref.seg);
    assert_int_equal(ref.len, sizeof(v));
    static char back[BIG];
    assert_int_equal(pread(ref.fd, back, sizeof(back), (off_t)ref.off),
                     (ssize_t)sizeof(back));
    assert_memory_equal(back, v, sizeof(v));
    cask_vref_release(&ref);
    assert_null(ref.seg);
    assert_int_equal(stat_of(f, 0), 1);
    assert_int_equal(stat_of(f, 1), 1);
    /* a copy, unhashed too */
    assert_int_equal(cask_get(f->c, "once", 4, &it, &val), CASK_OK);
    assert_memory_equal(val, v, sizeof(v));
    free(val);
    val = NULL;
    assert_int_equal(stat_of(f, 0), 2);

    char path[2048];
    long at = find_marker(f, path, sizeof(path));
    assert_true(at > 0);
    /* out of the page cache: read back and checked, then trusted again */
    if (evict(f, path, at - BIG / 2, BIG)) {
        assert_int_equal(cask_get_ref(f->c, "once", 4, &it, &val, &ref, true),
                         CASK_OK);
        assert_null(ref.seg);
        assert_memory_equal(val, v, sizeof(v));
        free(val);
        val = NULL;
        assert_int_equal(stat_of(f, 0), 2);
    } else {
        printf("page cache kept the pages: eviction case not checked\n");
    }
    assert_int_equal(cask_get_ref(f->c, "once", 4, &it, &val, &ref, true),
                     CASK_OK);
    assert_non_null(ref.seg);
    cask_vref_release(&ref);

    /* a byte flipped under the store, by another writer of the file */
    poke(path, at, 1);
    assert_int_equal(cask_get_ref(f->c, "once", 4, &it, &val, &ref, true),
                     CASK_ECORRUPT);
    assert_null(val);
    assert_null(ref.seg);
    assert_int_not_equal(cask_get(f->c, "once", 4, &it, &val), CASK_OK);
    assert_null(val);
    poke(path, at, -1);
    assert_int_equal(cask_get(f->c, "once", 4, &it, &val), CASK_OK);
    assert_memory_equal(val, v, sizeof(v));
    free(val);
}

/* A read of the item only (cask_head_nowait, a split read with
 * head_only) takes the record's header and key, never the value: it
 * answers from the page cache, says EAGAIN once the pages left it, and
 * its split read is hlen bytes that leave the value's pages out; the
 * record's key is still checked. No value is handed out, so a damaged
 * value byte does not fail it (a get of the value still fails). */
static void
test_head_only(void **state)
{
    struct fx *f = *state;
    static char v[BIG];
    fill(v, sizeof(v), 11);
    uint64_t cas = 0;
    assert_int_equal(cask_store(f->c, CASK_SET, "headkey", 7, v, sizeof(v), 9,
                                0, 0, &cas),
                     CASK_OK);
    struct cask_item it;
    assert_int_equal(cask_head_nowait(f->c, "headkey", 7, &it, false), CASK_OK);
    assert_int_equal(it.vlen, sizeof(v));
    assert_int_equal(it.flags, 9);
    assert_int_equal(it.cas, cas);
    assert_false(it.fetched);
    assert_int_equal(cask_head_nowait(f->c, "nosuch", 6, &it, false),
                     CASK_ENOTFOUND);

    char path[2048];
    long at = find_marker(f, path, sizeof(path));
    assert_true(at > 0);
    long val_at = at - BIG / 2;
    long rec_at = val_at - 7 - CASK_REC_HDR;
    /* A fast (virtual) disk may read the evicted pages within the try,
     * which then answers: evict them and try again, a few times. */
    bool cold = false;
    for (int t = 0; t < 8 && cask_verify_available() && !cold; t++) {
        if (!evict(f, path, rec_at, CASK_REC_HDR)) {
            break;
        }
        int rc = cask_head_nowait(f->c, "headkey", 7, &it, true);
        cold = rc == EAGAIN;
        if (!cold) {
            assert_int_equal(rc, CASK_OK);
            assert_int_equal(it.cas, cas);
        }
    }
    if (!cold) {
        printf("no cachestat, or the page cache kept the pages, or the "
               "disk read them within every try: the cold case not "
               "checked\n");
    } else {
        assert_int_equal(it.cas, cas); /* the item as the try found it */
        struct cask_split sp;
        memset(&sp, 0, sizeof(sp));
        sp.key = "headkey";
        sp.klen = 7;
        sp.head_only = true;
        char *val = NULL;
        assert_int_equal(cask_get_begin(f->c, &sp, &val), CASK_SPLIT_READ);
        assert_int_equal(sp.vlen, 0);
        assert_int_equal(sp.hlen, CASK_REC_HDR + 7);
        assert_int_equal(sp.off, (uint64_t)rec_at);
        assert_int_equal(pread(sp.fd, sp.head, sp.hlen, (off_t)sp.off),
                         (ssize_t)sp.hlen);
        assert_int_equal(cask_get_end(&sp, 0, &val), CASK_OK);
        assert_null(val);
        assert_int_equal(sp.it.vlen, sizeof(v));
        assert_int_equal(sp.it.cas, cas);
        assert_true(sp.it.fetched); /* the try counted the read */
        /* the value's pages past the header's were never read */
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(
                cask_verify_pages(fd, (uint64_t)val_at + 8192, BIG - 8192),
                CASK_VERIFY_OUT);
        close(fd);
        assert_int_equal(cask_head_nowait(f->c, "headkey", 7, &it, false),
                         CASK_OK);
    }

    /* the key is checked: another key's record is looked up again, a
     * damaged header is corrupt */
    for (int i = 0; i < 2; i++) {
        struct cask_split sp;
        memset(&sp, 0, sizeof(sp));
        sp.key = "headkey";
        sp.klen = 7;
        sp.head_only = true;
        char *val = NULL;
        assert_int_equal(cask_get_begin(f->c, &sp, &val), CASK_SPLIT_READ);
        assert_int_equal(pread(sp.fd, sp.head, sp.hlen, (off_t)sp.off),
                         (ssize_t)sp.hlen);
        /* a byte of the key, or a header byte that must be zero */
        sp.head[i == 0 ? CASK_REC_HDR + 3 : 42] ^= 0x20;
        assert_int_equal(cask_get_end(&sp, 0, &val),
                         i == 0 ? CASK_SPLIT_AGAIN : CASK_ECORRUPT);
        assert_null(val);
    }

    /* a damaged value byte: the value is never served, the item is */
    poke(path, at, 1);
    char *val = NULL;
    assert_int_not_equal(cask_get(f->c, "headkey", 7, &it, &val), CASK_OK);
    assert_null(val);
    assert_int_equal(cask_head_nowait(f->c, "headkey", 7, &it, false), CASK_OK);
    poke(path, at, -1);
}

/* poke, with the change written back: its pages are clean again. */
static void
poke_synced(const char *path, long at, int delta)
{
    poke(path, at, delta);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

/* A verified value is handed out mapped too (sent in one writev), and a
 * change by another writer that reached the disk, so that no dirty page
 * gives it away, is seen by the next get: it compares the segment's
 * change time. */
static void
test_mapped_and_written_back(void **state)
{
    struct fx *f = *state;
    static char v[BIG];
    fill(v, sizeof(v), 13);
    if (!cask_verify_available()) {
        skip();
    }
    assert_int_equal(
            cask_store(f->c, CASK_SET, "wb", 2, v, sizeof(v), 0, 0, 0, NULL),
            CASK_OK);
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref;
    assert_int_equal(cask_get_ref(f->c, "wb", 2, &it, &val, &ref, true),
                     CASK_OK);
    assert_non_null(ref.seg);
    assert_non_null(ref.ptr);
    assert_memory_equal(ref.ptr, v, sizeof(v));
    cask_vref_release(&ref);

    char path[2048];
    long at = find_marker(f, path, sizeof(path));
    assert_true(at > 0);
    assert_int_equal(cask_sync(f->c), CASK_OK);
    poke_synced(path, at, 1);
    assert_int_equal(cask_get_ref(f->c, "wb", 2, &it, &val, &ref, true),
                     CASK_ECORRUPT);
    assert_null(val);
    assert_null(ref.seg);
    poke_synced(path, at, -1);
    assert_int_equal(cask_get(f->c, "wb", 2, &it, &val), CASK_OK);
    assert_memory_equal(val, v, sizeof(v));
    free(val);
}

static int seam_reads;

static ssize_t
counting_pread(int fd, void *buf, size_t n, off_t off)
{
    seam_reads++;
    return pread(fd, buf, n, off);
}

/* Through replaced reads nothing is read from the mapping: the reference
 * names its bytes in the file only (sent by sendfile), and the header
 * read passes the seam. */
static void
test_ref_unmapped_through_seam(void **state)
{
    struct fx *f = *state;
    static char v[BIG];
    fill(v, sizeof(v), 14);
    if (!cask_verify_available()) {
        skip();
    }
    assert_int_equal(
            cask_store(f->c, CASK_SET, "um", 2, v, sizeof(v), 0, 0, 0, NULL),
            CASK_OK);
    struct cask_io_ops ops = *cask_io_default();
    ops.pread = counting_pread;
    cask_io_set(&ops);
    seam_reads = 0;
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref;
    assert_int_equal(cask_get_ref(f->c, "um", 2, &it, &val, &ref, true),
                     CASK_OK);
    assert_non_null(ref.seg);
    assert_null(ref.ptr);
    assert_true(seam_reads > 0);
    static char back[BIG];
    assert_int_equal(pread(ref.fd, back, sizeof(back), (off_t)ref.off),
                     (ssize_t)sizeof(back));
    assert_memory_equal(back, v, sizeof(v));
    cask_vref_release(&ref);
    cask_io_set(NULL);
    /* and mapped again once the system calls are back */
    assert_int_equal(cask_get_ref(f->c, "um", 2, &it, &val, &ref, true),
                     CASK_OK);
    assert_non_null(ref.ptr);
    cask_vref_release(&ref);
}

static void
one_shard(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 4 * BIG;
}

static int
setup_one_shard(void **state)
{
    return tc_fx_setup(state, one_shard);
}

/* A reference outlives the compaction that retires its segment: the file
 * stays open (unlinked) and reads the value until it is released. */
static void
test_ref_survives_compaction(void **state)
{
    struct fx *f = *state;
    static char v[BIG], w[BIG];
    fill(v, sizeof(v), 11);
    fill(w, sizeof(w), 12);
    if (!cask_verify_available()) {
        skip();
    }
    assert_int_equal(
            cask_store(f->c, CASK_SET, "pin", 3, v, sizeof(v), 0, 0, 0, NULL),
            CASK_OK);
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref;
    assert_int_equal(cask_get_ref(f->c, "pin", 3, &it, &val, &ref, true),
                     CASK_OK);
    assert_non_null(ref.seg);
    /* overwrite it and roll past its segment, then compact it away */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(cask_store(f->c, CASK_SET, "pin", 3, w, sizeof(w), 0,
                                    0, 0, NULL),
                         CASK_OK);
    }
    assert_int_equal(cask_compact(f->c, -1, true), CASK_OK);
    struct cask_stats st;
    assert_int_equal(cask_stats(f->c, -1, &st), CASK_OK);
    assert_true(st.compactions > 0);
    static char back[BIG];
    assert_int_equal(pread(ref.fd, back, sizeof(back), (off_t)ref.off),
                     (ssize_t)sizeof(back));
    assert_memory_equal(back, v, sizeof(v));
    cask_vref_release(&ref);
    assert_int_equal(cask_get(f->c, "pin", 3, &it, &val), CASK_OK);
    assert_memory_equal(val, w, sizeof(w));
    free(val);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_verify2_matches),
            cmocka_unit_test_setup_teardown(test_big_values_whole, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_big_values_whole_through_seam,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_damaged_never_served, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                    test_damaged_never_served_through_seam, setup, teardown),
            cmocka_unit_test_setup_teardown(test_checked_once, setup, teardown),
            cmocka_unit_test_setup_teardown(test_head_only, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mapped_and_written_back, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_ref_unmapped_through_seam,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_ref_survives_compaction,
                                            setup_one_shard, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
