/* test_persist.c - data survives the process: values and flags written
 * through the client are all back after SIGTERM and a restart on the same data
 * dir; under --sync=always, every write acknowledged before a SIGKILL (taken
 * while 4 client threads write) is back after a restart, and under
 * --sync=interval every write acknowledged well before the kill.
 * Depends on the harness and libmemcached. */
#include <config.h>

#include "tests/integration/harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define NKEYS    2000
#define NWRITERS 4

static void
make_value(int i, char *buf, size_t cap, size_t *len)
{
    /* sizes from 0 to ~3 KB, content derived from i */
    size_t n = (size_t)((i * 37) % 3000);

    if (n + 1 > cap) {
        n = cap - 1;
    }
    for (size_t j = 0; j < n; j++) {
        buf[j] = (char)('a' + (i + (int)j) % 26);
    }
    *len = n;
}

static void
check_key(memcached_st *memc, const char *key, const char *want, size_t wlen,
          uint32_t wflags)
{
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t len = 0;
    char *v = memcached_get(memc, key, strlen(key), &len, &flags, &rc);

    if (rc != MEMCACHED_SUCCESS || len != wlen || flags != wflags ||
        (wlen > 0 && memcmp(v, want, wlen) != 0)) {
        fprintf(stderr,
                "after restart, %s: rc=%s len=%zu flags=%u; want "
                "len=%zu flags=%u\n",
                key, memcached_strerror(memc, rc), len, flags, wlen, wflags);
        free(v);
        harness_fail();
    }
    free(v);
}

static void
test_sigterm_restart(void)
{
    struct harness_server *srv = harness_create(NULL, 0);
    memcached_st *memc;
    char val[4096];
    size_t len;
    uint64_t n;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    memc = harness_client(srv);
    for (int i = 0; i < NKEYS; i++) {
        char key[32];

        snprintf(key, sizeof(key), "p:%d", i);
        make_value(i, val, sizeof(val), &len);
        HARNESS_CHECK_RC(memc,
                         memcached_set(memc, key, strlen(key), val, len,
                                       i % 3 == 0 ? 3600 : 0,
                                       (uint32_t)i * 2654435761u),
                         MEMCACHED_SUCCESS);
    }
    /* overwrites, deletes, appends and counters must come back as last left */
    HARNESS_CHECK_RC(memc, memcached_set(memc, "p:1", 3, "over", 4, 0, 99),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_delete(memc, "p:2", 3, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_set(memc, "p:a", 3, "x", 1, 0, 5),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_append(memc, "p:a", 3, "yz", 2, 0, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_set(memc, "p:n", 3, "41", 2, 0, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_increment(memc, "p:n", 3, 1, &n),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_set(memc, "p:gone", 6, "x", 1, -1, 0),
                     MEMCACHED_SUCCESS);
    memcached_free(memc);

    HARNESS_CHECK(harness_stop(srv) == 0);
    HARNESS_CHECK(harness_start(srv, 30000) == 0);
    memc = harness_client(srv);
    for (int i = 0; i < NKEYS; i++) {
        char key[32];

        if (i == 1 || i == 2) {
            continue;
        }
        snprintf(key, sizeof(key), "p:%d", i);
        make_value(i, val, sizeof(val), &len);
        check_key(memc, key, val, len, (uint32_t)i * 2654435761u);
    }
    check_key(memc, "p:1", "over", 4, 99);
    check_key(memc, "p:a", "xyz", 3, 5);
    check_key(memc, "p:n", "42", 2, 0);
    {
        memcached_return_t rc;
        uint32_t flags;
        char *v = memcached_get(memc, "p:2", 3, &len, &flags, &rc);

        HARNESS_CHECK(v == NULL && rc == MEMCACHED_NOTFOUND);
        v = memcached_get(memc, "p:gone", 6, &len, &flags, &rc);
        HARNESS_CHECK(v == NULL && rc == MEMCACHED_NOTFOUND);
    }
    /* new writes keep working after the restart */
    HARNESS_CHECK_RC(memc, memcached_set(memc, "p:new", 5, "n", 1, 0, 1),
                     MEMCACHED_SUCCESS);
    check_key(memc, "p:new", "n", 1, 1);
    memcached_free(memc);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

static struct harness_server *kill_srv;
static atomic_int acked[NWRITERS];
static atomic_int stop_writers;

static void *
writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    memcached_st *memc = harness_client(kill_srv);

    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 2000);
    for (int n = 1; !atomic_load(&stop_writers); n++) {
        char key[32];
        char val[64];
        memcached_return_t rc;

        snprintf(key, sizeof(key), "w%d:%d", id, n);
        snprintf(val, sizeof(val), "value-%d-%d", id, n);
        rc = memcached_set(memc, key, strlen(key), val, strlen(val), 0,
                           (uint32_t)n);
        if (rc != MEMCACHED_SUCCESS) {
            break; /* the server is gone */
        }
        atomic_store(&acked[id], n);
    }
    memcached_free(memc);
    return NULL;
}

/* Start a server with args, let NWRITERS clients write for a while, SIGKILL
 * it, restart, and check that every write acknowledged at least lag_ms
 * before the kill is back (lag_ms 0: every acknowledged write). */
static void
test_sigkill(const char *const *args, int lag_ms, const char *what)
{
    pthread_t th[NWRITERS];
    int must_have[NWRITERS];
    memcached_st *memc;
    int total = 0;

    kill_srv = harness_create(args, 0);
    atomic_store(&stop_writers, 0);
    for (int i = 0; i < NWRITERS; i++) {
        atomic_store(&acked[i], 0);
    }
    HARNESS_CHECK(harness_start(kill_srv, 10000) == 0);
    for (int i = 0; i < NWRITERS; i++) {
        HARNESS_CHECK(
                pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i) == 0);
    }
    usleep(700 * 1000);
    for (int i = 0; i < NWRITERS; i++) {
        must_have[i] = atomic_load(&acked[i]);
    }
    usleep((useconds_t)lag_ms * 1000);
    harness_kill(kill_srv);
    atomic_store(&stop_writers, 1);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(th[i], NULL);
        if (lag_ms == 0) {
            must_have[i] = atomic_load(&acked[i]);
        }
    }
    HARNESS_CHECK(harness_start(kill_srv, 30000) == 0);
    memc = harness_client(kill_srv);
    for (int i = 0; i < NWRITERS; i++) {
        HARNESS_CHECK(must_have[i] > 0);
        for (int n = 1; n <= must_have[i]; n++) {
            char key[32];
            char val[64];

            snprintf(key, sizeof(key), "w%d:%d", i, n);
            snprintf(val, sizeof(val), "value-%d-%d", i, n);
            check_key(memc, key, val, strlen(val), (uint32_t)n);
            total++;
        }
    }
    memcached_free(memc);
    HARNESS_CHECK(harness_stop(kill_srv) == 0);
    harness_destroy(&kill_srv);
    printf("sigkill under %s: %d writes all back\n", what, total);
}

int
main(void)
{
    harness_init();
    test_sigterm_restart();
    {
        static const char *const always[] = {"--sync=always", NULL};
        static const char *const interval[] = {"--sync=interval",
                                               "--sync-interval-ms=100", NULL};

        test_sigkill(always, 0, "--sync=always (every acknowledged write)");
        /* A kill of the process (not of the machine) loses nothing the
         * server handed to the kernel; writes acknowledged three intervals
         * before the kill must have been handed over by then. */
        test_sigkill(interval, 300,
                     "--sync=interval, 100 ms (writes acked 300 ms before)");
    }
    printf("ok\n");
    return 0;
}
