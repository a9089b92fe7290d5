/* test_cask_newer.c - the downgrade guard (storage/cask_newer.h) for every
 * kind of file beside segments (test_cask_recover has those): a state
 * slot, a shard's manifest, its retired file, a hint (of a segment, and
 * one left without its segment) and a commit journal file whose magic and
 * checksum are good but whose format version is above this build's make
 * open refuse the store (CASK_ENEWER, logged) without changing the file,
 * bitcached-check report it, and repair change no byte of the directory.
 * Put back at this build's version, the store opens with every key.
 */
#include "storage/cask.h"
#include "storage/cask_check.h"
#include "storage/cask_newer.h"
#include "storage/cask_repair.h"

#include "tests/unit/test_cask_util.h"

#include <dirent.h>
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
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#define NKEYS 1000

static void
small_segments(struct cask_options *o)
{
    o->segment_size = 16 * 1024; /* several closed segments, with hints */
}

static int
setup(void **state)
{
    return tc_fx_setup(state, small_segments);
}

static void
journal_mode(struct cask_options *o)
{
    small_segments(o);
    o->sync = CASK_SYNC_ALWAYS;
}

static int
setup_always(void **state)
{
    return tc_fx_setup(state, journal_mode);
}

static int
teardown(void **state)
{
    return tc_fx_teardown(state);
}

static void
fill(struct cask *c)
{
    char k[32], v[64];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "value %d of the store", i);
        assert_int_equal(tc_set(c, k, v), CASK_OK);
    }
    for (int i = 0; i < NKEYS; i += 5) {
        snprintf(k, sizeof(k), "key:%d", i);
        assert_int_equal(cask_delete(c, k, strlen(k), 0), CASK_OK);
    }
}

static void
check_fill(struct cask *c)
{
    char k[32], v[64];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "value %d of the store", i);
        if (i % 5 == 0) {
            assert_true(tc_absent(c, k));
        } else {
            assert_true(tc_is(c, k, v));
        }
    }
}

/* ---- files as bytes ---------------------------------------------------- */

struct blob {
    char *p;
    size_t n;
};

static struct blob
slurp(const char *path)
{
    struct blob b = {0};
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    b.n = (size_t)st.st_size;
    b.p = malloc(b.n ? b.n : 1);
    assert_non_null(b.p);
    assert_int_equal(pread(fd, b.p, b.n, 0), (ssize_t)b.n);
    close(fd);
    return b;
}

static void
spill(const char *path, const struct blob *b)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b->p, b->n, 0), (ssize_t)b->n);
    close(fd);
}

static bool
same(const struct blob *a, const struct blob *b)
{
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* Every regular file under dir, as "relative path\0bytes", concatenated in
 * name order: two equal snapshots mean not a byte changed. */
static void
snap_into(const char *dir, const char *rel, struct blob *out)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s%s%s", dir, *rel ? "/" : "", rel);
    struct dirent **names;
    int n = scandir(p, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        char sub[512], full[1600];
        struct stat st;
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) {
            snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", nm);
            snprintf(full, sizeof(full), "%s/%s", dir, sub);
            assert_int_equal(lstat(full, &st), 0);
            if (S_ISDIR(st.st_mode)) {
                snap_into(dir, sub, out);
            } else {
                struct blob b = slurp(full);
                size_t add = strlen(sub) + 1 + b.n;
                out->p = realloc(out->p, out->n + add);
                assert_non_null(out->p);
                memcpy(out->p + out->n, sub, strlen(sub) + 1);
                memcpy(out->p + out->n + strlen(sub) + 1, b.p, b.n);
                out->n += add;
                free(b.p);
            }
        }
        free(names[i]);
    }
    free(names);
}

static struct blob
snapshot(const char *dir)
{
    struct blob b = {0};
    snap_into(dir, "", &b);
    return b;
}

static void
put32(char *p, uint32_t v)
{
    memcpy(p, &v, 4); /* little-endian, as the formats */
}

static void
put64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* A binary file that ends in the XXH3-64 of every byte before it (the
 * manifest, retired file, hint) made a newer version's: version + 1 at 8,
 * and 4 bytes a newer layout might add, then the checksum again. */
static struct blob
newer_tail_sum(const struct blob *old)
{
    struct blob b = {.n = old->n + 4};
    b.p = malloc(b.n);
    assert_non_null(b.p);
    memcpy(b.p, old->p, old->n - 8);
    uint32_t v;
    memcpy(&v, b.p + 8, 4);
    put32(b.p + 8, v + 1);
    memcpy(b.p + old->n - 8, "new!", 4);
    put64(b.p + b.n - 8, XXH3_64bits(b.p, b.n - 8));
    return b;
}

/* ---- what a newer file makes of open, check and repair ----------------- */

static void
collect(void *arg, bool damage, const char *msg)
{
    (void)damage;
    size_t used = strlen(arg);
    snprintf((char *)arg + used, 8192 - used, "%s\n", msg);
}

/* path holds a file of a newer format version (the bytes in *newer):
 * open refuses the store, logged, with the file unchanged; check reports
 * it; repair changes nothing in the directory. */
static void
refused_everywhere(struct fx *f, const char *path, const struct blob *newer)
{
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_ENEWER);
    assert_null(f->c);
    assert_non_null(strstr(tc_log, "written by a newer bitcached"));
    struct blob now = slurp(path);
    assert_true(same(&now, newer));
    free(now.p);
    assert_non_null(strstr(cask_strerror(CASK_ENEWER), "newer bitcached"));

    static char notes[8192];
    struct cask_check_hooks h = {.note = collect, .arg = notes};
    struct cask_check_report ck;
    notes[0] = '\0';
    assert_int_equal(cask_check(f->dir, tc_now, &h, &ck), 0);
    assert_true(ck.problems > 0);
    assert_true(ck.newer_files > 0);
    assert_non_null(strstr(notes, "written by a newer bitcached"));

    struct blob before = snapshot(f->dir);
    struct cask_repair_report rp;
    notes[0] = '\0';
    assert_int_equal(cask_repair(f->dir, collect, notes, &rp), CASK_ENEWER);
    assert_int_equal(rp.actions, 0);
    assert_non_null(strstr(notes, "newer bitcached"));
    struct blob after = snapshot(f->dir);
    assert_true(same(&before, &after));
    free(before.p);
    free(after.p);
}

/* Put the file back as it was: the store opens with everything. */
static void
opens_again(struct fx *f, const char *path, const struct blob *old)
{
    if (old == NULL) {
        assert_int_equal(unlink(path), 0);
    } else {
        spill(path, old);
    }
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    check_fill(f->c);
}

static void
closed_and_filled(struct fx *f)
{
    fill(f->c);
    cask_close(&f->c);
}

/* The state file's newest slot written by a newer build (which may have
 * added lines): today's build would take the other, older slot and later
 * write over the newer one. */
static void
test_newer_state_slot(void **state)
{
    struct fx *f = *state;
    closed_and_filled(f);
    char path[1024];
    snprintf(path, sizeof(path), "%s/state", f->dir);
    struct blob old = slurp(path);
    assert_int_equal(old.n, 2 * 4096);
    unsigned long long g0 = 0, g1 = 0;
    assert_int_equal(sscanf(old.p, "bitcached-meta 3\ngeneration %llu", &g0),
                     1);
    assert_int_equal(
            sscanf(old.p + 4096, "bitcached-meta 3\ngeneration %llu", &g1), 1);
    size_t at = g1 > g0 ? 4096 : 0;

    struct blob nb = {.n = old.n};
    nb.p = malloc(nb.n);
    assert_non_null(nb.p);
    memcpy(nb.p, old.p, old.n);
    char *slot = nb.p + at;
    char *ck = strstr(slot, "\nchecksum ");
    assert_non_null(ck);
    char body[4096];
    int len = snprintf(body, sizeof(body), "%.*s", (int)(ck + 1 - slot), slot);
    body[15] = '4'; /* "bitcached-meta 3" -> 4 */
    len += snprintf(body + len, sizeof(body) - (size_t)len, "new_field 7\n");
    memset(slot, 0, 4096);
    memcpy(slot, body, (size_t)len);
    snprintf(slot + len, 4096 - (size_t)len, "checksum %016llx\n",
             (unsigned long long)XXH3_64bits(body, (size_t)len));
    spill(path, &nb);

    refused_everywhere(f, path, &nb);
    opens_again(f, path, &old);
    free(old.p);
    free(nb.p);
}

/* A shard's manifest of a newer version: today's build takes it for
 * damage and rewrites it. */
static void
test_newer_manifest(void **state)
{
    struct fx *f = *state;
    closed_and_filled(f);
    char path[1024];
    snprintf(path, sizeof(path), "%s/shard-001/manifest", f->dir);
    struct blob old = slurp(path);
    struct blob nb = newer_tail_sum(&old);
    spill(path, &nb);

    refused_everywhere(f, path, &nb);
    opens_again(f, path, &old);
    free(old.p);
    free(nb.p);
}

/* A retired file of a newer version: today's build ignores it as damage,
 * so the segments it retires would be read again (deleted keys back). */
static void
test_newer_retired(void **state)
{
    struct fx *f = *state;
    closed_and_filled(f);
    char path[1024];
    snprintf(path, sizeof(path), "%s/shard-002/retired", f->dir);
    struct blob nb = {.n = 8 + 4 + 12 + 8};
    nb.p = calloc(1, nb.n);
    assert_non_null(nb.p);
    memcpy(nb.p, "BCSKRET\n", 8);
    put32(nb.p + 8, 2);
    memcpy(nb.p + 12, "future rules", 12);
    put64(nb.p + nb.n - 8, XXH3_64bits(nb.p, nb.n - 8));
    spill(path, &nb);

    refused_everywhere(f, path, &nb);
    opens_again(f, path, NULL);
    free(nb.p);
}

/* The first hint file of shard dir sdir (its name into out). */
static void
first_hint(const char *sdir, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(sdir, &names, NULL, alphasort);
    assert_true(n > 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (out[0] == '\0' && strlen(nm) == 13 &&
            strcmp(nm + 8, ".hint") == 0) {
            snprintf(out, cap, "%s/%s", sdir, nm);
        }
        free(names[i]);
    }
    free(names);
    assert_true(out[0] != '\0');
}

/* A hint of a newer version: today's build removes it as unusable (and
 * scans the segment by its own rules); one left without its segment it
 * removes as the trace of a lost segment. */
static void
test_newer_hint(void **state)
{
    struct fx *f = *state;
    closed_and_filled(f);
    char sdir[1024], path[1024 + 256];
    snprintf(sdir, sizeof(sdir), "%s/shard-003", f->dir);
    first_hint(sdir, path, sizeof(path));
    struct blob old = slurp(path);
    struct blob nb = newer_tail_sum(&old);
    spill(path, &nb);

    refused_everywhere(f, path, &nb);
    opens_again(f, path, &old);
    cask_close(&f->c);

    /* The same hint without its segment (id 0x7777 is not one). */
    char orphan[1024 + 256];
    snprintf(orphan, sizeof(orphan), "%s/00007777.hint", sdir);
    spill(orphan, &nb);
    refused_everywhere(f, orphan, &nb);
    opens_again(f, orphan, NULL);
    free(old.p);
    free(nb.p);
}

/* A commit journal file of a newer version: today's build does not see
 * its header as valid and, under another sync mode, removes the journal
 * without replaying it. */
static void
test_newer_journal(void **state)
{
    struct fx *f = *state;
    closed_and_filled(f);
    f->o.sync = CASK_SYNC_INTERVAL; /* which removes a journal it replayed */
    char path[1024];
    snprintf(path, sizeof(path), "%s/journal.0", f->dir);
    struct blob old = slurp(path);
    struct blob nb = {.n = old.n};
    nb.p = malloc(nb.n);
    assert_non_null(nb.p);
    memcpy(nb.p, old.p, old.n);
    uint32_t v;
    memcpy(&v, nb.p + 8, 4);
    put32(nb.p + 8, v + 1);
    put64(nb.p + 32, XXH3_64bits(nb.p, 32));
    spill(path, &nb);

    refused_everywhere(f, path, &nb);
    opens_again(f, path, &old);
    free(old.p);
    free(nb.p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_newer_state_slot, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_newer_manifest, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_newer_retired, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_newer_hint, setup, teardown),
            cmocka_unit_test_setup_teardown(test_newer_journal, setup_always,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
