/* bench_tls.c - a get-heavy load client over TLS (or plain TCP) for
 * bench_tls.sh: CONC threads, one connection each, request/reply in turn
 * for SECS seconds; 90% get / 10% set of 32-byte keys over KEYS keys with
 * 100-byte values (the keys are loaded first). Prints ops=N and ops_s=N.
 * Not part of make check. Loopback only.
 *
 * Usage: bench_tls PORT SECS CONC KEYS tls|plain
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VALUE_LEN 100

static int port, secs, conc, nkeys;
static bool use_tls;
static SSL_CTX *ctx;
static atomic_ullong total_ops;
static atomic_int failed;

struct link {
    int fd;
    SSL *ssl;
};

static int
link_open(struct link *l)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l->ssl = NULL;
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (l->fd < 0 || connect(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        return -1;
    }
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!use_tls) {
        return 0;
    }
    l->ssl = SSL_new(ctx);
    SSL_set_fd(l->ssl, l->fd);
    return SSL_connect(l->ssl) == 1 ? 0 : -1;
}

static void
link_close(struct link *l)
{
    if (l->ssl != NULL) {
        SSL_shutdown(l->ssl);
        SSL_free(l->ssl);
    }
    if (l->fd >= 0) {
        close(l->fd);
    }
}

static int
send_all(struct link *l, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = l->ssl ? SSL_write(l->ssl, p, (int)n) : write(l->fd, p, n);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until the reply ends with end (a get: END, a set: STORED). */
static int
recv_reply(struct link *l, char *buf, size_t cap, const char *end)
{
    size_t have = 0, elen = strlen(end);

    for (;;) {
        ssize_t r = l->ssl ? SSL_read(l->ssl, buf + have, (int)(cap - have))
                           : read(l->fd, buf + have, cap - have);
        if (r <= 0) {
            return -1;
        }
        have += (size_t)r;
        if (have >= elen && memcmp(buf + have - elen, end, elen) == 0) {
            return 0;
        }
        if (have == cap) {
            return -1;
        }
    }
}

static int
do_set(struct link *l, unsigned k, char *buf, size_t cap)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "set key:%027u 0 0 %d\r\n", k,
                     VALUE_LEN);

    memset(req + n, 'v', VALUE_LEN);
    memcpy(req + n + VALUE_LEN, "\r\n", 2);
    if (send_all(l, req, (size_t)n + VALUE_LEN + 2) < 0) {
        return -1;
    }
    return recv_reply(l, buf, cap, "STORED\r\n");
}

static void *
worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    struct link l;
    char buf[4096];
    struct timespec t0, now;
    unsigned long long ops = 0;

    if (link_open(&l) < 0) {
        atomic_store(&failed, 1);
        link_close(&l);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        unsigned k = (unsigned)rand_r(&seed) % (unsigned)nkeys;
        int rc;
        if (rand_r(&seed) % 10 == 0) {
            rc = do_set(&l, k, buf, sizeof(buf));
        } else {
            char req[64];
            int n = snprintf(req, sizeof(req), "get key:%027u\r\n", k);
            rc = send_all(&l, req, (size_t)n);
            if (rc == 0) {
                rc = recv_reply(&l, buf, sizeof(buf), "END\r\n");
            }
        }
        if (rc < 0) {
            atomic_store(&failed, 1);
            break;
        }
        ops++;
        if ((ops & 63) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec >= secs) {
                break;
            }
        }
    }
    atomic_fetch_add(&total_ops, ops);
    link_close(&l);
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t *th;
    struct link l;
    char buf[4096];
    struct timespec t0, t1;
    double el;

    if (argc != 6) {
        fprintf(stderr, "usage: bench_tls PORT SECS CONC KEYS tls|plain\n");
        return 2;
    }
    port = atoi(argv[1]);
    secs = atoi(argv[2]);
    conc = atoi(argv[3]);
    nkeys = atoi(argv[4]);
    use_tls = strcmp(argv[5], "tls") == 0;
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* loopback bench */
    if (link_open(&l) < 0) {
        fprintf(stderr, "bench_tls: cannot connect to port %d\n", port);
        return 1;
    }
    for (int k = 0; k < nkeys; k++) {
        if (do_set(&l, (unsigned)k, buf, sizeof(buf)) < 0) {
            fprintf(stderr, "bench_tls: loading the keys failed\n");
            return 1;
        }
    }
    link_close(&l);
    th = calloc((size_t)conc, sizeof(*th));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < conc; i++) {
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
    }
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    el = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("ops=%llu\nops_s=%.0f\n", (unsigned long long)total_ops,
           (double)total_ops / el);
    SSL_CTX_free(ctx);
    free(th);
    return atomic_load(&failed) ? 1 : 0;
}
