/* test_commands.c - every storage and retrieval command through libmemcached
 * (ascii protocol) against the real binary: set add replace append prepend cas
 * get gets mget touch delete incr decr flush_all version stats, plus gat over
 * a raw socket (libmemcached has no gat), multi-get across shards, large
 * values and the -I limit, noreply, expiry, delayed flush_all, and a unix
 * socket (-s).
 * Depends on the harness and libmemcached only. */
#include <config.h>

#include "tests/integration/harness.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
get_str(memcached_st *memc, const char *key, uint32_t *flags,
        memcached_return_t *rc)
{
    size_t len = 0;

    return memcached_get(memc, key, strlen(key), &len, flags, rc);
}

static void
expect_value(memcached_st *memc, const char *key, const char *want,
             uint32_t want_flags)
{
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t len = 0;
    char *v = memcached_get(memc, key, strlen(key), &len, &flags, &rc);

    if (rc != MEMCACHED_SUCCESS || v == NULL || len != strlen(want) ||
        memcmp(v, want, len) != 0 || flags != want_flags) {
        fprintf(stderr, "get %s: rc=%s value=%.*s flags=%u; want %s flags=%u\n",
                key, memcached_strerror(memc, rc), v ? (int)len : 6,
                v ? v : "(null)", flags, want, want_flags);
        free(v);
        harness_fail();
    }
    free(v);
}

static void
expect_missing(memcached_st *memc, const char *key)
{
    memcached_return_t rc;
    uint32_t flags;
    char *v = get_str(memc, key, &flags, &rc);

    if (v != NULL || rc != MEMCACHED_NOTFOUND) {
        fprintf(stderr, "get %s: rc=%s, want NOTFOUND\n", key,
                memcached_strerror(memc, rc));
        free(v);
        harness_fail();
    }
}

static memcached_return_t
set_str(memcached_st *memc, const char *key, const char *val, time_t exp,
        uint32_t flags)
{
    return memcached_set(memc, key, strlen(key), val, strlen(val), exp, flags);
}

static uint64_t
cas_of(memcached_st *memc, const char *key)
{
    const char *keys[1] = {key};
    size_t lens[1] = {strlen(key)};
    memcached_result_st *res;
    memcached_return_t rc;
    uint64_t cas = 0;
    int n = 0;

    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    HARNESS_CHECK_RC(memc, memcached_mget(memc, keys, lens, 1),
                     MEMCACHED_SUCCESS);
    while ((res = memcached_fetch_result(memc, NULL, &rc)) != NULL) {
        cas = memcached_result_cas(res);
        n++;
        memcached_result_free(res);
    }
    HARNESS_CHECK(n == 1);
    HARNESS_CHECK(cas != 0);
    return cas;
}

static void
test_storage_commands(memcached_st *memc)
{
    uint64_t val = 0;
    uint64_t cas;

    HARNESS_CHECK_RC(memc, set_str(memc, "k1", "hello", 0, 42),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "k1", "hello", 42);
    HARNESS_CHECK_RC(memc, set_str(memc, "k1", "again", 0, 7),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "k1", "again", 7);

    HARNESS_CHECK_RC(memc, memcached_add(memc, "k1", 2, "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
    HARNESS_CHECK_RC(memc, memcached_add(memc, "k2", 2, "added", 5, 0, 3),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "k2", "added", 3);

    HARNESS_CHECK_RC(memc, memcached_replace(memc, "nokey", 5, "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
    expect_missing(memc, "nokey");
    HARNESS_CHECK_RC(memc, memcached_replace(memc, "k2", 2, "repl", 4, 0, 9),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "k2", "repl", 9);

    HARNESS_CHECK_RC(memc, memcached_append(memc, "k2", 2, "-tail", 5, 0, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_prepend(memc, "k2", 2, "head-", 5, 0, 0),
                     MEMCACHED_SUCCESS);
    /* append/prepend keep the item's flags */
    expect_value(memc, "k2", "head-repl-tail", 9);
    HARNESS_CHECK_RC(memc, memcached_append(memc, "nokey", 5, "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);
    HARNESS_CHECK_RC(memc, memcached_prepend(memc, "nokey", 5, "x", 1, 0, 0),
                     MEMCACHED_NOTSTORED);

    cas = cas_of(memc, "k2");
    HARNESS_CHECK_RC(memc, memcached_cas(memc, "k2", 2, "c1", 2, 0, 1, cas + 1),
                     MEMCACHED_DATA_EXISTS);
    HARNESS_CHECK_RC(memc, memcached_cas(memc, "k2", 2, "c1", 2, 0, 1, cas),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "k2", "c1", 1);
    HARNESS_CHECK(cas_of(memc, "k2") != cas);
    HARNESS_CHECK_RC(memc, memcached_cas(memc, "k2", 2, "c2", 2, 0, 1, cas),
                     MEMCACHED_DATA_EXISTS);
    HARNESS_CHECK_RC(memc, memcached_cas(memc, "nokey", 5, "c", 1, 0, 0, cas),
                     MEMCACHED_NOTFOUND);

    HARNESS_CHECK_RC(memc, memcached_delete(memc, "k2", 2, 0),
                     MEMCACHED_SUCCESS);
    expect_missing(memc, "k2");
    HARNESS_CHECK_RC(memc, memcached_delete(memc, "k2", 2, 0),
                     MEMCACHED_NOTFOUND);

    HARNESS_CHECK_RC(memc, set_str(memc, "n", "10", 0, 0), MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_increment(memc, "n", 1, 5, &val),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK(val == 15);
    HARNESS_CHECK_RC(memc, memcached_decrement(memc, "n", 1, 20, &val),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK(val == 0); /* decr stops at 0 */
    HARNESS_CHECK_RC(memc, set_str(memc, "n", "18446744073709551615", 0, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_increment(memc, "n", 1, 2, &val),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK(val == 1); /* incr wraps at 2^64 */
    HARNESS_CHECK_RC(memc, memcached_increment(memc, "nokey", 5, 1, &val),
                     MEMCACHED_NOTFOUND);
    HARNESS_CHECK_RC(memc, set_str(memc, "nn", "abc", 0, 0), MEMCACHED_SUCCESS);
    HARNESS_CHECK(memcached_increment(memc, "nn", 2, 1, &val) !=
                  MEMCACHED_SUCCESS);
    expect_value(memc, "nn", "abc", 0);

    HARNESS_CHECK_RC(memc, memcached_touch(memc, "k1", 2, 100),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_touch(memc, "nokey", 5, 100),
                     MEMCACHED_NOTFOUND);
    expect_value(memc, "k1", "again", 7);
    HARNESS_CHECK_RC(memc, memcached_exist(memc, "k1", 2), MEMCACHED_SUCCESS);
}

static void
test_gat_raw(const struct harness_server *srv, memcached_st *memc)
{
    char buf[512];
    int fd;

    HARNESS_CHECK_RC(memc, set_str(memc, "gk", "gv", 0, 5), MEMCACHED_SUCCESS);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    HARNESS_CHECK(harness_send_all(fd, "gat 100 gk nokey\r\n", 18) == 0);
    HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "END\r\n") > 0);
    if (strcmp(buf, "VALUE gk 5 2\r\ngv\r\nEND\r\n") != 0) {
        fprintf(stderr, "gat reply: [%s]\n", buf);
        harness_fail();
    }
    HARNESS_CHECK(harness_send_all(fd, "gats 100 gk\r\n", 13) == 0);
    HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "END\r\n") > 0);
    HARNESS_CHECK(strncmp(buf, "VALUE gk 5 2 ", 13) == 0);
    HARNESS_CHECK(strstr(buf, "\r\ngv\r\nEND\r\n") != NULL);
    close(fd);
}

static void
test_mget_many(memcached_st *memc)
{
    enum { NKEYS = 500 };
    char *keys[NKEYS];
    size_t lens[NKEYS];
    char seen[NKEYS];
    memcached_result_st *res;
    memcached_return_t rc;
    int got = 0;

    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < NKEYS; i++) {
        char val[64];

        keys[i] = malloc(40);
        HARNESS_CHECK(keys[i] != NULL);
        lens[i] = (size_t)snprintf(keys[i], 40, "mget:%d", i);
        if (i % 5 == 4) {
            continue; /* every fifth key is missing */
        }
        snprintf(val, sizeof(val), "value-%d", i * 7);
        HARNESS_CHECK_RC(memc,
                         memcached_set(memc, keys[i], lens[i], val, strlen(val),
                                       0, (uint32_t)i),
                         MEMCACHED_SUCCESS);
    }
    HARNESS_CHECK_RC(
            memc, memcached_mget(memc, (const char *const *)keys, lens, NKEYS),
            MEMCACHED_SUCCESS);
    while ((res = memcached_fetch_result(memc, NULL, &rc)) != NULL) {
        const char *k = memcached_result_key_value(res);
        char want[64];
        int i;

        HARNESS_CHECK(sscanf(k, "mget:%d", &i) == 1);
        HARNESS_CHECK(i >= 0 && i < NKEYS && i % 5 != 4 && !seen[i]);
        seen[i] = 1;
        snprintf(want, sizeof(want), "value-%d", i * 7);
        HARNESS_CHECK(memcached_result_length(res) == strlen(want));
        HARNESS_CHECK(memcmp(memcached_result_value(res), want, strlen(want)) ==
                      0);
        HARNESS_CHECK(memcached_result_flags(res) == (uint32_t)i);
        got++;
        memcached_result_free(res);
    }
    HARNESS_CHECK(got == NKEYS - NKEYS / 5);
    for (int i = 0; i < NKEYS; i++) {
        free(keys[i]);
    }
}

static void
test_large_default(memcached_st *memc)
{
    size_t n = 1024 * 1024 - 512; /* just under the 1 MiB default item limit */
    char *big = malloc(n);
    memcached_return_t rc;
    uint32_t flags;
    size_t len;
    char *v;

    HARNESS_CHECK(big != NULL);
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)(i * 131 + 7);
    }
    HARNESS_CHECK_RC(memc, memcached_set(memc, "big", 3, big, n, 0, 11),
                     MEMCACHED_SUCCESS);
    v = memcached_get(memc, "big", 3, &len, &flags, &rc);
    HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
    HARNESS_CHECK(len == n && flags == 11 && memcmp(v, big, n) == 0);
    free(v);
    free(big);
}

static void
test_item_limit(void)
{
    static const char *const args[] = {"-I", "2m", NULL};
    struct harness_server *srv = harness_create(args, 0);
    size_t limit = 2 * 1024 * 1024;
    size_t under = limit - 1024;
    size_t over = limit + 1;
    char *big = malloc(over);
    memcached_return_t rc;
    memcached_st *memc;
    uint32_t flags;
    size_t len;
    char *v;

    HARNESS_CHECK(big != NULL);
    memset(big, 'x', over);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    memc = harness_client(srv);
    /* 1 MiB and a little more must work once -I allows 2 MiB */
    HARNESS_CHECK_RC(memc,
                     memcached_set(memc, "m1", 2, big, 1024 * 1024 + 10, 0, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_set(memc, "under", 5, big, under, 0, 0),
                     MEMCACHED_SUCCESS);
    v = memcached_get(memc, "under", 5, &len, &flags, &rc);
    HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
    HARNESS_CHECK(len == under && memcmp(v, big, under) == 0);
    free(v);
    rc = memcached_set(memc, "over", 4, big, over, 0, 0);
    HARNESS_CHECK(rc != MEMCACHED_SUCCESS);
    memcached_free(memc);
    memc = harness_client(srv);
    v = memcached_get(memc, "over", 4, &len, &flags, &rc);
    HARNESS_CHECK(v == NULL && rc == MEMCACHED_NOTFOUND);
    /* the server survived and still serves */
    HARNESS_CHECK_RC(memc, memcached_set(memc, "after", 5, "ok", 2, 0, 0),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "after", "ok", 0);
    memcached_free(memc);
    free(big);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

static void
test_noreply(const struct harness_server *srv)
{
    memcached_st *memc = harness_client(srv);
    memcached_st *check = harness_client(srv);
    uint64_t val;

    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    for (int i = 0; i < 200; i++) {
        char key[32];
        char v[32];

        snprintf(key, sizeof(key), "nr:%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        HARNESS_CHECK_RC(memc, set_str(memc, key, v, 0, (uint32_t)i),
                         MEMCACHED_SUCCESS);
    }
    memcached_add(memc, "nr:0", 4, "no", 2, 0, 0);
    memcached_replace(memc, "nr:1", 4, "r1", 2, 0, 1);
    memcached_append(memc, "nr:2", 4, "+a", 2, 0, 0);
    memcached_prepend(memc, "nr:3", 4, "p+", 2, 0, 0);
    memcached_delete(memc, "nr:4", 4, 0);
    set_str(memc, "nr:n", "5", 0, 0);
    memcached_increment(memc, "nr:n", 4, 3, &val);
    memcached_decrement(memc, "nr:n", 4, 1, &val);
    /* a get in between must not be confused by missing replies */
    expect_value(memc, "nr:199", "v199", 199);
    memcached_flush_buffers(memc);

    expect_value(check, "nr:0", "v0", 0);
    expect_value(check, "nr:1", "r1", 1);
    expect_value(check, "nr:2", "v2+a", 2);
    expect_value(check, "nr:3", "p+v3", 3);
    expect_missing(check, "nr:4");
    expect_value(check, "nr:n", "7", 0);
    expect_value(check, "nr:150", "v150", 150);
    memcached_free(memc);
    memcached_free(check);
}

static void
test_version_stats(memcached_st *memc)
{
    memcached_return_t rc;
    memcached_stat_st *st;
    char **keys;
    int have_pid = 0;

    HARNESS_CHECK_RC(memc, memcached_version(memc), MEMCACHED_SUCCESS);
    st = memcached_stat(memc, NULL, &rc);
    HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
    HARNESS_CHECK(st != NULL);
    HARNESS_CHECK(st->pid > 0);
    HARNESS_CHECK(st->cmd_get > 0);
    HARNESS_CHECK(st->cmd_set > 0);
    keys = memcached_stat_get_keys(memc, st, &rc);
    HARNESS_CHECK(keys != NULL);
    for (int i = 0; keys[i] != NULL; i++) {
        if (strcmp(keys[i], "pid") == 0) {
            have_pid = 1;
        }
    }
    HARNESS_CHECK(have_pid);
    free(keys);
    memcached_stat_free(memc, st);
}

static void
test_expiry_and_flush(memcached_st *memc)
{
    HARNESS_CHECK_RC(memc, set_str(memc, "e:short", "x", 1, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, set_str(memc, "e:long", "y", 3600, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, set_str(memc, "e:neg", "z", -1, 0),
                     MEMCACHED_SUCCESS);
    expect_missing(memc, "e:neg");
    expect_value(memc, "e:short", "x", 0);
    HARNESS_CHECK_RC(memc, set_str(memc, "e:touched", "t", 1, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_touch(memc, "e:touched", 9, 3600),
                     MEMCACHED_SUCCESS);

    HARNESS_CHECK_RC(memc, set_str(memc, "f:1", "1", 0, 0), MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_flush(memc, 2), MEMCACHED_SUCCESS);
    /* a delayed flush leaves items alone until its time comes */
    expect_value(memc, "f:1", "1", 0);
    usleep(2200 * 1000);
    expect_missing(memc, "e:short");
    expect_missing(memc, "f:1");
    expect_missing(memc, "e:long");
    expect_missing(memc, "e:touched");
    /* items written after the delayed flush fired live on */
    HARNESS_CHECK_RC(memc, set_str(memc, "f:2", "2", 0, 0), MEMCACHED_SUCCESS);
    expect_value(memc, "f:2", "2", 0);
    HARNESS_CHECK_RC(memc, set_str(memc, "e:t2", "t2", 1, 0),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_touch(memc, "e:t2", 4, 3600),
                     MEMCACHED_SUCCESS);
    HARNESS_CHECK_RC(memc, memcached_flush(memc, 0), MEMCACHED_SUCCESS);
    expect_missing(memc, "f:2");
    expect_missing(memc, "e:t2");
    HARNESS_CHECK_RC(memc, set_str(memc, "f:3", "3", 0, 0), MEMCACHED_SUCCESS);
    expect_value(memc, "f:3", "3", 0);
}

static void
test_unix_socket(void)
{
    struct harness_server *srv = harness_create(NULL, 1);
    memcached_st *memc;
    struct stat st;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    HARNESS_CHECK(stat(srv->sock_path, &st) == 0 && S_ISSOCK(st.st_mode));
    memc = harness_client(srv);
    HARNESS_CHECK_RC(memc, memcached_set(memc, "u:1", 3, "via-unix", 8, 0, 3),
                     MEMCACHED_SUCCESS);
    expect_value(memc, "u:1", "via-unix", 3);
    HARNESS_CHECK((st.st_mode & 0777) == 0700); /* -a default */
    memcached_free(memc);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

int
main(void)
{
    struct harness_server *srv;
    memcached_st *memc;

    harness_init();
    srv = harness_create(NULL, 0);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    memc = harness_client(srv);

    test_storage_commands(memc);
    test_gat_raw(srv, memc);
    test_mget_many(memc);
    test_large_default(memc);
    test_noreply(srv);
    test_version_stats(memc);
    test_expiry_and_flush(memc);
    memcached_free(memc);
    HARNESS_CHECK(harness_alive(srv));
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);

    test_item_limit();
    test_unix_socket();
    printf("ok\n");
    return 0;
}
