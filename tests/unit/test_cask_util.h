/* test_cask_util.h - helpers shared by the storage unit tests: temporary
 * data directories, a fake clock, a quiet log sink, the records a scan or
 * a hint load hands out as lines to compare. Header-only; test code.
 */
#ifndef BITCACHED_TEST_CASK_UTIL_H
#define BITCACHED_TEST_CASK_UTIL_H

#include "storage/cask.h"
#include "storage/cask_record.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* A fake clock the tests move by hand. */
static int64_t tc_now = 1700000000;

static inline int64_t
tc_clock(void *arg)
{
    (void)arg;
    return tc_now;
}

/* Collect log lines so tests can look for them. */
static char tc_log[8192];

static inline void
tc_logger(void *arg, enum cask_log_level level, const char *msg)
{
    (void)arg;
    (void)level;
    size_t n = strlen(tc_log);
    if (n + strlen(msg) + 2 < sizeof(tc_log)) {
        strcat(tc_log, msg);
        strcat(tc_log, "\n");
    }
}

static inline void
tc_options(struct cask_options *o)
{
    cask_options_init(o);
    o->shards = 4;
    o->clock = tc_clock;
    o->log = tc_logger;
    o->compact_background = false;
    o->sync = CASK_SYNC_NEVER;
}

static inline char *
tc_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/cask-test-XXXXXX", base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void
tc_rmrf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 ||
                    strcmp(de->d_name, "..") == 0) {
                    continue;
                }
                char p[4096];
                if (snprintf(p, sizeof(p), "%s/%s", path, de->d_name) <
                    (int)sizeof(p)) {
                    tc_rmrf(p);
                }
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Store a NUL-terminated value under a NUL-terminated key with SET. */
static inline int
tc_set(struct cask *c, const char *k, const char *v)
{
    return cask_store(c, CASK_SET, k, strlen(k), v, strlen(v), 0, 0, 0, NULL);
}

/* 1 when k holds exactly v, else 0. */
static inline int
tc_is(struct cask *c, const char *k, const char *v)
{
    struct cask_item it;
    char *val = NULL;
    int rc = cask_get(c, k, strlen(k), &it, &val);
    int ok = rc == CASK_OK && it.vlen == strlen(v) &&
             memcmp(val, v, it.vlen) == 0;
    free(val);
    return ok;
}

static inline int
tc_absent(struct cask *c, const char *k)
{
    struct cask_item it;
    return cask_get(c, k, strlen(k), &it, NULL) == CASK_ENOTFOUND;
}

/* The records a segment scan, a hint scan or a hint load hands out
 * (tc_rec_collect as its callback), one line each: every field and the
 * key, so that two ways of reading a segment can be compared. */
struct tc_rec_list {
    char (*lines)[400];
    size_t n;
};

static inline void
tc_rec_collect(void *arg, const struct cask_rec *r, const char *key,
               uint64_t off)
{
    struct tc_rec_list *l = arg;
    l->lines = realloc(l->lines, (l->n + 1) * sizeof(*l->lines));
    assert_non_null(l->lines);
    snprintf(l->lines[l->n], sizeof(l->lines[0]),
             "%llu %llu %lld %u %u %u %u %llu %.*s", (unsigned long long)r->seq,
             (unsigned long long)r->cas, (long long)r->exp_abs_s, r->vlen,
             r->flags, r->klen, r->type, (unsigned long long)off, r->klen, key);
    l->n++;
}

/* a and b hold the same records, in the same order. */
static inline void
tc_rec_same(const struct tc_rec_list *a, const struct tc_rec_list *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->lines[i], b->lines[i]);
    }
}

/* The fixture most storage tests share: a store in a fresh temporary
 * directory with tc_options() adjusted by the caller's `tune` (may be NULL),
 * opened at the fake clock's start. */
struct fx {
    char *dir;
    struct cask *c;
    struct cask_options o;
};

static inline int
tc_fx_setup(void **state, void (*tune)(struct cask_options *o))
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    f->dir = tc_mkdtemp();
    tc_now = 1700000000;
    tc_options(&f->o);
    if (tune != NULL) {
        tune(&f->o);
    }
    if (cask_open(&f->c, f->dir, &f->o) != CASK_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static inline int
tc_fx_teardown(void **state)
{
    struct fx *f = *state;

    cask_close(&f->c);
    tc_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* The newest segment file of shard 0 (the active one when no compaction
 * ran) into out[0..cap); its id. */
static inline unsigned
tc_newest_segment(struct fx *f, char *out, size_t cap)
{
    char d[1024];
    snprintf(d, sizeof(d), "%s/shard-000", f->dir);
    DIR *dh = opendir(d);
    assert_non_null(dh);
    unsigned best = 0;
    int any = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        unsigned id;
        char ext[8];
        if (sscanf(de->d_name, "%8x.%7s", &id, ext) == 2 &&
            strcmp(ext, "seg") == 0 && (!any || id > best)) {
            best = id;
            any = 1;
        }
    }
    closedir(dh);
    assert_true(any);
    snprintf(out, cap, "%s/%08x.seg", d, best);
    return best;
}

/* The ids of the segments of store dir's shard 0, ascending, into
 * ids[0..cap); their count. Past cap, which ids are left out is
 * arbitrary (directory order): callers size cap for all of them. */
static inline size_t
tc_segment_ids(const char *dir, uint32_t *ids, size_t cap)
{
    char d[1024];
    snprintf(d, sizeof(d), "%s/shard-000", dir);
    DIR *dh = opendir(d);
    assert_non_null(dh);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        unsigned id;
        char ext[8];
        if (sscanf(de->d_name, "%8x.%7s", &id, ext) == 2 &&
            strcmp(ext, "seg") == 0 && n < cap) {
            ids[n++] = id;
        }
    }
    closedir(dh);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && ids[j] < ids[j - 1]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    }
    return n;
}

/* A tc_fx_setup tune: one shard, so a test knows where each key goes. */
static inline void
tc_one_shard(struct cask_options *o)
{
    o->shards = 1;
}

/* Close and open again with the same options; the store must open. */
static inline void
tc_fx_reopen(struct fx *f)
{
    cask_close(&f->c);
    assert_null(f->c);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
}

#endif
