/* bench_pipeget.c - pipelined text gets against a memcached-compatible
 * server, for bench_pipeline.sh: each connection sends DEPTH gets at once,
 * reads their DEPTH replies, and goes on. Keys are fixed width ("k:" and
 * eight digits) so that every hit's reply has a known length; a miss or a
 * wrong length stops the run with an error (a reply shorter than a hit's,
 * such as a miss's END, once RECV_TIMEOUT_S pass without the bytes a hit
 * would have sent). Not a test; built with the
 * tree so that it keeps compiling. Plain sockets and pthreads only.
 *
 *   bench_pipeget load PORT N VLEN
 *       set keys 0..N-1 (VLEN-byte values), pipelined, acknowledged
 *   bench_pipeget run PORT N VLEN CONNS DEPTH SECS
 *       random keys for SECS seconds; prints gets= and gets_per_s=
 *   bench_pipeget once PORT N VLEN CONNS DEPTH
 *       every key once, in a shuffled order split over the connections
 *       (a cold pass); prints gets=, secs= and gets_per_s=
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define KEY_FMT   "k:%08lu"
#define KEY_LEN   10
#define DEPTH_MAX 1024
/* far longer than a batch of cold reads takes, even from a slow disk */
#define RECV_TIMEOUT_S 10

static int port;
static unsigned long nkeys;
static unsigned vlen;
static unsigned depth;
static double secs;
static unsigned long *order; /* once: the shuffled keys */
static atomic_ulong next_once;
static atomic_ulong total_gets;
static atomic_bool failed;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
dial(void)
{
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
recv_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The reply to a hit: "VALUE k:NNNNNNNN 0 VLEN\r\n" value "\r\nEND\r\n". */
static size_t
reply_len(void)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "VALUE " KEY_FMT " 0 %u\r\n", 0UL,
                     vlen);
    return (size_t)n + vlen + 2 + 5;
}

static unsigned long
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (unsigned long)(*s % nkeys);
}

/* Send the keys of one batch and read their replies. */
static int
batch(int fd, const unsigned long *keys, unsigned n, char *req, char *rep,
      size_t rlen)
{
    size_t len = 0;

    for (unsigned i = 0; i < n; i++) {
        len += (size_t)sprintf(req + len, "get " KEY_FMT "\r\n", keys[i]);
    }
    if (send_all(fd, req, len) != 0 || recv_all(fd, rep, rlen * n) != 0) {
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        if (memcmp(rep + rlen * i, "VALUE ", 6) != 0 ||
            memcmp(rep + rlen * (i + 1) - 5, "END\r\n", 5) != 0) {
            return -1;
        }
    }
    return 0;
}

static void *
worker(void *arg)
{
    uint64_t seed = 88172645463325252ULL ^ (uint64_t)(uintptr_t)arg;
    size_t rlen = reply_len();
    char *req = malloc((size_t)depth * 32);
    char *rep = malloc(rlen * depth);
    unsigned long keys[DEPTH_MAX];
    int fd = dial();
    unsigned long done = 0;
    double end = now_s() + secs;

    if (fd < 0 || req == NULL || rep == NULL) {
        atomic_store(&failed, true);
        goto out;
    }
    for (;;) {
        unsigned n = 0;
        if (order != NULL) {
            unsigned long at = atomic_fetch_add(&next_once, depth);
            while (n < depth && at + n < nkeys) {
                keys[n] = order[at + n];
                n++;
            }
            if (n == 0) {
                break;
            }
        } else {
            if (now_s() >= end) {
                break;
            }
            for (; n < depth; n++) {
                keys[n] = rnd(&seed);
            }
        }
        if (batch(fd, keys, n, req, rep, rlen) != 0) {
            fprintf(stderr, "bench_pipeget: bad or missing reply\n");
            atomic_store(&failed, true);
            break;
        }
        done += n;
    }
    atomic_fetch_add(&total_gets, done);
out:
    if (fd >= 0) {
        close(fd);
    }
    free(req);
    free(rep);
    return NULL;
}

static int
load(void)
{
    char *val = malloc(vlen);
    char *buf = malloc(256 * (size_t)(vlen + 64));
    char rep[256 * 8];
    int fd = dial();
    int rc = 1;

    if (val == NULL || buf == NULL || fd < 0) {
        goto out;
    }
    memset(val, 'v', vlen);
    for (unsigned long k = 0; k < nkeys;) {
        size_t len = 0;
        unsigned n = 0;
        for (; n < 256 && k < nkeys; n++, k++) {
            len += (size_t)sprintf(buf + len, "set " KEY_FMT " 0 0 %u\r\n", k,
                                   vlen);
            memcpy(buf + len, val, vlen);
            len += vlen;
            memcpy(buf + len, "\r\n", 2);
            len += 2;
        }
        if (send_all(fd, buf, len) != 0 || recv_all(fd, rep, 8 * n) != 0) {
            goto out;
        }
        for (unsigned i = 0; i < n; i++) {
            if (memcmp(rep + 8 * i, "STORED\r\n", 8) != 0) {
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    free(val);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "bench_pipeget: load failed\n");
    }
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 5) {
        goto usage;
    }
    port = atoi(argv[2]);
    nkeys = strtoul(argv[3], NULL, 10);
    vlen = (unsigned)strtoul(argv[4], NULL, 10);
    if (nkeys == 0 || nkeys > 100000000UL) {
        goto usage;
    }
    if (strcmp(argv[1], "load") == 0) {
        return load();
    }
    bool once = strcmp(argv[1], "once") == 0;
    if (!once && strcmp(argv[1], "run") != 0) {
        goto usage;
    }
    if (argc < (once ? 7 : 8)) {
        goto usage;
    }
    unsigned conns = (unsigned)atoi(argv[5]);
    depth = (unsigned)atoi(argv[6]);
    secs = once ? 0 : atof(argv[7]);
    if (conns == 0 || conns > 1024 || depth == 0 || depth > DEPTH_MAX) {
        goto usage;
    }
    if (once) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL;
        order = malloc(nkeys * sizeof(*order));
        if (order == NULL) {
            return 1;
        }
        for (unsigned long i = 0; i < nkeys; i++) {
            order[i] = i;
        }
        for (unsigned long i = nkeys - 1; i > 0; i--) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            unsigned long j = (unsigned long)(seed % (i + 1));
            unsigned long t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    pthread_t *tids = calloc(conns, sizeof(*tids));
    if (tids == NULL) {
        return 1;
    }
    double t0 = now_s();
    for (unsigned i = 0; i < conns; i++) {
        pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    }
    for (unsigned i = 0; i < conns; i++) {
        pthread_join(tids[i], NULL);
    }
    double took = now_s() - t0;
    unsigned long gets = atomic_load(&total_gets);
    printf("gets=%lu\nsecs=%.3f\ngets_per_s=%.0f\n", gets, took,
           took > 0 ? (double)gets / took : 0.0);
    free(tids);
    free(order);
    return atomic_load(&failed) ? 1 : 0;
usage:
    fprintf(stderr, "usage: bench_pipeget load PORT N VLEN\n"
                    "       bench_pipeget run PORT N VLEN CONNS DEPTH SECS\n"
                    "       bench_pipeget once PORT N VLEN CONNS DEPTH\n");
    return 2;
}
