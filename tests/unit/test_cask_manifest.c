/* test_cask_manifest.c - the per-shard segment manifest: the file round
 * trips, every flipped byte and every cut is detected, a missing file is
 * ENOENT, and the in-memory list (note, flush, replace, close) writes what
 * it holds, including after it was emptied.
 */
#include "storage/cask_manifest.h"

#include "storage/cask_io.h"
#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int
setup(void **state)
{
    char *d = tc_mkdtemp();
    if (d == NULL) {
        return -1;
    }
    *state = d;
    return 0;
}

static int
teardown(void **state)
{
    char *d = *state;
    tc_rmrf(d);
    free(d);
    return 0;
}

/* Load dir's manifest and compare it with want[0..n) and next_id. */
static void
expect_file(const char *dir, const uint32_t *want, size_t n, uint32_t next)
{
    uint32_t *ids = NULL, got_next = 0;
    size_t got = 0;
    assert_int_equal(cask_manifest_load(dir, &ids, &got, &got_next), 0);
    assert_int_equal(got, n);
    assert_int_equal(got_next, next);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], want[i]);
    }
    free(ids);
}

static void
read_file(const char *dir, char *buf, size_t cap, size_t *len)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, CASK_MANIFEST_NAME);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, cap, f);
    fclose(f);
}

static void
test_round_trip_and_damage(void **state)
{
    const char *dir = *state;
    uint32_t *ids = NULL, next;
    size_t n;
    assert_int_equal(cask_manifest_load(dir, &ids, &n, &next), ENOENT);

    const uint32_t unsorted[] = {7, 2, 40, 3};
    const uint32_t sorted[] = {2, 3, 7, 40};
    assert_int_equal(cask_manifest_write(dir, unsorted, 4, 41), 0);
    expect_file(dir, sorted, 4, 41);

    char buf[256];
    size_t len;
    read_file(dir, buf, sizeof(buf), &len);
    assert_true(cask_manifest_valid(buf, len));
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (char)(1 << bit);
            assert_false(cask_manifest_valid(buf, len));
            buf[i] ^= (char)(1 << bit);
        }
    }
    for (size_t cut = 0; cut < len; cut++) {
        assert_false(cask_manifest_valid(buf, cut));
    }
    /* An id at or above next_id is refused even with a right checksum. */
    assert_int_equal(cask_manifest_write(dir, unsorted, 4, 40), 0);
    assert_int_equal(cask_manifest_load(dir, &ids, &n, &next), EINVAL);
    assert_null(ids);
}

static void
test_in_memory_list(void **state)
{
    const char *dir = *state;
    struct cask_manifest *m = NULL;
    const uint32_t start[] = {1, 2, 3};
    int wrc = -1;
    assert_int_equal(
            cask_manifest_open(&m, dir, start, 3, 4, true, false, &wrc), 0);
    assert_int_equal(wrc, 0);
    expect_file(dir, start, 3, 4);

    /* note lists in memory; flush writes what changed */
    uint32_t four = 4, six = 6;
    assert_int_equal(cask_manifest_note(m, &four, 1), 0);
    expect_file(dir, start, 3, 4);
    assert_int_equal(cask_manifest_flush(m), 0);
    expect_file(dir, (const uint32_t[]){1, 2, 3, 4}, 4, 5);
    assert_int_equal(cask_manifest_note(m, &six, 1), 0);
    expect_file(dir, (const uint32_t[]){1, 2, 3, 4}, 4, 5);

    /* a compaction of 1 and 2 into 5 */
    const uint32_t gone[] = {1, 2}, added[] = {5};
    assert_int_equal(cask_manifest_replace(m, gone, 2, added, 1), 0);
    expect_file(dir, (const uint32_t[]){3, 4, 5, 6}, 4, 7);

    /* a wipe of everything, then a new segment after it */
    const uint32_t all[] = {3, 4, 5, 6};
    assert_int_equal(cask_manifest_replace(m, all, 4, NULL, 0), 0);
    expect_file(dir, NULL, 0, 7);
    for (uint32_t id = 7; id < 40; id++) {
        assert_int_equal(cask_manifest_note(m, &id, 1), 0);
    }
    assert_int_equal(cask_manifest_flush(m), 0);
    uint32_t many[33];
    for (uint32_t i = 0; i < 33; i++) {
        many[i] = 7 + i;
    }
    expect_file(dir, many, 33, 40);

    /* close writes what is still owed */
    uint32_t fifty = 50;
    assert_int_equal(cask_manifest_note(m, &fifty, 1), 0);
    cask_manifest_close(&m);
    assert_null(m);
    uint32_t *ids = NULL, next;
    size_t n;
    assert_int_equal(cask_manifest_load(dir, &ids, &n, &next), 0);
    assert_int_equal(n, 34);
    assert_int_equal(ids[33], 50);
    assert_int_equal(next, 51);
    free(ids);
}

/* A write that fails (fdatasync EIO through the syscall seam) leaves the
 * old file and keeps the dropped ids in the list; the next write carries
 * the whole list. */
static int
eio_fdatasync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static void
test_failed_write_keeps_file(void **state)
{
    const char *dir = *state;
    struct cask_manifest *m = NULL;
    const uint32_t start[] = {1, 2};
    int wrc;
    assert_int_equal(
            cask_manifest_open(&m, dir, start, 2, 3, true, false, &wrc), 0);
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = eio_fdatasync;
    cask_io_set(&ops);
    const uint32_t gone[] = {1}, added[] = {3};
    int rc = cask_manifest_replace(m, gone, 1, added, 1);
    cask_io_set(NULL);
    assert_int_equal(rc, EIO);
    expect_file(dir, start, 2, 3);
    /* a flush does not retry the same list (no sync loop on a full
     * disk) */
    cask_io_set(&ops);
    assert_int_equal(cask_manifest_flush(m), 0);
    cask_io_set(NULL);
    /* still listed in memory: 1 stays, 3 is added */
    uint32_t four = 4;
    assert_int_equal(cask_manifest_note(m, &four, 1), 0);
    assert_int_equal(cask_manifest_flush(m), 0);
    expect_file(dir, (const uint32_t[]){1, 2, 3, 4}, 4, 5);
    cask_manifest_close(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_round_trip_and_damage, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_in_memory_list, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_failed_write_keeps_file, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
