/* test_hostile_load.c - hostile volumes (issue 12): while one kind of
 * abusive client runs, the server's resident memory (read from /proc) stays
 * bounded and a well-behaved client on another connection keeps getting
 * answers within a bound (a scenario that misses it runs again, up to three
 * times: see p99_missed). Scenarios: one multi-get of 300 copies of a 1 MiB
 * value; 200 clients that pipeline large multi-gets and never read; 3000
 * connections against a lowered descriptor limit (prlimit on the server);
 * one pipelined flood sharing a worker with a latency-sensitive client. Also
 * the output budget, the idle timeout of a paused connection, and a damaged
 * record inside a multi-get. Each prints the figures it measured. Depends
 * on the harness only. */
#include <config.h>

#include "tests/integration/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024)

/* Under AddressSanitizer (the server is built the same way as this test)
 * freed memory sits in ASan's quarantine and malloc_trim does nothing, so
 * RSS says nothing about our bounds: those builds check everything else. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECK(cond) ((void)0)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECK(cond) ((void)0)
#endif
#endif
#ifndef RSS_CHECK
#define RSS_CHECK(cond) HARNESS_CHECK(cond)
#endif

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* utime + stime of pid in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
    char path[64];
    char buf[1024];
    unsigned long ut = 0, st = 0;
    char *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2) {
        return -1;
    }
    return (long)(ut + st);
}

/* ---- background samplers: peak RSS, and a well-behaved client ---- */

struct watch {
    struct harness_server *srv;
    pthread_t rss_tid, probe_tid;
    atomic_bool stop;
    long rss_peak_kb;
    /* probe: one round trip at a time on its own connection */
    double lat_ms[100000];
    size_t nlat;
    unsigned errors;
};

static void *
rss_main(void *arg)
{
    struct watch *w = arg;

    while (!atomic_load(&w->stop)) {
        long kb = harness_rss_kb(w->srv->pid);
        if (kb > w->rss_peak_kb) {
            w->rss_peak_kb = kb;
        }
        usleep(10 * 1000);
    }
    return NULL;
}

/* The well-behaved client: a get of a small key, then a set, in turn, each
 * timed, with a short pause between requests. */
static void *
probe_main(void *arg)
{
    struct watch *w = arg;
    int fd = harness_connect(w->srv);
    unsigned i = 0;

    if (fd < 0) {
        w->errors++;
        return NULL;
    }
    while (!atomic_load(&w->stop) &&
           w->nlat < sizeof(w->lat_ms) / sizeof(w->lat_ms[0])) {
        char buf[256];
        const char *req, *end;
        double t0 = now_ms();
        ssize_t n;

        if (i++ % 2 == 0) {
            req = "get probe\r\n";
            end = "END\r\n";
        } else {
            req = "set probe 0 0 5\r\nhello\r\n";
            end = "\r\n";
        }
        if (harness_send_all(fd, req, strlen(req)) != 0) {
            w->errors++;
            break;
        }
        n = harness_recv_until(fd, buf, sizeof(buf), end);
        if (n <= 0 || strstr(buf, "ERROR") != NULL) {
            fprintf(stderr, "probe: [%s]\n", n > 0 ? buf : "(no reply)");
            w->errors++;
            break;
        }
        w->lat_ms[w->nlat] = now_ms() - t0;
        if (getenv("HOSTILE_SLOW") != NULL && w->lat_ms[w->nlat] > 100) {
            fprintf(stderr, "slow: %s %.1f ms at %.0f\n", req,
                    w->lat_ms[w->nlat], t0);
        }
        w->nlat++;
        usleep(2000);
    }
    close(fd);
    return NULL;
}

static void
watch_start(struct watch *w, struct harness_server *srv)
{
    memset(w, 0, sizeof(*w));
    w->srv = srv;
    w->rss_peak_kb = harness_rss_kb(srv->pid);
    HARNESS_CHECK(pthread_create(&w->rss_tid, NULL, rss_main, w) == 0);
    HARNESS_CHECK(pthread_create(&w->probe_tid, NULL, probe_main, w) == 0);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Whether a scenario's well-behaved client missed its p99 bound. A busy
 * machine (other builds and tests on two cores) can stall the probe or the
 * server for longer than the bound now and then, which says nothing about
 * the server; a server that starves the client misses it every time. So a
 * scenario that misses it is run again (main), and fails only when it
 * misses it in every one of TRIES runs. */
#define TRIES 3
static bool p99_missed;

/* Stop both threads; check the probe's answers; print the figures. */
static void
watch_stop(struct watch *w, const char *tag, double p99_bound_ms)
{
    double p50, p99, max;

    atomic_store(&w->stop, true);
    pthread_join(w->rss_tid, NULL);
    pthread_join(w->probe_tid, NULL);
    if (w->errors != 0 || w->nlat < 10) {
        fprintf(stderr,
                "%s: the well-behaved client got %zu answers, %u "
                "errors\n",
                tag, w->nlat, w->errors);
        harness_fail();
    }
    qsort(w->lat_ms, w->nlat, sizeof(double), cmp_double);
    p50 = w->lat_ms[w->nlat / 2];
    p99 = w->lat_ms[w->nlat * 99 / 100];
    max = w->lat_ms[w->nlat - 1];
    printf("%s: peak rss %ld kB; other client: %zu requests, p50 %.2f ms, "
           "p99 %.2f ms, max %.2f ms\n",
           tag, w->rss_peak_kb, w->nlat, p50, p99, max);
    if (p99 > p99_bound_ms) {
        fprintf(stderr, "%s: p99 %.2f ms above %.0f ms\n", tag, p99,
                p99_bound_ms);
        p99_missed = true;
    }
}

/* ---- helpers ---- */

/* A value of the stats reply, or -1. */
static long long
stat_value(struct harness_server *srv, const char *name)
{
    /* memcached's figures in `stats`, bitcached's own in `stats bitcached` */
    static const char *const groups[] = {"stats\r\n", "stats bitcached\r\n"};
    static char buf[16384];
    char pat[96];
    long long v = -1;

    snprintf(pat, sizeof(pat), "STAT %s ", name);
    for (size_t i = 0; i < 2 && v < 0; i++) {
        int fd = harness_connect(srv);
        char *p;

        HARNESS_CHECK(fd >= 0);
        HARNESS_CHECK(harness_send_all(fd, groups[i], strlen(groups[i])) == 0);
        HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "END\r\n") > 0);
        close(fd);
        p = strstr(buf, pat);
        if (p != NULL) {
            v = atoll(p + strlen(pat));
        }
    }
    return v;
}

static void
set_value(int fd, const char *key, size_t len)
{
    static char val[1024 * 1024];
    char line[128];
    char reply[64];
    int n;

    memset(val, 'v', len);
    n = snprintf(line, sizeof(line), "set %s 0 0 %zu\r\n", key, len);
    HARNESS_CHECK(harness_send_all(fd, line, (size_t)n) == 0);
    HARNESS_CHECK(harness_send_all(fd, val, len) == 0);
    HARNESS_CHECK(harness_send_all(fd, "\r\n", 2) == 0);
    HARNESS_CHECK(harness_recv_until(fd, reply, sizeof(reply), "\r\n") > 0);
    HARNESS_CHECK(strcmp(reply, "STORED\r\n") == 0);
}

static int
connect_nonblock(const struct harness_server *srv)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)srv->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- 1. one multi-get of 300 copies of a 1 MiB value ---- */

static void
test_big_multiget(void)
{
    enum { COPIES = 300 };
    static const size_t vlen = 1024 * 1024 - 512;
    static const char *const args[] = {"-t", "2", NULL};
    struct harness_server *srv = harness_create(args, 0);
    static char line[8 + 2 * COPIES];
    static char buf[1 << 20];
    struct watch w;
    long base_kb, paused_kb;
    size_t want, got = 0, n;
    int fd, values = 0;
    char head[64];

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    set_value(fd, "a", vlen);
    /* The read buffer grew to take the 1 MiB value and shrank back: this
     * connection's and the stats one's are 16 KiB each. */
    {
        long long rbytes = stat_value(srv, "read_buf_bytes");
        printf("read buffers after a 1 MiB set: %lld bytes\n", rbytes);
        HARNESS_CHECK(rbytes > 0 && rbytes <= 64 * 1024);
    }
    close(fd);
    base_kb = harness_rss_kb(srv->pid);

    n = (size_t)snprintf(line, sizeof(line), "get");
    for (int i = 0; i < COPIES; i++) {
        memcpy(line + n, " a", 2);
        n += 2;
    }
    memcpy(line + n, "\r\n", 2);
    n += 2;
    watch_start(&w, srv);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    HARNESS_CHECK(harness_send_all(fd, line, n) == 0);
    /* Do not read for a while: the server must stop fetching. */
    usleep(1000 * 1000);
    paused_kb = harness_rss_kb(srv->pid);
    /* Now read it all and count: every copy, then END. */
    snprintf(head, sizeof(head), "VALUE a 0 %zu\r\n", vlen);
    want = COPIES * (strlen(head) + vlen + 2) + 5;
    while (got < want) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            break;
        }
        for (ssize_t i = 0; i < r; i++) {
            values += buf[i] == 'V';
        }
        got += (size_t)r;
    }
    close(fd);
    watch_stop(&w, "300 x 1 MiB multi-get", 250.0);
    printf("300 x 1 MiB multi-get: rss %ld kB before, %ld kB after 1 s "
           "unread, %zu of %zu reply bytes\n",
           base_kb, paused_kb, got, want);
    HARNESS_CHECK(got == want);
    HARNESS_CHECK(values == COPIES);
    /* cap (256 KiB) + one value, plus socket and allocator slack; the
     * unbounded server needed 300 MiB */
    RSS_CHECK(paused_kb - base_kb < 32 * 1024);
    RSS_CHECK(w.rss_peak_kb - base_kb < 64 * 1024);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* ---- 2. 200 pipelining clients that never read ---- */

static void
test_non_readers(void)
{
    enum { CLIENTS = 200, KEYS = 100, GETS = 5 };
    static const size_t vlen = 100 * 1000;
    static const char *const args[] = {"-t", "2", "--write-timeout", "2", NULL};
    struct harness_server *srv = harness_create(args, 0);
    static char line[KEYS * 8 + 16];
    static int fds[CLIENTS];
    struct watch w;
    long base_kb, after_kb = 0;
    size_t n;
    int fd;
    long long conns = -1;
    double t0;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    n = (size_t)snprintf(line, sizeof(line), "get");
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "nr%d", k);
        set_value(fd, key, vlen);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", key);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\n");
    close(fd);
    base_kb = harness_rss_kb(srv->pid);

    watch_start(&w, srv);
    for (int i = 0; i < CLIENTS; i++) {
        int one = 4096;
        fds[i] = harness_connect(srv);
        HARNESS_CHECK(fds[i] >= 0);
        /* a small receive window, so that the kernel holds little */
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
        for (int g = 0; g < GETS; g++) {
            HARNESS_CHECK(harness_send_all(fds[i], line, n) == 0);
        }
    }
    /* The write timeout (2 s) closes them all; memory goes back. */
    t0 = now_ms();
    if (getenv("HOSTILE_SLOW") != NULL) {
        fprintf(stderr, "at %.0f: all connected\n", t0);
    }
    while (now_ms() - t0 < 8000) {
        usleep(200 * 1000);
        conns = stat_value(srv, "curr_connections");
        if (getenv("HOSTILE_SLOW") != NULL) {
            fprintf(stderr, "at %.0f: %lld connections\n", now_ms(), conns);
        }
        if (conns <= 2) {
            break;
        }
    }
    usleep(1200 * 1000); /* a trim period */
    after_kb = harness_rss_kb(srv->pid);
    watch_stop(&w, "200 non-reading clients", 250.0);
    printf("200 non-reading clients: rss %ld kB before, peak %ld kB, %ld kB "
           "after they were closed; write_timeouts %lld\n",
           base_kb, w.rss_peak_kb, after_kb, stat_value(srv, "write_timeouts"));
    for (int i = 0; i < CLIENTS; i++) {
        close(fds[i]);
    }
    HARNESS_CHECK(conns <= 2);
    HARNESS_CHECK(stat_value(srv, "write_timeouts") >= CLIENTS);
    /* ~256 KiB cap + one 100 KB value per client: about 70 MiB; the
     * unbounded server took 1.4 GB */
    RSS_CHECK(w.rss_peak_kb - base_kb < 160 * 1024);
    RSS_CHECK(after_kb - base_kb < 48 * 1024);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* The output budget: with it set low, the largest queues are closed. */
static void
test_output_budget(void)
{
    enum { CLIENTS = 40, KEYS = 20 };
    static const size_t vlen = 100 * 1000;
    static const char *const args[] = {
            "-t", "2", "--output-budget", "4m", "--write-timeout", "30", NULL};
    struct harness_server *srv = harness_create(args, 0);
    static char line[KEYS * 8 + 16];
    static int fds[CLIENTS];
    long long closes = 0;
    long long queued = -1;
    size_t n;
    int fd;
    double t0;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    n = (size_t)snprintf(line, sizeof(line), "get");
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "ob%d", k);
        set_value(fd, key, vlen);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", key);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\n");
    close(fd);
    for (int i = 0; i < CLIENTS; i++) {
        int small = 4096;
        fds[i] = harness_connect(srv);
        HARNESS_CHECK(fds[i] >= 0);
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        for (int g = 0; g < 3; g++) {
            HARNESS_CHECK(harness_send_all(fds[i], line, n) == 0);
        }
    }
    t0 = now_ms();
    /* The largest queues are closed until the sum is back under the
     * budget, also with no request arriving to trigger it. */
    while (now_ms() - t0 < 5000 && (closes == 0 || queued > 4 * MIB)) {
        usleep(100 * 1000);
        closes = stat_value(srv, "output_budget_closes");
        queued = stat_value(srv, "output_bytes");
    }
    printf("output budget 4 MiB, %d non-readers: %lld closed, output_bytes "
           "%lld after %.1f s\n",
           CLIENTS, closes, queued, (now_ms() - t0) / 1000.0);
    HARNESS_CHECK(closes > 0);
    HARNESS_CHECK(queued >= 0 && queued <= 4 * MIB);
    HARNESS_CHECK(stat_value(srv, "output_budget") == 4 * MIB);
    for (int i = 0; i < CLIENTS; i++) {
        close(fds[i]);
    }
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* ---- 3. 3000 connections against a low descriptor limit ---- */

/* The lowest descriptor number pid has free: with the limit set there,
 * every descriptor below it is taken and the next accept fails (EMFILE). */
static int
lowest_free_fd(pid_t pid)
{
    static unsigned char used[65536];
    char path[64];
    struct dirent *de;
    DIR *d;
    int n = 0;

    memset(used, 0, sizeof(used));
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd >= 0 && fd < (int)sizeof(used)) {
            used[fd] = 1;
        }
    }
    closedir(d);
    while (n < (int)sizeof(used) && used[n]) {
        n++;
    }
    return n;
}

/* Open n connections at once, send "version", and sort the answers. */
static void
storm(struct harness_server *srv, int *fds, int n, int *served, int *refused,
      int *other)
{
    static char buf[256];
    double t0;
    int left;

    *served = *refused = *other = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = connect_nonblock(srv);
        HARNESS_CHECK(fds[i] >= 0);
    }
    left = n;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLOUT};
        if (poll(&p, 1, 5000) == 1 && (p.revents & POLLOUT)) {
            if (send(fds[i], "version\r\n", 9, MSG_NOSIGNAL) < 0) {
                /* refused and closed already: read the error below */
            }
        }
    }
    t0 = now_ms();
    while (left > 0 && now_ms() - t0 < 15000) {
        for (int i = 0; i < n; i++) {
            ssize_t r;
            if (fds[i] < 0) {
                continue;
            }
            r = recv(fds[i], buf, sizeof(buf) - 1, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                continue;
            }
            if (r > 0) {
                buf[r] = '\0';
                if (strncmp(buf, "VERSION ", 8) == 0) {
                    (*served)++;
                } else if (strcmp(buf, "ERROR Too many open connections"
                                       "\r\n") == 0) {
                    (*refused)++;
                } else {
                    (*other)++;
                }
            } else {
                (*other)++;
            }
            close(fds[i]);
            fds[i] = -1;
            left--;
        }
        usleep(5000);
    }
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

static void
test_fd_exhaustion(void)
{
    enum { CLIENTS = 3000, LOW = 256 };
    static const char *const args[] = {"-t", "2", "-c", "4096", NULL};
    struct harness_server *srv;
    static int fds[CLIENTS];
    struct rlimit rl, lowered, mine;
    struct watch w;
    int served, refused, other, open_now;
    long t0_ticks, ticks;
    double t0, secs;
    long hz = sysconf(_SC_CLK_TCK);
    char logpath[256];
    int loglines = 0;

    HARNESS_CHECK(getrlimit(RLIMIT_NOFILE, &mine) == 0);
    if (mine.rlim_max != RLIM_INFINITY && mine.rlim_max < CLIENTS + 64) {
        printf("SKIP fd exhaustion: the test itself may open only %llu "
               "files\n",
               (unsigned long long)mine.rlim_max);
        return;
    }
    mine.rlim_cur = CLIENTS + 64 > mine.rlim_cur ? CLIENTS + 64 : mine.rlim_cur;
    HARNESS_CHECK(setrlimit(RLIMIT_NOFILE, &mine) == 0);
    srv = harness_create(args, 0);
    snprintf(logpath, sizeof(logpath), "%s/log", srv->tmp_dir);
    /* --log-file in the server's own temp dir, to count what the
     * episode logs */
    HARNESS_CHECK(srv->nargs + 2 <= HARNESS_MAX_ARGS);
    srv->args[srv->nargs++] = strdup("--log-file");
    srv->args[srv->nargs++] = strdup(logpath);
    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    watch_start(&w, srv);
    usleep(50 * 1000);

    /* Phase 1: a low limit; clients past it hear memcached's error. */
    HARNESS_CHECK(prlimit(srv->pid, RLIMIT_NOFILE, NULL, &rl) == 0);
    lowered = rl;
    lowered.rlim_cur = LOW;
    HARNESS_CHECK(prlimit(srv->pid, RLIMIT_NOFILE, &lowered, NULL) == 0);
    usleep(200 * 1000); /* the server re-reads its limit every 100 ms */
    t0 = now_ms();
    t0_ticks = cpu_ticks(srv->pid);
    storm(srv, fds, CLIENTS, &served, &refused, &other);
    ticks = cpu_ticks(srv->pid) - t0_ticks;
    secs = (now_ms() - t0) / 1000.0;
    printf("limit %d, %d clients: %d served, %d refused, %d other in %.2f "
           "s; server cpu %.0f%%\n",
           LOW, CLIENTS, served, refused, other, secs,
           100.0 * (double)ticks / (double)hz / secs);
    HARNESS_CHECK(served + refused + other == CLIENTS);
    HARNESS_CHECK(refused > 0);
    HARNESS_CHECK(served > 0);
    HARNESS_CHECK(other == 0);

    /* Phase 2: no descriptor left at all: accept fails with EMFILE; the
     * spare descriptor answers one client per back-off, the listener
     * pauses instead of spinning, and nothing floods the log. */
    usleep(300 * 1000); /* let the server close what the storm left */
    open_now = lowest_free_fd(srv->pid);
    HARNESS_CHECK(open_now > 0);
    lowered.rlim_cur = (rlim_t)open_now;
    HARNESS_CHECK(prlimit(srv->pid, RLIMIT_NOFILE, &lowered, NULL) == 0);
    t0 = now_ms();
    t0_ticks = cpu_ticks(srv->pid);
    {
        enum { N = 300 };
        double t1;
        for (int i = 0; i < N; i++) {
            fds[i] = connect_nonblock(srv);
            HARNESS_CHECK(fds[i] >= 0);
        }
        /* hold them for 2 s while the server is out of descriptors */
        t1 = now_ms();
        while (now_ms() - t1 < 2000) {
            usleep(100 * 1000);
        }
        ticks = cpu_ticks(srv->pid) - t0_ticks;
        secs = (now_ms() - t0) / 1000.0;
        printf("out of descriptors for %.1f s with %d waiting: server cpu "
               "%.1f%%\n",
               secs, N, 100.0 * (double)ticks / (double)hz / secs);
        /* a core spinning would be 100% */
        HARNESS_CHECK((double)ticks / (double)hz / secs < 0.5);
        for (int i = 0; i < N; i++) {
            close(fds[i]);
        }
    }

    /* Recovery: the limit back up, new clients get in. */
    HARNESS_CHECK(prlimit(srv->pid, RLIMIT_NOFILE, &rl, NULL) == 0);
    usleep(1500 * 1000); /* the longest back-off is 1 s */
    printf("listen_disabled_num %lld\n",
           stat_value(srv, "listen_disabled_num"));
    HARNESS_CHECK(stat_value(srv, "listen_disabled_num") > 0);
    storm(srv, fds, 100, &served, &refused, &other);
    printf("after the limit was restored: %d of 100 served\n", served);
    HARNESS_CHECK(served == 100);
    watch_stop(&w, "fd exhaustion", 250.0);
    HARNESS_CHECK(stat_value(srv, "rejected_connections") > 0);
    {
        FILE *f = fopen(logpath, "r");
        char line[512];
        HARNESS_CHECK(f != NULL);
        while (fgets(line, sizeof(line), f) != NULL) {
            loglines++;
        }
        fclose(f);
    }
    printf("fd exhaustion: %d log lines in all\n", loglines);
    HARNESS_CHECK(loglines < 40);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* ---- 4. a pipelined flood against another client's latency ---- */

struct flood {
    struct harness_server *srv;
    atomic_bool stop;
    long requests;
};

static void *
flood_main(void *arg)
{
    struct flood *fl = arg;
    static char reqs[64 * 1024];
    static char buf[256 * 1024];
    int fd = harness_connect(fl->srv);
    size_t n = 0;

    HARNESS_CHECK(fd >= 0);
    while (n + 9 <= sizeof(reqs)) {
        memcpy(reqs + n, "get fk\r\n", 8);
        n += 8;
    }
    HARNESS_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    /* keep the server's read side full and read whatever comes back */
    while (!atomic_load(&fl->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
        ssize_t r;

        poll(&p, 1, 100);
        if (p.revents & POLLOUT) {
            r = send(fd, reqs, n, MSG_NOSIGNAL);
            if (r > 0) {
                fl->requests += r / 8;
            }
        }
        while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
        }
    }
    close(fd);
    return NULL;
}

static void
test_flood_fairness(void)
{
    static const char *const args[] = {"-t", "1", "-R", "20", NULL};
    struct harness_server *srv = harness_create(args, 0);
    struct flood fl;
    struct watch w;
    pthread_t tid;
    int fd;
    long long yields;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    set_value(fd, "fk", 100);
    close(fd);
    memset(&fl, 0, sizeof(fl));
    fl.srv = srv;
    HARNESS_CHECK(pthread_create(&tid, NULL, flood_main, &fl) == 0);
    usleep(200 * 1000);
    watch_start(&w, srv);
    usleep(2000 * 1000);
    watch_stop(&w, "pipelined flood on the same worker", 250.0);
    atomic_store(&fl.stop, true);
    pthread_join(tid, NULL);
    yields = stat_value(srv, "conn_yields");
    printf("pipelined flood: %ld requests sent, conn_yields %lld\n",
           fl.requests, yields);
    HARNESS_CHECK(fl.requests > 1000);
    HARNESS_CHECK(yields > 0);
    {
        /* counted from `stats reset`, as memcached's thread stats are */
        char buf[64];
        fd = harness_connect(srv);
        HARNESS_CHECK(fd >= 0);
        HARNESS_CHECK(harness_send_all(fd, "stats reset\r\n", 13) == 0);
        HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "\r\n") > 0);
        HARNESS_CHECK(strcmp(buf, "RESET\r\n") == 0);
        close(fd);
        HARNESS_CHECK(stat_value(srv, "conn_yields") == 0);
    }
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* A paused connection still meets the idle timeout; with both timeouts off
 * a non-reader stays (paused, holding little). */
static void
idle_paused_case(const char *idle, int want_closed)
{
    const char *args[] = {"--idle-timeout", idle, "--write-timeout", "0", NULL};
    struct harness_server *srv = harness_create(args, 0);
    static char line[64 * 5 + 16];
    size_t n;
    int fd, small = 4096;
    long long conns = -1;
    double t0;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    set_value(fd, "idle", 200 * 1000);
    close(fd);
    n = (size_t)snprintf(line, sizeof(line), "get");
    for (int i = 0; i < 64; i++) {
        n += (size_t)snprintf(line + n, sizeof(line) - n, " idle");
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\n");
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    HARNESS_CHECK(harness_send_all(fd, line, n) == 0);
    t0 = now_ms();
    /* a 1 s idle timeout; the close may come late on a loaded machine,
     * and the loop ends as soon as it has come */
    while (now_ms() - t0 < (want_closed ? 8000 : 2500)) {
        usleep(250 * 1000);
        conns = stat_value(srv, "curr_connections");
        if (want_closed && conns == 1) {
            break;
        }
    }
    printf("non-reader, --idle-timeout %s --write-timeout 0: %s after "
           "%.1f s\n",
           idle, conns == 1 ? "closed" : "still open",
           (now_ms() - t0) / 1000.0);
    /* the stats connection itself is one */
    HARNESS_CHECK(want_closed ? conns == 1 : conns == 2);
    close(fd);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

static void
test_idle_paused(void)
{
    idle_paused_case("1", 1);
    idle_paused_case("0", 0);
}

/* ---- 5. a damaged record inside a multi-get ---- */

/* Overwrite the first occurrence of pat in any segment file under dir
 * with x's (the --sync=always journal holds a copy too: not that one).
 * Returns 1 when found. */
static int
damage_in_dir(const char *dir, const char *pat)
{
    static char buf[1 << 20];
    struct dirent *de;
    DIR *d = opendir(dir);
    int found = 0;

    if (d == NULL) {
        return 0;
    }
    while (!found && (de = readdir(d)) != NULL) {
        char path[512];
        int fd;
        ssize_t n;

        if (de->d_name[0] == '.' || strncmp(de->d_name, "journal.", 8) == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR) {
            found = damage_in_dir(path, pat);
            continue;
        }
        fd = open(path, O_RDWR);
        if (fd < 0) {
            continue;
        }
        n = pread(fd, buf, sizeof(buf), 0);
        for (ssize_t i = 0; n > 0 && i + (ssize_t)strlen(pat) <= n; i++) {
            if (memcmp(buf + i, pat, strlen(pat)) == 0) {
                HARNESS_CHECK(pwrite(fd, "x", 1, i) == 1);
                found = 1;
                break;
            }
        }
        close(fd);
    }
    closedir(d);
    return found;
}

static void
test_corrupt_in_multiget(void)
{
    static const char *const args[] = {"--sync", "always", NULL};
    struct harness_server *srv = harness_create(args, 0);
    static const char *const sets[] = {
            "set c1 0 0 6\r\nvalue1\r\n",
            "set c2 0 0 16\r\nDAMAGE-ME-PLEASE\r\n",
            "set c3 0 0 6\r\nvalue3\r\n",
    };
    static const char want[] = "VALUE c1 0 6\r\nvalue1\r\n"
                               "VALUE c3 0 6\r\nvalue3\r\nEND\r\n";
    char buf[512];
    int fd;

    HARNESS_CHECK(harness_start(srv, 10000) == 0);
    fd = harness_connect(srv);
    HARNESS_CHECK(fd >= 0);
    for (int i = 0; i < 3; i++) {
        HARNESS_CHECK(harness_send_all(fd, sets[i], strlen(sets[i])) == 0);
        HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "\r\n") > 0);
        HARNESS_CHECK(strcmp(buf, "STORED\r\n") == 0);
    }
    /* One byte of c2's value, in the file under the running server. */
    HARNESS_CHECK(damage_in_dir(srv->data_dir, "DAMAGE-ME-PLEASE"));
    HARNESS_CHECK(harness_send_all(fd, "get c1 c2 c3\r\n", 14) == 0);
    HARNESS_CHECK(harness_recv_until(fd, buf, sizeof(buf), "END\r\n") > 0);
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "damaged record in a multi-get: got [%s]\n", buf);
        harness_fail();
    }
    close(fd);
    printf("damaged record in a multi-get: a miss, then END; get_corrupt "
           "%lld\n",
           stat_value(srv, "get_corrupt"));
    HARNESS_CHECK(stat_value(srv, "get_corrupt") == 1);
    HARNESS_CHECK(harness_stop(srv) == 0);
    harness_destroy(&srv);
}

/* With arguments, run only the scenarios named (for a closer look). */
int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
            {"multiget", test_big_multiget},
            {"non-readers", test_non_readers},
            {"budget", test_output_budget},
            {"fds", test_fd_exhaustion},
            {"flood", test_flood_fairness},
            {"corrupt", test_corrupt_in_multiget},
            {"idle", test_idle_paused},
    };

    harness_init();
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        bool run = argc < 2;
        for (int a = 1; a < argc; a++) {
            run = run || strcmp(argv[a], tests[i].name) == 0;
        }
        for (int t = 1; run; t++) {
            p99_missed = false;
            tests[i].fn();
            if (!p99_missed) {
                break;
            }
            if (t == TRIES) {
                fprintf(stderr, "%s: p99 bound missed in %d runs of %d\n",
                        tests[i].name, t, TRIES);
                harness_fail();
            }
            printf("%s: p99 bound missed (run %d of at most %d): again\n",
                   tests[i].name, t, TRIES);
        }
    }
    printf("ok\n");
    return 0;
}
