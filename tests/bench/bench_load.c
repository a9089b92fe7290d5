/* bench_load.c - helper for bench_server.sh: load N keys fast (pipelined
 * noreply sets through libmemcached), wait until a server accepts
 * connections, or wait until a get of a loaded key hits. Not a test; built
 * with the tree so that it keeps compiling. Depends on libmemcached only.
 *
 *   bench_load load  PORT N [VALUE_BYTES]   keys "bench:0" .. "bench:N-1"
 *   bench_load wait  PORT TIMEOUT_MS        exit 0 once connect succeeds
 *   bench_load probe PORT KEY TIMEOUT_MS    exit 0 once get KEY hits */
#include <config.h>

#include <libmemcached/memcached.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

static int
do_load(int port, long n, size_t vlen)
{
    memcached_st *memc = client(port);
    char *val = malloc(vlen + 1);
    memcached_return_t rc;
    uint32_t flags;
    size_t len;
    char *v;

    if (memc == NULL || val == NULL) {
        fprintf(stderr, "bench_load: out of memory\n");
        return 1;
    }
    memset(val, 'v', vlen);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
    for (long i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "bench:%ld", i);

        rc = memcached_set(memc, key, (size_t)klen, val, vlen, 0, 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
            fprintf(stderr, "bench_load: set %s: %s\n", key,
                    memcached_strerror(memc, rc));
            return 1;
        }
    }
    memcached_flush_buffers(memc);
    memcached_free(memc);
    /* A get on a fresh connection returns only after the server has
     * processed the pipelined sets that came before it on the old one
     * (they were flushed); check the last key made it. */
    memc = client(port);
    for (int tries = 0; tries < 600; tries++) {
        char key[32];

        snprintf(key, sizeof(key), "bench:%ld", n - 1);
        v = memcached_get(memc, key, strlen(key), &len, &flags, &rc);
        if (v != NULL) {
            free(v);
            memcached_free(memc);
            free(val);
            return 0;
        }
        usleep(100000);
    }
    fprintf(stderr, "bench_load: last key never showed up\n");
    return 1;
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
    if (argc == 4 && strcmp(argv[1], "wait") == 0) {
        return do_wait(atoi(argv[2]), atol(argv[3]));
    }
    if (argc == 5 && strcmp(argv[1], "probe") == 0) {
        return do_probe(atoi(argv[2]), argv[3], atol(argv[4]));
    }
    fprintf(stderr, "usage: bench_load load PORT N [VALUE_BYTES] | wait PORT "
            "TIMEOUT_MS | probe PORT KEY TIMEOUT_MS\n");
    return 64;
}
