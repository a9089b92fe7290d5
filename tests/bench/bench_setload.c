/* bench_setload.c - a closed-loop load client for the --sync=always figures
 * (tests/bench/bench_sync.sh): N connections over epoll, each with one
 * request in flight, sending sets of fixed-size values to a memcached
 * text-protocol server (`set`) or a Redis server (RESP `SET`), optionally
 * mixed with gets, and recording every request's latency. Not part of make
 * check; standard C and Linux only.
 *
 *   bench_setload [-P mc|redis] [-p PORT] [-c CONNS] [-s SECS] [-v VALUE]
 *                 [-k KEYS] [-g GET_PERCENT] [-w WARMUP_SECS] [-b]
 *
 * Keys are "key:%012u"; with -b "bench:%u", as bench_load loads them.
 *
 * Prints name=value lines: ops_total (every reply, warm-up included), ops,
 * ops_s, sets, gets, errors, p50_us, p99_us,
 * p999_us (all requests), get_p50_us, get_p99_us, get_p999_us, and
 * client_cpu_us_per_op (this process's user and system CPU per reply of
 * ops_total: on a machine the client shares with the server, what it
 * leaves the server).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum proto { MC, REDIS };

struct lat {
    uint32_t *us;
    size_t n, cap;
};

struct cn {
    int fd;
    char out[4096];
    size_t olen, osent;
    char in[8192];
    size_t ilen;
    bool is_get;
    uint64_t t0_ns;
    uint64_t seq;
};

static enum proto proto = MC;
static int port = 11211;
static int nconns = 50;
static double secs = 10;
static double warmup = 1;
static size_t vlen = 100;
static unsigned nkeys = 100000;
static bool bench_keys; /* -b: bench_load's key names */
static unsigned get_pct;
static char *value;
static uint64_t rng = 88172645463325252ull;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void
lat_add(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1 << 16;
        l->us = realloc(l->us, l->cap * sizeof(*l->us));
        if (l->us == NULL) {
            perror("realloc");
            exit(1);
        }
    }
    uint64_t us = ns / 1000;
    l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t
pct(struct lat *l, double p)
{
    if (l->n == 0) {
        return 0;
    }
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return l->us[i];
}

/* Build the next request of c into its output buffer. */
static void
next_req(struct cn *c)
{
    char key[48];
    int klen = snprintf(key, sizeof(key), bench_keys ? "bench:%u" : "key:%012u",
                        (unsigned)(xorshift() % nkeys));
    c->is_get = get_pct > 0 && xorshift() % 100 < get_pct;
    int n;
    if (proto == MC) {
        if (c->is_get) {
            n = snprintf(c->out, sizeof(c->out), "get %s\r\n", key);
        } else {
            n = snprintf(c->out, sizeof(c->out), "set %s 0 0 %zu\r\n", key,
                         vlen);
            memcpy(c->out + n, value, vlen);
            n += (int)vlen;
            memcpy(c->out + n, "\r\n", 2);
            n += 2;
        }
    } else if (c->is_get) {
        n = snprintf(c->out, sizeof(c->out), "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
                     klen, key);
    } else {
        n = snprintf(c->out, sizeof(c->out),
                     "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", klen, key,
                     vlen);
        memcpy(c->out + n, value, vlen);
        n += (int)vlen;
        memcpy(c->out + n, "\r\n", 2);
        n += 2;
    }
    c->olen = (size_t)n;
    c->osent = 0;
    c->ilen = 0;
    c->t0_ns = now_ns();
}

/* Is a whole reply in c->in? 1 yes (ok), -1 yes (an error reply), 0 no. */
static int
reply_done(struct cn *c)
{
    const char *b = c->in;
    size_t n = c->ilen;
    const char *nl = memchr(b, '\n', n);
    if (nl == NULL) {
        return 0;
    }
    size_t l1 = (size_t)(nl - b) + 1;
    if (proto == MC) {
        if (!c->is_get) {
            return strncmp(b, "STORED", 6) == 0 ? 1 : -1;
        }
        if (strncmp(b, "END", 3) == 0) {
            return 1;
        }
        if (strncmp(b, "VALUE", 5) != 0) {
            return -1;
        }
        /* VALUE k f len\r\n data\r\n END\r\n */
        const char *sp = memrchr(b, ' ', l1);
        size_t len = sp ? strtoul(sp + 1, NULL, 10) : 0;
        return n >= l1 + len + 2 + 5 ? 1 : 0;
    }
    if (b[0] == '+') {
        return 1;
    }
    if (b[0] == '-') {
        return -1;
    }
    if (b[0] == '$') {
        long len = strtol(b + 1, NULL, 10);
        if (len < 0) {
            return 1;
        }
        return n >= l1 + (size_t)len + 2 ? 1 : 0;
    }
    return -1;
}

static int
connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Write what the socket takes of c's request. */
static void
send_some(struct cn *c)
{
    while (c->osent < c->olen) {
        ssize_t w = write(c->fd, c->out + c->osent, c->olen - c->osent);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            perror("write");
            exit(1);
        }
        c->osent += (size_t)w;
    }
}

int
main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "P:p:c:s:v:k:g:w:b")) != -1) {
        switch (opt) {
        case 'P':
            proto = strcmp(optarg, "redis") == 0 ? REDIS : MC;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 's':
            secs = atof(optarg);
            break;
        case 'v':
            vlen = (size_t)atoi(optarg);
            break;
        case 'k':
            nkeys = (unsigned)atoi(optarg);
            break;
        case 'g':
            get_pct = (unsigned)atoi(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'b':
            bench_keys = true;
            break;
        default:
            fprintf(stderr, "usage: see the header of bench_setload.c\n");
            return 2;
        }
    }
    if (nconns < 1 || vlen < 1 || vlen > 3000 || nkeys < 1) {
        fprintf(stderr, "bench_setload: bad arguments\n");
        return 2;
    }
    value = malloc(vlen);
    for (size_t i = 0; i < vlen; i++) {
        value[i] = (char)('a' + i % 26);
    }
    int ep = epoll_create1(0);
    struct cn *cs = calloc((size_t)nconns, sizeof(*cs));
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = connect_one();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    struct lat all = {0}, gets = {0};
    uint64_t ops = 0, nsets = 0, ngets = 0, errors = 0, total = 0;
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(secs * 1e9);
    for (int i = 0; i < nconns; i++) {
        next_req(&cs[i]);
        send_some(&cs[i]);
    }
    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end) {
            break;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct cn *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, c->in + c->ilen, sizeof(c->in) - c->ilen);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                    continue;
                }
                fprintf(stderr, "bench_setload: connection lost\n");
                return 1;
            }
            c->ilen += (size_t)r;
            int d = reply_done(c);
            if (d == 0) {
                continue;
            }
            uint64_t t1 = now_ns();
            total++;
            if (c->t0_ns >= measure_from && t1 < end) {
                ops++;
                lat_add(&all, t1 - c->t0_ns);
                if (c->is_get) {
                    ngets++;
                    lat_add(&gets, t1 - c->t0_ns);
                } else {
                    nsets++;
                }
                if (d < 0) {
                    errors++;
                }
            }
            next_req(c);
            send_some(c);
        }
    }
    qsort(all.us, all.n, sizeof(*all.us), cmp_u32);
    qsort(gets.us, gets.n, sizeof(*gets.us), cmp_u32);
    printf("ops_total=%llu\n", (unsigned long long)total);
    printf("ops=%llu\nops_s=%.0f\nsets=%llu\ngets=%llu\nerrors=%llu\n",
           (unsigned long long)ops, (double)ops / secs,
           (unsigned long long)nsets, (unsigned long long)ngets,
           (unsigned long long)errors);
    printf("p50_us=%u\np99_us=%u\np999_us=%u\n", pct(&all, 0.5),
           pct(&all, 0.99), pct(&all, 0.999));
    printf("get_p50_us=%u\nget_p99_us=%u\nget_p999_us=%u\n", pct(&gets, 0.5),
           pct(&gets, 0.99), pct(&gets, 0.999));
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && total > 0) {
        double us =
                (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
                (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
        printf("client_cpu_us_per_op=%.1f\n", us / (double)total);
    }
    for (int i = 0; i < nconns; i++) {
        close(cs[i].fd);
    }
    free(cs);
    free(all.us);
    free(gets.us);
    free(value);
    close(ep);
    return 0;
}
