/* bench_load.c - helper for bench_server.sh: load N keys fast (pipelined
 * noreply sets through libmemcached), wait until a server accepts
 * connections, or wait until a get of a loaded key hits. Not a test; built
 * with the tree so that it keeps compiling. Depends on libmemcached only.
 *
 *   bench_load load  PORT N [VALUE_BYTES]   keys "bench:0" .. "bench:N-1",
 *                                           then checks every key is there
 *   bench_load verify PORT N                 print how many keys are missing
 *   bench_load wait  PORT TIMEOUT_MS        exit 0 once connect succeeds
 *   bench_load probe PORT KEY TIMEOUT_MS    exit 0 once get KEY hits */
#include <config.h>

#include <libmemcached/memcached.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static memcached_st *
client(int port)
{
    memcached_st *memc = memcached_create(NULL);

    if (memc == NULL) {
        return NULL;
    }
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1000);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 30000);
    if (memcached_server_add(memc, "127.0.0.1", (in_port_t)port) !=
        MEMCACHED_SUCCESS) {
        memcached_free(memc);
        return NULL;
    }
    return memc;
}

static long
stat_value(memcached_st *memc, const char *name)
{
    memcached_return_t rc;
    memcached_stat_st *st = memcached_stat(memc, NULL, &rc);
    char *v;
    long n = -1;

    if (st == NULL) {
        return -1;
    }
    v = memcached_stat_get_value(memc, st, name, &rc);
    if (v != NULL) {
        n = atol(v);
        free(v);
    }
    memcached_stat_free(memc, st);
    return n;
}

/* Count the keys of [0, n) that are missing; with fix set, store them again
 * with acknowledged (not pipelined) sets. Returns the count or -1. */
static long
check_keys(memcached_st *memc, long n, const char *val, size_t vlen, int fix)
{
    enum { BATCH = 500 };
    static char keybuf[BATCH][32];
    static char seen[BATCH];
    const char *keys[BATCH];
    size_t lens[BATCH];
    long missing = 0;

    for (long base = 0; base < n; base += BATCH) {
        int cnt = (int)(n - base < BATCH ? n - base : BATCH);
        memcached_result_st *res;
        memcached_return_t rc;

        for (int i = 0; i < cnt; i++) {
            lens[i] = (size_t)snprintf(keybuf[i], sizeof(keybuf[i]),
                                       "bench:%ld", base + i);
            keys[i] = keybuf[i];
            seen[i] = 0;
        }
        if (memcached_mget(memc, keys, lens, (size_t)cnt) !=
            MEMCACHED_SUCCESS) {
            return -1;
        }
        while ((res = memcached_fetch_result(memc, NULL, &rc)) != NULL) {
            long k = atol(memcached_result_key_value(res) + 6);

            if (k >= base && k < base + cnt) {
                seen[k - base] = 1;
            }
            memcached_result_free(res);
        }
        for (int i = 0; i < cnt; i++) {
            if (seen[i]) {
                continue;
            }
            missing++;
            if (fix && memcached_set(memc, keys[i], lens[i], val, vlen, 0, 0) !=
                               MEMCACHED_SUCCESS) {
                return -1;
            }
        }
    }
    return missing;
}

/* Pipelined noreply sets on one connection, kept open until the server has
 * taken them all in (cmd_set stops moving), then a check that every key is
 * there. Keys that are not get stored again, acknowledged, so that the
 * memory and restart figures are about the full set; the number lost is
 * printed as load_pipelined_lost. */
static int
do_load(int port, long n, size_t vlen)
{
    memcached_st *memc = client(port);
    memcached_st *check = client(port);
    char *val = malloc(vlen + 1);
    long last = -1;
    long missing;

    if (memc == NULL || check == NULL || val == NULL) {
        fprintf(stderr, "bench_load: out of memory\n");
        return 1;
    }
    memset(val, 'v', vlen);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
    for (long i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "bench:%ld", i);
        memcached_return_t rc;

        rc = memcached_set(memc, key, (size_t)klen, val, vlen, 0, 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
            fprintf(stderr, "bench_load: set %s: %s\n", key,
                    memcached_strerror(memc, rc));
            return 1;
        }
    }
    memcached_flush_buffers(memc);
    for (int quiet = 0; quiet < 10;) {
        long now;

        usleep(100000);
        now = stat_value(check, "cmd_set");
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
    missing = check_keys(check, n, val, vlen, 1);
    memcached_free(memc);
    if (missing < 0) {
        fprintf(stderr, "bench_load: checking the loaded keys failed\n");
        return 1;
    }
    printf("load_pipelined_lost=%ld\n", missing);
    if (missing > 0 && check_keys(check, n, val, vlen, 0) != 0) {
        fprintf(stderr, "bench_load: keys still missing after reloading\n");
        return 1;
    }
    memcached_free(check);
    free(val);
    return 0;
}

/* Print how many of the n loaded keys a server does not have. */
static int
do_verify(int port, long n)
{
    memcached_st *memc = client(port);
    long missing;

    if (memc == NULL) {
        return 1;
    }
    missing = check_keys(memc, n, NULL, 0, 0);
    memcached_free(memc);
    if (missing < 0) {
        fprintf(stderr, "bench_load: verify failed\n");
        return 1;
    }
    printf("restart_missing_keys=%ld\n", missing);
    return 0;
}

static int
do_wait(int port, long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;

    while (now_ms() < deadline) {
        struct sockaddr_in sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)port);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return 0;
        }
        if (fd >= 0) {
            close(fd);
        }
        usleep(5000);
    }
    return 1;
}

static int
do_probe(int port, const char *key, long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;

    while (now_ms() < deadline) {
        memcached_st *memc = client(port);
        memcached_return_t rc;
        uint32_t flags;
        size_t len;
        char *v;

        if (memc != NULL) {
            v = memcached_get(memc, key, strlen(key), &len, &flags, &rc);
            memcached_free(memc);
            if (v != NULL) {
                free(v);
                return 0;
            }
        }
        usleep(5000);
    }
    return 1;
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "load") == 0) {
        return do_load(atoi(argv[2]), atol(argv[3]),
                       argc > 4 ? (size_t)atol(argv[4]) : 100);
    }
    if (argc == 4 && strcmp(argv[1], "verify") == 0) {
        return do_verify(atoi(argv[2]), atol(argv[3]));
    }
    if (argc == 4 && strcmp(argv[1], "wait") == 0) {
        return do_wait(atoi(argv[2]), atol(argv[3]));
    }
    if (argc == 5 && strcmp(argv[1], "probe") == 0) {
        return do_probe(atoi(argv[2]), argv[3], atol(argv[4]));
    }
    fprintf(stderr, "usage: bench_load load PORT N [VALUE_BYTES] | "
                    "verify PORT N | wait PORT TIMEOUT_MS | "
                    "probe PORT KEY TIMEOUT_MS\n");
    return 64;
}
