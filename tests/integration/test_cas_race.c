/* test_cas_race.c - several client threads race cas on the same key, round
 * after round: exactly one wins each round, the others get EXISTS, and the
 * stored value is the winner's. Depends on the harness and libmemcached. */
#include <config.h>

#include "tests/integration/harness.h"

#include <pthread.h>
#include <string.h>

#define NTHREADS 4
#define ROUNDS   100

static struct harness_server *srv;
static pthread_barrier_t barrier;
static int winners[ROUNDS];
static int winner_id[ROUNDS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
fetch_cas(memcached_st *memc, const char *key)
{
    const char *keys[1] = {key};
    size_t lens[1] = {strlen(key)};
    memcached_result_st *res;
    memcached_return_t rc;
    uint64_t cas = 0;

    HARNESS_CHECK_RC(memc, memcached_mget(memc, keys, lens, 1),
                     MEMCACHED_SUCCESS);
    while ((res = memcached_fetch_result(memc, NULL, &rc)) != NULL) {
        cas = memcached_result_cas(res);
        memcached_result_free(res);
    }
    return cas;
}

static void *
racer(void *arg)
{
    int id = (int)(intptr_t)arg;
    memcached_st *memc = harness_client(srv);

    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    for (int r = 0; r < ROUNDS; r++) {
        char key[32];
        char val[32];
        memcached_return_t rc;
        uint64_t cas;

        snprintf(key, sizeof(key), "race:%d", r);
        snprintf(val, sizeof(val), "winner-%d", id);
        pthread_barrier_wait(&barrier); /* main has set the key */
        cas = fetch_cas(memc, key);
        HARNESS_CHECK(cas != 0);
        pthread_barrier_wait(&barrier); /* everyone holds the same cas */
        rc = memcached_cas(memc, key, strlen(key), val, strlen(val), 0, 0, cas);
        if (rc == MEMCACHED_SUCCESS) {
            pthread_mutex_lock(&mu);
            winners[r]++;
            winner_id[r] = id;
            pthread_mutex_unlock(&mu);
        } else {
            HARNESS_CHECK_RC(memc, rc, MEMCACHED_DATA_EXISTS);
        }
        pthread_barrier_wait(&barrier); /* round over */
    }
    memcached_free(memc);
    return NULL;
}

int
main(void)
{
    pthread_t th[NTHREADS];
    memcached_st *memc;

    harness_init();
    srv = harness_create(NULL, 0);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    memc = harness_client(srv);
    HARNESS_CHECK(pthread_barrier_init(&barrier, NULL, NTHREADS + 1) == 0);
    for (int i = 0; i < NTHREADS; i++) {
        HARNESS_CHECK(
                pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i) == 0);
    }
    for (int r = 0; r < ROUNDS; r++) {
        char key[32];

        snprintf(key, sizeof(key), "race:%d", r);
        HARNESS_CHECK_RC(
                memc, memcached_set(memc, key, strlen(key), "start", 5, 0, 0),
                MEMCACHED_SUCCESS);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int r = 0; r < ROUNDS; r++) {
        char key[32];
        char want[32];
        memcached_return_t rc;
        uint32_t flags;
        size_t len;
        char *v;

        if (winners[r] != 1) {
            fprintf(stderr, "round %d: %d winners, want exactly 1\n", r,
                    winners[r]);
            harness_fail();
        }
        snprintf(key, sizeof(key), "race:%d", r);
        snprintf(want, sizeof(want), "winner-%d", winner_id[r]);
        v = memcached_get(memc, key, strlen(key), &len, &flags, &rc);
        HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
        HARNESS_CHECK(len == strlen(want) && memcmp(v, want, len) == 0);
        free(v);
    }
    memcached_free(memc);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
    printf("ok: %d rounds, %d threads\n", ROUNDS, NTHREADS);
    return 0;
}
