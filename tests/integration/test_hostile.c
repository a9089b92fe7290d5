/* test_hostile.c - clients that misbehave must not hurt the server or other
 * connections: one that pipelines gets and never reads the replies (the
 * server must stop reading it or close it, not buffer without bound), ones
 * that vanish in the middle of a value, and ones that send binary junk or
 * HTTP request lines (they get errors or are closed; the server stays up),
 * and clients past the -c connection limit (memcached's error, then closed).
 * Depends on the harness and libmemcached only. */
#include <config.h>

#include "tests/integration/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BIG_VALUE 4000

/* Another connection still gets served. */
static void
check_others_work(struct harness_server *srv, const char *tag)
{
    memcached_st *memc = harness_client(srv);
    memcached_return_t rc;
    uint32_t flags;
    size_t len;
    char *v;

    rc = memcached_set(memc, "other", 5, tag, strlen(tag), 0, 0);
    if (rc != MEMCACHED_SUCCESS) {
        fprintf(stderr, "%s: another client's set failed: %s\n", tag,
                memcached_strerror(memc, rc));
        harness_fail();
    }
    v = memcached_get(memc, "other", 5, &len, &flags, &rc);
    HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
    HARNESS_CHECK(len == strlen(tag) && memcmp(v, tag, len) == 0);
    free(v);
    memcached_free(memc);
    HARNESS_CHECK(harness_alive(srv));
}

static void
test_never_reads(struct harness_server *srv)
{
    /* Every 8-byte request asks for a ~4 KB reply: a server that kept
     * reading without writing would have to buffer 500 times what we send. */
    static const size_t max_send = 64u * 1024 * 1024;
    static char reqs[8 * 1024];
    char val[BIG_VALUE];
    memcached_st *memc = harness_client(srv);
    long rss_before;
    long rss_after;
    size_t sent = 0;
    int blocked = 0;
    int closed = 0;
    int fd;

    memset(val, 'v', sizeof(val));
    HARNESS_CHECK_RC(memc,
                     memcached_set(memc, "bigv", 4, val, sizeof(val), 0, 0),
                     MEMCACHED_SUCCESS);
    memcached_free(memc);
    for (size_t i = 0; i + 10 <= sizeof(reqs); i += 10) {
        memcpy(reqs + i, "get bigv\r\n", 10);
    }
    rss_before = harness_rss_kb(srv->pid);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    HARNESS_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    while (sent < max_send && !blocked && !closed) {
        ssize_t n =
                send(fd, reqs, sizeof(reqs) - sizeof(reqs) % 10, MSG_NOSIGNAL);

        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};

            /* The server has stopped reading us if the socket stays full. */
            if (poll(&pfd, 1, 1500) == 0) {
                blocked = 1;
            } else if (pfd.revents & (POLLERR | POLLHUP)) {
                closed = 1;
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            closed = 1;
        }
    }
    if (!blocked && !closed) {
        fprintf(stderr,
                "the server read %zu bytes of gets from a client that "
                "never reads replies\n",
                sent);
        harness_fail();
    }
    check_others_work(srv, "while a client is not reading");
    rss_after = harness_rss_kb(srv->pid);
    printf("non-reading client: sent %zu bytes, %s; rss %ld -> %ld kB\n", sent,
           blocked ? "server stopped reading" : "server closed it", rss_before,
           rss_after);
    /* Buffering every reply would be far beyond this. */
    HARNESS_CHECK(rss_after - rss_before < 256 * 1024);
    close(fd);
    check_others_work(srv, "after the non-reading client left");
}

static void
test_vanish_mid_value(struct harness_server *srv)
{
    static char half[50000];

    memset(half, 'h', sizeof(half));
    for (int i = 0; i < 20; i++) {
        char line[64];
        int fd = harness_connect(srv);
        int n;

        HARNESS_CHECK(fd >= 0);
        n = snprintf(line, sizeof(line), "set vanish:%d 0 0 100000\r\n", i);
        HARNESS_CHECK(harness_send_all(fd, line, (size_t)n) == 0);
        HARNESS_CHECK(harness_send_all(fd, half, sizeof(half)) == 0);
        if (i % 2 == 1) {
            /* abort with RST instead of FIN */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};

            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    check_others_work(srv, "after clients vanished mid-value");
    {
        memcached_st *memc = harness_client(srv);
        memcached_return_t rc;
        uint32_t flags;
        size_t len;
        char *v = memcached_get(memc, "vanish:0", 8, &len, &flags, &rc);

        HARNESS_CHECK(v == NULL && rc == MEMCACHED_NOTFOUND);
        memcached_free(memc);
    }
}

/* Send junk, then read until the server closes or goes quiet. Returns what it
 * replied (NUL-terminated) in out. */
static void
send_junk(struct harness_server *srv, const void *junk, size_t len, char *out,
          size_t cap)
{
    int fd = harness_connect(srv);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    size_t have = 0;

    HARNESS_CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    harness_send_all(fd, junk, len); /* the server may close early */
    for (;;) {
        ssize_t n = recv(fd, out + have, cap - 1 - have, 0);

        if (n <= 0 || have + (size_t)n >= cap - 1) {
            break;
        }
        have += (size_t)n;
    }
    out[have] = '\0';
    close(fd);
}

static void
test_junk(struct harness_server *srv)
{
    static const char *const lines[] = {
            "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\n\r\n",
            "POST /cache HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
            "\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00"
            "\x00\x00\x00\x00\x00\x00\x00\x00hello",
            "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "set k 0 0 99999999999999999999999\r\n",
            "get \x01\x02\x03\r\n",
    };
    static char random_junk[256 * 1024];
    static char reply[64 * 1024];
    uint32_t x = 12345;

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        send_junk(srv, lines[i], strlen(lines[i]) + (i == 2 ? 29 : 0), reply,
                  sizeof(reply));
        /* Either nothing (closed) or error lines, never a crash; a server
         * that speaks the binary protocol may answer in it (magic 0x81). */
        if (reply[0] != '\0' && (unsigned char)reply[0] != 0x81 &&
            strstr(reply, "ERROR") == NULL && strstr(reply, "END") == NULL) {
            fprintf(stderr, "junk %zu: unexpected reply [%s]\n", i, reply);
            harness_fail();
        }
        HARNESS_CHECK(harness_alive(srv));
    }
    for (size_t i = 0; i < sizeof(random_junk); i++) {
        x = x * 1103515245u + 12345u;
        random_junk[i] = (char)(x >> 16);
    }
    send_junk(srv, random_junk, sizeof(random_junk), reply, sizeof(reply));
    /* and junk without any newline at all */
    for (size_t i = 0; i < sizeof(random_junk); i++) {
        if (random_junk[i] == '\n') {
            random_junk[i] = 'n';
        }
    }
    send_junk(srv, random_junk, sizeof(random_junk), reply, sizeof(reply));
    check_others_work(srv, "after junk");
}

/* Past -c, a new client gets memcached's error line and is closed; the ones
 * already in keep working, and once they leave new clients get in again. */
static void
test_conn_limit(void)
{
    enum { LIMIT = 32, TRIES = 60 };
    static const char *const args[] = {"-c", "32", "-t", "2", NULL};
    static const char too_many[] = "ERROR Too many open connections\r\n";
    struct harness_server *srv = harness_create(args, 0);
    int fds[TRIES];
    int served = 0;
    int rejected = 0;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    for (int i = 0; i < TRIES; i++) {
        char buf[256];
        ssize_t n;

        fds[i] = harness_connect(srv);
        HARNESS_CHECK(fds[i] >= 0);
        HARNESS_CHECK(harness_send_all(fds[i], "version\r\n", 9) == 0 ||
                      errno == EPIPE || errno == ECONNRESET);
        n = harness_recv_until(fds[i], buf, sizeof(buf), "\r\n");
        if (n > 0 && strncmp(buf, "VERSION ", 8) == 0) {
            served++;
        } else if (n > 0 && strcmp(buf, too_many) == 0) {
            rejected++;
            /* and then the server closes it */
            HARNESS_CHECK(recv(fds[i], buf, sizeof(buf), 0) <= 0);
        } else {
            fprintf(stderr, "connection %d: unexpected reply [%s]\n", i,
                    n > 0 ? buf : "(none)");
            harness_fail();
        }
    }
    printf("-c %d: %d of %d connections served, %d rejected\n", LIMIT, served,
           TRIES, rejected);
    HARNESS_CHECK(served > 0 && served <= LIMIT);
    HARNESS_CHECK(served + rejected == TRIES);
    for (int i = 0; i < TRIES; i++) {
        close(fds[i]);
    }
    usleep(200 * 1000);
    check_others_work(srv, "after the connection limit was hit");
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

int
main(void)
{
    struct harness_server *srv;

    harness_init();
    srv = harness_create(NULL, 0);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    test_vanish_mid_value(srv);
    test_junk(srv);
    test_never_reads(srv);
    HARNESS_CHECK(harness_alive(srv));
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
    test_conn_limit();
    printf("ok\n");
    return 0;
}
