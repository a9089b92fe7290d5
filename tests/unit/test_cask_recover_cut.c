/* test_cask_recover_cut.c - a closed segment found shorter at a start than
 * its hint says it is (cut by another process, a bad copy or a file system
 * repair while the store was stopped): the records past the cut are lost,
 * but their hint still describes them. A key whose newest record was cut
 * off must miss rather than show an older value, and a key deleted there
 * must stay deleted, at that start and at every start after it (the
 * segment is rewritten and tombstones hide the older copies on disk); the
 * log says what was lost. Without the hint (a crash left none) nothing
 * says what was cut; the start then says the keys may show older values.
 */
#include "test_cask_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#define KEYS 60

static void
opts(struct cask_options *o)
{
    tc_options(o);
    o->shards = 1;
    o->segment_size = 4096;
}

/* The value of key i in round r. */
static void
val(char *out, size_t cap, int i, int r)
{
    snprintf(out, cap, "k%d-round%d-%0200d", i, r, 0);
}

/* Every key holds its newest value or misses, never an older one; a
 * deleted key misses. Returns how many miss that should not. */
static int
judge(struct cask *c, const bool *deleted, const char *when)
{
    int missing = 0;
    for (int i = 0; i < KEYS; i++) {
        char k[16], v[300];
        struct cask_item it;
        char *got = NULL;
        snprintf(k, sizeof(k), "k%d", i);
        int rc = cask_get(c, k, strlen(k), &it, &got);
        if (rc == CASK_ENOTFOUND) {
            missing += deleted[i] ? 0 : 1;
            continue;
        }
        assert_int_equal(rc, CASK_OK);
        if (deleted[i]) {
            fail_msg("%s: %s was deleted, and is back as %.*s; log:\n%s", when,
                     k, (int)it.vlen, got, tc_log);
        }
        val(v, sizeof(v), i, 1);
        if (it.vlen != strlen(v) || memcmp(got, v, it.vlen) != 0) {
            fail_msg("%s: %s shows an older value %.*s; log:\n%s", when, k,
                     (int)it.vlen, got, tc_log);
        }
        free(got);
    }
    return missing;
}

static void
cut_closed_segment(bool with_hint)
{
    struct cask_options o;
    opts(&o);
    char *dir = tc_mkdtemp();
    struct cask *c = NULL;
    bool deleted[KEYS] = {false};
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    char v[300], k[16];
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < KEYS; i++) {
            snprintf(k, sizeof(k), "k%d", i);
            val(v, sizeof(v), i, r);
            assert_int_equal(tc_set(c, k, v), CASK_OK);
        }
    }
    /* Deletes in the second round's segments too. */
    for (int i = 0; i < KEYS; i += 7) {
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(cask_delete(c, k, strlen(k), 0), CASK_OK);
        deleted[i] = true;
    }
    assert_int_equal(cask_close(&c), CASK_OK);

    /* Cut a segment of the second round (not the newest) in half. */
    uint32_t ids[64];
    size_t n = tc_segment_ids(dir, ids, 64);
    assert_true(n >= 6);
    uint32_t victim = ids[n - 3];
    char p[4200];
    snprintf(p, sizeof(p), "%s/shard-000/%08x.seg", dir, victim);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    if (!with_hint) {
        snprintf(p, sizeof(p), "%s/shard-000/%08x.hint", dir, victim);
        assert_int_equal(unlink(p), 0);
    }

    tc_log[0] = '\0';
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    if (!with_hint) {
        /* Nothing says what the cut took: the start says what it may
         * cost. */
        if (strstr(tc_log, "may show older values") == NULL) {
            fail_msg("a closed segment cut short without its hint: the "
                     "start does not say what it may cost; log:\n%s",
                     tc_log);
        }
        cask_close(&c);
        tc_rmrf(dir);
        free(dir);
        return;
    }
    if (strstr(tc_log, "shorter than its hint") == NULL) {
        fail_msg("no word of the cut; log:\n%s", tc_log);
    }
    int missing = judge(c, deleted, "first start");
    assert_true(missing > 0); /* the cut took some newest values */
    assert_int_equal(cask_close(&c), CASK_OK);
    for (int round = 0; round < 2; round++) {
        tc_log[0] = '\0';
        assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
        assert_int_equal(judge(c, deleted, "a later start"), missing);
        assert_int_equal(cask_close(&c), CASK_OK);
    }
    tc_rmrf(dir);
    free(dir);
}

static void
test_cut_with_hint(void **state)
{
    (void)state;
    cut_closed_segment(true);
}

static void
test_cut_without_hint(void **state)
{
    (void)state;
    cut_closed_segment(false);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cut_with_hint),
            cmocka_unit_test(test_cut_without_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
