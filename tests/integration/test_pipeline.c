/* test_pipeline.c - pipelined input over raw sockets: thousands of sets in
 * one burst, so that requests straddle every read-buffer boundary, must all
 * be STORED; and noreply sets followed at once by a close (what a batch
 * loader or `nc -q0` does) must all be applied, as memcached applies every
 * request it received before the FIN. Depends on the harness only. */
#include <config.h>

#include "tests/integration/harness.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NSETS 2000
#define VLEN  100

static char *
build_sets(const char *prefix, int noreply, size_t *len)
{
    size_t cap = (size_t)NSETS * (VLEN + 64);
    char *buf = malloc(cap);
    char val[VLEN + 1];
    size_t off = 0;

    HARNESS_CHECK(buf != NULL);
    memset(val, 'p', VLEN);
    val[VLEN] = '\0';
    for (int i = 0; i < NSETS; i++) {
        off += (size_t)snprintf(buf + off, cap - off,
                                "set %s:%d 0 0 %d%s\r\n%s\r\n", prefix, i, VLEN,
                                noreply ? " noreply" : "", val);
    }
    *len = off;
    return buf;
}

/* How many of prefix:0 .. prefix:NSETS-1 exist, asked on a new connection. */
static int
count_present(struct harness_server *srv, const char *prefix)
{
    static char reply[NSETS * (VLEN + 64)];
    char cmd[64 * 100 + 16];
    int fd = harness_connect(srv);
    int found = 0;

    HARNESS_CHECK(fd >= 0);
    for (int base = 0; base < NSETS; base += 100) {
        size_t off = (size_t)snprintf(cmd, sizeof(cmd), "get");

        for (int i = base; i < base + 100; i++) {
            off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " %s:%d",
                                    prefix, i);
        }
        off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "\r\n");
        HARNESS_CHECK(harness_send_all(fd, cmd, off) == 0);
        HARNESS_CHECK(harness_recv_until(fd, reply, sizeof(reply), "END\r\n") >
                      0);
        for (char *p = reply; (p = strstr(p, "VALUE ")) != NULL; p += 6) {
            found++;
        }
    }
    close(fd);
    return found;
}

static void
test_burst_of_sets(struct harness_server *srv)
{
    static char reply[NSETS * 8 + 64];
    size_t len;
    char *buf = build_sets("burst", 0, &len);
    int fd = harness_connect(srv);
    size_t have = 0;
    int stored = 0;

    HARNESS_CHECK(fd >= 0);
    HARNESS_CHECK(harness_send_all(fd, buf, len) == 0);
    /* NSETS replies of "STORED\r\n" are exactly NSETS * 8 bytes */
    while (have < (size_t)NSETS * 8) {
        ssize_t n = recv(fd, reply + have, sizeof(reply) - 1 - have, 0);

        if (n <= 0) {
            break;
        }
        have += (size_t)n;
    }
    reply[have] = '\0';
    for (char *p = reply; (p = strstr(p, "STORED\r\n")) != NULL; p += 8) {
        stored++;
    }
    if (stored != NSETS || have != (size_t)NSETS * 8) {
        char *bad = strstr(reply, "ERROR");

        fprintf(stderr,
                "burst of %d pipelined sets (%zu bytes): %d STORED, "
                "%zu reply bytes; first ERROR at reply byte %ld\n",
                NSETS, len, stored, have,
                bad != NULL ? (long)(bad - reply) : -1L);
        harness_fail();
    }
    close(fd);
    HARNESS_CHECK(count_present(srv, "burst") == NSETS);
    free(buf);
}

static void
test_noreply_then_close(struct harness_server *srv)
{
    size_t len;
    char *buf = build_sets("fin", 1, &len);
    int fd = harness_connect(srv);
    int found = 0;

    HARNESS_CHECK(fd >= 0);
    HARNESS_CHECK(harness_send_all(fd, buf, len) == 0);
    close(fd);
    /* give the server time to work through what it received */
    for (int tries = 0; tries < 20; tries++) {
        found = count_present(srv, "fin");
        if (found == NSETS) {
            break;
        }
        usleep(100000);
    }
    if (found != NSETS) {
        fprintf(stderr, "%d noreply sets sent, then close: %d applied\n", NSETS,
                found);
        harness_fail();
    }
    free(buf);
}

int
main(void)
{
    struct harness_server *srv;

    harness_init();
    srv = harness_create(NULL, 0);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    test_burst_of_sets(srv);
    test_noreply_then_close(srv);
    HARNESS_CHECK(harness_alive(srv));
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
    printf("ok\n");
    return 0;
}
