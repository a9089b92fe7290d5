/* admin_compact.c - `bitcached-admin stats DIR` and `compact DIR`: the
 * store's own figures per shard, and compaction run to completion, both
 * through the store API (cask_open, cask_stats, cask_compact); stats opens
 * the store only to look, and changes nothing in it. The oldest
 * and newest record times are the modification times of a shard's oldest
 * and newest segment files (records carry no time of their own). */
#include "admin/admin.h"

#include "storage/cask_segment.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* mtimes of the segments of shard i with the smallest and largest id. */
static void
segment_times(const char *dir, unsigned i, time_t *oldest, time_t *newest)
{
    char sdir[CASK_PATH_MAX], path[CASK_PATH_MAX + 300];
    unsigned lo = UINT32_MAX, hi = 0;
    bool any = false;
    *oldest = *newest = 0;
    snprintf(sdir, sizeof(sdir), "%s/shard-%03u", dir, i);
    DIR *d = opendir(sdir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[8];
        if (strlen(de->d_name) == 12 &&
            sscanf(de->d_name, "%8x.%3s", &id, ext) == 2 &&
            strcmp(ext, "seg") == 0) {
            lo = id < lo ? id : lo;
            hi = id > hi ? id : hi;
            any = true;
        }
    }
    closedir(d);
    struct stat st;
    cask_seg_path(path, sizeof(path), sdir, lo, "seg");
    if (any && stat(path, &st) == 0) {
        *oldest = st.st_mtime;
    }
    cask_seg_path(path, sizeof(path), sdir, hi, "seg");
    if (any && stat(path, &st) == 0) {
        *newest = st.st_mtime;
    }
}

static void
utc(char *out, size_t cap, time_t t)
{
    struct tm tm;
    if (t == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, cap, "-");
    } else {
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

static void
print_stats(const char *what, const struct cask_stats *st)
{
    printf("%s: %" PRIu64 " keys, %" PRIu64 " live bytes, %" PRIu64
           " dead bytes, %" PRIu64 " segments, %" PRIu64 " disk bytes, %.1f "
           "keydir bytes per key",
           what, st->live_keys, st->live_bytes, st->dead_bytes, st->segments,
           st->disk_bytes,
           st->live_keys ? (double)st->keydir_bytes / (double)st->live_keys
                         : 0.0);
}

int
admin_stats(int argc, char **argv)
{
    if (argc != 2) {
        admin_err("usage: stats DIR");
        return ADMIN_USAGE;
    }
    struct cask *c;
    if (admin_open_look(argv[1], &c) != 0) {
        return ADMIN_FAIL;
    }
    struct cask_stats st;
    for (unsigned i = 0; i < cask_shards(c); i++) {
        char what[32], o[32], n[32];
        time_t oldest, newest;
        (void)cask_stats(c, (int)i, &st);
        segment_times(argv[1], i, &oldest, &newest);
        utc(o, sizeof(o), oldest);
        utc(n, sizeof(n), newest);
        snprintf(what, sizeof(what), "shard-%03u", i);
        print_stats(what, &st);
        printf(", oldest segment %s, newest %s\n", o, n);
    }
    (void)cask_stats(c, -1, &st);
    print_stats("total", &st);
    putchar('\n');
    admin_close(&c);
    return ADMIN_OK;
}

int
admin_compact(int argc, char **argv)
{
    if (argc != 2) {
        admin_err("usage: compact DIR");
        return ADMIN_USAGE;
    }
    struct cask *c;
    if (admin_open(argv[1], 0, &c) != 0) {
        return ADMIN_FAIL;
    }
    struct cask_stats before, after;
    (void)cask_stats(c, -1, &before);
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < cask_shards(c); i++) {
        rc = cask_compact(c, (int)i, true);
        if (!admin_quiet) {
            fprintf(stderr, "compacted shard %u of %u\n", i + 1,
                    cask_shards(c));
        }
    }
    (void)cask_stats(c, -1, &after);
    cask_close(&c);
    if (rc != 0) {
        admin_err("compact %s: %s", argv[1], cask_strerror(rc));
        return ADMIN_FAIL;
    }
    printf("compacted: %" PRIu64 " disk bytes before, %" PRIu64
           " after, %" PRIu64 " reclaimed; %" PRIu64
           " dead bytes left; %" PRIu64 " segments before, %" PRIu64 " after\n",
           before.disk_bytes, after.disk_bytes,
           before.disk_bytes > after.disk_bytes
                   ? before.disk_bytes - after.disk_bytes
                   : 0,
           after.dead_bytes, before.segments, after.segments);
    return ADMIN_OK;
}
