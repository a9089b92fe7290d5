/* bench_storage.c - storage engine figures, one `name=value` line each:
 * puts and gets per second (one thread), keydir bytes per key, recovery time
 * with and without hints, disk/live ratio after overwrites and compaction,
 * and group-commit throughput of 8 writers under sync=always next to the
 * latency of one fdatasync. Not part of `make check`.
 *
 * usage: bench_storage [--keys N] [--dir D]
 */
#include "config.h"

#include "storage/cask.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 16..32 byte keys */
static size_t
mkkey(char *buf, uint32_t i)
{
    int n = snprintf(buf, 40, "k%08x:", i);
    size_t want = 16 + (i * 2654435761u >> 16) % 17;
    while ((size_t)n < want) {
        buf[n] = (char)('a' + (i + (unsigned)n) % 26);
        n++;
    }
    return (size_t)n;
}

static void
rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

static void
remove_hints(const char *dir, unsigned shards)
{
    for (unsigned s = 0; s < shards; s++) {
        char d[4400];
        if (snprintf(d, sizeof(d), "%s/shard-%03u", dir, s) >= (int)sizeof(d)) {
            continue;
        }
        DIR *dd = opendir(d);
        if (dd == NULL) {
            continue;
        }
        struct dirent *de;
        while ((de = readdir(dd)) != NULL) {
            if (strstr(de->d_name, ".hint") != NULL) {
                unlinkat(dirfd(dd), de->d_name, 0);
            }
        }
        closedir(dd);
    }
}

static void
die(const char *what, int rc)
{
    fprintf(stderr, "bench_storage: %s: %s\n", what, cask_strerror(rc));
    exit(1);
}

/* One pass of nkeys gets in a random order (seed x); with prefetch, each
 * get's next key is announced first (cask_prefetch), as the server does
 * for the next request of a pipelined stream. Returns gets per second. */
static double
get_pass(struct cask *c, uint32_t nkeys, uint32_t x, bool prefetch)
{
    char k[40], nk[40];
    uint32_t y = x * 1103515245u + 12345u;
    size_t nkl = mkkey(nk, y % nkeys);
    double t0 = now_s();
    for (uint32_t i = 0; i < nkeys; i++) {
        memcpy(k, nk, nkl);
        size_t kl = nkl;
        y = y * 1103515245u + 12345u;
        nkl = mkkey(nk, y % nkeys);
        if (prefetch) {
            cask_prefetch(c, nk, nkl);
        }
        char *val = NULL;
        struct cask_item it;
        int rc = cask_get(c, k, kl, &it, &val);
        if (rc != CASK_OK) {
            die("get", rc);
        }
        free(val);
    }
    return nkeys / (now_s() - t0);
}

struct always_arg {
    struct cask *c;
    int id;
    double until;
    _Atomic uint64_t *ops;
};

static void *
always_writer(void *p)
{
    struct always_arg *a = p;
    char k[40], v[100];
    memset(v, 'w', sizeof(v));
    uint64_t n = 0;
    for (uint32_t i = (uint32_t)a->id; now_s() < a->until; i += 8) {
        size_t kl = mkkey(k, i);
        int rc = cask_store(a->c, CASK_SET, k, kl, v, sizeof(v), 0, 0, 0, NULL);
        if (rc != CASK_OK) {
            die("always put", rc);
        }
        n++;
    }
    atomic_fetch_add(a->ops, n);
    return NULL;
}

int
main(int argc, char **argv)
{
    uint32_t nkeys = 1000000;
    const char *dir_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            nkeys = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_arg = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--keys N] [--dir D]\n", argv[0]);
            return 64;
        }
    }
    char base[4096];
    if (dir_arg != NULL) {
        snprintf(base, sizeof(base), "%s/bench-XXXXXX", dir_arg);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(base, sizeof(base), "%s/bench-XXXXXX", t ? t : "/tmp");
    }
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/data", base);

    struct cask_options o;
    cask_options_init(&o);
    o.sync = CASK_SYNC_INTERVAL;
    o.compact_background = false;
    struct cask *c = NULL;
    int rc = cask_open(&c, dir, &o);
    if (rc != CASK_OK) {
        die("open", rc);
    }
    char k[40], v[100];
    memset(v, 'v', sizeof(v));

    /* puts */
    double t0 = now_s();
    for (uint32_t i = 0; i < nkeys; i++) {
        size_t kl = mkkey(k, i);
        rc = cask_store(c, CASK_SET, k, kl, v, sizeof(v), 0, 0, 0, NULL);
        if (rc != CASK_OK) {
            die("put", rc);
        }
    }
    double dt = now_s() - t0;
    printf("put_ops_per_s=%.0f\n", nkeys / dt);

    /* gets, random order over the hot set */
    uint32_t x = 12345;
    t0 = now_s();
    for (uint32_t i = 0; i < nkeys; i++) {
        x = x * 1103515245u + 12345u;
        size_t kl = mkkey(k, x % nkeys);
        char *val = NULL;
        struct cask_item it;
        rc = cask_get(c, k, kl, &it, &val);
        if (rc != CASK_OK || it.vlen != sizeof(v)) {
            die("get", rc);
        }
        free(val);
    }
    dt = now_s() - t0;
    printf("get_ops_per_s=%.0f\n", nkeys / dt);

    /* the same with and without the next key prefetched, alternating,
     * best of three each */
    double best_plain = 0, best_pf = 0;
    for (uint32_t r = 0; r < 3; r++) {
        double a = get_pass(c, nkeys, 777u + r, false);
        double b = get_pass(c, nkeys, 777u + r, true);
        best_plain = a > best_plain ? a : best_plain;
        best_pf = b > best_pf ? b : best_pf;
    }
    printf("get_next_plain_ops_per_s=%.0f\n", best_plain);
    printf("get_next_prefetched_ops_per_s=%.0f\n", best_pf);

    struct cask_stats st;
    cask_stats(c, -1, &st);
    printf("keydir_bytes_per_key=%.1f\n",
           (double)st.keydir_bytes / (double)st.live_keys);

    /* recovery with hints (written at close), then by scanning */
    cask_close(&c);
    rc = cask_open(&c, dir, &o);
    if (rc != CASK_OK) {
        die("reopen", rc);
    }
    cask_stats(c, -1, &st);
    printf("recovery_s_hints=%.3f\n", st.recovery_s);
    cask_close(&c);
    remove_hints(dir, o.shards);
    rc = cask_open(&c, dir, &o);
    if (rc != CASK_OK) {
        die("reopen", rc);
    }
    cask_stats(c, -1, &st);
    printf("recovery_s_scan=%.3f\n", st.recovery_s);
    if (st.live_keys != nkeys) {
        fprintf(stderr, "bench_storage: %llu keys after recovery, want %u\n",
                (unsigned long long)st.live_keys, nkeys);
        return 1;
    }

    /* overwrite every key 3 times, compact, compare disk to live bytes */
    for (int r = 0; r < 3; r++) {
        v[0] = (char)('a' + r);
        for (uint32_t i = 0; i < nkeys; i++) {
            size_t kl = mkkey(k, i);
            rc = cask_store(c, CASK_SET, k, kl, v, sizeof(v), 0, 0, 0, NULL);
            if (rc != CASK_OK) {
                die("overwrite", rc);
            }
        }
    }
    t0 = now_s();
    rc = cask_compact(c, -1, true);
    if (rc != CASK_OK) {
        die("compact", rc);
    }
    dt = now_s() - t0;
    cask_stats(c, -1, &st);
    printf("compact_s=%.2f\n", dt);
    printf("compacted_disk_ratio=%.3f\n",
           (double)st.disk_bytes / (double)st.live_bytes);
    cask_close(&c);
    rmrf(dir);

    /* fdatasync latency alone */
    char f[4300];
    snprintf(f, sizeof(f), "%s/sync-probe", base);
    int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
    double lat = 0;
    const int probes = 50;
    for (int i = 0; i < probes; i++) {
        if (pwrite(fd, v, sizeof(v), (off_t)i * 100) != (ssize_t)sizeof(v)) {
            perror("pwrite");
            return 1;
        }
        t0 = now_s();
        fdatasync(fd);
        lat += now_s() - t0;
    }
    close(fd);
    unlink(f);
    printf("fdatasync_latency_us=%.0f\n", lat / probes * 1e6);

    /* 8 writers under sync=always: over the default shards, then all on
     * one shard (where they can only go faster than one sync per write
     * by sharing syncs) */
    o.sync = CASK_SYNC_ALWAYS;
    for (int pass = 0; pass < 2; pass++) {
        char d2[4300];
        snprintf(d2, sizeof(d2), "%s/always%d", base, pass);
        o.shards = pass == 0 ? CASK_DEFAULT_SHARDS : 1;
        rc = cask_open(&c, d2, &o);
        if (rc != CASK_OK) {
            die("open always", rc);
        }
        _Atomic uint64_t ops = 0;
        pthread_t th[8];
        struct always_arg args[8];
        double until = now_s() + 2.0;
        t0 = now_s();
        for (int i = 0; i < 8; i++) {
            args[i] = (struct always_arg){
                    .c = c, .id = i, .until = until, .ops = &ops};
            pthread_create(&th[i], NULL, always_writer, &args[i]);
        }
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
        }
        dt = now_s() - t0;
        cask_stats(c, -1, &st);
        const char *sfx = pass == 0 ? "" : "_1shard";
        printf("put_always%s_ops_per_s=%.0f\n", sfx,
               (double)atomic_load(&ops) / dt);
        printf("put_always%s_writes_per_sync=%.2f\n", sfx,
               (double)atomic_load(&ops) / (double)(st.syncs ? st.syncs : 1));
        cask_close(&c);
    }
    rmrf(base);
    return 0;
}
