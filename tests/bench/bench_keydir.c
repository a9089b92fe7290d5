/* bench_keydir.c - the keyless keydir alone (the shard's index): bytes per
 * key, and nanoseconds per insert, per lookup of a present key and per
 * lookup of an absent one, in random order over N keys (default 1M, so the
 * table and entries are far larger than the CPU caches). The match function
 * compares against an array of keys, standing in for the record read the
 * shard does. Best of ROUNDS runs. Not part of `make check`.
 *
 * usage: bench_keydir [N] [ROUNDS]
 */
#include "config.h"

#include "storage/cask_keydir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_CAP 24

static char (*keys)[KEY_CAP];

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
mkkey(char *buf, uint32_t i)
{
    return (size_t)snprintf(buf, KEY_CAP, "key:%08x:%u", i * 2654435761u, i);
}

/* An entry's off is its key's index + 1 (0 would mean "not written"). */
static bool
match(void *arg, const struct cask_kd_entry *e, const void *key, size_t klen)
{
    (void)arg;
    return memcmp(keys[e->off - 1], key, klen) == 0;
}

int
main(int argc, char **argv)
{
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    uint32_t *order = malloc(sizeof(uint32_t) * n);
    keys = malloc((size_t)KEY_CAP * n * 2);
    if (order == NULL || keys == NULL || n == 0) {
        return 1;
    }
    for (uint32_t i = 0; i < 2 * n; i++) {
        mkkey(keys[i], i);
    }
    for (uint32_t i = 0; i < n; i++) {
        order[i] = i;
    }
    uint32_t x = 12345;
    for (uint32_t i = n - 1; i > 0; i--) {
        x = x * 1103515245u + 12345u;
        uint32_t j = x % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double best_ins = 1e9, best_hit = 1e9, best_miss = 1e9, per_key = 0;
    for (int r = 0; r < rounds; r++) {
        struct cask_keydir *kd = cask_kd_create_keyless(match, NULL);
        double t0 = now_s();
        for (uint32_t i = 0; i < n; i++) {
            const char *k = keys[i];
            size_t kl = strlen(k);
            struct cask_kd_entry *e =
                    cask_kd_insert(kd, cask_kd_hash(k, kl), k, kl);
            if (e == NULL) {
                return 1;
            }
            e->off = i + 1;
        }
        double t1 = now_s();
        size_t found = 0;
        for (uint32_t i = 0; i < n; i++) {
            const char *k = keys[order[i]];
            size_t kl = strlen(k);
            found += cask_kd_find(kd, cask_kd_hash(k, kl), k, kl) != NULL;
        }
        double t2 = now_s();
        for (uint32_t i = 0; i < n; i++) {
            const char *k = keys[n + order[i]];
            size_t kl = strlen(k);
            found += cask_kd_find(kd, cask_kd_hash(k, kl), k, kl) != NULL;
        }
        double t3 = now_s();
        if (found != n) {
            fprintf(stderr, "bench_keydir: found %zu of %u\n", found, n);
            return 1;
        }
        per_key = (double)cask_kd_bytes(kd) / n;
        cask_kd_destroy(&kd);
        best_ins = (t1 - t0) < best_ins ? t1 - t0 : best_ins;
        best_hit = (t2 - t1) < best_hit ? t2 - t1 : best_hit;
        best_miss = (t3 - t2) < best_miss ? t3 - t2 : best_miss;
    }
    printf("keydir_keys=%u\n", n);
    printf("keydir_bytes_per_key=%.1f\n", per_key);
    printf("keydir_insert_ns=%.0f\n", best_ins * 1e9 / n);
    printf("keydir_find_hit_ns=%.0f\n", best_hit * 1e9 / n);
    printf("keydir_find_miss_ns=%.0f\n", best_miss * 1e9 / n);
    free(order);
    free(keys);
    return 0;
}
