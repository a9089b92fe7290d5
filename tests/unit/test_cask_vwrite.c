/* test_cask_vwrite.c - large values appended straight from the caller's
 * buffers (cask_vwrite.h): the record is byte for byte the one the copying
 * encoder makes, reads back before and after a restart, and a write cut
 * short by the kernel is undone (nothing partial on disk, the old value
 * still served, the next write and the next start clean).
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_record.h"
#include "storage/cask_vwrite.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void
tune(struct cask_options *o)
{
    o->shards = 1;
    o->segment_size = 1024 * 1024;
}

static int
setup(void **state)
{
    return tc_fx_setup(state, tune);
}

static char *
pattern(size_t n, unsigned seed)
{
    char *v = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        v[i] = (char)(seed * 131 + i * 7 + (i >> 9));
    }
    return v;
}

/* Header and key from cask_rec_encode_head, then the value as it lay:
 * the same bytes as cask_rec_encode, for every split of the value. */
static void
test_head_matches_encode(void **state)
{
    (void)state;
    const char key[] = "some-key-of-thirty-two-bytes-xyz";
    struct cask_rec r = {.seq = 77,
                         .cas = 76,
                         .exp_abs_s = 1700000123,
                         .flags = 0xdeadbeef,
                         .klen = (uint8_t)strlen(key),
                         .type = CASK_REC_PUT};
    size_t sizes[] = {0,     1,     CASK_VWRITE_MIN - 1, CASK_VWRITE_MIN,
                      65536, 200000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t vl = sizes[k];
        char *v = pattern(vl, (unsigned)k);
        r.vlen = (uint32_t)vl;
        size_t len = cask_rec_len(r.klen, vl);
        char *want = malloc(len), *got = malloc(len);
        cask_rec_encode(want, &r, key, v, vl, NULL, 0);
        size_t splits[] = {0, 1, vl / 2, vl};
        for (size_t j = 0; j < 4; j++) {
            size_t l1 = splits[j] <= vl ? splits[j] : vl;
            memset(got, 0, len);
            cask_rec_encode_head(got, &r, key, v, l1, v + l1, vl - l1);
            memcpy(got + CASK_REC_HDR + r.klen, v, vl);
            assert_memory_equal(want, got, len);
            assert_true(cask_rec_verify(got, len));
        }
        free(want);
        free(got);
        free(v);
    }
}

static int
is(struct cask *c, const char *k, const char *v, size_t vl)
{
    struct cask_item it;
    char *got = NULL;
    int rc = cask_get(c, k, strlen(k), &it, &got);
    int ok = rc == CASK_OK && it.vlen == vl && memcmp(got, v, vl) == 0;
    free(got);
    return ok;
}

static int
put(struct cask *c, const char *k, const char *v, size_t vl)
{
    return cask_store(c, CASK_SET, k, strlen(k), v, vl, 5, 0, 0, NULL);
}

/* Sizes around the cut: written either way, read back the same, before
 * and after a restart, with nothing damaged. */
static void
test_round_trip(void **state)
{
    struct fx *f = *state;
    size_t sizes[] = {100, CASK_VWRITE_MIN - 1, CASK_VWRITE_MIN, 65536, 300000};
    char *v[5];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", i);
            v[i] = pattern(sizes[i], (unsigned)(i + 10 * round));
            assert_int_equal(put(f->c, k, v[i], sizes[i]), CASK_OK);
            assert_true(is(f->c, k, v[i], sizes[i]));
            if (round == 0) {
                free(v[i]);
            }
        }
    }
    tc_fx_reopen(f);
    for (int i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        assert_true(is(f->c, k, v[i], sizes[i]));
        free(v[i]);
    }
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.bytes_damaged, 0);
    assert_int_equal(st.bytes_truncated, 0);
}

static off_t
segment_bytes(struct fx *f)
{
    char d[1024];
    off_t total = 0;
    snprintf(d, sizeof(d), "%s/shard-000", f->dir);
    DIR *dir = opendir(d);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strstr(de->d_name, ".seg") != NULL) {
            char p[2048];
            struct stat st;
            snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
            assert_int_equal(stat(p, &st), 0);
            total += st.st_size;
        }
    }
    closedir(dir);
    return total;
}

/* The kernel takes part of the vectored write, then refuses the rest (a
 * file size limit): the set fails, the file is cut back to where the
 * record began, the old value stays, and the next set and start are clean. */
static void
test_cut_short_is_undone(void **state)
{
    struct fx *f = *state;
    char *a = pattern(65536, 1), *b = pattern(65536, 2);
    assert_int_equal(put(f->c, "k", a, 65536), CASK_OK);
    off_t before = segment_bytes(f);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)before + 1000; /* inside the next record */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = put(f->c, "k", b, 65536);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_true(rc != CASK_OK);
    assert_int_equal(segment_bytes(f), before);
    assert_true(is(f->c, "k", a, 65536));
    struct cask_stats st;
    cask_stats(f->c, -1, &st);
    assert_true(st.write_errors >= 1);
    assert_int_equal(put(f->c, "k", b, 65536), CASK_OK);
    assert_true(is(f->c, "k", b, 65536));
    tc_fx_reopen(f);
    assert_true(is(f->c, "k", b, 65536));
    cask_stats(f->c, -1, &st);
    assert_int_equal(st.bytes_damaged, 0);
    assert_int_equal(st.bytes_truncated, 0);
    free(a);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_head_matches_encode),
            cmocka_unit_test_setup_teardown(test_round_trip, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_cut_short_is_undone, setup,
                                            tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
