/* test_cask_direct.c - ring reads that bypass the page cache
 * (cask_direct.c through cask_uring.c): right values from unaligned
 * records of several sizes, a byte flipped on disk never handed out as a
 * value (CASK_ECORRUPT), a file system refusing a direct read (EINVAL
 * through the seam) read through the page cache instead, none on tmpfs,
 * none under the default policy for records never evicted (a cold start
 * that fits in memory warms the page cache up) but for every record not
 * cached once a probe saw an evicted page, and the cold marks that
 * spare a get of an evicted record its probe; the slots' registered
 * buffers, and larger reads beside them in the same slots. Skips where the
 * kernel refuses io_uring, and the O_DIRECT cases where the temporary
 * directory has no direct I/O.
 */
#include <config.h>

#include "storage/cask_direct.h"
#include "storage/cask_io.h"
#include "storage/cask_segment.h"
#include "storage/cask_uring.h"
#include "storage/cask_vcache.h"

#include "test_cask_reads.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <sys/statfs.h>
#include <unistd.h>

#define BIG_VALUE 20000u
static bool big_values; /* vlen_of: some values larger than a kept buffer */

/* tr_close, and the values back to their usual lengths. */
static void
close_store(struct cask **c, char *dir)
{
    big_values = false;
    tr_close(c, dir);
}

/* Keys of 2 to 5 digits and values of many lengths put records at every
 * alignment; with big_values every third is larger than a slot's kept
 * buffer. */
static size_t
vlen_of(unsigned i)
{
    static const size_t lens[] = {1, 100, 511, 512, 3000, 4096, 5000, 9000};
    return big_values && i % 3 == 0 ? BIG_VALUE : lens[i % 8];
}

static void
value_of(char *out, unsigned i)
{
    size_t len = vlen_of(i);
    size_t n = (size_t)snprintf(out, len + 1, "value %u gen 0 ", i);
    while (n < len) {
        out[n] = (char)('a' + (i + n) % 26);
        n++;
    }
    out[len] = '\0';
}

static void
fill(struct cask *c, unsigned n)
{
    char k[16], v[BIG_VALUE + 1];
    for (unsigned i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%u", i * 37);
        value_of(v, i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
    assert_int_equal(cask_sync(c), CASK_OK);
}

struct reads {
    unsigned done, right, corrupt;
    int bad_key; /* -1 none: this key's read must say CASK_ECORRUPT */
    bool head;   /* header-only reads: the item, no value */
};

static struct reads rs;
static struct cask_io_ops evict_ops; /* test_pressure's seam */

static void
on_done(struct cask_aio_req *r, void *arg)
{
    (void)arg;
    unsigned i = (unsigned)atoi(r->key + 1) / 37;
    char v[BIG_VALUE + 1];
    bool ok;

    value_of(v, i);
    if ((int)i == rs.bad_key) {
        ok = r->rc == CASK_ECORRUPT && r->val == NULL;
        rs.corrupt += ok;
    } else if (rs.head) {
        ok = r->rc == CASK_OK && r->it.vlen == strlen(v) && r->val == NULL;
    } else {
        ok = r->rc == CASK_OK && r->it.vlen == strlen(v) &&
             r->val[r->it.vlen] == '\0' && memcmp(r->val, v, r->it.vlen) == 0;
    }
    free(r->val);
    rs.done++;
    rs.right += ok;
    free(r);
}

static void
read_all(struct cask_uring *u, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct cask_aio_req *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->klen = (size_t)snprintf(r->key, sizeof(r->key), "k%u", i * 37);
        r->fetch = true;
        r->head = rs.head;
        r->done = on_done;
        cask_uring_submit(u, r);
    }
    tr_drive(u, &rs.done, n);
}

/* read_all with the tallies reset first; every one must read right. */
static void
read_all_right(struct cask_uring *u, unsigned n)
{
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    read_all(u, n);
    assert_int_equal(rs.right, n);
}

/* A store in the temporary directory, or skip where it has no O_DIRECT. */
static char *
direct_dir_or_skip(void)
{
    char *dir = tc_mkdtemp();
    assert_non_null(dir);
    struct statfs sf;
    char probe[600];
    snprintf(probe, sizeof(probe), "%s/probe", dir);
    int fd = open(probe, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_type != TMPFS_MAGIC &&
              sf.f_type != RAMFS_MAGIC;
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (ok && statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN) != 0 &&
        (sx.stx_dio_offset_align == 0 ||
         sx.stx_dio_offset_align > CASK_DIRECT_ALIGN ||
         sx.stx_dio_mem_align > CASK_DIRECT_ALIGN)) {
        ok = false; /* the file system says it has no direct I/O */
    }
#endif
    if (fd >= 0) {
        close(fd);
    }
    unlink(probe);
    if (!ok) {
        print_message("%s has no direct I/O: skipped\n", dir);
        tc_rmrf(dir);
        free(dir);
        skip();
    }
    return dir;
}

static void
test_values(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask *c = tr_open_in(dir, 256 * 1024);

    fill(c, 400);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    cask_direct_set_policy(CASK_DIRECT_ALWAYS);
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    uint64_t before = cask_direct_reads();
    read_all(u, 400);
    assert_int_equal(rs.right, 400);
    assert_true(cask_direct_reads() - before >= 400);
    /* header-only reads (a touch, an mg without v): the item, no value */
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    rs.head = true;
    before = cask_direct_reads();
    read_all(u, 400);
    assert_int_equal(rs.right, 400);
    assert_true(cask_direct_reads() - before >= 400);
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

/* Direct reads of records larger than a slot's kept buffer go to a
 * buffer of their own, the others to the kept one, registered with the
 * ring where the kernel allows (READ_FIXED): every value right, rounds
 * after rounds through the same slots. */
static void
test_fixed_buffers(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask *c = tr_open_in(dir, 256 * 1024);

    big_values = true;
    fill(c, 120);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    cask_direct_set_policy(CASK_DIRECT_ALWAYS);
    for (int round = 0; round < 3; round++) {
        memset(&rs, 0, sizeof(rs));
        rs.bad_key = -1;
        uint64_t before = cask_direct_reads();
        read_all(u, 120);
        assert_int_equal(rs.right, 120);
        assert_true(cask_direct_reads() - before >= 120);
    }
    int fixed = cask_uring_fixed_bufs(u);
    if (fixed < 0) {
        print_message("no registered buffers here: plain direct reads\n");
    } else {
        assert_true(fixed > 0);
    }
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

static const char *flip_what;
static bool flipped;

/* nftw: flip a byte in the middle of the value flip_what names. */
static int
flip_in(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    size_t plen = strlen(path);
    if (type != FTW_F || plen < 4 || strcmp(path + plen - 4, ".seg") != 0) {
        return 0;
    }
    char *buf = malloc((size_t)st->st_size);
    assert_non_null(buf);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, (size_t)st->st_size, 0), st->st_size);
    char *at = memmem(buf, (size_t)st->st_size, flip_what, strlen(flip_what));
    if (at != NULL) {
        off_t off = (off_t)(at - buf) + 2000;
        char b = (char)(buf[off] ^ 0x20);
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
        assert_int_equal(fdatasync(fd), 0);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        flipped = true;
    }
    close(fd);
    free(buf);
    return at != NULL;
}

static void
test_corrupt(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask *c = tr_open_in(dir, 256 * 1024);

    fill(c, 80);
    flip_what = "value 13 gen 0 "; /* 9000 bytes */
    flipped = false;
    nftw(dir, flip_in, 16, FTW_PHYS);
    assert_true(flipped);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    cask_direct_set_policy(CASK_DIRECT_ALWAYS);
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = 13;
    uint64_t before = cask_direct_reads();
    read_all(u, 80);
    assert_int_equal(rs.right, 80);
    assert_int_equal(rs.corrupt, 1);
    assert_true(cask_direct_reads() - before >= 80);
    assert_non_null(strstr(tc_log, "corrupt"));
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

static atomic_int refused;

/* The file system says EINVAL to direct reads (aligned lengths: the
 * plain reads of these records never are). */
static ssize_t
refuse_direct(int fd, size_t n, off_t off, ssize_t res)
{
    (void)fd;
    if (n % 512 == 0 && off % 512 == 0) {
        atomic_fetch_add(&refused, 1);
        return -EINVAL;
    }
    return res;
}

static void
test_refused(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask *c = tr_open_in(dir, 256 * 1024);

    fill(c, 200);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    struct cask_io_ops ops = *cask_io_default();
    ops.ring_done = refuse_direct;
    cask_io_set(&ops);
    cask_direct_set_policy(CASK_DIRECT_ALWAYS);
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    atomic_store(&refused, 0);
    read_all(u, 200);
    assert_int_equal(rs.right, 200);
    assert_true(atomic_load(&refused) > 0);
    /* each segment refuses once (its reads in flight then too), then
     * reads through the page cache */
    int first = atomic_load(&refused);
    uint64_t before = cask_direct_reads();
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    read_all(u, 200);
    assert_int_equal(rs.right, 200);
    assert_int_equal(atomic_load(&refused), first);
    assert_int_equal(cask_direct_reads(), before);
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

static void
test_tmpfs(void **state)
{
    (void)state;
    char tmpl[] = "/dev/shm/cask-direct-XXXXXX";
    struct statfs sf;
    if (mkdtemp(tmpl) == NULL) {
        print_message("no /dev/shm: skipped\n");
        skip();
    }
    char *dir = strdup(tmpl);
    assert_non_null(dir);
    if (statfs(dir, &sf) != 0 || sf.f_type != TMPFS_MAGIC) {
        print_message("/dev/shm is not tmpfs: skipped\n");
        tc_rmrf(dir);
        free(dir);
        skip();
    }
    struct cask *c = tr_open_in(dir, 256 * 1024);
    fill(c, 200);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    cask_direct_set_policy(CASK_DIRECT_ALWAYS);
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    uint64_t before = cask_direct_reads();
    read_all(u, 200);
    assert_int_equal(rs.right, 200);
    assert_int_equal(cask_direct_reads(), before);
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

/* nftw: drop a segment's pages without leaving shadow entries (unlike
 * reclaim): as after a restart. */
static int
drop_seg(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t plen = strlen(path);
    if (type == FTW_F && plen > 4 && strcmp(path + plen - 4, ".seg") == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    return 0;
}

static void
test_auto_warms(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask *c = tr_open_in(dir, 256 * 1024);

    fill(c, 300);
    nftw(dir, drop_seg, 16, FTW_PHYS);
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    uint64_t before = cask_direct_reads();
    read_all_right(u, 300);
    assert_int_equal(cask_direct_reads(), before);
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

/* Keys from..to-1 of fill's, read through u. */
static void
read_range(struct cask_uring *u, unsigned from, unsigned to)
{
    for (unsigned i = from; i < to; i++) {
        struct cask_aio_req *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->klen = (size_t)snprintf(r->key, sizeof(r->key), "k%u", i * 37);
        r->fetch = true;
        r->done = on_done;
        cask_uring_submit(u, r);
    }
    tr_drive(u, &rs.done, to - from);
}

/* How cachestat through the seam shows ranges none of whose pages is
 * cached: as they are (none evicted), all evicted (reclaim has been
 * at work: the data outgrew the page cache), only those at offset 0
 * evicted (a lone eviction), or cached in one page (a record of one
 * page looks wholly cached, one of more partly: its other page cached
 * by a neighbour's read). */
enum shown { SHOW_PLAIN, SHOW_EVICTED, SHOW_RARE, SHOW_PARTLY };
static enum shown shown;

static int
show_cachestat(int fd, uint64_t off, uint64_t len, uint64_t cs[5])
{
    int rc = cask_io_default()->cachestat(fd, off, len, cs);
    if (rc != 0 || cs[0] != 0) {
        return rc;
    }
    if (shown == SHOW_EVICTED || (shown == SHOW_RARE && off == 0)) {
        cs[3] = 1;
    } else if (shown == SHOW_PARTLY) {
        cs[0] = 1;
    }
    return rc;
}

/* A store of 600 records, none of them cached, read through a ring with
 * cachestat through the seam (show_cachestat); NULL: skipped. */
static struct cask_uring *
pressure_store(struct cask **c, char **dir)
{
    if (!cask_verify_available()) {
        skip();
    }
    *dir = direct_dir_or_skip();
    *c = tr_open_in(*dir, 256 * 1024);
    fill(*c, 600);
    nftw(*dir, drop_seg, 16, FTW_PHYS);
    struct cask_uring *u = tr_ring_or_skip(*c, *dir);
    cask_direct_pressure_reset();
    evict_ops = *cask_io_default();
    evict_ops.cachestat = show_cachestat;
    cask_io_set(&evict_ops);
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    return u;
}

static void
pressure_done(struct cask_uring **u, struct cask **c, char *dir)
{
    cask_io_set(NULL);
    cask_direct_pressure_reset();
    cask_uring_destroy(u);
    close_store(c, dir);
}

/* Put a pressure store under pressure (200 reads of evicted records),
 * then read the 400 records after those with their pages shown as then:
 * every one must read right, more than min_direct of them around the page
 * cache. */
static void
under_pressure_read(enum shown then, uint64_t min_direct)
{
    struct cask *c;
    char *dir;
    struct cask_uring *u = pressure_store(&c, &dir);
    shown = SHOW_EVICTED;
    read_range(u, 0, 200);
    assert_true(cask_direct_pressure());
    shown = then;
    memset(&rs, 0, sizeof(rs));
    rs.bad_key = -1;
    uint64_t before = cask_direct_reads();
    read_range(u, 200, 600);
    assert_int_equal(rs.right, 400);
    assert_true(cask_direct_reads() - before > min_direct);
    pressure_done(&u, &c, dir);
}

/* Once probes often found evicted pages, records never cached are read
 * around the page cache too, not only evicted ones: after 200 reads of
 * evicted records, most of 400 never cached (not those of the active
 * segment, whose mapped pages stay cached). */
static void
test_pressure(void **state)
{
    (void)state;
    under_pressure_read(SHOW_PLAIN, 200);
}

/* A lone eviction here and there (the first page of each segment) is no
 * pressure: records never cached stay buffered, and warm the cache. */
static void
test_pressure_rare(void **state)
{
    (void)state;
    struct cask *c;
    char *dir;
    struct cask_uring *u = pressure_store(&c, &dir);
    shown = SHOW_RARE;
    uint64_t before = cask_direct_reads();
    read_range(u, 0, 600);
    assert_int_equal(rs.right, 600);
    assert_false(cask_direct_pressure());
    assert_true(cask_direct_reads() - before < 30);
    pressure_done(&u, &c, dir);
}

/* Under pressure a record partly cached is read direct too: those of
 * more than one page (every one of 4096 bytes or more). */
static void
test_pressure_partial(void **state)
{
    (void)state;
    under_pressure_read(SHOW_PARTLY, 80);
}

/* Small values read through the ring, around the page cache or through
 * it, go to the value cache as a synchronous get's do, and the next get
 * of each is answered from there. */
static void
test_value_cache(void **state)
{
    (void)state;
    char *dir = direct_dir_or_skip();
    struct cask_options o;
    struct cask *c = NULL;
    tc_options(&o);
    o.shards = 2;
    o.segment_size = 256 * 1024;
    o.value_cache = 4 << 20;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    fill(c, 300);
    unsigned small = 0;
    for (unsigned i = 0; i < 300; i++) {
        small += vlen_of(i) <= CASK_VCACHE_VMAX;
    }
    struct cask_uring *u = tr_ring_or_skip(c, dir);
    struct cask_stats st0, st1, st2;
    enum cask_direct_policy pols[] = {CASK_DIRECT_ALWAYS, CASK_DIRECT_NEVER};
    for (unsigned p = 0; p < 2; p++) {
        cask_direct_set_policy(pols[p]);
        assert_int_equal(cask_stats(c, -1, &st0), CASK_OK);
        uint64_t before = cask_direct_reads();
        read_all_right(u, 300);
        assert_int_equal(cask_stats(c, -1, &st1), CASK_OK);
        assert_int_equal(st1.value_cache_fills - st0.value_cache_fills, small);
        if (pols[p] == CASK_DIRECT_ALWAYS) {
            assert_true(cask_direct_reads() - before >= 300 - small);
        }
        read_all_right(u, 300);
        assert_int_equal(cask_stats(c, -1, &st2), CASK_OK);
        assert_int_equal(st2.value_cache_hits - st1.value_cache_hits, small);
        /* a new generation for the next round's fills */
        fill(c, 300);
    }
    cask_uring_destroy(&u);
    close_store(&c, dir);
}

/* Of n asks whether [off, off+len) of s is cold, how many say yes. */
static unsigned
cold_count(struct cask_segment *s, uint64_t off, uint64_t len, unsigned n)
{
    unsigned yes = 0;
    for (unsigned i = 0; i < n; i++) {
        yes += cask_direct_cold(s, off, len);
    }
    return yes;
}

/* Cold marks: none before any; a marked record is cold but for one ask
 * in CASK_DIRECT_RECHECK; a record with one page unmarked, or past what
 * the marks cover, is not; a probe finding the pages cached (they were
 * just written) clears the marks. */
static void
test_cold_marks(void **state)
{
    (void)state;
    char *dir = tc_mkdtemp();
    struct cask_segment *s = NULL;
    assert_non_null(dir);
    assert_int_equal(cask_seg_create(&s, dir, 1, 0), 0);
    static char block[64 * 1024];
    memset(block, 'v', sizeof(block));
    assert_int_equal(pwrite(s->fd, block, sizeof(block), 4096),
                     (ssize_t)sizeof(block));
    const unsigned n = 4 * CASK_DIRECT_RECHECK;

    assert_int_equal(cold_count(s, 5000, 4200, n), 0);
    cask_direct_mark_cold(s, 5000, 4200); /* pages 1 and 2 */
    assert_int_equal(cold_count(s, 5000, 4200, n), n - 4);
    assert_int_equal(cold_count(s, 8192, 4096, n), n - 4); /* page 2 */
    assert_int_equal(cold_count(s, 100, 4200, n), 0);      /* pages 0, 1 */
    assert_int_equal(cold_count(s, 9000, 4200, n), 0);     /* pages 2, 3 */
    assert_int_equal(cold_count(s, 1u << 30, 100, n), 0);  /* past the map */
    assert_int_equal(cold_count(s, 5000, 0, n), 0);

    if (cask_verify_available()) {
        (void)cask_direct_pages(s, 5000, 4200);
        assert_int_equal(cold_count(s, 5000, 4200, n), 0);
        assert_int_equal(cold_count(s, 8192, 4096, n), 0);
    }
    cask_seg_close(&s);
    tc_rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_values),
            cmocka_unit_test(test_fixed_buffers),
            cmocka_unit_test(test_corrupt),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_tmpfs),
            cmocka_unit_test(test_auto_warms),
            cmocka_unit_test(test_pressure),
            cmocka_unit_test(test_pressure_rare),
            cmocka_unit_test(test_pressure_partial),
            cmocka_unit_test(test_value_cache),
            cmocka_unit_test(test_cold_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
